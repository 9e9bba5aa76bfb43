//! Security profiles as written (JSON through the API, TOML in a file): parsed and validated
//! into [`palisade_core::detect::Profile`]. Every refusal names the field (`rules[2].threshold`)
//! and the reason; unknown keys are refused, so a typo never turns a rule off silently.
//!
//! ```json
//! {"name": "meters", "groups": ["field"], "models": ["smart_meter"],
//!  "escalation": {"min_severity": "critical", "repeat": false,
//!                 "tiers": [{"after_s": 0, "channels": ["soc-webhook"]}, {"after_s": 300, "channels": ["pager"]}]},
//!  "rules": [{"id": "exfil", "kind": "baseline", "metric": "tx_bps", "sensitivity": 6,
//!             "severity": "critical", "response": "quarantine"}]}
//! ```

use palisade_core::InvalidField;
use palisade_core::detect::alert::{EscalationPolicy, Tier};
use palisade_core::detect::{
    Cidr, Condition, LatLon, Metric, Profile, Response, Rule, Set, SetField, SetKind, Severity, Shape,
};
use serde_json::{Map, Value};

/// A profile with the escalation of its alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedProfile {
    pub profile: Profile,
    /// Alerts at or above the severity escalate through the policy.
    pub escalation: Option<(Severity, EscalationPolicy)>,
}

/// Rules a profile holds at most, and items in one set or polygon.
const MAX_RULES: usize = 64;
const MAX_ITEMS: usize = 1024;
const MAX_NAME: usize = 64;

type R<T> = Result<T, InvalidField>;

fn bad(field: &str, reason: impl Into<String>) -> InvalidField {
    InvalidField::new(field, reason)
}

/// Reads an object's keys, refusing those nobody asked for.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(path: &str, v: &'a Value) -> R<Self> {
        let map =
            v.as_object().ok_or_else(|| bad(if path.is_empty() { "profile" } else { path }, "must be an object"))?;
        Ok(Self { path: path.to_owned(), map, used: Vec::new() })
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&mut self, key: &'static str) -> R<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(&self.field(key), "must be a string")),
        }
    }

    fn req_str(&mut self, key: &'static str) -> R<&'a str> {
        self.str(key)?.ok_or_else(|| bad(&self.field(key), "is required"))
    }

    fn num(&mut self, key: &'static str, default: f64, min: f64, max: f64) -> R<f64> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let x = v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| bad(&self.field(key), "must be a number"))?;
        if !(min..=max).contains(&x) {
            return Err(bad(&self.field(key), format!("must be between {min} and {max}")));
        }
        Ok(x)
    }

    fn int(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> R<u64> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let x = v.as_u64().ok_or_else(|| bad(&self.field(key), "must be a whole number"))?;
        if !(min..=max).contains(&x) {
            return Err(bad(&self.field(key), format!("must be between {min} and {max}")));
        }
        Ok(x)
    }

    fn bool(&mut self, key: &'static str, default: bool) -> R<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(&self.field(key), "must be true or false")),
        }
    }

    fn names(&mut self, key: &'static str) -> R<Vec<String>> {
        let Some(v) = self.get(key) else { return Ok(Vec::new()) };
        let field = self.field(key);
        let list = v.as_array().ok_or_else(|| bad(&field, "must be a list of names"))?;
        if list.len() > MAX_ITEMS {
            return Err(bad(&field, format!("at most {MAX_ITEMS} entries")));
        }
        list.iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some(s) if !s.trim().is_empty() && s.len() <= 256 => Ok(s.trim().to_owned()),
                _ => Err(bad(&format!("{field}[{i}]"), "must be a non-empty name of at most 256 characters")),
            })
            .collect()
    }

    /// Refuses keys that were not read.
    fn done(self) -> R<()> {
        match self.map.keys().find(|k| !self.used.contains(&k.as_str())) {
            Some(k) => Err(bad(&self.field(k), "unknown key")),
            None => Ok(()),
        }
    }
}

