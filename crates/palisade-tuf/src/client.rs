//! The client workflow (TUF specification §5.3–5.6), sans I/O.
//!
//! The caller fetches bytes and passes them in with the current time; [`Trusted`] checks them
//! against what it already trusts and keeps the newest. Signatures are checked over the canonical
//! JSON of `signed` exactly as received, never over our re-encoding of it.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Assignment, MetaFile, PublicKey, RoleKeys, Root, Signature, Snapshot, TargetFile, Targets, Timestamp, TufError,
    canonical_json, parse_expires,
};

/// The largest metadata document (and assignment) accepted, in bytes.
pub const MAX_METADATA_LEN: usize = 4 * 1024 * 1024;

/// The roles a root must name.
const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];
const SNAPSHOT_JSON: &str = "snapshot.json";
const TARGETS_JSON: &str = "targets.json";
const STATE_FORMAT: u32 = 1;

/// Metadata whose signatures were checked, with the bytes they were checked on.
#[derive(Clone, Debug)]
struct Verified<T> {
    raw: Vec<u8>,
    signed: T,
}

/// What the client trusts: the current root, the latest timestamp, snapshot and targets, and the
/// newest assignment recorded. Keep it between runs with [`Trusted::save`] / [`Trusted::load`].
#[derive(Clone, Debug)]
pub struct Trusted {
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    targets: Option<Verified<Targets>>,
    assignment_issued: u64,
}

/// The persisted form: the raw metadata as received, so it can be checked again when loaded.
#[derive(Serialize, Deserialize)]
struct State {
    format: u32,
    root: String,
    timestamp: Option<String>,
    snapshot: Option<String>,
    targets: Option<String>,
    assignment_issued: u64,
}

impl Trusted {
    /// Trust `root_json`, the pinned initial root: it must be well formed and signed by a
    /// threshold of its own root keys. Its expiry is checked by [`Trusted::check_root_fresh`].
    pub fn new(root_json: &[u8]) -> Result<Self, TufError> {
        let (signed, signatures) = split(root_json)?;
        let root: Root = decode("root", &signed)?;
        check_root(&root)?;
        verify_role("root", &signed, &signatures, &root)?;
        Ok(Self {
            root: Verified { raw: root_json.to_vec(), signed: root },
            timestamp: None,
            snapshot: None,
            targets: None,
            assignment_issued: 0,
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root.signed
    }

    /// The trusted timestamp, if any.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref().map(|v| &v.signed)
    }

    /// The trusted snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|v| &v.signed)
    }

