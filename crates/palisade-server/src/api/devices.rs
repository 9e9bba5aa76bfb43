//! `/api/v1/devices…`: inventory and lifecycle.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::device::Device;
use palisade_core::{DeviceId, LifecycleState, Permission};
use palisade_proto::{
    ActionRequest, Criticality, DeviceCreate, DevicePage, DevicePatch, DeviceView, ErrorBody, ImportResult,
    LifecycleRequest, LifecycleState as WireState,
};
use palisade_store::devices::{DeviceFilter, NewDevice, Transition};
use palisade_store::plane::Metric;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Caller, MAX_IMPORT_BYTES, MAX_LIMIT, OptionalJson, body_bytes, page_limit};
use super::{convert, csvio, stream};
use crate::{AppState, new_device_id};

fn outside_scope() -> ApiError {
    ApiError::forbidden("the device's group or region is outside this caller's scope")
}

/// Loads a device the caller may act on with `p`; others look absent (404), so a scoped caller
/// cannot learn which ids exist elsewhere.
async fn scoped_device(state: &AppState, caller: &Caller, id: &DeviceId, p: Permission) -> Result<Device, ApiError> {
    let device = state.store.get_device(id).await?;
    if caller.can_on(p, device.attrs.group.as_deref(), device.attrs.region.as_deref()) {
        Ok(device)
    } else {
        Err(ApiError::not_found(format!("device {id} not found")))
    }
}

