//! What a security profile says: rules, each a condition with a severity, a response and how
//! many datapoints it takes to alarm and to clear. Built only through [`crate::detect`]'s
//! validation (the wire form is parsed in `palisade-proto`), so an engine never holds a rule it
//! cannot evaluate.

use std::net::IpAddr;

use super::geo::LatLon;

/// How bad an alert is, from `info` up to `critical` (ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Self; 5] = [Self::Info, Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What Palisade does on its own when a rule alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    AlertOnly,
    Quarantine,
    Pause,
    Revoke,
    Disconnect,
}

impl Response {
    pub const ALL: [Self; 5] = [Self::AlertOnly, Self::Quarantine, Self::Pause, Self::Revoke, Self::Disconnect];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlertOnly => "alert",
            Self::Quarantine => "quarantine",
            Self::Pause => "pause",
            Self::Revoke => "revoke",
            Self::Disconnect => "disconnect",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A numeric fact of a telemetry report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    TxBps,
    RxBps,
    CpuPct,
    MemPct,
    FailedLogins,
}

impl Metric {
    pub const ALL: [Self; 5] = [Self::TxBps, Self::RxBps, Self::CpuPct, Self::MemPct, Self::FailedLogins];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TxBps => "tx_bps",
            Self::RxBps => "rx_bps",
            Self::CpuPct => "cpu_pct",
            Self::MemPct => "mem_pct",
            Self::FailedLogins => "failed_logins",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A fact of a report compared with a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetField {
    /// Every port the device listens on (port set).
    ListeningPort,
    /// Every destination address the device talks to (CIDR set).
    Destination,
    /// Every destination port (port set).
    DestinationPort,
    FirmwareDigest,
    FirmwareVersion,
    Imei,
    Iccid,
    /// `mcc-mnc` of the cell the device is on.
    CellNetwork,
}

/// What kind of set a field is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Ports,
    Cidrs,
    Strings,
}

impl SetField {
    pub const ALL: [Self; 8] = [
        Self::ListeningPort,
        Self::Destination,
        Self::DestinationPort,
        Self::FirmwareDigest,
        Self::FirmwareVersion,
        Self::Imei,
        Self::Iccid,
        Self::CellNetwork,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListeningPort => "listening_port",
            Self::Destination => "destination",
            Self::DestinationPort => "destination_port",
            Self::FirmwareDigest => "firmware_digest",
            Self::FirmwareVersion => "firmware_version",
            Self::Imei => "imei",
            Self::Iccid => "iccid",
            Self::CellNetwork => "cell_network",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn set_kind(self) -> SetKind {
        match self {
            Self::ListeningPort | Self::DestinationPort => SetKind::Ports,
            Self::Destination => SetKind::Cidrs,
            _ => SetKind::Strings,
        }
    }
}

/// An address block, e.g. `198.51.100.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)) << 96, u128::from(u32::from(b)) << 96, 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let prefix = u32::from(self.prefix.min(bits));
        if prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - prefix);
        a & mask == b & mask
    }
}

/// A set to compare a field with.
#[derive(Debug, Clone, PartialEq)]
pub enum Set {
    /// Inclusive port ranges.
    Ports(Vec<(u16, u16)>),
    Cidrs(Vec<Cidr>),
    Strings(Vec<String>),
}

/// A geofence: where the device belongs.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Within `radius_km` of `center`, or of the device's first fix when there is no centre
    /// (a stationary asset stays where it was installed).
    Circle {
        center: Option<LatLon>,
        radius_km: f64,
    },
    Polygon(Vec<LatLon>),
}

/// When a rule alarms.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A metric above (or below) a fixed value.
    Threshold {
        metric: Metric,
        above: bool,
        value: f64,
    },
    /// A field's value in (or not in) a set: `in_set: false` is an allowlist.
    Membership {
        field: SetField,
        in_set: bool,
        set: Set,
    },
    /// A metric far above the device's own learned normal.
    Baseline {
        metric: Metric,
        sensitivity: f64,
        warmup: u64,
        min_value: f64,
    },
    /// A metric above `factor` × the `percentile` of the devices the profile applies to.
    FleetPercentile {
        metric: Metric,
        percentile: f64,
        factor: f64,
        min_devices: usize,
    },
    Geofence {
        shape: Shape,
    },
    /// Two consecutive fixes further apart than the device could have travelled.
    ImpossibleTravel {
        max_kmh: f64,
        min_km: f64,
    },
    /// The SIM (ICCID) moved to another modem (IMEI), or the modem got another SIM.
    SimBinding,
    /// No report for `factor` × the device's usual interval (at least `min_ms`).
    Inactivity {
        factor: f64,
        min_ms: i64,
    },
    /// `connects` or more connections within `window_ms`.
    Flapping {
        connects: usize,
        window_ms: i64,
    },
    /// A session the device ended after less than `min_ms`.
    SessionDuration {
        min_ms: i64,
    },
    /// `count` or more failed logins within `window_ms`.
    FailedLogins {
        count: u64,
        window_ms: i64,
    },
    /// The same firmware version with another image digest than before.
    FirmwareIntegrity,
    /// An older firmware version than the device has run.
    FirmwareDowngrade,
    /// Two live sessions with one certificate from different addresses.
    CertificateTwoPlaces,
    /// A topic outside the device's own was tried.
    UnauthorizedTopic,
    /// Secure boot off, debug on, or default credentials.
    Posture,
}

