//! Staged firmware rollouts as stored: the rollout row (request and engine state, JSON the
//! server owns) and one row per targeted device in assignment order with its outcome. The
//! decisions live in `palisade_core::rollout`; this module only keeps them, each change with its
//! audit entry in the same transaction.

use serde_json::Value as Json;

use crate::audit::{self, AuditContext};
use crate::sql::Db;
use crate::{StoreError, args};

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRollout {
    pub id: String,
    pub target: String,
    pub spec: String,
    pub state: String,
    pub status: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One targeted device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutDevice {
    pub device_id: String,
    pub position: i64,
    /// `waiting`, `assigned`, `committed` or `failed`.
    pub outcome: String,
    pub assigned_ms: Option<i64>,
    pub detail: Option<String>,
}

const ROLLOUT: &str = "id, target, spec, state, status, created_ms, updated_ms";

fn rollout(r: &crate::sql::Row) -> Result<StoredRollout, StoreError> {
    Ok(StoredRollout {
        id: r.text(0)?,
        target: r.text(1)?,
        spec: r.text(2)?,
        state: r.text(3)?,
        status: r.text(4)?,
        created_ms: r.int(5)?,
        updated_ms: r.int(6)?,
    })
}

/// Creates a rollout over `devices` (in assignment order).
pub async fn create<D: Db>(
    db: &mut D,
    r: &StoredRollout,
    devices: &[String],
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    db.exec(
        &format!("INSERT INTO rollouts ({ROLLOUT}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        args![
            r.id.as_str(),
            r.target.as_str(),
            r.spec.as_str(),
            r.state.as_str(),
            r.status.as_str(),
            r.created_ms,
            r.updated_ms
        ],
    )
    .await?;
    for (i, d) in devices.iter().enumerate() {
        db.exec(
            "INSERT INTO rollout_devices (rollout_id, position, device_id, outcome, updated_ms) VALUES ($1, $2, $3, 'waiting', $4)",
            args![r.id.as_str(), i64::try_from(i).unwrap_or(i64::MAX), d.as_str(), r.created_ms],
        )
        .await?;
    }
    let spec: Json = serde_json::from_str(&r.spec).unwrap_or(Json::Null);
    let after = serde_json::json!({"target": r.target, "devices": devices.len(), "spec": spec});
    audit::append(db, ctx, "rollout.create", &format!("rollout:{}", r.id), None, Some(after)).await?;
    Ok(())
}

pub async fn get<D: Db>(db: &mut D, id: &str) -> Result<StoredRollout, StoreError> {
    db.query_opt(&format!("SELECT {ROLLOUT} FROM rollouts WHERE id = $1"), args![id])
        .await?
        .map_or_else(|| Err(StoreError::NotFound(format!("rollout {id}"))), |r| rollout(&r))
}

/// Every rollout, newest first (at most 1000).
pub async fn list<D: Db>(db: &mut D) -> Result<Vec<StoredRollout>, StoreError> {
    db.query(&format!("SELECT {ROLLOUT} FROM rollouts ORDER BY created_ms DESC, id LIMIT 1000"), vec![])
        .await?
        .iter()
        .map(rollout)
        .collect()
}

/// Rollouts the engine must still drive.
pub async fn active<D: Db>(db: &mut D) -> Result<Vec<StoredRollout>, StoreError> {
    db.query(
        &format!("SELECT {ROLLOUT} FROM rollouts WHERE status IN ('running', 'awaiting_approval', 'paused') ORDER BY created_ms"),
        vec![],
    )
    .await?
    .iter()
    .map(rollout)
    .collect()
}

pub async fn devices<D: Db>(db: &mut D, id: &str) -> Result<Vec<RolloutDevice>, StoreError> {
    db.query(
        "SELECT device_id, position, outcome, assigned_ms, detail FROM rollout_devices WHERE rollout_id = $1 ORDER BY position",
        args![id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(RolloutDevice {
            device_id: r.text(0)?,
            position: r.int(1)?,
            outcome: r.text(2)?,
            assigned_ms: r.opt_int(3)?,
            detail: r.opt_text(4)?,
        })
    })
    .collect()
}

/// One engine step's result, kept in one transaction: the new state, devices assigned, devices
/// whose silence became failure, and (audited) a status change.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub state: String,
    pub status: String,
    pub assigned: Vec<String>,
    pub timed_out: Vec<String>,
    /// The new status and why, when it changed.
    pub status_changed: Option<(String, Option<String>)>,
    /// The rollout's `updated_ms` when the step was computed (the step applies only if unchanged).
    pub read_updated_ms: i64,
}

