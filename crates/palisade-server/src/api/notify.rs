//! `/api/v1/channels…` and `/api/v1/deliveries…`: where notifications go, and how their
//! deliveries fare (the dead-letter list, retries, test notices).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use palisade_core::{InvalidField, Permission};
use palisade_proto::ErrorBody;
use palisade_proto::notify::{ChannelCreate, ChannelTest, ChannelView, DeliveryView};
use palisade_store::StoreError;
use palisade_store::notify::{
    Channel, ChannelKind, ChannelSecret, Delivery, DeliveryFilter, DeliveryStatus, NewChannel, Notice,
};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::convert::rfc3339;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Caller, OptionalJson, page_limit};
use crate::{AppState, notify};

/// A refused definition: 400 `invalid_field`, naming the field and the reason.
fn invalid(e: InvalidField) -> ApiError {
    ApiError::bad_request("invalid_field", e.to_string())
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(f) => invalid(f),
        other => other.into(),
    }
}

fn channel_view(c: &Channel, secret: Option<&ChannelSecret>) -> ChannelView {
    ChannelView {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.as_str().to_owned(),
        config: notify::masked(&c.config),
        min_severity: c.min_severity.clone(),
        groups: c.groups.clone(),
        enabled: c.enabled,
        routed: c.routed,
        has_secret: c.has_secret,
        created_at: rfc3339(c.created_ms),
        secret: secret.map(|s| s.expose().to_owned()),
    }
}

fn delivery_view(d: &Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        channel_id: d.channel_id.clone(),
        channel_name: d.channel_name.clone(),
        alert_id: d.alert_id.clone(),
        event: d.event.clone(),
        severity: d.severity.clone(),
        device_id: d.device_id.clone(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_ms)),
        last_error: d.last_error.clone(),
        body: serde_json::from_str(&d.body).unwrap_or_else(|_| serde_json::Value::String(d.body.clone())),
        created_at: rfc3339(d.created_ms),
        updated_at: rfc3339(d.updated_ms),
    }
}

/// Checks that a CA file names a readable PEM with at least one certificate.
async fn check_ca_file(path: &str) -> Result<(), InvalidField> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| InvalidField::new("config.ca_file", format!("cannot read {path}: {e}")))?;
    let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
        .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
        .map_err(|e| InvalidField::new("config.ca_file", format!("{path}: {e}")))?;
    if certs.is_empty() {
        return Err(InvalidField::new("config.ca_file", format!("{path} holds no PEM certificate")));
    }
    Ok(())
}

/// Create a notification channel: `webhook` (signed per Standard Webhooks; its secret is shown
/// once, here), `http_template` (SMS and chat providers), `syslog` (RFC 5424, CEF, TLS) or
/// `email` (SMTP with STARTTLS; the secret is the SMTP password).
#[utoipa::path(post, path = "/api/v1/channels", tag = "notifications", request_body = ChannelCreate,
    responses((status = 201, body = ChannelView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChannelCreate>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    caller.require(Permission::RulesManage)?;
    let kind: ChannelKind = body.kind.parse().map_err(invalid)?;
    let given = body.secret.filter(|s| !s.is_empty()).map(ChannelSecret::new);
    match (kind, &given) {
        (ChannelKind::Webhook, Some(_)) => {
            return Err(invalid(InvalidField::new("secret", "a webhook's signing secret is generated, not given")));
        }
        (ChannelKind::Syslog, Some(_)) => {
            return Err(invalid(InvalidField::new("secret", "syslog channels take no secret")));
        }
        (_, Some(s)) if s.expose().len() > 4096 || s.expose().chars().any(char::is_control) => {
            return Err(invalid(InvalidField::new("secret", "at most 4096 characters, no control characters")));
        }
        _ => {}
    }
    let secret = match kind {
        ChannelKind::Webhook => Some(notify::new_webhook_secret()?),
        _ => given,
    };
    let spec = notify::parse_channel(kind, &body.config, secret.is_some()).map_err(invalid)?;
    if let Some(path) = spec.ca_file() {
        check_ca_file(path).await.map_err(invalid)?;
    }
    let new = NewChannel {
        name: body.name,
        kind,
        config: body.config,
        secret: secret.clone(),
        min_severity: body.min_severity.unwrap_or_else(|| "info".into()),
        groups: body.groups,
        enabled: body.enabled.unwrap_or(true),
        routed: body.routed.unwrap_or(true),
    };
    let channel = state.store.create_channel(new, caller.audit()).await.map_err(store_error)?;
    let shown = if kind == ChannelKind::Webhook { secret.as_ref() } else { None };
    Ok((StatusCode::CREATED, Json(channel_view(&channel, shown))))
}

/// Every notification channel (secrets never shown; header values masked).
#[utoipa::path(get, path = "/api/v1/channels", tag = "notifications",
    responses((status = 200, body = Vec<ChannelView>)))]
