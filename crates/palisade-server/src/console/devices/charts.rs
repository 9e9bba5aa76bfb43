//! The data behind a device page's plots, as pure functions: the time window, the learned
//! baseline band, connects per hour, location fixes and the geofences of the device's profiles.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_core::detect::{Condition, Shape};
use palisade_proto::telemetry::TelemetryV1;
use palisade_store::plane::{Bucket, StoredReport};

use crate::console::plot::Fence;
use crate::detect::ParsedProfile;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// How far back a device page looks: `?window=6h|24h|7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hours6,
    Hours24,
    Days7,
}

impl Window {
    pub const ALL: [Window; 3] = [Self::Hours6, Self::Hours24, Self::Days7];

    /// The window named in the query; the last 24 hours when absent or unknown.
    pub fn parse(s: Option<&str>) -> Self {
        Self::ALL.into_iter().find(|w| Some(w.key()) == s).unwrap_or(Self::Hours24)
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Hours6 => "6h",
            Self::Hours24 => "24h",
            Self::Days7 => "7d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Hours6 => "6 hours",
            Self::Hours24 => "24 hours",
            Self::Days7 => "7 days",
        }
    }

    pub fn span_ms(self) -> i64 {
        match self {
            Self::Hours6 => 6 * HOUR,
            Self::Hours24 => DAY,
            Self::Days7 => 7 * DAY,
        }
    }

    /// Width of one plotted bucket: 180 to 336 points per plot. Divides [`HISTORY_MS`] and
    /// the span, so the window's buckets are a tail of the history's.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Self::Hours6 => 2 * MINUTE,
            Self::Hours24 => 5 * MINUTE,
            Self::Days7 => 30 * MINUTE,
        }
    }
}

/// History the baseline band is learned from: the week up to now, whatever the window shows.
pub const HISTORY_MS: i64 = 7 * DAY;

/// The band spans the median ± this many robust standard deviations.
pub const BAND_K: f64 = 3.0;
/// Values needed before there is a band at all (the detector's default warm-up).
pub const MIN_HISTORY: usize = 30;
/// Values an hour of the day needs before its own statistics replace the whole history's.
const HOUR_READY: usize = 8;
/// Smallest spread in log space (about ±10 %), so a steady device does not get a hairline band.
const MIN_SPREAD: f64 = 0.1;
/// MAD to standard deviation for normal data.
const MAD_SCALE: f64 = 1.4826;

pub fn hour_of_day(at_ms: i64) -> usize {
    usize::try_from(at_ms.rem_euclid(DAY) / HOUR).unwrap_or(0)
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match (n % 2, v.get(n / 2)) {
        (_, None) => None,
        (1, Some(m)) => Some(*m),
        (_, Some(hi)) => v.get(n / 2 - 1).map(|lo| (lo + hi) / 2.0),
    }
}

/// (median, spread) of log values: the spread is the MAD scaled to a standard deviation, at
/// least [`MIN_SPREAD`].
fn robust(v: &[f64]) -> Option<(f64, f64)> {
    let m = median(&mut v.to_vec())?;
    let mut dev: Vec<f64> = v.iter().map(|y| (y - m).abs()).collect();
    let mad = median(&mut dev)?;
    Some((m, (mad * MAD_SCALE).max(MIN_SPREAD)))
}

