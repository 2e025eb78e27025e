//! `Sim`: many connections over one `ModelStore`, driven by a seeded RNG. Each step picks a
//! connection and delivers 1..=k bytes of its client's next request, or a held storage
//! reply, so heads and chunk headers split at every offset and replies arrive late. Time is
//! virtual and jumps to the next deadline when nothing else can happen. A failing run
//! prints its seed; `BERTH_SIM_SEED` replays it.

use super::client::{parse_responses, Request, Response};
use super::model::ModelStore;
use crate::connection::{Connection, Input, Output, RequestRecord};
use crate::limits::Limits;
use crate::need::{NeedId, Reply};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// The next request of a scripted client, built from the previous response (if any).
pub type Step = Box<dyn FnMut(Option<&Response>) -> Request>;

/// One client and its connection.
pub struct SimConn {
    pub conn: Connection,
    script: VecDeque<Step>,
    outgoing: Vec<u8>,
    sent: usize,
    awaiting: bool,
    held: Option<(NeedId, Reply)>,
    wire: Vec<u8>,
    heads: Vec<bool>,
    pub responses: Vec<Response>,
    pub records: Vec<RequestRecord>,
    pub closed: bool,
}

/// The simulator.
pub struct Sim {
    pub now: Instant,
    pub seed: u64,
    rng: SmallRng,
    pub store: ModelStore,
    pub conns: Vec<SimConn>,
    limits: Arc<Limits>,
    /// Largest delivery per step.
    pub max_piece: usize,
    steps: usize,
}

/// Prints the seed if the thread panics while this is alive.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "Sim failed with seed {}: replay with BERTH_SIM_SEED={}",
                self.0, self.0
            );
        }
    }
}

impl Sim {
    /// A simulator seeded by `BERTH_SIM_SEED` if set, else by `seed`.
    pub fn new(seed: u64, limits: Limits) -> Sim {
        let seed = std::env::var("BERTH_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed);
        Sim {
            now: super::epoch(),
            seed,
            rng: SmallRng::seed_from_u64(seed),
            store: ModelStore::new(),
            conns: Vec::new(),
            limits: Arc::new(limits),
            max_piece: 64,
            steps: 0,
        }
    }

    /// Adds a client that runs `script` one request at a time.
    pub fn add_client(&mut self, script: Vec<Step>) -> usize {
        self.conns.push(SimConn {
            conn: Connection::new(self.limits.clone(), self.now),
            script: script.into(),
            outgoing: Vec::new(),
            sent: 0,
            awaiting: false,
            held: None,
            wire: Vec::new(),
            heads: Vec::new(),
            responses: Vec::new(),
            records: Vec::new(),
            closed: false,
        });
        self.conns.len() - 1
    }

    fn can_act(c: &SimConn) -> bool {
        !c.closed
            && (c.held.is_some()
                || (c.sent < c.outgoing.len() && c.conn.wants_read())
                || (!c.awaiting && !c.script.is_empty()))
    }

    /// One step; false when nothing can happen any more.
    pub fn step(&mut self) -> bool {
        let _guard = SeedGuard(self.seed);
        self.steps += 1;
        let active: Vec<usize> = (0..self.conns.len())
            .filter(|&i| Self::can_act(&self.conns[i]))
            .collect();
        if active.is_empty() {
            // Nothing to deliver: jump to the next deadline, if any.
            let next = self
                .conns
                .iter()
                .filter(|c| !c.closed)
                .filter_map(|c| c.conn.deadline())
                .min();
            let Some(at) = next else { return false };
            self.now = self.now.max(at);
            for i in 0..self.conns.len() {
                let c = &mut self.conns[i];
                if !c.closed && c.conn.deadline().is_some_and(|d| d <= self.now) {
                    c.conn
                        .handle_input(Input::Timeout(self.now))
                        .expect("sim drives correctly");
                    self.drain(i);
                }
            }
            return true;
        }
        let i = active[self.rng.random_range(0..active.len())];
        let c = &mut self.conns[i];
        let deliver_reply = c.held.is_some()
            && (self.rng.random_bool(0.5) || !(c.sent < c.outgoing.len() && c.conn.wants_read()));
        if deliver_reply {
            let (id, reply) = c.held.take().expect("checked held");
            c.conn
                .handle_input(Input::Reply {
                    now: self.now,
                    id,
                    reply,
                })
                .expect("sim answers the outstanding need");
        } else if c.sent < c.outgoing.len() && c.conn.wants_read() {
            let k = self.rng.random_range(1..=self.max_piece);
            let buf = c.conn.recv_buf();
            let n = k.min(buf.len()).min(c.outgoing.len() - c.sent);
            buf[..n].copy_from_slice(&c.outgoing[c.sent..c.sent + n]);
            c.sent += n;
            c.conn
                .handle_input(Input::Recv { now: self.now, n })
                .expect("sim drives correctly");
        } else {
            let mut step = c.script.pop_front().expect("checked non-empty");
            let req = step(c.responses.last());
            c.heads.push(req.is_head());
            c.outgoing = req.to_bytes();
            c.sent = 0;
            c.awaiting = true;
            return true;
        }
        self.drain(i);
        true
    }

    fn drain(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while let Some(out) = c.conn.poll_output() {
            match out {
                Output::Transmit(b) => c.wire.extend_from_slice(&b),
                Output::SendBlob { blob, range } => {
                    c.wire.extend_from_slice(self.store.blob_bytes(blob, range))
                }
                Output::Need(id, need) => {
                    assert!(c.held.is_none(), "two needs outstanding on one connection");
                    c.held = Some((id, self.store.answer(&need)));
                }
                Output::Done(r) => c.records.push(r),
                Output::Close => c.closed = true,
            }
        }
        let (rs, _) = parse_responses(&c.wire, &c.heads);
        if rs.len() > c.responses.len() {
            c.responses = rs;
            c.awaiting = false;
        }
    }

    /// Runs until nothing can happen; panics (printing the seed) past `max_steps`.
    pub fn run(&mut self, max_steps: usize) {
        let _guard = SeedGuard(self.seed);
        let start = self.steps;
        while self.step() {
            assert!(
                self.steps - start < max_steps,
                "simulation did not finish in {max_steps} steps"
            );
        }
    }
}
