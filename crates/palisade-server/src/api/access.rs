//! `/api/v1/auth…`, `/api/v1/users…`, `/api/v1/roles`, `/api/v1/apikeys…`: people and keys.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::audit::Actor;
use palisade_core::{PermissionSet, Role, Scope, totp};
use palisade_proto::{
    ApiKeyCreate, ApiKeyCreated, ApiKeyView, ErrorBody, LoginRequest, LoginResponse, MfaConfirm, MfaCoverage,
    MfaEnrollment, PasswordChange, PasswordReset, RecoveryCodes, RoleBindingView, RoleView, UserCreate, UserCreated,
    UserPatch, UserView,
};
use palisade_store::apikeys::{ApiKeyInfo, KeyAuthority};
use palisade_store::audit::AuditContext;
use palisade_store::users::{CustomRole, NewUser, RoleBinding, User, UserStatus};
use zeroize::Zeroizing;

use super::convert::rfc3339;
use super::error::ApiError;
use super::extract::{ApiJson, Caller, OptionalJson, PeerAddr, Principal};
use crate::auth::{self, SESSION_COOKIE};
use crate::metrics::LoginLabels;
use crate::{AppState, now_ms};

fn auth_err(e: auth::AuthError) -> ApiError {
    match e {
        auth::AuthError::Store(s) => s.into(),
        auth::AuthError::Hash => {
            tracing::error!("password hashing failed");
            ApiError::internal()
        }
    }
}

pub fn user_view(u: &User, with_email: bool) -> UserView {
    UserView {
        id: u.id.clone(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        email: if with_email { u.email.clone() } else { None },
        status: u.status.as_str().into(),
        roles: u
            .bindings
            .iter()
            .map(|b| RoleBindingView {
                role: b.role.clone(),
                groups: b.scope.groups.clone(),
                regions: b.scope.regions.clone(),
            })
            .collect(),
        mfa_enabled: u.mfa_enabled(),
        must_change_password: u.must_change_password,
        locked_until: u.locked_until_ms.filter(|t| *t > now_ms()).map(rfc3339),
        created_at: rfc3339(u.created_ms),
    }
}

fn login_failed() -> ApiError {
    ApiError::unauthorized("invalid username or password")
}

/// Sign in with a password (and a TOTP or recovery code when the account has MFA).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(peer): axum::Extension<PeerAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let (body, cookie) = sign_in(&state, peer, req).await?;
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// Signs in (API and console alike): the answer and the session cookie to set.
pub async fn sign_in(
    state: &AppState,
    peer: PeerAddr,
    req: LoginRequest,
) -> Result<(LoginResponse, HeaderValue), ApiError> {
    let now = now_ms();
    let ip = peer.0.ip().to_string();
    let username = req.username.trim().to_lowercase();
    if username.is_empty() || username.len() > 128 || req.password.len() > 4 * auth::MAX_PASSWORD {
        return Err(login_failed());
    }
    let (account_key, source_key) = (format!("user:{username}"), format!("ip:{ip}"));
    let password = Zeroizing::new(req.password);
    let anonymous = AuditContext { actor: Actor::Anonymous, source_ip: Some(ip.clone()), at_ms: now };
    let target = format!("login:{username}");
    let audit = |outcome: &'static str, ctx: AuditContext| {
        let store = state.store.clone();
        let target = target.clone();
        state.metrics.logins.get_or_create(&LoginLabels { outcome }).inc();
        async move {
            if let Err(e) =
                store.record(ctx, "auth.login", target, Some(serde_json::json!({ "outcome": outcome }))).await
            {
                tracing::error!(error = %e, "cannot audit a sign-in");
            }
        }
    };

    let user = state.store.user_by_name(&username).await?;
    // Always one argon2 verification, whether or not the user exists.
    let password_ok = state.auth.verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let db_locked = user.as_ref().is_some_and(|u| u.locked_until_ms.is_some_and(|t| t > now));
    if db_locked || state.auth.is_locked(&account_key, &source_key, now) {
        state.auth.record_source_failure(&source_key, now);
        audit("locked", anonymous).await;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            "too many failed sign-ins: this account or address is locked for a while, or until an administrator unlocks it",
        ));
    }
    let user = match user {
        Some(u) if password_ok && u.status == UserStatus::Active => u,
        _ => {
            fail(state, &account_key, &source_key, &username, now, anonymous.clone()).await;
            audit("bad_credentials", anonymous).await;
            return Err(login_failed());
        }
    };
    if user.mfa_enabled() {
        let secret = user.totp_secret.clone().unwrap_or_default();
        let ok = match (req.totp_code.as_deref(), req.recovery_code.as_deref()) {
            (Some(code), _) => {
                match totp::verify(&secret, code, u64::try_from(now / 1000).unwrap_or(0), user.totp_last_step) {
                    Ok(step) => state.store.use_totp_step(user.id.clone(), step).await?,
                    Err(_) => false,
                }
            }
            (None, Some(code)) => {
                state.store.use_recovery_code(user.id.clone(), auth::recovery_hash(code), now).await?
            }
            (None, None) => {
                audit("mfa_required", anonymous).await;
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "mfa_required", "this account needs a TOTP code"));
            }
        };
        if !ok {
            fail(state, &account_key, &source_key, &username, now, anonymous.clone()).await;
            audit("bad_mfa_code", anonymous).await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_code",
                "invalid or already used MFA code",
            ));
        }
    }
    state.auth.record_success(&account_key);
    let session_id = auth::random_token(32)?;
    state.store.create_session(auth::sha256(session_id.as_bytes()), user.id.clone(), now, Some(ip.clone())).await?;
    let actor = Actor::User { id: user.id.clone(), username: user.username.clone() };
    audit("success", AuditContext { actor, source_ip: Some(ip), at_ms: now }).await;
    let roles = state.store.custom_roles().await?;
    let body = LoginResponse {
        csrf_token: auth::csrf_token(&session_id),
        must_change_password: user.must_change_password,
        mfa_enrollment_required: state.auth.mfa_required(&user, &roles) && !user.mfa_enabled(),
        user: user_view(&user, true),
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        session_id.as_str(),
        state.auth.config.session_absolute_secs
    );
    Ok((body, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?))
}

