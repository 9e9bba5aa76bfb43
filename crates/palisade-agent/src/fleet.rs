//! The fleet simulator's behaviour model, sans I/O: virtual devices ([`VirtualDevice`]) that report
//! realistic Telemetry v1 for their [`Profile`] and, when a [`Scenario`] says so, behave as
//! compromised devices do. Time (`now_ms`, Unix ms) and a seed are passed in: the same seed and
//! times give the same reports.
//!
//! Scenario file (TOML; unknown keys are refused and errors name the key, e.g. `attack[2].at`):
//!
//! ```toml
//! [[attack]]
//! device = 3             # index of the simulated device (0-based)
//! kind = "exfiltration"  # an AttackKind in snake_case
//! at = "5m"              # offset from the start of the run: "90s", "5m", "1h"
//! duration = "2m"        # optional, default per kind; refused for kinds that last or happen once
//!
//! [update]                       # firmware updates (the `update` command)
//! health_fail = 0.1              # fraction of devices whose health check fails (0.0–1.0), chosen
//! health_fail_version = "3.3.0"  # by device index and seed; only for this version (absent: any)
//! ```

use palisade_proto::telemetry::{Auth, Cell, Connection, Firmware, Listening, Loc, Net, Sys, TelemetryV1};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const MAX_COUNTER: u64 = i64::MAX as u64;
/// Where a tracker's depot and the fixed devices are (around Chicago), and where an impossible
/// traveller suddenly reports from (Frankfurt, about 7 000 km away).
const HOME: (f64, f64) = (41.8781, -87.6298);
const FAR_AWAY: (f64, f64) = (50.1109, 8.6821);
/// A tracker drives loops of this radius around its depot at vehicle speed.
const LOOP_RADIUS_KM: f64 = 15.0;
const VEHICLE_KMH: f64 = 50.0;
/// A stolen device is driven away at motorway speed during a geofence breach.
const THIEF_KMH: f64 = 130.0;

/// What kind of device is simulated; each has its own baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    SmartMeter,
    AssetTracker,
    Camera,
    Gateway,
}

struct Baseline {
    /// Upload and download (bytes/s), CPU and memory (%), around which the day swings.
    load: [f64; 4],
    listening: &'static [u16],
    destinations: &'static [(&'static str, &'static str, u16)],
    /// The current firmware version and an older one.
    firmware: [&'static str; 2],
    /// The modem's type allocation code (the IMEI's first 8 digits) and radio access technology.
    modem: [&'static str; 2],
}

impl Profile {
    pub const ALL: [Self; 4] = [Self::SmartMeter, Self::AssetTracker, Self::Camera, Self::Gateway];

    /// The profile of device `index` in a mixed fleet (round robin: meter, tracker, camera, gateway).
    pub fn for_index(index: usize) -> Self {
        Self::ALL.get(index % Self::ALL.len()).copied().unwrap_or(Self::SmartMeter)
    }

    fn baseline(self) -> Baseline {
        const PLATFORM: (&str, &str, u16) = ("tcp", "198.51.100.10", 8883);
        const CDN: (&str, &str, u16) = ("tcp", "198.51.100.20", 443);
        match self {
            Self::SmartMeter => Baseline {
                load: [40.0, 15.0, 3.0, 28.0],
                listening: &[],
                destinations: &[PLATFORM],
                firmware: ["3.2.1", "3.1.4"],
                modem: ["35847209", "nb-iot"],
            },
            Self::AssetTracker => Baseline {
                load: [150.0, 40.0, 8.0, 35.0],
                listening: &[],
                destinations: &[PLATFORM, CDN],
                firmware: ["2.8.0", "2.6.3"],
                modem: ["86523104", "lte-m"],
            },
            Self::Camera => Baseline {
                load: [250_000.0, 4_000.0, 35.0, 60.0],
                listening: &[443, 554],
                destinations: &[PLATFORM, ("tcp", "198.51.100.30", 443)],
                firmware: ["5.4.2", "5.1.0"],
                modem: ["35921610", "lte"],
            },
            Self::Gateway => Baseline {
                load: [20_000.0, 60_000.0, 20.0, 50.0],
                listening: &[443, 8883],
                destinations: &[PLATFORM, CDN, ("udp", "198.51.100.40", 123)],
                firmware: ["1.9.3", "1.7.0"],
                modem: ["86714805", "lte"],
            },
        }
    }
}

/// An attack pattern a compromised device shows (names in snake_case, as in scenario files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// Upload rate ×50–100 for the duration.
    Exfiltration,
    /// The SIM moves to another modem: the IMEI changes (and stays), the ICCID does not.
    SimSwap,
    /// The device is driven away from its usual area during the duration, and stays there.
    GeofenceBreach,
    /// Reports come from thousands of km away during the duration (a clone elsewhere).
    ImpossibleTravel,
    /// Telnet (23/tcp) listens during the duration.
    NewListeningPort,
    /// A connection to 203.0.113.66:4444 during the duration.
    UnexpectedDestination,
    /// [`Action::Reconnect`] on every tick of the duration.
    ConnectionFlapping,
    /// 50–200 failed logins per interval during the duration.
    FailedLoginBurst,
    /// One [`Action::CloneConnect`]: a second connection with the same certificate.
    ClonedCertificate,
    /// No report during the duration.
    GoingSilent,
    /// Same firmware version, another digest (and it stays).
    FirmwareDigestMismatch,
    /// An older firmware version with its own digest (and it stays).
    FirmwareDowngrade,
}

impl AttackKind {
    pub const ALL: [Self; 12] = [
        Self::Exfiltration,
        Self::SimSwap,
        Self::GeofenceBreach,
        Self::ImpossibleTravel,
        Self::NewListeningPort,
        Self::UnexpectedDestination,
        Self::ConnectionFlapping,
        Self::FailedLoginBurst,
        Self::ClonedCertificate,
        Self::GoingSilent,
        Self::FirmwareDigestMismatch,
        Self::FirmwareDowngrade,
    ];

