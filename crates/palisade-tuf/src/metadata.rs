//! The TUF 1.0 metadata types, the signed envelope, and the expiry format.
//!
//! Unknown fields are kept (`extra`) so that metadata written by a newer repository still
//! re-serialises the same; signatures, though, are always checked over the bytes as received
//! (see `client.rs`), never over our re-encoding.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{PublicKey, SigningKey, TufError, canonical_json};

/// The TUF specification version we write.
pub const SPEC_VERSION: &str = "1.0.31";

/// One signature in the envelope: key id and signature, both hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

/// The envelope: `{"signed": {...}, "signatures": [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Signed<T> {
    pub signed: T,
    pub signatures: Vec<Signature>,
}

impl<T: Serialize> Signed<T> {
    /// An envelope with no signatures yet.
    pub fn new(signed: T) -> Self {
        Self { signed, signatures: Vec::new() }
    }

    /// Signs the canonical JSON of `signed` with `key`, replacing an earlier signature by the
    /// same key.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), TufError> {
        let msg = self.canonical_signed()?;
        let sig = hex::encode(key.sign(&msg)?);
        let keyid = key.key_id();
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Signature { keyid, sig });
        Ok(())
    }

    /// The envelope as JSON (pretty, with a final newline), as python-tuf reads it.
    pub fn to_json(&self) -> Result<Vec<u8>, TufError> {
        let mut out = serde_json::to_vec_pretty(self).map_err(|e| TufError::malformed(format!("encode: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    /// The bytes the signatures are over: the canonical JSON of `signed`.
    pub fn canonical_signed(&self) -> Result<Vec<u8>, TufError> {
        let value = serde_json::to_value(&self.signed).map_err(|e| TufError::malformed(format!("encode: {e}")))?;
        canonical_json(&value)
    }
}

/// Parses an envelope of at most `max_len` bytes. `T`'s `_type` is checked; signatures are not
/// (that is [`crate::Trusted`]'s job).
pub fn parse<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<Signed<T>, TufError> {
    if bytes.len() > max_len {
        return Err(TufError::TooLarge { limit: u64::try_from(max_len).unwrap_or(u64::MAX) });
    }
    serde_json::from_slice(bytes).map_err(|e| TufError::malformed(e.to_string()))
}

/// The keys and threshold of a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u32,
}

/// `root.json`: the keys of every role, signed by the root keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Root {
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, PublicKey>,
    pub roles: BTreeMap<String, RoleKeys>,
    /// The online key that signs per-device assignments; authorised by the (offline) root keys.
    #[serde(rename = "x-palisade-director", default, skip_serializing_if = "Option::is_none")]
    pub director: Option<RoleKeys>,
    /// Fields we do not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `targets.json`: the catalogue of images.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Targets {
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `snapshot.json`: the version of `targets.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Snapshot {
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `timestamp.json`: version, length and hash of `snapshot.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Timestamp {
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A per-device assignment from the director (the Uptane idea), signed by the director key:
/// "device D is to run target T". `_type` is `x-palisade-assignment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Assignment {
    pub device_id: String,
    pub target: String,
    pub length: u64,
    pub sha256: String,
    pub version: String,
    pub hardware: String,
    pub counter: u64,
    /// Monotonic per device: an older assignment cannot be replayed.
    pub issued: u64,
    pub expires: String,
}

/// Writes and checks `_type` around a type's derived (remote = "Self") field encoding.
macro_rules! tagged {
    ($ty:ty, $tag:literal) => {
        impl $ty {
            /// The `_type` of this metadata.
            pub const TYPE: &'static str = $tag;
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                fn body<S: Serializer>(v: &&$ty, s: S) -> Result<S::Ok, S::Error> {
                    <$ty>::serialize(*v, s)
                }
                #[derive(Serialize)]
                struct Wire<'a> {
                    #[serde(rename = "_type")]
                    ty: &'static str,
                    #[serde(flatten, serialize_with = "body")]
                    body: &'a $ty,
                }
                Wire { ty: $tag, body: self }.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                fn body<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                    <$ty>::deserialize(d)
                }
                #[derive(Deserialize)]
                struct Wire {
                    #[serde(rename = "_type")]
                    ty: String,
                    #[serde(flatten, deserialize_with = "body")]
                    body: $ty,
                }
                let wire = Wire::deserialize(d)?;
                if wire.ty != $tag {
                    return Err(D::Error::custom(format!("_type is {:?}, expected {:?}", wire.ty, $tag)));
                }
                Ok(wire.body)
            }
        }
    };
}

tagged!(Root, "root");
tagged!(Targets, "targets");
tagged!(Snapshot, "snapshot");
tagged!(Timestamp, "timestamp");
tagged!(Assignment, "x-palisade-assignment");

