//! `/api/v1/audit…`: read, export and verify the audit trail.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use palisade_core::Permission;
use palisade_proto::{AuditEntryView, AuditPage, AuditVerification, ErrorBody};
use palisade_store::audit::{AuditFilter, StoredEntry};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{ApiQuery, Caller, page_limit};
use super::{convert, stream};
use crate::AppState;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `apikey:<id>`, `local:<what>` or `system`.
    actor: Option<String>,
    /// e.g. `device:<id>`.
    target: Option<String>,
    /// e.g. `device.lifecycle`.
    action: Option<String>,
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive.
    to: Option<String>,
    cursor: Option<String>,
    /// 1–1000 (default 100).
    limit: Option<usize>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        Ok(AuditFilter {
            actor: self.actor.clone(),
            target: self.target.clone(),
            action: self.action.clone(),
            from_ms: self.from.as_deref().map(|s| convert::parse_rfc3339("from", s)).transpose()?,
            to_ms: self.to.as_deref().map(|s| convert::parse_rfc3339("to", s)).transpose()?,
        })
    }
}

pub fn view(e: &StoredEntry) -> AuditEntryView {
    let json = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str(s).ok());
    AuditEntryView {
        seq: e.entry.seq,
        at: convert::rfc3339(e.entry.at_ms),
        actor: e.entry.actor.clone(),
        action: e.entry.action.clone(),
        target: e.entry.target.clone(),
        source_ip: e.entry.source_ip.clone(),
        before: json(&e.entry.before),
        after: json(&e.entry.after),
        prev_hash: hex::encode(e.entry.prev_hash),
        hash: hex::encode(e.hash),
    }
}

/// The audit trail, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Permission::AuditRead)?;
    let limit = page_limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::bad_request("invalid_query", format!("cursor {c:.40?} is not valid")))
        })
        .transpose()?;
    let page = state.store.list_audit(&q.filter()?, before, limit).await?;
    Ok(Json(AuditPage { items: page.items.iter().map(view).collect(), next_cursor: page.next }))
}

/// The whole trail in chain order, as JSON Lines (streamed).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    responses((status = 200, content_type = "application/x-ndjson", body = String)))]
pub async fn export(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::AuditRead)?;
    let store = state.store.clone();
    let body = stream::produce(move |tx| async move {
        let mut after = 0;
        loop {
            let batch = store.audit_range(after, 1000).await.map_err(stream::failed)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = last.entry.seq;
            for e in &batch {
                tx.send_json_line(&view(e)).await?;
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Verify the hash chain and its signed checkpoints.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification)))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> Result<Json<AuditVerification>, ApiError> {
    caller.require(Permission::AuditRead)?;
    Ok(Json(match state.store.verify_audit().await? {
        Ok(v) => AuditVerification {
            ok: true,
            entries: v.entries,
            checkpoints: v.checkpoints,
            first_bad_seq: None,
            problem: None,
        },
        Err(b) => AuditVerification {
            ok: false,
            entries: 0,
            checkpoints: 0,
            first_bad_seq: Some(b.seq()),
            problem: Some(b.to_string()),
        },
    }))
}
