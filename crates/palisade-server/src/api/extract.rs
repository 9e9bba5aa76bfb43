//! Request extractors that answer bad input in our error format: JSON bodies (bounded),
//! query strings, and the authenticated caller.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use palisade_core::audit::Actor;
use palisade_core::{Authority, Permission};
use palisade_store::apikeys::ApiKeyInfo;
use palisade_store::audit::AuditContext;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use zeroize::Zeroizing;

use crate::now_ms;

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 1 << 20;
/// Largest CSV import accepted.
pub const MAX_IMPORT_BYTES: usize = 32 << 20;

/// The TCP peer of the connection, inserted by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client certificate chain the TLS handshake verified (device listener), DER.
#[derive(Debug, Clone)]
pub struct PeerCerts(pub std::sync::Arc<Vec<Vec<u8>>>);

/// Reads a whole body up to `limit` bytes. A larger body is refused with 413; what follows is
/// read and dropped for a short while (bounded), so that the client sees the answer instead of
/// a reset connection.
pub async fn body_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request("bad_body", format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > limit {
            let mut drained = buf.len() + data.len();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            while drained < limit.saturating_mul(4) {
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Ok(Some(Ok(f))) => drained += f.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// A JSON body of at most 1 MiB; unknown fields, bad values and malformed JSON are 400s that
/// say what and where.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let json = require_json(req.headers());
        let bytes = body_bytes(req, MAX_JSON_BYTES).await?;
        json?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: empty means the type's default.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let json = if req.headers().contains_key(CONTENT_TYPE) { require_json(req.headers()) } else { Ok(()) };
        let bytes = body_bytes(req, MAX_JSON_BYTES).await?;
        json?;
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

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    ApiKey(ApiKeyInfo),
    User {
        id: String,
        username: String,
        /// The session cookie's value (needed for CSRF checks and logout); never logged.
        session_id: Zeroizing<String>,
        /// Set while the user must change the initial password or enrol MFA first.
        restricted: Option<&'static str>,
    },
}

/// An authenticated caller, placed in the request by [`super::guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub authority: Authority,
    pub source_ip: Option<String>,
}

impl Caller {
    pub fn can(&self, p: Permission) -> bool {
        self.authority.allows(p)
    }

    /// Whether `p` is granted for a device in `group`/`region`.
    pub fn can_on(&self, p: Permission, group: Option<&str>, region: Option<&str>) -> bool {
        self.authority.allows_on(p, group, region)
    }

    /// Refuses (403) unless the caller holds `p` somewhere.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.can(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this caller does not have the permission {p}")))
        }
    }

    pub fn restricted(&self) -> Option<&'static str> {
        match &self.principal {
            Principal::User { restricted, .. } => *restricted,
            Principal::ApiKey(_) => None,
        }
    }

    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::ApiKey(k) => Actor::ApiKey { id: k.id.clone(), name: k.name.clone() },
            Principal::User { id, username, .. } => Actor::User { id: id.clone(), username: username.clone() },
        }
    }

    /// The audit context of a change made by this caller, now.
    pub fn audit(&self) -> AuditContext {
        AuditContext { actor: self.actor(), source_ip: self.source_ip.clone(), at_ms: now_ms() }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| ApiError::unauthorized("authentication required"))
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
