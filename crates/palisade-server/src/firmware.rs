//! Signed firmware updates, the server's part: the online TUF keys (snapshot, timestamp,
//! director), checking what operators publish (offline-signed roots and targets), signing the
//! snapshot and timestamp that go with it, signing per-device assignments, and recording what
//! agents report about their updates.
//!
//! The online keys are generated on first use and kept sealed in the store like the other
//! server secrets; they are never logged and never leave the process except as signatures.
//! The offline root and targets keys never reach the server.

use std::collections::BTreeSet;
use std::sync::Arc;

use palisade_core::audit::Actor;
use palisade_core::{DeviceId, LifecycleState};
use palisade_store::audit::AuditContext;
use palisade_store::firmware::{CatalogueEntry, NewAssignment, NewMetadata, Publication, Role, UpdateReport};
use palisade_store::{Store, StoreError};
use palisade_tuf::{
    Assignment, KeyType, PublicKey, Root, Signed, SigningKey, Snapshot, Targets, Timestamp, canonical_json,
};
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};
use zeroize::Zeroizing;

use crate::{AppState, now_ms};

/// Largest root or targets metadata accepted (agents fetch at most 4 MiB too).
pub const MAX_METADATA_BYTES: usize = 4 << 20;
/// How long a timestamp is valid; re-signed once half of it has passed.
const TIMESTAMP_SECS: i64 = 24 * 3600;
/// How long a snapshot is valid; re-signed once half of it has passed.
const SNAPSHOT_SECS: i64 = 7 * 24 * 3600;
/// How long an assignment is valid.
pub const ASSIGNMENT_SECS: i64 = 30 * 24 * 3600;
/// Attempts at an assignment that loses a race with another one for the same device.
const ASSIGN_ATTEMPTS: usize = 3;

const SNAPSHOT_SECRET: &str = "tuf/snapshot-key";
const TIMESTAMP_SECRET: &str = "tuf/timestamp-key";
const DIRECTOR_SECRET: &str = "tuf/director-key";

/// Why a firmware operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The input is wrong; `field` names where (a JSON path in metadata, or a request field).
    #[error("{field}: {reason}")]
    Refused { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (no root yet, device decommissioned…).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our own keys failed (never caused by input).
    #[error("online key: {0}")]
    Keys(String),
}

impl FirmwareError {
    fn refused(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Refused { field: field.into(), reason: reason.into() }
    }
}

/// The server's online keys.
pub struct OnlineKeys {
    pub snapshot: SigningKey,
    pub timestamp: SigningKey,
    pub director: SigningKey,
}

impl std::fmt::Debug for OnlineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineKeys")
            .field("snapshot", &self.snapshot.key_id())
            .field("timestamp", &self.timestamp.key_id())
            .field("director", &self.director.key_id())
            .finish()
    }
}

/// The firmware service's process state: the online keys once loaded, and a lock that makes
/// this process publish (and re-sign) one thing at a time.
#[derive(Debug, Default)]
pub struct Firmware {
    keys: OnceCell<Arc<OnlineKeys>>,
    publishing: Mutex<()>,
}

async fn load_key(store: &Store, name: &str) -> Result<SigningKey, FirmwareError> {
    let stored = match store.secret(name).await? {
        Some(s) => s,
        None => {
            let fresh = SigningKey::generate(KeyType::Ed25519).map_err(|e| FirmwareError::Keys(e.to_string()))?;
            let pem = fresh.to_pkcs8_pem();
            store.secret_or_insert(name.into(), Zeroizing::new(pem.as_bytes().to_vec()), now_ms()).await?
        }
    };
    let pem = std::str::from_utf8(&stored).map_err(|_| FirmwareError::Keys(format!("{name} is not PEM")))?;
    SigningKey::from_pkcs8_pem(pem).map_err(|e| FirmwareError::Keys(format!("{name}: {e}")))
}

/// The online keys, generated on first use.
pub async fn online_keys(state: &AppState) -> Result<Arc<OnlineKeys>, FirmwareError> {
    state
        .firmware
        .keys
        .get_or_try_init(|| async {
            Ok(Arc::new(OnlineKeys {
                snapshot: load_key(&state.store, SNAPSHOT_SECRET).await?,
                timestamp: load_key(&state.store, TIMESTAMP_SECRET).await?,
                director: load_key(&state.store, DIRECTOR_SECRET).await?,
            }))
        })
        .await
        .cloned()
}

