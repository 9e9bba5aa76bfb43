//! The device pages: the inventory as a filterable, sortable list with per-person saved filters
//! (here), and one device's page with its posture, plots, lifecycle actions and commands
//! ([`detail`], plots from [`charts`]).
//!
//! Reads honour the caller's device scope (the list filters by it, a device page asks the API's
//! handler, which hides devices outside it); every change goes through `api::devices`.

mod charts;
mod detail;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use palisade_core::{Criticality, LifecycleState, Permission};
use palisade_store::console::SavedFilter;
use palisade_store::devices::{DeviceFilter, DeviceOrder, SortKey};
use serde::Deserialize;

use super::perm;
use super::view::{Ctx, FieldErrors, Page, render, time, url_encode};
use crate::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{Caller, Principal};
use crate::api::policy::Policy;

/// Who may open or post what (see `super::PAGES`).
pub const PAGES: &[(&str, &str, Policy)] = &[
    ("GET", "/ui/devices", perm(Permission::DevicesRead)),
    ("POST", "/ui/devices/filters", perm(Permission::DevicesRead)),
    ("POST", "/ui/devices/filters/delete", perm(Permission::DevicesRead)),
    ("GET", "/ui/devices/{id}", perm(Permission::DevicesRead)),
    ("POST", "/ui/devices/{id}/quarantine", perm(Permission::DevicesLifecycle)),
    ("POST", "/ui/devices/{id}/pause", perm(Permission::DevicesLifecycle)),
    ("POST", "/ui/devices/{id}/release", perm(Permission::DevicesLifecycle)),
    ("POST", "/ui/devices/{id}/decommission", perm(Permission::DevicesLifecycle)),
    ("POST", "/ui/devices/{id}/commands", perm(Permission::DevicesLifecycle)),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/devices", get(list_page))
        .route("/ui/devices/filters", post(save_filter))
        .route("/ui/devices/filters/delete", post(delete_filter))
        .route("/ui/devices/{id}", get(detail::page))
        .route("/ui/devices/{id}/quarantine", post(detail::quarantine))
        .route("/ui/devices/{id}/pause", post(detail::pause))
        .route("/ui/devices/{id}/release", post(detail::release))
        .route("/ui/devices/{id}/decommission", post(detail::decommission))
        .route("/ui/devices/{id}/commands", post(detail::command))
}

/// Devices per page of the list.
const PAGE_SIZE: usize = 50;

/// The columns the list sorts by, as named in `?sort=`.
const SORTS: [(&str, SortKey); 6] = [
    ("serial", SortKey::Serial),
    ("model", SortKey::Model),
    ("state", SortKey::State),
    ("criticality", SortKey::Criticality),
    ("region", SortKey::Region),
    ("updated", SortKey::Updated),
];

const DEFAULT_ORDER: DeviceOrder = DeviceOrder { key: SortKey::Serial, descending: false };

fn sort_name(key: SortKey) -> &'static str {
    SORTS.iter().find(|(_, k)| *k == key).map_or("serial", |(n, _)| n)
}

/// `?sort=…&dir=…` as an order; unknown or absent values fall back to the default (by serial,
/// ascending) and the default direction of the column (newest first for `updated`).
pub fn parse_sort(sort: Option<&str>, dir: Option<&str>) -> DeviceOrder {
    let Some(key) = sort.and_then(|s| SORTS.iter().find(|(n, _)| *n == s)).map(|(_, k)| *k) else {
        return DEFAULT_ORDER;
    };
    let descending = match dir {
        Some("desc") => true,
        Some("asc") => false,
        _ => key == SortKey::Updated,
    };
    DeviceOrder { key, descending }
}

/// What the list shows: its filters, order and position, parsed from the query string.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub q: String,
    pub state: Option<LifecycleState>,
    pub criticality: Option<Criticality>,
    pub group: String,
    pub region: String,
    pub model: String,
    pub order: DeviceOrder,
    pub offset: usize,
}

impl Default for ListRequest {
    fn default() -> Self {
        Self {
            q: String::new(),
            state: None,
            criticality: None,
            group: String::new(),
            region: String::new(),
            model: String::new(),
            order: DEFAULT_ORDER,
            offset: 0,
        }
    }
}

/// Longest free-text or name filter accepted.
const MAX_FILTER_TEXT: usize = 256;

