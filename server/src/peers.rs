//! Connections per client address, capped (`max_connections_per_ip`): one address cannot
//! take every descriptor and connection slot the registry has, whatever it opens. A
//! connection past the cap is closed as soon as it is accepted, before anything is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct Peers {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One connection's place under its address's cap; given back when dropped (with the
/// connection, however it ends).
pub struct Slot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    pub fn new(max: u32) -> Arc<Peers> {
        Arc::new(Peers {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // Counts change by single whole updates, so a poisoned map is still right.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more connection from `ip`; `None` when it has `max` open already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            peers: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> u32 {
        self.lock().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.peers.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_max_slots_and_each_drop_gives_one_back() {
        let p = Peers::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let s1 = p.admit(a).unwrap();
        let s2 = p.admit(a).unwrap();
        assert!(p.admit(a).is_none(), "a third from the same address");
        let other = p.admit(b).expect("another address has its own count");
        drop(s1);
        let s3 = p.admit(a).expect("a slot was given back");
        drop((s2, s3, other));
        assert_eq!((p.open(a), p.open(b)), (0, 0));
        assert!(p.lock().is_empty(), "no entry is kept for idle addresses");
    }
}
