//! The audit log viewer: entries newest first with filters and paging, the hash chain's
//! verification, and the export. Everything is read through the API's own handlers
//! (`api::audit`), so the permission checks and validation are the API's.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use palisade_core::Permission;
use palisade_proto::{AuditEntryView, AuditPage};
use serde::Deserialize;

use super::alerts::{actor_name, actor_names, with_query};
use super::perm;
use super::view::{Ctx, FieldErrors, Page, render, rfc_time};
use crate::AppState;
use crate::api::audit::{self as api, AuditQuery};
use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, Caller};
use crate::api::policy::Policy;

/// Who may open or post what (see `super::PAGES`).
pub const PAGES: &[(&str, &str, Policy)] =
    &[("GET", "/ui/audit", perm(Permission::AuditRead)), ("GET", "/ui/audit/export", perm(Permission::AuditRead))];

pub fn routes() -> Router<AppState> {
    Router::new().route("/ui/audit", get(page)).route("/ui/audit/export", get(|| async { export() }))
}

/// The whole trail is the API's export (JSON Lines); the session cookie signs the request in.
fn export() -> Response {
    Redirect::to("/api/v1/audit/export").into_response()
}

/// Entries on one page.
const PAGE_SIZE: usize = 50;
/// Characters of a before/after summary shown in the table.
const SUMMARY_CHARS: usize = 120;
/// Characters of the full before/after shown when the summary is cut.
const FULL_CHARS: usize = 4000;

/// The filter form as given (and the page cursor).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    /// UTC, `2026-05-01 14:00` (or RFC 3339); inclusive.
    #[serde(default)]
    from: String,
    /// Exclusive.
    #[serde(default)]
    to: String,
    /// The API's cursor: entries before this sequence number.
    #[serde(default)]
    cursor: String,
}

impl AuditForm {
    fn trimmed(self) -> Self {
        Self {
            actor: self.actor.trim().to_owned(),
            action: self.action.trim().to_owned(),
            target: self.target.trim().to_owned(),
            from: self.from.trim().to_owned(),
            to: self.to.trim().to_owned(),
            cursor: self.cursor.trim().to_owned(),
        }
    }

    /// The API's query for these filters (`usernames`: a username typed as the actor is looked
    /// up as `user:<id>`), or what is wrong with them, by field.
    pub fn api_query(&self, usernames: &HashMap<String, String>) -> Result<String, FieldErrors> {
        let mut errors = FieldErrors::none();
        let mut time = |field: &str, value: &str| match to_rfc3339(value) {
            Some(t) => t,
            None => {
                errors.fields.push((field.to_owned(), "Use a UTC time like 2026-05-01 14:00.".to_owned()));
                String::new()
            }
        };
        let from = time("from", &self.from);
        let to = time("to", &self.to);
        if !self.cursor.is_empty() && self.cursor.parse::<u64>().is_err() {
            errors.general = Some("This page link is not valid; start again from the newest entries.".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let actor = usernames.get(&self.actor).cloned().unwrap_or_else(|| self.actor.clone());
        let q = with_query(
            "",
            &[
                ("actor", actor),
                ("action", self.action.clone()),
                ("target", self.target.clone()),
                ("from", from),
                ("to", to),
                ("cursor", self.cursor.clone()),
                ("limit", PAGE_SIZE.to_string()),
            ],
        );
        Ok(q.trim_start_matches('?').to_owned())
    }

    /// This page's address with these filters, at `cursor`.
    pub fn href(&self, cursor: Option<&str>) -> String {
        with_query(
            "/ui/audit",
            &[
                ("actor", self.actor.clone()),
                ("action", self.action.clone()),
                ("target", self.target.clone()),
                ("from", self.from.clone()),
                ("to", self.to.clone()),
                ("cursor", cursor.unwrap_or_default().to_owned()),
            ],
        )
    }

    /// The page with one filter set to `value` (and no cursor).
    fn with(&self, field: &str, value: &str) -> String {
        let mut f = self.clone();
        f.cursor.clear();
        match field {
            "actor" => f.actor = value.to_owned(),
            "action" => f.action = value.to_owned(),
            _ => f.target = value.to_owned(),
        }
        f.href(None)
    }
}

/// A time as typed (`2026-05-01 14:00`, `2026-05-01T14:00:30`, `2026-05-01`, all UTC; or RFC
/// 3339) as RFC 3339; empty stays empty; `None` if it is none of these.
pub fn to_rfc3339(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return Some(String::new());
    }
    let s = s.replacen(' ', "T", 1);
    let candidate = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        16 => format!("{s}:00Z"),
        19 => format!("{s}Z"),
        _ => s,
    };
    crate::api::convert::parse_rfc3339("time", &candidate).ok().map(|_| candidate)
}