    /// The trusted targets, if any.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref().map(|v| &v.signed)
    }

    /// The raw JSON of the trusted root (what a device pins or persists).
    pub fn root_json(&self) -> &[u8] {
        &self.root.raw
    }

    /// Moves to the next root (§5.3.4–5.3.9): its version must be exactly one more, and it must
    /// be signed by a threshold of the current root keys AND of its own root keys, so keys can be
    /// rotated. If the timestamp or snapshot keys change, the trusted timestamp and snapshot are
    /// dropped (recovery from a fast-forward attack). Intermediate roots may have expired; call
    /// [`Trusted::check_root_fresh`] after the last one (`now_unix` is not used here).
    pub fn update_root(&mut self, next_root_json: &[u8], now_unix: i64) -> Result<(), TufError> {
        let _ = now_unix;
        let (signed, signatures) = split(next_root_json)?;
        // Signed by the root we trust before anything of the new one is believed.
        verify_role("root", &signed, &signatures, &self.root.signed)?;
        let next: Root = decode("root", &signed)?;
        check_root(&next)?;
        verify_role("root", &signed, &signatures, &next)?;
        let want = self.root.signed.version.saturating_add(1);
        if next.version != want {
            return Err(TufError::RootVersion { want, got: next.version });
        }
        let old = &self.root.signed;
        let changed =
            |role: &str| old.roles.get(role) != next.roles.get(role) || role_keys(old, role) != role_keys(&next, role);
        if changed("timestamp") || changed("snapshot") {
            self.timestamp = None;
            self.snapshot = None;
        }
        self.root = Verified { raw: next_root_json.to_vec(), signed: next };
        Ok(())
    }

    /// After the root chain (§5.3.10): refuses a root that has expired (freeze attack).
    pub fn check_root_fresh(&self, now_unix: i64) -> Result<(), TufError> {
        check_expiry("root", &self.root.signed.expires, Some(now_unix))
    }

    /// A new timestamp (§5.4): signed by the timestamp role, not older than the trusted one, not
    /// naming an older snapshot, and not expired. An equal version keeps the trusted copy.
    pub fn update_timestamp(&mut self, json: &[u8], now_unix: i64) -> Result<(), TufError> {
        self.put_timestamp(json, Some(now_unix))
    }

    /// A new snapshot (§5.5): exactly the bytes the timestamp names (length, hash, version),
    /// signed by the snapshot role, no metadata version older than in the trusted snapshot, not
    /// expired.
    pub fn update_snapshot(&mut self, json: &[u8], now_unix: i64) -> Result<(), TufError> {
        self.put_snapshot(json, Some(now_unix))
    }

    /// New targets (§5.6): the version (and length and hash, if given) the snapshot names,
    /// signed by the targets role, not expired.
    pub fn update_targets(&mut self, json: &[u8], now_unix: i64) -> Result<&Targets, TufError> {
        self.put_targets(json, Some(now_unix))?;
        self.targets().ok_or_else(|| TufError::Missing { role: "targets".into() })
    }

    /// An assignment from the director: signed by a threshold of the root's
    /// `x-palisade-director` keys, for `device_id`, not older than the last one recorded with
    /// [`Trusted::record_assignment`], not expired (and the root not expired either).
    pub fn verify_assignment(&self, json: &[u8], device_id: &str, now_unix: i64) -> Result<Assignment, TufError> {
        self.check_root_fresh(now_unix)?;
        let director = self.root.signed.director.as_ref().ok_or(TufError::NoDirector)?;
        let (signed, signatures) = split(json)?;
        verify_keys("director", &signed, &signatures, director, &self.root.signed.keys)?;
        let a: Assignment = decode("assignment", &signed)?;
        if a.device_id != device_id {
            return Err(TufError::WrongDevice { want: device_id.into(), got: a.device_id });
        }
        if a.issued < self.assignment_issued {
            return Err(TufError::Rollback { role: "assignment".into(), have: self.assignment_issued, got: a.issued });
        }
        check_expiry("assignment", &a.expires, Some(now_unix))?;
        Ok(a)
    }

    /// Remembers that `a` was acted on, so that no older assignment is accepted afterwards.
    pub fn record_assignment(&mut self, a: &Assignment) {
        self.assignment_issued = self.assignment_issued.max(a.issued);
    }

    /// The `issued` of the newest assignment recorded (0 if none).
    pub fn assignment_issued(&self) -> u64 {
        self.assignment_issued
    }

    /// What to install. The assignment's target must be in the verified targets with the same
    /// SHA-256 and length (and version and counter), built for `hardware`, with a counter above
    /// `installed_counter` and at least `floor` (anti-rollback).
    pub fn approve(
        &self,
        a: &Assignment,
        hardware: &str,
        installed_counter: u64,
        floor: u64,
    ) -> Result<TargetFile, TufError> {
        let targets = self.targets().ok_or_else(|| TufError::Missing { role: "targets".into() })?;
        let entry =
            targets.targets.get(&a.target).ok_or_else(|| TufError::NotInCatalogue { target: a.target.clone() })?;
        match entry.sha256() {
            Some(sha) if sha.eq_ignore_ascii_case(&a.sha256) => {}
            _ => return Err(TufError::HashMismatch),
        }
        if entry.length != a.length {
            return Err(TufError::LengthMismatch { want: entry.length, got: a.length });
        }
        let info = entry.info()?;
        if info.hardware != hardware {
            return Err(TufError::WrongHardware { want: hardware.into(), got: info.hardware });
        }
        if a.hardware != hardware {
            return Err(TufError::WrongHardware { want: hardware.into(), got: a.hardware.clone() });
        }
        if a.counter != info.counter || a.version != info.version {
            return Err(TufError::MixAndMatch {
                role: "assignment".into(),
                detail: format!(
                    "assignment says {} (counter {}), the catalogue {} (counter {})",
                    a.version, a.counter, info.version, info.counter
                ),
            });
        }
        if info.counter <= installed_counter {
            return Err(TufError::Rollback { role: "image".into(), have: installed_counter, got: info.counter });
        }
        if info.counter < floor {
            return Err(TufError::Rollback { role: "image".into(), have: floor, got: info.counter });
        }
        Ok(entry.clone())
    }

    /// The state to persist: the raw metadata trusted and the newest assignment recorded.
    pub fn save(&self) -> Result<Vec<u8>, TufError> {
        let text = |raw: &[u8]| String::from_utf8(raw.to_vec()).map_err(|e| TufError::malformed(format!("state: {e}")));
        let state = State {
            format: STATE_FORMAT,
            root: text(&self.root.raw)?,
            timestamp: self.timestamp.as_ref().map(|v| text(&v.raw)).transpose()?,
            snapshot: self.snapshot.as_ref().map(|v| text(&v.raw)).transpose()?,
            targets: self.targets.as_ref().map(|v| text(&v.raw)).transpose()?,
            assignment_issued: self.assignment_issued,
        };
        serde_json::to_vec(&state).map_err(|e| TufError::malformed(format!("state: {e}")))
    }

    /// State saved by [`Trusted::save`]. The root is checked as in [`Trusted::new`]; the other
    /// metadata is checked again against it (signatures and consistency, not expiry, which the
    /// next update checks). Metadata that no longer verifies, e.g. after a key rotation, is
    /// dropped: the next update fetches it again.
    pub fn load(bytes: &[u8]) -> Result<Self, TufError> {
        if bytes.len() > 4 * MAX_METADATA_LEN {
            return Err(TufError::TooLarge { limit: 4 * MAX_METADATA_LEN as u64 });
        }
        let state: State = serde_json::from_slice(bytes).map_err(|e| TufError::malformed(format!("state: {e}")))?;
        if state.format != STATE_FORMAT {
            return Err(TufError::malformed(format!("state: format {} not supported", state.format)));
        }
        let mut trusted = Self::new(state.root.as_bytes())?;
        trusted.assignment_issued = state.assignment_issued;
        if let Some(ts) = &state.timestamp
            && trusted.put_timestamp(ts.as_bytes(), None).is_ok()
            && let Some(snap) = &state.snapshot
            && trusted.put_snapshot(snap.as_bytes(), None).is_ok()
            && let Some(targets) = &state.targets
        {
            let _ = trusted.put_targets(targets.as_bytes(), None);
        }
        Ok(trusted)
    }

    /// `now` is `None` only when reloading saved state: then expiry is not checked.
    fn put_timestamp(&mut self, json: &[u8], now: Option<i64>) -> Result<(), TufError> {
        if let Some(now) = now {
            self.check_root_fresh(now)?;
        }
        let (signed, signatures) = split(json)?;
        verify_role("timestamp", &signed, &signatures, &self.root.signed)?;
        let new: Timestamp = decode("timestamp", &signed)?;
        check_common("timestamp", &new.spec_version, new.version, &new.expires)?;
        let new_snap =
            new.meta.get(SNAPSHOT_JSON).ok_or_else(|| TufError::malformed("timestamp: no meta for snapshot.json"))?;
        if let Some(old) = &self.timestamp {
            let old = &old.signed;
            if new.version < old.version {
                return Err(TufError::Rollback { role: "timestamp".into(), have: old.version, got: new.version });
            }
            if let Some(old_snap) = old.meta.get(SNAPSHOT_JSON)
                && new_snap.version < old_snap.version
            {
                return Err(TufError::Rollback {
                    role: "snapshot".into(),
                    have: old_snap.version,
                    got: new_snap.version,
                });
            }
            if new.version == old.version {
                // Nothing new: keep what we have, which must still be fresh.
                return check_expiry("timestamp", &old.expires, now);
            }
        }
        check_expiry("timestamp", &new.expires, now)?;
        self.timestamp = Some(Verified { raw: json.to_vec(), signed: new });
        Ok(())
    }

    fn put_snapshot(&mut self, json: &[u8], now: Option<i64>) -> Result<(), TufError> {
        let timestamp = self.timestamp.as_ref().ok_or_else(|| TufError::Missing { role: "timestamp".into() })?;
        check_expiry("timestamp", &timestamp.signed.expires, now)?;
        let expected = timestamp
            .signed
            .meta
            .get(SNAPSHOT_JSON)
            .ok_or_else(|| TufError::malformed("timestamp: no meta for snapshot.json"))?;
        check_bytes("snapshot", json, expected)?;
        let (signed, signatures) = split(json)?;
        verify_role("snapshot", &signed, &signatures, &self.root.signed)?;
        let new: Snapshot = decode("snapshot", &signed)?;
        check_common("snapshot", &new.spec_version, new.version, &new.expires)?;
        if new.version != expected.version {
            return Err(TufError::MixAndMatch {
                role: "snapshot".into(),
                detail: format!("version {}, the timestamp says {}", new.version, expected.version),
            });
        }
        if !new.meta.contains_key(TARGETS_JSON) {
            return Err(TufError::malformed("snapshot: no meta for targets.json"));
        }
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in &old.signed.meta {
                let new_meta = new
                    .meta
                    .get(name)
                    .ok_or_else(|| TufError::malformed(format!("snapshot: {name} is no longer listed")))?;
                if new_meta.version < old_meta.version {
                    return Err(TufError::Rollback {
                        role: name.trim_end_matches(".json").into(),
                        have: old_meta.version,
                        got: new_meta.version,
                    });
                }
            }
        }
        check_expiry("snapshot", &new.expires, now)?;
        self.snapshot = Some(Verified { raw: json.to_vec(), signed: new });
        Ok(())
    }

    fn put_targets(&mut self, json: &[u8], now: Option<i64>) -> Result<(), TufError> {
        let timestamp = self.timestamp.as_ref().ok_or_else(|| TufError::Missing { role: "timestamp".into() })?;
        let snapshot = self.snapshot.as_ref().ok_or_else(|| TufError::Missing { role: "snapshot".into() })?;
        check_expiry("timestamp", &timestamp.signed.expires, now)?;
        check_expiry("snapshot", &snapshot.signed.expires, now)?;
        if let Some(named) = timestamp.signed.meta.get(SNAPSHOT_JSON)
            && named.version != snapshot.signed.version
        {
            return Err(TufError::MixAndMatch {
                role: "snapshot".into(),
                detail: format!(
                    "trusted snapshot is version {}, the timestamp says {}",
                    snapshot.signed.version, named.version
                ),
            });
        }
        let expected = snapshot
            .signed
            .meta
            .get(TARGETS_JSON)
            .ok_or_else(|| TufError::malformed("snapshot: no meta for targets.json"))?;
        check_bytes("targets", json, expected)?;
        let (signed, signatures) = split(json)?;
        verify_role("targets", &signed, &signatures, &self.root.signed)?;
        let new: Targets = decode("targets", &signed)?;
        check_common("targets", &new.spec_version, new.version, &new.expires)?;
        if new.version != expected.version {
            return Err(TufError::MixAndMatch {
                role: "targets".into(),
                detail: format!("version {}, the snapshot says {}", new.version, expected.version),
            });
        }
        if let Some(old) = &self.targets
            && new.version < old.signed.version
        {
            return Err(TufError::Rollback { role: "targets".into(), have: old.signed.version, got: new.version });
        }
        check_expiry("targets", &new.expires, now)?;
        self.targets = Some(Verified { raw: json.to_vec(), signed: new });
        Ok(())
    }
}

