//! The alerts inbox (filters, paging, rows that update live) and one alert's page: what it is,
//! where its escalation stands, its timeline, and the analyst's actions (acknowledge, resolve,
//! mark a false positive, suppress), each done by the API's own handler in `api::alerts`.

use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use palisade_core::detect::Severity;
use palisade_core::detect::alert::{EscalationPolicy, MAX_STEPS, Status};
use palisade_core::{DeviceId, Permission};
use palisade_proto::detect::{AlertAction, AlertView, SuppressRequest};
use palisade_store::StoreError;
use palisade_store::alerts::{Alert, AlertFilter};
use serde::Deserialize;

use super::perm;
use super::view::{Ctx, FieldErrors, Page, render, rfc_time, time, url_encode};
use crate::AppState;
use crate::api::alerts as api;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, Caller, OptionalJson};
use crate::api::policy::Policy;

/// Who may open or post what (see `super::PAGES`).
pub const PAGES: &[(&str, &str, Policy)] = &[
    ("GET", "/ui/alerts", perm(Permission::AlertsRead)),
    ("GET", "/ui/alerts/{id}", perm(Permission::AlertsRead)),
    ("POST", "/ui/alerts/{id}/ack", perm(Permission::AlertsAck)),
    ("POST", "/ui/alerts/{id}/resolve", perm(Permission::AlertsAck)),
    ("POST", "/ui/alerts/{id}/false-positive", perm(Permission::AlertsAck)),
    ("POST", "/ui/alerts/{id}/suppress", perm(Permission::AlertsAck)),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/alerts", get(inbox))
        .route("/ui/alerts/{id}", get(detail))
        .route("/ui/alerts/{id}/ack", post(acknowledge))
        .route("/ui/alerts/{id}/resolve", post(resolve))
        .route("/ui/alerts/{id}/false-positive", post(false_positive))
        .route("/ui/alerts/{id}/suppress", post(suppress))
}

/// Alerts on one page of the inbox.
const PAGE_SIZE: usize = 50;
/// Alerts read from the store at a time while filling a page.
const BATCH: usize = 200;
/// Batches read for one page at most: a scoped caller's page may stop short of full, with a
/// link that goes on from where the reading stopped.
const MAX_BATCHES: usize = 25;

/// The API's rule (`api::alerts::list_alerts`): an alert is readable where its device's group is.
fn readable(caller: &Caller, a: &Alert) -> bool {
    caller.can_on(Permission::AlertsRead, a.group.as_deref(), None)
}

/// Which alerts the inbox shows by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusChoice {
    /// Open and acknowledged: everything that still needs someone.
    #[default]
    Active,
    Only(Status),
    All,
}

impl StatusChoice {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "active" => Some(Self::Active),
            "all" => Some(Self::All),
            s => Status::parse(s).map(Self::Only),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::All => "all",
            Self::Only(s) => s.as_str(),
        }
    }

    /// The status the store can filter on itself.
    fn store_status(self) -> Option<String> {
        match self {
            Self::Only(s) => Some(s.as_str().to_owned()),
            Self::Active | Self::All => None,
        }
    }

    fn keeps(self, status: &str) -> bool {
        match self {
            Self::Active => status != Status::Resolved.as_str(),
            Self::Only(s) => status == s.as_str(),
            Self::All => true,
        }
    }
}

/// The status filter's choices: (value, label).
const STATUS_CHOICES: &[(&str, &str)] = &[
    ("active", "Open and acknowledged"),
    ("open", "Open"),
    ("acknowledged", "Acknowledged"),
    ("resolved", "Resolved"),
    ("all", "All"),
];

/// The inbox's query string as given.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboxQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    device: String,
    /// Alerts last seen before this time (ms since the epoch): the next page.
    #[serde(default)]
    before: String,
}

/// The inbox's filters, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxFilter {
    pub status: StatusChoice,
    pub severity: Option<Severity>,
    pub device: Option<String>,
    pub before_ms: Option<i64>,
}

