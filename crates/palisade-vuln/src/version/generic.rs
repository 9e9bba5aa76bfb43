//! Generic, lower-confidence version order for ecosystems without rules of their own.
//!
//! The version splits into runs of ASCII digits and runs of letters (lowercased); anything else
//! only separates. Runs compare in turn: numbers numerically, words lexically, a number above a
//! word. A leading `v` before a number is dropped. When one version runs out it compares as if
//! padded with zeros (`1.0 == 1`, `1 < 1.1`) and higher than a continuation by a word
//! (`1-beta < 1`).

use std::cmp::Ordering;

use super::Num;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Run {
    Word(String),
    Number(Num),
}

#[derive(Debug, Clone)]
pub(super) struct Generic(Vec<Run>);

impl PartialEq for Generic {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Generic {}

impl PartialOrd for Generic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Generic {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in 0..self.0.len().max(other.0.len()) {
            let result = match (self.0.get(i), other.0.get(i)) {
                (Some(a), Some(b)) => a.cmp(b),
                (None, Some(Run::Word(_))) => Ordering::Greater,
                (Some(Run::Word(_)), None) => Ordering::Less,
                (None, Some(Run::Number(n))) => Num::default().cmp(n),
                (Some(Run::Number(n)), None) => n.cmp(&Num::default()),
                (None, None) => Ordering::Equal,
            };
            if result != Ordering::Equal {
                return result;
            }
        }
        Ordering::Equal
    }
}

/// Never fails.
pub(super) fn parse(s: &str) -> Generic {
    let mut runs = Vec::new();
    let mut buf = String::new();
    let flush = |buf: &mut String, runs: &mut Vec<Run>| {
        if buf.starts_with(|c: char| c.is_ascii_digit()) {
            runs.push(Run::Number(Num::from_digits(buf)));
        } else if !buf.is_empty() {
            runs.push(Run::Word(buf.to_ascii_lowercase()));
        }
        buf.clear();
    };
    for c in s.chars() {
        let same_kind = buf.chars().next().is_some_and(|b| b.is_ascii_digit() == c.is_ascii_digit());
        if c.is_ascii_alphanumeric() {
            if !same_kind {
                flush(&mut buf, &mut runs);
            }
            buf.push(c);
        } else {
            flush(&mut buf, &mut runs);
        }
    }
    flush(&mut buf, &mut runs);
    if matches!(runs.as_slice(), [Run::Word(v), Run::Number(_), ..] if v == "v") {
        runs.remove(0);
    }
    Generic(runs)
}
