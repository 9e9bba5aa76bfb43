//! Health, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::Permission;
use palisade_proto::Health;

use super::error::ApiError;
use super::extract::Caller;
use crate::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Readiness: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(Health { status: "ready".into() }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the database does not answer").into_response()
        }
    }
}

/// Prometheus metrics; public unless `metrics.public = false`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !state.config.metrics.public {
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts.headers = headers;
        let caller =
            <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await?;
        caller.require(Permission::SystemManage)?;
    }
    state.metrics.mqtt_sessions.set(i64::try_from(state.plane.connected()).unwrap_or(i64::MAX));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response())
}

/// The OpenAPI document, generated from the handlers' annotations.
pub async fn openapi(State(state): State<AppState>, _caller: Caller) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.clone()).into_response()
}