fn ms_of(expires: &str, field: &str) -> Result<i64, FirmwareError> {
    let secs = palisade_tuf::parse_expires(expires).map_err(|e| FirmwareError::refused(field, e.to_string()))?;
    Ok(secs.saturating_mul(1000))
}

fn expires_in(secs: i64) -> (String, i64) {
    let at = now_ms() / 1000 + secs;
    (palisade_tuf::expires_at(at), at.saturating_mul(1000))
}

/// Counts the distinct keys of `role` (as `root` defines it) whose signatures over the
/// canonical `signed` of `body` verify, and refuses fewer than the threshold.
fn check_signatures(body: &[u8], root: &Root, role: &str, keys_of: &str) -> Result<(), FirmwareError> {
    let role_keys = if role == "director" { root.director.as_ref() } else { root.roles.get(role) };
    let Some(role_keys) = role_keys else {
        return Err(FirmwareError::refused(format!("{keys_of}.roles.{role}"), "missing"));
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| FirmwareError::refused("body", format!("not JSON: {e}")))?;
    let signed = value.get("signed").ok_or_else(|| FirmwareError::refused("signed", "missing"))?;
    let msg = canonical_json(signed).map_err(|e| FirmwareError::refused("signed", e.to_string()))?;
    let sigs = value
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or_else(|| FirmwareError::refused("signatures", "missing or not a list"))?;
    let mut valid = BTreeSet::new();
    for sig in sigs {
        let (Some(keyid), Some(hex_sig)) =
            (sig.get("keyid").and_then(Value::as_str), sig.get("sig").and_then(Value::as_str))
        else {
            continue;
        };
        if !role_keys.keyids.iter().any(|k| k == keyid) {
            continue;
        }
        let (Some(key), Ok(raw)) = (root.keys.get(keyid), hex::decode(hex_sig)) else { continue };
        if key.verify(&msg, &raw) {
            valid.insert(keyid.to_owned());
        }
    }
    let need = role_keys.threshold.max(1);
    let got = u32::try_from(valid.len()).unwrap_or(u32::MAX);
    if got < need {
        let whose = if keys_of == "signed" { "its own" } else { "the current root's" };
        return Err(FirmwareError::refused(
            "signatures",
            format!("{got} valid signature(s) by {whose} {role} keys, {need} required"),
        ));
    }
    Ok(())
}

/// The role lists exactly our key with threshold 1 (it is what signs that role).
fn check_online_role(root: &Root, role: &str, ours: &PublicKey) -> Result<(), FirmwareError> {
    let (field, keys) = if role == "director" {
        ("signed.x-palisade-director".to_owned(), root.director.as_ref())
    } else {
        (format!("signed.roles.{role}"), root.roles.get(role))
    };
    let id = ours.key_id();
    let ok = keys.is_some_and(|k| k.threshold == 1 && k.keyids.contains(&id))
        && root.keys.get(&id).is_some_and(|k| k == ours);
    if ok {
        Ok(())
    } else {
        Err(FirmwareError::refused(
            field,
            format!("must list the server's online {role} key {id} with threshold 1 (see GET /api/v1/firmware/keys)"),
        ))
    }
}

fn parse_root(body: &[u8]) -> Result<Root, FirmwareError> {
    palisade_tuf::parse::<Root>(body, MAX_METADATA_BYTES)
        .map(|s| s.signed)
        .map_err(|e| FirmwareError::refused("body", format!("not a root metadata: {e}")))
}

async fn current_root(store: &Store) -> Result<Option<(Root, Vec<u8>)>, FirmwareError> {
    let Some(m) = store.tuf_latest(Role::Root).await? else { return Ok(None) };
    let root = palisade_tuf::parse::<Root>(&m.body, MAX_METADATA_BYTES)
        .map_err(|e| StoreError::Corrupt(format!("stored root: {e}")))?
        .signed;
    Ok(Some((root, m.body)))
}

