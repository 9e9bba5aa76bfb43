//! PEP 440 (Python packaging) version order.
//!
//! `[v][N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`, case-insensitive, with the alternate
//! spellings PEP 440 normalises (`alpha`, `beta`, `c`, `pre`, `preview`, `rev`, `r`, `-N` as a
//! post-release, `-`/`_`/`.` separators, implicit `0` numbers). Order: epoch, release (trailing
//! zeros ignored), pre-release (a dev-only release sorts before every pre-release of the same
//! release; a final release after them), post-release, dev-release (before the release it
//! belongs to), local label (absent before present; segments numeric > alphanumeric).

use super::Num;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Pre {
    /// `X.devN` with neither pre- nor post-release: before every `Xa…`.
    DevOnly,
    /// 0 = a, 1 = b, 2 = rc.
    Tagged(u8, Num),
    /// No pre-release.
    Final,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum DevPart {
    /// `.devN`: before the release it belongs to.
    Dev(Num),
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalSeg {
    Alpha(String),
    Numeric(Num),
}

/// Fields in comparison order; the derived order is PEP 440's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pep440 {
    epoch: Num,
    release: Vec<Num>,
    pre: Pre,
    post: Option<Num>,
    dev: DevPart,
    local: Option<Vec<LocalSeg>>,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn eat_sep(&mut self) -> bool {
        self.eat(".") || self.eat("-") || self.eat("_")
    }

    fn digits(&mut self) -> Option<Num> {
        let n = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        let digits = self.rest().get(..n).filter(|d| !d.is_empty())?;
        let num = Num::from_digits(digits);
        self.pos += n;
        Some(num)
    }

    /// `[sep]N`, or nothing (implicit 0) without consuming a dangling separator.
    fn opt_number(&mut self) -> Num {
        let save = self.pos;
        self.eat_sep();
        match self.digits() {
            Some(n) => n,
            None => {
                self.pos = save;
                Num::default()
            }
        }
    }

    /// `[sep]word` for the first matching word, or nothing.
    fn word<'w>(&mut self, words: &[&'w str]) -> Option<&'w str> {
        let save = self.pos;
        self.eat_sep();
        for w in words {
            if self.eat(w) {
                return Some(w);
            }
        }
        self.pos = save;
        None
    }
}

pub(super) fn parse(s: &str) -> Result<Pep440, String> {
    let lower = s.trim().to_ascii_lowercase();
    let mut c = Cursor { s: &lower, pos: 0 };
    c.eat("v");

    let save = c.pos;
    let epoch = match c.digits() {
        Some(n) if c.eat("!") => n,
        _ => {
            c.pos = save;
            Num::default()
        }
    };

    let mut release = vec![c.digits().ok_or("the release does not start with a number")?];
    loop {
        let save = c.pos;
        if !c.eat(".") {
            break;
        }
        match c.digits() {
            Some(n) => release.push(n),
            None => {
                c.pos = save;
                break;
            }
        }
    }
    while release.last().is_some_and(Num::is_zero) {
        release.pop();
    }

    let pre = c.word(&["preview", "alpha", "beta", "pre", "rc", "a", "b", "c"]).map(|w| {
        let kind = match w {
            "alpha" | "a" => 0,
            "beta" | "b" => 1,
            _ => 2,
        };
        (kind, c.opt_number())
    });

    let save = c.pos;
    let post = if c.eat("-")
        && let Some(n) = c.digits()
    {
        Some(n)
    } else {
        c.pos = save;
        c.word(&["post", "rev", "r"]).map(|_| c.opt_number())
    };

    let dev = c.word(&["dev"]).map(|_| c.opt_number());

    let local = if c.eat("+") {
        let mut segs = Vec::new();
        let text = c.rest().to_owned();
        for seg in text.split(['.', '-', '_']) {
            if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("local version label {text:?} is not [a-z0-9]+ separated by . - _"));
            }
            segs.push(if seg.bytes().all(|b| b.is_ascii_digit()) {
                LocalSeg::Numeric(Num::from_digits(seg))
            } else {
                LocalSeg::Alpha(seg.to_owned())
            });
        }
        c.pos = c.s.len();
        Some(segs)
    } else {
        None
    };

    if !c.rest().is_empty() {
        return Err(format!("unexpected {:?}", c.rest()));
    }

    let pre = match (pre, &post, &dev) {
        (Some((kind, n)), _, _) => Pre::Tagged(kind, n),
        (None, None, Some(_)) => Pre::DevOnly,
        (None, _, _) => Pre::Final,
    };
    let dev = dev.map_or(DevPart::Absent, DevPart::Dev);
    Ok(Pep440 { epoch, release, pre, post, dev, local })
}