fn parse_id(id: &str) -> Result<DeviceId, ApiError> {
    id.parse::<DeviceId>().map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

/// Register a device. It starts `registered`.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = DeviceCreate,
    responses((status = 201, body = DeviceView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DeviceCreate>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    caller.require(Permission::DevicesWrite)?;
    let attrs = convert::attributes(body)?;
    if !caller.can_on(Permission::DevicesWrite, attrs.group.as_deref(), attrs.region.as_deref()) {
        return Err(outside_scope());
    }
    let device = state.store.create_device(NewDevice { id: new_device_id()?, attrs }, caller.audit()).await?;
    Ok((StatusCode::CREATED, Json(convert::view(&device, true))))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    state: Option<WireState>,
    group: Option<String>,
    region: Option<String>,
    criticality: Option<Criticality>,
    tag: Option<String>,
    model: Option<String>,
    firmware_version: Option<String>,
    /// Free text: id, serial, model, vendor, owner, purpose (case-insensitive substring).
    q: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    limit: Option<usize>,
}

impl ListQuery {
    fn filter(&self, caller: &Caller) -> DeviceFilter {
        DeviceFilter {
            scopes: caller.authority.scopes_for(Permission::DevicesRead),
            state: self.state.map(Into::into),
            group: self.group.clone(),
            region: self.region.clone(),
            criticality: self.criticality.map(Into::into),
            tag: self.tag.clone(),
            model: self.model.clone(),
            firmware_version: self.firmware_version.clone(),
            q: self.q.clone(),
        }
    }
}

/// List devices with filters and cursor pagination.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(ListQuery),
    responses((status = 200, body = DevicePage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DevicePage>, ApiError> {
    caller.require(Permission::DevicesRead)?;
    let cursor = q.cursor.as_deref().map(parse_id).transpose()?;
    let page = state.store.list_devices(&q.filter(&caller), cursor.as_ref(), page_limit(q.limit)?).await?;
    let personal = caller.can(Permission::DevicesWrite);
    Ok(Json(DevicePage {
        items: page.items.iter().map(|d| convert::view(d, personal)).collect(),
        next_cursor: page.next,
    }))
}

/// Read one device.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = DeviceView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    caller.require(Permission::DevicesRead)?;
    let device = scoped_device(&state, &caller, &parse_id(&id)?, Permission::DevicesRead).await?;
    Ok(Json(convert::view(&device, caller.can(Permission::DevicesWrite))))
}

/// Update attributes. Absent fields stay; `null` clears an optional field.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    request_body = DevicePatch,
    responses((status = 200, body = DeviceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DevicePatch>,
) -> Result<Json<DeviceView>, ApiError> {
    caller.require(Permission::DevicesWrite)?;
    let id = parse_id(&id)?;
    let patch = convert::patch(body)?;
    let current = scoped_device(&state, &caller, &id, Permission::DevicesWrite).await?;
    let group = patch.group.clone().unwrap_or(current.attrs.group);
    let region = patch.region.clone().unwrap_or(current.attrs.region);
    if !caller.can_on(Permission::DevicesWrite, group.as_deref(), region.as_deref()) {
        return Err(outside_scope());
    }
    let device = state.store.update_device(id, patch, caller.audit()).await?;
    Ok(Json(convert::view(&device, true)))
}

async fn transition(
    state: &AppState,
    caller: &Caller,
    id: &str,
    t: Transition,
    reason: Option<String>,
) -> Result<Json<DeviceView>, ApiError> {
    caller.require(Permission::DevicesLifecycle)?;
    let id = parse_id(id)?;
    scoped_device(state, caller, &id, Permission::DevicesLifecycle).await?;
    let reason = reason.map(|r| palisade_core::validate::optional_text("reason", &r, 1024)).transpose()?;
    let device = state.store.transition_device(id, t, reason, caller.audit()).await?;
    state.plane.state_changed(device.id.as_str(), device.state);
    if device.state == LifecycleState::Decommissioned {
        // Its certificates were revoked in the same transaction: publish that now.
        if let Err(e) = state.pki.revoked(&state.store, &[format!("device:{}", device.id)]).await {
            tracing::error!(error = %e, "cannot re-issue the CRL after a decommission");
        }
    }
    Ok(Json(convert::view(&device, caller.can(Permission::DevicesWrite))))
}

/// Move a device through its lifecycle (409 names the allowed states).
#[utoipa::path(post, path = "/api/v1/devices/{id}/lifecycle", tag = "devices", params(("id" = String, Path)),
    request_body = LifecycleRequest,
    responses((status = 200, body = DeviceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn lifecycle(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LifecycleRequest>,
) -> Result<Json<DeviceView>, ApiError> {
    let to: LifecycleState = body.to.into();
    transition(&state, &caller, &id, Transition::To(to), body.reason).await
}

/// Quarantine an active device.
#[utoipa::path(post, path = "/api/v1/devices/{id}/quarantine", tag = "devices", params(("id" = String, Path)),
    request_body(content = Option<ActionRequest>),
    responses((status = 200, body = DeviceView), (status = 409, body = ErrorBody)))]
pub async fn quarantine(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<Json<DeviceView>, ApiError> {
    transition(&state, &caller, &id, Transition::To(LifecycleState::Quarantined), body.reason).await
}

/// Pause an active device.
#[utoipa::path(post, path = "/api/v1/devices/{id}/pause", tag = "devices", params(("id" = String, Path)),
    request_body(content = Option<ActionRequest>),
    responses((status = 200, body = DeviceView), (status = 409, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<Json<DeviceView>, ApiError> {
    transition(&state, &caller, &id, Transition::To(LifecycleState::Paused), body.reason).await
}

/// Return a quarantined or paused device to active.
#[utoipa::path(post, path = "/api/v1/devices/{id}/release", tag = "devices", params(("id" = String, Path)),
    request_body(content = Option<ActionRequest>),
    responses((status = 200, body = DeviceView), (status = 409, body = ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<Json<DeviceView>, ApiError> {
    transition(&state, &caller, &id, Transition::Release, body.reason).await
}

/// Decommission a device (terminal).
#[utoipa::path(post, path = "/api/v1/devices/{id}/decommission", tag = "devices", params(("id" = String, Path)),
    request_body(content = Option<ActionRequest>),
    responses((status = 200, body = DeviceView), (status = 409, body = ErrorBody)))]
pub async fn decommission(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ActionRequest>,
) -> Result<Json<DeviceView>, ApiError> {
    transition(&state, &caller, &id, Transition::To(LifecycleState::Decommissioned), body.reason).await
}

/// Import devices from CSV: all rows or none; every bad row is reported.
#[utoipa::path(post, path = "/api/v1/devices/import", tag = "devices",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = ImportResult), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<(StatusCode, Json<ImportResult>), ApiError> {
    caller.require(Permission::DevicesWrite)?;
    let body = body_bytes(req, MAX_IMPORT_BYTES).await?;
    let rows = csvio::parse(&body).map_err(|rows| ApiError {
        rows: Some(
            rows.into_iter()
                .map(|r| palisade_proto::RowErrorView { row: r.row, field: r.field, message: r.message })
                .collect(),
        ),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "import_rejected", "import refused; nothing was imported")
    })?;
    let outside: Vec<palisade_proto::RowErrorView> = rows
        .iter()
        .filter(|(_, a)| !caller.can_on(Permission::DevicesWrite, a.group.as_deref(), a.region.as_deref()))
        .map(|(row, _)| palisade_proto::RowErrorView {
            row: *row,
            field: "group".into(),
            message: "group or region outside this caller's scope".into(),
        })
        .collect();
    if !outside.is_empty() {
        return Err(ApiError {
            rows: Some(outside),
            ..ApiError::new(StatusCode::FORBIDDEN, "import_rejected", "import refused; nothing was imported")
        });
    }
    let mut new = Vec::with_capacity(rows.len());
    for (row, attrs) in rows {
        new.push((row, NewDevice { id: new_device_id()?, attrs }));
    }
    let imported = state.store.import_devices(new, caller.audit()).await?;
    Ok((StatusCode::CREATED, Json(ImportResult { imported })))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `json` (JSON Lines).
    format: Option<String>,
    state: Option<WireState>,
    group: Option<String>,
    region: Option<String>,
    criticality: Option<Criticality>,
    tag: Option<String>,
}

/// Export the inventory (filtered) as CSV or JSON Lines, streamed.
#[utoipa::path(get, path = "/api/v1/devices/export", tag = "devices", params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::DevicesRead)?;
    let csv = match q.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request("invalid_query", format!("format {other:?}: use csv or json")));
        }
    };
    let filter = ListQuery {
        state: q.state,
        group: q.group,
        region: q.region,
        criticality: q.criticality,
        tag: q.tag,
        ..ListQuery::default()
    }
    .filter(&caller);
    let personal = caller.can(Permission::DevicesWrite);
    let store = state.store.clone();
    let body = stream::produce(move |tx| async move {
        if csv {
            tx.send_csv_row(&csvio::export_header()).await?;
        }
        let mut cursor = None;
        loop {
            let page = store.list_devices(&filter, cursor.as_ref(), MAX_LIMIT).await.map_err(stream::failed)?;
            for d in &page.items {
                if csv {
                    tx.send_csv_row(&csvio::export_row(d, personal)).await?;
                } else {
                    tx.send_json_line(&convert::view(d, personal)).await?;
                }
            }
            match page.next.map(|n| n.parse::<DeviceId>()) {
                Some(Ok(next)) => cursor = Some(next),
                _ => return Ok(()),
            }
        }
    });
    let content_type = if csv { "text/csv; charset=utf-8" } else { "application/x-ndjson" };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The latest telemetry a device sent.
#[utoipa::path(get, path = "/api/v1/devices/{id}/telemetry/latest", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = palisade_proto::TelemetryView), (status = 404, body = ErrorBody)))]
pub async fn latest_telemetry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<palisade_proto::TelemetryView>, ApiError> {
    let id = parse_id(&id)?;
    scoped_device(&state, &caller, &id, Permission::DevicesRead).await?;
    let m = state.store.device_messages(id.as_str(), "telemetry", 1).await?;
    let m = m.into_iter().next().ok_or_else(|| ApiError::not_found(format!("no telemetry from device {id} yet")))?;
    Ok(Json(palisade_proto::TelemetryView {
        received_at: convert::rfc3339(m.received_ms),
        seq: m.seq,
        payload: serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Required: tx_bps, rx_bps, tx_bytes, rx_bytes, cpu_pct, mem_pct, uptime_s or failed_logins.
    metric: Option<String>,
    /// RFC 3339, inclusive (default: 24 hours before `to`).
    from: Option<String>,
    /// RFC 3339, exclusive (default: now).
    to: Option<String>,
    /// Buckets at most, 1–1000 (default 100).
    points: Option<i64>,
}

/// Longest window a series may cover.
const MAX_WINDOW_MS: i64 = 366 * 24 * 3600 * 1000;

/// One metric of a device over a window, downsampled (average, minimum and maximum per bucket).
/// Rates (`tx_bps`, `rx_bps`) are derived by the server from the device's counters; a report
/// after a reboot or counter reset has no rate.
#[utoipa::path(get, path = "/api/v1/devices/{id}/telemetry", tag = "devices", params(("id" = String, Path), SeriesQuery),
    responses((status = 200, body = palisade_proto::TelemetrySeries), (status = 422, body = ErrorBody)))]
pub async fn telemetry_series(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> Result<Json<palisade_proto::TelemetrySeries>, ApiError> {
    let id = parse_id(&id)?;
    scoped_device(&state, &caller, &id, Permission::DevicesRead).await?;
    // Checked after the device's scope, so a device outside it is not found whatever the query.
    let asked = q.metric.as_deref().unwrap_or_default();
    let metric = Metric::parse(asked).ok_or_else(|| {
        let names: Vec<_> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        palisade_core::InvalidField::new("metric", format!("{asked:.40?} is not one of {}", names.join(", ")))
    })?;
    let to = q.to.as_deref().map(|s| convert::parse_rfc3339("to", s)).transpose()?.unwrap_or_else(crate::now_ms);
    let from =
        q.from.as_deref().map(|s| convert::parse_rfc3339("from", s)).transpose()?.unwrap_or(to - 24 * 3600 * 1000);
    if from >= to || to - from > MAX_WINDOW_MS {
        return Err(palisade_core::InvalidField::new("from", "must be before `to`, at most 366 days before").into());
    }
    let points = q.points.unwrap_or(100);
    if !(1..=1000).contains(&points) {
        return Err(palisade_core::InvalidField::new("points", "must be 1–1000").into());
    }
    let bucket_ms = ((to - from) + points - 1) / points;
    let buckets = state.store.telemetry_series(id.as_str(), metric, from, to, bucket_ms).await?;
    Ok(Json(palisade_proto::TelemetrySeries {
        metric: metric.as_str().to_owned(),
        from: convert::rfc3339(from),
        to: convert::rfc3339(to),
        bucket_ms,
        points: buckets
            .into_iter()
            .map(|b| palisade_proto::SeriesPoint {
                at: convert::rfc3339(b.start_ms),
                count: b.count,
                avg: b.avg,
                min: b.min,
                max: b.max,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionsQuery {
    /// RFC 3339, exclusive (default: now): page back with the oldest `at` of the last page.
    before: Option<String>,
    /// 1–1000 (default 100).
    limit: Option<usize>,
}

/// A device's connection history, newest first: connects, disconnects (reason, duration) and
/// refusals, with source address, TLS version and cipher.
#[utoipa::path(get, path = "/api/v1/devices/{id}/connections", tag = "devices", params(("id" = String, Path), ConnectionsQuery),
    responses((status = 200, body = Vec<palisade_proto::ConnectionEvent>)))]
pub async fn connection_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ConnectionsQuery>,
) -> Result<Json<Vec<palisade_proto::ConnectionEvent>>, ApiError> {
    let id = parse_id(&id)?;
    scoped_device(&state, &caller, &id, Permission::DevicesRead).await?;
    let before = q.before.as_deref().map(|s| convert::parse_rfc3339("before", s)).transpose()?;
    let limit = page_limit(q.limit)?;
    let limit = i64::try_from(limit).unwrap_or(100);
    let facts = state.store.connections(id.as_str(), before.unwrap_or(i64::MAX), limit).await?;
    Ok(Json(
        facts
            .into_iter()
            .map(|f| palisade_proto::ConnectionEvent {
                event: f.event,
                at: convert::rfc3339(f.at_ms),
                source_ip: f.source_ip,
                detail: f.detail,
                tls_version: f.tls_version,
                cipher: f.cipher,
                duration_ms: f.duration_ms,
            })
            .collect(),
    ))
}

const COMMANDS: &[&str] =
    &["ping", "reboot", "wipe", "quarantine-mode", "rotate-credentials", "collect-diagnostics", "update"];

fn command_view(c: &palisade_store::identity::Command) -> palisade_proto::CommandView {
    palisade_proto::CommandView {
        id: c.id.clone(),
        command: c.command.clone(),
        status: c.status.clone(),
        created_at: convert::rfc3339(c.created_ms),
        updated_at: c.updated_ms.map(convert::rfc3339),
        result: c.result.as_deref().and_then(|r| serde_json::from_str(r).ok()),
    }
}

/// Queue a command; it is delivered over MQTT (QoS 1) now or when the device next listens.
#[utoipa::path(post, path = "/api/v1/devices/{id}/commands", tag = "devices", params(("id" = String, Path)),
    request_body = palisade_proto::CommandRequest,
    responses((status = 201, body = palisade_proto::CommandView), (status = 422, body = ErrorBody)))]
pub async fn send_command(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<palisade_proto::CommandRequest>,
) -> Result<(StatusCode, Json<palisade_proto::CommandView>), ApiError> {
    let id = parse_id(&id)?;
    let device = scoped_device(&state, &caller, &id, Permission::DevicesLifecycle).await?;
    if !COMMANDS.contains(&body.command.as_str()) {
        return Err(palisade_core::InvalidField::new(
            "command",
            format!("{:.40?} is not one of {}", body.command, COMMANDS.join(", ")),
        )
        .into());
    }
    if device.state == LifecycleState::Decommissioned {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", "the device is decommissioned"));
    }
    let cid = state.store.queue_command(id.to_string(), body.command, caller.audit()).await?;
    state.plane.deliver(id.as_str());
    let all = state.store.commands_of(id.as_str()).await?;
    let c = all.iter().find(|c| c.id == cid).ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(command_view(c))))
}

/// A device's commands and their state (queued, sent, delivered, done, failed).
#[utoipa::path(get, path = "/api/v1/devices/{id}/commands", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = Vec<palisade_proto::CommandView>)))]
pub async fn list_commands(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<palisade_proto::CommandView>>, ApiError> {
    let id = parse_id(&id)?;
    scoped_device(&state, &caller, &id, Permission::DevicesRead).await?;
    Ok(Json(state.store.commands_of(id.as_str()).await?.iter().map(command_view).collect()))
}