impl InboxFilter {
    /// The filters of a query, or what is wrong with them, by field.
    pub fn parse(q: &InboxQuery) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::none();
        let status = StatusChoice::parse(q.status.trim());
        if status.is_none() {
            errors.fields.push(("status".into(), "Choose open, acknowledged, resolved or all.".into()));
        }
        let severity = match q.severity.trim() {
            "" | "any" => None,
            s => {
                let parsed = Severity::parse(s);
                if parsed.is_none() {
                    errors.fields.push(("severity".into(), "Choose critical, high, medium, low or info.".into()));
                }
                parsed
            }
        };
        let device = match q.device.trim() {
            "" => None,
            d => {
                if d.parse::<DeviceId>().is_err() {
                    errors.fields.push((
                        "device".into(),
                        "Not a device id: ids are 20 letters and digits, as on the device's page.".into(),
                    ));
                }
                Some(d.to_owned())
            }
        };
        let before_ms = match q.before.trim() {
            "" => None,
            b => {
                let parsed = b.parse::<i64>().ok();
                if parsed.is_none() {
                    errors.general = Some("This page link is not valid; start again from the newest alerts.".into());
                }
                parsed
            }
        };
        match status {
            Some(status) if errors.is_empty() => Ok(Self { status, severity, device, before_ms }),
            _ => Err(errors),
        }
    }

    /// The inbox's address with these filters, at the page of alerts last seen before `before_ms`.
    pub fn href(&self, before_ms: Option<i64>) -> String {
        let status = if self.status == StatusChoice::Active { "" } else { self.status.as_str() };
        with_query(
            "/ui/alerts",
            &[
                ("status", status.to_owned()),
                ("severity", self.severity.map(|s| s.as_str().to_owned()).unwrap_or_default()),
                ("device", self.device.clone().unwrap_or_default()),
                ("before", before_ms.map(|b| b.to_string()).unwrap_or_default()),
            ],
        )
    }

    fn store_filter(&self, before_ms: Option<i64>) -> AlertFilter {
        AlertFilter {
            device: self.device.clone(),
            severity: self.severity.map(|s| s.as_str().to_owned()),
            status: self.status.store_status(),
            before_ms,
            limit: BATCH,
        }
    }

    /// New alerts can only be shown live where they belong: the newest page of a view that
    /// shows open alerts of any severity on any device.
    fn live(&self) -> bool {
        self.before_ms.is_none()
            && self.severity.is_none()
            && self.device.is_none()
            && matches!(self.status, StatusChoice::Active | StatusChoice::All)
    }
}

/// `path?k=v&…` with the non-empty values, encoded.
pub(super) fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let kept: Vec<&(&str, String)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    match serde_urlencoded::to_string(&kept) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// A page out of rows sorted newest first (one more than `size` tells that more follow), and the
/// cursor of the next page. The store pages by "last seen before", so the page ends where the
/// time changes: rows sharing the first left-out row's time go to the next page together.
fn cut_page<T>(mut rows: Vec<T>, size: usize, at: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let Some(boundary) = rows.get(size).map(&at) else { return (rows, None) };
    rows.truncate(size);
    match rows.iter().rposition(|r| at(r) != boundary) {
        Some(last_kept) => {
            rows.truncate(last_kept.saturating_add(1));
            (rows, Some(boundary.saturating_add(1)))
        }
        // A whole page from one millisecond: go on strictly before it (its excess is skipped).
        None => (rows, Some(boundary)),
    }
}

/// Where to read the store next after a full batch: from just after its last row's time, so
/// rows of that same time are not skipped (those already seen are dropped), unless the whole
/// batch shares one time, which would read the same batch again.
fn next_batch_cursor(batch: &[Alert]) -> Option<i64> {
    let (first, last) = (batch.first()?.last_ms, batch.last()?.last_ms);
    Some(if first == last { last } else { last.saturating_add(1) })
}

/// One page of the alerts the caller may read that pass `f`, newest first, and the cursor of
/// the next page. The caller's scope is applied as the API's `list_alerts` applies it, but after
/// reading as many batches as it takes, so that a scoped caller's pages are not cut short by
/// alerts they cannot see.
async fn visible_page(
    state: &AppState,
    caller: &Caller,
    f: &InboxFilter,
) -> Result<(Vec<Alert>, Option<i64>), StoreError> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = f.before_ms;
    let mut last_read = None;
    for _ in 0..MAX_BATCHES {
        let batch = state.store.alerts(&f.store_filter(cursor)).await?;
        let exhausted = batch.len() < BATCH;
        cursor = next_batch_cursor(&batch);
        last_read = batch.last().map(|a| a.last_ms).or(last_read);
        for a in batch {
            if seen.insert(a.id.clone()) && f.status.keeps(&a.status) && readable(caller, &a) {
                found.push(a);
            }
        }
        if found.len() > PAGE_SIZE {
            return Ok(cut_page(found, PAGE_SIZE, |a| a.last_ms));
        }
        if exhausted || cursor.is_none() {
            return Ok((found, None));
        }
    }
    // Read enough for one answer: show what was found and go on strictly before the last
    // alert read (alerts of that very millisecond not yet read are skipped).
    Ok((found, last_read))
}

