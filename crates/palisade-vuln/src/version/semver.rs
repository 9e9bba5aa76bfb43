//! SemVer 2.0 precedence (npm, Cargo) and Go module versions.
//!
//! Precedence: major, minor and patch numerically; a version with a pre-release is lower than
//! the same version without; pre-release identifiers compare one by one, numeric ones
//! numerically and lower than alphanumeric ones, alphanumeric ones in ASCII order, and a
//! shorter set is lower when all preceding identifiers are equal. Build metadata is ignored.
//! Go pseudo-versions (`v0.0.0-20191109021931-daa7c04131f5`) are pre-releases whose identifier
//! starts with a fixed-width timestamp, so this order sorts them by time; `+incompatible` is
//! build metadata.

use std::cmp::Ordering;

use super::Num;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    /// Strict SemVer 2.0.
    Cargo,
    /// SemVer with a leading `v` or `=` (and surrounding whitespace) tolerated.
    Npm,
    /// SemVer with an optional `v`, and Go's `vMAJOR` / `vMAJOR.MINOR` shorthands.
    Go,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Numeric(Num),
    Alpha(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SemVer {
    major: Num,
    minor: Num,
    patch: Num,
    pre: Vec<Ident>,
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.major
            .cmp(&other.major)
            .then_with(|| self.minor.cmp(&other.minor))
            .then_with(|| self.patch.cmp(&other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

fn numeric(part: &str, what: &str) -> Result<Num, String> {
    if part.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {part:?} is not a number"));
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err(format!("{what} {part:?} has a leading zero"));
    }
    Ok(Num::from_digits(part))
}

pub(super) fn parse(s: &str, flavor: Flavor) -> Result<SemVer, String> {
    let mut rest = s;
    match flavor {
        Flavor::Cargo => {}
        Flavor::Npm => {
            rest = rest.trim();
            rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
            rest = rest.strip_prefix(['v', 'V']).unwrap_or(rest);
        }
        Flavor::Go => rest = rest.strip_prefix('v').unwrap_or(rest),
    }
    let (rest, build) = match rest.split_once('+') {
        Some((head, build)) => (head, Some(build)),
        None => (rest, None),
    };
    if let Some(build) = build {
        for ident in build.split('.') {
            if ident.is_empty() {
                return Err("build metadata has an empty identifier".to_owned());
            }
            if !ident.chars().all(is_ident_char) {
                return Err(format!("build metadata identifier {ident:?} has a character other than [0-9A-Za-z-]"));
            }
        }
    }
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let mut parts = core.split('.');
    let major = numeric(parts.next().unwrap_or_default(), "major version")?;
    let minor = parts.next().map(|p| numeric(p, "minor version")).transpose()?;
    let patch = parts.next().map(|p| numeric(p, "patch version")).transpose()?;
    if parts.next().is_some() {
        return Err(format!("{core:?} has more than three numeric parts"));
    }
    let (minor, patch) = match (minor, patch) {
        (Some(minor), Some(patch)) => (minor, patch),
        (minor, _) if flavor == Flavor::Go && pre.is_none() && build.is_none() => {
            (minor.unwrap_or_default(), Num::default())
        }
        _ => return Err("needs major.minor.patch".to_owned()),
    };
    let mut idents = Vec::new();
    if let Some(pre) = pre {
        for ident in pre.split('.') {
            if ident.is_empty() {
                return Err("pre-release has an empty identifier".to_owned());
            }
            if !ident.chars().all(is_ident_char) {
                return Err(format!("pre-release identifier {ident:?} has a character other than [0-9A-Za-z-]"));
            }
            if ident.bytes().all(|b| b.is_ascii_digit()) {
                idents.push(Ident::Numeric(numeric(ident, "numeric pre-release identifier")?));
            } else {
                idents.push(Ident::Alpha(ident.to_owned()));
            }
        }
    }
    Ok(SemVer { major, minor, patch, pre: idents })
}
