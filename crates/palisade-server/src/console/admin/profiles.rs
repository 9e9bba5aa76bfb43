//! `/ui/profiles`: security profiles — the list, an editor of one profile as JSON (the body of
//! `PUT /api/v1/profiles/{name}`), deletion — and, read-only, the notification channels with
//! how their deliveries fare.
//!
//! `/ui/profiles/new` is the blank editor; a profile named `new` is edited through the API.

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_proto::detect::ProfileView;
use palisade_proto::notify::ChannelView;
use palisade_store::fleet_checks::ChannelHealth;
use serde::Deserialize;
use serde_json::Value;

use super::{FormData, caller_of};
use crate::api::alerts;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, Caller};
use crate::console::view::{Ctx, FieldErrors, Page, render, rfc_time, url_encode};
use crate::{AppState, now_ms};

#[derive(Debug)]
pub struct ProfileRow {
    pub name: String,
    /// `api` or `config`.
    pub source: String,
    pub updated: String,
    pub groups: String,
    pub models: String,
    pub rules: usize,
}

#[derive(Debug)]
pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub min_severity: String,
    pub groups: String,
    pub enabled: bool,
    pub routed: bool,
    /// `ok`, `failing`, `retrying`, `unused` or `disabled`.
    pub health: &'static str,
    pub health_detail: String,
}

#[derive(Template)]
#[template(path = "admin_profiles.html")]
struct ProfilesPage {
    ctx: Ctx,
    profiles: Vec<ProfileRow>,
    /// `None` when the caller may not read channels (`alerts.read`).
    channels: Option<Vec<ChannelRow>>,
    notice: Option<&'static str>,
    action_errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "admin_profile.html")]
struct EditorPage {
    ctx: Ctx,
    is_new: bool,
    name: String,
    json: String,
    source: Option<String>,
    updated: Option<String>,
    saved: bool,
    errors: FieldErrors,
}

