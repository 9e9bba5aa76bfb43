//! Debian (dpkg) version order.
//!
//! `[epoch:]upstream[-revision]`: the epoch (default 0) compares numerically, then the
//! upstream version and the revision (split at the last `-`, default empty) with dpkg's
//! algorithm: alternating non-digit and digit parts; in non-digit parts `~` sorts before
//! everything, even the end of the part, then the end, then letters, then other characters;
//! digit parts compare numerically.

use std::cmp::Ordering;

use super::Num;

#[derive(Debug, Clone)]
pub(super) struct Dpkg {
    epoch: Num,
    upstream: String,
    revision: String,
}

impl PartialEq for Dpkg {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Dpkg {}

impl PartialOrd for Dpkg {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dpkg {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

/// Weight of one character of a non-digit part; `None` is the end of the string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn is_digit(c: Option<&u8>) -> bool {
    c.is_some_and(u8::is_ascii_digit)
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !is_digit(a.get(i))) || (j < b.len() && !is_digit(b.get(j))) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
            if !x.is_ascii_digit() || !y.is_ascii_digit() {
                break;
            }
            if first_diff == Ordering::Equal {
                first_diff = x.cmp(y);
            }
            i += 1;
            j += 1;
        }
        if is_digit(a.get(i)) {
            return Ordering::Greater;
        }
        if is_digit(b.get(j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

pub(super) fn parse(s: &str) -> Result<Dpkg, String> {
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
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((upstream, revision)) => {
            if revision.is_empty() {
                return Err("revision after '-' is empty".to_owned());
            }
            (upstream, revision)
        }
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err("upstream version is empty".to_owned());
    }
    if let Some(bad) = upstream.chars().find(|c| !(c.is_ascii_alphanumeric() || ".+~-:".contains(*c))) {
        return Err(format!("upstream version has invalid character {bad:?}"));
    }
    if let Some(bad) = revision.chars().find(|c| !(c.is_ascii_alphanumeric() || ".+~".contains(*c))) {
        return Err(format!("revision has invalid character {bad:?}"));
    }
    Ok(Dpkg { epoch, upstream: upstream.to_owned(), revision: revision.to_owned() })
}