/// Counts a failed sign-in, locks the account when it is time, and holds the answer.
async fn fail(state: &AppState, account_key: &str, source_key: &str, username: &str, now: i64, ctx: AuditContext) {
    let (delay_ms, locked_until) = state.auth.record_failure(account_key, source_key, now);
    if let Some(until) = locked_until
        && let Ok(Some(user)) = state.store.user_by_name(username).await
        && user.locked_until_ms.is_none_or(|t| t < until)
        && let Err(e) = state.store.set_user_locked(user.id, Some(until), ctx).await
    {
        tracing::error!(error = %e, "cannot record an account lock");
    }
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
}

fn session_of(caller: &Caller) -> Result<(&str, &str), ApiError> {
    match &caller.principal {
        Principal::User { id, session_id, .. } => Ok((id.as_str(), session_id.as_str())),
        Principal::ApiKey(_) => {
            Err(ApiError::bad_request("not_a_session", "this route is for signed-in users, not API keys"))
        }
    }
}

/// End this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let (_, session_id) = session_of(&caller)?;
    state.store.delete_session(auth::sha256(session_id.as_bytes())).await?;
    state.store.record(caller.audit(), "auth.logout", caller.actor().id(), None).await?;
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&clear).map_err(|_| ApiError::internal())?);
    Ok(resp)
}

/// Who am I.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = UserView)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<UserView>, ApiError> {
    let (id, _) = session_of(&caller)?;
    Ok(Json(user_view(&state.store.user(id).await?, true)))
}

/// Change my password (ends my other sessions).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let (id, session_id) = session_of(&caller)?;
    let user = state.store.user(id).await?;
    let current = Zeroizing::new(body.current_password);
    let new = Zeroizing::new(body.new_password);
    if !state.auth.verify_password(current.clone(), Some(user.password_hash.clone())).await {
        return Err(ApiError::unauthorized("the current password is wrong"));
    }
    auth::check_password(&new, &user.username)?;
    if *new == *current {
        return Err(palisade_core::InvalidField::new("new_password", "must differ from the current one").into());
    }
    let hash = state.auth.hash_password(new).await.map_err(auth_err)?;
    let keep = auth::sha256(session_id.as_bytes());
    let first_admin = user.id == crate::bootstrap::INITIAL_ADMIN_ID;
    state.store.set_password(user.id, hash, false, Some(keep), caller.audit()).await?;
    if first_admin && let Ok(dir) = state.config.data_dir() {
        // The one-time password is spent: do not leave it lying around.
        let _ = std::fs::remove_file(crate::bootstrap::initial_admin_path(dir));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Start MFA enrolment: a new TOTP secret, as a URI and a QR code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enroll", tag = "auth",
    responses((status = 200, body = MfaEnrollment), (status = 409, body = ErrorBody)))]