/// A list in a profile (`groups`, `models`) as text; empty means all.
fn names_in(spec: &Value, key: &str) -> String {
    spec.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn profile_row(p: ProfileView) -> ProfileRow {
    ProfileRow {
        groups: names_in(&p.spec, "groups"),
        models: names_in(&p.spec, "models"),
        rules: p.spec.get("rules").and_then(Value::as_array).map_or(0, Vec::len),
        updated: rfc_time(&p.updated_at),
        name: p.name,
        source: p.source,
    }
}

/// How a channel's deliveries fare: a word and a sentence.
fn health(h: Option<&ChannelHealth>, enabled: bool) -> (&'static str, String) {
    if !enabled {
        return ("disabled", "Not in service.".to_owned());
    }
    let Some(h) = h else { return ("unused", "No delivery attempted yet.".to_owned()) };
    if h.dead_since > 0 {
        return ("failing", format!("{} deliveries dead-lettered in the last 24 h.", h.dead_since));
    }
    if h.latest_failed.len() >= HEALTH_WINDOW && h.latest_failed.iter().all(|f| *f) {
        return ("failing", format!("Its last {HEALTH_WINDOW} attempted deliveries all failed."));
    }
    match h.latest_failed.first() {
        None => ("unused", "No delivery attempted yet.".to_owned()),
        Some(true) => ("retrying", "The latest delivery failed and is being retried.".to_owned()),
        Some(false) => ("ok", "The latest delivery went through.".to_owned()),
    }
}

/// Deliveries judged, as the fleet checks do: dead letters of the last day, the latest five.
const HEALTH_WINDOW: usize = 5;
const DAY_MS: i64 = 86_400_000;

fn channel_row(c: ChannelView, health_of: &HashMap<String, ChannelHealth>) -> ChannelRow {
    let (word, detail) = health(health_of.get(&c.id), c.enabled);
    ChannelRow {
        health: word,
        health_detail: detail,
        groups: c.groups.join(", "),
        id: c.id,
        name: c.name,
        kind: c.kind,
        min_severity: c.min_severity,
        enabled: c.enabled,
        routed: c.routed,
    }
}

impl ProfilesPage {
    async fn load(state: &AppState, ctx: Ctx) -> Result<Self, Page> {
        let caller = caller_of(&ctx)?;
        let Json(profiles) = alerts::list_profiles(State(state.clone())).await?;
        let channels = match crate::api::notify::list_channels(State(state.clone()), caller).await {
            Ok(Json(list)) => {
                let health_of: HashMap<String, ChannelHealth> = state
                    .store
                    .channel_health(now_ms() - DAY_MS, HEALTH_WINDOW)
                    .await?
                    .into_iter()
                    .map(|h| (h.id.clone(), h))
                    .collect();
                Some(list.into_iter().map(|c| channel_row(c, &health_of)).collect())
            }
            Err(e) if e.status == StatusCode::FORBIDDEN => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            profiles: profiles.into_iter().map(profile_row).collect(),
            channels,
            notice: None,
            action_errors: FieldErrors::none(),
            ctx: ctx.at("profiles"),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
    saved: Option<String>,
}

pub async fn page(State(state): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Result<Response, Page> {
    let mut page = ProfilesPage::load(&state, ctx).await?;
    if q.done.as_deref() == Some("deleted") {
        page.notice = Some("The profile is deleted; its rules no longer apply.");
    }
    Ok(render(StatusCode::OK, &page))
}

/// What a new profile starts from: one rule to change, valid as it is.
pub const NEW_PROFILE: &str = r#"{
  "groups": [],
  "models": [],
  "rules": [
    {
      "id": "cpu-high",
      "kind": "threshold",
      "metric": "cpu_pct",
      "op": ">",
      "value": 95,
      "severity": "medium"
    }
  ]
}"#;

/// A stored profile as the editor shows it: pretty JSON without the name (the name field
/// holds it).
fn editor_json(spec: &Value) -> String {
    let mut spec = spec.clone();
    if let Some(o) = spec.as_object_mut() {
        o.remove("name");
    }
    serde_json::to_string_pretty(&spec).unwrap_or_default()
}

pub async fn new_page(ctx: Ctx) -> Response {
    let page = EditorPage {
        ctx: ctx.at("profiles"),
        is_new: true,
        name: String::new(),
        json: NEW_PROFILE.to_owned(),
        source: None,
        updated: None,
        saved: false,
        errors: FieldErrors::none(),
    };
    render(StatusCode::OK, &page)
}

pub async fn edit_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<Done>,
) -> Result<Response, Page> {
    let Json(profiles) = alerts::list_profiles(State(state.clone())).await?;
    let p = profiles
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Page::error(StatusCode::NOT_FOUND, "There is no profile of this name."))?;
    let page = EditorPage {
        ctx: ctx.at("profiles"),
        is_new: false,
        json: editor_json(&p.spec),
        source: Some(p.source),
        updated: Some(rfc_time(&p.updated_at)),
        saved: q.saved.is_some(),
        name: p.name,
        errors: FieldErrors::none(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The name to save under: the name field, or else the JSON's own `name`.
fn profile_name(field: &str, body: &Value) -> String {
    if field.is_empty() {
        body.get("name").and_then(Value::as_str).unwrap_or_default().trim().to_owned()
    } else {
        field.to_owned()
    }
}

/// A refusal of the API: the name's next to the name, anything in the profile next to the
/// JSON with its path (`rules[2].set[0]: …`), so that it can be found.
fn profile_errors(e: &ApiError) -> FieldErrors {
    match e.field.as_deref() {
        Some("name") if e.message.contains("the name in the path") => FieldErrors::field(
            "name",
            "The JSON's \"name\" is not this name: make them agree, or leave \"name\" out of the JSON.",
        ),
        Some("name") => FieldErrors::from_api(e, &[]),
        Some(_) => FieldErrors::field("profile", e.message.clone()),
        None => FieldErrors::from_api(e, &[]),
    }
}

/// Whether the JSON text is a JSON value, and where it is not.
fn parse_json(text: &str) -> Result<Value, FieldErrors> {
    serde_json::from_str(text).map_err(|e| FieldErrors::field("profile", format!("This is not valid JSON: {e}.")))
}

pub async fn save(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let f = FormData(pairs);
    let is_new = f.text("mode") != "edit";
    let (name, json) = (f.text("name"), f.raw("profile"));
    let result = match parse_json(&json) {
        Ok(body) => {
            let name = profile_name(&name, &body);
            alerts::put_profile(State(state.clone()), caller, Path(name.clone()), ApiJson(body))
                .await
                .map(|_| name)
                .map_err(|e| (e.status, profile_errors(&e)))
        }
        Err(errors) => Err((StatusCode::UNPROCESSABLE_ENTITY, errors)),
    };
    match result {
        Ok(saved) => Ok(Redirect::to(&format!("/ui/profiles/{}?saved=1", url_encode(&saved))).into_response()),
        Err((status, errors)) => {
            let page = EditorPage {
                ctx: ctx.at("profiles"),
                is_new,
                name,
                json,
                source: None,
                updated: None,
                saved: false,
                errors,
            };
            Ok(render(status, &page))
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, Page> {
    match alerts::delete_profile(State(state.clone()), caller, Path(name.clone())).await {
        Ok(_) => Ok(Redirect::to("/ui/profiles?done=deleted").into_response()),
        Err(e) => {
            let mut page = ProfilesPage::load(&state, ctx).await?;
            page.action_errors = FieldErrors::general(format!("Profile {name}: {}", e.message));
            Ok(render(e.status, &page))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_new_profile_is_valid_as_it_stands() {
        let mut body = parse_json(NEW_PROFILE).unwrap();
        body.as_object_mut().unwrap().insert("name".into(), json!("p"));
        crate::detect::spec::parse(&body).unwrap();
    }

    #[test]
    fn the_editor_shows_the_body_without_its_name() {
        let spec = json!({"name": "meters", "rules": []});
        assert_eq!(editor_json(&spec), "{\n  \"rules\": []\n}");
        assert_eq!(profile_name("", &spec), "meters");
        assert_eq!(profile_name("other", &spec), "other");
        assert_eq!(profile_name("", &json!({"rules": []})), "");
    }

    #[test]
    fn rule_refusals_keep_their_path_next_to_the_json() {
        let e: ApiError =
            palisade_core::InvalidField::new("rules[2].set[0]", "must be an address or a CIDR block").into();
        assert_eq!(profile_errors(&e).get("profile"), Some("rules[2].set[0]: must be an address or a CIDR block"));
        let e: ApiError = palisade_core::InvalidField::new("name", "must match the name in the path").into();
        assert!(profile_errors(&e).get("name").is_some_and(|m| m.contains("leave \"name\" out")));
        let e: ApiError =
            palisade_core::InvalidField::new("name", "must be 1-64 letters, digits, '-', '_' or '.'").into();
        assert_eq!(profile_errors(&e).get("name"), Some("Must be 1-64 letters, digits, '-', '_' or '.'"));
        let bad = parse_json("{\"rules\": [}").err().unwrap();
        assert!(bad.get("profile").is_some_and(|m| m.starts_with("This is not valid JSON") && m.contains("line 1")));
    }

    #[test]
    fn channel_health_in_words() {
        let h = |dead_since, latest_failed: Vec<bool>| ChannelHealth {
            id: "c".into(),
            name: "n".into(),
            enabled: true,
            dead_since,
            latest_failed,
        };
        assert_eq!(health(Some(&h(0, vec![false, true])), true).0, "ok");
        assert_eq!(health(Some(&h(0, vec![true, false])), true).0, "retrying");
        assert_eq!(health(Some(&h(2, vec![false])), true).0, "failing");
        assert_eq!(health(Some(&h(0, vec![true; 5])), true).0, "failing");
        assert_eq!(health(Some(&h(0, vec![])), true).0, "unused");
        assert_eq!(health(None, true).0, "unused");
        assert_eq!(health(Some(&h(2, vec![true; 5])), false).0, "disabled");
    }

    #[test]
    fn profile_rows_count_rules() {
        let view = ProfileView {
            name: "meters".into(),
            source: "api".into(),
            updated_at: "2026-01-02T03:04:05Z".into(),
            spec: json!({"name": "meters", "groups": ["field", "lab"], "rules": [{}, {}]}),
        };
        let row = profile_row(view);
        assert_eq!((row.groups.as_str(), row.models.as_str(), row.rules), ("field, lab", "", 2));
    }
}
