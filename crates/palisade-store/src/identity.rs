//! Device identity: certificates, enrollment tokens, manufacturer trust, findings, commands.

use serde_json::json;

use crate::audit::{self, AuditContext};
use crate::sql::{Db, Row};
use crate::{StoreError, args};

/// A certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    pub serial: String,
    pub device_id: String,
    pub fingerprint: String,
    pub spki_sha256: String,
    pub key_kind: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub status: String,
    pub revoked_ms: Option<i64>,
    pub revocation_reason: Option<String>,
    pub method: String,
    pub pem: String,
}

const CERT_COLUMNS: &str = "serial, device_id, fingerprint, spki_sha256, key_kind, not_before_ms, not_after_ms, status, \
                            revoked_ms, revocation_reason, method, pem";

fn decode_cert(r: &Row) -> Result<CertRecord, StoreError> {
    Ok(CertRecord {
        serial: r.text(0)?,
        device_id: r.text(1)?,
        fingerprint: r.text(2)?,
        spki_sha256: r.text(3)?,
        key_kind: r.text(4)?,
        not_before_ms: r.int(5)?,
        not_after_ms: r.int(6)?,
        status: r.text(7)?,
        revoked_ms: r.opt_int(8)?,
        revocation_reason: r.opt_text(9)?,
        method: r.text(10)?,
        pem: r.text(11)?,
    })
}

/// How an enrollment was authorised.
#[derive(Debug, Clone)]
pub enum EnrollAuth {
    /// A one-time token (its SHA-256).
    Token(Vec<u8>),
    /// A factory certificate already checked against a registered manufacturer CA and the
    /// serial allowlist.
    Factory { manufacturer_ca: String },
    /// The device's current certificate (its serial).
    Renewal { serial: String },
}

/// What became of an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    Enrolled,
    /// Refused for the reason given (safe to show the device).
    Refused(String),
    /// The public key is already bound to another device: refused, and a finding recorded.
    KeyReused {
        other_device: String,
    },
}

pub async fn add_token<D: Db>(
    db: &mut D,
    device_id: &str,
    token_hash: &[u8],
    expires_ms: i64,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let state = db.query_opt("SELECT state FROM devices WHERE id = $1", args![device_id]).await?;
    match state.map(|r| r.text(0)).transpose()? {
        None => return Err(StoreError::NotFound(format!("device {device_id}"))),
        Some(s) if s == "decommissioned" => {
            return Err(StoreError::Conflict(format!("device {device_id} is decommissioned")));
        }
        Some(_) => {}
    }
    db.exec(
        "INSERT INTO enrollment_tokens (token_hash, device_id, expires_ms, created_ms) VALUES ($1, $2, $3, $4)",
        args![token_hash, device_id, expires_ms, ctx.at_ms],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "device.enrollment_token",
        &format!("device:{device_id}"),
        None,
        Some(json!({"expires_ms": expires_ms})),
    )
    .await?;
    Ok(())
}

async fn finding<D: Db>(
    db: &mut D,
    kind: &str,
    device_id: Option<&str>,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut id = [0u8; 8];
    crate::sealed::random(&mut id)?;
    db.exec(
        "INSERT INTO findings (id, kind, device_id, detail, created_ms) VALUES ($1, $2, $3, $4, $5)",
        args![hex::encode(id), kind, device_id, detail, now_ms],
    )
    .await?;
    Ok(())
}