/// A JSON value in a few words, and the whole of it when those were cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub short: String,
    pub full: Option<String>,
}

fn cut(s: &str, max: usize) -> Option<String> {
    let mut chars = s.char_indices();
    let (end, _) = chars.nth(max)?;
    Some(format!("{}…", s.get(..end).unwrap_or_default()))
}

pub fn summary(v: &serde_json::Value) -> Summary {
    let compact = v.to_string();
    match cut(&compact, SUMMARY_CHARS) {
        None => Summary { short: compact, full: None },
        Some(short) => {
            let pretty = serde_json::to_string_pretty(v).unwrap_or(compact);
            let full = cut(&pretty, FULL_CHARS).unwrap_or(pretty);
            Summary { short, full: Some(full) }
        }
    }
}

/// A row of the table.
#[derive(Debug)]
pub struct EntryRow {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub actor_href: String,
    pub source_ip: String,
    pub action: String,
    pub action_href: String,
    pub target: String,
    pub target_href: String,
    /// The target's own page, if the console has one the caller may open.
    pub target_page: Option<String>,
    pub before: Option<Summary>,
    pub after: Option<Summary>,
}

/// The chain's verification, in one sentence.
#[derive(Debug)]
pub struct Chain {
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditLog {
    ctx: Ctx,
    form: AuditForm,
    rows: Vec<EntryRow>,
    chain: Chain,
    older: Option<String>,
    newest: Option<String>,
    /// Actions on this page, for the action field's suggestions.
    actions: Vec<String>,
    errors: FieldErrors,
}

fn target_page(caller: &Caller, target: &str) -> Option<String> {
    let (kind, id) = target.split_once(':')?;
    let ok_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match kind {
        "device" if ok_id && caller.can(Permission::DevicesRead) => Some(format!("/ui/devices/{id}")),
        "alert" if ok_id && caller.can(Permission::AlertsRead) => Some(format!("/ui/alerts/{id}")),
        _ => None,
    }
}

async fn chain(state: &AppState, caller: &Caller) -> Chain {
    let verified = api::verify(State(state.clone()), caller.clone()).await;
    let head = head(state, caller).await;
    match verified {
        Ok(Json(v)) if v.ok => {
            let head = head.map_or_else(String::new, |(seq, hash)| format!(", head #{seq} ({hash:.16}…)"));
            Chain {
                ok: true,
                text: format!("Chain verified: {} entries, {} signed checkpoints{head}.", v.entries, v.checkpoints),
            }
        }
        Ok(Json(v)) => Chain {
            ok: false,
            text: format!(
                "Chain broken at entry #{}: {}.",
                v.first_bad_seq.unwrap_or_default(),
                v.problem.unwrap_or_else(|| "no detail".into())
            ),
        },
        Err(e) => Chain { ok: false, text: format!("The chain could not be verified: {}.", e.message) },
    }
}

/// The newest entry: its sequence number and hash.
async fn head(state: &AppState, caller: &Caller) -> Option<(u64, String)> {
    let q = serde_urlencoded::from_str::<AuditQuery>("limit=1").ok()?;
    let Json(page) = api::list(State(state.clone()), caller.clone(), ApiQuery(q)).await.ok()?;
    page.items.first().map(|e| (e.seq, e.hash.clone()))
}

async fn entries(state: &AppState, caller: &Caller, query: &str) -> Result<AuditPage, ApiError> {
    let q = serde_urlencoded::from_str::<AuditQuery>(query)
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    Ok(api::list(State(state.clone()), caller.clone(), ApiQuery(q)).await?.0)
}

fn row(e: AuditEntryView, form: &AuditForm, caller: &Caller, names: &HashMap<String, String>) -> EntryRow {
    let actor = actor_name(names, &e.actor);
    EntryRow {
        seq: e.seq,
        at: rfc_time(&e.at),
        actor_href: form.with("actor", &actor),
        actor,
        source_ip: e.source_ip.unwrap_or_default(),
        action_href: form.with("action", &e.action),
        target_href: form.with("target", &e.target),
        target_page: target_page(caller, &e.target),
        action: e.action,
        target: e.target,
        before: e.before.as_ref().map(summary),
        after: e.after.as_ref().map(summary),
    }
}

pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    query: Result<Query<AuditForm>, QueryRejection>,
) -> Result<Response, Page> {
    let caller = ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    let (form, mut errors) = match query {
        Ok(Query(f)) => (f.trimmed(), FieldErrors::none()),
        Err(_) => (AuditForm::default(), FieldErrors::general("This address's filters are not valid.")),
    };
    let names = actor_names(&state).await;
    let usernames: HashMap<String, String> = names.iter().map(|(id, name)| (name.clone(), id.clone())).collect();
    let mut status = StatusCode::OK;
    let mut listed = None;
    if errors.is_empty() {
        match form.api_query(&usernames) {
            Ok(q) => match entries(&state, &caller, &q).await {
                Ok(p) => listed = Some(p),
                Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN => {
                    status = e.status;
                    errors = FieldErrors::from_api(&e, &[]);
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => {
                status = StatusCode::UNPROCESSABLE_ENTITY;
                errors = e;
            }
        }
    }
    let (items, next) = listed.map_or_else(|| (Vec::new(), None), |p| (p.items, p.next_cursor));
    let mut actions: Vec<String> = items.iter().map(|e| e.action.clone()).collect();
    actions.sort();
    actions.dedup();
    let rows = items.into_iter().map(|e| row(e, &form, &caller, &names)).collect();
    let page = AuditLog {
        ctx: ctx.at("audit"),
        chain: chain(&state, &caller).await,
        older: next.map(|c| form.href(Some(&c))),
        newest: (!form.cursor.is_empty()).then(|| form.href(None)),
        rows,
        actions,
        errors,
        form,
    };
    Ok(render(status, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(actor: &str, action: &str, target: &str, from: &str, to: &str, cursor: &str) -> AuditForm {
        AuditForm {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            from: from.into(),
            to: to.into(),
            cursor: cursor.into(),
        }
    }

    #[test]
    fn times_as_typed() {
        assert_eq!(to_rfc3339("").as_deref(), Some(""));
        assert_eq!(to_rfc3339("2026-05-01").as_deref(), Some("2026-05-01T00:00:00Z"));
        assert_eq!(to_rfc3339("2026-05-01 14:00").as_deref(), Some("2026-05-01T14:00:00Z"));
        assert_eq!(to_rfc3339("2026-05-01T14:00").as_deref(), Some("2026-05-01T14:00:00Z"));
        assert_eq!(to_rfc3339(" 2026-05-01 14:00:30 ").as_deref(), Some("2026-05-01T14:00:30Z"));
        assert_eq!(to_rfc3339("2026-05-01T14:00:00+02:00").as_deref(), Some("2026-05-01T14:00:00+02:00"));
        for bad in ["yesterday", "2026-13-01", "2026-05-01 25:00", "14:00"] {
            assert_eq!(to_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn filters_become_the_apis_query_and_links() {
        let usernames = HashMap::from([("alice".to_owned(), "user:u_1".to_owned())]);
        let f = form("alice", "alert.acknowledged", "alert:al_1", "2026-05-01 14:00", "", "");
        assert_eq!(
            f.api_query(&usernames).unwrap(),
            "actor=user%3Au_1&action=alert.acknowledged&target=alert%3Aal_1&from=2026-05-01T14%3A00%3A00Z&limit=50"
        );
        assert!(serde_urlencoded::from_str::<AuditQuery>(&f.api_query(&usernames).unwrap()).is_ok());
        assert_eq!(
            f.href(Some("17")),
            "/ui/audit?actor=alice&action=alert.acknowledged&target=alert%3Aal_1&from=2026-05-01+14%3A00&cursor=17"
        );
        assert_eq!(form("", "", "", "", "", "").href(None), "/ui/audit");
        assert_eq!(form("", "", "", "", "", "").api_query(&usernames).unwrap(), "limit=50");
        assert_eq!(
            form("system", "", "", "", "", "9").api_query(&usernames).unwrap(),
            "actor=system&cursor=9&limit=50"
        );
        assert_eq!(form("", "x", "", "", "", "9").with("target", "device:d"), "/ui/audit?action=x&target=device%3Ad");

        let e = form("", "", "", "soon", "2026-05-01", "abc").api_query(&usernames).unwrap_err();
        assert!(e.get("from").is_some() && e.get("to").is_none() && e.general.is_some());
    }

    #[test]
    fn long_changes_are_cut() {
        let small = serde_json::json!({"status": "open"});
        assert_eq!(summary(&small), Summary { short: r#"{"status":"open"}"#.into(), full: None });
        let big = serde_json::json!({"note": "é".repeat(300)});
        let s = summary(&big);
        assert_eq!(s.short.chars().count(), SUMMARY_CHARS + 1);
        assert!(s.short.ends_with('…'));
        assert!(s.full.is_some_and(|f| f.contains("\"note\"")));
    }
}
