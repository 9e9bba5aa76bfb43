//! Field validation shared by every way data enters Palisade (API, CSV import, CLI).

use std::fmt;

/// One field that failed validation, named so that the user can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidField {}

/// Longest free-text attribute we accept (owner, purpose, model…).
pub const MAX_TEXT: usize = 256;
/// Most tags a device may carry.
pub const MAX_TAGS: usize = 32;
/// Longest single tag.
pub const MAX_TAG: usize = 64;

/// A required, trimmed, printable text of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, InvalidField> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    optional_text(field, value, max)
}

/// An optional text: trimmed, printable, at most `max` characters.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, InvalidField> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(InvalidField::new(field, format!("longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidField::new(field, "contains control characters"));
    }
    Ok(value.to_owned())
}

/// A tag: 1–64 characters of `a-z A-Z 0-9 - _ . : /`.
pub fn tag(value: &str) -> Result<String, InvalidField> {
    let ok = !value.is_empty()
        && value.len() <= MAX_TAG
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(InvalidField::new(
            "tags",
            format!("tag {value:?} must be 1-{MAX_TAG} characters of a-z, A-Z, 0-9, - _ . : /"),
        ))
    }
}

/// A list of tags, deduplicated and sorted.
pub fn tags(values: &[String]) -> Result<Vec<String>, InvalidField> {
    if values.len() > MAX_TAGS {
        return Err(InvalidField::new("tags", format!("more than {MAX_TAGS} tags")));
    }
    let mut out = values.iter().map(|t| tag(t)).collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(required_text("owner", "  ops  ", 10).unwrap(), "ops");
        assert_eq!(required_text("owner", "   ", 10).unwrap_err().field, "owner");
        assert!(optional_text("x", "a\u{0}b", 10).is_err());
        assert!(optional_text("x", &"é".repeat(11), 10).is_err());
        assert!(optional_text("x", &"é".repeat(10), 10).is_ok());
    }

    #[test]
    fn tags_are_checked_sorted_and_deduplicated() {
        let t = tags(&["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(t, vec!["a", "b"]);
        assert!(tags(&["bad tag".into()]).is_err());
        assert!(tags(&vec!["a".to_string(); MAX_TAGS + 1]).is_err());
    }
}