/// A row of the inbox.
#[derive(Debug)]
pub struct Row {
    pub id: String,
    pub severity: String,
    pub title: String,
    pub device_id: String,
    pub status: String,
    pub count: i64,
    pub response: String,
    pub escalation_step: i64,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct Inbox {
    ctx: Ctx,
    status: String,
    severity: String,
    device: String,
    rows: Vec<Row>,
    /// The next (older) page.
    older: Option<String>,
    /// The first page with the same filters, when this is not it.
    newest: Option<String>,
    live: bool,
    page_size: usize,
    errors: FieldErrors,
    statuses: &'static [(&'static str, &'static str)],
    severities: [Severity; 5],
}

pub async fn inbox(
    State(state): State<AppState>,
    ctx: Ctx,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, Page> {
    let caller = ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    let (q, parsed) = match query {
        Ok(Query(q)) => {
            let parsed = InboxFilter::parse(&q);
            (q, parsed)
        }
        Err(_) => (InboxQuery::default(), Err(FieldErrors::general("This address's filters are not valid."))),
    };
    let (filter, errors) = match parsed {
        Ok(f) => (Some(f), FieldErrors::none()),
        Err(e) => (None, e),
    };
    let (alerts, next) = match &filter {
        Some(f) => visible_page(&state, &caller, f).await?,
        None => (Vec::new(), None),
    };
    let rows = alerts
        .into_iter()
        .map(|a| Row {
            last_seen: time(a.last_ms),
            id: a.id,
            severity: a.severity,
            title: a.title,
            device_id: a.device_id,
            status: a.status,
            count: a.count,
            response: a.response,
            escalation_step: a.escalation_step,
        })
        .collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = Inbox {
        ctx: ctx.at("alerts"),
        status: q.status.trim().to_owned(),
        severity: q.severity.trim().to_owned(),
        device: q.device.trim().to_owned(),
        rows,
        older: filter.as_ref().and_then(|f| next.map(|n| f.href(Some(n)))),
        newest: filter.as_ref().filter(|f| f.before_ms.is_some()).map(|f| f.href(None)),
        live: filter.as_ref().is_some_and(InboxFilter::live),
        page_size: PAGE_SIZE,
        errors,
        statuses: STATUS_CHOICES,
        severities: [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info],
    };
    Ok(render(status, &page))
}

/// `user:<id>` as the username where the id is known; other actors as they are.
pub(super) async fn actor_names(state: &AppState) -> HashMap<String, String> {
    match state.store.users().await {
        Ok(users) => users.into_iter().map(|u| (format!("user:{}", u.id), u.username)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read users to name actors");
            HashMap::new()
        }
    }
}

pub(super) fn actor_name(names: &HashMap<String, String>, actor: &str) -> String {
    names.get(actor).cloned().unwrap_or_else(|| actor.to_owned())
}

/// `0 s`, `45 s`, `5 min`, `1 h 30 min`, `2 d 4 h`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// One tier of the alert's escalation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierRow {
    /// 1-based.
    pub number: usize,
    pub when: String,
    pub channels: String,
    /// A step to this tier was sent.
    pub reached: bool,
    /// The step to this tier is the next one.
    pub next: bool,
}

/// Where an alert's escalation stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Escalation {
    /// The alert's profile has an escalation policy.
    pub configured: bool,
    pub min_severity: String,
    pub repeat: bool,
    pub steps_sent: i64,
    pub tiers: Vec<TierRow>,
    /// One sentence: why it goes on or not.
    pub state: String,
    /// The next step: which tier and when.
    pub next: Option<String>,
}

/// What of an alert its escalation depends on.
#[derive(Debug, Clone, Copy)]
pub struct EscalationFacts<'a> {
    pub severity: &'a str,
    pub status: &'a str,
    pub first_ms: i64,
    pub steps_sent: i64,
    pub suppressed_until_ms: Option<i64>,
}