fn name(field: &str, s: &str) -> R<String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(s.to_owned()) } else { Err(bad(field, "must be 1-64 letters, digits, '-', '_' or '.'")) }
}

fn parse_enum<T>(o: &mut Obj<'_>, key: &'static str, parse: fn(&str) -> Option<T>, all: &[&str]) -> R<T> {
    let s = o.req_str(key)?;
    parse(s).ok_or_else(|| bad(&o.field(key), format!("`{s}` is not one of: {}", all.join(", "))))
}

fn metric(o: &mut Obj<'_>) -> R<Metric> {
    let all: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
    parse_enum(o, "metric", Metric::parse, &all)
}

fn point(field: &str, v: &Value) -> R<LatLon> {
    let mut o = Obj::new(field, v)?;
    let p = LatLon { lat: o.num("lat", f64::NAN, -90.0, 90.0)?, lon: o.num("lon", f64::NAN, -180.0, 180.0)? };
    o.done()?;
    if p.is_valid() { Ok(p) } else { Err(bad(field, "needs lat and lon")) }
}

fn set(field: &str, kind: SetKind, v: &Value) -> R<Set> {
    let list = v.as_array().ok_or_else(|| bad(field, "must be a list"))?;
    if list.is_empty() || list.len() > MAX_ITEMS {
        return Err(bad(field, format!("must hold 1 to {MAX_ITEMS} entries")));
    }
    let item = |i: usize| format!("{field}[{i}]");
    Ok(match kind {
        SetKind::Ports => Set::Ports(
            list.iter()
                .enumerate()
                .map(|(i, v)| {
                    let range = match v {
                        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()).map(|p| (p, p)),
                        Value::String(s) => {
                            s.split_once('-').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                        }
                        _ => None,
                    };
                    match range {
                        Some((a, b)) if a <= b => Ok((a, b)),
                        _ => Err(bad(&item(i), "must be a port (0-65535) or a range \"from-to\"")),
                    }
                })
                .collect::<R<_>>()?,
        ),
        SetKind::Cidrs => Set::Cidrs(
            list.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().and_then(Cidr::parse).ok_or_else(|| bad(&item(i), "must be an address or a CIDR block"))
                })
                .collect::<R<_>>()?,
        ),
        SetKind::Strings => Set::Strings(
            list.iter()
                .enumerate()
                .map(|(i, v)| match v.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 256 => Ok(s.to_owned()),
                    _ => Err(bad(&item(i), "must be a non-empty string")),
                })
                .collect::<R<_>>()?,
        ),
    })
}

