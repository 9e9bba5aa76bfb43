//! Detection, sans I/O: what a device does ([`Observation`]s) against what its security profiles
//! say ([`Rule`]s), one observation at a time, giving [`Signal`]s (an alarm raised or cleared).
//!
//! The [`Engine`] keeps each device's state in memory: counters of consecutive abnormal and
//! normal datapoints per rule, learned baselines, the last fix, the SIM binding, recent
//! connections. Time comes in with the observations (device time for what the device measured,
//! server time for arrivals and connections) and through [`Engine::expire`] for rules that fire
//! on absence, so everything here is deterministic. Memory per device is bounded.

pub mod alert;
pub mod baseline;
pub mod geo;
pub mod rules;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

pub use baseline::Baseline;
pub use geo::LatLon;
pub use rules::{Cidr, Condition, Metric, Profile, Response, Rule, Set, SetField, SetKind, Severity, Shape};

/// The facts of one telemetry report that rules look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// When the device took it (its clock, never later than arrival).
    pub at_ms: i64,
    /// When it arrived (server clock).
    pub received_ms: i64,
    pub tx_bps: Option<f64>,
    pub rx_bps: Option<f64>,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    /// Failed logins since the previous report.
    pub failed_logins: Option<u64>,
    /// `None`: the report has no `net` section.
    pub listening: Option<Vec<u16>>,
    pub destinations: Option<Vec<Destination>>,
    pub fw_version: Option<String>,
    pub fw_digest: Option<String>,
    pub secure_boot: Option<bool>,
    pub debug_enabled: Option<bool>,
    pub default_credentials: Option<bool>,
    pub iccid: Option<String>,
    pub imei: Option<String>,
    pub cell_network: Option<String>,
    pub fix: Option<Fix>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// As reported: an address, or a name that is not one.
    pub dst: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub at: LatLon,
    /// Accuracy radius in metres.
    pub acc_m: f64,
}

impl Report {
    fn metric(&self, m: Metric) -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "login counts are small")]
        match m {
            Metric::TxBps => self.tx_bps,
            Metric::RxBps => self.rx_bps,
            Metric::CpuPct => self.cpu_pct,
            Metric::MemPct => self.mem_pct,
            Metric::FailedLogins => self.failed_logins.map(|n| n as f64),
        }
        .filter(|v| v.is_finite())
    }
}

/// Security events the device plane records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    CertificateTwoPlaces,
    UnauthorizedTopic,
}

/// Something a device did.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Report(Box<Report>),
    Connected {
        at_ms: i64,
        ip: String,
    },
    /// A session ended; `by_device` when the device ended it (not a takeover, revocation or
    /// shutdown on our side); `graceful` when it said goodbye (MQTT DISCONNECT): a device that
    /// signed off is offline, not silent, until it is back.
    Disconnected {
        at_ms: i64,
        duration_ms: i64,
        by_device: bool,
        graceful: bool,
    },
    Event {
        at_ms: i64,
        event: Event,
        detail: String,
    },
}

impl Observation {
    /// Server time of the observation.
    pub fn at_ms(&self) -> i64 {
        match self {
            Self::Report(r) => r.received_ms,
            Self::Connected { at_ms, .. } | Self::Disconnected { at_ms, .. } | Self::Event { at_ms, .. } => *at_ms,
        }
    }
}

/// A rule's alarm raised or cleared on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub profile: String,
    pub rule: String,
    pub raised: bool,
    pub severity: Severity,
    pub response: Response,
    pub dry_run: bool,
    pub auto_resolve: bool,
    pub title: String,
    pub detail: String,
    /// Server time.
    pub at_ms: i64,
}

/// The outcome of one rule on one observation.
enum Eval {
    /// The observation says nothing about this rule.
    Silent,
    Normal,
    /// Abnormal: counts towards `alarm_after`.
    Abnormal(String),
    /// An occurrence: raises at once, every time (alerts count them).
    Occurred(String),
}

#[derive(Debug, Clone, Default)]
struct RuleState {
    alarming: bool,
    hits: u32,
    misses: u32,
    baseline: Option<Baseline>,
}

