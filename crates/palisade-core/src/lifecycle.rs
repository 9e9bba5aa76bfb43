//! The device lifecycle state machine.
//!
//! ```text
//! registered → provisioned → active ⇄ quarantined
//!                              active ⇄ paused
//! provisioned → quarantined | paused
//! any state → decommissioned (terminal)
//! ```
//!
//! An enrolled (provisioned) device holds a certificate and may already be on the network, so it
//! can be contained before it was ever activated; releasing it makes it active.

use std::fmt;
use std::str::FromStr;

use crate::validate::InvalidField;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleState {
    Registered,
    Provisioned,
    Active,
    Quarantined,
    Paused,
    Decommissioned,
}

/// A transition the state machine does not allow, with the ones it would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub allowed: &'static [LifecycleState],
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot go from {} to {}; allowed: ", self.from, self.to)?;
        if self.allowed.is_empty() {
            return f.write_str("none (terminal state)");
        }
        let names: Vec<&str> = self.allowed.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for IllegalTransition {}

impl LifecycleState {
    pub const ALL: [LifecycleState; 6] =
        [Self::Registered, Self::Provisioned, Self::Active, Self::Quarantined, Self::Paused, Self::Decommissioned];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Provisioned => "provisioned",
            Self::Active => "active",
            Self::Quarantined => "quarantined",
            Self::Paused => "paused",
            Self::Decommissioned => "decommissioned",
        }
    }

    /// The states this one may move to.
    pub fn allowed_next(self) -> &'static [LifecycleState] {
        use LifecycleState::*;
        match self {
            Registered => &[Provisioned, Decommissioned],
            Provisioned => &[Active, Quarantined, Paused, Decommissioned],
            Active => &[Quarantined, Paused, Decommissioned],
            Quarantined => &[Active, Decommissioned],
            Paused => &[Active, Decommissioned],
            Decommissioned => &[],
        }
    }

    /// Checks a transition; the new state on success.
    pub fn transition(self, to: LifecycleState) -> Result<LifecycleState, IllegalTransition> {
        if self.allowed_next().contains(&to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to, allowed: self.allowed_next() })
        }
    }

    /// Where `release` leads: a quarantined or paused device goes back to active.
    pub fn release(self) -> Result<LifecycleState, IllegalTransition> {
        match self {
            Self::Quarantined | Self::Paused => Ok(Self::Active),
            other => Err(IllegalTransition { from: other, to: Self::Active, allowed: other.allowed_next() }),
        }
    }

    pub fn is_terminal(self) -> bool {
        self.allowed_next().is_empty()
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LifecycleState {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            InvalidField::new(
                "state",
                format!("{s:.40?} is not one of registered, provisioned, active, quarantined, paused, decommissioned"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleState::*;
    use super::*;

    #[test]
    fn the_happy_path() {
        let s = Registered.transition(Provisioned).unwrap();
        let s = s.transition(Active).unwrap();
        let s = s.transition(Quarantined).unwrap();
        let s = s.release().unwrap();
        assert_eq!(s, Active);
        assert_eq!(s.transition(Decommissioned).unwrap(), Decommissioned);
    }

    #[test]
    fn every_pair_is_decided_by_the_table() {
        for from in LifecycleState::ALL {
            for to in LifecycleState::ALL {
                let expected = from.allowed_next().contains(&to);
                assert_eq!(from.transition(to).is_ok(), expected, "{from} -> {to}");
            }
            // Any non-terminal state may be decommissioned; nothing leaves decommissioned.
            assert_eq!(from.transition(Decommissioned).is_ok(), from != Decommissioned);
        }
    }

    #[test]
    fn illegal_transition_names_the_allowed_ones() {
        let err = Registered.transition(Active).unwrap_err();
        assert_eq!(err.to_string(), "cannot go from registered to active; allowed: provisioned, decommissioned");
        let err = Decommissioned.transition(Active).unwrap_err();
        assert!(err.to_string().ends_with("none (terminal state)"));
        assert!(Active.release().is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in LifecycleState::ALL {
            assert_eq!(s.as_str().parse::<LifecycleState>().unwrap(), s);
        }
        assert!("Active".parse::<LifecycleState>().is_err());
    }
}