pub async fn mfa_enroll(State(state): State<AppState>, caller: Caller) -> Result<Json<MfaEnrollment>, ApiError> {
    let (id, _) = session_of(&caller)?;
    let user = state.store.user(id).await?;
    if user.mfa_enabled() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "MFA is already enabled; an administrator can reset it",
        ));
    }
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    palisade_store::sealed::random(&mut secret)?;
    let uri = totp::otpauth_uri("Palisade", &user.username, &secret);
    let body = MfaEnrollment { qr_svg: auth::qr_svg(&uri), secret: totp::base32(&secret), otpauth_uri: uri };
    state.store.set_totp_pending(user.id, secret, caller.audit()).await?;
    Ok(Json(body))
}

/// Finish MFA enrolment with a code from the app; returns one-time recovery codes.
#[utoipa::path(post, path = "/api/v1/auth/mfa/confirm", tag = "auth", request_body = MfaConfirm,
    responses((status = 200, body = RecoveryCodes), (status = 422, body = ErrorBody)))]
pub async fn mfa_confirm(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MfaConfirm>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let (id, _) = session_of(&caller)?;
    let user = state.store.user(id).await?;
    let Some(secret) = user.totp_pending.clone() else {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", "start with POST /api/v1/auth/mfa/enroll"));
    };
    let step = totp::verify(&secret, &body.code, u64::try_from(now_ms() / 1000).unwrap_or(0), user.totp_last_step)
        .map_err(|_| palisade_core::InvalidField::new("code", "is not the current code of the enrolled secret"))?;
    let (codes, hashes) = auth::recovery_codes()?;
    state.store.confirm_totp(user.id, secret, step, hashes, caller.audit()).await?;
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

// --- users ------------------------------------------------------------------------------------

fn check_username(name: &str) -> Result<String, ApiError> {
    let n = name.trim().to_lowercase();
    let ok = (3..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(n)
    } else {
        Err(palisade_core::InvalidField::new("username", "3-64 characters of a-z 0-9 . _ - @").into())
    }
}

async fn bindings(state: &AppState, views: Vec<RoleBindingView>) -> Result<Vec<RoleBinding>, ApiError> {
    let custom = state.store.custom_roles().await?;
    views
        .into_iter()
        .map(|v| {
            if v.role.parse::<Role>().is_err() && !custom.iter().any(|c| c.name == v.role) {
                return Err(palisade_core::InvalidField::new("roles", format!("no role named {:?}", v.role)).into());
            }
            let clean = |l: Vec<String>, f: &str| -> Result<Vec<String>, ApiError> {
                l.into_iter()
                    .map(|x| palisade_core::validate::required_text(f, &x, 256).map_err(ApiError::from))
                    .filter(|x| x.as_ref().map_or(true, |s| !s.contains(',')))
                    .collect()
            };
            Ok(RoleBinding {
                role: v.role,
                scope: Scope { groups: clean(v.groups, "groups")?, regions: clean(v.regions, "regions")? },
            })
        })
        .collect()
}

/// A fresh one-time password for a new or reset account.
fn initial_password() -> Result<Zeroizing<String>, ApiError> {
    Ok(auth::random_token(18)?)
}

/// Create a user; the response carries a one-time initial password.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserCreate,
    responses((status = 201, body = UserCreated), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UserCreate>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    let username = check_username(&body.username)?;
    let bindings = bindings(&state, body.roles).await?;
    let password = initial_password()?;
    let hash = state.auth.hash_password(password.clone()).await.map_err(auth_err)?;
    let id = format!("u{}", auth::random_token(9)?.to_lowercase().replace(['-', '_'], "x"));
    let new = NewUser {
        id: id.clone(),
        username,
        display_name: body
            .display_name
            .map(|d| palisade_core::validate::optional_text("display_name", &d, 256))
            .transpose()?,
        email: body.email.map(|e| palisade_core::validate::optional_text("email", &e, 256)).transpose()?,
        password_hash: hash,
        must_change_password: true,
        bindings,
    };
    state.store.create_user(new, caller.audit()).await?;
    let user = state.store.user(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated { user: user_view(&user, true), initial_password: password.to_string() }),
    ))
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<UserView>)))]
pub async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(state.store.users().await?.iter().map(|u| user_view(u, true)).collect()))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<UserView>, ApiError> {
    Ok(Json(user_view(&state.store.user(&id).await?, true)))
}

