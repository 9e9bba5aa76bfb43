//! Signed firmware updates as stored: TUF metadata by role and version (the signed JSON exactly
//! as served), uploaded images, the catalogue (the targets of the current targets metadata),
//! per-device assignments and each device's last update report.
//!
//! The store checks what must hold at commit time (versions move by one, a target's image is
//! uploaded with that hash and length, an assignment follows the previous one); signatures are
//! checked by the caller, which holds the keys.

use palisade_core::device::DevicePatch;
use palisade_core::{DeviceId, InvalidField};
use serde_json::json;

use crate::audit::{self, AuditContext};
use crate::sealed::Keyring;
use crate::sql::{Db, Row};
use crate::{StoreError, args, devices, identity};

/// A TUF role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Targets => "targets",
            Self::Snapshot => "snapshot",
            Self::Timestamp => "timestamp",
        }
    }
}

/// One version of one role's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub version: u64,
    /// The signed JSON as served.
    pub body: Vec<u8>,
    pub expires_ms: i64,
    pub created_ms: i64,
}

/// Metadata to store: its version, signed bytes and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMetadata {
    pub version: u64,
    pub body: Vec<u8>,
    pub expires_ms: i64,
}

/// An uploaded image (the bytes are a file named after its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub sha256: String,
    pub length: u64,
    pub created_ms: i64,
}

/// A target of the current targets metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub name: String,
    pub hardware: String,
    pub version: String,
    pub counter: u64,
    pub sha256: String,
    pub length: u64,
    pub created_ms: i64,
}

/// A verified targets metadata and the online metadata signed for it, published in one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub targets: NewMetadata,
    /// Its targets (`created_ms` is set by the store).
    pub entries: Vec<CatalogueEntry>,
    pub snapshot: NewMetadata,
    pub timestamp: NewMetadata,
}

/// An assignment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAssignment {
    pub device_id: String,
    /// 1, 2, 3… per device: a device refuses an assignment older than one it has seen.
    pub issued: u64,
    pub target: String,
    /// The `Signed<Assignment>` JSON.
    pub signed: String,
    pub created_ms: i64,
}

/// A signed assignment to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssignment {
    pub device_id: String,
    /// Must be the previous assignment's `issued` + 1 (1 for the first).
    pub issued: u64,
    pub target: String,
    /// The image the signature names: the catalogue must still list it for `target`.
    pub sha256: String,
    pub signed: String,
}

/// A device's last `update.*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    pub device_id: String,
    pub event: String,
    pub target: Option<String>,
    pub version: Option<String>,
    pub detail: Option<String>,
    pub at_ms: i64,
}

/// Longest event name, target name and version kept from a report; longer ones are cut.
const MAX_REPORT_FIELD: usize = 256;
/// Longest detail kept from a report.
const MAX_REPORT_DETAIL: usize = 4096;
/// Longest firmware version written to the device record (as the API allows).
const MAX_DEVICE_VERSION: usize = 64;

fn unsigned(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}")))
}

fn signed(v: u64, field: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| InvalidField::new(field, "too large").into())
}

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode_meta(r: &Row) -> Result<Metadata, StoreError> {
    Ok(Metadata {
        version: unsigned(r.int(0)?, "version")?,
        body: r.blob(1)?,
        expires_ms: r.int(2)?,
        created_ms: r.int(3)?,
    })
}

/// The newest version of `role`.
pub async fn latest<D: Db>(db: &mut D, role: Role) -> Result<Option<Metadata>, StoreError> {
    db.query_opt(
        "SELECT version, body, expires_ms, created_ms FROM tuf_metadata WHERE role = $1 ORDER BY version DESC LIMIT 1",
        args![role.as_str()],
    )
    .await?
    .map(|r| decode_meta(&r))
    .transpose()
}

/// Version `version` of `role`.
pub async fn version<D: Db>(db: &mut D, role: Role, version: u64) -> Result<Option<Metadata>, StoreError> {
    let Ok(v) = i64::try_from(version) else { return Ok(None) };
    db.query_opt(
        "SELECT version, body, expires_ms, created_ms FROM tuf_metadata WHERE role = $1 AND version = $2",
        args![role.as_str(), v],
    )
    .await?
    .map(|r| decode_meta(&r))
    .transpose()
}

