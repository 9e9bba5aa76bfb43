//! EST request bodies: base64 (whitespace allowed) around DER (RFC 7030 §4.2.1).

use base64::Engine as _;

/// Largest EST request body accepted, base64.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is empty")]
    Empty,
    #[error("the body exceeds {MAX_BODY} bytes")]
    TooLarge,
    #[error("the body is not base64")]
    NotBase64,
}

/// Decodes an EST body to DER.
pub fn decode_body(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(BodyError::Empty);
    }
    base64::engine::general_purpose::STANDARD.decode(&compact).map_err(|_| BodyError::NotBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(decode_body(b"AAEC\r\nAw==\n").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(decode_body(b" \n").unwrap_err(), BodyError::Empty);
        assert_eq!(decode_body(b"%%").unwrap_err(), BodyError::NotBase64);
        assert_eq!(decode_body(&vec![b'A'; MAX_BODY + 1]).unwrap_err(), BodyError::TooLarge);
    }
}