fn condition(o: &mut Obj<'_>, kind: &str) -> R<Condition> {
    let secs = |o: &mut Obj<'_>, key: &'static str, default: u64| -> R<i64> {
        Ok(i64::try_from(o.int(key, default, 1, 30 * 86_400)?.saturating_mul(1000)).unwrap_or(i64::MAX))
    };
    Ok(match kind {
        "threshold" => {
            let metric = metric(o)?;
            let above = match o.req_str("op")? {
                ">" => true,
                "<" => false,
                other => return Err(bad(&o.field("op"), format!("`{other}` is not one of: >, <"))),
            };
            let value = o.get("value").and_then(Value::as_f64).filter(|v| v.is_finite());
            let value = value.ok_or_else(|| bad(&o.field("value"), "is required and must be a number"))?;
            Condition::Threshold { metric, above, value }
        }
        "membership" => {
            let all: Vec<&str> = SetField::ALL.iter().map(|f| f.as_str()).collect();
            let field = parse_enum(o, "field", SetField::parse, &all)?;
            let in_set = match o.req_str("op")? {
                "in" => true,
                "not_in" => false,
                other => return Err(bad(&o.field("op"), format!("`{other}` is not one of: in, not_in"))),
            };
            let path = o.field("set");
            let v = o.get("set").ok_or_else(|| bad(&path, "is required"))?;
            Condition::Membership { field, in_set, set: set(&path, field.set_kind(), v)? }
        }
        "baseline" => Condition::Baseline {
            metric: metric(o)?,
            sensitivity: o.num("sensitivity", 6.0, 1.0, 100.0)?,
            warmup: o.int("warmup", 30, 5, 100_000)?,
            min_value: o.num("min_value", 0.0, 0.0, 1e15)?,
        },
        "fleet_percentile" => Condition::FleetPercentile {
            metric: metric(o)?,
            percentile: o.num("percentile", 95.0, 1.0, 100.0)?,
            factor: o.num("factor", 3.0, 1.0, 1e6)?,
            min_devices: usize::try_from(o.int("min_devices", 10, 2, 1_000_000)?).unwrap_or(10),
        },
        "geofence" => {
            let (circle, polygon) = (o.field("circle"), o.field("polygon"));
            let shape = match (o.get("circle"), o.get("polygon")) {
                (Some(c), None) => {
                    let mut c = Obj::new(&circle, c)?;
                    let center = c.get("center").map(|v| point(&c.field("center"), v)).transpose()?;
                    let radius_km = c.num("radius_km", f64::NAN, 0.001, 20_000.0)?;
                    if radius_km.is_nan() {
                        return Err(bad(&c.field("radius_km"), "is required"));
                    }
                    c.done()?;
                    Shape::Circle { center, radius_km }
                }
                (None, Some(p)) => {
                    let list = p.as_array().ok_or_else(|| bad(&polygon, "must be a list of points"))?;
                    if list.len() < 3 || list.len() > MAX_ITEMS {
                        return Err(bad(&polygon, format!("must hold 3 to {MAX_ITEMS} points")));
                    }
                    Shape::Polygon(
                        list.iter().enumerate().map(|(i, v)| point(&format!("{polygon}[{i}]"), v)).collect::<R<_>>()?,
                    )
                }
                _ => return Err(bad(&o.field("circle"), "give exactly one of circle or polygon")),
            };
            Condition::Geofence { shape }
        }
        "impossible_travel" => Condition::ImpossibleTravel {
            max_kmh: o.num("max_kmh", 900.0, 1.0, 100_000.0)?,
            min_km: o.num("min_km", 5.0, 0.0, 20_000.0)?,
        },
        "sim_binding" => Condition::SimBinding,
        "inactivity" => Condition::Inactivity {
            factor: o.num("factor", 5.0, 1.5, 1000.0)?,
            min_ms: i64::try_from(o.int("min_s", 0, 0, 30 * 86_400)?.saturating_mul(1000)).unwrap_or(0),
        },
        "flapping" => Condition::Flapping {
            connects: usize::try_from(o.int("connects", 5, 2, 10_000)?).unwrap_or(5),
            window_ms: secs(o, "window_s", 600)?,
        },
        "session_duration" => Condition::SessionDuration { min_ms: secs(o, "min_s", 60)? },
        "failed_logins" => {
            Condition::FailedLogins { count: o.int("count", 20, 1, 1_000_000)?, window_ms: secs(o, "window_s", 600)? }
        }
        "firmware_integrity" => Condition::FirmwareIntegrity,
        "firmware_downgrade" => Condition::FirmwareDowngrade,
        "certificate_two_places" => Condition::CertificateTwoPlaces,
        "unauthorized_topic" => Condition::UnauthorizedTopic,
        "posture" => Condition::Posture,
        other => {
            return Err(bad(
                &o.field("kind"),
                format!(
                    "`{other}` is not a rule kind (threshold, membership, baseline, fleet_percentile, geofence, \
                     impossible_travel, sim_binding, inactivity, flapping, session_duration, failed_logins, \
                     firmware_integrity, firmware_downgrade, certificate_two_places, unauthorized_topic, posture)"
                ),
            ));
        }
    })
}

