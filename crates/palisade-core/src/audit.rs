//! The tamper-evident audit chain: how an entry is hashed, and how a chain is verified.
//!
//! Each entry carries the SHA-256 of the previous one; editing, deleting or reordering any entry
//! breaks the chain at that entry. Signed checkpoints (made at the edge, which holds the key)
//! pin the head, so truncating the tail is caught as well.

use std::fmt;

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key, by its public id.
    ApiKey { id: String, name: String },
    /// A signed-in person.
    User { id: String, username: String },
    /// Someone not (yet) authenticated: a failed login, a refused request.
    Anonymous,
    /// A device, by its id (enrollment, renewal).
    Device { id: String },
    /// Local administration on the server's host (CLI with access to the data).
    Local { what: String },
    /// Palisade itself (workers, automated response).
    System,
}

impl Actor {
    /// The stable text form stored and hashed: `apikey:<id>`, `local:<what>`, `system`.
    pub fn id(&self) -> String {
        match self {
            Self::ApiKey { id, .. } => format!("apikey:{id}"),
            Self::User { id, .. } => format!("user:{id}"),
            Self::Anonymous => "anonymous".to_owned(),
            Self::Device { id } => format!("device:{id}"),
            Self::Local { what } => format!("local:{what}"),
            Self::System => "system".to_owned(),
        }
    }
}

/// One audit entry, as stored. `before` and `after` are short JSON summaries (never secrets or
/// personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub prev_hash: [u8; 32],
}

impl AuditEntry {
    /// SHA-256 over a length-prefixed encoding of every field, so that no two different entries
    /// share an encoding.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"palisade-audit-v1\0");
        h.update(self.prev_hash);
        h.update(self.seq.to_be_bytes());
        h.update(self.at_ms.to_be_bytes());
        for field in [
            Some(self.actor.as_str()),
            Some(self.action.as_str()),
            Some(self.target.as_str()),
            self.source_ip.as_deref(),
            self.before.as_deref(),
            self.after.as_deref(),
        ] {
            match field {
                None => h.update([0u8]),
                Some(text) => {
                    h.update([1u8]);
                    h.update((text.len() as u64).to_be_bytes());
                    h.update(text.as_bytes());
                }
            }
        }
        h.finalize().into()
    }
}

/// The message a checkpoint signs: the chain head at `seq` is `hash`.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32], at_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(80);
    m.extend_from_slice(b"palisade-audit-checkpoint-v1\0");
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry's content does not match its stored hash: it was edited.
    Edited { seq: u64 },
    /// The entry does not link to the one before it: reordered, or its predecessor replaced.
    Unlinked { seq: u64 },
    /// Entries are missing, starting at `seq`.
    Missing { seq: u64 },
    /// A signed checkpoint names a head that the chain no longer has.
    CheckpointMismatch { seq: u64 },
    /// A checkpoint's signature does not verify.
    BadCheckpointSignature { seq: u64 },
}

impl ChainBreak {
    /// The first audit entry concerned.
    pub fn seq(&self) -> u64 {
        match *self {
            Self::Edited { seq }
            | Self::Unlinked { seq }
            | Self::Missing { seq }
            | Self::CheckpointMismatch { seq }
            | Self::BadCheckpointSignature { seq } => seq,
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { seq } => write!(f, "audit entry {seq} was edited (its hash does not match its content)"),
            Self::Unlinked { seq } => write!(
                f,
                "audit entry {seq} does not follow entry {} (entries reordered or replaced)",
                seq.saturating_sub(1)
            ),
            Self::Missing { seq } => write!(f, "audit entry {seq} is missing (deleted)"),
            Self::CheckpointMismatch { seq } => {
                write!(f, "signed checkpoint at entry {seq} does not match the log (edited, deleted or truncated)")
            }
            Self::BadCheckpointSignature { seq } => {
                write!(f, "signed checkpoint at entry {seq} has a bad signature")
            }
        }
    }
}

/// Walks a chain in `seq` order, one stored entry (with its stored hash) at a time.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev_hash: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_seq: 1, prev_hash: GENESIS }
    }
}

impl ChainVerifier {
    /// Feeds the next entry. Returns the first break found.
    pub fn push(&mut self, entry: &AuditEntry, stored_hash: &[u8; 32]) -> Result<(), ChainBreak> {
        if entry.seq != self.expected_seq {
            return Err(if entry.seq > self.expected_seq {
                ChainBreak::Missing { seq: self.expected_seq }
            } else {
                ChainBreak::Unlinked { seq: entry.seq }
            });
        }
        if entry.hash() != *stored_hash {
            return Err(ChainBreak::Edited { seq: entry.seq });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked { seq: entry.seq });
        }
        self.prev_hash = *stored_hash;
        self.expected_seq += 1;
        Ok(())
    }

    /// Entries verified so far.
    pub fn len(&self) -> u64 {
        self.expected_seq - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<(AuditEntry, [u8; 32])> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let e = AuditEntry {
                    seq,
                    at_ms: 1_700_000_000_000 + seq as i64,
                    actor: "system".into(),
                    action: "device.create".into(),
                    target: format!("device:{seq}"),
                    source_ip: None,
                    before: None,
                    after: Some(format!("{{\"n\":{seq}}}")),
                    prev_hash: prev,
                };
                prev = e.hash();
                (e, prev)
            })
            .collect()
    }

    fn verify(entries: &[(AuditEntry, [u8; 32])]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for (e, h) in entries {
            v.push(e, h)?;
        }
        Ok(v.len())
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain(10)), Ok(10));
    }

    #[test]
    fn an_edit_is_named() {
        let mut c = chain(10);
        c[4].0.action = "device.delete".into();
        assert_eq!(verify(&c), Err(ChainBreak::Edited { seq: 5 }));
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let mut c = chain(10);
        c[4].0.actor = "apikey:mallory".into();
        c[4].1 = c[4].0.hash();
        assert_eq!(verify(&c), Err(ChainBreak::Unlinked { seq: 6 }));
    }

    #[test]
    fn a_deletion_is_named() {
        let mut c = chain(10);
        c.remove(3);
        assert_eq!(verify(&c), Err(ChainBreak::Missing { seq: 4 }));
    }

    #[test]
    fn a_reordering_is_caught() {
        let mut c = chain(10);
        // Swap the content of entries 3 and 4 but keep the sequence numbers in place.
        let (a, b) = (c[2].clone(), c[3].clone());
        c[2] = (AuditEntry { seq: 3, ..b.0 }, b.1);
        c[3] = (AuditEntry { seq: 4, ..a.0 }, a.1);
        assert_eq!(verify(&c), Err(ChainBreak::Edited { seq: 3 }));
    }

    #[test]
    fn optional_fields_are_unambiguous() {
        let base = &chain(1)[0].0;
        let a = AuditEntry { before: Some(String::new()), ..base.clone() };
        let b = AuditEntry { before: None, ..base.clone() };
        assert_ne!(a.hash(), b.hash());
    }
}
