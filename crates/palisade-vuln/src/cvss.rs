//! CVSS vectors: validation of v2, v3.0, v3.1 and v4.0 vectors, and their scores computed as
//! their specifications define them.
//!
//! - v2 and v3.x: the base score from the base equations; temporal and environmental metrics are
//!   validated and ignored.
//! - v4.0: the score of the vector with whatever threat and environmental metrics it carries
//!   (CVSS-B, CVSS-BT, CVSS-BE or CVSS-BTE), from the specification's macro vectors, their
//!   lookup table and the severity-distance interpolation (section 8 of the v4.0 specification,
//!   as FIRST's reference calculator computes it). Supplemental metrics do not change it.

use std::fmt;

/// A CVSS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CvssVersion {
    V2,
    V3_0,
    V3_1,
    V4_0,
}

impl fmt::Display for CvssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "2.0",
            Self::V3_0 => "3.0",
            Self::V3_1 => "3.1",
            Self::V4_0 => "4.0",
        })
    }
}

/// A score and its qualitative severity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cvss {
    pub version: CvssVersion,
    /// The base score (v2, v3.x), or for v4.0 the score with the vector's threat and environmental
    /// metrics (CVSS-B when it carries none); 0.0 to 10.0, one decimal.
    pub base: f64,
    /// `None`, `Low`, `Medium`, `High` or `Critical` (v2 has only `Low`, `Medium`, `High`).
    pub severity: &'static str,
}

/// Why a vector cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvssError {
    #[error("empty CVSS vector")]
    Empty,
    #[error("unknown CVSS version prefix {0:?}")]
    UnknownVersion(String),
    #[error("malformed metric {0:?}: expected NAME:VALUE")]
    Malformed(String),
    #[error("unknown metric {0:?} for CVSS {1}")]
    UnknownMetric(String, CvssVersion),
    #[error("metric {metric}: {value:?} is not a valid value")]
    InvalidValue { metric: String, value: String },
    #[error("metric {0} is given twice")]
    Duplicate(String),
    #[error("base metric {0} is missing")]
    Missing(&'static str),
}

/// A metric: its name, allowed values, and whether it is a mandatory base metric.
type Metric = (&'static str, &'static [&'static str], bool);

const V2_METRICS: &[Metric] = &[
    ("AV", &["L", "A", "N"], true),
    ("AC", &["H", "M", "L"], true),
    ("Au", &["M", "S", "N"], true),
    ("C", &["N", "P", "C"], true),
    ("I", &["N", "P", "C"], true),
    ("A", &["N", "P", "C"], true),
    ("E", &["U", "POC", "F", "H", "ND"], false),
    ("RL", &["OF", "TF", "W", "U", "ND"], false),
    ("RC", &["UC", "UR", "C", "ND"], false),
    ("CDP", &["N", "L", "LM", "MH", "H", "ND"], false),
    ("TD", &["N", "L", "M", "H", "ND"], false),
    ("CR", &["L", "M", "H", "ND"], false),
    ("IR", &["L", "M", "H", "ND"], false),
    ("AR", &["L", "M", "H", "ND"], false),
];

const V3_METRICS: &[Metric] = &[
    ("AV", &["N", "A", "L", "P"], true),
    ("AC", &["L", "H"], true),
    ("PR", &["N", "L", "H"], true),
    ("UI", &["N", "R"], true),
    ("S", &["U", "C"], true),
    ("C", &["H", "L", "N"], true),
    ("I", &["H", "L", "N"], true),
    ("A", &["H", "L", "N"], true),
    ("E", &["X", "U", "P", "F", "H"], false),
    ("RL", &["X", "O", "T", "W", "U"], false),
    ("RC", &["X", "U", "R", "C"], false),
    ("CR", &["X", "L", "M", "H"], false),
    ("IR", &["X", "L", "M", "H"], false),
    ("AR", &["X", "L", "M", "H"], false),
    ("MAV", &["X", "N", "A", "L", "P"], false),
    ("MAC", &["X", "L", "H"], false),
    ("MPR", &["X", "N", "L", "H"], false),
    ("MUI", &["X", "N", "R"], false),
    ("MS", &["X", "U", "C"], false),
    ("MC", &["X", "N", "L", "H"], false),
    ("MI", &["X", "N", "L", "H"], false),
    ("MA", &["X", "N", "L", "H"], false),
];

const V4_METRICS: &[Metric] = &[
    ("AV", &["N", "A", "L", "P"], true),
    ("AC", &["L", "H"], true),
    ("AT", &["N", "P"], true),
    ("PR", &["N", "L", "H"], true),
    ("UI", &["N", "P", "A"], true),
    ("VC", &["H", "L", "N"], true),
    ("VI", &["H", "L", "N"], true),
    ("VA", &["H", "L", "N"], true),
    ("SC", &["H", "L", "N"], true),
    ("SI", &["H", "L", "N"], true),
    ("SA", &["H", "L", "N"], true),
    ("E", &["X", "A", "P", "U"], false),
    ("CR", &["X", "H", "M", "L"], false),
    ("IR", &["X", "H", "M", "L"], false),
    ("AR", &["X", "H", "M", "L"], false),
    ("MAV", &["X", "N", "A", "L", "P"], false),
    ("MAC", &["X", "L", "H"], false),
    ("MAT", &["X", "N", "P"], false),
    ("MPR", &["X", "N", "L", "H"], false),
    ("MUI", &["X", "N", "P", "A"], false),
    ("MVC", &["X", "H", "L", "N"], false),
    ("MVI", &["X", "H", "L", "N"], false),
    ("MVA", &["X", "H", "L", "N"], false),
    ("MSC", &["X", "H", "L", "N"], false),
    ("MSI", &["X", "S", "H", "L", "N"], false),
    ("MSA", &["X", "S", "H", "L", "N"], false),
    ("S", &["X", "N", "P"], false),
    ("AU", &["X", "N", "Y"], false),
    ("R", &["X", "A", "U", "I"], false),
    ("V", &["X", "D", "C"], false),
    ("RE", &["X", "L", "M", "H"], false),
    ("U", &["X", "Clear", "Green", "Amber", "Red"], false),
];

/// A validated vector: its version and the value of each metric, in table order.
#[derive(Debug)]
struct Parsed<'a> {
    version: CvssVersion,
    table: &'static [Metric],
    values: Vec<Option<&'a str>>,
}

impl Parsed<'_> {
    /// The value of a metric, `""` when the vector does not carry it; base metrics are always
    /// present after validation.
    fn get(&self, name: &str) -> &str {
        self.table
            .iter()
            .position(|(metric, _, _)| *metric == name)
            .and_then(|at| self.values.get(at).copied().flatten())
            .unwrap_or("")
    }
}

