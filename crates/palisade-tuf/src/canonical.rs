//! OLPC canonical JSON, exactly as securesystemslib's `encode_canonical` writes it.
//!
//! Object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings escaping only
//! `\"` and `\\` (everything else, control characters included, is written raw), integers only.

use serde_json::Value;

use crate::TufError;

/// Nesting deeper than this is refused (the recursion must stay bounded on hostile input).
const MAX_DEPTH: usize = 64;

/// The canonical encoding of `v`. Refuses floats (the format has none) and absurd nesting.
pub fn canonical_json(v: &Value) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::with_capacity(256);
    write_value(v, &mut out, 0)?;
    Ok(out)
}

fn write_value(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), TufError> {
    if depth > MAX_DEPTH {
        return Err(TufError::malformed("canonical JSON: nested too deeply"));
    }
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(TufError::malformed(format!("canonical JSON: {n} is not an integer")));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sort by UTF-8 bytes, which is also Unicode code point order (Python's `sorted`).
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(item, out, depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}