impl ListRequest {
    /// Parses query pairs (the last of a repeated key wins; empty values are absent; unknown
    /// keys are ignored). A value that cannot be a filter is reported against its field.
    pub fn parse(pairs: &[(String, String)]) -> (Self, FieldErrors) {
        let get =
            |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
        let mut errors = FieldErrors::none();
        let mut text = |k: &str| match get(k) {
            Some(v) if v.chars().count() > MAX_FILTER_TEXT => {
                errors.fields.push((k.to_owned(), format!("At most {MAX_FILTER_TEXT} characters")));
                String::new()
            }
            v => v.unwrap_or_default().to_owned(),
        };
        let (q, group, region, model) = (text("q"), text("group"), text("region"), text("model"));
        let state = get("state").and_then(|s| match s.parse::<LifecycleState>() {
            Ok(s) => Some(s),
            Err(_) => {
                errors.fields.push(("state".into(), format!("{s:.40?} is not a lifecycle state")));
                None
            }
        });
        let criticality = get("criticality").and_then(|c| match c.parse::<Criticality>() {
            Ok(c) => Some(c),
            Err(_) => {
                errors.fields.push(("criticality".into(), format!("{c:.40?} is not low, medium, high or critical")));
                None
            }
        });
        let order = parse_sort(get("sort"), get("dir"));
        let offset = get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0).min(1_000_000);
        (Self { q, state, criticality, group, region, model, order, offset }, errors)
    }

    /// The store's filter, inside the caller's device scope.
    pub fn filter(&self, caller: &Caller) -> DeviceFilter {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        DeviceFilter {
            state: self.state,
            group: some(&self.group),
            region: some(&self.region),
            criticality: self.criticality,
            model: some(&self.model),
            q: some(&self.q),
            scopes: caller.authority.scopes_for(Permission::DevicesRead),
            ..DeviceFilter::default()
        }
    }

    /// The filters as a query string (no `?`), in a fixed order, leaving out what is unset.
    pub fn filter_query(&self) -> String {
        let mut parts: Vec<(&str, String)> = Vec::new();
        let mut add = |k, v: &str| {
            if !v.is_empty() {
                parts.push((k, v.to_owned()));
            }
        };
        add("q", &self.q);
        add("state", self.state.map_or("", LifecycleState::as_str));
        add("criticality", self.criticality.map_or("", Criticality::as_str));
        add("group", &self.group);
        add("region", &self.region);
        add("model", &self.model);
        join_query(&parts)
    }

    /// Filters and order (a saved filter keeps both); the default order is left out.
    pub fn saved_query(&self) -> String {
        self.query_with(self.order, None)
    }

    fn query_with(&self, order: DeviceOrder, offset: Option<usize>) -> String {
        let mut q = self.filter_query();
        let mut extra: Vec<(&str, String)> = Vec::new();
        if order != DEFAULT_ORDER {
            extra.push(("sort", sort_name(order.key).to_owned()));
            extra.push(("dir", if order.descending { "desc" } else { "asc" }.to_owned()));
        }
        if let Some(o) = offset.filter(|o| *o > 0) {
            extra.push(("offset", o.to_string()));
        }
        let extra = join_query(&extra);
        if !extra.is_empty() {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&extra);
        }
        q
    }

    /// The list at another offset, same filters and order.
    fn at_offset(&self, offset: usize) -> String {
        href(&self.query_with(self.order, Some(offset)))
    }

    /// The list sorted by `key`: the other direction when it is sorted by `key` already, from
    /// the first page.
    pub fn sorted_by(&self, key: SortKey) -> String {
        let descending = if self.order.key == key { !self.order.descending } else { key == SortKey::Updated };
        href(&self.query_with(DeviceOrder { key, descending }, None))
    }
}

fn join_query(parts: &[(&str, String)]) -> String {
    parts.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect::<Vec<_>>().join("&")
}

fn href(query: &str) -> String {
    if query.is_empty() { "/ui/devices".to_owned() } else { format!("/ui/devices?{query}") }
}

/// A sortable column heading.
#[derive(Debug)]
pub struct Heading {
    pub key: &'static str,
    pub label: &'static str,
    pub href: String,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    pub aria_sort: &'static str,
}

/// One device in the list.
#[derive(Debug)]
pub struct Row {
    pub id: String,
    pub serial: String,
    pub model: String,
    pub vendor: String,
    pub state: &'static str,
    pub criticality: &'static str,
    pub group: String,
    pub region: String,
    pub firmware: String,
    pub updated: String,
}

/// A saved filter as a link.
#[derive(Debug)]
pub struct SavedLink {
    pub name: String,
    pub href: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DeviceList {
    ctx: Ctx,
    request: ListRequest,
    headings: Vec<Heading>,
    rows: Vec<Row>,
    total: i64,
    first: usize,
    last: usize,
    prev_href: Option<String>,
    next_href: Option<String>,
    states: Vec<&'static str>,
    criticalities: Vec<&'static str>,
    regions: Vec<String>,
    models: Vec<String>,
    saved: Vec<SavedLink>,
    saved_query: String,
    filter_name: String,
    errors: FieldErrors,
}

impl DeviceList {
    fn selected_state(&self) -> &str {
        self.request.state.map_or("", LifecycleState::as_str)
    }

