//! `/api/v1/rollouts…`: staged firmware rollouts (the engine is `crate::rollout`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use palisade_core::Permission;
use palisade_proto::ErrorBody;
use palisade_proto::rollout::{ComplianceView, RolloutCreate, RolloutView};
use palisade_store::devices::DeviceFilter;

use super::error::ApiError;
use super::extract::{ApiJson, Caller};
use crate::{AppState, rollout};

/// Start a rollout of a catalogue target.
#[utoipa::path(post, path = "/api/v1/rollouts", tag = "firmware", request_body = RolloutCreate,
    responses((status = 201, body = RolloutView), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RolloutCreate>,
) -> Result<(StatusCode, Json<RolloutView>), ApiError> {
    // A rollout reaches devices anywhere: it needs the permission everywhere.
    if caller.authority.scopes_for(Permission::RolloutsManage).is_some() {
        return Err(ApiError::forbidden("starting a rollout needs rollouts.manage over every group and region"));
    }
    Ok((StatusCode::CREATED, Json(rollout::create(&state, req, caller.audit()).await?)))
}

/// Every rollout, newest first.
#[utoipa::path(get, path = "/api/v1/rollouts", tag = "firmware", responses((status = 200, body = Vec<RolloutView>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<RolloutView>>, ApiError> {
    let mut out = Vec::new();
    for r in state.store.rollouts().await? {
        out.push(rollout::view(&state, &r.id).await?);
    }
    Ok(Json(out))
}

/// One rollout: status, phases, devices by outcome, failures.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "firmware",
    responses((status = 200, body = RolloutView), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RolloutView>, ApiError> {
    Ok(Json(rollout::view(&state, &id).await?))
}

/// `pause`, `resume`, `approve` (the next phase) or `abort`.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/{command}", tag = "firmware",
    responses((status = 200, body = RolloutView), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn command(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, command)): Path<(String, String)>,
) -> Result<Json<RolloutView>, ApiError> {
    if !["pause", "resume", "approve", "abort"].contains(&command.as_str()) {
        return Err(ApiError::not_found("no such rollout command (pause, resume, approve, abort)"));
    }
    Ok(Json(rollout::command(&state, &id, &command, caller.audit()).await?))
}

/// Patch compliance per group: the approved version of each model, stragglers, devices silent
/// since their update, devices running firmware the catalogue does not list.
#[utoipa::path(get, path = "/api/v1/firmware/compliance", tag = "firmware", responses((status = 200, body = ComplianceView)))]
pub async fn compliance(State(state): State<AppState>, caller: Caller) -> Result<Json<ComplianceView>, ApiError> {
    let filter = DeviceFilter { scopes: caller.authority.scopes_for(Permission::DevicesRead), ..Default::default() };
    Ok(Json(rollout::compliance(&state, filter).await?))
}