/// Checks the authorisation, the device and the key, then stores the certificate and moves
/// a registered device to provisioned. One transaction.
pub async fn enroll<D: Db>(
    db: &mut D,
    auth: &EnrollAuth,
    cert: &CertRecord,
    ctx: &AuditContext,
) -> Result<EnrollOutcome, StoreError> {
    let device = &cert.device_id;
    let Some(state) = db.query_opt("SELECT state FROM devices WHERE id = $1", args![device]).await? else {
        return Ok(EnrollOutcome::Refused("unknown device".into()));
    };
    let state = state.text(0)?;
    if state == "decommissioned" {
        return Ok(EnrollOutcome::Refused("the device is decommissioned".into()));
    }
    // Authorisation first, without spending anything yet.
    match auth {
        EnrollAuth::Token(hash) => {
            let row = db
                .query_opt(
                    "SELECT device_id, expires_ms, used_ms FROM enrollment_tokens WHERE token_hash = $1",
                    args![hash.clone()],
                )
                .await?;
            let reason = match row {
                None => Some("unknown token"),
                Some(r) if r.text(0)? != *device => Some("token issued for another device"),
                Some(r) if r.opt_int(2)?.is_some() => Some("token already used"),
                Some(r) if r.int(1)? <= ctx.at_ms => Some("token expired"),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                audit::append(
                    db,
                    ctx,
                    "device.enroll_refused",
                    &format!("device:{device}"),
                    None,
                    Some(json!({"reason": reason})),
                )
                .await?;
                return Ok(EnrollOutcome::Refused("invalid, used or expired enrollment token".into()));
            }
        }
        EnrollAuth::Renewal { serial } => {
            let row = db
                .query_opt("SELECT device_id, status, not_after_ms FROM certificates WHERE serial = $1", args![serial])
                .await?;
            let ok = match row {
                Some(r) => r.text(0)? == *device && r.text(1)? == "valid" && r.int(2)? > ctx.at_ms,
                None => false,
            };
            if !ok {
                return Ok(EnrollOutcome::Refused("the presented certificate is revoked, expired or unknown".into()));
            }
        }
        EnrollAuth::Factory { .. } => {}
    }
    // One key, one device.
    if let Some(other) = db
        .query_opt(
            "SELECT device_id FROM certificates WHERE spki_sha256 = $1 AND device_id <> $2 LIMIT 1",
            args![&cert.spki_sha256, device],
        )
        .await?
    {
        let other = other.text(0)?;
        let detail = format!("public key {} of device {device} is already bound to device {other}", cert.spki_sha256);
        finding(db, "shared_key", Some(device), &detail, ctx.at_ms).await?;
        audit::append(
            db,
            ctx,
            "pki.key_reuse",
            &format!("device:{device}"),
            None,
            Some(json!({"other_device": other, "spki_sha256": cert.spki_sha256})),
        )
        .await?;
        return Ok(EnrollOutcome::KeyReused { other_device: other });
    }
    if let EnrollAuth::Token(hash) = auth {
        let n = db
            .exec(
                "UPDATE enrollment_tokens SET used_ms = $2 WHERE token_hash = $1 AND used_ms IS NULL",
                args![hash.clone(), ctx.at_ms],
            )
            .await?;
        if n != 1 {
            return Ok(EnrollOutcome::Refused("invalid, used or expired enrollment token".into()));
        }
    }
    db.exec(
        &format!("INSERT INTO certificates ({CERT_COLUMNS}, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'valid', NULL, NULL, $8, $9, $10)"),
        args![
            &cert.serial,
            device,
            &cert.fingerprint,
            &cert.spki_sha256,
            &cert.key_kind,
            cert.not_before_ms,
            cert.not_after_ms,
            &cert.method,
            &cert.pem,
            ctx.at_ms
        ],
    )
    .await?;
    if state == "registered" {
        db.exec("UPDATE devices SET state = 'provisioned', updated_ms = $2 WHERE id = $1", args![device, ctx.at_ms])
            .await?;
        audit::append(
            db,
            ctx,
            "device.lifecycle",
            &format!("device:{device}"),
            Some(json!({"state": "registered"})),
            Some(json!({"state": "provisioned", "reason": "enrolled"})),
        )
        .await?;
    }
    let method = match auth {
        EnrollAuth::Token(_) => "token".to_owned(),
        EnrollAuth::Factory { manufacturer_ca } => format!("factory:{manufacturer_ca}"),
        EnrollAuth::Renewal { serial } => format!("renewal:{serial}"),
    };
    audit::append(
        db,
        ctx,
        "device.enroll",
        &format!("device:{device}"),
        None,
        Some(json!({"serial": cert.serial, "fingerprint": cert.fingerprint, "method": method, "key": cert.key_kind,
                    "not_after_ms": cert.not_after_ms})),
    )
    .await?;
    Ok(EnrollOutcome::Enrolled)
}

pub async fn certificates_of<D: Db>(db: &mut D, device_id: &str) -> Result<Vec<CertRecord>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE device_id = $1 ORDER BY created_ms"),
            args![device_id],
        )
        .await?;
    rows.iter().map(decode_cert).collect()
}

