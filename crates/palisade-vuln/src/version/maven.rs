//! Maven's `ComparableVersion` order (as of Maven 3.9).
//!
//! The lowercased version splits into items on `.`, `-` and every digit/letter transition; a
//! `-` or a transition opens a nested list, and so does a word that follows other items in
//! its list (`1.0.RC1` reads like `1.0-RC1`). Numbers compare numerically; strings are
//! qualifiers ordered `alpha < beta < milestone < rc = cr < snapshot < "" = final = ga =
//! release < sp`, with unknown qualifiers after the known ones in lexical order, and a
//! one-letter `a`, `b` or `m` directly followed by a digit standing for alpha, beta, milestone.
//! Trailing "null" items (zero, the release qualifier, empty lists) are trimmed, so
//! `2.10 == 2.10.0 == 2.10.0.0`. Between kinds: number > list > string, and a missing item
//! compares like zero / the release qualifier.

use std::cmp::Ordering;

use super::Num;

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE: usize = 5;

/// A qualifier's place: a known one by index, an unknown one after all known ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Qualifier {
    Known(usize),
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Int(Num),
    Str(Qualifier),
    List(Vec<Item>),
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Self::Int(n) => n.is_zero(),
            Self::Str(q) => *q == Qualifier::Known(RELEASE),
            Self::List(items) => items.is_empty(),
        }
    }

    /// Compares with an item, or with the absence of one (`None`).
    fn cmp_opt(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Self::Int(n), None) => {
                if n.is_zero() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Self::Int(a), Some(Self::Int(b))) => a.cmp(b),
            (Self::Int(_), Some(_)) => Ordering::Greater,
            (Self::Str(q), None) => q.cmp(&Qualifier::Known(RELEASE)),
            (Self::Str(_), Some(Self::Int(_) | Self::List(_))) => Ordering::Less,
            (Self::Str(a), Some(Self::Str(b))) => a.cmp(b),
            (Self::List(items), None) => {
                items.iter().map(|it| it.cmp_opt(None)).find(|o| *o != Ordering::Equal).unwrap_or(Ordering::Equal)
            }
            (Self::List(_), Some(Self::Int(_))) => Ordering::Less,
            (Self::List(_), Some(Self::Str(_))) => Ordering::Greater,
            (Self::List(a), Some(Self::List(b))) => cmp_lists(a, b),
        }
    }
}

fn cmp_lists(a: &[Item], b: &[Item]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let result = match (a.get(i), b.get(i)) {
            (None, None) => Ordering::Equal,
            (None, Some(r)) => r.cmp_opt(None).reverse(),
            (Some(l), r) => l.cmp_opt(r),
        };
        if result != Ordering::Equal {
            return result;
        }
    }
    Ordering::Equal
}

#[derive(Debug, Clone)]
pub(super) struct Maven(Vec<Item>);

impl PartialEq for Maven {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Maven {}

impl PartialOrd for Maven {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Maven {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_lists(&self.0, &other.0)
    }
}

fn qualifier(s: &str, followed_by_digit: bool) -> Qualifier {
    let s = match s {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    match QUALIFIERS.iter().position(|q| *q == s) {
        Some(i) => Qualifier::Known(i),
        None => Qualifier::Unknown(s.to_owned()),
    }
}

fn item(buf: &str, is_digit: bool) -> Item {
    if buf.is_empty() {
        Item::Int(Num::default())
    } else if is_digit {
        Item::Int(Num::from_digits(buf))
    } else {
        Item::Str(qualifier(buf, false))
    }
}

/// Drops trailing null items, looking through a trailing non-null list.
fn normalize(items: &mut Vec<Item>) {
    let mut i = items.len();
    while i > 0 {
        i -= 1;
        let Some(it) = items.get(i) else { break };
        if it.is_null() {
            items.remove(i);
        } else if !matches!(it, Item::List(_)) {
            break;
        }
    }
}

/// Never fails: Maven accepts any non-empty string (emptiness is checked by the caller).
pub(super) fn parse(s: &str) -> Maven {
    let lower = s.trim().to_lowercase();
    // Each `-` or transition opens a list nested as the last item of the current one, and
    // the current list never gets items after that, so the nesting is a chain of levels.
    let mut levels: Vec<Vec<Item>> = vec![Vec::new()];
    let mut buf = String::new();
    let mut is_digit = false;
    let push = |levels: &mut Vec<Vec<Item>>, it: Item| {
        if let Some(level) = levels.last_mut() {
            level.push(it);
        }
    };
    for c in lower.chars() {
        match c {
            '.' => {
                push(&mut levels, item(&buf, is_digit));
                buf.clear();
            }
            '-' => {
                push(&mut levels, item(&buf, is_digit));
                buf.clear();
                levels.push(Vec::new());
            }
            c if c.is_ascii_digit() => {
                if !is_digit && !buf.is_empty() {
                    if levels.last().is_some_and(|level| !level.is_empty()) {
                        levels.push(Vec::new());
                    }
                    push(&mut levels, Item::Str(qualifier(&buf, true)));
                    buf.clear();
                    levels.push(Vec::new());
                }
                is_digit = true;
                buf.push(c);
            }
            c => {
                if is_digit && !buf.is_empty() {
                    push(&mut levels, item(&buf, true));
                    buf.clear();
                    levels.push(Vec::new());
                }
                is_digit = false;
                buf.push(c);
            }
        }
    }
    if !buf.is_empty() {
        if !is_digit && levels.last().is_some_and(|level| !level.is_empty()) {
            levels.push(Vec::new());
        }
        push(&mut levels, item(&buf, is_digit));
    }
    let mut child: Option<Vec<Item>> = None;
    for mut level in levels.into_iter().rev() {
        if let Some(c) = child.take() {
            level.push(Item::List(c));
        }
        normalize(&mut level);
        child = Some(level);
    }
    Maven(child.unwrap_or_default())
}