/// Recent arrivals kept to learn the usual reporting interval.
const GAPS: usize = 16;
/// Connections and failed-login counts remembered at most per device.
const RECENT_EVENTS: usize = 256;
/// Firmware versions remembered per device.
const FIRMWARE_VERSIONS: usize = 16;

/// Everything the engine remembers about one device.
#[derive(Debug, Clone, Default)]
pub struct DeviceState {
    rules: HashMap<String, RuleState>,
    last_received_ms: Option<i64>,
    /// Signed off (graceful disconnect) and not back yet: absence rules wait.
    signed_off: bool,
    gaps: VecDeque<i64>,
    connects: VecDeque<i64>,
    logins: VecDeque<(i64, u64)>,
    last_fix: Option<(i64, Fix)>,
    anchor: Option<LatLon>,
    binding: Option<(String, String)>,
    firmware: VecDeque<(String, String)>,
    newest_firmware: Option<String>,
}

impl DeviceState {
    /// The usual interval between reports (the median of the recent ones), once one is known.
    fn usual_interval(&self) -> Option<i64> {
        let mut g: Vec<i64> = self.gaps.iter().copied().collect();
        g.sort_unstable();
        g.get(g.len() / 2).copied()
    }

    /// When an inactivity rule fires unless a report arrives first.
    fn silent_deadline(&self, factor: f64, min_ms: i64) -> Option<i64> {
        if self.signed_off {
            return None;
        }
        let last = self.last_received_ms?;
        let usual = self.usual_interval()?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, reason = "bounded by validation")]
        let wait = ((usual as f64) * factor).min(1e15) as i64;
        Some(last.saturating_add(wait.max(min_ms)))
    }
}

/// Keeps the most recent `cap` items.
fn push_capped<T>(q: &mut VecDeque<T>, cap: usize, v: T) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

/// One fleet-relative statistic: the latest value of each device, and the percentile of them
/// as of the last computation.
#[derive(Debug, Clone, Default)]
struct FleetMetric {
    latest: HashMap<String, f64>,
    cached: Option<(i64, f64)>,
}

/// How often a fleet percentile is computed again.
const FLEET_REFRESH_MS: i64 = 60_000;
/// Devices a fleet statistic remembers at most.
const FLEET_DEVICES: usize = 1_000_000;

impl FleetMetric {
    fn percentile(&mut self, p: f64, now_ms: i64) -> Option<f64> {
        if let Some((at, v)) = self.cached
            && now_ms.saturating_sub(at) < FLEET_REFRESH_MS
        {
            return Some(v);
        }
        let mut v: Vec<f64> = self.latest.values().copied().collect();
        v.sort_by(f64::total_cmp);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let idx = ((p / 100.0) * (v.len().saturating_sub(1)) as f64).round() as usize;
        let value = *v.get(idx)?;
        self.cached = Some((now_ms, value));
        Some(value)
    }
}

/// Per-device state of many devices, and the fleet statistics their rules compare with.
#[derive(Debug, Default)]
pub struct Engine {
    devices: HashMap<String, DeviceState>,
    fleet: HashMap<String, FleetMetric>,
}

/// A device's rules: its profiles' names with their rules.
pub type Rules<'a> = &'a [std::sync::Arc<Profile>];

fn key(profile: &str, rule: &str) -> String {
    format!("{profile}/{rule}")
}

impl Engine {
    pub fn device_ids(&self) -> impl Iterator<Item = &String> {
        self.devices.keys()
    }

    /// The server starts again at `now_ms` after rebuilding state from stored facts: absence
    /// is counted from now, so a fleet that reconnects after a restart is not reported silent.
    pub fn resume(&mut self, now_ms: i64) {
        for state in self.devices.values_mut() {
            if let Some(last) = &mut state.last_received_ms {
                *last = (*last).max(now_ms);
            }
        }
    }

    /// Evaluates every rule of `profiles` on what `device` did.
    pub fn observe(&mut self, device: &str, profiles: Rules<'_>, obs: &Observation) -> Vec<Signal> {
        let mut state = self.devices.remove(device).unwrap_or_default();
        let mut out = Vec::new();
        for profile in profiles {
            for rule in &profile.rules {
                let k = key(&profile.name, &rule.id);
                let fleet = match &rule.condition {
                    Condition::FleetPercentile { .. } => Some(self.fleet.entry(k.clone()).or_default()),
                    _ => None,
                };
                let eval = evaluate(&mut state, &k, &rule.condition, obs, device, fleet);
                if let Some(s) = transition(&mut state, &k, &profile.name, rule, eval, obs.at_ms()) {
                    out.push(s);
                }
            }
        }
        learn(&mut state, obs);
        self.devices.insert(device.to_owned(), state);
        out
    }