pub async fn certificate<D: Db>(db: &mut D, serial: &str) -> Result<Option<CertRecord>, StoreError> {
    db.query_opt(&format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1"), args![serial])
        .await?
        .as_ref()
        .map(decode_cert)
        .transpose()
}

/// Revokes one certificate. Revoking twice is a conflict.
pub async fn revoke<D: Db>(
    db: &mut D,
    serial: &str,
    reason: &str,
    ctx: &AuditContext,
) -> Result<CertRecord, StoreError> {
    let cert = certificate(db, serial).await?.ok_or_else(|| StoreError::NotFound(format!("certificate {serial}")))?;
    if cert.status == "revoked" {
        return Err(StoreError::Conflict(format!("certificate {serial} is already revoked")));
    }
    db.exec(
        "UPDATE certificates SET status = 'revoked', revoked_ms = $2, revocation_reason = $3 WHERE serial = $1",
        args![serial, ctx.at_ms, reason],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "pki.revoke",
        &format!("certificate:{serial}"),
        Some(json!({"status": "valid"})),
        Some(json!({"status": "revoked", "reason": reason, "device": cert.device_id})),
    )
    .await?;
    certificate(db, serial).await?.ok_or_else(|| StoreError::NotFound(format!("certificate {serial}")))
}

/// Revokes every valid certificate of a device; the serials revoked.
pub async fn revoke_device<D: Db>(
    db: &mut D,
    device_id: &str,
    reason: &str,
    ctx: &AuditContext,
) -> Result<Vec<String>, StoreError> {
    let rows =
        db.query("SELECT serial FROM certificates WHERE device_id = $1 AND status = 'valid'", args![device_id]).await?;
    let mut out = Vec::new();
    for r in rows {
        let serial = r.text(0)?;
        revoke(db, &serial, reason, ctx).await?;
        out.push(serial);
    }
    Ok(out)
}

/// Revoked certificates that have not expired yet (what a CRL must list).
pub async fn revoked<D: Db>(db: &mut D, now_ms: i64) -> Result<Vec<CertRecord>, StoreError> {
    let rows = db
        .query(
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates WHERE status = 'revoked' AND not_after_ms > $1 ORDER BY serial"
            ),
            args![now_ms],
        )
        .await?;
    rows.iter().map(decode_cert).collect()
}

/// Every certificate still valid (for audit checks).
pub async fn valid_certificates<D: Db>(db: &mut D) -> Result<Vec<CertRecord>, StoreError> {
    let rows = db.query(&format!("SELECT {CERT_COLUMNS} FROM certificates WHERE status = 'valid'"), vec![]).await?;
    rows.iter().map(decode_cert).collect()
}

/// A registered manufacturer (factory / IDevID) CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManufacturerCa {
    pub fingerprint: String,
    pub vendor: String,
    pub model: String,
    pub subject: String,
    pub pem: String,
}

pub async fn add_manufacturer_ca<D: Db>(db: &mut D, ca: &ManufacturerCa, ctx: &AuditContext) -> Result<(), StoreError> {
    if db
        .query_opt("SELECT fingerprint FROM manufacturer_cas WHERE fingerprint = $1", args![&ca.fingerprint])
        .await?
        .is_some()
    {
        return Err(StoreError::Conflict("this manufacturer CA is already registered".into()));
    }
    db.exec(
        "INSERT INTO manufacturer_cas (fingerprint, vendor, model, subject, pem, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        args![&ca.fingerprint, &ca.vendor, &ca.model, &ca.subject, &ca.pem, ctx.at_ms],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "pki.manufacturer_ca",
        &format!("manufacturer-ca:{}", ca.fingerprint),
        None,
        Some(json!({"vendor": ca.vendor, "model": ca.model, "subject": ca.subject})),
    )
    .await?;
    Ok(())
}

pub async fn manufacturer_cas<D: Db>(db: &mut D) -> Result<Vec<ManufacturerCa>, StoreError> {
    let rows = db
        .query("SELECT fingerprint, vendor, model, subject, pem FROM manufacturer_cas ORDER BY created_ms", vec![])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ManufacturerCa {
                fingerprint: r.text(0)?,
                vendor: r.text(1)?,
                model: r.text(2)?,
                subject: r.text(3)?,
                pem: r.text(4)?,
            })
        })
        .collect()
}

pub async fn allow_serials<D: Db>(
    db: &mut D,
    rows: &[(String, String, String)],
    ctx: &AuditContext,
) -> Result<usize, StoreError> {
    for (vendor, model, serial) in rows {
        db.exec(
            "INSERT INTO manufacturer_serials (vendor, model, serial) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            args![vendor, model, serial],
        )
        .await?;
    }
    audit::append(db, ctx, "pki.serials_allowed", "manufacturer-serials", None, Some(json!({"rows": rows.len()})))
        .await?;
    Ok(rows.len())
}