    /// How long the attack lasts unless the scenario says; `None` for kinds that, once started,
    /// last (SIM swap, firmware) or happen once (cloned certificate).
    pub fn default_duration_ms(self) -> Option<i64> {
        match self {
            Self::SimSwap | Self::ClonedCertificate | Self::FirmwareDigestMismatch | Self::FirmwareDowngrade => None,
            Self::ImpossibleTravel | Self::Exfiltration | Self::FailedLoginBurst => Some(2 * MINUTE_MS),
            Self::ConnectionFlapping => Some(3 * MINUTE_MS),
            Self::NewListeningPort | Self::UnexpectedDestination | Self::GoingSilent => Some(5 * MINUTE_MS),
            Self::GeofenceBreach => Some(30 * MINUTE_MS),
        }
    }
}

/// An attack planned for one device: `at_ms` after the device's start, for `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledAttack {
    pub kind: AttackKind,
    pub at_ms: i64,
    pub duration_ms: Option<i64>,
}

/// One line of the simulator's `--report`: which device was attacked how, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttackRecord {
    pub device_index: usize,
    pub kind: AttackKind,
    pub at_ms: i64,
}

/// What the runtime must do on the network besides publishing the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drop the MQTT connection and connect again (connection flapping).
    Reconnect,
    /// Open a second connection with this device's certificate (cloned certificate).
    CloneConnect,
    /// Publish nothing this tick (going silent).
    Silent,
}

/// The outcome of one tick: the report to publish (if any) and network actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub report: Option<TelemetryV1>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
struct Armed {
    attack: ScheduledAttack,
    fired: bool,
}

/// One simulated device: its identity, counters since boot, sequence number and attacks.
#[derive(Debug, Clone)]
pub struct VirtualDevice {
    profile: Profile,
    start_ms: i64,
    rng: SplitMix64,
    seq: i64,
    last_ms: i64,
    boot_ms: i64,
    boot_id: String,
    tx_bytes: u64,
    rx_bytes: u64,
    home: (f64, f64),
    /// Where on its loop a tracker starts, and where a thief drives to (radians).
    phase: f64,
    bearing: f64,
    iccid: String,
    imsi: String,
    imei: String,
    swapped_imei: String,
    attacks: Vec<Armed>,
    /// Firmware installed by an update: version and image SHA-256 (hex).
    installed: Option<(String, String)>,
}

