//! `/api/v1/profiles` (security profiles) and `/api/v1/alerts` (list, detail with history,
//! acknowledge, resolve, suppress, live stream).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::Permission;
use palisade_core::detect::Severity;
use palisade_core::detect::alert::Status;
use palisade_proto::ErrorBody;
use palisade_proto::detect::{AlertAction, AlertDetail, AlertEventView, AlertView, ProfileView, SuppressRequest};
use palisade_store::alerts::{Alert, AlertFilter, StoredProfile};
use serde::Deserialize;

use super::convert::{parse_rfc3339, rfc3339};
use super::error::ApiError;
use super::extract::{ApiJson, Caller, OptionalJson};
use crate::{AppState, detect};

fn profile_view(p: StoredProfile) -> ProfileView {
    ProfileView {
        name: p.name,
        source: p.source,
        updated_at: rfc3339(p.updated_ms),
        spec: serde_json::from_str(&p.spec).unwrap_or(serde_json::Value::Null),
    }
}

fn alert_view(a: Alert) -> AlertView {
    AlertView {
        id: a.id,
        device_id: a.device_id,
        group: a.group,
        profile: a.profile,
        rule: a.rule,
        severity: a.severity,
        status: a.status,
        title: a.title,
        detail: a.detail,
        count: a.count,
        first_seen: rfc3339(a.first_ms),
        last_seen: rfc3339(a.last_ms),
        response: a.response,
        acknowledged_by: a.acked_by,
        acknowledged_at: a.acked_ms.map(rfc3339),
        resolved_at: a.resolved_ms.map(rfc3339),
        resolution: a.resolution,
        suppressed_until: a.suppressed_until_ms.map(rfc3339),
        escalation_step: a.escalation_step,
    }
}

/// Create or replace a security profile. Refused with the field and the reason when a rule is
/// not valid; takes effect for every device it applies to at once.
#[utoipa::path(put, path = "/api/v1/profiles/{name}", tag = "detection", params(("name" = String, Path)),
    request_body(content = Object, description = "The profile: name, groups, models, escalation, rules"),
    responses((status = 200, body = ProfileView), (status = 422, body = ErrorBody)))]
pub async fn put_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(mut body): ApiJson<serde_json::Value>,
) -> Result<Json<ProfileView>, ApiError> {
    if let Some(obj) = body.as_object_mut() {
        match obj.get("name") {
            None => {
                obj.insert("name".into(), serde_json::Value::String(name.clone()));
            }
            Some(n) if n.as_str() != Some(name.as_str()) => {
                return Err(palisade_core::InvalidField::new("name", "must match the name in the path").into());
            }
            Some(_) => {}
        }
    }
    let parsed = detect::spec::parse(&body)?;
    let name = parsed.profile.name.clone();
    state.store.put_profile(name.clone(), body.to_string(), "api", caller.audit()).await?;
    state.detector.reload(&state).await?;
    let stored = state.store.profiles().await?.into_iter().find(|p| p.name == name);
    stored.map(|p| Json(profile_view(p))).ok_or_else(ApiError::internal)
}

#[utoipa::path(get, path = "/api/v1/profiles", tag = "detection", responses((status = 200, body = Vec<ProfileView>)))]
pub async fn list_profiles(State(state): State<AppState>) -> Result<Json<Vec<ProfileView>>, ApiError> {
    Ok(Json(state.store.profiles().await?.into_iter().map(profile_view).collect()))
}

#[utoipa::path(delete, path = "/api/v1/profiles/{name}", tag = "detection", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_profile(name, caller.audit()).await?;
    state.detector.reload(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    device: Option<String>,
    /// `critical`, `high`, `medium`, `low` or `info`.
    severity: Option<String>,
    /// `open`, `acknowledged` or `resolved`.
    status: Option<String>,
    /// Alerts last seen before this time (RFC 3339): the next page.
    before: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<usize>,
}