fn rule(path: &str, v: &Value) -> R<Rule> {
    let mut o = Obj::new(path, v)?;
    let id = name(&o.field("id"), o.req_str("id")?)?;
    let kind = o.req_str("kind")?;
    let condition = condition(&mut o, kind)?;
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let severity = if o.map.contains_key("severity") {
        parse_enum(&mut o, "severity", Severity::parse, &severities)?
    } else {
        o.used.push("severity");
        Severity::Medium
    };
    let responses: Vec<&str> = Response::ALL.iter().map(|r| r.as_str()).collect();
    let response = if o.map.contains_key("response") {
        parse_enum(&mut o, "response", Response::parse, &responses)?
    } else {
        o.used.push("response");
        Response::AlertOnly
    };
    let rule = Rule {
        id,
        severity,
        response,
        dry_run: o.bool("dry_run", false)?,
        alarm_after: u32::try_from(o.int("alarm_after", 1, 1, 1000)?).unwrap_or(1),
        clear_after: u32::try_from(o.int("clear_after", 3, 1, 1000)?).unwrap_or(3),
        auto_resolve: o.bool("auto_resolve", true)?,
        condition,
    };
    o.done()?;
    Ok(rule)
}

fn escalation(path: &str, v: &Value, profile: &str) -> R<(Severity, EscalationPolicy)> {
    let mut o = Obj::new(path, v)?;
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let min = if o.map.contains_key("min_severity") {
        parse_enum(&mut o, "min_severity", Severity::parse, &severities)?
    } else {
        o.used.push("min_severity");
        Severity::Critical
    };
    let repeat = o.bool("repeat", false)?;
    let tiers_path = o.field("tiers");
    let list =
        o.get("tiers").and_then(Value::as_array).ok_or_else(|| bad(&tiers_path, "is required: a list of tiers"))?;
    if list.is_empty() || list.len() > 16 {
        return Err(bad(&tiers_path, "must hold 1 to 16 tiers"));
    }
    let tiers = list
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut t = Obj::new(&format!("{tiers_path}[{i}]"), t)?;
            let after_ms = i64::try_from(t.int("after_s", 0, 0, 30 * 86_400)?.saturating_mul(1000)).unwrap_or(0);
            let channels = t.names("channels")?;
            if channels.is_empty() {
                return Err(bad(&t.field("channels"), "must name at least one channel"));
            }
            t.done()?;
            Ok(Tier { after_ms, channels })
        })
        .collect::<R<Vec<_>>>()?;
    o.done()?;
    Ok((min, EscalationPolicy { name: profile.to_owned(), tiers, repeat }))
}