/// Change a user's name, email, status or roles.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn patch_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let status = match body.status.as_deref() {
        None => None,
        Some("active") => Some(UserStatus::Active),
        Some("disabled") => Some(UserStatus::Disabled),
        Some(other) => {
            return Err(palisade_core::InvalidField::new("status", format!("{other:?}: use active or disabled")).into());
        }
    };
    let bindings = match body.roles {
        Some(r) => Some(bindings(&state, r).await?),
        None => None,
    };
    let patch =
        palisade_store::users::UserPatch { display_name: body.display_name, email: body.email, status, bindings };
    let user = state.store.update_user(id, patch, caller.audit()).await?;
    Ok(Json(user_view(&user, true)))
}

/// Lift a sign-in lock.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView)))]
pub async fn unlock_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.store.user(&id).await?;
    state.store.set_user_locked(id.clone(), None, caller.audit()).await?;
    state.auth.unlock(&format!("user:{}", user.username));
    Ok(Json(user_view(&state.store.user(&id).await?, true)))
}

/// Remove a user's MFA (they must enrol again if their role requires it). Audited.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/reset", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    state.store.disable_totp(id.clone(), caller.audit()).await?;
    Ok(Json(user_view(&state.store.user(&id).await?, true)))
}

/// Give a user a new one-time password (to be changed at next sign-in); ends their sessions.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = PasswordReset)))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PasswordReset>, ApiError> {
    let password = initial_password()?;
    let hash = state.auth.hash_password(password.clone()).await.map_err(auth_err)?;
    state.store.set_password(id, hash, true, None, caller.audit()).await?;
    Ok(Json(PasswordReset { initial_password: password.to_string() }))
}

/// Custom roles.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users", responses((status = 200, body = Vec<RoleView>)))]
pub async fn list_roles(State(state): State<AppState>) -> Result<Json<Vec<RoleView>>, ApiError> {
    let mut out: Vec<RoleView> = Role::ALL
        .iter()
        .map(|r| RoleView {
            name: r.as_str().into(),
            permissions: r.permission_set().names().iter().map(|s| (*s).to_owned()).collect(),
            mfa_required: state.auth.config.mfa_required_roles.iter().any(|m| m == r.as_str()),
        })
        .collect();
    for c in state.store.custom_roles().await? {
        out.push(RoleView {
            name: c.name,
            permissions: c.permissions.names().iter().map(|s| (*s).to_owned()).collect(),
            mfa_required: c.mfa_required,
        });
    }
    Ok(Json(out))
}