async fn latest_version<D: Db>(db: &mut D, role: Role) -> Result<u64, StoreError> {
    let r = db.query_opt("SELECT max(version) FROM tuf_metadata WHERE role = $1", args![role.as_str()]).await?;
    match r.map(|r| r.opt_int(0)).transpose()?.flatten() {
        Some(v) => unsigned(v, "version"),
        None => Ok(0),
    }
}

async fn insert_meta<D: Db>(db: &mut D, role: Role, m: &NewMetadata, now_ms: i64) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO tuf_metadata (role, version, body, expires_ms, created_ms) VALUES ($1, $2, $3, $4, $5)",
        args![role.as_str(), signed(m.version, "version")?, m.body.clone(), m.expires_ms, now_ms],
    )
    .await?;
    Ok(())
}

/// Stores a verified root. Its version must follow the newest root's (1 for the first).
pub async fn put_root<D: Db>(db: &mut D, root: &NewMetadata, ctx: &AuditContext) -> Result<(), StoreError> {
    let current = latest_version(db, Role::Root).await?;
    if root.version != current + 1 {
        return Err(InvalidField::new(
            "signed.version",
            format!("is {}; the current root is version {current}, so the next must be {}", root.version, current + 1),
        )
        .into());
    }
    insert_meta(db, Role::Root, root, ctx.at_ms).await?;
    let before = (current > 0).then(|| json!({ "version": current }));
    let after = json!({ "version": root.version, "expires_ms": root.expires_ms });
    audit::append(db, ctx, "firmware.root", "tuf:root", before, Some(after)).await?;
    Ok(())
}

/// Records an uploaded image (its file is already durable). Uploading the same bytes again is
/// recorded again and changes nothing else.
pub async fn put_image<D: Db>(db: &mut D, sha256: &str, length: u64, ctx: &AuditContext) -> Result<Image, StoreError> {
    if !is_sha256_hex(sha256) {
        return Err(InvalidField::new("sha256", "must be 64 lowercase hex digits").into());
    }
    db.exec(
        "INSERT INTO firmware_images (sha256, length, created_ms) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
        args![sha256, signed(length, "length")?, ctx.at_ms],
    )
    .await?;
    let image = image(db, sha256).await?.ok_or_else(|| StoreError::Corrupt(format!("image {sha256} vanished")))?;
    if image.length != length {
        return Err(StoreError::Corrupt(format!("image {sha256} stored with {} bytes, now {length}", image.length)));
    }
    audit::append(
        db,
        ctx,
        "firmware.image",
        &format!("firmware:{sha256}"),
        None,
        Some(json!({ "sha256": sha256, "length": length })),
    )
    .await?;
    Ok(image)
}

/// An uploaded image by hash.
pub async fn image<D: Db>(db: &mut D, sha256: &str) -> Result<Option<Image>, StoreError> {
    db.query_opt("SELECT sha256, length, created_ms FROM firmware_images WHERE sha256 = $1", args![sha256])
        .await?
        .map(|r| Ok(Image { sha256: r.text(0)?, length: unsigned(r.int(1)?, "length")?, created_ms: r.int(2)? }))
        .transpose()
}