fn visible(caller: &Caller, a: &Alert) -> bool {
    caller.can_on(Permission::AlertsRead, a.group.as_deref(), None)
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "detection", params(AlertQuery),
    responses((status = 200, body = Vec<AlertView>), (status = 422, body = ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    if let Some(s) = &q.severity
        && Severity::parse(s).is_none()
    {
        return Err(palisade_core::InvalidField::new("severity", "must be critical, high, medium, low or info").into());
    }
    if let Some(s) = &q.status
        && Status::parse(s).is_none()
    {
        return Err(palisade_core::InvalidField::new("status", "must be open, acknowledged or resolved").into());
    }
    let filter = AlertFilter {
        device: q.device,
        severity: q.severity,
        status: q.status,
        before_ms: q.before.as_deref().map(|b| parse_rfc3339("before", b)).transpose()?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let alerts = state.store.alerts(&filter).await?;
    Ok(Json(alerts.into_iter().filter(|a| visible(&caller, a)).map(alert_view).collect()))
}

async fn scoped(state: &AppState, caller: &Caller, id: &str, p: Permission) -> Result<Alert, ApiError> {
    let a = state.store.alert(id).await?;
    if !caller.can_on(p, a.group.as_deref(), None) {
        return Err(ApiError::not_found(format!("alert {id} not found")));
    }
    Ok(a)
}

/// One alert with its full history.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "detection", params(("id" = String, Path)),
    responses((status = 200, body = AlertDetail), (status = 404, body = ErrorBody)))]
pub async fn get_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    let a = scoped(&state, &caller, &id, Permission::AlertsRead).await?;
    let history = state.store.alert_history(&id).await?;
    Ok(Json(AlertDetail {
        alert: alert_view(a),
        history: history
            .into_iter()
            .map(|e| AlertEventView { at: rfc3339(e.at_ms), kind: e.kind, actor: e.actor, detail: e.detail })
            .collect(),
    }))
}

fn note(body: &AlertAction) -> Result<Option<String>, ApiError> {
    Ok(body.note.as_deref().map(|n| palisade_core::validate::optional_text("note", n, 1024)).transpose()?)
}

/// Acknowledge an open alert: escalation stops.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "detection", params(("id" = String, Path)),
    request_body(content = Option<AlertAction>),
    responses((status = 200, body = AlertView), (status = 409, body = ErrorBody)))]
pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<AlertAction>,
) -> Result<Json<AlertView>, ApiError> {
    scoped(&state, &caller, &id, Permission::AlertsAck).await?;
    let a = state.store.set_alert_status(id, Status::Acknowledged, false, note(&body)?, caller.audit()).await?;
    state.notifier.wake();
    Ok(Json(alert_view(a)))
}

/// Resolve an alert; `false_positive` teaches the device's learned baseline.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "detection", params(("id" = String, Path)),
    request_body(content = Option<AlertAction>),
    responses((status = 200, body = AlertView), (status = 409, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<AlertAction>,
) -> Result<Json<AlertView>, ApiError> {
    scoped(&state, &caller, &id, Permission::AlertsAck).await?;
    let note = note(&body)?;
    let a = state.store.set_alert_status(id, Status::Resolved, body.false_positive, note, caller.audit()).await?;
    if body.false_positive {
        state.detector.false_positive(&a.device_id, &a.profile, &a.rule).await;
    }
    state.notifier.wake();
    Ok(Json(alert_view(a)))
}

/// No notices, escalation or responses for this alert's repeats until the window ends.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/suppress", tag = "detection", params(("id" = String, Path)),
    request_body = SuppressRequest,
    responses((status = 200, body = AlertView), (status = 422, body = ErrorBody)))]
pub async fn suppress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SuppressRequest>,
) -> Result<Json<AlertView>, ApiError> {
    if !(1..=43_200).contains(&body.minutes) {
        return Err(palisade_core::InvalidField::new("minutes", "must be between 1 and 43200").into());
    }
    scoped(&state, &caller, &id, Permission::AlertsAck).await?;
    let until = crate::now_ms().saturating_add(i64::from(body.minutes) * 60_000);
    Ok(Json(alert_view(state.store.suppress_alert(id, until, caller.audit()).await?)))
}

/// Alert changes as they happen (Server-Sent Events; one JSON object per event).
#[utoipa::path(get, path = "/api/v1/alerts/stream", tag = "detection",
    responses((status = 200, content_type = "text/event-stream", body = String)))]
pub async fn stream(State(state): State<AppState>, caller: Caller) -> Response {
    let mut rx = state.detector.live.subscribe();
    let body = super::stream::produce(move |tx| async move {
        tx.send(b": palisade alerts\n\n".to_vec()).await?;
        let mut keepalive = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(json) => {
                        let group = serde_json::from_str::<serde_json::Value>(&json)
                            .ok()
                            .and_then(|v| v.get("alert")?.get("group")?.as_str().map(str::to_owned));
                        if caller.can_on(Permission::AlertsRead, group.as_deref(), None) {
                            tx.send(format!("event: alert\ndata: {json}\n\n").into_bytes()).await?;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tx.send(format!("event: lagged\ndata: {{\"missed\": {n}}}\n\n").into_bytes()).await?;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = keepalive.tick() => tx.send(b": keep-alive\n\n".to_vec()).await?,
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}
