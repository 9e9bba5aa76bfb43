//! `/ui/vulnerabilities`: the fleet's most urgent vulnerabilities (CVSS × criticality), SBOM
//! coverage and the latest advisory imports; `/ui/vulnerabilities/{id}`: which devices one
//! vulnerability touches, by any of its ids, with the firmware that fixes each affected build.
//! Both read through the API's own handlers (`api::vulns`), so scopes are the API's.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use palisade_core::Permission;
use serde::Deserialize;

use super::perm;
use super::view::{Ctx, Page, render, time, url_encode};
use crate::AppState;
use crate::api::policy::Policy;
use crate::api::vulns::{self as api, AffectedView, DevicesQuery, FleetExposureView, RankQuery};

/// Who may open what (see `super::PAGES`).
pub const PAGES: &[(&str, &str, Policy)] = &[
    ("GET", "/ui/vulnerabilities", perm(Permission::AlertsRead)),
    ("GET", "/ui/vulnerabilities/{id}", perm(Permission::AlertsRead)),
];

pub fn routes() -> Router<AppState> {
    Router::new().route("/ui/vulnerabilities", get(page)).route("/ui/vulnerabilities/{id}", get(detail))
}

/// Device ids on one page of a vulnerability.
const PAGE_SIZE: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    /// A CVE, GHSA, GO-… id to look up.
    #[serde(default)]
    id: String,
}

struct Ranked {
    id: String,
    cvss: String,
    risk: String,
    devices: usize,
    critical: usize,
}

struct ImportRow {
    id: String,
    at: String,
    actor: String,
    files: i64,
    documents: i64,
    alerts: i64,
}

#[derive(Template)]
#[template(path = "vulnerabilities.html")]
struct ListPage {
    ctx: Ctx,
    /// `None` for a scoped caller (the ranking is fleet-wide).
    ranked: Option<Vec<Ranked>>,
    covered: usize,
    uncovered: usize,
    no_version: usize,
    imports: Vec<ImportRow>,
}

fn score(cvss: Option<f64>) -> String {
    cvss.map_or_else(|| "—".to_owned(), |c| format!("{c:.1}"))
}

pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, Page> {
    let caller = ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    if let Ok(Query(q)) = query
        && !q.id.trim().is_empty()
    {
        return Ok(Redirect::to(&format!("/ui/vulnerabilities/{}", url_encode(q.id.trim()))).into_response());
    }
    let fleet: Option<FleetExposureView> = if caller.authority.scopes_for(Permission::AlertsRead).is_none() {
        let Json(v) = api::fleet(State(state.clone()), caller.clone(), Query(RankQuery { top: Some(50) })).await?;
        Some(v)
    } else {
        None
    };
    let Json(imports) = api::list_imports(State(state.clone()), caller).await?;
    let imports = imports
        .into_iter()
        .take(10)
        .map(|i| ImportRow {
            at: time(i.report.get("at_ms").and_then(serde_json::Value::as_i64).unwrap_or_default()),
            alerts: i.report.get("alerts_raised").and_then(serde_json::Value::as_i64).unwrap_or_default(),
            id: i.id,
            actor: i.actor,
            files: i.files,
            documents: i.documents,
        })
        .collect();
    let (covered, uncovered, no_version) = fleet
        .as_ref()
        .map_or((0, 0, 0), |f| (f.devices_covered, f.devices_without_sbom, f.devices_without_firmware_version));
    let ranked = fleet.map(|f| {
        f.vulnerabilities
            .into_iter()
            .map(|v| Ranked {
                cvss: score(v.cvss),
                risk: format!("{:.0}", v.risk),
                devices: v.devices,
                critical: v.by_criticality.get("critical").copied().unwrap_or_default(),
                id: v.vulnerability,
            })
            .collect()
    });
    let page = ListPage { ctx: ctx.at("vulnerabilities"), ranked, covered, uncovered, no_version, imports };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    offset: usize,
}

#[derive(Template)]
#[template(path = "vulnerability.html")]
struct DetailPage {
    ctx: Ctx,
    v: AffectedView,
    cvss: String,
    /// (label, count, percent of the affected devices) per criticality, most critical first.
    criticality: Vec<(String, usize, usize)>,
    regions: Vec<(String, usize)>,
    groups: Vec<(String, usize)>,
    first: usize,
    older: Option<String>,
    newer: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Response, Page> {
    let caller = ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    let offset = query.map_or(0, |Query(q)| q.offset);
    let q = DevicesQuery { offset: Some(offset), limit: Some(PAGE_SIZE) };
    let Json(v) = api::affected(State(state), caller, Path(id.clone()), Query(q)).await?;
    let total = v.devices_total.max(1);
    let criticality = ["critical", "high", "medium", "low"]
        .iter()
        .map(|c| {
            let n = v.by_criticality.get(*c).copied().unwrap_or_default();
            ((*c).to_owned(), n, n * 100 / total)
        })
        .collect();
    let label = |s: &String| if s.is_empty() { "(none)".to_owned() } else { s.clone() };
    let regions = v.by_region.iter().map(|(k, n)| (label(k), *n)).collect();
    let groups = v.by_group.iter().map(|(k, n)| (label(k), *n)).collect();
    let base = format!("/ui/vulnerabilities/{}", url_encode(&id));
    let older = v.next_offset.map(|n| format!("{base}?offset={n}"));
    let newer = (offset > 0).then(|| format!("{base}?offset={}", offset.saturating_sub(PAGE_SIZE)));
    let page = DetailPage {
        ctx: ctx.at("vulnerabilities"),
        cvss: score(v.cvss),
        criticality,
        regions,
        groups,
        first: offset + 1,
        older,
        newer,
        v,
    };
    Ok(render(StatusCode::OK, &page))
}