/// Publishes a verified targets metadata with the snapshot and timestamp signed for it, and
/// makes its targets the catalogue. Refused (nothing changes) when the targets version does
/// not exceed the current one, when the online metadata does not follow the current versions
/// (another publication won: try again), or when a target's image is not uploaded with its
/// hash and length.
pub async fn publish_targets<D: Db>(db: &mut D, p: &Publication, ctx: &AuditContext) -> Result<(), StoreError> {
    let current = latest_version(db, Role::Targets).await?;
    if p.targets.version <= current {
        return Err(InvalidField::new(
            "signed.version",
            format!(
                "is {}; the current targets metadata is version {current}: publish a higher one",
                p.targets.version
            ),
        )
        .into());
    }
    for (role, m) in [(Role::Snapshot, &p.snapshot), (Role::Timestamp, &p.timestamp)] {
        if m.version != latest_version(db, role).await? + 1 {
            return Err(StoreError::Conflict(format!(
                "the {} metadata changed meanwhile; publish again",
                role.as_str()
            )));
        }
    }
    for e in &p.entries {
        let field = format!("signed.targets.{}", e.name);
        match image(db, &e.sha256).await? {
            None => {
                return Err(
                    InvalidField::new(field, format!("image {} is not uploaded: upload it first", e.sha256)).into()
                );
            }
            Some(i) if i.length != e.length => {
                return Err(InvalidField::new(
                    format!("{field}.length"),
                    format!("is {}; the uploaded image {} has {} bytes", e.length, e.sha256, i.length),
                )
                .into());
            }
            Some(_) => {}
        }
    }
    insert_meta(db, Role::Targets, &p.targets, ctx.at_ms).await?;
    insert_meta(db, Role::Snapshot, &p.snapshot, ctx.at_ms).await?;
    insert_meta(db, Role::Timestamp, &p.timestamp, ctx.at_ms).await?;
    db.exec("DELETE FROM firmware_targets", vec![]).await?;
    for e in &p.entries {
        db.exec(
            "INSERT INTO firmware_targets (name, hardware, version, counter, sha256, length, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![
                &e.name,
                &e.hardware,
                &e.version,
                signed(e.counter, &format!("signed.targets.{}.custom.counter", e.name))?,
                &e.sha256,
                signed(e.length, "length")?,
                ctx.at_ms
            ],
        )
        .await?;
    }
    let names: Vec<&str> = p.entries.iter().map(|e| e.name.as_str()).take(50).collect();
    audit::append(
        db,
        ctx,
        "firmware.targets",
        "tuf:targets",
        (current > 0).then(|| json!({ "version": current })),
        Some(json!({
            "version": p.targets.version,
            "targets": p.entries.len(),
            "names": names,
            "snapshot": p.snapshot.version,
            "timestamp": p.timestamp.version,
        })),
    )
    .await?;
    Ok(())
}

/// Stores re-signed online metadata (before the current expires): a timestamp, and the
/// snapshot it names when that was re-signed too. Refused with a conflict when another write
/// re-signed first.
pub async fn resign<D: Db>(
    db: &mut D,
    snapshot: Option<&NewMetadata>,
    timestamp: &NewMetadata,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let mut after = serde_json::Map::new();
    for (role, m) in [(Role::Snapshot, snapshot), (Role::Timestamp, Some(timestamp))] {
        let Some(m) = m else { continue };
        if m.version != latest_version(db, role).await? + 1 {
            return Err(StoreError::Conflict(format!("the {} metadata changed meanwhile", role.as_str())));
        }
        insert_meta(db, role, m, ctx.at_ms).await?;
        after.insert(role.as_str().to_owned(), json!({ "version": m.version, "expires_ms": m.expires_ms }));
    }
    audit::append(db, ctx, "firmware.resign", "tuf:online", None, Some(after.into())).await?;
    Ok(())
}

const TARGET_COLUMNS: &str = "name, hardware, version, counter, sha256, length, created_ms";

fn decode_target(r: &Row) -> Result<CatalogueEntry, StoreError> {
    Ok(CatalogueEntry {
        name: r.text(0)?,
        hardware: r.text(1)?,
        version: r.text(2)?,
        counter: unsigned(r.int(3)?, "counter")?,
        sha256: r.text(4)?,
        length: unsigned(r.int(5)?, "length")?,
        created_ms: r.int(6)?,
    })
}

/// The catalogue, by name.
pub async fn catalogue<D: Db>(db: &mut D) -> Result<Vec<CatalogueEntry>, StoreError> {
    let rows = db.query(&format!("SELECT {TARGET_COLUMNS} FROM firmware_targets ORDER BY name"), vec![]).await?;
    rows.iter().map(decode_target).collect()
}

/// One target of the catalogue.
pub async fn target<D: Db>(db: &mut D, name: &str) -> Result<Option<CatalogueEntry>, StoreError> {
    db.query_opt(&format!("SELECT {TARGET_COLUMNS} FROM firmware_targets WHERE name = $1"), args![name])
        .await?
        .map(|r| decode_target(&r))
        .transpose()
}

/// A device's newest assignment.
pub async fn assignment<D: Db>(db: &mut D, device_id: &str) -> Result<Option<StoredAssignment>, StoreError> {
    db.query_opt(
        "SELECT device_id, issued, target, signed, created_ms FROM firmware_assignments WHERE device_id = $1 \
         ORDER BY issued DESC LIMIT 1",
        args![device_id],
    )
    .await?
    .map(|r| {
        Ok(StoredAssignment {
            device_id: r.text(0)?,
            issued: unsigned(r.int(1)?, "issued")?,
            target: r.text(2)?,
            signed: r.text(3)?,
            created_ms: r.int(4)?,
        })
    })
    .transpose()
}