impl VirtualDevice {
    pub fn new(index: usize, profile: Profile, seed: u64, start_ms: i64) -> Self {
        let mut rng = SplitMix64(seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let Baseline { load: [tx_bps, rx_bps, ..], modem: [tac, _], .. } = profile.baseline();
        let uptime_ms = 3_600_000_i64.saturating_add(i64::try_from(rng.below(13 * 86_400_000)).unwrap_or(0));
        let uptime_s = millis_to_s(uptime_ms);
        Self {
            profile,
            start_ms,
            seq: 0,
            last_ms: start_ms,
            boot_ms: start_ms.saturating_sub(uptime_ms),
            boot_id: uuid(&mut rng),
            tx_bytes: add_bytes(0, tx_bps * uptime_s * 0.8),
            rx_bytes: add_bytes(0, rx_bps * uptime_s * 0.8),
            home: (HOME.0 + (rng.unit() - 0.5) * 0.4, HOME.1 + (rng.unit() - 0.5) * 0.6),
            phase: rng.unit() * std::f64::consts::TAU,
            bearing: rng.unit() * std::f64::consts::TAU,
            iccid: with_luhn(format!("891410{}", digits(&mut rng, 12))),
            imsi: format!("310410{}", digits(&mut rng, 9)),
            imei: with_luhn(format!("{tac}{}", digits(&mut rng, 6))),
            swapped_imei: with_luhn(format!("35332811{}", digits(&mut rng, 6))),
            attacks: Vec::new(),
            installed: None,
            rng,
        }
    }

    /// An update committed `version` (image SHA-256 `sha256`): reports name it from now on.
    pub fn install_firmware(&mut self, version: &str, sha256: &str) {
        self.installed = Some((version.to_owned(), format!("sha256:{sha256}")));
    }

    /// Plans attacks (times relative to `start_ms`), e.g. from [`Scenario::for_device`].
    pub fn schedule(&mut self, attacks: impl IntoIterator<Item = ScheduledAttack>) {
        self.attacks.extend(attacks.into_iter().map(|attack| Armed { attack, fired: false }));
    }

    /// The device's state at `now_ms`: counters advance by the time since the last tick.
    pub fn report(&mut self, now_ms: i64) -> Tick {
        let b = self.profile.baseline();
        let ([tx_bps, rx_bps, cpu_pct, mem_pct], [version, old_version], [_, rat]) = (b.load, b.firmware, b.modem);
        let dt_s = millis_to_s(now_ms.saturating_sub(self.last_ms).max(0));
        self.last_ms = self.last_ms.max(now_ms);
        let day = daily_factor(now_ms);
        let mut tx_bps = tx_bps * day * self.noise();
        let rx_bps = rx_bps * day * self.noise();
        let mut cpu = cpu_pct * day * self.noise();
        let mem = mem_pct + 4.0 * (self.rng.unit() - 0.5);
        if self.active(AttackKind::Exfiltration, now_ms) {
            tx_bps *= 50.0 + 50.0 * self.rng.unit();
            cpu += 25.0;
        }
        self.tx_bytes = add_bytes(self.tx_bytes, tx_bps * dt_s);
        self.rx_bytes = add_bytes(self.rx_bytes, rx_bps * dt_s);
        let failed_logins = if self.active(AttackKind::FailedLoginBurst, now_ms) {
            50 + self.rng.below(151)
        } else {
            u64::from(self.rng.below(500) == 0) // now and then someone mistypes a password
        };

        let mut actions = Vec::new();
        if self.active(AttackKind::ConnectionFlapping, now_ms) {
            actions.push(Action::Reconnect);
        }
        let start_ms = self.start_ms;
        for armed in &mut self.attacks {
            if armed.attack.kind == AttackKind::ClonedCertificate
                && !armed.fired
                && armed.attack.started(start_ms, now_ms)
            {
                armed.fired = true;
                actions.push(Action::CloneConnect);
            }
        }
        if self.active(AttackKind::GoingSilent, now_ms) {
            actions.push(Action::Silent);
            return Tick { report: None, actions };
        }
        self.seq = self.seq.saturating_add(1);

        let mut listening: Vec<Listening> =
            b.listening.iter().map(|&port| Listening { proto: "tcp".into(), port }).collect();
        if self.active(AttackKind::NewListeningPort, now_ms) {
            listening.push(Listening { proto: "tcp".into(), port: 23 });
        }
        let mut connections: Vec<Connection> = b
            .destinations
            .iter()
            .map(|&(proto, dst, port)| Connection { proto: proto.into(), dst: dst.into(), port })
            .collect();
        if self.active(AttackKind::UnexpectedDestination, now_ms) {
            connections.push(Connection { proto: "tcp".into(), dst: "203.0.113.66".into(), port: 4444 });
        }
        let (version, digest) = if let Some((version, sha256)) = &self.installed {
            (version.clone(), sha256.clone())
        } else if self.started(AttackKind::FirmwareDowngrade, now_ms).is_some() {
            (old_version.to_owned(), firmware_digest(self.profile, old_version, false))
        } else {
            let tampered = self.started(AttackKind::FirmwareDigestMismatch, now_ms).is_some();
            (version.to_owned(), firmware_digest(self.profile, version, tampered))
        };
        let imei = if self.started(AttackKind::SimSwap, now_ms).is_some() { &self.swapped_imei } else { &self.imei };
        let report = TelemetryV1 {
            v: 1,
            ts: Some(rfc3339(now_ms)),
            seq: Some(self.seq),
            net: Some(Net { tx_bytes: Some(self.tx_bytes), rx_bytes: Some(self.rx_bytes), listening, connections }),
            sys: Some(Sys {
                cpu_pct: Some(round(cpu.clamp(0.0, 100.0), 10.0)),
                mem_pct: Some(round(mem.clamp(0.0, 100.0), 10.0)),
                uptime_s: u64::try_from(now_ms.saturating_sub(self.boot_ms) / 1000).ok(),
                boot_id: Some(self.boot_id.clone()),
            }),
            fw: Some(Firmware {
                version: Some(version),
                digest: Some(digest),
                secure_boot: Some(true),
                debug_enabled: Some(false),
            }),
            cell: Some(Cell {
                iccid: Some(self.iccid.clone()),
                imsi: Some(self.imsi.clone()),
                imei: Some(imei.clone()),
                mcc: Some("310".into()),
                mnc: Some("410".into()),
                rat: Some(rat.into()),
            }),
            loc: Some(self.location(now_ms)),
            auth: Some(Auth { failed_logins: Some(failed_logins), default_credentials: Some(false) }),
        };
        Tick { report: Some(report), actions }
    }

    fn location(&self, now_ms: i64) -> Loc {
        let (mut lat, mut lon) = self.home;
        let mut acc_m = 20.0;
        if self.profile == Profile::AssetTracker {
            let hours = millis_to_s(now_ms.saturating_sub(self.start_ms)) / 3600.0;
            let angle = self.phase + hours * VEHICLE_KMH / LOOP_RADIUS_KM;
            (lat, lon) = move_km((lat, lon), LOOP_RADIUS_KM * angle.cos(), LOOP_RADIUS_KM * angle.sin());
            acc_m = 8.0;
        }
        if let Some(a) = self.started(AttackKind::GeofenceBreach, now_ms) {
            let driven_ms = now_ms.saturating_sub(a.start(self.start_ms)).min(a.duration_ms.unwrap_or(0));
            let km = THIEF_KMH * millis_to_s(driven_ms) / 3600.0;
            (lat, lon) = move_km((lat, lon), km * self.bearing.cos(), km * self.bearing.sin());
        }
        if self.active(AttackKind::ImpossibleTravel, now_ms) {
            (lat, lon) = FAR_AWAY;
        }
        Loc { lat: round(lat.clamp(-90.0, 90.0), 1e6), lon: round(lon.clamp(-180.0, 180.0), 1e6), acc_m: Some(acc_m) }
    }

    /// The first attack of `kind` that has started by `now_ms`.
    fn started(&self, kind: AttackKind, now_ms: i64) -> Option<&ScheduledAttack> {
        self.attacks.iter().map(|a| &a.attack).find(|a| a.kind == kind && a.started(self.start_ms, now_ms))
    }

    /// Whether an attack of `kind` is under way at `now_ms`.
    fn active(&self, kind: AttackKind, now_ms: i64) -> bool {
        self.attacks.iter().any(|a| a.attack.kind == kind && a.attack.within(self.start_ms, now_ms))
    }

    /// A factor in 0.8..=1.2 (bounded noise).
    fn noise(&mut self) -> f64 {
        1.0 + 0.4 * (self.rng.unit() - 0.5)
    }
}

impl ScheduledAttack {
    fn start(&self, start_ms: i64) -> i64 {
        start_ms.saturating_add(self.at_ms)
    }