    /// The earliest time an absence rule of `device` fires if nothing arrives before.
    pub fn deadline(&self, device: &str, profiles: Rules<'_>) -> Option<i64> {
        let state = self.devices.get(device)?;
        let mut earliest: Option<i64> = None;
        for profile in profiles {
            for rule in &profile.rules {
                if let Condition::Inactivity { factor, min_ms } = rule.condition {
                    let alarming = state.rules.get(&key(&profile.name, &rule.id)).is_some_and(|r| r.alarming);
                    if let (false, Some(d)) = (alarming, state.silent_deadline(factor, min_ms)) {
                        earliest = Some(earliest.map_or(d, |e| e.min(d)));
                    }
                }
            }
        }
        earliest
    }

    /// Fires the absence rules of `device` whose time has come by `now_ms`.
    pub fn expire(&mut self, device: &str, profiles: Rules<'_>, now_ms: i64) -> Vec<Signal> {
        let Some(state) = self.devices.get_mut(device) else { return Vec::new() };
        let mut out = Vec::new();
        for profile in profiles {
            for rule in &profile.rules {
                let Condition::Inactivity { factor, min_ms } = rule.condition else { continue };
                let k = key(&profile.name, &rule.id);
                let Some(deadline) = state.silent_deadline(factor, min_ms) else { continue };
                if now_ms < deadline || state.rules.get(&k).is_some_and(|r| r.alarming) {
                    continue;
                }
                let silent_s = now_ms.saturating_sub(state.last_received_ms.unwrap_or(now_ms)) / 1000;
                let usual_s = state.usual_interval().unwrap_or(0) / 1000;
                let detail = format!("no report for {silent_s} s (usually every {usual_s} s)");
                let r = state.rules.entry(k).or_default();
                r.alarming = true;
                out.push(signal(&profile.name, rule, true, detail, now_ms));
            }
        }
        out
    }

    /// The operator marked an alert of `profile`/`rule` on `device` a false positive: a learned
    /// baseline takes the values it alarmed on as normal.
    pub fn false_positive(&mut self, device: &str, profile: &str, rule: &str) {
        if let Some(r) = self.devices.get_mut(device).and_then(|s| s.rules.get_mut(&key(profile, rule)))
            && let Some(b) = &mut r.baseline
        {
            b.accept_held();
        }
    }
}

fn signal(profile: &str, rule: &Rule, raised: bool, detail: String, at_ms: i64) -> Signal {
    Signal {
        profile: profile.to_owned(),
        rule: rule.id.clone(),
        raised,
        severity: rule.severity,
        response: rule.response,
        dry_run: rule.dry_run,
        auto_resolve: rule.auto_resolve,
        title: rule.condition.title(),
        detail,
        at_ms,
    }
}

/// Counts consecutive datapoints and decides whether the alarm is raised or cleared now.
fn transition(state: &mut DeviceState, k: &str, profile: &str, rule: &Rule, eval: Eval, at_ms: i64) -> Option<Signal> {
    let r = state.rules.entry(k.to_owned()).or_default();
    match eval {
        Eval::Silent => None,
        Eval::Occurred(detail) => Some(signal(profile, rule, true, detail, at_ms)),
        Eval::Abnormal(detail) => {
            r.misses = 0;
            r.hits = r.hits.saturating_add(1);
            if !r.alarming && r.hits >= rule.alarm_after.max(1) {
                r.alarming = true;
                return Some(signal(profile, rule, true, detail, at_ms));
            }
            None
        }
        Eval::Normal => {
            r.hits = 0;
            if !r.alarming {
                return None;
            }
            r.misses = r.misses.saturating_add(1);
            if r.misses >= rule.clear_after.max(1) {
                r.alarming = false;
                r.misses = 0;
                if let Some(b) = &mut r.baseline {
                    b.drop_held();
                }
                return Some(signal(profile, rule, false, "back to normal".into(), at_ms));
            }
            None
        }
    }
}

