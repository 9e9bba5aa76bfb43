//! `/ui/keys`: API keys. Everyone sees and manages their own; holders of `users.manage` see
//! everyone's (as `api::access::list_keys` decides). A new key's secret is shown once, on the
//! answer to the form that made it.

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_core::Permission;
use palisade_proto::{ActionRequest, ApiKeyCreate, ApiKeyView};
use serde::Deserialize;

use super::{FormData, caller_of, list, no_store, scope_text};
use crate::api::access;
use crate::api::convert::parse_rfc3339;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, Caller, OptionalJson, Principal};
use crate::console::view::{Ctx, FieldErrors, Page, render, rfc_time};
use crate::{AppState, now_ms};

#[derive(Debug)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    /// The owner's username (or id when unknown), for administrators' view.
    pub owner: String,
    pub permissions: Vec<String>,
    /// "groups: a · regions: eu", or empty for everywhere.
    pub scope: String,
    pub created: String,
    pub last_used: Option<String>,
    pub last_used_ip: Option<String>,
    pub expires: Option<String>,
    pub revoked: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

/// What the create form held.
#[derive(Debug, Default)]
pub struct KeyForm {
    pub name: String,
    pub permissions: Vec<String>,
    pub groups: String,
    pub regions: String,
    pub expires_in_days: String,
}

impl KeyForm {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Whether this lifetime is the one chosen.
    pub fn expires_after(&self, days: &str) -> bool {
        self.expires_in_days == days
    }
}

/// A key just made: its secret is on this page only.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub secret: String,
}

/// The lifetimes offered: (days, label); empty days is no expiry.
pub const EXPIRY_CHOICES: &[(&str, &str)] =
    &[("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")];
const DEFAULT_EXPIRY_DAYS: &str = "90";

#[derive(Template)]
#[template(path = "admin_keys.html")]
struct KeysPage {
    ctx: Ctx,
    keys: Vec<KeyRow>,
    /// Everyone's keys are listed (the caller manages users).
    all: bool,
    /// Permissions the caller may delegate.
    offered: Vec<&'static str>,
    expiry_choices: &'static [(&'static str, &'static str)],
    form: KeyForm,
    errors: FieldErrors,
    action_errors: FieldErrors,
    created: Option<NewKey>,
    notice: Option<&'static str>,
}

/// Whether a key works: revoked and expired keys do not.
fn key_state(revoked: bool, expires_ms: Option<i64>, now: i64) -> &'static str {
    match (revoked, expires_ms) {
        (true, _) => "revoked",
        (false, Some(t)) if t <= now => "expired",
        _ => "active",
    }
}

fn key_row(k: ApiKeyView, names: &HashMap<String, String>, now: i64) -> KeyRow {
    let expires_ms = k.expires_at.as_deref().and_then(|t| parse_rfc3339("expires_at", t).ok());
    KeyRow {
        state: key_state(k.revoked_at.is_some(), expires_ms, now),
        owner: match &k.owner {
            Some(id) => names.get(id).cloned().unwrap_or_else(|| id.clone()),
            None => k.role.as_deref().map_or_else(|| "—".to_owned(), |r| format!("(role {r})")),
        },
        permissions: k.scopes,
        scope: scope_text(&k.groups, &k.regions),
        created: rfc_time(&k.created_at),
        last_used: k.last_used_at.as_deref().map(rfc_time),
        last_used_ip: k.last_used_ip,
        expires: k.expires_at.as_deref().map(rfc_time),
        revoked: k.revoked_at.as_deref().map(rfc_time),
        id: k.id,
        name: k.name,
    }
}