    fn started(&self, start_ms: i64, now_ms: i64) -> bool {
        now_ms >= self.start(start_ms)
    }

    fn within(&self, start_ms: i64, now_ms: i64) -> bool {
        self.started(start_ms, now_ms)
            && self.duration_ms.is_none_or(|d| now_ms < self.start(start_ms).saturating_add(d))
    }
}

/// A parsed scenario file: which device is attacked how, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    attacks: Vec<(usize, ScheduledAttack)>,
    health_fail: HealthFail,
}

/// Which simulated devices fail the health check after an update (`[update]` in a scenario).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthFail {
    /// The fraction of devices that fail, in parts per million.
    pub per_million: u32,
    /// Only images of this version fail (`None`: any).
    pub version: Option<String>,
}

/// What is wrong with a scenario, naming the entry and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario: {0}")]
    Syntax(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { key: key.into(), message: message.into() }
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| ScenarioError::Syntax(e.to_string()))?;
        let mut attacks = Vec::new();
        let mut health_fail = HealthFail::default();
        for (key, value) in &doc {
            if key == "update" {
                health_fail = parse_update(value)?;
                continue;
            }
            if key != "attack" {
                return Err(invalid(key.as_str(), "unknown key (a scenario holds [[attack]] entries and [update])"));
            }
            let toml::Value::Array(entries) = value else {
                return Err(invalid("attack", "expected [[attack]] tables"));
            };
            for (i, entry) in entries.iter().enumerate() {
                attacks.push(parse_entry(i, entry)?);
            }
        }
        Ok(Self { attacks, health_fail })
    }

    /// The same scenario with a fraction (0.0–1.0) of devices failing the health check of images
    /// of `version` (`None`: any version).
    #[must_use]
    pub fn with_health_fail(mut self, fraction: f64, version: Option<&str>) -> Self {
        self.health_fail = HealthFail { per_million: per_million(fraction), version: version.map(str::to_owned) };
        self
    }

    /// Whether device `index` (of a run with `seed`) fails the health check of an image of
    /// `version`: the same answer for the same index, seed and version.
    pub fn health_fails(&self, index: usize, seed: u64, version: &str) -> bool {
        let h = &self.health_fail;
        h.version.as_deref().is_none_or(|v| v == version) && health_fail_draw(index, seed) < u64::from(h.per_million)
    }

    /// The attacks planned for device `index`, in file order.
    pub fn for_device(&self, index: usize) -> Vec<ScheduledAttack> {
        self.attacks.iter().filter(|(d, _)| *d == index).map(|(_, a)| *a).collect()
    }

    /// Refuses a scenario that names a device the fleet does not have.
    pub fn check_devices(&self, devices: usize) -> Result<(), ScenarioError> {
        match self.attacks.iter().position(|(d, _)| *d >= devices) {
            Some(i) => Err(invalid(format!("attack[{i}].device"), format!("only {devices} devices are simulated"))),
            None => Ok(()),
        }
    }

    /// Every planned attack with its absolute time, in time order (for the simulator's report).
    pub fn records(&self, start_ms: i64) -> Vec<AttackRecord> {
        let mut records: Vec<AttackRecord> = self
            .attacks
            .iter()
            .map(|(d, a)| AttackRecord { device_index: *d, kind: a.kind, at_ms: a.start(start_ms) })
            .collect();
        records.sort_by_key(|r| (r.at_ms, r.device_index));
        records
    }
}

/// `[update]`: `health_fail` (0.0–1.0) and `health_fail_version`.
fn parse_update(value: &toml::Value) -> Result<HealthFail, ScenarioError> {
    let table = value.as_table().ok_or_else(|| invalid("update", "expected a table"))?;
    if let Some(k) = table.keys().find(|k| !["health_fail", "health_fail_version"].contains(&k.as_str())) {
        return Err(invalid(format!("update.{k}"), "unknown key (expected health_fail, health_fail_version)"));
    }
    #[allow(clippy::cast_precision_loss, reason = "0 and 1 are exact")]
    let fraction = match table.get("health_fail") {
        None => 0.0,
        Some(toml::Value::Float(f)) => *f,
        Some(toml::Value::Integer(i)) => *i as f64,
        Some(_) => return Err(invalid("update.health_fail", "expected a number between 0 and 1")),
    };
    if !(0.0..=1.0).contains(&fraction) {
        return Err(invalid("update.health_fail", "must be between 0 and 1"));
    }
    let version = match table.get("health_fail_version") {
        None => None,
        Some(toml::Value::String(v)) => Some(v.clone()),
        Some(_) => return Err(invalid("update.health_fail_version", "expected a string")),
    };
    Ok(HealthFail { per_million: per_million(fraction), version })
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to 0..=1e6")]
fn per_million(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 1_000_000.0).round() as u32
}

