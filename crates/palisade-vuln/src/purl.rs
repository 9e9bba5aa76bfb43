//! Package URLs (purl): `pkg:type/namespace/name@version?qualifiers#subpath`.
//!
//! Parsed the way the purl specification describes (right to left: subpath, qualifiers, then
//! scheme, type, version, name and namespace), with percent-decoding of every component, the
//! type and qualifier keys lowercased, qualifiers sorted, and the name/namespace normalisation
//! the specification asks of some types (npm, pypi, deb, apk, rpm vendor). [`fmt::Display`]
//! writes the canonical form; [`Purl::key`] is the purl without version, qualifiers and subpath,
//! which identifies a package across its versions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::version::Ecosystem;

/// A parsed package URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purl {
    /// The package type, lowercased (`npm`, `maven`, `deb`…).
    pub ty: String,
    /// Type-specific namespace (npm scope, Maven group, distribution vendor…), `/`-separated.
    pub namespace: Option<String>,
    /// The package name.
    pub name: String,
    /// The package version, if given.
    pub version: Option<String>,
    /// Extra data (`arch`, `distro`, `classifier`…), keys lowercased and sorted.
    pub qualifiers: BTreeMap<String, String>,
    /// A path inside the package, `/`-separated without `.`/`..` segments.
    pub subpath: Option<String>,
}

/// Why a package URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("purl {input:?}: {problem}")]
pub struct PurlError {
    /// The purl as given.
    pub input: String,
    /// What is wrong with it.
    pub problem: PurlProblem,
}

/// What is wrong with a package URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurlProblem {
    /// The scheme is missing or is not `pkg`.
    #[error("must start with pkg:")]
    Scheme,
    /// No type after the scheme.
    #[error("the type is missing")]
    MissingType,
    /// The type has characters other than letters, digits, `.`, `+`, `-`, or starts with a digit.
    #[error("type {0:?} must be ASCII letters, digits, '.', '+' or '-' and not start with a digit")]
    InvalidType(String),
    /// No name.
    #[error("the name is missing")]
    MissingName,
    /// A type that requires a namespace has none.
    #[error("{0} purls need a namespace")]
    MissingNamespace(String),
    /// A `%` not followed by two hex digits, or decoded bytes that are not UTF-8.
    #[error("invalid percent-encoding in the {0}")]
    Encoding(&'static str),
    /// A qualifier without `=`.
    #[error("qualifier {0:?} has no '='")]
    QualifierWithoutValue(String),
    /// A qualifier key with characters other than letters, digits, `.`, `-`, `_`, or starting
    /// with a digit.
    #[error("qualifier key {0:?} must be ASCII letters, digits, '.', '-' or '_' and not start with a digit")]
    InvalidQualifierKey(String),
    /// The same qualifier key twice.
    #[error("qualifier {0:?} is repeated")]
    DuplicateQualifier(String),
}

fn decode(s: &str, part: &'static str) -> Result<String, PurlProblem> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = |b: Option<u8>| b.and_then(|b| char::from(b).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(bytes.next()), hex(bytes.next())) else {
                return Err(PurlProblem::Encoding(part));
            };
            out.push(u8::try_from(hi * 16 + lo).map_err(|_| PurlProblem::Encoding(part))?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| PurlProblem::Encoding(part))
}