pub async fn list_channels(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ChannelView>>, ApiError> {
    caller.require(Permission::AlertsRead)?;
    Ok(Json(state.store.channels().await?.iter().map(|c| channel_view(c, None)).collect()))
}

/// Queue a test notice to one channel (by id or name); it goes out at once.
#[utoipa::path(post, path = "/api/v1/channels/{id}/test", tag = "notifications", params(("id" = String, Path)),
    request_body(content = Option<ChannelTest>),
    responses((status = 202, body = DeliveryView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ChannelTest>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    caller.require(Permission::RulesManage)?;
    let severity = body.severity.unwrap_or_else(|| "info".into());
    if palisade_store::notify::severity_rank(&severity).is_none() {
        let all = palisade_store::notify::SEVERITIES.join(", ");
        return Err(invalid(InvalidField::new("severity", format!("{severity:.40?} is not one of {all}"))));
    }
    let text = |field: &str, v: Option<String>, default: &str, max: usize| match v {
        Some(v) => palisade_core::validate::required_text(field, &v.replace(['\n', '\r', '\t'], " "), max)
            .map(|_| v)
            .map_err(invalid),
        None => Ok(default.to_owned()),
    };
    let title = text("title", body.title, "Palisade test notification", 256)?;
    let detail = text("detail", body.detail, "A test notice, sent to check that this channel works.", 4096)?;
    let device_id = text("device_id", body.device_id, "-", 64)?;
    let mut suffix = [0u8; 8];
    palisade_store::sealed::random(&mut suffix)?;
    let alert_id = format!("test-{}", hex::encode(suffix));
    let ctx = caller.audit();
    let event = "channel.test";
    let payload = json!({
        "type": event,
        "timestamp_ms": ctx.at_ms,
        "data": {"id": alert_id, "severity": severity, "device_id": device_id, "title": title, "detail": detail,
                  "rule": event},
    });
    let notice = Notice { event: event.into(), alert_id, device_id, group: None, severity, body: payload.to_string() };
    let delivery = state.store.test_channel(id, notice, ctx).await.map_err(store_error)?;
    state.notifier.wake();
    Ok((StatusCode::ACCEPTED, Json(delivery_view(&delivery))))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `dead` (the dead-letter list).
    status: Option<String>,
    /// A channel id.
    channel: Option<String>,
    alert_id: Option<String>,
    /// 1–1000 (default 100).
    limit: Option<usize>,
}

/// Notification deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "notifications", params(DeliveryQuery),
    responses((status = 200, body = Vec<DeliveryView>), (status = 400, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    caller.require(Permission::AlertsRead)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let filter = DeliveryFilter { status, channel_id: q.channel, alert_id: q.alert_id };
    let items = state.store.deliveries(filter, page_limit(q.limit)?).await?;
    Ok(Json(items.iter().map(delivery_view).collect()))
}

/// Send a dead delivery again: back to pending, due now, its attempts counted afresh.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    caller.require(Permission::RulesManage)?;
    let delivery = state.store.retry_delivery(id, caller.audit()).await?;
    state.notifier.wake();
    Ok(Json(delivery_view(&delivery)))
}