fn hour_of_day(at_ms: i64) -> usize {
    usize::try_from(at_ms.rem_euclid(86_400_000) / 3_600_000).unwrap_or(0)
}

fn in_set(set: &Set, value: &str) -> bool {
    match set {
        Set::Strings(v) => v.iter().any(|s| s == value),
        Set::Ports(ranges) => value.parse::<u16>().is_ok_and(|p| ranges.iter().any(|&(a, b)| (a..=b).contains(&p))),
        Set::Cidrs(nets) => value.parse::<IpAddr>().is_ok_and(|ip| nets.iter().any(|n| n.contains(ip))),
    }
}

/// The values of `field` in a report, or `None` when the report does not say.
fn field_values(r: &Report, field: SetField) -> Option<Vec<String>> {
    let one = |v: &Option<String>| v.as_ref().map(|v| vec![v.clone()]);
    match field {
        SetField::ListeningPort => r.listening.as_ref().map(|l| l.iter().map(u16::to_string).collect()),
        SetField::Destination => r.destinations.as_ref().map(|d| d.iter().map(|d| d.dst.clone()).collect()),
        SetField::DestinationPort => r.destinations.as_ref().map(|d| d.iter().map(|d| d.port.to_string()).collect()),
        SetField::FirmwareDigest => one(&r.fw_digest),
        SetField::FirmwareVersion => one(&r.fw_version),
        SetField::Imei => one(&r.imei),
        SetField::Iccid => one(&r.iccid),
        SetField::CellNetwork => one(&r.cell_network),
    }
}

/// Compares dotted versions number by number (`1.10.0` > `1.9.3`); other parts as text.
fn older_version(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-', '+'])
            .map(|p| {
                (p.parse::<u64>().unwrap_or(0), if p.parse::<u64>().is_ok() { String::new() } else { p.to_owned() })
            })
            .collect()
    };
    parts(a) < parts(b)
}

