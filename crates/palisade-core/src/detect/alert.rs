//! Alert lifecycle and escalation, sans I/O.
//!
//! An alert is `open` until someone acknowledges it, then `acknowledged`, then `resolved` (by a
//! person, or on its own when its condition clears and the rule says so). Escalation walks an
//! open alert through tiers of contacts: tier 0 when it opens, tier 1 `after` the delay of tier
//! 1 if nobody acknowledged, and so on; with `repeat`, it starts over at tier 0 after the last.

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
}

impl Status {
    pub const ALL: [Self; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a person may move an alert from `self` to `to`.
    pub fn may_become(self, to: Self) -> bool {
        matches!((self, to), (Self::Open, Self::Acknowledged | Self::Resolved) | (Self::Acknowledged, Self::Resolved))
    }
}

/// One tier of an escalation policy: whom to tell, and how long after the previous tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub after_ms: i64,
    /// Channel ids or names.
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub name: String,
    pub tiers: Vec<Tier>,
    pub repeat: bool,
}

/// Notifications one alert can cause through repeats at most.
pub const MAX_STEPS: u32 = 100;

impl EscalationPolicy {
    /// How many tier steps are due for an unacknowledged alert opened at `opened_ms`, by
    /// `now_ms` (step 0 is the first tier, at opening), and when the next one falls due.
    pub fn steps_due(&self, opened_ms: i64, now_ms: i64) -> (u32, Option<i64>) {
        let mut at = opened_ms;
        let mut steps = 0u32;
        let n = self.tiers.len();
        if n == 0 {
            return (0, None);
        }
        loop {
            if steps >= MAX_STEPS {
                return (steps, None);
            }
            let idx = usize::try_from(steps).unwrap_or(usize::MAX);
            if idx >= n && !self.repeat {
                return (steps, None);
            }
            let Some(tier) = self.tiers.get(idx % n) else { return (steps, None) };
            // Tier 0 goes out at opening; a repeat waits for tier 0's delay (at least a minute).
            let delay = if idx == 0 {
                0
            } else if idx % n == 0 {
                tier.after_ms.max(60_000)
            } else {
                tier.after_ms
            };
            at = at.saturating_add(delay.max(0));
            if at > now_ms {
                return (steps, Some(at));
            }
            steps += 1;
        }
    }

    /// The tier a step notifies.
    pub fn tier(&self, step: u32) -> Option<&Tier> {
        let n = self.tiers.len();
        if n == 0 {
            return None;
        }
        self.tiers.get(usize::try_from(step).unwrap_or(0) % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(repeat: bool) -> EscalationPolicy {
        EscalationPolicy {
            name: "oncall".into(),
            tiers: vec![
                Tier { after_ms: 0, channels: vec!["tier1".into()] },
                Tier { after_ms: 300_000, channels: vec!["tier2".into()] },
            ],
            repeat,
        }
    }

    #[test]
    fn tier_two_after_its_delay() {
        let p = policy(false);
        assert_eq!(p.steps_due(1_000, 1_000), (1, Some(301_000)));
        assert_eq!(p.steps_due(1_000, 300_999), (1, Some(301_000)));
        assert_eq!(p.steps_due(1_000, 301_000), (2, None));
        assert_eq!(p.steps_due(1_000, 10_000_000), (2, None));
        assert_eq!(p.tier(1).unwrap().channels, vec!["tier2".to_owned()]);
    }

    #[test]
    fn repeats_start_over_and_stop_at_the_cap() {
        let p = policy(true);
        // Tier 0 again a minute after tier 1 (its own delay is 0), then tier 1 after 5 min.
        assert_eq!(p.steps_due(0, 300_000), (2, Some(360_000)));
        assert_eq!(p.steps_due(0, 360_000), (3, Some(660_000)));
        assert_eq!(p.tier(2).unwrap().channels, vec!["tier1".to_owned()]);
        assert_eq!(p.steps_due(0, i64::MAX).0, MAX_STEPS);
        let empty = EscalationPolicy { name: "x".into(), tiers: vec![], repeat: true };
        assert_eq!(empty.steps_due(0, 5), (0, None));
    }

    #[test]
    fn lifecycle() {
        assert!(Status::Open.may_become(Status::Acknowledged));
        assert!(Status::Acknowledged.may_become(Status::Resolved));
        assert!(!Status::Resolved.may_become(Status::Open));
        assert!(!Status::Acknowledged.may_become(Status::Open));
    }
}