impl KeysPage {
    async fn load(state: &AppState, ctx: Ctx) -> Result<Self, Page> {
        let caller = caller_of(&ctx)?;
        let all = caller.can(Permission::UsersManage);
        let Json(keys) = access::list_keys(State(state.clone()), caller.clone()).await?;
        let mut names = HashMap::new();
        if all {
            names = state.store.users().await?.into_iter().map(|u| (u.id, u.username)).collect();
        } else if let Principal::User { id, username, .. } = &caller.principal {
            names.insert(id.clone(), username.clone());
        }
        let now = now_ms();
        let mut keys: Vec<KeyRow> = keys.into_iter().map(|k| key_row(k, &names, now)).collect();
        // Working keys first, newest first within each state.
        keys.sort_by(|a, b| (a.state != "active").cmp(&(b.state != "active")).then_with(|| b.created.cmp(&a.created)));
        Ok(Self {
            keys,
            all,
            offered: caller.authority.permissions().names(),
            expiry_choices: EXPIRY_CHOICES,
            form: KeyForm { expires_in_days: DEFAULT_EXPIRY_DAYS.to_owned(), ..KeyForm::default() },
            errors: FieldErrors::none(),
            action_errors: FieldErrors::none(),
            created: None,
            notice: None,
            ctx: ctx.at("keys"),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

pub async fn page(State(state): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Result<Response, Page> {
    let mut page = KeysPage::load(&state, ctx).await?;
    if q.done.as_deref() == Some("revoked") {
        page.notice = Some("The key is revoked: requests made with it are refused from now on.");
    }
    Ok(render(StatusCode::OK, &page))
}

/// The lifetime field: empty is no expiry; otherwise whole days.
fn expiry(text: &str) -> Result<Option<u32>, FieldErrors> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(d) if d >= 1 => Ok(Some(d)),
        _ => Err(FieldErrors::field("expires_in_days", "Give a number of days (1 or more), or choose Never.")),
    }
}

fn create_errors(e: &ApiError) -> FieldErrors {
    FieldErrors::from_api(e, &[("scopes", "permissions"), ("permission", "permissions")])
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let f = FormData(pairs);
    let form = KeyForm {
        name: f.text("name"),
        permissions: f.all("permission"),
        groups: f.text("groups"),
        regions: f.text("regions"),
        expires_in_days: f.text("expires_in_days"),
    };
    let mut page = KeysPage::load(&state, ctx).await?;
    let expires_in_days = match expiry(&form.expires_in_days) {
        Ok(d) => d,
        Err(errors) => {
            page.errors = errors;
            page.form = form;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let body = ApiKeyCreate {
        name: form.name.clone(),
        scopes: form.permissions.clone(),
        groups: list(&form.groups),
        regions: list(&form.regions),
        expires_in_days,
    };
    match access::create_key(State(state.clone()), caller, ApiJson(body)).await {
        Ok((_, Json(created))) => {
            let mut page = KeysPage::load(&state, page.ctx).await?;
            page.created = Some(NewKey { name: created.info.name, secret: created.key });
            Ok(no_store(render(StatusCode::OK, &page)))
        }
        Err(e) => {
            page.errors = create_errors(&e);
            page.form = form;
            Ok(render(e.status, &page))
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Page> {
    match access::revoke_key(State(state.clone()), caller, Path(id), OptionalJson(ActionRequest::default())).await {
        Ok(_) => Ok(Redirect::to("/ui/keys?done=revoked").into_response()),
        Err(e) => {
            let mut page = KeysPage::load(&state, ctx).await?;
            page.action_errors = FieldErrors::from_api(&e, &[]);
            Ok(render(e.status, &page))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_no_longer_work_say_why() {
        assert_eq!(key_state(false, None, 10), "active");
        assert_eq!(key_state(false, Some(11), 10), "active");
        assert_eq!(key_state(false, Some(10), 10), "expired");
        assert_eq!(key_state(true, Some(11), 10), "revoked");
    }

    #[test]
    fn lifetimes_are_whole_days_or_none() {
        assert!(matches!(expiry(""), Ok(None)));
        assert!(matches!(expiry("30"), Ok(Some(30))));
        for bad in ["0", "-1", "soon", "1.5"] {
            assert!(expiry(bad).err().is_some_and(|e| e.get("expires_in_days").is_some()), "{bad}");
        }
    }

    #[test]
    fn refusals_land_on_the_permissions() {
        let e: ApiError = palisade_core::InvalidField::new("scopes", "name at least one permission").into();
        assert_eq!(create_errors(&e).get("permissions"), Some("Name at least one permission"));
        let e = ApiError::forbidden("a key cannot carry permissions or reach devices beyond its creator's");
        assert!(create_errors(&e).general.is_some());
    }

    #[test]
    fn rows_name_the_owner() {
        let view = ApiKeyView {
            id: "k1".into(),
            name: "ci".into(),
            owner: Some("u1".into()),
            role: None,
            scopes: vec!["devices.read".into()],
            groups: vec!["north".into()],
            regions: vec![],
            created_at: "2026-01-02T03:04:05Z".into(),
            expires_at: Some("2026-01-03T00:00:00Z".into()),
            revoked_at: None,
            last_used_at: None,
            last_used_ip: None,
        };
        let names = HashMap::from([("u1".to_owned(), "alice".to_owned())]);
        let row = key_row(view, &names, 0);
        assert_eq!((row.owner.as_str(), row.scope.as_str(), row.state), ("alice", "groups: north", "active"));
        assert_eq!(row.created, "2026-01-02 03:04:05 UTC");
    }
}
