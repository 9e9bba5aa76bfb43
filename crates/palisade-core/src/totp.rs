//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), with
//! replay protection: a code is accepted once, and never one older than the last accepted.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECS: u64 = 30;
pub const DIGITS: u32 = 6;
/// Accepted clock skew, in steps either side.
pub const WINDOW: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpError {
    /// Not the code of any step in the window.
    Invalid,
    /// The code of a step already used (or older).
    Replayed,
}

/// The code of `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else { return u32::MAX };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.get(19).copied().unwrap_or(0) & 0x0f);
    let word = digest.get(offset..offset + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0, u32::from_be_bytes);
    (word & 0x7fff_ffff) % 10u32.pow(DIGITS)
}

pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Checks `code` at time `unix_secs`. On success, the step it matched: store it as the new
/// `last_step` so that neither this code nor an older one is accepted again.
pub fn verify(secret: &[u8], code: &str, unix_secs: u64, last_step: Option<u64>) -> Result<u64, TotpError> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Invalid);
    }
    let wanted: u32 = code.parse().map_err(|_| TotpError::Invalid)?;
    let now = step_of(unix_secs);
    let mut matched = None;
    // Check every step in the window (no early exit), so timing does not tell which matched.
    for step in now.saturating_sub(WINDOW)..=now + WINDOW {
        if code_at(secret, step) == wanted && matched.is_none() {
            matched = Some(step);
        }
    }
    match matched {
        None => Err(TotpError::Invalid),
        Some(step) if last_step.is_some_and(|last| step <= last) => Err(TotpError::Replayed),
        Some(step) => Ok(step),
    }
}

/// RFC 4648 base32 without padding (what authenticator apps expect in `otpauth://` URIs).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET.get(((buffer >> bits) & 31) as usize).copied().unwrap_or(b'A')));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET.get(((buffer << (5 - bits)) & 31) as usize).copied().unwrap_or(b'A')));
    }
    out
}

/// The enrolment URI an authenticator app reads (from its QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [(59u64, 287_082), (1_111_111_109, 81_804), (1_234_567_890, 5_924), (2_000_000_000, 279_037)] {
            assert_eq!(code_at(secret, step_of(t)), code, "t={t}");
        }
    }

    #[test]
    fn window_and_replay() {
        let secret = b"12345678901234567890";
        let t = 1_111_111_109;
        let code = format!("{:06}", code_at(secret, step_of(t)));
        let step = verify(secret, &code, t, None).unwrap();
        assert_eq!(verify(secret, &code, t, Some(step)), Err(TotpError::Replayed));
        assert!(verify(secret, &code, t + 30, None).is_ok(), "one step of skew is accepted");
        assert_eq!(verify(secret, &code, t + 90, None), Err(TotpError::Invalid));
        for bad in ["", "12345", "1234567", "abcdef", "08180 "] {
            assert_eq!(verify(secret, bad, t, None), Err(TotpError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        let uri = otpauth_uri("Palisade", "alice@x", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/Palisade:alice%40x?secret=MZXW6YTBOI&issuer=Palisade&algorithm=SHA1&digits=6&period=30"
        );
    }
}