fn parse(vector: &str) -> Result<Parsed<'_>, CvssError> {
    let vector = vector.trim();
    if vector.is_empty() {
        return Err(CvssError::Empty);
    }
    let (version, body) = if let Some(rest) = vector.strip_prefix("CVSS:") {
        let (prefix, body) = rest.split_once('/').unwrap_or((rest, ""));
        let version = match prefix {
            "2.0" => CvssVersion::V2,
            "3.0" => CvssVersion::V3_0,
            "3.1" => CvssVersion::V3_1,
            "4.0" => CvssVersion::V4_0,
            other => return Err(CvssError::UnknownVersion(format!("CVSS:{other}"))),
        };
        (version, body)
    } else {
        // CVSS v2 vectors carry no prefix; NVD sometimes wraps them in parentheses.
        let body = vector.strip_prefix('(').and_then(|inner| inner.strip_suffix(')')).unwrap_or(vector);
        (CvssVersion::V2, body)
    };
    let table = match version {
        CvssVersion::V2 => V2_METRICS,
        CvssVersion::V3_0 | CvssVersion::V3_1 => V3_METRICS,
        CvssVersion::V4_0 => V4_METRICS,
    };
    let mut values: Vec<Option<&str>> = vec![None; table.len()];
    for part in body.split('/') {
        let Some((name, value)) = part.split_once(':') else {
            return Err(CvssError::Malformed(part.to_owned()));
        };
        let Some(at) = table.iter().position(|(metric, _, _)| *metric == name) else {
            return Err(CvssError::UnknownMetric(name.to_owned(), version));
        };
        let allowed = table.get(at).is_some_and(|(_, allowed, _)| allowed.contains(&value));
        if !allowed {
            return Err(CvssError::InvalidValue { metric: name.to_owned(), value: value.to_owned() });
        }
        match values.get_mut(at) {
            Some(slot @ None) => *slot = Some(value),
            _ => return Err(CvssError::Duplicate(name.to_owned())),
        }
    }
    for ((name, _, mandatory), value) in table.iter().zip(&values) {
        if *mandatory && value.is_none() {
            return Err(CvssError::Missing(name));
        }
    }
    Ok(Parsed { version, table, values })
}

