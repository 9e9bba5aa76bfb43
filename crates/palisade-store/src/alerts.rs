//! Security profiles as stored, and alerts: one per (device, profile, rule) until resolved,
//! counting repeats, with a history of everything that happened to it. Notices for the
//! notification channels are queued in the same transaction as the change they report, so a
//! crash never loses one nor sends one for a change that did not happen.

use palisade_core::detect::alert::Status;
use serde_json::json;

use crate::audit::{self, AuditContext};
use crate::notify::{self, Notice, Targets};
use crate::sql::Db;
use crate::{StoreError, args};

/// A profile as accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProfile {
    pub name: String,
    pub spec: String,
    pub source: String,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: String,
    pub device_id: String,
    pub group: Option<String>,
    pub profile: String,
    pub rule: String,
    pub severity: String,
    pub status: String,
    pub title: String,
    pub detail: String,
    pub count: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub response: String,
    pub acked_by: Option<String>,
    pub acked_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub resolution: Option<String>,
    pub escalation_step: i64,
    pub suppressed_until_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub at_ms: i64,
    pub kind: String,
    pub actor: Option<String>,
    pub detail: Option<String>,
}

/// A rule's alarm on a device, as the engine raised it.
#[derive(Debug, Clone)]
pub struct Raise {
    pub device_id: String,
    pub group: Option<String>,
    pub profile: String,
    pub rule: String,
    pub severity: String,
    pub title: String,
    pub detail: String,
    /// What the response will do (`quarantine`, `dry-run: quarantine`, `alert`).
    pub response: String,
    pub at_ms: i64,
}

/// What raising did.
#[derive(Debug, Clone)]
pub struct Raised {
    pub alert: Alert,
    /// A new alert (not a repeat of one still open or acknowledged).
    pub opened: bool,
    /// Within a suppression window: counted, nobody told, no response.
    pub suppressed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub device: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    /// Alerts whose `last_ms` is older than this (paging backwards).
    pub before_ms: Option<i64>,
    pub limit: usize,
}

const COLUMNS: &str = "id, device_id, device_group, profile, rule, severity, status, title, detail, count, first_ms, \
                       last_ms, response, acked_by, acked_ms, resolved_ms, resolution, escalation_step, suppressed_until_ms";

fn alert(r: &crate::sql::Row) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: r.text(0)?,
        device_id: r.text(1)?,
        group: r.opt_text(2)?,
        profile: r.text(3)?,
        rule: r.text(4)?,
        severity: r.text(5)?,
        status: r.text(6)?,
        title: r.text(7)?,
        detail: r.text(8)?,
        count: r.int(9)?,
        first_ms: r.int(10)?,
        last_ms: r.int(11)?,
        response: r.text(12)?,
        acked_by: r.opt_text(13)?,
        acked_ms: r.opt_int(14)?,
        resolved_ms: r.opt_int(15)?,
        resolution: r.opt_text(16)?,
        escalation_step: r.int(17)?,
        suppressed_until_ms: r.opt_int(18)?,
    })
}

/// The JSON an alert's notices and the API show.
pub fn alert_json(a: &Alert) -> serde_json::Value {
    json!({
        "id": a.id, "device_id": a.device_id, "group": a.group, "profile": a.profile, "rule": a.rule,
        "severity": a.severity, "status": a.status, "title": a.title, "detail": a.detail, "count": a.count,
        "first_ms": a.first_ms, "last_ms": a.last_ms, "response": a.response,
    })
}

/// A notice of `event` about `a` (Standard Webhooks payload shape: type, timestamp, data).
pub fn notice(event: &str, a: &Alert, at_ms: i64) -> Notice {
    let body = json!({"type": event, "timestamp_ms": at_ms, "data": alert_json(a)}).to_string();
    Notice {
        event: event.to_owned(),
        alert_id: a.id.clone(),
        device_id: a.device_id.clone(),
        group: a.group.clone(),
        severity: a.severity.clone(),
        body,
    }
}

async fn event<D: Db>(
    db: &mut D,
    id: &str,
    at_ms: i64,
    kind: &str,
    actor: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO alert_events (alert_id, at_ms, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)",
        args![id, at_ms, kind, actor, detail],
    )
    .await?;
    Ok(())
}