pub async fn save_step<D: Db>(db: &mut D, id: &str, step: &Step, ctx: &AuditContext) -> Result<bool, StoreError> {
    // Optimistic: only over the running rollout the step was computed from (an operator's
    // command or another node in between wins, and this step is dropped).
    let now = ctx.at_ms.max(step.read_updated_ms + 1);
    let n = db
        .exec(
            "UPDATE rollouts SET state = $1, status = $2, updated_ms = $3 \
             WHERE id = $4 AND status = 'running' AND updated_ms = $5",
            args![step.state.as_str(), step.status.as_str(), now, id, step.read_updated_ms],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    for d in &step.assigned {
        db.exec(
            "UPDATE rollout_devices SET outcome = 'assigned', assigned_ms = $1, updated_ms = $1 \
             WHERE rollout_id = $2 AND device_id = $3 AND outcome = 'waiting'",
            args![now, id, d.as_str()],
        )
        .await?;
    }
    for d in &step.timed_out {
        db.exec(
            "UPDATE rollout_devices SET outcome = 'failed', detail = 'silent past the timeout', updated_ms = $1 \
             WHERE rollout_id = $2 AND device_id = $3 AND outcome = 'assigned'",
            args![now, id, d.as_str()],
        )
        .await?;
    }
    if let Some((status, reason)) = &step.status_changed {
        let after = serde_json::json!({"status": status, "reason": reason});
        audit::append(db, ctx, "rollout.status", &format!("rollout:{id}"), None, Some(after)).await?;
    }
    Ok(true)
}

/// An operator's command (pause, resume, approve, abort): the new state, audited.
pub async fn command<D: Db>(
    db: &mut D,
    id: &str,
    command: &str,
    state: &str,
    status: &str,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let n = db
        .exec(
            "UPDATE rollouts SET state = $1, status = $2, \
             updated_ms = CASE WHEN updated_ms >= $3 THEN updated_ms + 1 ELSE $3 END WHERE id = $4",
            args![state, status, ctx.at_ms, id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("rollout {id}")));
    }
    let after = serde_json::json!({"command": command, "status": status});
    audit::append(db, ctx, &format!("rollout.{command}"), &format!("rollout:{id}"), None, Some(after)).await?;
    Ok(())
}

/// A device reported the end of an update to `target`: the assigned row of every active rollout
/// of that target for the device takes the outcome. Returns the rollouts touched.
pub async fn record_outcome<D: Db>(
    db: &mut D,
    device_id: &str,
    target: &str,
    committed: bool,
    detail: Option<&str>,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = db
        .query(
            "SELECT d.rollout_id FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id \
             WHERE d.device_id = $1 AND d.outcome = 'assigned' AND r.target = $2 \
             AND r.status IN ('running', 'awaiting_approval', 'paused')",
            args![device_id, target],
        )
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.text(0)).collect::<Result<_, _>>()?;
    let outcome = if committed { "committed" } else { "failed" };
    for id in &ids {
        db.exec(
            "UPDATE rollout_devices SET outcome = $1, detail = $2, updated_ms = $3 \
             WHERE rollout_id = $4 AND device_id = $5 AND outcome = 'assigned'",
            args![outcome, detail.map(str::to_owned), now_ms, id.as_str(), device_id],
        )
        .await?;
    }
    Ok(ids)
}

/// Devices that reported a committed update before `before_ms` and have been heard from
/// neither by message nor by a new connection since: (device id, when it committed).
pub async fn silent_after_update<D: Db>(db: &mut D, before_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
    db.query(
        "SELECT r.device_id, r.at_ms FROM firmware_reports r WHERE r.event = 'update.committed' AND r.at_ms < $1 \
         AND NOT EXISTS (SELECT 1 FROM device_messages m WHERE m.device_id = r.device_id AND m.received_ms > r.at_ms) \
         AND NOT EXISTS (SELECT 1 FROM device_connections c WHERE c.device_id = r.device_id \
                         AND c.event = 'connected' AND c.at_ms > r.at_ms) \
         ORDER BY r.at_ms LIMIT 10000",
        args![before_ms],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text(0)?, r.int(1)?)))
    .collect()
}