/// The `signed` value and the signatures of an envelope, bounded in size.
fn split(json: &[u8]) -> Result<(Value, Vec<Signature>), TufError> {
    if json.len() > MAX_METADATA_LEN {
        return Err(TufError::TooLarge { limit: MAX_METADATA_LEN as u64 });
    }
    #[derive(Deserialize)]
    struct Envelope {
        signed: Value,
        signatures: Vec<Signature>,
    }
    let env: Envelope = serde_json::from_slice(json).map_err(|e| TufError::malformed(e.to_string()))?;
    if !env.signed.is_object() {
        return Err(TufError::malformed("signed is not an object"));
    }
    // As python-tuf: one signature per key (and no key's signature is checked twice).
    let mut seen = BTreeSet::new();
    if let Some(dup) = env.signatures.iter().find(|s| !seen.insert(s.keyid.as_str())) {
        return Err(TufError::malformed(format!("two signatures by key {}", dup.keyid)));
    }
    Ok((env.signed, env.signatures))
}

fn decode<T: DeserializeOwned>(role: &str, signed: &Value) -> Result<T, TufError> {
    T::deserialize(signed).map_err(|e| TufError::malformed(format!("{role}: {e}")))
}

fn verify_role(role: &str, signed: &Value, signatures: &[Signature], root: &Root) -> Result<(), TufError> {
    let keys = root.roles.get(role).ok_or_else(|| TufError::malformed(format!("root names no {role} role")))?;
    verify_keys(role, signed, signatures, keys, &root.keys)
}

