//! Telemetry v1 (DESIGN §4): what a device publishes on `devices/<id>/telemetry`.
//!
//! Every section is optional and unknown fields are ignored (devices are upgraded slowly); the
//! fields that are present must have the right type and a plausible value. `net.*_bytes` are
//! counters since boot: the server derives rates from them.

use serde::{Deserialize, Serialize};

/// Why a telemetry payload was refused; the label its refusals are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not JSON at all (or not UTF-8).
    MalformedJson,
    /// `v` is missing or not 1.
    UnsupportedVersion,
    /// JSON, but a field has the wrong type or an implausible value.
    InvalidField,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedVersion => "unsupported_telemetry_version",
            Self::InvalidField => "invalid_telemetry",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryV1 {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys: Option<Sys>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw: Option<Firmware>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<Cell>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loc: Option<Loc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Net {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<Listening>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<Connection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    pub proto: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub proto: String,
    pub dst: String,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imsi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rat: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Loc {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_m: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_logins: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_credentials: Option<bool>,
}

/// Longest string field accepted (boot ids, versions, digests, identities).
const MAX_TEXT: usize = 256;
/// Most sockets listed in one report.
const MAX_SOCKETS: usize = 4096;
/// Counters are stored as signed 64-bit integers.
const MAX_COUNTER: u64 = i64::MAX as u64;

impl TelemetryV1 {
    /// Parses and validates a payload.
    pub fn parse(payload: &[u8]) -> Result<Self, Refusal> {
        let t: Self = match serde_json::from_slice(payload) {
            Ok(t) => t,
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                // Say "wrong version" when that is the reason (a v2 may have another shape).
                #[derive(Deserialize)]
                struct Version {
                    v: Option<serde_json::Value>,
                }
                return Err(match serde_json::from_slice::<Version>(payload) {
                    Ok(Version { v }) if v.as_ref().and_then(serde_json::Value::as_u64) != Some(1) => {
                        Refusal::UnsupportedVersion
                    }
                    _ => Refusal::InvalidField,
                });
            }
            Err(_) => return Err(Refusal::MalformedJson),
        };
        if t.v != 1 {
            return Err(Refusal::UnsupportedVersion);
        }
        if t.plausible() { Ok(t) } else { Err(Refusal::InvalidField) }
    }

    fn plausible(&self) -> bool {
        let pct = |p: Option<f64>| p.is_none_or(|p| p.is_finite() && (0.0..=100.0).contains(&p));
        let text = |s: &Option<String>| s.as_ref().is_none_or(|s| s.len() <= MAX_TEXT);
        let counter = |c: Option<u64>| c.is_none_or(|c| c <= MAX_COUNTER);
        let net = self.net.as_ref().is_none_or(|n| {
            counter(n.tx_bytes)
                && counter(n.rx_bytes)
                && n.listening.len() <= MAX_SOCKETS
                && n.connections.len() <= MAX_SOCKETS
        });
        let sys = self
            .sys
            .as_ref()
            .is_none_or(|s| pct(s.cpu_pct) && pct(s.mem_pct) && counter(s.uptime_s) && text(&s.boot_id));
        let fw = self.fw.as_ref().is_none_or(|f| text(&f.version) && text(&f.digest));
        let cell = self
            .cell
            .as_ref()
            .is_none_or(|c| [&c.iccid, &c.imsi, &c.imei, &c.mcc, &c.mnc, &c.rat].into_iter().all(text));
        let loc = self.loc.as_ref().is_none_or(|l| {
            (-90.0..=90.0).contains(&l.lat)
                && (-180.0..=180.0).contains(&l.lon)
                && l.acc_m.is_none_or(|a| a.is_finite() && a >= 0.0)
        });
        let auth = self.auth.as_ref().is_none_or(|a| counter(a.failed_logins));
        let ts = self.ts.as_ref().is_none_or(|t| t.len() <= 64);
        net && sys && fw && cell && loc && auth && ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_parses() {
        let t = TelemetryV1::parse(
            br#"{"v":1,"ts":"2026-11-22T10:00:00Z","seq":42,
                "net":{"tx_bytes":123456,"rx_bytes":654321,"listening":[{"proto":"tcp","port":22}],
                       "connections":[{"proto":"tcp","dst":"203.0.113.7","port":443}]},
                "sys":{"cpu_pct":12.5,"mem_pct":41.0,"uptime_s":3600,"boot_id":"b1"},
                "fw":{"version":"1.4.2","digest":"sha256:00","secure_boot":true,"debug_enabled":false},
                "cell":{"iccid":"8901","imsi":"3104","imei":"3569","mcc":"310","mnc":"410","rat":"lte-m"},
                "loc":{"lat":41.8781,"lon":-87.6298,"acc_m":25},
                "auth":{"failed_logins":0,"default_credentials":false},
                "future_section":{"anything":[1,2,3]}}"#,
        )
        .unwrap();
        assert_eq!(t.seq, Some(42));
        assert_eq!(t.net.as_ref().unwrap().tx_bytes, Some(123_456));
        assert_eq!(t.sys.as_ref().unwrap().boot_id.as_deref(), Some("b1"));
        assert_eq!(TelemetryV1::parse(br#"{"v":1}"#).unwrap().seq, None);
    }

    #[test]
    fn refusals_say_why() {
        for (payload, why) in [
            (&b"not json"[..], Refusal::MalformedJson),
            (b"{\"v\":1", Refusal::MalformedJson),
            (b"\xff\xfe", Refusal::MalformedJson),
            (b"{}", Refusal::UnsupportedVersion),
            (b"{\"v\":2}", Refusal::UnsupportedVersion),
            (b"{\"v\":2,\"net\":\"other shape\"}", Refusal::UnsupportedVersion),
            (b"[1,2]", Refusal::InvalidField),
            (b"{\"v\":1,\"net\":{\"tx_bytes\":-5}}", Refusal::InvalidField),
            (b"{\"v\":1,\"net\":{\"tx_bytes\":18446744073709551615}}", Refusal::InvalidField),
            (b"{\"v\":1,\"sys\":{\"cpu_pct\":250}}", Refusal::InvalidField),
            (b"{\"v\":1,\"loc\":{\"lat\":91,\"lon\":0}}", Refusal::InvalidField),
            (b"{\"v\":1,\"seq\":\"x\"}", Refusal::InvalidField),
        ] {
            assert_eq!(TelemetryV1::parse(payload), Err(why), "{}", String::from_utf8_lossy(payload));
        }
    }
}