fn evaluate(
    state: &mut DeviceState,
    k: &str,
    cond: &Condition,
    obs: &Observation,
    device: &str,
    fleet: Option<&mut FleetMetric>,
) -> Eval {
    match (cond, obs) {
        (Condition::Threshold { metric, above, value }, Observation::Report(r)) => match r.metric(*metric) {
            Some(x) if (*above && x > *value) || (!*above && x < *value) => {
                Eval::Abnormal(format!("{} = {x:.1} ({} {value})", metric.as_str(), if *above { ">" } else { "<" }))
            }
            Some(_) => Eval::Normal,
            None => Eval::Silent,
        },
        (Condition::Membership { field, in_set: want_in, set }, Observation::Report(r)) => {
            let Some(values) = field_values(r, *field) else { return Eval::Silent };
            let bad: Vec<&String> = values.iter().filter(|v| in_set(set, v) == *want_in).collect();
            match bad.first() {
                None => Eval::Normal,
                Some(_) => {
                    let list: Vec<&str> = bad.iter().take(8).map(|s| s.as_str()).collect();
                    let what = if *want_in { "in the forbidden set" } else { "outside the allowed set" };
                    Eval::Abnormal(format!("{} {} {what}", field.as_str(), list.join(", ")))
                }
            }
        }
        (Condition::Baseline { metric, sensitivity, warmup, min_value }, Observation::Report(r)) => {
            let Some(x) = r.metric(*metric) else { return Eval::Silent };
            let hour = hour_of_day(r.at_ms);
            let rs = state.rules.entry(k.to_owned()).or_default();
            let b = rs.baseline.get_or_insert_with(Baseline::default);
            match b.score(x, hour, *warmup) {
                Some(s) if s.z > *sensitivity && x >= *min_value => {
                    b.hold(x, hour);
                    Eval::Abnormal(format!(
                        "{} = {x:.0}, usually about {:.0} at this hour ({:.1} robust deviations)",
                        metric.as_str(),
                        s.normal,
                        s.z
                    ))
                }
                score => {
                    if !rs.alarming {
                        b.learn(x, hour);
                    }
                    if score.is_some() { Eval::Normal } else { Eval::Silent }
                }
            }
        }
        (Condition::FleetPercentile { metric, percentile, factor, min_devices }, Observation::Report(r)) => {
            let (Some(x), Some(fleet)) = (r.metric(*metric), fleet) else { return Eval::Silent };
            if fleet.latest.len() < FLEET_DEVICES || fleet.latest.contains_key(device) {
                fleet.latest.insert(device.to_owned(), x);
            }
            if fleet.latest.len() < *min_devices {
                return Eval::Silent;
            }
            match fleet.percentile(*percentile, r.received_ms) {
                Some(p) if x > p * factor => Eval::Abnormal(format!(
                    "{} = {x:.0}, {factor}× above the fleet's p{percentile} ({p:.0})",
                    metric.as_str()
                )),
                Some(_) => Eval::Normal,
                None => Eval::Silent,
            }
        }
        (Condition::Geofence { shape }, Observation::Report(r)) => {
            let Some(fix) = r.fix else { return Eval::Silent };
            let slack_km = fix.acc_m.max(0.0) / 1000.0;
            let outside = match shape {
                Shape::Circle { center, radius_km } => {
                    let Some(c) = center.or(state.anchor) else { return Eval::Silent };
                    let d = geo::distance_km(c, fix.at);
                    (d - slack_km > *radius_km).then(|| format!("{d:.1} km from its centre (fence {radius_km} km)"))
                }
                Shape::Polygon(ring) => (!geo::in_polygon(fix.at, ring)).then(|| "outside its area".to_owned()),
            };
            match outside {
                Some(d) => Eval::Abnormal(format!("at {:.5}, {:.5}: {d}", fix.at.lat, fix.at.lon)),
                None => Eval::Normal,
            }
        }
        (Condition::ImpossibleTravel { max_kmh, min_km }, Observation::Report(r)) => {
            let (Some(fix), Some((prev_at, prev))) = (r.fix, state.last_fix) else { return Eval::Silent };
            let dt_h = (r.at_ms.saturating_sub(prev_at)) as f64 / 3_600_000.0;
            let d = geo::distance_km(prev.at, fix.at) - (prev.acc_m.max(0.0) + fix.acc_m.max(0.0)) / 1000.0;
            if dt_h < 0.0 {
                return Eval::Silent;
            }
            if d > *min_km && (dt_h == 0.0 || d / dt_h > *max_kmh) {
                let speed = if dt_h > 0.0 { format!("{:.0} km/h", d / dt_h) } else { "at once".into() };
                Eval::Occurred(format!("{d:.0} km in {:.0} s ({speed})", dt_h * 3600.0))
            } else {
                Eval::Normal
            }
        }
        (Condition::SimBinding, Observation::Report(r)) => match (&r.iccid, &r.imei, &state.binding) {
            (Some(iccid), Some(imei), Some((b_iccid, b_imei))) if iccid != b_iccid || imei != b_imei => {
                let what = if iccid == b_iccid {
                    format!("SIM {iccid} now in modem IMEI {imei} (was {b_imei})")
                } else if imei == b_imei {
                    format!("modem IMEI {imei} now has SIM {iccid} (was {b_iccid})")
                } else {
                    format!("SIM and modem both changed: ICCID {iccid}, IMEI {imei}")
                };
                Eval::Occurred(what)
            }
            (Some(_), Some(_), _) => Eval::Normal,
            _ => Eval::Silent,
        },
        (Condition::Inactivity { .. }, Observation::Report(_)) => Eval::Normal,
        (Condition::Flapping { connects, window_ms }, Observation::Connected { .. } | Observation::Report(_)) => {
            let now = obs.at_ms();
            let recent = state.connects.iter().filter(|&&t| now.saturating_sub(t) <= *window_ms).count()
                + usize::from(matches!(obs, Observation::Connected { .. }));
            if recent >= *connects {
                Eval::Abnormal(format!("{recent} connections within {} s", window_ms / 1000))
            } else {
                Eval::Normal
            }
        }
        (Condition::SessionDuration { min_ms }, Observation::Disconnected { duration_ms, by_device: true, .. }) => {
            if duration_ms < min_ms {
                Eval::Abnormal(format!("session ended after {duration_ms} ms (expected at least {min_ms} ms)"))
            } else {
                Eval::Normal
            }
        }
        (Condition::FailedLogins { count, window_ms }, Observation::Report(r)) => {
            let Some(n) = r.failed_logins else { return Eval::Silent };
            let total: u64 = state
                .logins
                .iter()
                .filter(|(t, _)| r.at_ms.saturating_sub(*t) < *window_ms)
                .map(|(_, n)| *n)
                .fold(n, u64::saturating_add);
            if total >= *count {
                Eval::Abnormal(format!("{total} failed logins within {} s", window_ms / 1000))
            } else {
                Eval::Normal
            }
        }
        (Condition::FirmwareIntegrity, Observation::Report(r)) => {
            let (Some(version), Some(digest)) = (&r.fw_version, &r.fw_digest) else { return Eval::Silent };
            match state.firmware.iter().find(|(v, _)| v == version) {
                Some((_, known)) if known != digest => {
                    Eval::Occurred(format!("firmware {version} now has digest {digest} (was {known})"))
                }
                _ => Eval::Normal,
            }
        }
        (Condition::FirmwareDowngrade, Observation::Report(r)) => {
            let Some(version) = &r.fw_version else { return Eval::Silent };
            match &state.newest_firmware {
                Some(newest) if older_version(version, newest) => {
                    Eval::Abnormal(format!("runs firmware {version}, older than {newest} it ran before"))
                }
                _ => Eval::Normal,
            }
        }
        (Condition::CertificateTwoPlaces, Observation::Event { event: Event::CertificateTwoPlaces, detail, .. })
        | (Condition::UnauthorizedTopic, Observation::Event { event: Event::UnauthorizedTopic, detail, .. }) => {
            Eval::Occurred(detail.clone())
        }
        (Condition::Posture, Observation::Report(r)) => {
            let mut bad = Vec::new();
            if r.secure_boot == Some(false) {
                bad.push("secure boot off");
            }
            if r.debug_enabled == Some(true) {
                bad.push("debug enabled");
            }
            if r.default_credentials == Some(true) {
                bad.push("default credentials");
            }
            if bad.is_empty() {
                if r.secure_boot.is_some() || r.debug_enabled.is_some() || r.default_credentials.is_some() {
                    Eval::Normal
                } else {
                    Eval::Silent
                }
            } else {
                Eval::Abnormal(bad.join(", "))
            }
        }
        _ => Eval::Silent,
    }
}