macro_rules! default_meta {
    ($ty:ty { $($field:ident),* }) => {
        impl Default for $ty {
            /// Version 1 of the current spec, nothing in it, no expiry set.
            fn default() -> Self {
                Self {
                    spec_version: SPEC_VERSION.into(),
                    version: 1,
                    expires: String::new(),
                    $($field: Default::default(),)*
                    extra: BTreeMap::new(),
                }
            }
        }
    };
}

default_meta!(Root { consistent_snapshot, keys, roles, director });
default_meta!(Targets { targets });
default_meta!(Snapshot { meta });
default_meta!(Timestamp { meta });

impl Snapshot {
    /// A snapshot naming `targets.json` version `targets_version`.
    pub fn for_targets(version: u64, expires: &str, targets_version: u64) -> Self {
        let meta = BTreeMap::from([(
            "targets.json".to_owned(),
            MetaFile { version: targets_version, length: None, hashes: None },
        )]);
        Self { version, expires: expires.into(), meta, ..Self::default() }
    }
}

impl Timestamp {
    /// A timestamp naming the exact bytes of `snapshot.json` (version, length, SHA-256).
    pub fn for_snapshot(version: u64, expires: &str, snapshot_json: &[u8], snapshot_version: u64) -> Self {
        let meta = BTreeMap::from([("snapshot.json".to_owned(), MetaFile::of(snapshot_json, snapshot_version))]);
        Self { version, expires: expires.into(), meta, ..Self::default() }
    }
}

/// An image in the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// What our targets carry in `custom`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetInfo {
    pub version: String,
    pub hardware: String,
    /// Monotonic anti-rollback number.
    pub counter: u64,
}

impl TargetFile {
    /// `custom.version`, `custom.hardware` and `custom.counter`, all required.
    pub fn info(&self) -> Result<TargetInfo, TufError> {
        let custom = self
            .custom
            .as_ref()
            .and_then(Value::as_object)
            .ok_or_else(|| TufError::malformed("target: no custom object"))?;
        let text = |name: &str| {
            custom
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| TufError::malformed(format!("target: custom.{name} missing or not a string")))
        };
        let counter = custom
            .get("counter")
            .and_then(Value::as_u64)
            .ok_or_else(|| TufError::malformed("target: custom.counter missing or not an unsigned integer"))?;
        Ok(TargetInfo { version: text("version")?, hardware: text("hardware")?, counter })
    }

    /// The hex SHA-256, if the entry has one.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}

/// A line of `meta` in snapshot or timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

impl MetaFile {
    /// Version, length and SHA-256 of these exact bytes.
    pub fn of(bytes: &[u8], version: u64) -> Self {
        let sha = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes));
        Self {
            version,
            length: Some(u64::try_from(bytes.len()).unwrap_or(u64::MAX)),
            hashes: Some(BTreeMap::from([("sha256".to_owned(), sha)])),
        }
    }
}

/// `"YYYY-MM-DDTHH:MM:SSZ"` for a Unix time, clamped to years 0000–9999.
pub fn expires_at(unix_secs: i64) -> String {
    let secs = unix_secs.clamp(YEAR_0_UNIX, YEAR_10000_UNIX - 1);
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
const YEAR_0_UNIX: i64 = -62_167_219_200;
const YEAR_10000_UNIX: i64 = 253_402_300_800;

/// The Unix time of an `expires` value; only the exact `"YYYY-MM-DDTHH:MM:SSZ"` form is accepted.
pub fn parse_expires(s: &str) -> Result<i64, TufError> {
    let bad = || TufError::malformed(format!("expires {s:?} is not YYYY-MM-DDTHH:MM:SSZ"));
    let b = s.as_bytes();
    if b.len() != 20 {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<u32, TufError> {
        let part = b.get(from..to).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        part.iter().try_fold(0u32, |acc, d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))).ok_or_else(bad)
    };
    let sep = |at: usize, c: u8| if b.get(at) == Some(&c) { Ok(()) } else { Err(bad()) };
    sep(4, b'-')?;
    sep(7, b'-')?;
    sep(10, b'T')?;
    sep(13, b':')?;
    sep(16, b':')?;
    sep(19, b'Z')?;
    let year = i32::try_from(num(0, 4)?).map_err(|_| bad())?;
    let month = u8::try_from(num(5, 7)?).map_err(|_| bad())?;
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    let day = u8::try_from(num(8, 10)?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let clock = time::Time::from_hms(
        u8::try_from(num(11, 13)?).map_err(|_| bad())?,
        u8::try_from(num(14, 16)?).map_err(|_| bad())?,
        u8::try_from(num(17, 19)?).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp())
}