/// Stores a signed assignment and queues the `update` command that tells the device, in one
/// transaction; the command's id. Refused when `issued` does not follow the device's previous
/// assignment (another assignment won: sign again), or the catalogue no longer lists the
/// target with that image.
pub async fn assign<D: Db>(db: &mut D, a: &NewAssignment, ctx: &AuditContext) -> Result<String, StoreError> {
    let previous = assignment(db, &a.device_id).await?;
    let last = previous.as_ref().map_or(0, |p| p.issued);
    if a.issued != last + 1 {
        return Err(StoreError::Conflict(format!(
            "device {} was assigned meanwhile (assignment {last}); assign again",
            a.device_id
        )));
    }
    match target(db, &a.target).await? {
        None => return Err(StoreError::NotFound(format!("target {}", a.target))),
        Some(t) if t.sha256 != a.sha256 => {
            return Err(StoreError::Conflict(format!("target {} was republished meanwhile; assign again", a.target)));
        }
        Some(_) => {}
    }
    db.exec(
        "INSERT INTO firmware_assignments (device_id, issued, target, signed, created_ms) VALUES ($1, $2, $3, $4, $5)",
        args![&a.device_id, signed(a.issued, "issued")?, &a.target, &a.signed, ctx.at_ms],
    )
    .await?;
    let command = identity::queue_command(db, &a.device_id, "update", ctx).await?;
    audit::append(
        db,
        ctx,
        "firmware.assign",
        &format!("device:{}", a.device_id),
        previous.map(|p| json!({ "target": p.target, "issued": p.issued })),
        Some(json!({ "target": a.target, "issued": a.issued, "sha256": a.sha256, "command": command })),
    )
    .await?;
    Ok(command)
}

fn cut(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect())
}

/// Records a device's `update.*` event as its last update report. `update.committed` with a
/// version also sets the device's firmware version (an audited device update, in the same
/// transaction). The report is the device's own account and is kept, cut to size, as sent.
pub async fn record_report<D: Db>(
    db: &mut D,
    keys: &Keyring,
    report: &UpdateReport,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let event = cut(Some(&report.event), MAX_REPORT_FIELD).unwrap_or_default();
    db.exec(
        "INSERT INTO firmware_reports (device_id, event, target, version, detail, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO UPDATE SET event = excluded.event, \
         target = excluded.target, version = excluded.version, detail = excluded.detail, at_ms = excluded.at_ms",
        args![
            &report.device_id,
            event,
            cut(report.target.as_deref(), MAX_REPORT_FIELD),
            cut(report.version.as_deref(), MAX_REPORT_FIELD),
            cut(report.detail.as_deref(), MAX_REPORT_DETAIL),
            report.at_ms
        ],
    )
    .await?;
    if report.event != "update.committed" {
        return Ok(());
    }
    let version = report.version.as_deref().map(str::trim).unwrap_or_default();
    let printable =
        !version.is_empty() && version.chars().count() <= MAX_DEVICE_VERSION && !version.chars().any(char::is_control);
    if !printable {
        return Ok(());
    }
    let id: DeviceId = report.device_id.parse()?;
    let patch = DevicePatch { firmware_version: Some(Some(version.to_owned())), ..DevicePatch::default() };
    devices::update(db, keys, &id, patch, ctx).await?;
    Ok(())
}

/// A device's last update report.
pub async fn report<D: Db>(db: &mut D, device_id: &str) -> Result<Option<UpdateReport>, StoreError> {
    db.query_opt(
        "SELECT device_id, event, target, version, detail, at_ms FROM firmware_reports WHERE device_id = $1",
        args![device_id],
    )
    .await?
    .map(|r| {
        Ok(UpdateReport {
            device_id: r.text(0)?,
            event: r.text(1)?,
            target: r.opt_text(2)?,
            version: r.opt_text(3)?,
            detail: r.opt_text(4)?,
            at_ms: r.int(5)?,
        })
    })
    .transpose()
}