/// When step `step` of an unacknowledged alert falls due (at or before `now_ms`: due now), or
/// `None` if it never does.
fn step_due_at(policy: &EscalationPolicy, first_ms: i64, step: u32, now_ms: i64) -> Option<i64> {
    let mut t = now_ms;
    for _ in 0..=MAX_STEPS {
        let (due, next_at) = policy.steps_due(first_ms, t);
        if due > step {
            return Some(t);
        }
        let at = next_at?;
        if due == step {
            return Some(at);
        }
        t = at;
    }
    None
}

/// Where the escalation of an alert stands under its profile's policy (`None`: none).
pub fn escalation(policy: Option<&(Severity, EscalationPolicy)>, a: EscalationFacts<'_>, now_ms: i64) -> Escalation {
    let sent = a.steps_sent.max(0);
    let Some((min, policy)) = policy else {
        let state = if sent > 0 {
            format!("{sent} step(s) were sent; the alert's profile no longer has an escalation policy.")
        } else {
            "The alert's profile has no escalation policy: nobody is paged beyond the usual notices.".to_owned()
        };
        return Escalation { steps_sent: sent, state, ..Escalation::default() };
    };
    let n = policy.tiers.len();
    let next_step = u32::try_from(sent).unwrap_or(u32::MAX);
    let more = next_step < MAX_STEPS && (usize::try_from(next_step).is_ok_and(|s| s < n) || policy.repeat);
    let next_tier = if more && n > 0 { usize::try_from(next_step).ok().map(|s| s % n) } else { None };
    let tiers = policy
        .tiers
        .iter()
        .enumerate()
        .map(|(i, t)| TierRow {
            number: i.saturating_add(1),
            when: match i {
                0 => "when the alert opens".to_owned(),
                _ => format!("{} after tier {i}", span(t.after_ms)),
            },
            channels: t.channels.join(", "),
            reached: i64::try_from(i).is_ok_and(|i| i < sent),
            next: Some(i) == next_tier,
        })
        .collect();
    let mut e = Escalation {
        configured: true,
        min_severity: min.as_str().to_owned(),
        repeat: policy.repeat,
        steps_sent: sent,
        tiers,
        state: String::new(),
        next: None,
    };
    let tier_name = |t: usize| {
        let channels = policy.tiers.get(t).map(|t| t.channels.join(", ")).unwrap_or_default();
        format!("tier {} ({channels})", t.saturating_add(1))
    };
    if a.status == Status::Resolved.as_str() {
        e.state = "Stopped: the alert is resolved.".into();
    } else if a.status == Status::Acknowledged.as_str() {
        e.state = "Stopped: someone acknowledged the alert.".into();
    } else if Severity::parse(a.severity).is_none_or(|s| s < *min) {
        e.state = format!("Does not escalate: the profile escalates {} alerts and worse.", min.as_str());
    } else if let Some(until) = a.suppressed_until_ms.filter(|u| *u > now_ms) {
        e.state = format!("Paused while suppressed, until {}.", time(until));
        e.next = next_tier.map(|t| format!("{} once the suppression ends, if still unacknowledged", tier_name(t)));
    } else if let Some(t) = next_tier {
        e.state = "Escalating until someone acknowledges the alert.".into();
        e.next = step_due_at(policy, a.first_ms, next_step, now_ms).map(|at| {
            if at <= now_ms {
                format!("{}: due now", tier_name(t))
            } else {
                format!("{} at {}", tier_name(t), time(at))
            }
        });
    } else {
        e.state = "Every tier was notified; nothing further is sent.".into();
    }
    e
}

/// One entry of an alert's timeline; a run of repeats is one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub label: String,
    pub at: String,
    /// The last of a run of repeats.
    pub until: Option<String>,
    pub times: usize,
    pub actor: Option<String>,
    pub detail: Option<String>,
}

fn event_label(kind: &str) -> String {
    match kind {
        "opened" => "Opened",
        "repeated" => "Repeated",
        "acknowledged" => "Acknowledged",
        "resolved" => "Resolved",
        "false_positive" => "Resolved as a false positive",
        "suppressed" => "Suppressed",
        "escalated" => "Escalated",
        "response" => "Automated response",
        "cleared" => "Condition cleared",
        other => other,
    }
    .to_owned()
}