/// The device a factory certificate speaks for: allowlisted and registered.
pub async fn factory_device<D: Db>(
    db: &mut D,
    vendor: &str,
    model: &str,
    serial: &str,
) -> Result<Option<String>, StoreError> {
    let allowed = db
        .query_opt(
            "SELECT 1 FROM manufacturer_serials WHERE vendor = $1 AND model = $2 AND serial = $3",
            args![vendor, model, serial],
        )
        .await?
        .is_some();
    if !allowed {
        return Ok(None);
    }
    db.query_opt(
        "SELECT id FROM devices WHERE vendor = $1 AND model = $2 AND serial = $3",
        args![vendor, model, serial],
    )
    .await?
    .map(|r| r.text(0))
    .transpose()
}

/// A finding from a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: String,
    pub kind: String,
    pub device_id: Option<String>,
    pub detail: String,
    pub created_ms: i64,
}

pub async fn add_finding<D: Db>(
    db: &mut D,
    kind: &str,
    device_id: Option<&str>,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    finding(db, kind, device_id, detail, now_ms).await
}

pub async fn findings<D: Db>(db: &mut D, kind: Option<&str>) -> Result<Vec<Finding>, StoreError> {
    let rows = match kind {
        Some(k) => db.query("SELECT id, kind, device_id, detail, created_ms FROM findings WHERE kind = $1 ORDER BY created_ms DESC LIMIT 1000", args![k]).await?,
        None => db.query("SELECT id, kind, device_id, detail, created_ms FROM findings ORDER BY created_ms DESC LIMIT 1000", vec![]).await?,
    };
    rows.iter()
        .map(|r| {
            Ok(Finding {
                id: r.text(0)?,
                kind: r.text(1)?,
                device_id: r.opt_text(2)?,
                detail: r.text(3)?,
                created_ms: r.int(4)?,
            })
        })
        .collect()
}

/// Queues a command for the device plane (delivered when the device connects).
pub async fn queue_command<D: Db>(
    db: &mut D,
    device_id: &str,
    command: &str,
    ctx: &AuditContext,
) -> Result<String, StoreError> {
    let mut id = [0u8; 8];
    crate::sealed::random(&mut id)?;
    let id = hex::encode(id);
    db.exec(
        "INSERT INTO device_commands (id, device_id, command, status, created_ms) VALUES ($1, $2, $3, 'queued', $4)",
        args![&id, device_id, command, ctx.at_ms],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "device.command",
        &format!("device:{device_id}"),
        None,
        Some(json!({"command": command, "id": id})),
    )
    .await?;
    Ok(id)
}

/// A command in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub device_id: String,
    pub command: String,
    /// queued → sent → delivered → done | failed
    pub status: String,
    pub created_ms: i64,
    pub updated_ms: Option<i64>,
    pub result: Option<String>,
}

const COMMAND_COLUMNS: &str = "id, device_id, command, status, created_ms, updated_ms, result";

fn decode_command(r: &Row) -> Result<Command, StoreError> {
    Ok(Command {
        id: r.text(0)?,
        device_id: r.text(1)?,
        command: r.text(2)?,
        status: r.text(3)?,
        created_ms: r.int(4)?,
        updated_ms: r.opt_int(5)?,
        result: r.opt_text(6)?,
    })
}

pub async fn commands_of<D: Db>(db: &mut D, device_id: &str) -> Result<Vec<Command>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT {COMMAND_COLUMNS} FROM device_commands WHERE device_id = $1 ORDER BY created_ms, id"),
            args![device_id],
        )
        .await?;
    rows.iter().map(decode_command).collect()
}

/// Commands not yet acknowledged by the device (queued, or sent without a PUBACK).
pub async fn pending_commands<D: Db>(db: &mut D, device_id: &str) -> Result<Vec<Command>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT {COMMAND_COLUMNS} FROM device_commands WHERE device_id = $1 AND status IN ('queued', 'sent') ORDER BY created_ms, id"),
            args![device_id],
        )
        .await?;
    rows.iter().map(decode_command).collect()
}

/// Moves a command forward; a result (from the device) is kept as given.
pub async fn set_command_status<D: Db>(
    db: &mut D,
    device_id: &str,
    id: &str,
    status: &str,
    result: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = db
        .exec(
            "UPDATE device_commands SET status = $3, result = coalesce($4, result), updated_ms = $5 WHERE id = $1 AND device_id = $2",
            args![id, device_id, status, result, now_ms],
        )
        .await?;
    Ok(n == 1)
}
