//! The overview: the fleet by state, criticality and region, open alerts by severity, firmware
//! compliance, the riskiest devices, and the live alert feed.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use palisade_core::{DeviceId, Permission};
use palisade_store::devices::DeviceFilter;

use super::view::{Ctx, Page, render, time};
use crate::AppState;

/// A count with its share of the whole, for the bars.
#[derive(Debug)]
pub struct Share {
    pub label: String,
    pub count: i64,
    /// 0–100.
    pub percent: i64,
}

fn shares(rows: &[(String, i64)], empty_label: &str) -> Vec<Share> {
    let total: i64 = rows.iter().map(|(_, n)| n).sum::<i64>().max(1);
    rows.iter()
        .map(|(label, count)| Share {
            label: if label.is_empty() { empty_label.to_owned() } else { label.clone() },
            count: *count,
            percent: count * 100 / total,
        })
        .collect()
}

/// One model's firmware: how many devices run its newest version.
#[derive(Debug)]
pub struct Compliance {
    pub model: String,
    pub newest: String,
    pub on_newest: i64,
    pub total: i64,
    pub percent: i64,
}

/// Orders versions by their numeric parts (`1.10.0` after `1.9.2`), then as text.
pub fn version_key(v: &str) -> (Vec<u64>, String) {
    let nums = v.trim_start_matches(['v', 'V']).split(['.', '-', '+']).map_while(|p| p.parse::<u64>().ok()).collect();
    (nums, v.to_owned())
}

fn compliance(firmware: &[(String, String, i64)]) -> Vec<Compliance> {
    let mut by_model: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for (model, version, n) in firmware {
        match by_model.iter_mut().find(|(m, _)| m == model) {
            Some((_, v)) => v.push((version.clone(), *n)),
            None => by_model.push((model.clone(), vec![(version.clone(), *n)])),
        }
    }
    by_model
        .into_iter()
        .map(|(model, versions)| {
            let total = versions.iter().map(|(_, n)| n).sum::<i64>();
            let (newest, on_newest) = versions
                .iter()
                .filter(|(v, _)| !v.is_empty())
                .max_by_key(|(v, _)| version_key(v))
                .cloned()
                .unwrap_or_default();
            Compliance { model, newest, on_newest, total, percent: on_newest * 100 / total.max(1) }
        })
        .collect()
}

/// A device with open alerts, ranked by severity × criticality.
#[derive(Debug)]
pub struct Risky {
    pub device_id: String,
    pub serial: String,
    pub model: String,
    pub criticality: String,
    pub state: String,
    pub open_alerts: usize,
    pub worst: String,
    pub score: i64,
}

fn severity_weight(s: &str) -> i64 {
    match s {
        "critical" => 10,
        "high" => 5,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

fn criticality_weight(c: &str) -> i64 {
    match c {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        _ => 1,
    }
}

/// A row of the live feed.
#[derive(Debug)]
pub struct FeedRow {
    pub id: String,
    pub severity: String,
    pub status: String,
    pub title: String,
    pub device_id: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    ctx: Ctx,
    total: i64,
    by_state: Vec<Share>,
    by_criticality: Vec<Share>,
    by_region: Vec<Share>,
    firmware: Vec<Compliance>,
    show_alerts: bool,
    by_severity: Vec<Share>,
    risky: Vec<Risky>,
    feed: Vec<FeedRow>,
}

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

pub async fn page(State(state): State<AppState>, ctx: Ctx) -> Result<Response, Page> {
    let caller = ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    let filter = DeviceFilter { scopes: caller.authority.scopes_for(Permission::DevicesRead), ..Default::default() };
    let summary = if caller.can(Permission::DevicesRead) {
        state.store.fleet_summary(&filter).await?
    } else {
        palisade_store::devices::FleetSummary::default()
    };
    let total = summary.by_state.iter().map(|(_, n)| n).sum();
    let show_alerts = caller.can(Permission::AlertsRead);
    let (mut by_severity, mut risky, mut feed) = (Vec::new(), Vec::new(), Vec::new());
    if show_alerts {
        let mut open = state.store.open_alerts().await?;
        open.retain(|a| caller.can_on(Permission::AlertsRead, a.group.as_deref(), None));
        let counts: Vec<(String, i64)> = SEVERITIES
            .iter()
            .map(|s| ((*s).to_owned(), open.iter().filter(|a| a.severity == *s).count() as i64))
            .collect();
        by_severity = shares(&counts, "");
        let mut per_device: HashMap<&str, Vec<&palisade_store::alerts::Alert>> = HashMap::new();
        for a in &open {
            per_device.entry(a.device_id.as_str()).or_default().push(a);
        }
        for (device_id, alerts) in per_device {
            let Ok(id) = device_id.parse::<DeviceId>() else { continue };
            let Ok(d) = state.store.get_device(&id).await else { continue };
            let crit = d.attrs.criticality.as_str();
            let score = alerts.iter().map(|a| severity_weight(&a.severity)).sum::<i64>() * criticality_weight(crit);
            let worst = alerts
                .iter()
                .max_by_key(|a| severity_weight(&a.severity))
                .map_or_else(String::new, |a| a.severity.clone());
            risky.push(Risky {
                device_id: device_id.to_owned(),
                serial: d.attrs.serial.clone(),
                model: d.attrs.model.clone(),
                criticality: crit.to_owned(),
                state: d.state.as_str().to_owned(),
                open_alerts: alerts.len(),
                worst,
                score,
            });
        }
        risky.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.device_id.cmp(&b.device_id)));
        risky.truncate(10);
        open.sort_by_key(|a| std::cmp::Reverse(a.last_ms));
        feed = open
            .iter()
            .take(15)
            .map(|a| FeedRow {
                id: a.id.clone(),
                severity: a.severity.clone(),
                status: a.status.clone(),
                title: a.title.clone(),
                device_id: a.device_id.clone(),
                last_seen: time(a.last_ms),
            })
            .collect();
    }
    let page = Overview {
        ctx: ctx.at("overview"),
        total,
        by_state: shares(&summary.by_state, "(none)"),
        by_criticality: shares(&summary.by_criticality, "(none)"),
        by_region: shares(&summary.by_region, "(no region)"),
        firmware: compliance(&summary.firmware),
        show_alerts,
        by_severity,
        risky,
        feed,
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_firmware_is_compared_by_number() {
        let rows = vec![
            ("gw".to_owned(), "1.9.2".to_owned(), 30),
            ("gw".to_owned(), "1.10.0".to_owned(), 10),
            ("gw".to_owned(), String::new(), 5),
            ("meter".to_owned(), "2.0".to_owned(), 4),
        ];
        let c = compliance(&rows);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].newest.as_str(), c[0].on_newest, c[0].total, c[0].percent), ("1.10.0", 10, 45, 22));
        assert_eq!((c[1].newest.as_str(), c[1].percent), ("2.0", 100));
    }

    #[test]
    fn shares_add_up() {
        let s = shares(&[("active".into(), 3), ("".into(), 1)], "(none)");
        assert_eq!((s[0].percent, s[1].label.as_str(), s[1].percent), (75, "(none)", 25));
        assert!(shares(&[], "x").is_empty());
    }
}