/// The timeline from the API's history (oldest first), runs of repeats folded into one entry.
pub fn timeline(history: &[palisade_proto::detect::AlertEventView], names: &HashMap<String, String>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for h in history {
        if h.kind == "repeated"
            && let Some(last) = out.last_mut()
            && last.kind == "repeated"
        {
            last.times = last.times.saturating_add(1);
            last.until = Some(rfc_time(&h.at));
            last.detail.clone_from(&h.detail);
            continue;
        }
        let detail = match (h.kind.as_str(), h.detail.as_deref()) {
            ("suppressed", Some(d)) => d
                .strip_prefix("until ")
                .and_then(|ms| ms.parse::<i64>().ok())
                .map_or_else(|| Some(d.to_owned()), |ms| Some(format!("until {}", time(ms)))),
            (_, d) => d.map(str::to_owned),
        };
        out.push(Event {
            kind: h.kind.clone(),
            label: event_label(&h.kind),
            at: rfc_time(&h.at),
            until: None,
            times: 1,
            actor: h.actor.as_deref().map(|a| actor_name(names, a)),
            detail,
        });
    }
    out
}

/// How long a suppression may be chosen for: (value, label).
const DURATIONS: &[(&str, &str)] = &[("1h", "1 hour"), ("8h", "8 hours"), ("24h", "24 hours"), ("7d", "7 days")];

/// `90m`, `8h`, `7d` in minutes (the API checks the range).
pub fn duration_minutes(s: &str) -> Option<u32> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u32 = s.get(..s.len().saturating_sub(unit.len_utf8()))?.parse().ok()?;
    match unit {
        'm' => Some(n),
        'h' => n.checked_mul(60),
        'd' => n.checked_mul(1440),
        _ => None,
    }
}

fn resolution_label(r: &str) -> &str {
    match r {
        "cleared" => "cleared by itself (the condition went away)",
        "resolved" => "resolved by a person",
        "false_positive" => "a false positive",
        other => other,
    }
}

/// An action on the alert page: the form it comes from, its fields, what is said when it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    Resolve,
    FalsePositive,
    Suppress,
}

impl Action {
    fn key(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Resolve => "resolve",
            Self::FalsePositive => "false-positive",
            Self::Suppress => "suppress",
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Resolve => &["note"],
            Self::Suppress => &["duration"],
            Self::Ack | Self::FalsePositive => &[],
        }
    }

    fn done_message(key: &str) -> Option<&'static str> {
        match key {
            "ack" => Some("Acknowledged: escalation stopped."),
            "resolve" => Some("Resolved."),
            "false-positive" => {
                Some("Resolved as a false positive: the device's learned baseline now takes this as normal.")
            }
            "suppress" => Some("Suppressed: repeats cause no notices, escalation or responses until the time shown."),
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "alert.html")]
struct Detail {
    ctx: Ctx,
    a: AlertView,
    first_seen: String,
    last_seen: String,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<String>,
    resolved_at: Option<String>,
    resolution: Option<String>,
    suppressed_until: Option<String>,
    suppressed_now: bool,
    escalation: Escalation,
    timeline: Vec<Event>,
    may_act: bool,
    can_ack: bool,
    can_resolve: bool,
    done: Option<&'static str>,
    /// The form refused, if one was: its key.
    failed: &'static str,
    errors: FieldErrors,
    note: String,
    duration: String,
    durations: &'static [(&'static str, &'static str)],
}

