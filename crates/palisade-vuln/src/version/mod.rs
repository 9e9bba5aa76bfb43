//! Version order per ecosystem.
//!
//! Every ecosystem orders its versions by its own rules: SemVer 2.0 for npm and Cargo, SemVer
//! with a `v` prefix and pseudo-versions for Go modules, `ComparableVersion` for Maven, PEP 440
//! for PyPI, dpkg for Debian, apk-tools for Alpine and rpmvercmp for RPM distributions. Each
//! rule set is implemented here from its specification. [`Ecosystem::Generic`] is a
//! lower-confidence, numeric-aware fallback that never fails.
//!
//! The matcher compares one component version against many range bounds, so [`Version::parse`]
//! does the parsing once and [`Version`]'s `Ord` compares parsed forms.

mod apk;
mod dpkg;
mod generic;
mod maven;
mod pep440;
mod rpm;
mod semver;

use std::cmp::Ordering;
use std::fmt;

/// A package ecosystem, which decides how versions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ecosystem {
    /// npm: SemVer 2.0, leading `v` / `=` tolerated.
    Npm,
    /// crates.io: SemVer 2.0.
    Cargo,
    /// Go modules: SemVer with a `v` prefix, `+incompatible`, pseudo-versions.
    Go,
    /// Maven: `ComparableVersion`.
    Maven,
    /// PyPI: PEP 440.
    PyPI,
    /// Debian and derivatives (Ubuntu): dpkg.
    Debian,
    /// Alpine and other apk distributions: apk-tools.
    Alpine,
    /// RPM distributions (Red Hat, Rocky, Alma, SUSE, Fedora…): rpmvercmp.
    Rpm,
    /// Anything else: numeric-aware segment comparison, lower confidence.
    Generic,
}

impl Ecosystem {
    /// The ecosystem of a package URL type (`npm`, `cargo`, `golang`, `maven`, `pypi`, `deb`,
    /// `apk`, `rpm`); anything else is [`Ecosystem::Generic`].
    pub fn from_purl_type(ty: &str) -> Self {
        match ty.to_ascii_lowercase().as_str() {
            "npm" => Self::Npm,
            "cargo" => Self::Cargo,
            "golang" => Self::Go,
            "maven" => Self::Maven,
            "pypi" => Self::PyPI,
            "deb" => Self::Debian,
            "apk" => Self::Alpine,
            "rpm" => Self::Rpm,
            _ => Self::Generic,
        }
    }

    /// The ecosystem of an OSV `affected[].package.ecosystem` value (`npm`, `crates.io`, `Go`,
    /// `Maven`, `PyPI`, `Debian:11`, `Alpine:v3.18`, `Red Hat`, `Rocky Linux`…). A release
    /// suffix after `:` is ignored. Unknown names are [`Ecosystem::Generic`], not an error.
    pub fn from_osv(name: &str) -> Self {
        let base = name.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        match base.as_str() {
            "npm" => Self::Npm,
            "crates.io" => Self::Cargo,
            "go" => Self::Go,
            "maven" => Self::Maven,
            "pypi" => Self::PyPI,
            "debian" | "ubuntu" => Self::Debian,
            "alpine" | "wolfi" | "chainguard" | "alpaquita" | "bellsoft hardened containers" => Self::Alpine,
            "red hat" | "rocky linux" | "almalinux" | "opensuse" | "suse" | "mageia" | "openeuler" | "photon os"
            | "azure linux" | "fedora" => Self::Rpm,
            _ => Self::Generic,
        }
    }

