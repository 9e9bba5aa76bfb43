//! RPM version order (rpmvercmp over epoch, version, release).
//!
//! `[epoch:]version[-release]`: the epoch (default 0) compares numerically; version and
//! release compare with rpmvercmp: characters other than ASCII letters, digits, `~` and `^`
//! only separate segments; a numeric segment beats an alphabetic one and compares numerically,
//! alphabetic segments compare in ASCII order; `~` sorts before everything (even the end), `^`
//! after the end of the base version but before any further segment. A missing release sorts
//! like an empty one.

use std::cmp::Ordering;

use super::Num;

#[derive(Debug, Clone)]
pub(super) struct Rpm {
    epoch: Num,
    version: String,
    release: String,
}

impl PartialEq for Rpm {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rpm {}

impl PartialOrd for Rpm {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rpm {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(self.version.as_bytes(), other.version.as_bytes()))
            .then_with(|| rpmvercmp(self.release.as_bytes(), other.release.as_bytes()))
    }
}

fn is_separator(c: Option<&u8>) -> bool {
    c.is_some_and(|&c| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^')
}

fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while is_separator(a.get(i)) {
            i += 1;
        }
        while is_separator(b.get(j)) {
            j += 1;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x == Some(b'~') || y == Some(b'~') {
            if x != Some(b'~') {
                return Ordering::Greater;
            }
            if y != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if x == Some(b'^') || y == Some(b'^') {
            if x.is_none() {
                return Ordering::Less;
            }
            if y.is_none() {
                return Ordering::Greater;
            }
            if x != Some(b'^') {
                return Ordering::Greater;
            }
            if y != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(x), Some(_)) = (x, y) else { break };
        let (si, sj) = (i, j);
        let numeric = x.is_ascii_digit();
        let in_segment = |c: Option<&u8>| {
            if numeric { c.is_some_and(u8::is_ascii_digit) } else { c.is_some_and(u8::is_ascii_alphabetic) }
        };
        while in_segment(a.get(i)) {
            i += 1;
        }
        while in_segment(b.get(j)) {
            j += 1;
        }
        let (mut sa, mut sb) = (a.get(si..i).unwrap_or_default(), b.get(sj..j).unwrap_or_default());
        if sb.is_empty() {
            // Different kinds: a numeric segment is newer than an alphabetic one.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        if numeric {
            while let [b'0', tail @ ..] = sa {
                sa = tail;
            }
            while let [b'0', tail @ ..] = sb {
                sb = tail;
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
    }
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (false, true) => Ordering::Less,
        (true, _) => Ordering::Greater,
    }
}

pub(super) fn parse(s: &str) -> Result<Rpm, String> {
    let s = s.trim();
    if s.contains(char::is_whitespace) {
        return Err("contains whitespace".to_owned());
    }
    let (epoch, rest) = match s.split_once(':') {
        Some((epoch, rest)) => {
            if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("epoch {epoch:?} is not a number"));
            }
            (Num::from_digits(epoch), rest)
        }
        None => (Num::default(), s),
    };
    let (version, release) = match rest.rsplit_once('-') {
        Some((version, release)) => {
            if release.is_empty() {
                return Err("release after '-' is empty".to_owned());
            }
            (version, release)
        }
        None => (rest, ""),
    };
    if version.is_empty() {
        return Err("version is empty".to_owned());
    }
    if version.contains(':') || release.contains(':') {
        return Err("more than one ':'".to_owned());
    }
    Ok(Rpm { epoch, version: version.to_owned(), release: release.to_owned() })
}