/// Parses and validates a profile.
pub fn parse(v: &Value) -> R<ParsedProfile> {
    let mut o = Obj::new("", v)?;
    let name = name("name", o.req_str("name")?)?;
    let groups = o.names("groups")?;
    let models = o.names("models")?;
    let escalation = o.get("escalation").map(|e| escalation("escalation", e, &name)).transpose()?;
    let rules = o.get("rules").and_then(Value::as_array).ok_or_else(|| bad("rules", "is required: a list of rules"))?;
    if rules.len() > MAX_RULES {
        return Err(bad("rules", format!("at most {MAX_RULES} rules")));
    }
    let rules = rules.iter().enumerate().map(|(i, r)| rule(&format!("rules[{i}]"), r)).collect::<R<Vec<_>>>()?;
    for (i, r) in rules.iter().enumerate() {
        if rules.iter().take(i).any(|o| o.id == r.id) {
            return Err(bad(&format!("rules[{i}].id"), format!("`{}` is used by another rule of this profile", r.id)));
        }
    }
    o.done()?;
    Ok(ParsedProfile { profile: Profile { name, groups, models, rules }, escalation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn a_full_profile_parses() {
        let p = parse(&json!({
            "name": "meters", "groups": ["field"], "models": ["smart_meter"],
            "escalation": {"tiers": [{"after_s": 0, "channels": ["a"]}, {"after_s": 300, "channels": ["b"]}]},
            "rules": [
                {"id": "exfil", "kind": "baseline", "metric": "tx_bps", "severity": "critical", "response": "quarantine", "alarm_after": 2},
                {"id": "ports", "kind": "membership", "field": "listening_port", "op": "not_in", "set": [443, "8000-8100"]},
                {"id": "dst", "kind": "membership", "field": "destination", "op": "not_in", "set": ["198.51.100.0/24"]},
                {"id": "fence", "kind": "geofence", "circle": {"radius_km": 1}},
                {"id": "area", "kind": "geofence", "polygon": [{"lat": 0, "lon": 0}, {"lat": 1, "lon": 0}, {"lat": 1, "lon": 1}]},
                {"id": "cpu", "kind": "threshold", "metric": "cpu_pct", "op": ">", "value": 95, "dry_run": true},
                {"id": "silent", "kind": "inactivity", "factor": 10},
                {"id": "clone", "kind": "certificate_two_places", "severity": "high", "response": "revoke"}
            ]
        }))
        .unwrap();
        assert_eq!(p.profile.rules.len(), 8);
        assert_eq!(p.profile.rules[0].severity, Severity::Critical);
        assert_eq!(p.profile.rules[0].response, Response::Quarantine);
        assert_eq!(
            p.profile.rules[1].condition,
            Condition::Membership {
                field: SetField::ListeningPort,
                in_set: false,
                set: Set::Ports(vec![(443, 443), (8000, 8100)])
            }
        );
        let (min, policy) = p.escalation.unwrap();
        assert_eq!((min, policy.tiers.len(), policy.tiers[1].after_ms), (Severity::Critical, 2, 300_000));
    }

    #[test]
    fn bad_rules_name_the_field_and_the_reason() {
        let with = |rule: Value| json!({"name": "p", "rules": [rule]});
        assert_eq!(err(json!({"rules": []})), "name: is required");
        assert_eq!(err(json!({"name": "a b", "rules": []})), "name: must be 1-64 letters, digits, '-', '_' or '.'");
        assert!(err(with(json!({"id": "x", "kind": "nope"}))).starts_with("rules[0].kind: `nope` is not a rule kind"));
        assert_eq!(
            err(with(json!({"id": "x", "kind": "threshold", "metric": "tx_bps", "op": ">"}))),
            "rules[0].value: is required and must be a number"
        );
        assert!(
            err(with(json!({"id": "x", "kind": "threshold", "metric": "bogus", "op": ">", "value": 1})))
                .starts_with("rules[0].metric: `bogus` is not one of: tx_bps")
        );
        assert_eq!(
            err(with(
                json!({"id": "x", "kind": "membership", "field": "destination", "op": "not_in", "set": ["10.0.0.0/99"]})
            )),
            "rules[0].set[0]: must be an address or a CIDR block"
        );
        assert_eq!(
            err(with(json!({"id": "x", "kind": "membership", "field": "listening_port", "op": "in", "set": [70000]}))),
            "rules[0].set[0]: must be a port (0-65535) or a range \"from-to\""
        );
        assert_eq!(
            err(with(json!({"id": "x", "kind": "baseline", "metric": "tx_bps", "sensitivity": 0}))),
            "rules[0].sensitivity: must be between 1 and 100"
        );
        assert_eq!(err(with(json!({"id": "x", "kind": "posture", "treshold": 3}))), "rules[0].treshold: unknown key");
        assert_eq!(
            err(with(json!({"id": "x", "kind": "posture", "severity": "urgent"}))),
            "rules[0].severity: `urgent` is not one of: info, low, medium, high, critical"
        );
        assert_eq!(
            err(with(json!({"id": "x", "kind": "geofence"}))),
            "rules[0].circle: give exactly one of circle or polygon"
        );
        assert_eq!(
            err(with(json!({"id": "x", "kind": "geofence", "polygon": [{"lat": 0, "lon": 0}]}))),
            "rules[0].polygon: must hold 3 to 1024 points"
        );
        assert_eq!(
            err(json!({"name": "p", "rules": [{"id": "x", "kind": "posture"}, {"id": "x", "kind": "sim_binding"}]})),
            "rules[1].id: `x` is used by another rule of this profile"
        );
        assert_eq!(
            err(json!({"name": "p", "escalation": {"tiers": [{"after_s": 5}]}, "rules": []})),
            "escalation.tiers[0].channels: must name at least one channel"
        );
        assert_eq!(err(json!([1])), "profile: must be an object");
    }
}