/// The learned normal range of a metric for each hour of the day (UTC), as (low, high).
///
/// The same statistics as the detector's baseline (`palisade_core::detect::Baseline`), computed
/// over the device's stored history instead of the detector's live state: values are taken in
/// log space (`ln(1 + x)`, so a rate that doubles moves as far at 1 kB/s as at 1 MB/s), the
/// centre is their median and the spread their MAD × 1.4826 (at least 0.1); an hour of the day
/// with at least 8 values uses its own, others the whole history's. The band is
/// `exp(median ± k · spread) − 1`, never below zero. `None` with fewer than [`MIN_HISTORY`]
/// values (no normal learned yet). Median and MAD ignore a minority of outliers, so an ongoing
/// anomaly inside the history widens the band little.
pub fn hourly_band(history: &[(i64, f64)], k: f64) -> Option<Vec<(f64, f64)>> {
    let logs: Vec<(usize, f64)> =
        history.iter().filter(|(_, x)| x.is_finite() && *x >= 0.0).map(|(t, x)| (hour_of_day(*t), x.ln_1p())).collect();
    if logs.len() < MIN_HISTORY {
        return None;
    }
    let all: Vec<f64> = logs.iter().map(|(_, y)| *y).collect();
    let overall = robust(&all)?;
    let band = (0..24)
        .map(|h| {
            let hour: Vec<f64> = logs.iter().filter(|(hh, _)| *hh == h).map(|(_, y)| *y).collect();
            let (m, s) = if hour.len() >= HOUR_READY { robust(&hour).unwrap_or(overall) } else { overall };
            ((m - k * s).exp_m1().max(0.0), (m + k * s).exp_m1())
        })
        .collect();
    Some(band)
}

/// The band at each of `times`, by the hour of day of each.
pub fn band_at(times: impl Iterator<Item = i64>, band: &[(f64, f64)]) -> Vec<(i64, f64, f64)> {
    times.filter_map(|t| band.get(hour_of_day(t)).map(|&(lo, hi)| (t, lo, hi))).collect()
}

/// The averages of two bucketed series added up, bucket by bucket (a bucket only one of them
/// has counts as that one).
pub fn sum_buckets(a: &[Bucket], b: &[Bucket]) -> Vec<(i64, f64)> {
    let mut sum: BTreeMap<i64, f64> = BTreeMap::new();
    for x in a.iter().chain(b) {
        *sum.entry(x.start_ms).or_default() += x.avg;
    }
    sum.into_iter().collect()
}

/// A bucketed series as (start, average), for plotting.
pub fn averages(buckets: &[Bucket]) -> Vec<(i64, f64)> {
    buckets.iter().map(|b| (b.start_ms, b.avg)).collect()
}

/// Events counted per clock hour over `[from_ms, to_ms)`, hours without any included as 0.
pub fn per_hour(events: &[i64], from_ms: i64, to_ms: i64) -> Vec<(i64, f64)> {
    let first = from_ms.div_euclid(HOUR) * HOUR;
    let mut counts: BTreeMap<i64, f64> = BTreeMap::new();
    let mut h = first;
    while h < to_ms {
        counts.insert(h, 0.0);
        h += HOUR;
    }
    for t in events.iter().filter(|t| (from_ms..to_ms).contains(*t)) {
        *counts.entry(t.div_euclid(HOUR) * HOUR).or_default() += 1.0;
    }
    counts.into_iter().collect()
}

/// Location fixes (device time, lat, lon) of stored telemetry reports that carry a valid one.
pub fn fixes(reports: &[StoredReport]) -> Vec<(i64, f64, f64)> {
    reports
        .iter()
        .filter_map(|r| {
            let loc = serde_json::from_str::<TelemetryV1>(&r.payload).ok()?.loc?;
            let valid = (-90.0..=90.0).contains(&loc.lat) && (-180.0..=180.0).contains(&loc.lon);
            valid.then_some((r.at_ms, loc.lat, loc.lon))
        })
        .collect()
}