/// Checks and stores an offline-signed root: signed by its own root keys to threshold, not
/// expired, naming the server's online keys for snapshot, timestamp and director; when a root
/// exists, exactly the next version and signed to threshold by the current root's keys too.
/// The version stored.
pub async fn put_root(state: &AppState, body: &[u8], ctx: AuditContext) -> Result<u64, FirmwareError> {
    let root = parse_root(body)?;
    let expires_ms = ms_of(&root.expires, "signed.expires")?;
    if expires_ms <= now_ms() {
        return Err(FirmwareError::refused("signed.expires", format!("{} is in the past", root.expires)));
    }
    if !root.roles.get("targets").is_some_and(|r| r.threshold >= 1 && !r.keyids.is_empty()) {
        return Err(FirmwareError::refused("signed.roles.targets", "must name at least one key and a threshold"));
    }
    check_signatures(body, &root, "root", "signed")?;
    let keys = online_keys(state).await?;
    check_online_role(&root, "snapshot", &keys.snapshot.public())?;
    check_online_role(&root, "timestamp", &keys.timestamp.public())?;
    check_online_role(&root, "director", &keys.director.public())?;
    let _one = state.firmware.publishing.lock().await;
    if let Some((current, _)) = current_root(&state.store).await? {
        if root.version != current.version + 1 {
            return Err(FirmwareError::refused(
                "signed.version",
                format!(
                    "is {}; the current root is version {}, so the next must be {}",
                    root.version,
                    current.version,
                    current.version + 1
                ),
            ));
        }
        check_signatures(body, &current, "root", "current")?;
    } else if root.version != 1 {
        return Err(FirmwareError::refused("signed.version", format!("is {}; the first root must be 1", root.version)));
    }
    let version = root.version;
    state.store.put_tuf_root(NewMetadata { version, body: body.to_vec(), expires_ms }, ctx).await?;
    tracing::info!(version, "published a new TUF root");
    Ok(version)
}

fn sign<T: serde::Serialize>(value: T, key: &SigningKey) -> Result<Vec<u8>, FirmwareError> {
    let mut signed = Signed::new(value);
    signed.sign(key).map_err(|e| FirmwareError::Keys(e.to_string()))?;
    signed.to_json().map_err(|e| FirmwareError::Keys(e.to_string()))
}

/// A new snapshot naming targets version `targets_version`, and the timestamp naming it.
async fn sign_online(
    store: &Store,
    keys: &OnlineKeys,
    targets_version: u64,
    with_snapshot: bool,
) -> Result<(Option<NewMetadata>, NewMetadata), FirmwareError> {
    let (snapshot_version, snapshot_bytes, snapshot_new) = if with_snapshot {
        let version = store.tuf_latest(Role::Snapshot).await?.map_or(0, |m| m.version) + 1;
        let (expires, expires_ms) = expires_in(SNAPSHOT_SECS);
        let body = sign(Snapshot::for_targets(version, &expires, targets_version), &keys.snapshot)?;
        (version, body.clone(), Some(NewMetadata { version, body, expires_ms }))
    } else {
        let m = store.tuf_latest(Role::Snapshot).await?.ok_or_else(|| FirmwareError::NotFound("snapshot".into()))?;
        (m.version, m.body, None)
    };
    let version = store.tuf_latest(Role::Timestamp).await?.map_or(0, |m| m.version) + 1;
    let (expires, expires_ms) = expires_in(TIMESTAMP_SECS);
    let body = sign(Timestamp::for_snapshot(version, &expires, &snapshot_bytes, snapshot_version), &keys.timestamp)?;
    Ok((snapshot_new, NewMetadata { version, body, expires_ms }))
}

fn catalogue_entries(targets: &Targets) -> Result<Vec<CatalogueEntry>, FirmwareError> {
    let mut out = Vec::with_capacity(targets.targets.len());
    for (name, file) in &targets.targets {
        let field = format!("signed.targets.{name}");
        if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
            return Err(FirmwareError::refused(field, "a target name must be 1 to 256 printable characters"));
        }
        let info = file.info().map_err(|e| FirmwareError::refused(format!("{field}.custom"), e.to_string()))?;
        if info.hardware.trim().is_empty() || info.version.trim().is_empty() {
            return Err(FirmwareError::refused(format!("{field}.custom"), "version and hardware must not be empty"));
        }
        if i64::try_from(info.counter).is_err() {
            return Err(FirmwareError::refused(format!("{field}.custom.counter"), "is too large"));
        }
        let sha256 = file.sha256().unwrap_or_default();
        if !palisade_store::firmware::is_sha256_hex(sha256) {
            return Err(FirmwareError::refused(format!("{field}.hashes.sha256"), "must be 64 lowercase hex digits"));
        }
        out.push(CatalogueEntry {
            name: name.clone(),
            hardware: info.hardware,
            version: info.version,
            counter: info.counter,
            sha256: sha256.to_owned(),
            length: file.length,
            created_ms: 0,
        });
    }
    Ok(out)
}

