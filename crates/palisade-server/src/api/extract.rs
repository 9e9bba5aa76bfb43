//! Request extractors that answer bad input in our error format: JSON bodies (bounded),
//! query strings, and the authenticated caller.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use palisade_core::Permission;
use palisade_core::audit::Actor;
use palisade_store::apikeys::{ApiKeyInfo, PresentedKey};
use palisade_store::audit::AuditContext;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::{AppState, now_ms};

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 1 << 20;
/// Largest CSV import accepted.
pub const MAX_IMPORT_BYTES: usize = 32 << 20;

/// The TCP peer of the connection, inserted by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Reads a whole body up to `limit` bytes.
pub async fn body_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| {
        let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {limit} bytes"),
            )
        } else {
            ApiError::bad_request("bad_body", format!("cannot read the request body: {e}"))
        }
    })
}

/// A JSON body of at most 1 MiB; unknown fields, bad values and malformed JSON are 400s that
/// say what and where.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let bytes = body_bytes(req, MAX_JSON_BYTES).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: empty means the type's default.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let has_type = req.headers().contains_key(CONTENT_TYPE);
        if has_type {
            require_json(req.headers())?;
        }
        let bytes = body_bytes(req, MAX_JSON_BYTES).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ))
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))
}

/// A query string; unknown parameters and bad values are 400s.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKeyInfo,
    pub source_ip: Option<String>,
}

impl Caller {
    pub fn can(&self, p: Permission) -> bool {
        self.key.role.allows(p)
    }

    /// Refuses (403) unless the caller's role holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.can(p) {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("role {} does not have the permission {p}", self.key.role),
            ))
        }
    }

    /// The audit context of a change made by this caller, now.
    pub fn audit(&self) -> AuditContext {
        AuditContext {
            actor: Actor::ApiKey { id: self.key.id.clone(), name: self.key.name.clone() },
            source_ip: self.source_ip.clone(),
            at_ms: now_ms(),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let source_ip = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip().to_string());
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            state.metrics.auth_failures.inc();
            return Err(ApiError::unauthorized("authentication required: send Authorization: Bearer <api key>"));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(token) = token else {
            state.metrics.auth_failures.inc();
            return Err(ApiError::unauthorized("the Authorization header must be: Bearer <api key>"));
        };
        match state.store.authenticate_api_key(&PresentedKey::new(token), now_ms()).await? {
            Some(key) => Ok(Caller { key, source_ip }),
            None => {
                state.metrics.auth_failures.inc();
                tracing::info!(source_ip = source_ip.as_deref().unwrap_or("-"), "refused an invalid API key");
                Err(ApiError::unauthorized("invalid, expired or revoked API key"))
            }
        }
    }
}

/// Default page size of listings.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size of listings.
pub const MAX_LIMIT: usize = 1000;

/// A listing's `limit` parameter: default 100, at most 1000.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request("invalid_query", format!("limit {n} is not between 1 and {MAX_LIMIT}"))),
    }
}
