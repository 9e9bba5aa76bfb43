//! Authentication and authorization of every API request, before any handler runs: find the
//! route's policy, identify the caller (bearer key or session cookie), apply the policy, check
//! CSRF on cookie-authenticated changes. Denials are counted, and audited when sensitive.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use palisade_store::apikeys::PresentedKey;
use zeroize::Zeroizing;

use super::error::ApiError;
use super::extract::{Caller, PeerAddr, Principal};
use super::policy::{self, Policy};
use crate::auth::{self, SESSION_COOKIE};
use crate::{AppState, now_ms};

pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    if !route.starts_with("/api/") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let Some(policy) = policy::lookup(method.as_str(), &route) else {
        if policy::POLICIES.iter().any(|(_, p, _)| *p == route) {
            return next.run(req).await; // another method of a known route: the router answers 405
        }
        tracing::error!(%method, %route, "route has no access policy; refused");
        return ApiError::forbidden("this route has no access policy").into_response();
    };
    let source_ip = req.extensions().get::<PeerAddr>().map(|p| p.0.ip().to_string());
    let caller = match authenticate(&state, req.headers(), source_ip).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&state, policy, caller.as_ref(), &method, &route).await {
        return e.into_response();
    }
    if let Some(c) = &caller {
        if let Principal::User { session_id, .. } = &c.principal
            && !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        {
            let presented = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !auth::csrf_matches(session_id, presented) {
                state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: "csrf".into() }).inc();
                return ApiError::forbidden("missing or wrong X-CSRF-Token header (see the sign-in response)")
                    .into_response();
            }
        }
        req.extensions_mut().insert(c.clone());
    }
    next.run(req).await
}

async fn authorize(
    state: &AppState,
    policy: Policy,
    caller: Option<&Caller>,
    method: &Method,
    route: &str,
) -> Result<(), ApiError> {
    let deny = |reason: &str| {
        state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: reason.to_owned() }).inc();
    };
    let caller = match (policy, caller) {
        (Policy::Public, _) => return Ok(()),
        (_, None) => {
            deny("unauthenticated");
            return Err(ApiError::unauthorized(
                "authentication required: send Authorization: Bearer <api key> or sign in",
            ));
        }
        (_, Some(c)) => c,
    };
    if policy != Policy::Session
        && let Some(why) = caller.restricted()
    {
        deny(why);
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            why,
            "finish setting up the account first (change the initial password, enrol MFA)",
        ));
    }
    if let Policy::Permission(p) = policy
        && !caller.can(p)
    {
        deny(p.as_str());
        if p.is_sensitive() {
            let after = serde_json::json!({ "permission": p.as_str(), "method": method.as_str(), "route": route });
            if let Err(e) = state.store.record(caller.audit(), "access.denied", route.to_owned(), Some(after)).await {
                tracing::error!(error = %e, "cannot audit a denial");
            }
        }
        return Err(ApiError::forbidden(format!("this caller does not have the permission {p}")));
    }
    Ok(())
}

fn session_cookie(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == SESSION_COOKIE && !v.is_empty() && v.len() <= 128).then(|| Zeroizing::new(v.to_owned()))
    })
}

/// Identifies the caller. `Ok(None)`: no credentials at all.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    source_ip: Option<String>,
) -> Result<Option<Caller>, ApiError> {
    let now = now_ms();
    if let Some(header) = headers.get(AUTHORIZATION) {
        let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")));
        let refused = |state: &AppState| {
            state.metrics.auth_failures.inc();
            ApiError::unauthorized("invalid, expired or revoked API key")
        };
        let Some(token) = token.map(str::trim) else {
            state.metrics.auth_failures.inc();
            return Err(ApiError::unauthorized("the Authorization header must be: Bearer <api key>"));
        };
        let Some(key) = state.store.authenticate_api_key(&PresentedKey::new(token), now).await? else {
            tracing::info!(source_ip = source_ip.as_deref().unwrap_or("-"), "refused an invalid API key");
            return Err(refused(state));
        };
        // A user's key is worth no more than its owner: disabled owners, or owners who lost the
        // rights the key carries, make it useless.
        if let Some(owner) = &key.owner {
            let user = match state.store.user(owner).await {
                Ok(u) => u,
                Err(palisade_store::StoreError::NotFound(_)) => return Err(refused(state)),
                Err(e) => return Err(e.into()),
            };
            let roles = state.store.custom_roles().await?;
            if user.status != palisade_store::users::UserStatus::Active
                || !auth::user_authority(&user, &roles).can_delegate(key.scopes, &key.scope)
            {
                return Err(refused(state));
            }
        }
        if let Err(e) = state.store.touch_api_key(&key, now, source_ip.clone()).await {
            tracing::warn!(error = %e, "cannot record an API key's use");
        }
        let authority = palisade_core::Authority::new(vec![key.grant()]);
        return Ok(Some(Caller { principal: Principal::ApiKey(key), authority, source_ip }));
    }
    let Some(session_id) = session_cookie(headers) else { return Ok(None) };
    let hash = auth::sha256(session_id.as_bytes());
    let expired =
        || ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "session_expired", "the session ended; sign in again");
    let Some(session) = state.store.session(&hash).await? else { return Err(expired()) };
    let cfg = &state.auth.config;
    let idle_ms = i64::try_from(cfg.session_idle_secs).unwrap_or(i64::MAX / 2).saturating_mul(1000);
    let absolute_ms = i64::try_from(cfg.session_absolute_secs).unwrap_or(i64::MAX / 2).saturating_mul(1000);
    if now - session.last_seen_ms > idle_ms || now - session.created_ms > absolute_ms {
        state.store.delete_session(hash).await?;
        return Err(expired());
    }
    let user = state.store.user(&session.user_id).await?;
    if user.status != palisade_store::users::UserStatus::Active {
        state.store.delete_session(hash).await?;
        return Err(expired());
    }
    if now - session.last_seen_ms > 60_000 {
        state.store.touch_session(hash, now).await?;
    }
    let roles = state.store.custom_roles().await?;
    let restricted = if user.must_change_password {
        Some("password_change_required")
    } else if state.auth.mfa_required(&user, &roles) && !user.mfa_enabled() {
        Some("mfa_enrollment_required")
    } else {
        None
    };
    let authority = auth::user_authority(&user, &roles);
    Ok(Some(Caller {
        principal: Principal::User { id: user.id.clone(), username: user.username.clone(), session_id, restricted },
        authority,
        source_ip,
    }))
}