/// Checks and publishes an offline-signed targets metadata: signed to threshold by the current
/// root's targets keys, not expired, a version above the current one, every target's image
/// uploaded with its SHA-256 and length. Signs a new snapshot and timestamp for it, and the
/// catalogue becomes its targets, in one write. The version published.
pub async fn publish_targets(state: &AppState, body: &[u8], ctx: AuditContext) -> Result<u64, FirmwareError> {
    let targets = palisade_tuf::parse::<Targets>(body, MAX_METADATA_BYTES)
        .map_err(|e| FirmwareError::refused("body", format!("not a targets metadata: {e}")))?
        .signed;
    let expires_ms = ms_of(&targets.expires, "signed.expires")?;
    if expires_ms <= now_ms() {
        return Err(FirmwareError::refused("signed.expires", format!("{} is in the past", targets.expires)));
    }
    let entries = catalogue_entries(&targets)?;
    let keys = online_keys(state).await?;
    let _one = state.firmware.publishing.lock().await;
    let Some((root, _)) = current_root(&state.store).await? else {
        return Err(FirmwareError::Conflict(
            "no root is published yet: upload one first (palisade firmware root)".into(),
        ));
    };
    check_signatures(body, &root, "targets", "current")?;
    let version = targets.version;
    let (snapshot, timestamp) = sign_online(&state.store, &keys, version, true).await?;
    let snapshot = snapshot.ok_or_else(|| FirmwareError::Keys("no snapshot signed".into()))?;
    let publication =
        Publication { targets: NewMetadata { version, body: body.to_vec(), expires_ms }, entries, snapshot, timestamp };
    state.store.publish_targets(publication, ctx).await?;
    tracing::info!(version, targets = targets.targets.len(), "published a new TUF targets metadata");
    Ok(version)
}

/// Re-signs the timestamp (and the snapshot) when half of its validity has passed, so that
/// devices never see them expire while the server runs. Errors are logged: the metadata as it
/// stands is still served.
pub async fn refresh_online(state: &AppState) {
    if let Err(e) = try_refresh(state).await {
        tracing::error!(error = %e, "cannot re-sign the TUF timestamp");
    }
}

async fn try_refresh(state: &AppState) -> Result<(), FirmwareError> {
    let due = |m: &Option<palisade_store::firmware::Metadata>, secs: i64| {
        m.as_ref().is_some_and(|m| m.expires_ms - now_ms() < secs * 1000 / 2)
    };
    let (ts, snap) = (state.store.tuf_latest(Role::Timestamp).await?, state.store.tuf_latest(Role::Snapshot).await?);
    if ts.is_none() || !(due(&ts, TIMESTAMP_SECS) || due(&snap, SNAPSHOT_SECS)) {
        return Ok(());
    }
    let keys = online_keys(state).await?;
    let _one = state.firmware.publishing.lock().await;
    let snap = state.store.tuf_latest(Role::Snapshot).await?;
    let ts = state.store.tuf_latest(Role::Timestamp).await?;
    let with_snapshot = due(&snap, SNAPSHOT_SECS);
    if !(with_snapshot || due(&ts, TIMESTAMP_SECS)) {
        return Ok(()); // re-signed while we waited
    }
    let targets_version = state.store.tuf_latest(Role::Targets).await?.map_or(0, |m| m.version);
    let (snapshot, timestamp) = sign_online(&state.store, &keys, targets_version, with_snapshot).await?;
    let ctx = AuditContext { actor: Actor::System, source_ip: None, at_ms: now_ms() };
    match state.store.resign_tuf(snapshot, timestamp, ctx).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()), // another node re-signed first
        Err(e) => Err(e.into()),
    }
}

/// An assignment signed and queued.
#[derive(Debug, Clone)]
pub struct Assigned {
    /// Its number for the device (1, 2, 3…).
    pub issued: u64,
    /// The `update` command queued for the device.
    pub command_id: String,
    /// The `Signed<Assignment>` JSON the device will fetch.
    pub signed: String,
}