impl Condition {
    /// The rule's kind as written in profiles.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Threshold { .. } => "threshold",
            Self::Membership { .. } => "membership",
            Self::Baseline { .. } => "baseline",
            Self::FleetPercentile { .. } => "fleet_percentile",
            Self::Geofence { .. } => "geofence",
            Self::ImpossibleTravel { .. } => "impossible_travel",
            Self::SimBinding => "sim_binding",
            Self::Inactivity { .. } => "inactivity",
            Self::Flapping { .. } => "flapping",
            Self::SessionDuration { .. } => "session_duration",
            Self::FailedLogins { .. } => "failed_logins",
            Self::FirmwareIntegrity => "firmware_integrity",
            Self::FirmwareDowngrade => "firmware_downgrade",
            Self::CertificateTwoPlaces => "certificate_two_places",
            Self::UnauthorizedTopic => "unauthorized_topic",
            Self::Posture => "posture",
        }
    }

    /// What an alert of this kind is called.
    pub fn title(&self) -> String {
        match self {
            Self::Threshold { metric, above, value } => {
                format!("{} {} {value}", metric.as_str(), if *above { "above" } else { "below" })
            }
            Self::Membership { field, in_set: false, .. } => format!("{} outside the allowed set", field.as_str()),
            Self::Membership { field, in_set: true, .. } => format!("{} in the forbidden set", field.as_str()),
            Self::Baseline { metric, .. } => format!("{} far above this device's normal", metric.as_str()),
            Self::FleetPercentile { metric, .. } => format!("{} far above the rest of the fleet", metric.as_str()),
            Self::Geofence { .. } => "Outside its geofence".into(),
            Self::ImpossibleTravel { .. } => "Impossible travel".into(),
            Self::SimBinding => "SIM moved to another modem (SIM/IMEI binding changed)".into(),
            Self::Inactivity { .. } => "Device went silent".into(),
            Self::Flapping { .. } => "Connection flapping".into(),
            Self::SessionDuration { .. } => "Abnormally short sessions".into(),
            Self::FailedLogins { .. } => "Failed-login burst".into(),
            Self::FirmwareIntegrity => "Firmware image changed without a version change".into(),
            Self::FirmwareDowngrade => "Firmware downgraded".into(),
            Self::CertificateTwoPlaces => "Certificate used from two places".into(),
            Self::UnauthorizedTopic => "Unauthorized MQTT topic".into(),
            Self::Posture => "Insecure posture".into(),
        }
    }
}

/// One rule of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique within its profile.
    pub id: String,
    pub condition: Condition,
    pub severity: Severity,
    pub response: Response,
    /// Record what the response would have done instead of doing it.
    pub dry_run: bool,
    /// Consecutive abnormal datapoints before alarming, normal ones before clearing.
    pub alarm_after: u32,
    pub clear_after: u32,
    /// Resolve the alert when the condition clears.
    pub auto_resolve: bool,
}

/// A security profile: rules for the devices of some groups and/or models (none: every device).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub groups: Vec<String>,
    pub models: Vec<String>,
    pub rules: Vec<Rule>,
}

impl Profile {
    pub fn applies_to(&self, group: Option<&str>, model: Option<&str>) -> bool {
        let matches =
            |list: &[String], v: Option<&str>| list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v));
        matches(&self.groups, group) && matches(&self.models, model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let net = Cidr::parse("198.51.100.0/24").unwrap();
        assert!(net.contains("198.51.100.77".parse().unwrap()));
        assert!(!net.contains("203.0.113.66".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8::1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.1").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn profiles_select_by_group_and_model() {
        let p = |groups: &[&str], models: &[&str]| Profile {
            name: "p".into(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            models: models.iter().map(|s| (*s).to_owned()).collect(),
            rules: vec![],
        };
        assert!(p(&[], &[]).applies_to(None, None));
        assert!(p(&["sim"], &[]).applies_to(Some("sim"), Some("x")));
        assert!(!p(&["sim"], &[]).applies_to(None, Some("x")));
        assert!(p(&["sim"], &["camera"]).applies_to(Some("sim"), Some("camera")));
        assert!(!p(&["sim"], &["camera"]).applies_to(Some("sim"), Some("smart_meter")));
    }
}
