//! Signed firmware updates, TUF 1.0 style: the metadata format, OLPC canonical JSON, keys and
//! signatures, and the client-side verification workflow (TUF specification §5.3–5.6).
//!
//! Sans I/O: no files, no sockets, no clock. Time is always a parameter (`now_unix`), bytes go in
//! and verified values come out. The JSON is what python-tuf (`tuf.api.metadata`) reads.

mod canonical;
mod client;
mod error;
mod image;
mod keys;
mod metadata;
mod repo;

pub use canonical::canonical_json;
pub use client::{MAX_METADATA_LEN, Trusted};
pub use error::TufError;
pub use image::ImageCheck;
pub use keys::{KeyType, KeyVal, PublicKey, SigningKey};
pub use metadata::{
    Assignment, MetaFile, RoleKeys, Root, SPEC_VERSION, Signature, Signed, Snapshot, TargetFile, TargetInfo, Targets,
    Timestamp, expires_at, parse, parse_expires,
};
pub use repo::{new_root, target_entry, target_entry_for};

#[cfg(test)]
mod tests;