/// Assigns catalogue target `target` to a device: signs an assignment with the director key
/// (valid 30 days, `issued` one more than the device's previous), stores it and queues the
/// MQTT `update` command in one audited write, and nudges the device's live session.
/// Refused when the target is not in the catalogue or is built for another model than the
/// device's, and for decommissioned devices. The caller checks the caller's scope.
pub async fn assign(
    state: &AppState,
    device_id: &DeviceId,
    target: &str,
    ctx: AuditContext,
) -> Result<Assigned, FirmwareError> {
    let device = state.store.get_device(device_id).await?;
    if device.state == LifecycleState::Decommissioned {
        return Err(FirmwareError::Conflict(format!("device {device_id} is decommissioned")));
    }
    let keys = online_keys(state).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(entry) = state.store.firmware_target(target).await? else {
            return Err(FirmwareError::refused("target", format!("{target:.256?} is not in the firmware catalogue")));
        };
        if entry.hardware != device.attrs.model {
            return Err(FirmwareError::refused(
                "target",
                format!(
                    "{} is built for hardware {:?}; device {device_id} is a {:?}",
                    entry.name, entry.hardware, device.attrs.model
                ),
            ));
        }
        let issued = state.store.firmware_assignment(device_id.as_str()).await?.map_or(0, |a| a.issued) + 1;
        let (expires, _) = expires_in(ASSIGNMENT_SECS);
        let assignment = Assignment {
            device_id: device_id.to_string(),
            target: entry.name.clone(),
            length: entry.length,
            sha256: entry.sha256.clone(),
            version: entry.version.clone(),
            hardware: entry.hardware.clone(),
            counter: entry.counter,
            issued,
            expires,
        };
        let signed = String::from_utf8(sign(assignment, &keys.director)?)
            .map_err(|_| FirmwareError::Keys("assignment JSON is not UTF-8".into()))?;
        let new = NewAssignment {
            device_id: device_id.to_string(),
            issued,
            target: entry.name.clone(),
            sha256: entry.sha256.clone(),
            signed: signed.clone(),
        };
        match state.store.assign_firmware(new, ctx.clone()).await {
            Ok(command_id) => {
                state.plane.deliver(device_id.as_str());
                return Ok(Assigned { issued, command_id, signed });
            }
            Err(StoreError::Conflict(_)) if attempt < ASSIGN_ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An agent's `update.*` event, as published on `devices/<id>/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateEvent {
    pub event: String,
    pub target: Option<String>,
    pub version: Option<String>,
    pub detail: Option<String>,
}

/// The update event in an event payload, if it is one (`"event"` starting with `update.`).
pub fn update_event(payload: &str) -> Option<UpdateEvent> {
    let v: Value = serde_json::from_str(payload).ok()?;
    let event = v.get("event")?.as_str()?;
    if !event.starts_with("update.") {
        return None;
    }
    let text = |k: &str| match v.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    Some(UpdateEvent {
        event: event.to_owned(),
        target: text("target"),
        version: text("version"),
        detail: text("detail"),
    })
}

/// Records a device's update event as its last update report (the raw message is stored with
/// the other events); `update.committed` sets the device's firmware version, audited as the
/// device's change.
pub async fn record_update(state: &AppState, device_id: &str, e: UpdateEvent) -> Result<(), StoreError> {
    let at_ms = now_ms();
    let report = UpdateReport {
        device_id: device_id.to_owned(),
        event: e.event,
        target: e.target,
        version: e.version,
        detail: e.detail,
        at_ms,
    };
    let ctx = AuditContext { actor: Actor::Device { id: device_id.to_owned() }, source_ip: None, at_ms };
    state.store.record_update_report(report, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_update_events_are_taken() {
        assert_eq!(update_event(r#"{"event":"login.failed"}"#), None);
        assert_eq!(update_event("not json"), None);
        let e = update_event(r#"{"event":"update.committed","target":"fw-1.4.2","version":"1.4.2","detail":null}"#);
        assert_eq!(
            e,
            Some(UpdateEvent {
                event: "update.committed".into(),
                target: Some("fw-1.4.2".into()),
                version: Some("1.4.2".into()),
                detail: None
            })
        );
        let e = update_event(r#"{"event":"update.refused","detail":{"why":"rollback"}}"#).unwrap();
        assert_eq!(e.detail.as_deref(), Some(r#"{"why":"rollback"}"#));
    }
}