/// Validates a vector of any supported version without scoring it.
pub fn validate(vector: &str) -> Result<CvssVersion, CvssError> {
    parse(vector).map(|parsed| parsed.version)
}

/// The score of a vector: the base score of a v2 or v3.x vector; for a v4.0 vector, its score with
/// the threat and environmental metrics it carries (the base score when it carries none).
pub fn score(vector: &str) -> Result<Cvss, CvssError> {
    let parsed = parse(vector)?;
    let base = match parsed.version {
        CvssVersion::V2 => v2_base(&parsed),
        CvssVersion::V3_0 | CvssVersion::V3_1 => v3_base(&parsed),
        CvssVersion::V4_0 => crate::cvss4::score(|name| parsed.get(name)),
    };
    let severity = match parsed.version {
        CvssVersion::V2 if base < 4.0 => "Low",
        CvssVersion::V2 if base < 7.0 => "Medium",
        CvssVersion::V2 => "High",
        _ if base == 0.0 => "None",
        _ if base < 4.0 => "Low",
        _ if base < 7.0 => "Medium",
        _ if base < 9.0 => "High",
        _ => "Critical",
    };
    Ok(Cvss { version: parsed.version, base, severity })
}

/// CVSS v2 base equation (v2 guide, section 3.2.1), rounded to one decimal.
fn v2_base(parsed: &Parsed<'_>) -> f64 {
    let access_vector = match parsed.get("AV") {
        "L" => 0.395,
        "A" => 0.646,
        _ => 1.0,
    };
    let access_complexity = match parsed.get("AC") {
        "H" => 0.35,
        "M" => 0.61,
        _ => 0.71,
    };
    let authentication = match parsed.get("Au") {
        "M" => 0.45,
        "S" => 0.56,
        _ => 0.704,
    };
    let impact_of = |name| match parsed.get(name) {
        "P" => 0.275,
        "C" => 0.660,
        _ => 0.0,
    };
    let impact = 10.41 * (1.0 - (1.0 - impact_of("C")) * (1.0 - impact_of("I")) * (1.0 - impact_of("A")));
    let exploitability = 20.0 * access_vector * access_complexity * authentication;
    let f_impact = if impact == 0.0 { 0.0 } else { 1.176 };
    let base: f64 = (0.6 * impact + 0.4 * exploitability - 1.5) * f_impact;
    (base * 10.0).round() / 10.0
}

/// CVSS v3.x base equations (v3.1 specification, section 7.1).
fn v3_base(parsed: &Parsed<'_>) -> f64 {
    let scope_changed = parsed.get("S") == "C";
    let attack_vector = match parsed.get("AV") {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        _ => 0.2,
    };
    let attack_complexity = if parsed.get("AC") == "L" { 0.77 } else { 0.44 };
    let privileges = match (parsed.get("PR"), scope_changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let user_interaction = if parsed.get("UI") == "N" { 0.85 } else { 0.62 };
    let impact_of = |name| match parsed.get(name) {
        "H" => 0.56,
        "L" => 0.22,
        _ => 0.0,
    };
    let iss: f64 = 1.0 - (1.0 - impact_of("C")) * (1.0 - impact_of("I")) * (1.0 - impact_of("A"));
    let impact: f64 = if scope_changed { 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15) } else { 6.42 * iss };
    let exploitability: f64 = 8.22 * attack_vector * attack_complexity * privileges * user_interaction;
    if impact <= 0.0 {
        0.0
    } else if scope_changed {
        round_up((1.08 * (impact + exploitability)).min(10.0))
    } else {
        round_up((impact + exploitability).min(10.0))
    }
}