/// At least `threshold` distinct keys of the role signed the canonical form of `signed`.
/// Signatures by keys outside the role are ignored; if too few remain and one by a role key was
/// invalid, the metadata was tampered with (`BadSignature`), otherwise `Threshold`.
fn verify_keys(
    role: &str,
    signed: &Value,
    signatures: &[Signature],
    role_keys: &RoleKeys,
    keys: &BTreeMap<String, PublicKey>,
) -> Result<(), TufError> {
    if role_keys.threshold == 0 {
        return Err(TufError::malformed(format!("{role}: threshold 0")));
    }
    let msg = canonical_json(signed)?;
    let mut counted: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut bad = false;
    for sig in signatures {
        if !role_keys.keyids.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else { continue };
        let material = key.material();
        if counted.contains(&material) {
            continue;
        }
        let valid = hex::decode(&sig.sig).is_ok_and(|raw| key.verify(&msg, &raw));
        if valid {
            counted.insert(material);
        } else {
            bad = true;
        }
    }
    let got = u32::try_from(counted.len()).unwrap_or(u32::MAX);
    if got >= role_keys.threshold {
        Ok(())
    } else if bad {
        Err(TufError::BadSignature { role: role.into() })
    } else {
        Err(TufError::Threshold { role: role.into(), got, need: role_keys.threshold })
    }
}

