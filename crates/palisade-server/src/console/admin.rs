//! The administration pages: people and roles (`/ui/users`), API keys (`/ui/keys`), security
//! profiles (`/ui/profiles`), the PKI (`/ui/pki`), firmware in the fleet (`/ui/firmware`) and
//! where devices connect (`/ui/network`).
//!
//! Like every console page, a change goes through the API's own handler (`api::access`,
//! `api::alerts`, `api::identity`), so validation, privilege checks and audit entries are the
//! API's; a refused form is shown again with the input kept and the reason next to its field.

mod fleet;
mod keys;
mod pki;
mod profiles;
mod users;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use palisade_core::Permission::{FirmwarePublish, NetworkManage, PkiRevoke, RulesManage, UsersManage};

use super::perm;
use super::view::{Ctx, Page};
use crate::AppState;
use crate::api::extract::Caller;
use crate::api::policy::Policy::{self, Authenticated};

/// Who may open or post what (see `super::PAGES`).
pub const PAGES: &[(&str, &str, Policy)] = &[
    ("GET", "/ui/users", perm(UsersManage)),
    ("POST", "/ui/users", perm(UsersManage)),
    ("GET", "/ui/users/{id}", perm(UsersManage)),
    ("POST", "/ui/users/{id}", perm(UsersManage)),
    ("POST", "/ui/users/{id}/status", perm(UsersManage)),
    ("POST", "/ui/users/{id}/unlock", perm(UsersManage)),
    ("POST", "/ui/users/{id}/mfa-reset", perm(UsersManage)),
    ("POST", "/ui/users/{id}/password-reset", perm(UsersManage)),
    ("POST", "/ui/roles", perm(UsersManage)),
    // Everyone manages their own keys; `api::access` decides whose keys a caller sees and may revoke.
    ("GET", "/ui/keys", Authenticated),
    ("POST", "/ui/keys", Authenticated),
    ("POST", "/ui/keys/{id}/revoke", Authenticated),
    ("GET", "/ui/profiles", perm(RulesManage)),
    ("POST", "/ui/profiles", perm(RulesManage)),
    ("GET", "/ui/profiles/new", perm(RulesManage)),
    ("GET", "/ui/profiles/{name}", perm(RulesManage)),
    ("POST", "/ui/profiles/{name}/delete", perm(RulesManage)),
    ("GET", "/ui/pki", perm(PkiRevoke)),
    ("POST", "/ui/pki/revoke", perm(PkiRevoke)),
    ("GET", "/ui/firmware", perm(FirmwarePublish)),
    ("GET", "/ui/network", perm(NetworkManage)),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/users", get(users::page).post(users::create))
        .route("/ui/users/{id}", get(users::edit_page).post(users::edit))
        .route("/ui/users/{id}/status", post(users::set_status))
        .route("/ui/users/{id}/unlock", post(users::unlock))
        .route("/ui/users/{id}/mfa-reset", post(users::reset_mfa))
        .route("/ui/users/{id}/password-reset", post(users::reset_password))
        .route("/ui/roles", post(users::create_role))
        .route("/ui/keys", get(keys::page).post(keys::create))
        .route("/ui/keys/{id}/revoke", post(keys::revoke))
        .route("/ui/profiles", get(profiles::page).post(profiles::save))
        .route("/ui/profiles/new", get(profiles::new_page))
        .route("/ui/profiles/{name}", get(profiles::edit_page))
        .route("/ui/profiles/{name}/delete", post(profiles::delete))
        .route("/ui/pki", get(pki::page))
        .route("/ui/pki/revoke", post(pki::revoke))
        .route("/ui/firmware", get(fleet::firmware))
        .route("/ui/network", get(fleet::network))
}

/// A submitted form as its (name, value) pairs in order: checkboxes and repeated fields arrive
/// as several pairs of one name.
#[derive(Debug, Default)]
struct FormData(Vec<(String, String)>);

impl FormData {
    /// The first value of a field, trimmed; empty when absent.
    fn text(&self, name: &str) -> String {
        self.0.iter().find(|(k, _)| k == name).map_or_else(String::new, |(_, v)| v.trim().to_owned())
    }

    /// The first value of a field exactly as sent (a JSON text keeps its layout).
    fn raw(&self, name: &str) -> String {
        self.0.iter().find(|(k, _)| k == name).map_or_else(String::new, |(_, v)| v.clone())
    }

    /// Every non-empty value of a field (checked checkboxes).
    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_owned()).collect()
    }

    fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

/// A free-text list ("north, south" or one per line) as its items.
fn list(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Where a role or key applies: "groups: a, b · regions: eu", or empty for everywhere.
fn scope_text(groups: &[String], regions: &[String]) -> String {
    let mut parts = Vec::new();
    if !groups.is_empty() {
        parts.push(format!("groups: {}", groups.join(", ")));
    }
    if !regions.is_empty() {
        parts.push(format!("regions: {}", regions.join(", ")));
    }
    parts.join(" · ")
}

/// An API message as a sentence of the page.
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// Text that may be empty: `None` when it is.
fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The signed-in caller of a page behind the guard.
fn caller_of(ctx: &Ctx) -> Result<Caller, Page> {
    ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))
}

/// A page that shows a secret once: the browser must not keep it (history, back button, cache).
fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn form_fields_read_as_sent() {
        let f = form(&[("name", "  a b "), ("p", "x"), ("p", ""), ("p", " y "), ("json", "{\n  \"a\": 1\n}\n")]);
        assert_eq!(f.text("name"), "a b");
        assert_eq!(f.text("missing"), "");
        assert_eq!(f.all("p"), ["x", "y"]);
        assert!(f.checked("p") && !f.checked("missing"));
        assert_eq!(f.raw("json"), "{\n  \"a\": 1\n}\n");
    }

    #[test]
    fn lists_split_on_commas_and_lines() {
        assert_eq!(list(" north, south ,,\nwest\n"), ["north", "south", "west"]);
        assert!(list("  ").is_empty());
        assert_eq!(optional("  x "), Some("x".to_owned()));
        assert_eq!(optional("   "), None);
    }

    #[test]
    fn scopes_read_plainly() {
        assert_eq!(scope_text(&[], &[]), "");
        assert_eq!(scope_text(&["a".into(), "b".into()], &["eu".into()]), "groups: a, b · regions: eu");
    }

    #[test]
    fn every_admin_route_has_a_policy() {
        // Each route of `routes()` must be in PAGES with its method (the guard refuses others).
        let posts = [
            "/ui/users",
            "/ui/users/{id}",
            "/ui/users/{id}/status",
            "/ui/users/{id}/unlock",
            "/ui/users/{id}/mfa-reset",
            "/ui/users/{id}/password-reset",
            "/ui/roles",
            "/ui/keys",
            "/ui/keys/{id}/revoke",
            "/ui/profiles",
            "/ui/profiles/{name}/delete",
            "/ui/pki/revoke",
        ];
        for p in posts {
            assert!(PAGES.iter().any(|(m, r, _)| *m == "POST" && *r == p), "POST {p}");
        }
        let nav = [
            ("/ui/users", perm(UsersManage)),
            ("/ui/keys", Authenticated),
            ("/ui/profiles", perm(RulesManage)),
            ("/ui/pki", perm(PkiRevoke)),
            ("/ui/firmware", perm(FirmwarePublish)),
            ("/ui/network", perm(NetworkManage)),
        ];
        for (p, policy) in nav {
            assert!(PAGES.iter().any(|(m, r, pol)| *m == "GET" && *r == p && *pol == policy), "GET {p}");
        }
    }
}
