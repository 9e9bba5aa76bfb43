//! Small helpers shared by the SBOM and advisory readers: parse JSON bytes with a line/column on
//! failure, and read typed fields while keeping the JSON path for precise error messages.

use serde_json::{Map, Value};

use crate::purl::Purl;

/// Invalid JSON, with where the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A field that is present but unusable, with its JSON path (`components[3].purl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub path: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { path: path.into(), problem: problem.into() }
    }
}

/// Parses bytes as one JSON value. serde_json's own recursion limit (128) keeps deeply nested
/// input from exhausting the stack, so the walkers below only cap their own semantic nesting.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, SyntaxError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        let text = error.to_string();
        // serde_json appends the position to its message; it is reported separately here.
        let message = text.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&text).to_owned();
        SyntaxError { line, column, message }
    })
}

/// Path of `key` under `base`; the document root is the empty path.
pub(crate) fn join(base: &str, key: &str) -> String {
    if base.is_empty() { key.to_owned() } else { format!("{base}.{key}") }
}

/// Path of element `index` of the array at `base`.
pub(crate) fn index(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// A JSON object together with its path in the document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obj<'a, 'p> {
    pub map: &'a Map<String, Value>,
    pub path: &'p str,
}

impl<'a, 'p> Obj<'a, 'p> {
    /// `value` as an object, or an error naming `path`.
    pub fn of(value: &'a Value, path: &'p str) -> Result<Self, FieldError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            _ => Err(FieldError::new(display(path), "not an object")),
        }
    }

    /// The field, treating `null` as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    pub fn path_of(&self, key: &str) -> String {
        join(self.path, key)
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(FieldError::new(self.path_of(key), "not a string")),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<&'a str, FieldError> {
        self.opt_str(key)?.ok_or_else(|| FieldError::new(self.path_of(key), "missing"))
    }

    /// A non-empty, trimmed string, or `None` when absent or blank.
    pub fn opt_text(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        Ok(self.opt_str(key)?.map(str::trim).filter(|text| !text.is_empty()))
    }

    /// The array at `key`; absent means empty.
    pub fn opt_array(&self, key: &str) -> Result<&'a [Value], FieldError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items.as_slice()),
            Some(_) => Err(FieldError::new(self.path_of(key), "not an array")),
        }
    }

    /// An array of strings at `key`; absent means empty.
    pub fn str_array(&self, key: &str) -> Result<Vec<&'a str>, FieldError> {
        let items = self.opt_array(key)?;
        let mut out = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            match item {
                Value::String(text) => out.push(text.as_str()),
                _ => return Err(FieldError::new(index(&self.path_of(key), position), "not a string")),
            }
        }
        Ok(out)
    }
}

/// The root path is shown as `$` so an error never starts with an empty location.
fn display(path: &str) -> &str {
    if path.is_empty() { "$" } else { path }
}

/// The purl at `path`, parsed, or an error saying why it is not one.
pub(crate) fn purl(path: &str, text: &str) -> Result<Purl, FieldError> {
    Purl::parse(text)
        .map_err(|error| FieldError::new(path, format!("{text:?} is not a package URL: {}", error.problem)))
}

/// A light CPE check: CPE 2.3 formatted string or CPE 2.2 URI.
pub(crate) fn is_cpe(cpe: &str) -> bool {
    cpe.starts_with("cpe:2.3:") || cpe.starts_with("cpe:/")
}