async fn active<D: Db>(db: &mut D, device: &str, profile: &str, rule: &str) -> Result<Option<Alert>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM alerts WHERE device_id = $1 AND profile = $2 AND rule = $3 AND status <> 'resolved' \
         ORDER BY first_ms DESC LIMIT 1"
    );
    db.query_opt(&sql, args![device, profile, rule]).await?.as_ref().map(alert).transpose()
}

pub async fn get<D: Db>(db: &mut D, id: &str) -> Result<Alert, StoreError> {
    let row = db.query_opt(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"), args![id]).await?;
    row.as_ref().map(alert).transpose()?.ok_or_else(|| StoreError::NotFound(format!("alert {id}")))
}

/// Opens an alert, or counts a repeat of the one still active; queues the notice of a new one.
pub async fn raise<D: Db>(db: &mut D, r: &Raise) -> Result<Raised, StoreError> {
    if let Some(mut a) = active(db, &r.device_id, &r.profile, &r.rule).await? {
        a.count = a.count.saturating_add(1);
        a.last_ms = a.last_ms.max(r.at_ms);
        a.detail.clone_from(&r.detail);
        db.exec(
            "UPDATE alerts SET count = $2, last_ms = $3, detail = $4 WHERE id = $1",
            args![&a.id, a.count, a.last_ms, &a.detail],
        )
        .await?;
        event(db, &a.id, r.at_ms, "repeated", None, Some(&r.detail)).await?;
        let suppressed = a.suppressed_until_ms.is_some_and(|u| u > r.at_ms);
        return Ok(Raised { alert: a, opened: false, suppressed });
    }
    // A resolved alert of the same rule may carry a suppression window forward.
    let suppressed_until: Option<i64> = db
        .query_opt(
            "SELECT MAX(suppressed_until_ms) FROM alerts WHERE device_id = $1 AND profile = $2 AND rule = $3",
            args![&r.device_id, &r.profile, &r.rule],
        )
        .await?
        .map(|row| row.opt_int(0))
        .transpose()?
        .flatten()
        .filter(|u| *u > r.at_ms);
    let mut id = [0u8; 10];
    crate::sealed::random(&mut id)?;
    let a = Alert {
        id: format!("al_{}", hex::encode(id)),
        device_id: r.device_id.clone(),
        group: r.group.clone(),
        profile: r.profile.clone(),
        rule: r.rule.clone(),
        severity: r.severity.clone(),
        status: Status::Open.as_str().to_owned(),
        title: r.title.clone(),
        detail: r.detail.clone(),
        count: 1,
        first_ms: r.at_ms,
        last_ms: r.at_ms,
        response: r.response.clone(),
        acked_by: None,
        acked_ms: None,
        resolved_ms: None,
        resolution: None,
        escalation_step: 0,
        suppressed_until_ms: suppressed_until,
    };
    db.exec(
        "INSERT INTO alerts (id, device_id, device_group, profile, rule, severity, status, title, detail, count, \
         first_ms, last_ms, response, escalation_step, suppressed_until_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10, $11, 0, $12)",
        args![
            &a.id,
            &a.device_id,
            a.group.as_deref(),
            &a.profile,
            &a.rule,
            &a.severity,
            &a.status,
            &a.title,
            &a.detail,
            a.first_ms,
            &a.response,
            a.suppressed_until_ms
        ],
    )
    .await?;
    event(db, &a.id, r.at_ms, "opened", None, Some(&r.detail)).await?;
    let suppressed = suppressed_until.is_some();
    if !suppressed {
        notify::enqueue(db, &notice("alert.opened", &a, r.at_ms), &Targets::Routed, r.at_ms).await?;
    }
    Ok(Raised { alert: a, opened: true, suppressed })
}

/// The rule's condition cleared: the active alert resolves if the rule says so (else the
/// clearing is only recorded). Returns the alert if one was active.
pub async fn clear<D: Db>(
    db: &mut D,
    device: &str,
    profile: &str,
    rule: &str,
    auto_resolve: bool,
    at_ms: i64,
) -> Result<Option<Alert>, StoreError> {
    let Some(mut a) = active(db, device, profile, rule).await? else { return Ok(None) };
    event(db, &a.id, at_ms, "cleared", None, None).await?;
    if auto_resolve {
        a.status = Status::Resolved.as_str().to_owned();
        a.resolved_ms = Some(at_ms);
        a.resolution = Some("cleared".to_owned());
        db.exec(
            "UPDATE alerts SET status = 'resolved', resolved_ms = $2, resolution = 'cleared' WHERE id = $1",
            args![&a.id, at_ms],
        )
        .await?;
        notify::enqueue(db, &notice("alert.resolved", &a, at_ms), &Targets::Routed, at_ms).await?;
    }
    Ok(Some(a))
}

/// What detection decided about a device: a rule alarmed, or its condition cleared.
#[derive(Debug, Clone)]
pub enum Verdict {
    Raise(Raise),
    Clear { device: String, profile: String, rule: String, auto_resolve: bool, at_ms: i64 },
}

/// What recording a verdict did.
#[derive(Debug)]
pub enum Recorded {
    Raised(Raised),
    /// The alert that was active, if one was.
    Cleared(Option<Alert>),
}

/// Records a verdict ([`raise`] or [`clear`]).
pub async fn record<D: Db>(db: &mut D, v: &Verdict) -> Result<Recorded, StoreError> {
    match v {
        Verdict::Raise(r) => raise(db, r).await.map(Recorded::Raised),
        Verdict::Clear { device, profile, rule, auto_resolve, at_ms } => {
            clear(db, device, profile, rule, *auto_resolve, *at_ms).await.map(Recorded::Cleared)
        }
    }
}

/// A person acknowledges or resolves an alert (`false_positive` marks a resolution as such).
pub async fn set_status<D: Db>(
    db: &mut D,
    id: &str,
    to: Status,
    false_positive: bool,
    note: Option<&str>,
    ctx: &AuditContext,
) -> Result<Alert, StoreError> {
    let mut a = get(db, id).await?;
    let from = Status::parse(&a.status).ok_or_else(|| StoreError::Corrupt(format!("alert {id} status")))?;
    if !from.may_become(to) {
        return Err(StoreError::Conflict(format!("alert {id} is {} and cannot become {}", from.as_str(), to.as_str())));
    }
    let actor = ctx.actor.id();
    match to {
        Status::Acknowledged => {
            db.exec(
                "UPDATE alerts SET status = 'acknowledged', acked_by = $2, acked_ms = $3 WHERE id = $1",
                args![id, &actor, ctx.at_ms],
            )
            .await?;
            a.acked_by = Some(actor.clone());
            a.acked_ms = Some(ctx.at_ms);
        }
        Status::Resolved => {
            let resolution = if false_positive { "false_positive" } else { "resolved" };
            db.exec(
                "UPDATE alerts SET status = 'resolved', resolved_ms = $2, resolution = $3 WHERE id = $1",
                args![id, ctx.at_ms, resolution],
            )
            .await?;
            a.resolved_ms = Some(ctx.at_ms);
            a.resolution = Some(resolution.to_owned());
        }
        Status::Open => {}
    }
    a.status = to.as_str().to_owned();
    let kind = if false_positive { "false_positive" } else { to.as_str() };
    event(db, id, ctx.at_ms, kind, Some(&actor), note).await?;
    let action = format!("alert.{kind}");
    let after = json!({"status": a.status, "resolution": a.resolution, "note": note});
    audit::append(db, ctx, &action, &format!("alert:{id}"), Some(json!({"status": from.as_str()})), Some(after))
        .await?;
    notify::enqueue(db, &notice(&action, &a, ctx.at_ms), &Targets::Routed, ctx.at_ms).await?;
    Ok(a)
}

/// Nobody is told about (and nothing is done for) repeats of this alert until `until_ms`.
pub async fn suppress<D: Db>(db: &mut D, id: &str, until_ms: i64, ctx: &AuditContext) -> Result<Alert, StoreError> {
    let mut a = get(db, id).await?;
    db.exec("UPDATE alerts SET suppressed_until_ms = $2 WHERE id = $1", args![id, until_ms]).await?;
    a.suppressed_until_ms = Some(until_ms);
    let actor = ctx.actor.id();
    event(db, id, ctx.at_ms, "suppressed", Some(&actor), Some(&format!("until {until_ms}"))).await?;
    audit::append(db, ctx, "alert.suppress", &format!("alert:{id}"), None, Some(json!({"until_ms": until_ms}))).await?;
    Ok(a)
}

/// Records step `step` of the alert's escalation and queues its notices to `channels`, unless
/// the alert was acknowledged or resolved meanwhile (then `false`).
pub async fn escalate<D: Db>(
    db: &mut D,
    id: &str,
    step: i64,
    channels: &[String],
    ctx: &AuditContext,
) -> Result<bool, StoreError> {
    let a = get(db, id).await?;
    if a.status != Status::Open.as_str() || a.escalation_step >= step.saturating_add(1) {
        return Ok(false);
    }
    db.exec("UPDATE alerts SET escalation_step = $2 WHERE id = $1", args![id, step.saturating_add(1)]).await?;
    let detail = format!("tier {} of step {step}: {}", step, channels.join(", "));
    event(db, id, ctx.at_ms, "escalated", None, Some(&detail)).await?;
    audit::append(
        db,
        ctx,
        "alert.escalate",
        &format!("alert:{id}"),
        None,
        Some(json!({"step": step, "channels": channels})),
    )
    .await?;
    let n = notice("alert.escalated", &a, ctx.at_ms);
    notify::enqueue(db, &n, &Targets::Channels(channels.to_vec()), ctx.at_ms).await?;
    Ok(true)
}

/// Records what an automated response did about an alert.
pub async fn responded<D: Db>(db: &mut D, id: &str, at_ms: i64, detail: &str) -> Result<(), StoreError> {
    event(db, id, at_ms, "response", Some("system"), Some(detail)).await
}

pub async fn list<D: Db>(db: &mut D, f: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE 1 = 1");
    let mut args = Vec::new();
    for (col, v) in [("device_id", &f.device), ("severity", &f.severity), ("status", &f.status)] {
        if let Some(v) = v {
            args.push(crate::sql::Value::from(v.as_str()));
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
    }
    if let Some(b) = f.before_ms {
        args.push(crate::sql::Value::from(b));
        sql.push_str(&format!(" AND last_ms < ${}", args.len()));
    }
    sql.push_str(&format!(" ORDER BY last_ms DESC LIMIT {}", f.limit.clamp(1, 1000)));
    db.query(&sql, args).await?.iter().map(alert).collect()
}

/// Every alert still open (for escalation).
pub async fn open<D: Db>(db: &mut D) -> Result<Vec<Alert>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM alerts WHERE status = 'open' ORDER BY first_ms LIMIT 100000");
    db.query(&sql, vec![]).await?.iter().map(alert).collect()
}

pub async fn history<D: Db>(db: &mut D, id: &str) -> Result<Vec<AlertEvent>, StoreError> {
    let rows = db
        .query(
            "SELECT at_ms, kind, actor, detail FROM alert_events WHERE alert_id = $1 ORDER BY at_ms LIMIT 1000",
            args![id],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(AlertEvent { at_ms: r.int(0)?, kind: r.text(1)?, actor: r.opt_text(2)?, detail: r.opt_text(3)? }))
        .collect()
}

pub async fn put_profile<D: Db>(
    db: &mut D,
    name: &str,
    spec: &str,
    source: &str,
    ctx: &AuditContext,
) -> Result<bool, StoreError> {
    let before = db.query_opt("SELECT spec FROM security_profiles WHERE name = $1", args![name]).await?;
    let before = before.map(|r| r.text(0)).transpose()?;
    if before.as_deref() == Some(spec) {
        return Ok(false);
    }
    if before.is_some() {
        db.exec(
            "UPDATE security_profiles SET spec = $2, source = $3, updated_ms = $4 WHERE name = $1",
            args![name, spec, source, ctx.at_ms],
        )
        .await?;
    } else {
        db.exec(
            "INSERT INTO security_profiles (name, spec, source, updated_ms) VALUES ($1, $2, $3, $4)",
            args![name, spec, source, ctx.at_ms],
        )
        .await?;
    }
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or(serde_json::Value::Null);
    let target = format!("profile:{name}");
    audit::append(db, ctx, "profile.put", &target, before.as_deref().map(parse), Some(parse(spec))).await?;
    Ok(true)
}

pub async fn delete_profile<D: Db>(db: &mut D, name: &str, ctx: &AuditContext) -> Result<(), StoreError> {
    if db.exec("DELETE FROM security_profiles WHERE name = $1", args![name]).await? == 0 {
        return Err(StoreError::NotFound(format!("profile {name}")));
    }
    audit::append(db, ctx, "profile.delete", &format!("profile:{name}"), None, None).await?;
    Ok(())
}

pub async fn profiles<D: Db>(db: &mut D) -> Result<Vec<StoredProfile>, StoreError> {
    let rows = db.query("SELECT name, spec, source, updated_ms FROM security_profiles ORDER BY name", vec![]).await?;
    rows.iter()
        .map(|r| Ok(StoredProfile { name: r.text(0)?, spec: r.text(1)?, source: r.text(2)?, updated_ms: r.int(3)? }))
        .collect()
}