    /// Short lowercase name, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::Cargo => "cargo",
            Self::Go => "go",
            Self::Maven => "maven",
            Self::PyPI => "pypi",
            Self::Debian => "debian",
            Self::Alpine => "alpine",
            Self::Rpm => "rpm",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string that its ecosystem's rules cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is empty (or only whitespace).
    #[error("{ecosystem} version {version:?} is empty")]
    Empty {
        /// Whose rules were applied.
        ecosystem: Ecosystem,
        /// The version as given.
        version: String,
    },
    /// The version does not follow the ecosystem's syntax.
    #[error("{ecosystem} version {version:?} is invalid: {reason}")]
    Invalid {
        /// Whose rules were applied.
        ecosystem: Ecosystem,
        /// The version as given.
        version: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A version parsed once under its ecosystem's rules, ready to be compared many times.
///
/// `Ord` and `Eq` follow the ecosystem's order, so two versions that are spelled differently
/// can be equal (`1.0.0+a == 1.0.0+b` in SemVer, `2.10 == 2.10.0.0` in Maven). Versions are
/// meant to be compared within one ecosystem; across ecosystems the order is arbitrary but
/// still total.
#[derive(Debug, Clone)]
pub struct Version {
    ecosystem: Ecosystem,
    raw: String,
    key: Key,
}

#[derive(Debug, Clone)]
enum Key {
    SemVer(semver::SemVer),
    Maven(maven::Maven),
    Pep440(pep440::Pep440),
    Dpkg(dpkg::Dpkg),
    Apk(apk::Apk),
    Rpm(rpm::Rpm),
    Generic(generic::Generic),
}

impl Key {
    fn rank(&self) -> u8 {
        match self {
            Self::SemVer(_) => 0,
            Self::Maven(_) => 1,
            Self::Pep440(_) => 2,
            Self::Dpkg(_) => 3,
            Self::Apk(_) => 4,
            Self::Rpm(_) => 5,
            Self::Generic(_) => 6,
        }
    }

    fn cmp_key(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::SemVer(a), Self::SemVer(b)) => a.cmp(b),
            (Self::Maven(a), Self::Maven(b)) => a.cmp(b),
            (Self::Pep440(a), Self::Pep440(b)) => a.cmp(b),
            (Self::Dpkg(a), Self::Dpkg(b)) => a.cmp(b),
            (Self::Apk(a), Self::Apk(b)) => a.cmp(b),
            (Self::Rpm(a), Self::Rpm(b)) => a.cmp(b),
            (Self::Generic(a), Self::Generic(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Longest version accepted by the ecosystem parsers; versions come from untrusted SBOMs and
/// advisories, and Maven's nesting grows with the input.
pub const MAX_VERSION_LEN: usize = 1024;

impl Version {
    /// Parses `s` under `ecosystem`'s rules. Every ecosystem but [`Ecosystem::Generic`] rejects
    /// empty versions and versions longer than [`MAX_VERSION_LEN`] bytes.
    pub fn parse(ecosystem: Ecosystem, s: &str) -> Result<Self, VersionError> {
        if s.trim().is_empty() && ecosystem != Ecosystem::Generic {
            return Err(VersionError::Empty { ecosystem, version: s.to_owned() });
        }
        let invalid = |reason: String| VersionError::Invalid { ecosystem, version: s.to_owned(), reason };
        if s.len() > MAX_VERSION_LEN && ecosystem != Ecosystem::Generic {
            return Err(invalid(format!("longer than {MAX_VERSION_LEN} bytes")));
        }
        let key = match ecosystem {
            Ecosystem::Npm => Key::SemVer(semver::parse(s, semver::Flavor::Npm).map_err(invalid)?),
            Ecosystem::Cargo => Key::SemVer(semver::parse(s, semver::Flavor::Cargo).map_err(invalid)?),
            Ecosystem::Go => Key::SemVer(semver::parse(s, semver::Flavor::Go).map_err(invalid)?),
            Ecosystem::Maven => Key::Maven(maven::parse(s)),
            Ecosystem::PyPI => Key::Pep440(pep440::parse(s).map_err(invalid)?),
            Ecosystem::Debian => Key::Dpkg(dpkg::parse(s).map_err(invalid)?),
            Ecosystem::Alpine => Key::Apk(apk::parse(s).map_err(invalid)?),
            Ecosystem::Rpm => Key::Rpm(rpm::parse(s).map_err(invalid)?),
            Ecosystem::Generic => Key::Generic(generic::parse(s)),
        };
        Ok(Self { ecosystem, raw: s.to_owned(), key })
    }

    /// The ecosystem whose rules parsed this version.
    pub fn ecosystem(&self) -> Ecosystem {
        self.ecosystem
    }

    /// The version as it was given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp_key(&other.key)
    }
}

/// Parses `s` under `ecosystem`'s rules; shorthand for [`Version::parse`].
pub fn parse(ecosystem: Ecosystem, s: &str) -> Result<Version, VersionError> {
    Version::parse(ecosystem, s)
}

/// Compares two versions under `ecosystem`'s rules. A version that cannot be parsed is an
/// error naming it; [`Ecosystem::Generic`] never fails.
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(Version::parse(ecosystem, a)?.cmp(&Version::parse(ecosystem, b)?))
}

/// An unsigned decimal number of any length: its digits without leading zeros (zero is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Num(String);

impl Num {
    /// `digits` must be ASCII digits only (callers check); leading zeros are dropped.
    pub(crate) fn from_digits(digits: &str) -> Self {
        Self(digits.trim_start_matches('0').to_owned())
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}
