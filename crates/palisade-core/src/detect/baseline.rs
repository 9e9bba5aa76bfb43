//! A device's learned normal for one metric: robust statistics (median and MAD) over recent
//! values in log space, per hour of the day once there is enough of that hour, over the most
//! recent values before. Useful after `warmup` values (an hour of reports at one a minute with
//! the defaults), not after weeks.
//!
//! Values that raised an alarm are held out, so an attacker cannot teach the baseline that an
//! exfiltration is normal by keeping it up; "false positive" feedback lets them in.

use std::collections::VecDeque;

/// Recent values kept for the whole day and per hour of the day.
const RECENT: usize = 120;
const PER_HOUR: usize = 16;
/// Values an hour needs before it is used instead of the recent ones.
const HOUR_READY: usize = 8;
/// Alarming values held for feedback at most.
const HELD: usize = 32;
/// The spread is never taken as less than this (log space: about ±10 %), so a perfectly steady
/// device does not alarm on noise.
const MIN_SPREAD: f64 = 0.1;
/// MAD to standard deviation for normal data.
const MAD_SCALE: f64 = 1.4826;

#[derive(Debug, Clone, Default)]
pub struct Baseline {
    recent: VecDeque<f64>,
    hours: Vec<VecDeque<f64>>,
    held: VecDeque<(usize, f64)>,
    seen: u64,
}

/// How far a value is from normal, in robust standard deviations (positive: above).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub z: f64,
    /// The normal level the value was compared with (in the metric's unit).
    pub normal: f64,
}

fn log(x: f64) -> f64 {
    x.max(0.0).ln_1p()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(0.0),
        _ => (v.get(n / 2 - 1).copied().unwrap_or(0.0) + v.get(n / 2).copied().unwrap_or(0.0)) / 2.0,
    }
}

fn push(q: &mut VecDeque<f64>, cap: usize, x: f64) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(x);
}

impl Baseline {
    /// Scores `x` at hour `hour` (0..24) against what was learned; `None` during warm-up.
    pub fn score(&self, x: f64, hour: usize, warmup: u64) -> Option<Score> {
        if self.seen < warmup || self.recent.is_empty() || !x.is_finite() {
            return None;
        }
        let source = match self.hours.get(hour) {
            Some(h) if h.len() >= HOUR_READY => h,
            _ => &self.recent,
        };
        let mut v: Vec<f64> = source.iter().copied().collect();
        let m = median(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|y| (y - m).abs()).collect();
        let spread = (median(&mut dev) * MAD_SCALE).max(MIN_SPREAD);
        Some(Score { z: (log(x) - m) / spread, normal: m.exp_m1() })
    }

    /// Learns `x` at `hour`.
    pub fn learn(&mut self, x: f64, hour: usize) {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        let y = log(x);
        push(&mut self.recent, RECENT, y);
        if self.hours.len() < 24 {
            self.hours.resize_with(24, VecDeque::new);
        }
        if let Some(h) = self.hours.get_mut(hour % 24) {
            push(h, PER_HOUR, y);
        }
        self.seen = self.seen.saturating_add(1);
    }

    /// Keeps an alarming value aside instead of learning it.
    pub fn hold(&mut self, x: f64, hour: usize) {
        if self.held.len() == HELD {
            self.held.pop_front();
        }
        self.held.push_back((hour, x));
    }

    /// The operator says the alarm was wrong: the held values are normal after all.
    pub fn accept_held(&mut self) {
        while let Some((hour, x)) = self.held.pop_front() {
            self.learn(x, hour);
        }
    }

    /// The alarm cleared on its own: what was held stays out.
    pub fn drop_held(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_flags_a_spike_but_not_noise() {
        let mut b = Baseline::default();
        for i in 0..30 {
            assert_eq!(b.score(40.0, 0, 30), None);
            b.learn(40.0 * (0.8 + 0.4 * f64::from(i % 7) / 6.0), 0);
        }
        let normal = b.score(44.0, 0, 30).unwrap();
        assert!(normal.z.abs() < 3.0, "{normal:?}");
        let spike = b.score(40.0 * 60.0, 0, 30).unwrap();
        assert!(spike.z > 20.0, "{spike:?}");
        assert!((30.0..50.0).contains(&spike.normal), "{spike:?}");
    }

    #[test]
    fn hour_of_day_is_used_once_it_has_values() {
        let mut b = Baseline::default();
        // Nights are quiet (10), noon is busy (1000).
        for _ in 0..20 {
            b.learn(10.0, 2);
            b.learn(1000.0, 12);
        }
        assert!(b.score(1000.0, 12, 10).unwrap().z.abs() < 1.0);
        assert!(b.score(1000.0, 2, 10).unwrap().z > 10.0);
    }

    #[test]
    fn feedback_lets_held_values_in() {
        let mut b = Baseline::default();
        for _ in 0..40 {
            b.learn(10.0, 0);
        }
        for _ in 0..PER_HOUR {
            b.hold(5000.0, 0);
        }
        assert!(b.score(5000.0, 0, 10).unwrap().z > 10.0);
        b.accept_held();
        assert!(b.score(5000.0, 0, 10).unwrap().z < 1.0);
    }
}
