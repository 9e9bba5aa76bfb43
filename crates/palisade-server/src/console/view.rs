//! What every page shares: the signed-in context (navigation, CSRF token), rendering, error
//! pages, field errors of a refused form, and formatting.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use palisade_core::Permission;

use super::NAV;
use crate::api::error::ApiError;
use crate::api::extract::{Caller, Principal};
use crate::auth;

/// One link of the navigation.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub key: &'static str,
    pub label: &'static str,
    pub href: &'static str,
}

/// The signed-in person as every page needs them: name, navigation, CSRF token, permissions.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub username: Option<String>,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    /// The navigation key of this page.
    pub active: &'static str,
    caller: Option<Caller>,
}

impl Ctx {
    /// Nobody signed in (the sign-in page).
    pub fn anonymous() -> Self {
        Self { username: None, csrf: String::new(), nav: Vec::new(), active: "", caller: None }
    }

    pub fn of(caller: &Caller) -> Self {
        let (username, csrf) = match &caller.principal {
            Principal::User { username, session_id, .. } => (Some(username.clone()), auth::csrf_token(session_id)),
            Principal::ApiKey(_) => (None, String::new()),
        };
        let restricted = caller.restricted().is_some();
        let nav = NAV
            .iter()
            .filter(|(_, _, _, need)| !restricted && need.is_none_or(|p| caller.can(p)))
            .map(|(key, label, href, _)| NavItem { key, label, href })
            .collect();
        Self { username, csrf, nav, active: "", caller: Some(caller.clone()) }
    }

    /// This page's place in the navigation.
    pub fn at(mut self, key: &'static str) -> Self {
        self.active = key;
        self
    }

    /// Whether the caller holds a permission (by its name, for templates: `ctx.may("alerts.ack")`).
    pub fn may(&self, permission: &str) -> bool {
        let Ok(p) = permission.parse::<Permission>() else {
            tracing::error!(permission, "a template asks for a permission that does not exist");
            return false;
        };
        self.caller.as_ref().is_some_and(|c| c.can(p))
    }

    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Page> {
        parts
            .extensions
            .get::<Caller>()
            .map(Ctx::of)
            .ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))
    }
}

/// Renders a template as an HTML answer.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error; the server log has the details\n").into_response()
        }
    }
}

/// An answer that is not the page asked for: a refusal or a failure, as a small page.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    ctx: Ctx,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl Page {
    pub fn error(status: StatusCode, message: &str) -> Self {
        Self { status, message: message.to_owned() }
    }
}

impl From<ApiError> for Page {
    fn from(e: ApiError) -> Self {
        Self { status: e.status, message: e.message }
    }
}

impl From<palisade_store::StoreError> for Page {
    fn from(e: palisade_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            ctx: Ctx::anonymous(),
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
        };
        render(self.status, &page)
    }
}

/// What was wrong with a submitted form: messages by field, and one for the whole form.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    pub fields: Vec<(String, String)>,
    pub general: Option<String>,
}

impl FieldErrors {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn field(name: &str, message: impl Into<String>) -> Self {
        Self { fields: vec![(name.to_owned(), message.into())], general: None }
    }

    pub fn general(message: impl Into<String>) -> Self {
        Self { fields: Vec::new(), general: Some(message.into()) }
    }

    /// The API's refusal, placed next to its field when it names one (`rename` maps the API's
    /// field names to the form's).
    pub fn from_api(e: &ApiError, rename: &[(&str, &str)]) -> Self {
        match &e.field {
            Some(f) => {
                let form_field = rename.iter().find(|(api, _)| api == f).map_or(f.as_str(), |(_, form)| form);
                let reason = e.message.strip_prefix(&format!("{f}: ")).unwrap_or(&e.message);
                Self::field(form_field, capitalise(reason))
            }
            None => Self::general(capitalise(&e.message)),
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// Percent-encodes a query parameter's value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local page to go to after signing in: only paths of the console, never another origin.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') && !n.contains("://") => n,
        _ => "/ui/",
    }
}

/// `2026-11-22 17:48 UTC`.
pub fn time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An RFC 3339 time from the API as [`time`] formats it (unparseable text is shown as is).
pub fn rfc_time(s: &str) -> String {
    crate::api::convert::parse_rfc3339("time", s).map_or_else(|_| s.to_owned(), time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_pages_stay_on_the_console() {
        assert_eq!(safe_next(Some("/ui/devices?state=active")), "/ui/devices?state=active");
        for bad in ["//evil.example/", "https://evil.example/", "/api/v1/devices", "/ui/\\evil", "javascript:x"] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn api_refusals_land_next_to_their_field() {
        let e: ApiError = palisade_core::InvalidField::new("password", "must be at least 12 characters").into();
        let f = FieldErrors::from_api(&e, &[("password", "new_password")]);
        assert_eq!(f.get("new_password"), Some("Must be at least 12 characters"));
        let e = ApiError::unauthorized("the current password is wrong");
        assert_eq!(FieldErrors::from_api(&e, &[]).general.as_deref(), Some("The current password is wrong"));
    }

    #[test]
    fn times_and_encoding() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(url_encode("/ui/a b?x=1&y"), "/ui/a%20b%3Fx%3D1%26y");
    }
}