/// Round-up to one decimal as defined in CVSS v3.1 Appendix A, which avoids floating-point
/// artefacts (4.000000001 → 4.0, not 4.1). Used for v3.0 as well: it is what v3.0 means, computed
/// robustly.
fn round_up(value: f64) -> f64 {
    let scaled = (value * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 { scaled as f64 / 100_000.0 } else { ((scaled / 10_000) + 1) as f64 / 10.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(vector: &str) -> (f64, &'static str) {
        let cvss = score(vector).unwrap();
        (cvss.base, cvss.severity)
    }

    #[test]
    fn v3_scores_match_the_specification() {
        assert_eq!(base("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), (9.8, "Critical"));
        assert_eq!(base("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"), (6.1, "Medium"));
        assert_eq!(base("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"), (7.8, "High"));
        assert_eq!(base("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N"), (6.4, "Medium"));
        assert_eq!(base("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"), (7.5, "High"));
        assert_eq!(base("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"), (8.1, "High"));
        assert_eq!(base("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"), (10.0, "Critical"));
        assert_eq!(base("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"), (1.6, "Low"));
        assert_eq!(base("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:N"), (0.0, "None"));
        // Temporal and environmental metrics are accepted; the base score ignores them.
        assert_eq!(base("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/MAV:L"), (9.8, "Critical"));
        assert_eq!(score("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap().version, CvssVersion::V3_0);
    }

    #[test]
    fn v2_scores_match_the_specification() {
        assert_eq!(base("AV:N/AC:L/Au:N/C:P/I:P/A:P"), (7.5, "High"));
        assert_eq!(base("AV:N/AC:M/Au:N/C:P/I:P/A:P"), (6.8, "Medium"));
        assert_eq!(base("AV:N/AC:L/Au:N/C:C/I:C/A:C"), (10.0, "High"));
        assert_eq!(base("AV:N/AC:L/Au:N/C:N/I:N/A:C"), (7.8, "High"));
        assert_eq!(base("AV:L/AC:L/Au:N/C:P/I:N/A:N"), (2.1, "Low"));
        assert_eq!(base("(AV:N/AC:L/Au:N/C:N/I:N/A:N)"), (0.0, "Low"));
        assert_eq!(base("AV:N/AC:L/Au:N/C:P/I:P/A:P/E:POC/RL:OF/RC:C"), (7.5, "High"));
    }

    #[test]
    fn round_up_follows_appendix_a() {
        assert_eq!(round_up(4.000_000_000_01), 4.0);
        assert_eq!(round_up(4.02), 4.1);
        assert_eq!(round_up(4.1), 4.1);
    }

    #[test]
    fn v4_is_validated_and_scored() {
        let vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
        assert_eq!(validate(vector), Ok(CvssVersion::V4_0));
        assert_eq!(score(vector), Ok(Cvss { version: CvssVersion::V4_0, base: 9.3, severity: "Critical" }));
        assert_eq!(
            base("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/MSI:S/U:Amber"),
            (10.0, "Critical")
        );
        assert_eq!(base("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N"), (0.0, "None"));
        assert_eq!(base("CVSS:4.0/AV:N/AC:H/AT:N/PR:H/UI:A/VC:N/VI:N/VA:N/SC:N/SI:H/SA:N"), (4.0, "Medium"));
        assert_eq!(base("CVSS:4.0/AV:A/AC:L/AT:P/PR:L/UI:P/VC:L/VI:N/VA:N/SC:N/SI:L/SA:L"), (1.0, "Low"));
        assert_eq!(base("CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:P/VC:N/VI:H/VA:H/SC:H/SI:H/SA:N"), (8.3, "High"));
        assert_eq!(
            validate("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:R/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
            Err(CvssError::InvalidValue { metric: "UI".into(), value: "R".into() })
        );
        assert_eq!(
            score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/MSC:S"),
            Err(CvssError::InvalidValue { metric: "MSC".into(), value: "S".into() })
        );
        assert_eq!(score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N"), Err(CvssError::Missing("SA")));
    }

    #[test]
    fn malformed_vectors_name_the_metric() {
        assert_eq!(score(""), Err(CvssError::Empty));
        assert_eq!(score("CVSS:3.2/AV:N"), Err(CvssError::UnknownVersion("CVSS:3.2".into())));
        assert_eq!(
            score("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Err(CvssError::InvalidValue { metric: "AV".into(), value: "X".into() })
        );
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"), Err(CvssError::Missing("A")));
        assert_eq!(score("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), Err(CvssError::Duplicate("AV".into())));
        assert_eq!(
            score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/Au:N"),
            Err(CvssError::UnknownMetric("Au".into(), CvssVersion::V3_1))
        );
        assert_eq!(score("CVSS:3.1/AV:N/ACL"), Err(CvssError::Malformed("ACL".into())));
        assert_eq!(score("CVSS:3.1/"), Err(CvssError::Malformed(String::new())));
        assert_eq!(score("AV:N/AC:L/Au:N/C:P/I:P"), Err(CvssError::Missing("A")));
        assert_eq!(
            score("AV:N/AC:L/Au:N/C:P/I:P/A:H").unwrap_err().to_string(),
            "metric A: \"H\" is not a valid value"
        );
    }
}