    fn selected_criticality(&self) -> &str {
        self.request.criticality.map_or("", Criticality::as_str)
    }

    /// The order as hidden fields of the filter form, so that applying filters keeps it.
    fn hidden_order(&self) -> Vec<(&'static str, &'static str)> {
        let order = self.request.order;
        if order == DEFAULT_ORDER {
            return Vec::new();
        }
        vec![("sort", sort_name(order.key)), ("dir", if order.descending { "desc" } else { "asc" })]
    }
}

const HEADINGS: [(&str, &str, SortKey); 6] = [
    ("serial", "Serial", SortKey::Serial),
    ("model", "Model", SortKey::Model),
    ("state", "State", SortKey::State),
    ("criticality", "Criticality", SortKey::Criticality),
    ("region", "Region", SortKey::Region),
    ("updated", "Updated", SortKey::Updated),
];

fn signed_in(ctx: &Ctx) -> Result<Caller, Page> {
    ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))
}

/// The person's user id (saved filters are theirs).
fn user_id(caller: &Caller) -> Result<&str, Page> {
    match &caller.principal {
        Principal::User { id, .. } => Ok(id),
        Principal::ApiKey(_) => Err(Page::error(StatusCode::FORBIDDEN, "Saved filters belong to people.")),
    }
}

pub async fn list_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let (request, errors) = ListRequest::parse(&pairs);
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    list(&state, ctx, request, errors, String::new(), status).await
}

async fn list(
    state: &AppState,
    ctx: Ctx,
    request: ListRequest,
    errors: FieldErrors,
    filter_name: String,
    status: StatusCode,
) -> Result<Response, Page> {
    let caller = signed_in(&ctx)?;
    let filter = request.filter(&caller);
    // A refused filter shows nothing rather than more than was asked for.
    let refused = errors.fields.iter().any(|(f, _)| f != "name");
    let (page, total) = if refused {
        (palisade_store::devices::Page { items: Vec::new(), next: None }, 0)
    } else {
        let page = state.store.list_devices_sorted(&filter, request.order, request.offset, PAGE_SIZE).await?;
        (page, state.store.count_devices_matching(&filter).await?)
    };
    let scope_only =
        DeviceFilter { scopes: caller.authority.scopes_for(Permission::DevicesRead), ..DeviceFilter::default() };
    let summary = state.store.fleet_summary(&scope_only).await?;
    let mut models: Vec<String> = summary.firmware.iter().map(|(m, _, _)| m.clone()).collect();
    models.dedup();
    let regions = summary.by_region.iter().map(|(r, _)| r.clone()).filter(|r| !r.is_empty()).collect();
    let current = request.saved_query();
    let saved = state
        .store
        .console_filters(user_id(&caller)?)
        .await?
        .into_iter()
        .map(|SavedFilter { name, query, .. }| SavedLink { current: query == current, href: href(&query), name })
        .collect();
    let headings = HEADINGS
        .iter()
        .map(|(key, label, k)| Heading {
            key,
            label,
            href: request.sorted_by(*k),
            aria_sort: match (request.order.key == *k, request.order.descending) {
                (false, _) => "none",
                (true, false) => "ascending",
                (true, true) => "descending",
            },
        })
        .collect();
    let rows: Vec<Row> = page
        .items
        .iter()
        .map(|d| Row {
            id: d.id.to_string(),
            serial: d.attrs.serial.clone(),
            model: d.attrs.model.clone(),
            vendor: d.attrs.vendor.clone(),
            state: d.state.as_str(),
            criticality: d.attrs.criticality.as_str(),
            group: d.attrs.group.clone().unwrap_or_default(),
            region: d.attrs.region.clone().unwrap_or_default(),
            firmware: d.attrs.firmware_version.clone().unwrap_or_default(),
            updated: time(d.updated_ms),
        })
        .collect();
    let prev_href = (request.offset > 0).then(|| request.at_offset(request.offset.saturating_sub(PAGE_SIZE)));
    let next_href = page.next.as_deref().and_then(|n| n.parse::<usize>().ok()).map(|n| request.at_offset(n));
    let first = if rows.is_empty() { 0 } else { request.offset + 1 };
    let last = request.offset + rows.len();
    let view = DeviceList {
        ctx: ctx.at("devices"),
        headings,
        rows,
        total,
        first,
        last,
        prev_href,
        next_href,
        states: LifecycleState::ALL.iter().map(|s| s.as_str()).collect(),
        criticalities: Criticality::ALL.iter().map(|c| c.as_str()).collect(),
        regions,
        models,
        saved,
        saved_query: current,
        filter_name,
        errors,
        request,
    };
    Ok(render(status, &view))
}

