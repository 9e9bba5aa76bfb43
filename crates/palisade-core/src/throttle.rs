//! Brute-force protection: growing delays after a few failures, then a lockout.
//!
//! Pure policy: the caller keeps the state (per account, per source address) and passes time in.

/// How failures are punished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures answered without delay.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Failures that lock the key.
    pub lockout_after: u32,
    pub lockout_ms: i64,
    /// Failures older than this are forgotten.
    pub window_ms: i64,
}

impl ThrottlePolicy {
    /// Per account: 3 free failures, then 250 ms doubling (≤ 8 s), locked after 10 for 15 min.
    pub const ACCOUNT: Self = Self {
        free_failures: 3,
        base_delay_ms: 250,
        max_delay_ms: 8_000,
        lockout_after: 10,
        lockout_ms: 15 * 60 * 1000,
        window_ms: 15 * 60 * 1000,
    };

    /// Per source address: more lenient (many users behind one NAT), locked after 50.
    pub const SOURCE: Self = Self {
        free_failures: 10,
        base_delay_ms: 250,
        max_delay_ms: 8_000,
        lockout_after: 50,
        lockout_ms: 15 * 60 * 1000,
        window_ms: 15 * 60 * 1000,
    };
}

/// Failures recorded for one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: u32,
    pub last_failure_ms: i64,
    pub locked_until_ms: Option<i64>,
}

impl ThrottlePolicy {
    pub fn is_locked(&self, s: &ThrottleState, now_ms: i64) -> bool {
        s.locked_until_ms.is_some_and(|until| now_ms < until)
    }

    /// The state after one more failure at `now_ms`.
    pub fn after_failure(&self, s: &ThrottleState, now_ms: i64) -> ThrottleState {
        let fresh = now_ms.saturating_sub(s.last_failure_ms) > self.window_ms && !self.is_locked(s, now_ms);
        let failures = if fresh { 1 } else { s.failures.saturating_add(1) };
        let locked_until_ms = if failures >= self.lockout_after {
            Some(s.locked_until_ms.filter(|u| *u > now_ms).unwrap_or(now_ms.saturating_add(self.lockout_ms)))
        } else {
            None
        };
        ThrottleState { failures, last_failure_ms: now_ms, locked_until_ms }
    }

    /// How long to hold the answer to a failed attempt, given the state after it.
    pub fn delay_ms(&self, s: &ThrottleState) -> u64 {
        if s.failures <= self.free_failures {
            return 0;
        }
        let doublings = (s.failures - self.free_failures - 1).min(30);
        self.base_delay_ms.saturating_mul(1u64 << doublings).min(self.max_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_lock() {
        let p = ThrottlePolicy::ACCOUNT;
        let mut s = ThrottleState::default();
        let mut delays = Vec::new();
        for i in 0..10 {
            assert!(!p.is_locked(&s, 1000 + i));
            s = p.after_failure(&s, 1000 + i);
            delays.push(p.delay_ms(&s));
        }
        assert_eq!(delays, vec![0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert!(p.is_locked(&s, 1010));
        assert!(!p.is_locked(&s, 1009 + p.lockout_ms + 1), "the lock lifts after its time");
        // Failures during the lock do not extend it.
        let again = p.after_failure(&s, 2000);
        assert_eq!(again.locked_until_ms, s.locked_until_ms);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let p = ThrottlePolicy::ACCOUNT;
        let s =
            p.after_failure(&ThrottleState { failures: 5, last_failure_ms: 0, locked_until_ms: None }, p.window_ms + 1);
        assert_eq!(s.failures, 1);
    }
}