/// The geofences of the profiles that apply to a device, labelled `profile/rule`. A circle
/// without a centre is around the device's first fix (as the detector has it); `anchor` stands
/// in for that (the registered location, else the earliest fix shown), and without one the
/// circle is left out.
pub fn fences(
    profiles: &[Arc<ParsedProfile>],
    group: Option<&str>,
    model: &str,
    anchor: Option<(f64, f64)>,
) -> Vec<Fence> {
    let mut out = Vec::new();
    for p in profiles.iter().map(|p| &p.profile).filter(|p| p.applies_to(group, Some(model))) {
        for rule in &p.rules {
            let Condition::Geofence { shape } = &rule.condition else { continue };
            let label = format!("{}/{}", p.name, rule.id);
            match shape {
                Shape::Circle { center, radius_km } => {
                    let Some((lat, lon)) = center.map(|c| (c.lat, c.lon)).or(anchor) else { continue };
                    out.push(Fence::Circle { lat, lon, radius_m: radius_km * 1000.0, label });
                }
                Shape::Polygon(points) => {
                    out.push(Fence::Polygon { points: points.iter().map(|p| (p.lat, p.lon)).collect(), label });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use palisade_core::detect::{LatLon, Profile, Response, Rule, Severity};

    use super::*;

    fn at(day: i64, hour: i64, minute: i64) -> i64 {
        1_700_006_400_000 / DAY * DAY + day * DAY + hour * HOUR + minute * MINUTE
    }

    #[test]
    fn windows_parse_and_their_buckets_tile_the_history() {
        assert_eq!(Window::parse(Some("7d")), Window::Days7);
        assert_eq!(Window::parse(Some("1y")), Window::Hours24);
        assert_eq!(Window::parse(None), Window::Hours24);
        for w in Window::ALL {
            assert_eq!(HISTORY_MS % w.bucket_ms(), 0);
            assert_eq!(w.span_ms() % w.bucket_ms(), 0);
            assert!((150..=400).contains(&(w.span_ms() / w.bucket_ms())), "{w:?}");
        }
    }

    #[test]
    fn band_follows_the_hour_of_day_and_ignores_outliers() {
        // A week: quiet nights (about 100 B/s at 02:00), busy noons (about 10 kB/s), one burst.
        let mut history = Vec::new();
        for day in 0..7 {
            for minute in [0, 10, 20, 30, 40, 50] {
                let wobble = 1.0 + 0.05 * ((day + minute) % 3) as f64;
                history.push((at(day, 2, minute), 100.0 * wobble));
                history.push((at(day, 12, minute), 10_000.0 * wobble));
            }
        }
        history.push((at(3, 12, 5), 5e9));
        let band = hourly_band(&history, BAND_K).unwrap();
        assert_eq!(band.len(), 24);
        let (night, noon) = (band[2], band[12]);
        assert!(night.0 < 100.0 && 110.0 < night.1 && night.1 < 300.0, "{night:?}");
        assert!(noon.0 < 10_000.0 && 11_000.0 < noon.1 && noon.1 < 30_000.0, "{noon:?}");
        // An hour never seen uses the whole history: wide, covering both.
        let (lo, hi) = band[7];
        assert!(lo < 100.0 && hi > 10_000.0, "{:?}", band[7]);
        // Steady values still get a band of about ±10 % per deviation, never a hairline.
        let steady: Vec<(i64, f64)> = (0..40).map(|i| (at(0, 5, i), 50.0)).collect();
        let (lo, hi) = hourly_band(&steady, 1.0).unwrap()[5];
        assert!((45.0..47.0).contains(&lo) && (55.0..57.0).contains(&hi), "{lo} {hi}");
    }

    #[test]
    fn band_needs_a_warm_history_and_skips_junk() {
        let few: Vec<(i64, f64)> = (0..29).map(|i| (at(0, 1, i), 10.0)).collect();
        assert_eq!(hourly_band(&few, BAND_K), None);
        let mut junk = few.clone();
        junk.extend([(at(0, 1, 40), f64::NAN), (at(0, 1, 41), -1.0), (at(0, 1, 42), f64::INFINITY)]);
        assert_eq!(hourly_band(&junk, BAND_K), None);
        let zeros: Vec<(i64, f64)> = (0..30).map(|i| (at(0, 1, i), 0.0)).collect();
        let (lo, hi) = hourly_band(&zeros, BAND_K).unwrap()[1];
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 1.0);
        let band = hourly_band(&zeros, BAND_K).unwrap();
        assert_eq!(band_at([at(0, 1, 0), at(0, 2, 30)].into_iter(), &band).len(), 2);
    }

    #[test]
    fn rates_add_up_and_connects_count_per_hour() {
        let b = |start_ms, avg| Bucket { start_ms, count: 1, avg, min: avg, max: avg };
        assert_eq!(sum_buckets(&[b(0, 1.0), b(10, 2.0)], &[b(10, 5.0), b(20, 1.0)]), [(0, 1.0), (10, 7.0), (20, 1.0)]);
        let from = at(0, 9, 30);
        let events = [at(0, 9, 40), at(0, 9, 45), at(0, 11, 1), at(0, 8, 0), at(0, 12, 0)];
        let hours = per_hour(&events, from, at(0, 12, 0));
        assert_eq!(hours, [(at(0, 9, 0), 2.0), (at(0, 10, 0), 0.0), (at(0, 11, 0), 1.0)]);
    }

    #[test]
    fn fixes_come_from_reports_with_a_location() {
        let r = |at_ms, payload: &str| StoredReport {
            received_ms: at_ms,
            at_ms,
            payload: payload.into(),
            tx_bps: None,
            rx_bps: None,
            cpu_pct: None,
            mem_pct: None,
        };
        let reports = [
            r(1, r#"{"v":1,"loc":{"lat":52.5,"lon":13.4}}"#),
            r(2, r#"{"v":1,"sys":{"cpu_pct":3}}"#),
            r(3, "not json"),
            r(4, r#"{"v":1,"loc":{"lat":95,"lon":0}}"#),
        ];
        assert_eq!(fixes(&reports), [(1, 52.5, 13.4)]);
    }

    #[test]
    fn geofences_of_applicable_profiles() {
        let rule = |id: &str, shape| Rule {
            id: id.into(),
            condition: Condition::Geofence { shape },
            severity: Severity::High,
            response: Response::AlertOnly,
            dry_run: false,
            alarm_after: 1,
            clear_after: 1,
            auto_resolve: true,
        };
        let profile = |name: &str, groups: Vec<String>, rules| {
            Arc::new(ParsedProfile {
                profile: Profile { name: name.into(), groups, models: vec![], rules },
                escalation: None,
            })
        };
        let site = LatLon { lat: 52.0, lon: 13.0 };
        let square = vec![site, LatLon { lat: 53.0, lon: 13.0 }, LatLon { lat: 53.0, lon: 14.0 }];
        let profiles = [
            profile(
                "yard",
                vec!["trackers".into()],
                vec![
                    rule("home", Shape::Circle { center: None, radius_km: 2.0 }),
                    rule("area", Shape::Polygon(square)),
                ],
            ),
            profile("hq", vec![], vec![rule("hq", Shape::Circle { center: Some(site), radius_km: 0.5 })]),
            profile(
                "other",
                vec!["meters".into()],
                vec![rule("x", Shape::Circle { center: Some(site), radius_km: 1.0 })],
            ),
        ];
        let f = fences(&profiles, Some("trackers"), "tracker-5", Some((48.0, 11.0)));
        assert_eq!(f.len(), 3);
        assert_eq!(f[0], Fence::Circle { lat: 48.0, lon: 11.0, radius_m: 2000.0, label: "yard/home".into() });
        assert!(matches!(&f[1], Fence::Polygon { points, label } if points.len() == 3 && label == "yard/area"));
        assert_eq!(f[2], Fence::Circle { lat: 52.0, lon: 13.0, radius_m: 500.0, label: "hq/hq".into() });
        // Without an anchor a centreless circle cannot be drawn.
        assert_eq!(fences(&profiles, Some("trackers"), "tracker-5", None).len(), 2);
    }
}