#[derive(Debug, Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
}

/// Saves the list's current filter (the form carries its query string) under a name.
pub async fn save_filter(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Form(form): axum::Form<SaveForm>,
) -> Result<Response, Page> {
    let caller = signed_in(&ctx)?;
    // Only what the list understands is kept, in its own spelling.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&form.query).unwrap_or_default();
    let (request, _) = ListRequest::parse(&pairs);
    let query = request.saved_query();
    let saved = state
        .store
        .save_console_filter(user_id(&caller)?.to_owned(), form.name.clone(), query.clone(), crate::now_ms())
        .await;
    match saved {
        Ok(_) => Ok(Redirect::to(&href(&query)).into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            let errors = FieldErrors::from_api(&e, &[("query", "name")]);
            list(&state, ctx, request, errors, form.name, e.status).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    name: String,
}

pub async fn delete_filter(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Form(form): axum::Form<DeleteForm>,
) -> Result<Response, Page> {
    let caller = signed_in(&ctx)?;
    state.store.delete_console_filter(user_id(&caller)?.to_owned(), form.name).await?;
    Ok(Redirect::to("/ui/devices").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn sort_parsing_falls_back_to_defaults() {
        assert_eq!(parse_sort(None, None), DEFAULT_ORDER);
        assert_eq!(parse_sort(Some("bogus"), Some("desc")), DEFAULT_ORDER);
        assert_eq!(parse_sort(Some("model"), Some("desc")), DeviceOrder { key: SortKey::Model, descending: true });
        assert_eq!(parse_sort(Some("region"), Some("up")), DeviceOrder { key: SortKey::Region, descending: false });
        assert_eq!(parse_sort(Some("updated"), None), DeviceOrder { key: SortKey::Updated, descending: true });
        assert_eq!(parse_sort(Some("updated"), Some("asc")), DeviceOrder { key: SortKey::Updated, descending: false });
        for (name, key) in SORTS {
            assert_eq!(sort_name(key), name);
        }
    }

    #[test]
    fn filters_parse_and_print_back_canonically() {
        let (r, errors) = ListRequest::parse(&pairs(
            "model=&q=a%26b+c&state=quarantined&criticality=high&region=eu-west&sort=criticality&dir=desc&offset=100&x=1",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(r.q, "a&b c");
        assert_eq!((r.state, r.criticality), (Some(LifecycleState::Quarantined), Some(Criticality::High)));
        assert_eq!((r.model.as_str(), r.offset), ("", 100));
        assert_eq!(r.filter_query(), "q=a%26b%20c&state=quarantined&criticality=high&region=eu-west");
        assert_eq!(r.saved_query(), format!("{}&sort=criticality&dir=desc", r.filter_query()));
        assert_eq!(ListRequest::parse(&pairs(&r.saved_query())).0, ListRequest { offset: 0, ..r.clone() });
        assert_eq!(r.at_offset(150), format!("/ui/devices?{}&offset=150", r.saved_query()));
        assert_eq!(ListRequest::default().saved_query(), "");
        assert_eq!(ListRequest::default().at_offset(0), "/ui/devices");
    }

    #[test]
    fn sort_links_toggle_the_current_column_and_restart_paging() {
        let (r, _) = ListRequest::parse(&pairs("group=north&sort=model&offset=50"));
        assert_eq!(r.sorted_by(SortKey::Model), "/ui/devices?group=north&sort=model&dir=desc");
        assert_eq!(r.sorted_by(SortKey::Serial), "/ui/devices?group=north");
        assert_eq!(r.sorted_by(SortKey::Updated), "/ui/devices?group=north&sort=updated&dir=desc");
    }

    #[test]
    fn bad_values_are_reported_against_their_field() {
        let long = "x".repeat(MAX_FILTER_TEXT + 1);
        let (r, errors) = ListRequest::parse(&pairs(&format!("state=gone&criticality=extreme&q={long}&offset=-3")));
        assert_eq!((r.state, r.criticality, r.q.as_str(), r.offset), (None, None, "", 0));
        assert!(errors.get("state").is_some() && errors.get("criticality").is_some() && errors.get("q").is_some());
        // The last of a repeated key counts.
        assert_eq!(ListRequest::parse(&pairs("state=active&state=paused")).0.state, Some(LifecycleState::Paused));
    }
}