/// Device `index`'s draw in 0..1 000 000 for the health check (uniform, fixed by index and seed).
pub fn health_fail_draw(index: usize, seed: u64) -> u64 {
    SplitMix64(seed ^ 0x6865_616c_7468 ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next() % 1_000_000
}

fn parse_entry(i: usize, entry: &toml::Value) -> Result<(usize, ScheduledAttack), ScenarioError> {
    let key = |k: &str| format!("attack[{i}].{k}");
    let table = entry.as_table().ok_or_else(|| invalid(format!("attack[{i}]"), "expected a table"))?;
    if let Some(k) = table.keys().find(|k| !["device", "kind", "at", "duration"].contains(&k.as_str())) {
        return Err(invalid(key(k), "unknown key (expected device, kind, at, duration)"));
    }
    let text = |k: &str| match table.get(k) {
        Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(key(k), "expected a string")),
        None => Ok(None),
    };
    let device = match table.get("device") {
        Some(toml::Value::Integer(n)) => {
            usize::try_from(*n).map_err(|_| invalid(key("device"), "expected an index ≥ 0"))?
        }
        Some(_) => return Err(invalid(key("device"), "expected an integer")),
        None => return Err(invalid(key("device"), "missing")),
    };
    let name = text("kind")?.ok_or_else(|| invalid(key("kind"), "missing"))?;
    let kind: AttackKind =
        toml::Value::String(name.into()).try_into().map_err(|e| invalid(key("kind"), e.message().to_owned()))?;
    let at_ms =
        parse_span(text("at")?.ok_or_else(|| invalid(key("at"), "missing"))?).map_err(|m| invalid(key("at"), m))?;
    let duration_ms = match (text("duration")?, kind.default_duration_ms()) {
        (None, default) => default,
        (Some(_), None) => {
            return Err(invalid(key("duration"), format!("`{name}` lasts or happens once; no duration")));
        }
        (Some(span), Some(_)) => match parse_span(span).map_err(|m| invalid(key("duration"), m))? {
            0 => return Err(invalid(key("duration"), "must be more than 0")),
            d => Some(d),
        },
    };
    Ok((device, ScheduledAttack { kind, at_ms, duration_ms }))
}

/// "90s", "5m", "1h" in milliseconds.
fn parse_span(span: &str) -> Result<i64, String> {
    let (number, unit_ms) = if let Some(n) = span.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = span.strip_suffix('m') {
        (n, MINUTE_MS)
    } else if let Some(n) = span.strip_suffix('h') {
        (n, 60 * MINUTE_MS)
    } else {
        (span, 0)
    };
    match number.parse::<u32>() {
        Ok(n) if unit_ms > 0 && number.bytes().all(|b| b.is_ascii_digit()) => Ok(i64::from(n) * unit_ms),
        _ => Err(format!("`{span}` is not a time span (a whole number with s, m or h, e.g. \"90s\", \"5m\", \"1h\")")),
    }
}

/// 0.4 at midnight UTC, 1.6 at noon: traffic and CPU follow the day.
fn daily_factor(now_ms: i64) -> f64 {
    let day = millis_to_s(now_ms.rem_euclid(DAY_MS)) / 86_400.0;
    1.0 - 0.6 * (day * std::f64::consts::TAU).cos()
}

#[allow(clippy::cast_precision_loss, reason = "times in a simulation are far below 2^53 ms")]
fn millis_to_s(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "finite, clamped to 0..=i64::MAX")]
fn add_bytes(counter: u64, bytes: f64) -> u64 {
    let bytes = if bytes.is_finite() && bytes > 0.0 { bytes as u64 } else { 0 };
    counter.saturating_add(bytes).min(MAX_COUNTER)
}

