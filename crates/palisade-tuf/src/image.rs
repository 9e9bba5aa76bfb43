//! Streaming check of a downloaded image against its catalogue entry.

use aws_lc_rs::digest;

use crate::{TargetFile, TufError};

/// Feed the image's chunks as they arrive; more than the signed length is refused at once
/// (endless data), and the SHA-256 and length are checked at the end.
pub struct ImageCheck {
    expected_len: u64,
    expected_sha256: Vec<u8>,
    received: u64,
    hasher: digest::Context,
}

impl std::fmt::Debug for ImageCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageCheck")
            .field("expected_len", &self.expected_len)
            .field("expected_sha256", &hex::encode(&self.expected_sha256))
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl ImageCheck {
    /// A check for the image `expected` describes; it must carry a SHA-256.
    pub fn new(expected: &TargetFile) -> Result<Self, TufError> {
        let hex_hash = expected.sha256().ok_or_else(|| TufError::malformed("target has no sha256 hash"))?;
        let expected_sha256 = hex::decode(hex_hash).map_err(|e| TufError::malformed(format!("target sha256: {e}")))?;
        if expected_sha256.len() != digest::SHA256_OUTPUT_LEN {
            return Err(TufError::malformed("target sha256 is not 32 bytes"));
        }
        Ok(Self {
            expected_len: expected.length,
            expected_sha256,
            received: 0,
            hasher: digest::Context::new(&digest::SHA256),
        })
    }

    /// The next chunk. Refused, without hashing it, if it takes the total past the signed length.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), TufError> {
        let total = u64::try_from(chunk.len()).ok().and_then(|n| self.received.checked_add(n));
        match total {
            Some(total) if total <= self.expected_len => {
                self.hasher.update(chunk);
                self.received = total;
                Ok(())
            }
            _ => Err(TufError::TooLarge { limit: self.expected_len }),
        }
    }

    /// Checks the length and the SHA-256 of everything fed.
    pub fn finish(self) -> Result<(), TufError> {
        if self.received != self.expected_len {
            return Err(TufError::LengthMismatch { want: self.expected_len, got: self.received });
        }
        if self.hasher.finish().as_ref() != self.expected_sha256.as_slice() {
            return Err(TufError::HashMismatch);
        }
        Ok(())
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}