/// The public keys of a role, for comparing two roots.
fn role_keys<'a>(root: &'a Root, role: &str) -> Vec<Option<&'a PublicKey>> {
    root.roles.get(role).map(|r| r.keyids.iter().map(|id| root.keys.get(id)).collect()).unwrap_or_default()
}

/// A root we can work with: the common fields, the four roles (and the director if named) with
/// a reachable threshold of keys it lists.
fn check_root(root: &Root) -> Result<(), TufError> {
    check_common("root", &root.spec_version, root.version, &root.expires)?;
    for name in ROLES {
        let role = root.roles.get(name).ok_or_else(|| TufError::malformed(format!("root: no {name} role")))?;
        check_role(root, name, role)?;
    }
    if let Some(director) = &root.director {
        check_role(root, "x-palisade-director", director)?;
    }
    Ok(())
}

fn check_role(root: &Root, name: &str, role: &RoleKeys) -> Result<(), TufError> {
    if role.threshold == 0 {
        return Err(TufError::malformed(format!("root: {name} threshold is 0")));
    }
    let mut distinct = BTreeSet::new();
    for id in &role.keyids {
        let key =
            root.keys.get(id).ok_or_else(|| TufError::malformed(format!("root: {name} names unknown key {id}")))?;
        distinct.insert(key.material());
    }
    if u32::try_from(distinct.len()).unwrap_or(u32::MAX) < role.threshold {
        return Err(TufError::malformed(format!(
            "root: {name} threshold {} but {} distinct keys",
            role.threshold,
            distinct.len()
        )));
    }
    Ok(())
}

/// `spec_version` 1.x, a version of at least 1, and a well-formed `expires`.
fn check_common(role: &str, spec_version: &str, version: u64, expires: &str) -> Result<(), TufError> {
    let parts: Vec<&str> = spec_version.split('.').collect();
    let numeric = parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(numeric && (2..=3).contains(&parts.len()) && parts.first() == Some(&"1")) {
        return Err(TufError::malformed(format!("{role}: unsupported spec_version {spec_version:?}")));
    }
    if version == 0 {
        return Err(TufError::malformed(format!("{role}: version 0")));
    }
    parse_expires(expires)?;
    Ok(())
}

/// Expired when `now` has reached `expires` (as python-tuf: `now >= expires`).
fn check_expiry(role: &str, expires: &str, now: Option<i64>) -> Result<(), TufError> {
    let Some(now) = now else { return Ok(()) };
    if now >= parse_expires(expires)? {
        return Err(TufError::Expired { role: role.into(), expires: expires.into() });
    }
    Ok(())
}

/// The bytes have the length and hashes the metadata above says (when it says them).
fn check_bytes(role: &str, bytes: &[u8], expected: &MetaFile) -> Result<(), TufError> {
    let mix = |detail: String| TufError::MixAndMatch { role: role.into(), detail };
    if let Some(length) = expected.length {
        let got = bytes.len() as u64;
        if got != length {
            return Err(mix(format!("{got} bytes, {length} expected")));
        }
    }
    if let Some(hashes) = &expected.hashes {
        for (algorithm, want) in hashes {
            let alg = match algorithm.as_str() {
                "sha256" => &aws_lc_rs::digest::SHA256,
                "sha512" => &aws_lc_rs::digest::SHA512,
                other => return Err(TufError::malformed(format!("{role}: unsupported hash algorithm {other}"))),
            };
            let got = aws_lc_rs::digest::digest(alg, bytes);
            let matches = hex::decode(want).is_ok_and(|w| w.as_slice() == got.as_ref());
            if !matches {
                return Err(mix(format!("{algorithm} differs")));
            }
        }
    }
    Ok(())
}