async fn load(state: &AppState, ctx: Ctx, id: &str) -> Result<Detail, Page> {
    let caller = ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    let Json(d) = api::get_alert(State(state.clone()), caller, Path(id.to_owned())).await?;
    let names = actor_names(state).await;
    let now = crate::now_ms();
    let a = d.alert;
    let ms = |s: &str| crate::api::convert::parse_rfc3339("time", s).ok();
    let suppressed_until_ms = a.suppressed_until.as_deref().and_then(ms);
    let profiles = state.profiles.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let policy = profiles.iter().find(|p| p.profile.name == a.profile).and_then(|p| p.escalation.as_ref());
    let facts = EscalationFacts {
        severity: &a.severity,
        status: &a.status,
        first_ms: ms(&a.first_seen).unwrap_or(0),
        steps_sent: a.escalation_step,
        suppressed_until_ms,
    };
    let escalation = escalation(policy, facts, now);
    let status = Status::parse(&a.status);
    let may_act = ctx.may("alerts.ack");
    Ok(Detail {
        first_seen: rfc_time(&a.first_seen),
        last_seen: rfc_time(&a.last_seen),
        acknowledged_by: a.acknowledged_by.as_deref().map(|x| actor_name(&names, x)),
        acknowledged_at: a.acknowledged_at.as_deref().map(rfc_time),
        resolved_at: a.resolved_at.as_deref().map(rfc_time),
        resolution: a.resolution.as_deref().map(|r| resolution_label(r).to_owned()),
        suppressed_until: a.suppressed_until.as_deref().map(rfc_time),
        suppressed_now: suppressed_until_ms.is_some_and(|u| u > now),
        escalation,
        timeline: timeline(&d.history, &names),
        may_act,
        can_ack: may_act && status.is_some_and(|s| s.may_become(Status::Acknowledged)),
        can_resolve: may_act && status.is_some_and(|s| s.may_become(Status::Resolved)),
        done: None,
        failed: "",
        errors: FieldErrors::none(),
        note: String::new(),
        duration: String::new(),
        durations: DURATIONS,
        a,
        ctx: ctx.at("alerts"),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    done: String,
}

pub async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Response, Page> {
    let mut page = load(&state, ctx, &id).await?;
    page.done = query.ok().and_then(|Query(q)| Action::done_message(&q.done));
    Ok(render(StatusCode::OK, &page))
}

/// Every action form's fields (the CSRF token is the guard's).
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    duration: String,
}

impl ActionForm {
    fn note(&self) -> Option<String> {
        Some(self.note.trim().to_owned()).filter(|n| !n.is_empty())
    }
}

/// After an action: back to the alert (Post/Redirect/Get), or the alert with the refusal next
/// to the form that was refused.
async fn finish(
    state: &AppState,
    ctx: Ctx,
    id: &str,
    action: Action,
    result: Result<(), ApiError>,
    form: ActionForm,
) -> Result<Response, Page> {
    let e = match result {
        Ok(()) => {
            return Ok(Redirect::to(&format!("/ui/alerts/{}?done={}", url_encode(id), action.key())).into_response());
        }
        Err(e) if matches!(e.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) => {
            return Err(e.into());
        }
        Err(e) => e,
    };
    refused(state, ctx, id, action, e.status, FieldErrors::from_api(&e, &[("minutes", "duration")]), form).await
}

async fn refused(
    state: &AppState,
    ctx: Ctx,
    id: &str,
    action: Action,
    status: StatusCode,
    mut errors: FieldErrors,
    form: ActionForm,
) -> Result<Response, Page> {
    // A refusal naming a field this form does not have is said for the whole form.
    if let Some((field, message)) = errors.fields.iter().find(|(f, _)| !action.fields().contains(&f.as_str())) {
        errors = FieldErrors::general(format!("{field}: {message}"));
    }
    let mut page = load(state, ctx, id).await?;
    page.failed = action.key();
    page.errors = errors;
    page.note = form.note;
    page.duration = form.duration;
    Ok(render(status, &page))
}

pub async fn acknowledge(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Page> {
    let body = AlertAction { note: form.note(), false_positive: false };
    let result = api::ack(State(state.clone()), caller, Path(id.clone()), OptionalJson(body)).await.map(|_| ());
    finish(&state, ctx, &id, Action::Ack, result, form).await
}

pub async fn resolve(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Page> {
    let body = AlertAction { note: form.note(), false_positive: false };
    let result = api::resolve(State(state.clone()), caller, Path(id.clone()), OptionalJson(body)).await.map(|_| ());
    finish(&state, ctx, &id, Action::Resolve, result, form).await
}

pub async fn false_positive(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Page> {
    let body = AlertAction { note: form.note(), false_positive: true };
    let result = api::resolve(State(state.clone()), caller, Path(id.clone()), OptionalJson(body)).await.map(|_| ());
    finish(&state, ctx, &id, Action::FalsePositive, result, form).await
}

pub async fn suppress(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Page> {
    let Some(minutes) = duration_minutes(&form.duration) else {
        let errors = FieldErrors::field("duration", "Choose how long: 1 hour, 8 hours, 24 hours or 7 days.");
        return refused(&state, ctx, &id, Action::Suppress, StatusCode::UNPROCESSABLE_ENTITY, errors, form).await;
    };
    let body = SuppressRequest { minutes };
    let result = api::suppress(State(state.clone()), caller, Path(id.clone()), ApiJson(body)).await.map(|_| ());
    finish(&state, ctx, &id, Action::Suppress, result, form).await
}

#[cfg(test)]
mod tests {
    use palisade_core::detect::alert::Tier;
    use palisade_proto::detect::AlertEventView;

    use super::*;

    fn query(status: &str, severity: &str, device: &str, before: &str) -> InboxQuery {
        InboxQuery { status: status.into(), severity: severity.into(), device: device.into(), before: before.into() }
    }

    #[test]
    fn suppress_durations() {
        assert_eq!(duration_minutes("1h"), Some(60));
        assert_eq!(duration_minutes("8h"), Some(480));
        assert_eq!(duration_minutes(" 24h "), Some(1440));
        assert_eq!(duration_minutes("7d"), Some(10_080));
        assert_eq!(duration_minutes("90m"), Some(90));
        for bad in ["", "h", "7", "7w", "-1h", "1.5h", "99999999999d", "1hh", "é"] {
            assert_eq!(duration_minutes(bad), None, "{bad}");
        }
        assert_eq!(duration_minutes("9999999d"), None, "overflow");
        for (value, _) in DURATIONS {
            assert!(duration_minutes(value).is_some_and(|m| (1..=43_200).contains(&m)), "{value}");
        }
    }

    #[test]
    fn inbox_filters_and_their_links() {
        let f = InboxFilter::parse(&query("", "", "", "")).unwrap();
        assert_eq!(f, InboxFilter::default());
        assert_eq!(f.href(None), "/ui/alerts");
        assert!(f.live());
        assert_eq!(f.href(Some(1_700_000_000_000)), "/ui/alerts?before=1700000000000");

        let f = InboxFilter::parse(&query("resolved", "high", "0123456789abcdefghjk", "42")).unwrap();
        assert_eq!(f.status, StatusChoice::Only(Status::Resolved));
        assert_eq!(f.severity, Some(Severity::High));
        assert_eq!(f.before_ms, Some(42));
        assert!(!f.live());
        assert_eq!(f.href(Some(7)), "/ui/alerts?status=resolved&severity=high&device=0123456789abcdefghjk&before=7");
        assert_eq!(InboxFilter::parse(&query("active", "any", "", "")).unwrap().href(None), "/ui/alerts");
        assert_eq!(InboxFilter::parse(&query("all", "", "", "")).unwrap().href(None), "/ui/alerts?status=all");

        let e = InboxFilter::parse(&query("closed", "urgent", "x y", "soon")).unwrap_err();
        assert!(e.get("status").is_some() && e.get("severity").is_some() && e.get("device").is_some());
        assert!(e.general.is_some());
        assert_eq!(with_query("/ui/x", &[("a", "b c&d".into()), ("e", String::new())]), "/ui/x?a=b+c%26d");
    }

    #[test]
    fn status_choices() {
        assert!(StatusChoice::Active.keeps("open") && StatusChoice::Active.keeps("acknowledged"));
        assert!(!StatusChoice::Active.keeps("resolved"));
        assert!(StatusChoice::All.keeps("resolved"));
        assert_eq!(StatusChoice::Only(Status::Open).store_status().as_deref(), Some("open"));
        assert_eq!(StatusChoice::Active.store_status(), None);
        for (value, _) in STATUS_CHOICES {
            assert_eq!(StatusChoice::parse(value).map(StatusChoice::as_str), Some(*value));
        }
    }

    #[test]
    fn pages_end_where_the_time_changes() {
        let at = |t: &i64| *t;
        assert_eq!(cut_page(vec![9, 8, 7], 3, at), (vec![9, 8, 7], None));
        assert_eq!(cut_page(vec![9, 8, 7, 6], 3, at), (vec![9, 8, 7], Some(7)));
        // 7 and 7 go to the next page together, which starts at 7 (before 8).
        assert_eq!(cut_page(vec![9, 8, 7, 7], 3, at), (vec![9, 8], Some(8)));
        assert_eq!(cut_page(vec![5, 5, 5, 5], 3, at), (vec![5, 5, 5], Some(5)));
        assert_eq!(cut_page(Vec::<i64>::new(), 3, at), (vec![], None));
    }

    fn policy(repeat: bool) -> (Severity, EscalationPolicy) {
        let tiers = vec![
            Tier { after_ms: 0, channels: vec!["soc".into()] },
            Tier { after_ms: 300_000, channels: vec!["pager".into(), "sms".into()] },
        ];
        (Severity::High, EscalationPolicy { name: "p".into(), tiers, repeat })
    }

    fn facts(status: &'static str, severity: &'static str, steps_sent: i64) -> EscalationFacts<'static> {
        EscalationFacts { severity, status, first_ms: 1_000_000, steps_sent, suppressed_until_ms: None }
    }

    #[test]
    fn escalation_says_what_is_next() {
        let p = policy(false);
        let e = escalation(Some(&p), facts("open", "critical", 1), 1_000_000 + 60_000);
        assert!(e.configured);
        assert_eq!(
            (e.tiers[0].reached, e.tiers[0].next, e.tiers[1].reached, e.tiers[1].next),
            (true, false, false, true)
        );
        assert_eq!(e.tiers[1].when, "5 min after tier 1");
        assert_eq!(e.tiers[1].channels, "pager, sms");
        assert_eq!(e.next.as_deref(), Some(format!("tier 2 (pager, sms) at {}", time(1_300_000)).as_str()));

        let e = escalation(Some(&p), facts("open", "critical", 1), 2_000_000);
        assert_eq!(e.next.as_deref(), Some("tier 2 (pager, sms): due now"));

        let e = escalation(Some(&p), facts("open", "critical", 2), 2_000_000);
        assert!(e.next.is_none() && e.state.starts_with("Every tier"));
        assert!(e.tiers.iter().all(|t| t.reached && !t.next));

        let e = escalation(Some(&policy(true)), facts("open", "high", 2), 1_300_000);
        assert_eq!(e.next.as_deref(), Some(format!("tier 1 (soc) at {}", time(1_360_000)).as_str()));

        let e = escalation(Some(&p), facts("acknowledged", "critical", 1), 2_000_000);
        assert!(e.next.is_none() && e.state.contains("acknowledged"));
        let e = escalation(Some(&p), facts("open", "medium", 0), 2_000_000);
        assert!(e.next.is_none() && e.state.contains("high alerts and worse"));
        let mut f = facts("open", "critical", 1);
        f.suppressed_until_ms = Some(5_000_000);
        let e = escalation(Some(&p), f, 2_000_000);
        assert!(e.state.starts_with("Paused") && e.next.is_some_and(|n| n.starts_with("tier 2")));

        let e = escalation(None, facts("open", "critical", 0), 2_000_000);
        assert!(!e.configured && e.tiers.is_empty() && e.next.is_none());
    }

    #[test]
    fn timeline_folds_repeats() {
        let ev = |at: &str, kind: &str, actor: Option<&str>, detail: Option<&str>| AlertEventView {
            at: at.into(),
            kind: kind.into(),
            actor: actor.map(str::to_owned),
            detail: detail.map(str::to_owned),
        };
        let history = vec![
            ev("1970-01-01T00:00:01Z", "opened", None, Some("tx 9 MB/s")),
            ev("1970-01-01T00:00:02Z", "repeated", None, Some("a")),
            ev("1970-01-01T00:00:03Z", "repeated", None, Some("b")),
            ev("1970-01-01T00:00:04Z", "repeated", None, Some("c")),
            ev("1970-01-01T00:00:05Z", "suppressed", Some("user:u1"), Some("until 3600000")),
            ev("1970-01-01T00:00:06Z", "false_positive", Some("user:u2"), None),
        ];
        let names = HashMap::from([("user:u1".to_owned(), "alice".to_owned())]);
        let t = timeline(&history, &names);
        assert_eq!(t.len(), 4);
        assert_eq!((t[1].times, t[1].at.as_str()), (3, "1970-01-01 00:00:02 UTC"));
        assert_eq!((t[1].until.as_deref(), t[1].detail.as_deref()), (Some("1970-01-01 00:00:04 UTC"), Some("c")));
        assert_eq!(t[2].detail.as_deref(), Some("until 1970-01-01 01:00:00 UTC"));
        assert_eq!(t[2].actor.as_deref(), Some("alice"));
        assert_eq!((t[3].label.as_str(), t[3].actor.as_deref()), ("Resolved as a false positive", Some("user:u2")));
    }

    #[test]
    fn spans() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(300_000), "5 min");
        assert_eq!(span(5_400_000), "1 h 30 min");
        assert_eq!(span(7_200_000), "2 h");
        assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
    }
}
