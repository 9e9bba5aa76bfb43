//! Alpine (apk-tools) version order.
//!
//! `N(.N)*[letter](_suffix[N])*[~hash][-rN]`, e.g. `1.2.3_rc1-r0`. Versions compare token by
//! token: numbers numerically, except that a dotted part where either side has a leading zero
//! compares as a string (`1.01 < 1.1`); letters by character; suffixes in the order `_alpha <
//! _beta < _pre < _rc <` (release) `< _cvs < _svn < _git < _hg < _p`; commit hashes as
//! strings; then the `-rN` revision. When one version runs out of tokens or the kinds differ,
//! a pre-release suffix is lower, otherwise the version whose next token comes later in the
//! grammar (the end last) is lower: `1.0 < 1.0-r0 < 1.0.1`.

use std::cmp::Ordering;

use super::Num;

const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// Token kinds in grammar order; when kinds differ the later kind is the lower version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    Revision,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Number(Num),
    /// A dotted part as written: compared as a string when either side has a leading zero.
    Dotted(String),
    Letter(char),
    /// Negative for pre-release suffixes.
    Suffix(i8),
    Hash(String),
}

impl Value {
    fn is_pre_suffix(&self) -> bool {
        matches!(self, Self::Suffix(n) if *n < 0)
    }

    fn cmp_value(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Dotted(a), Self::Dotted(b)) => {
                if a.starts_with('0') || b.starts_with('0') {
                    a.cmp(b)
                } else {
                    Num::from_digits(a).cmp(&Num::from_digits(b))
                }
            }
            (Self::Number(a), Self::Number(b)) => a.cmp(b),
            (Self::Letter(a), Self::Letter(b)) => a.cmp(b),
            (Self::Suffix(a), Self::Suffix(b)) => a.cmp(b),
            (Self::Hash(a), Self::Hash(b)) => a.cmp(b),
            // Same-kind tokens always carry the same kind of value.
            _ => Ordering::Equal,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Apk(Vec<(Kind, Value)>);

impl PartialEq for Apk {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Apk {}

impl PartialOrd for Apk {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Apk {
    fn cmp(&self, other: &Self) -> Ordering {
        let end = (Kind::End, Value::Suffix(0));
        let mut a = self.0.iter().chain(std::iter::repeat(&end));
        let mut b = other.0.iter().chain(std::iter::repeat(&end));
        loop {
            let (Some((ka, va)), Some((kb, vb))) = (a.next(), b.next()) else {
                return Ordering::Equal;
            };
            if ka == kb {
                if *ka == Kind::End {
                    return Ordering::Equal;
                }
                match va.cmp_value(vb) {
                    Ordering::Equal => continue,
                    unequal => return unequal,
                }
            }
            if *ka == Kind::Suffix && va.is_pre_suffix() {
                return Ordering::Less;
            }
            if *kb == Kind::Suffix && vb.is_pre_suffix() {
                return Ordering::Greater;
            }
            return kb.cmp(ka);
        }
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    fn take_while(&mut self, f: impl Fn(&u8) -> bool) -> &str {
        let n = self.rest().bytes().take_while(|b| f(b)).count();
        let start = self.pos;
        self.pos += n;
        self.s.get(start..self.pos).unwrap_or_default()
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }
}

pub(super) fn parse(s: &str) -> Result<Apk, String> {
    let mut c = Cursor { s: s.trim(), pos: 0 };
    let mut tokens = Vec::new();
    let first = c.take_while(u8::is_ascii_digit);
    if first.is_empty() {
        return Err("does not start with a number".to_owned());
    }
    tokens.push((Kind::InitialDigit, Value::Number(Num::from_digits(first))));
    while c.eat(".") {
        let part = c.take_while(u8::is_ascii_digit);
        if part.is_empty() {
            return Err("'.' is not followed by a number".to_owned());
        }
        tokens.push((Kind::Digit, Value::Dotted(part.to_owned())));
    }
    if let Some(letter) = c.rest().chars().next().filter(char::is_ascii_lowercase) {
        c.pos += 1;
        tokens.push((Kind::Letter, Value::Letter(letter)));
    }
    while c.eat("_") {
        let name = c.take_while(u8::is_ascii_lowercase);
        let value = if let Some(i) = PRE_SUFFIXES.iter().position(|p| *p == name) {
            i8::try_from(i).unwrap_or_default() - 4
        } else if let Some(i) = POST_SUFFIXES.iter().position(|p| *p == name) {
            i8::try_from(i).unwrap_or_default()
        } else {
            return Err(format!("unknown suffix \"_{name}\""));
        };
        tokens.push((Kind::Suffix, Value::Suffix(value)));
        let number = c.take_while(u8::is_ascii_digit);
        if !number.is_empty() {
            tokens.push((Kind::SuffixNo, Value::Number(Num::from_digits(number))));
        }
    }
    if c.eat("~") {
        let hash = c.take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        if hash.is_empty() {
            return Err("'~' is not followed by a hexadecimal commit hash".to_owned());
        }
        tokens.push((Kind::CommitHash, Value::Hash(hash.to_owned())));
    }
    if c.eat("-r") {
        let number = c.take_while(u8::is_ascii_digit);
        if number.is_empty() {
            return Err("'-r' is not followed by a number".to_owned());
        }
        tokens.push((Kind::Revision, Value::Number(Num::from_digits(number))));
    }
    if !c.rest().is_empty() {
        return Err(format!("unexpected {:?}", c.rest()));
    }
    Ok(Apk(tokens))
}