/// Define a custom role from permissions.
#[utoipa::path(post, path = "/api/v1/roles", tag = "users", request_body = RoleView,
    responses((status = 201, body = RoleView), (status = 409, body = ErrorBody)))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RoleView>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    let ok = (2..=64).contains(&body.name.len())
        && body.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok || body.name.parse::<Role>().is_ok() {
        return Err(
            palisade_core::InvalidField::new("name", "2-64 characters of a-z 0-9 -, not a built-in role").into()
        );
    }
    let permissions = PermissionSet::parse(&body.permissions)?;
    state
        .store
        .create_role(
            CustomRole { name: body.name.clone(), permissions, mfa_required: body.mfa_required },
            caller.audit(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Who has MFA, and who must but has not.
#[utoipa::path(get, path = "/api/v1/reports/mfa-coverage", tag = "users", responses((status = 200, body = MfaCoverage)))]
pub async fn mfa_coverage(State(state): State<AppState>) -> Result<Json<MfaCoverage>, ApiError> {
    let users = state.store.users().await?;
    let roles = state.store.custom_roles().await?;
    let active: Vec<&User> = users.iter().filter(|u| u.status == UserStatus::Active).collect();
    let required: Vec<&&User> = active.iter().filter(|u| state.auth.mfa_required(u, &roles)).collect();
    Ok(Json(MfaCoverage {
        users: active.len(),
        mfa_enabled: active.iter().filter(|u| u.mfa_enabled()).count(),
        mfa_required: required.len(),
        required_without_mfa: required.iter().filter(|u| !u.mfa_enabled()).map(|u| u.username.clone()).collect(),
    }))
}

// --- API keys ---------------------------------------------------------------------------------

fn key_view(k: &ApiKeyInfo) -> ApiKeyView {
    ApiKeyView {
        id: k.id.clone(),
        name: k.name.clone(),
        owner: k.owner.clone(),
        role: k.role.map(|r| r.as_str().to_owned()),
        scopes: k.scopes.names().iter().map(|s| (*s).to_owned()).collect(),
        groups: k.scope.groups.clone(),
        regions: k.scope.regions.clone(),
        created_at: rfc3339(k.created_ms),
        expires_at: k.expires_ms.map(rfc3339),
        revoked_at: k.revoked_ms.map(rfc3339),
        last_used_at: k.last_used_ms.map(rfc3339),
        last_used_ip: k.last_used_ip.clone(),
    }
}

/// My keys (everyone's, with `users.manage`). Secrets are never shown again.
#[utoipa::path(get, path = "/api/v1/apikeys", tag = "apikeys", responses((status = 200, body = Vec<ApiKeyView>)))]
pub async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let owner = match (&caller.principal, caller.can(palisade_core::Permission::UsersManage)) {
        (_, true) => None,
        (Principal::User { id, .. }, false) => Some(id.clone()),
        (Principal::ApiKey(k), false) => Some(k.owner.clone().unwrap_or_default()),
    };
    Ok(Json(state.store.api_keys(owner.as_deref()).await?.iter().map(key_view).collect()))
}

/// Mint a key with a subset of my permissions, within my scope.
#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", request_body = ApiKeyCreate,
    responses((status = 201, body = ApiKeyCreated), (status = 403, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ApiKeyCreate>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let (owner, _) = session_of(&caller)?;
    let owner = owner.to_owned();
    let name = palisade_core::validate::required_text("name", &body.name, 128)?;
    let scopes = PermissionSet::parse(&body.scopes)?;
    if scopes == PermissionSet::default() {
        return Err(palisade_core::InvalidField::new("scopes", "name at least one permission").into());
    }
    let scope = Scope { groups: body.groups, regions: body.regions };
    if !caller.authority.can_delegate(scopes, &scope) {
        let ctx = caller.audit();
        let after = serde_json::json!({ "scopes": scopes.names(), "groups": scope.groups, "regions": scope.regions });
        state.store.record(ctx, "apikey.create_denied", format!("user:{owner}"), Some(after)).await?;
        state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: "key_escalation".into() }).inc();
        return Err(ApiError::forbidden("a key cannot carry permissions or reach devices beyond its creator's"));
    }
    let expires_ms = body.expires_in_days.map(|d| now_ms().saturating_add(i64::from(d) * 86_400_000));
    let authority = KeyAuthority::Scoped { owner, scopes, scope };
    let key = state.store.create_api_key(name, authority, expires_ms, caller.audit()).await?;
    let info = state.store.api_key(&key.id).await?.ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { key: key.key.to_string(), info: key_view(&info) })))
}

/// Revoke a key (mine, or anyone's with `users.manage`).
#[utoipa::path(post, path = "/api/v1/apikeys/{id}/revoke", tag = "apikeys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(_body): OptionalJson<palisade_proto::ActionRequest>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let key = state.store.api_key(&id).await?.ok_or_else(|| ApiError::not_found("API key not found"))?;
    let mine = match &caller.principal {
        Principal::User { id, .. } => key.owner.as_deref() == Some(id.as_str()),
        Principal::ApiKey(k) => k.id == key.id,
    };
    if !mine && !caller.can(palisade_core::Permission::UsersManage) {
        return Err(ApiError::not_found("API key not found"));
    }
    state.store.revoke_api_key(id.clone(), caller.audit()).await?;
    let key = state.store.api_key(&id).await?.ok_or_else(ApiError::internal)?;
    Ok(Json(key_view(&key)))
}