/// What the device's state learns from an observation once every rule has seen it.
fn learn(state: &mut DeviceState, obs: &Observation) {
    match obs {
        Observation::Report(r) => {
            if let Some(last) = state.last_received_ms {
                let gap = r.received_ms.saturating_sub(last);
                if gap > 0 {
                    push_capped(&mut state.gaps, GAPS, gap);
                }
            }
            state.last_received_ms = Some(state.last_received_ms.map_or(r.received_ms, |l| l.max(r.received_ms)));
            state.signed_off = false;
            if let Some(n) = r.failed_logins.filter(|n| *n > 0) {
                push_capped(&mut state.logins, RECENT_EVENTS, (r.at_ms, n));
            }
            if let Some(fix) = r.fix {
                if state.anchor.is_none() {
                    state.anchor = Some(fix.at);
                }
                if state.last_fix.is_none_or(|(at, _)| r.at_ms >= at) {
                    state.last_fix = Some((r.at_ms, fix));
                }
            }
            if let (Some(iccid), Some(imei)) = (&r.iccid, &r.imei) {
                state.binding = Some((iccid.clone(), imei.clone()));
            }
            if let (Some(version), Some(digest)) = (&r.fw_version, &r.fw_digest) {
                state.firmware.retain(|(v, _)| v != version);
                push_capped(&mut state.firmware, FIRMWARE_VERSIONS, (version.clone(), digest.clone()));
            }
            if let Some(version) = &r.fw_version
                && state.newest_firmware.as_ref().is_none_or(|n| older_version(n, version))
            {
                state.newest_firmware = Some(version.clone());
            }
        }
        Observation::Connected { at_ms, .. } => push_capped(&mut state.connects, RECENT_EVENTS, *at_ms),
        Observation::Disconnected { graceful, .. } => state.signed_off = *graceful,
        Observation::Event { .. } => {}
    }
}

#[cfg(test)]
mod tests;
