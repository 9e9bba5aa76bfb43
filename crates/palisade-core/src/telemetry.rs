//! Rates from counters. Devices report `net.tx_bytes` / `net.rx_bytes` as counters since boot;
//! the server derives bytes per second between consecutive reports of one device.
//!
//! A counter only means something within one boot. A reboot (another boot id, or uptime going
//! backwards) or a counter going backwards within a boot (a driver reset, a 32-bit wrap) starts
//! the series again: that report has no rate and is marked as a reset, so a reset never shows up
//! as a negative rate or an absurd spike. Reports out of order (not later than the previous one)
//! have no rate either.

/// The counters of one report, with the time it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CounterSample {
    pub at_ms: i64,
    pub boot_id: Option<String>,
    pub uptime_s: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub rx_bytes: Option<u64>,
}

/// What is derived from a report and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    pub tx_bps: Option<f64>,
    pub rx_bps: Option<f64>,
    /// The counters started again (reboot or reset) since the previous report.
    pub reset: bool,
}

/// Rates between `prev` (the device's previous report, if any) and `cur`.
pub fn rates(prev: Option<&CounterSample>, cur: &CounterSample) -> Rates {
    let Some(prev) = prev else { return Rates::default() };
    let other_boot = matches!((&prev.boot_id, &cur.boot_id), (Some(a), Some(b)) if a != b);
    let uptime_back = matches!((prev.uptime_s, cur.uptime_s), (Some(a), Some(b)) if b < a);
    if other_boot || uptime_back {
        return Rates { reset: true, ..Rates::default() };
    }
    let dt_ms = cur.at_ms.saturating_sub(prev.at_ms);
    if dt_ms <= 0 {
        return Rates::default();
    }
    let went_back = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if b < a);
    if went_back(prev.tx_bytes, cur.tx_bytes) || went_back(prev.rx_bytes, cur.rx_bytes) {
        return Rates { reset: true, ..Rates::default() };
    }
    #[allow(clippy::cast_precision_loss)] // byte counts and milliseconds far below 2^52 in practice
    let rate = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 * 1000.0 / dt_ms as f64),
        _ => None,
    };
    Rates { tx_bps: rate(prev.tx_bytes, cur.tx_bytes), rx_bps: rate(prev.rx_bytes, cur.rx_bytes), reset: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(at_ms: i64, boot: &str, uptime_s: u64, tx: u64, rx: u64) -> CounterSample {
        CounterSample {
            at_ms,
            boot_id: Some(boot.to_owned()),
            uptime_s: Some(uptime_s),
            tx_bytes: Some(tx),
            rx_bytes: Some(rx),
        }
    }

    #[test]
    fn rate_between_two_reports() {
        let a = sample(0, "b", 100, 1_000, 5_000);
        let b = sample(10_000, "b", 110, 11_000, 5_000);
        assert_eq!(rates(Some(&a), &b), Rates { tx_bps: Some(1_000.0), rx_bps: Some(0.0), reset: false });
        assert_eq!(rates(None, &b), Rates::default());
    }

    #[test]
    fn reboots_and_resets_start_again() {
        let a = sample(0, "b1", 100, 1_000_000, 1_000_000);
        // New boot id: counters small again, no rate, no negative spike.
        assert_eq!(rates(Some(&a), &sample(10_000, "b2", 5, 10, 10)), Rates { reset: true, ..Rates::default() });
        // Same boot id reported but uptime went backwards.
        assert!(rates(Some(&a), &sample(10_000, "b1", 5, 2_000_000, 2_000_000)).reset);
        // Counter went backwards within a boot (driver reset or 32-bit wrap).
        assert!(rates(Some(&a), &sample(10_000, "b1", 110, 10, 2_000_000)).reset);
        // Out of order or same instant: no rate, not a reset.
        assert_eq!(rates(Some(&a), &sample(0, "b1", 110, 2_000_000, 2_000_000)), Rates::default());
        // No boot id or uptime at all: a counter going back is still caught.
        let bare = |at_ms, tx| CounterSample { at_ms, tx_bytes: Some(tx), ..CounterSample::default() };
        assert!(rates(Some(&bare(0, 500)), &bare(1_000, 100)).reset);
        assert_eq!(rates(Some(&bare(0, 500)), &bare(1_000, 600)).tx_bps, Some(100.0));
    }

    proptest! {
        /// Whatever a device reports, a rate is finite and never negative, and a rate exists only
        /// between two later-in-time reports of the same boot whose counters did not go back.
        #[test]
        fn rates_are_never_negative_or_across_resets(
            a_at in -1_000_000i64..1_000_000, b_at in -1_000_000i64..1_000_000,
            a_boot in 0u8..3, b_boot in 0u8..3,
            a_up in proptest::option::of(0u64..1_000), b_up in proptest::option::of(0u64..1_000),
            a_tx in proptest::option::of(any::<u64>()), b_tx in proptest::option::of(any::<u64>()),
        ) {
            let a = CounterSample { at_ms: a_at, boot_id: Some(a_boot.to_string()), uptime_s: a_up, tx_bytes: a_tx, rx_bytes: None };
            let b = CounterSample { at_ms: b_at, boot_id: Some(b_boot.to_string()), uptime_s: b_up, tx_bytes: b_tx, rx_bytes: None };
            let r = rates(Some(&a), &b);
            prop_assert_eq!(r.rx_bps, None);
            if let Some(tx) = r.tx_bps {
                prop_assert!(tx.is_finite() && tx >= 0.0);
                prop_assert!(b_at > a_at && a_boot == b_boot && !r.reset);
                prop_assert!(b_tx >= a_tx);
            }
            if a_boot != b_boot {
                prop_assert!(r.reset && r.tx_bps.is_none());
            }
        }
    }
}