fn round(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

/// Moves a point by `north_km` and `east_km` (flat-earth approximation, fine at these distances).
fn move_km((lat, lon): (f64, f64), north_km: f64, east_km: f64) -> (f64, f64) {
    let lat2 = lat + north_km / 111.32;
    (lat2, lon + east_km / (111.32 * lat2.to_radians().cos().max(0.01)))
}

fn firmware_digest(profile: Profile, version: &str, tampered: bool) -> String {
    let image = format!("palisade-sim {profile:?} {version}{}", if tampered { " backdoored" } else { "" });
    let hash = Sha256::digest(image.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Appends the Luhn check digit (IMEIs and ICCIDs carry one).
fn with_luhn(payload: String) -> String {
    let sum: u32 = payload
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    let check = char::from_digit((10 - sum % 10) % 10, 10).unwrap_or('0');
    format!("{payload}{check}")
}

fn digits(rng: &mut SplitMix64, n: usize) -> String {
    (0..n).map(|_| char::from_digit(u32::try_from(rng.below(10)).unwrap_or(0), 10).unwrap_or('0')).collect()
}

fn uuid(rng: &mut SplitMix64) -> String {
    let (a, b) = (rng.next(), rng.next());
    let (a1, a2, a3, b1, b2) = (a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & 0xffff_ffff_ffff);
    format!("{a1:08x}-{a2:04x}-{a3:04x}-{b1:04x}-{b2:012x}")
}

/// RFC 3339 (UTC, seconds) of a Unix time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let (days, secs) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS) / 1000);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// splitmix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0.0..1.0.
    #[allow(clippy::cast_precision_loss, reason = "53 bits fit an f64 exactly")]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Uniform enough in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z

    fn valid(t: &TelemetryV1) -> TelemetryV1 {
        TelemetryV1::parse(&serde_json::to_vec(t).unwrap()).unwrap()
    }

    fn tx(t: &TelemetryV1) -> u64 {
        t.net.as_ref().unwrap().tx_bytes.unwrap()
    }

    fn km(a: &TelemetryV1, b: &TelemetryV1) -> f64 {
        let (a, b) = (a.loc.as_ref().unwrap(), b.loc.as_ref().unwrap());
        let (p1, p2, dl) = (a.lat.to_radians(), b.lat.to_radians(), (b.lon - a.lon).to_radians());
        let h = ((p2 - p1) / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6371.0 * h.sqrt().asin()
    }

    fn luhn_ok(s: &str) -> bool {
        s.len() == 15 && with_luhn(s[..14].to_owned()) == s
    }

    /// One device with one attack at minute 10 (`entry` adds kind and duration), reporting every
    /// minute for an hour; every report must be valid Telemetry v1.
    fn attacked(profile: Profile, entry: &str) -> Vec<(i64, Tick)> {
        let scenario = Scenario::parse(&format!("[[attack]]\ndevice = 0\nat = \"10m\"\n{entry}")).unwrap();
        let mut device = VirtualDevice::new(0, profile, 7, START);
        device.schedule(scenario.for_device(0));
        let ticks: Vec<(i64, Tick)> = (1..=60).map(|m| (m, device.report(START + m * MINUTE_MS))).collect();
        ticks.iter().for_each(|(_, t)| drop(t.report.as_ref().map(valid)));
        ticks
    }

    /// The reports of minutes `from..to`.
    fn reports(ticks: &[(i64, Tick)], from: i64, to: i64) -> Vec<&TelemetryV1> {
        ticks.iter().filter(|(m, _)| (from..to).contains(m)).filter_map(|(_, t)| t.report.as_ref()).collect()
    }

    /// Reports of minutes 1..10 (before the attack) and `until..61` (after it).
    fn outside(ticks: &[(i64, Tick)], until: i64) -> Vec<&TelemetryV1> {
        [reports(ticks, 1, 10), reports(ticks, until, 61)].concat()
    }

    fn at(ticks: &[(i64, Tick)], minute: i64) -> &TelemetryV1 {
        reports(ticks, minute, minute + 1)[0]
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(START), "2026-11-22T00:00:00Z");
        assert_eq!(rfc3339(1_709_211_909_999), "2024-02-29T13:05:09Z");
        assert_eq!(rfc3339(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn the_same_seed_gives_the_same_reports() {
        let run = |seed| {
            let mut d = VirtualDevice::new(5, Profile::Camera, seed, START);
            (1..200).map(|i| d.report(START + i * 30_000)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn every_profile_reports_valid_telemetry_for_48_hours_with_monotonic_counters() {
        for (index, profile) in Profile::ALL.into_iter().enumerate() {
            let mut d = VirtualDevice::new(index, profile, 1, START);
            let mut last: Option<TelemetryV1> = None;
            for i in 1..=48 * 60 {
                let t = valid(&d.report(START + i * MINUTE_MS).report.unwrap());
                let (cell, sys) = (t.cell.as_ref().unwrap(), t.sys.as_ref().unwrap());
                assert!(luhn_ok(cell.imei.as_ref().unwrap()) && cell.iccid.as_ref().unwrap().len() == 19);
                assert!(t.auth.as_ref().unwrap().failed_logins.unwrap() <= 1);
                if let Some(prev) = &last {
                    let (n, p, ps) = (t.net.as_ref().unwrap(), prev.net.as_ref().unwrap(), prev.sys.as_ref().unwrap());
                    assert!(n.tx_bytes >= p.tx_bytes && n.rx_bytes >= p.rx_bytes, "{profile:?} at {i}");
                    assert_eq!(t.seq, prev.seq.map(|s| s + 1));
                    assert!(sys.boot_id == ps.boot_id && sys.uptime_s > ps.uptime_s);
                    // A tracker moves at vehicle speed (50 km/h); the others stay put.
                    let limit = if profile == Profile::AssetTracker { 1.0 } else { 0.001 };
                    assert!(km(prev, &t) < limit, "{profile:?} moved {} km", km(prev, &t));
                }
                last = Some(t);
            }
        }
    }

    #[test]
    fn traffic_follows_the_day() {
        let mut d = VirtualDevice::new(0, Profile::Gateway, 9, START);
        let mut tx_at = |hour: i64| tx(&d.report(START + hour * 3_600_000).report.unwrap());
        let night = [tx_at(1), tx_at(2)];
        let day = [tx_at(12), tx_at(13)];
        assert!(day[1] - day[0] > 2 * (night[1] - night[0]), "{day:?} {night:?}");
    }

    #[test]
    fn exfiltration_multiplies_uploads_during_the_window() {
        let ticks = attacked(Profile::SmartMeter, "kind = \"exfiltration\"\nduration = \"5m\"");
        // deltas[k]: the upload between minutes k+1 and k+2; minutes 10..15 are in the window.
        let deltas: Vec<u64> = reports(&ticks, 1, 61).windows(2).map(|w| tx(w[1]) - tx(w[0])).collect();
        let before = deltas[..8].iter().max().unwrap();
        assert!(deltas[8..13].iter().all(|d| *d > 20 * before), "{deltas:?}");
        assert!(deltas[13..].iter().all(|d| *d < 2 * before), "{deltas:?}");
    }

    #[test]
    fn sim_swap_changes_the_imei_for_good_and_keeps_the_sim() {
        let ticks = attacked(Profile::AssetTracker, "kind = \"sim_swap\"");
        let cell = |m| at(&ticks, m).cell.clone().unwrap();
        assert_eq!(cell(1), cell(9));
        for after in [cell(10), cell(30), cell(60)] {
            assert!(after.imei != cell(9).imei && luhn_ok(after.imei.as_ref().unwrap()));
            assert_eq!((after.iccid, after.imsi), (cell(9).iccid, cell(9).imsi));
        }
    }

    #[test]
    fn geofence_breach_drives_the_device_away_at_road_speed() {
        let ticks = attacked(Profile::SmartMeter, "kind = \"geofence_breach\"");
        let all = reports(&ticks, 1, 61);
        assert!(all[..9].iter().all(|t| km(all[0], t) < 0.01));
        assert!(all.windows(2).all(|w| km(w[0], w[1]) < 3.0));
        assert!(all[40..].iter().all(|t| km(all[0], t) > 50.0), "{}", km(all[0], all[45]));
    }

    #[test]
    fn impossible_travel_reports_from_thousands_of_km_away_within_minutes() {
        let ticks = attacked(Profile::AssetTracker, "kind = \"impossible_travel\"");
        let all = reports(&ticks, 1, 61);
        assert!(all[..9].windows(2).all(|w| km(w[0], w[1]) < 5.0));
        let jump = all.windows(2).find(|w| km(w[0], w[1]) > 1000.0).unwrap();
        assert_eq!(jump[0].ts.as_deref(), Some("2026-11-22T00:09:00Z"));
        assert_eq!(jump[1].ts.as_deref(), Some("2026-11-22T00:10:00Z"));
    }

    #[test]
    fn a_new_listening_port_opens_during_the_window() {
        let ticks = attacked(Profile::Camera, "kind = \"new_listening_port\"\nduration = \"5m\"");
        let ports = |t: &&TelemetryV1| t.net.as_ref().unwrap().listening.iter().map(|l| l.port).collect::<Vec<_>>();
        assert!(outside(&ticks, 15).iter().all(|t| ports(t) == [443, 554]));
        assert!(reports(&ticks, 10, 15).iter().all(|t| ports(t) == [443, 554, 23]));
    }

    #[test]
    fn an_unexpected_destination_appears_during_the_window() {
        let ticks = attacked(Profile::Gateway, "kind = \"unexpected_destination\"");
        let c2 = |t: &&&TelemetryV1| t.net.as_ref().unwrap().connections.iter().any(|c| c.dst == "203.0.113.66");
        assert_eq!(outside(&ticks, 15).iter().filter(c2).count(), 0);
        assert_eq!(reports(&ticks, 10, 15).iter().filter(c2).count(), 5);
    }

    #[test]
    fn connection_flapping_asks_for_a_reconnect_every_tick_of_the_window() {
        let ticks = attacked(Profile::Gateway, "kind = \"connection_flapping\"");
        let flaps: Vec<i64> = ticks.iter().filter(|(_, t)| t.actions == [Action::Reconnect]).map(|(m, _)| *m).collect();
        assert_eq!(flaps, [10, 11, 12]);
        assert!(ticks.iter().all(|(_, t)| t.report.is_some()));
    }

    #[test]
    fn a_failed_login_burst_jumps_during_the_window() {
        let ticks = attacked(Profile::Camera, "kind = \"failed_login_burst\"");
        let failed = |t: &&TelemetryV1| t.auth.as_ref().unwrap().failed_logins.unwrap();
        assert!(reports(&ticks, 10, 12).iter().map(failed).all(|n| (50..=200).contains(&n)));
        assert!(outside(&ticks, 12).iter().map(failed).all(|n| n <= 1));
    }

    #[test]
    fn a_cloned_certificate_connects_once() {
        let ticks = attacked(Profile::SmartMeter, "kind = \"cloned_certificate\"");
        let clones: Vec<i64> =
            ticks.iter().filter(|(_, t)| t.actions.contains(&Action::CloneConnect)).map(|t| t.0).collect();
        assert_eq!(clones, [10]);
    }

    #[test]
    fn going_silent_suppresses_reports_then_seq_continues() {
        let ticks = attacked(Profile::AssetTracker, "kind = \"going_silent\"");
        for (m, t) in &ticks {
            let silent = (10..15).contains(m);
            assert!(t.report.is_none() == silent && (t.actions == [Action::Silent]) == silent, "minute {m}");
        }
        assert_eq!(at(&ticks, 15).seq, at(&ticks, 9).seq.map(|s| s + 1));
        assert!(tx(at(&ticks, 15)) > tx(at(&ticks, 9)));
    }

    fn fw(t: &TelemetryV1) -> (String, String) {
        let f = t.fw.as_ref().unwrap();
        (f.version.clone().unwrap(), f.digest.clone().unwrap())
    }

    #[test]
    fn a_digest_mismatch_keeps_the_version() {
        let ticks = attacked(Profile::Gateway, "kind = \"firmware_digest_mismatch\"");
        let (before, after) = (fw(at(&ticks, 9)), fw(at(&ticks, 10)));
        assert_eq!(fw(at(&ticks, 1)), before);
        assert_eq!(fw(at(&ticks, 60)), after);
        assert!(after.0 == before.0 && after.1 != before.1 && after.1.len() == "sha256:".len() + 64);
    }

    #[test]
    fn a_downgrade_reports_an_older_version() {
        let ticks = attacked(Profile::Camera, "kind = \"firmware_downgrade\"");
        let version = |v: &str| v.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
        let (before, after) = (fw(at(&ticks, 9)), fw(at(&ticks, 10)));
        assert!(version(&after.0) < version(&before.0) && after.1 != before.1, "{after:?} {before:?}");
        assert_eq!(fw(at(&ticks, 60)), after);
    }

    #[test]
    fn the_shipped_scenario_covers_every_attack_and_reports_stay_valid() {
        let scenario = Scenario::parse(include_str!("../../../examples/scenarios/attacks.toml")).unwrap();
        scenario.check_devices(12).unwrap();
        let records = scenario.records(START);
        for kind in AttackKind::ALL {
            assert!(records.iter().any(|r| r.kind == kind), "{kind:?} unused");
        }
        assert!(records.iter().all(|r| (START..=START + 10 * MINUTE_MS).contains(&r.at_ms)));
        assert!(records.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        for index in 0..12 {
            let mut d = VirtualDevice::new(index, Profile::for_index(index), 3, START);
            d.schedule(scenario.for_device(index));
            (1..=90).for_each(|s| drop(d.report(START + s * 15_000).report.as_ref().map(valid)));
        }
    }

    #[test]
    fn bad_scenarios_name_the_key() {
        assert_eq!(Scenario::parse("").unwrap(), Scenario::default());
        let entry = "[[attack]]\ndevice = 1\nkind = \"sim_swap\"\nat = \"1m\"\n";
        for (text, key) in [
            ("[[attack]]\ndevice = 1\nkind = \"exfiltration\"\nat = \"5x\"", "attack[0].at: "),
            ("[[attack]]\ndevice = 1\nkind = \"exfiltration\"", "attack[0].at: missing"),
            ("[[attack]]\ndevice = 1\nkind = \"exfiltration\"\nat = \"1m\"\nduration = \"0s\"", "attack[0].duration: "),
            (&format!("{entry}duration = \"1m\""), "attack[0].duration: "),
            (&entry.replace("sim_swap", "ddos"), "attack[0].kind: unknown variant `ddos`"),
            (&entry.replace("= 1", "= -1"), "attack[0].device: "),
            (&entry.replace("= 1", "= \"1\""), "attack[0].device: "),
            (&format!("{entry}{}", entry.replace("\"1m\"", "60")), "attack[1].at: "),
            (&format!("{entry}devise = 2"), "attack[0].devise: unknown"),
            ("attack = 3", "attack: "),
            ("[attacks]\n", "attacks: unknown"),
        ] {
            let e = Scenario::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(key), "{key} not in: {e}");
        }
        let ok = Scenario::parse("[[attack]]\ndevice = 12\nkind = \"going_silent\"\nat = \"90s\"").unwrap();
        assert_eq!(ok.check_devices(12).unwrap_err().to_string(), "attack[0].device: only 12 devices are simulated");
        assert_eq!(
            ok.for_device(12),
            [ScheduledAttack { kind: AttackKind::GoingSilent, at_ms: 90_000, duration_ms: Some(5 * MINUTE_MS) }]
        );
        assert_eq!(
            serde_json::to_string(&ok.records(0)).unwrap(),
            r#"[{"device_index":12,"kind":"going_silent","at_ms":90000}]"#
        );
        for (text, key) in [
            ("[update]\nhealth_fail = 1.5", "update.health_fail: must be"),
            ("[update]\nhealth_fail = \"10%\"", "update.health_fail: expected"),
            ("[update]\nhealth_fail_version = 3", "update.health_fail_version: "),
            ("[update]\nhealth = 0.1", "update.health: unknown"),
            ("update = 1", "update: expected a table"),
        ] {
            let e = Scenario::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(key), "{key} not in: {e}");
        }
    }

    #[test]
    fn a_fraction_of_devices_fails_the_health_check_of_one_version_the_same_way_every_run() {
        let scenario = Scenario::parse("[update]\nhealth_fail = 0.1\nhealth_fail_version = \"3.3.0\"").unwrap();
        let failing: Vec<usize> = (0..1000).filter(|&i| scenario.health_fails(i, 7, "3.3.0")).collect();
        assert!((70..=130).contains(&failing.len()), "{}", failing.len());
        // Every profile has its share (the choice is not aligned with the round robin of profiles).
        for p in 0..4 {
            assert!(failing.iter().filter(|&&i| i % 4 == p).count() >= 10, "profile {p}: {failing:?}");
        }
        let again: Vec<usize> = (0..1000).filter(|&i| scenario.health_fails(i, 7, "3.3.0")).collect();
        assert_eq!(failing, again);
        assert!((0..1000).all(|i| !scenario.health_fails(i, 7, "3.2.0")), "another version is healthy");
        assert_eq!(scenario, Scenario::default().with_health_fail(0.1, Some("3.3.0")));
        let all = Scenario::default().with_health_fail(1.0, None);
        assert!((0..100).all(|i| all.health_fails(i, 1, "anything")));
        assert!((0..100).all(|i| !Scenario::default().health_fails(i, 1, "anything")));
    }

    #[test]
    fn an_installed_update_is_reported() {
        let mut d = VirtualDevice::new(0, Profile::SmartMeter, 1, 0);
        assert_eq!(fw(&d.report(60_000).report.unwrap()).0, "3.2.1");
        d.install_firmware("3.3.0", &"ab".repeat(32));
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(fw(&d.report(120_000).report.unwrap()), ("3.3.0".to_owned(), digest));
    }
}
