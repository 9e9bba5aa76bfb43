//! The one mapping from every failure to an HTTP answer: `{"error": {"code", "message"}}`.
//!
//! What the user reads is kept apart from what the log gets: internal failures answer a
//! generic message and log the detail.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_proto::{ErrorBody, ErrorDetail, RowErrorView};
use palisade_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub allowed: Option<Vec<String>>,
    pub rows: Option<Vec<RowErrorView>>,
    /// The request field at fault, when one is (the console shows the message next to it).
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), allowed: None, rows: None, field: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the details")
    }
}

impl From<palisade_core::InvalidField> for ApiError {
    fn from(e: palisade_core::InvalidField) -> Self {
        let message = e.to_string();
        Self { field: Some(e.field), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message) }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Invalid(f) => f.into(),
            StoreError::IllegalTransition(t) => Self {
                allowed: Some(t.allowed.iter().map(|s| s.as_str().to_owned()).collect()),
                ..Self::new(StatusCode::CONFLICT, "illegal_transition", t.to_string())
            },
            StoreError::ImportRejected(rows) => Self {
                rows: Some(
                    rows.into_iter().map(|r| RowErrorView { row: r.row, field: r.field, message: r.message }).collect(),
                ),
                ..Self::new(StatusCode::CONFLICT, "import_rejected", "import refused; nothing was imported")
            },
            other => {
                tracing::error!(error = %other, "request failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                allowed: self.allowed,
                rows: self.rows,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