/// Percent-encodes everything but ASCII letters, digits, `.`, `-`, `_`, `~`, `:` and the
/// characters in `keep`.
fn encode(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = char::from(b);
        if b.is_ascii_alphanumeric() || ".-_~:".contains(c) || (b.is_ascii() && keep.contains(c)) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn valid_type(ty: &str) -> bool {
    !ty.starts_with(|c: char| c.is_ascii_digit()) && ty.chars().all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

impl Purl {
    /// Parses a package URL; the error names the input and what is wrong with it.
    pub fn parse(input: &str) -> Result<Self, PurlError> {
        Self::parse_inner(input).map_err(|problem| PurlError { input: input.to_owned(), problem })
    }

    fn parse_inner(input: &str) -> Result<Self, PurlProblem> {
        let s = input.trim();
        let (s, subpath) = match s.rsplit_once('#') {
            Some((head, sub)) => {
                let mut segments = Vec::new();
                for seg in sub.split('/') {
                    if seg.is_empty() || seg == "." || seg == ".." {
                        continue;
                    }
                    let seg = decode(seg, "subpath")?;
                    if !(seg.is_empty() || seg == "." || seg == "..") {
                        segments.push(seg);
                    }
                }
                (head, (!segments.is_empty()).then(|| segments.join("/")))
            }
            None => (s, None),
        };
        let (s, query) = match s.rsplit_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (s, None),
        };
        let mut qualifiers = BTreeMap::new();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) =
                pair.split_once('=').ok_or_else(|| PurlProblem::QualifierWithoutValue(pair.to_owned()))?;
            let key = key.to_ascii_lowercase();
            if !valid_key(&key) {
                return Err(PurlProblem::InvalidQualifierKey(key));
            }
            let value = decode(value, "qualifiers")?;
            if value.is_empty() {
                continue;
            }
            if qualifiers.insert(key.clone(), value).is_some() {
                return Err(PurlProblem::DuplicateQualifier(key));
            }
        }

        let (scheme, s) = s.split_once(':').ok_or(PurlProblem::Scheme)?;
        if !scheme.eq_ignore_ascii_case("pkg") {
            return Err(PurlProblem::Scheme);
        }
        let s = s.trim_start_matches('/');
        let (ty, s) = s.split_once('/').unwrap_or((s, ""));
        if ty.is_empty() {
            return Err(PurlProblem::MissingType);
        }
        let ty = ty.to_ascii_lowercase();
        if !valid_type(&ty) {
            return Err(PurlProblem::InvalidType(ty));
        }
        let (s, version) = match s.rsplit_once('@') {
            Some((head, version)) => (head, Some(decode(version, "version")?).filter(|v| !v.is_empty())),
            None => (s, None),
        };
        let s = s.trim_matches('/');
        let (namespace, name) = match s.rsplit_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, s),
        };
        let mut name = decode(name, "name")?;
        if name.is_empty() {
            return Err(PurlProblem::MissingName);
        }
        let mut segments = Vec::new();
        for seg in namespace.unwrap_or_default().split('/').filter(|seg| !seg.is_empty()) {
            segments.push(decode(seg, "namespace")?);
        }
        let mut namespace = (!segments.is_empty()).then(|| segments.join("/"));

        match ty.as_str() {
            "npm" | "apk" | "deb" => {
                name = name.to_lowercase();
                namespace = namespace.map(|ns| ns.to_lowercase());
            }
            "pypi" => name = name.to_lowercase().replace('_', "-"),
            "rpm" => namespace = namespace.map(|ns| ns.to_lowercase()),
            "maven" if namespace.is_none() => return Err(PurlProblem::MissingNamespace(ty)),
            _ => {}
        }

        Ok(Self { ty, namespace, name, version, qualifiers, subpath })
    }

    /// The canonical purl without version, qualifiers and subpath: one package across its
    /// versions, used to index components.
    pub fn key(&self) -> String {
        let mut out = format!("pkg:{}/", self.ty);
        if let Some(ns) = &self.namespace {
            for seg in ns.split('/') {
                out.push_str(&encode(seg, ""));
                out.push('/');
            }
        }
        out.push_str(&encode(&self.name, ""));
        out
    }

    /// The ecosystem whose version rules apply to this package.
    pub fn ecosystem(&self) -> Ecosystem {
        Ecosystem::from_purl_type(&self.ty)
    }
}

impl FromStr for Purl {
    type Err = PurlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())?;
        if let Some(version) = &self.version {
            write!(f, "@{}", encode(version, ""))?;
        }
        let mut sep = '?';
        for (key, value) in &self.qualifiers {
            write!(f, "{sep}{key}={}", encode(value, "/"))?;
            sep = '&';
        }
        if let Some(subpath) = &self.subpath {
            f.write_str("#")?;
            let segments: Vec<String> = subpath.split('/').map(|seg| encode(seg, "")).collect();
            f.write_str(&segments.join("/"))?;
        }
        Ok(())
    }
}
