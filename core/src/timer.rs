//! The connection's deadlines, in a fixed table (after quinn-proto's `TimerTable`).
//! `deadline()` is the minimum of the armed timers; time only ever arrives as an input.

use std::time::Instant;

/// What a deadline bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// From the first byte of a request head to its `\r\n\r\n` (slow-loris bound).
    Header = 0,
    /// Without progress while a request body is expected.
    Body = 1,
    /// Between requests on a keep-alive connection.
    Idle = 2,
}

const TIMERS: [Timer; 3] = [Timer::Header, Timer::Body, Timer::Idle];

/// One optional instant per `Timer`.
#[derive(Clone, Debug, Default)]
pub struct TimerTable {
    at: [Option<Instant>; 3],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub fn is_set(&self, timer: Timer) -> bool {
        self.at[timer as usize].is_some()
    }

    pub fn stop_all(&mut self) {
        self.at = [None; 3];
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The first timer (in table order) that has expired at `now`.
    pub fn expired(&self, now: Instant) -> Option<Timer> {
        TIMERS
            .iter()
            .copied()
            .find(|t| self.at[*t as usize].is_some_and(|at| at <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadline_is_the_earliest_armed_timer() {
        #[allow(clippy::disallowed_methods)] // a test needs some base instant
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Idle, t0 + Duration::from_secs(5));
        t.set(Timer::Header, t0 + Duration::from_secs(3));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(t.expired(t0 + Duration::from_secs(4)), Some(Timer::Header));
        t.stop(Timer::Header);
        assert_eq!(t.expired(t0 + Duration::from_secs(4)), None);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(5)));
    }
}
