//! The web console: server-rendered pages under `/ui/` (askama templates in
//! `palisade-server/templates/`, assets in `palisade-server/assets/`, all compiled into the
//! binary), plain HTML forms, and one small script for the live alert feed.
//!
//! Every page passes [`guard`] first, like every API route passes `api::guard`: the route's
//! policy comes from [`PAGES`] (a page missing from the table is refused), the caller from the
//! session cookie, and a form's CSRF token (the hidden field `csrf`) is checked before any
//! handler runs. Handlers change things only by calling the API's own handlers, so validation,
//! scope checks and audit entries are the API's, and a refused form changes nothing.

pub mod account;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod devices;
pub mod overview;
pub mod plot;
pub mod view;
pub mod vulns;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use palisade_core::Permission::{self, *};

use crate::AppState;
use crate::api::extract::{Caller, PeerAddr, body_bytes};
use crate::api::policy::Policy;
use crate::auth;
pub use view::{Ctx, FieldErrors, Page};

/// The console's Content-Security-Policy: nothing but this origin's own scripts, styles and
/// images; no inline script or style; no frames; forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 256 << 10;

use Policy::{Authenticated, Public, Session};
pub(crate) const fn perm(p: Permission) -> Policy {
    Policy::Permission(p)
}

/// Who may open or post what. Handlers may check more (a device's scope, for one).
pub const PAGES: &[(&str, &str, Policy)] = &[
    ("GET", "/ui", Public),
    ("GET", "/ui/static/{file}", Public),
    ("GET", "/ui/login", Public),
    ("POST", "/ui/login", Public),
    ("POST", "/ui/logout", Session),
    ("GET", "/ui/account", Session),
    ("POST", "/ui/account/password", Session),
    ("POST", "/ui/account/mfa", Session),
    ("POST", "/ui/account/mfa/confirm", Session),
    ("GET", "/ui/", Authenticated),
];

fn lookup(method: &Method, route: &str) -> Option<Policy> {
    all_pages().find(|(m, p, _)| *m == method.as_str() && *p == route).map(|(_, _, policy)| *policy)
}

/// Every page's policy: this module's and each page module's.
fn all_pages() -> impl Iterator<Item = &'static (&'static str, &'static str, Policy)> {
    PAGES.iter().chain(devices::PAGES).chain(alerts::PAGES).chain(audit::PAGES).chain(admin::PAGES).chain(vulns::PAGES)
}

/// The console's routes (merged into the console listener's router).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/static/{file}", get(asset))
        .route("/ui/login", get(account::login_page).post(account::login))
        .route("/ui/logout", post(account::logout))
        .route("/ui/account", get(account::page))
        .route("/ui/account/password", post(account::change_password))
        .route("/ui/account/mfa", post(account::mfa_enroll))
        .route("/ui/account/mfa/confirm", post(account::mfa_confirm))
        .route("/ui/", get(overview::page))
        .merge(devices::routes())
        .merge(alerts::routes())
        .merge(audit::routes())
        .merge(admin::routes())
        .merge(vulns::routes())
        .layer(middleware::from_fn_with_state(state, guard))
}

/// Authentication, authorization and CSRF for every console route, then the security headers.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = check(&state, req, next).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    resp
}

async fn check(state: &AppState, mut req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    let Some(policy) = lookup(&method, &route) else {
        tracing::error!(%method, %route, "console page has no access policy; refused");
        return Page::error(StatusCode::FORBIDDEN, "This page has no access policy.").into_response();
    };
    let source_ip = req.extensions().get::<PeerAddr>().map(|p| p.0.ip().to_string());
    // An expired or unknown session is the same as none here: the sign-in page follows.
    let caller = crate::api::guard::authenticate(state, req.headers(), source_ip).await.ok().flatten();
    let caller = match (policy, caller) {
        (Public, caller) => {
            if let Some(c) = caller {
                req.extensions_mut().insert(c);
            }
            return next.run(req).await;
        }
        (_, None) => {
            if method == Method::GET {
                let next_page = req.uri().path_and_query().map_or("/ui/", |p| p.as_str());
                let to = format!("/ui/login?next={}", view::url_encode(next_page));
                return Redirect::to(&to).into_response();
            }
            return Page::error(StatusCode::UNAUTHORIZED, "Your session ended. Sign in again.").into_response();
        }
        (_, Some(c)) => c,
    };
    if !matches!(caller.principal, crate::api::extract::Principal::User { .. }) {
        return Page::error(StatusCode::FORBIDDEN, "The console is for signed-in people, not API keys.")
            .into_response();
    }
    if policy != Session && caller.restricted().is_some() {
        return Redirect::to("/ui/account").into_response();
    }
    if let Policy::Permission(p) = policy
        && !caller.can(p)
    {
        state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: p.as_str().to_owned() }).inc();
        if p.is_sensitive() {
            let after = serde_json::json!({ "permission": p.as_str(), "method": method.as_str(), "route": route });
            if let Err(e) = state.store.record(caller.audit(), "access.denied", route.clone(), Some(after)).await {
                tracing::error!(error = %e, "cannot audit a denial");
            }
        }
        return Page::error(StatusCode::FORBIDDEN, "Your role does not allow this page.").into_response();
    }
    if method == Method::POST {
        let (parts, body) = req.into_parts();
        let bytes = match body_bytes(Request::from_parts(parts.clone(), body), MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(e) => return Page::error(e.status, &e.message).into_response(),
        };
        let presented = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
        let session_id = match &caller.principal {
            crate::api::extract::Principal::User { session_id, .. } => session_id.clone(),
            crate::api::extract::Principal::ApiKey(_) => return Page::error(StatusCode::FORBIDDEN, "").into_response(),
        };
        if !presented.is_some_and(|t| auth::csrf_matches(&session_id, &t)) {
            state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: "csrf".into() }).inc();
            return Page::error(
                StatusCode::FORBIDDEN,
                "This form is stale or did not come from this console (CSRF check). Reload the page and try again.",
            )
            .into_response();
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The stylesheet and the script, compiled in.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (include_str!("../../assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("../../assets/console.js"), "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// The caller, for handlers behind [`guard`].
pub fn caller_of(parts: &axum::http::request::Parts) -> Option<Caller> {
    parts.extensions.get::<Caller>().cloned()
}

/// The console's navigation: (key, label, link, what the caller needs to see it).
pub const NAV: &[(&str, &str, &str, Option<Permission>)] = &[
    ("overview", "Overview", "/ui/", None),
    ("devices", "Devices", "/ui/devices", Some(DevicesRead)),
    ("alerts", "Alerts", "/ui/alerts", Some(AlertsRead)),
    ("profiles", "Profiles", "/ui/profiles", Some(RulesManage)),
    ("vulnerabilities", "Vulnerabilities", "/ui/vulnerabilities", Some(AlertsRead)),
    ("audit", "Audit log", "/ui/audit", Some(AuditRead)),
    ("pki", "PKI", "/ui/pki", Some(PkiRevoke)),
    ("firmware", "Firmware", "/ui/firmware", Some(FirmwarePublish)),
    ("network", "Network", "/ui/network", Some(NetworkManage)),
    ("users", "Users", "/ui/users", Some(UsersManage)),
    ("keys", "API keys", "/ui/keys", None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_a_policy_and_every_link_a_page() {
        for (key, _, href, _) in NAV {
            assert!(lookup(&Method::GET, href).is_some(), "the {key} link leads to no page");
        }
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in all_pages() {
            assert!(seen.insert((m, p)), "{m} {p} listed twice");
            assert!(p.starts_with("/ui"), "{p}");
        }
    }
}
