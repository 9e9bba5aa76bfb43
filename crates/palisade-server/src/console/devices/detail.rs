//! One device's page: identity and certificates, lifecycle state with the actions possible from
//! it (each behind a confirmation), posture from the latest telemetry, commands, plots over a
//! window (data usage against the learned baseline, connects, CPU, the location track with the
//! geofences), its alerts and its audit trail.
//!
//! The device is read through `api::devices::get`, so a device outside the caller's scope is
//! "not found" here too; actions call the API's handlers and redirect back (Post/Redirect/Get),
//! or show the API's refusal in the form that was sent.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_core::{Criticality, LifecycleState, Permission};
use palisade_proto::telemetry::TelemetryV1;
use palisade_proto::{ActionRequest, CommandRequest, DeviceView};
use palisade_store::alerts::AlertFilter;
use palisade_store::audit::AuditFilter;
use palisade_store::plane::Metric;
use serde::Deserialize;

use super::charts::{self, Window};
use crate::AppState;
use crate::api::devices as api;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, Caller, OptionalJson};
use crate::console::plot::{self, Band, Series, Unit};
use crate::console::view::{Ctx, FieldErrors, Page, render, rfc_time, time, url_encode};
use crate::detect::ParsedProfile;

/// The commands the form offers (the API refuses others): (name, what it does).
const COMMANDS: &[(&str, &str)] = &[
    ("ping", "Ping"),
    ("collect-diagnostics", "Collect diagnostics"),
    ("reboot", "Reboot"),
    ("rotate-credentials", "Rotate credentials"),
    ("quarantine-mode", "Enter quarantine mode"),
    ("wipe", "Wipe"),
];

/// Most telemetry reports read for the location track, and connection events for the plot.
const MAX_REPORTS: i64 = 5000;
const MAX_CONNECTIONS: i64 = 5000;

/// A lifecycle action offered on the page.
#[derive(Debug)]
pub struct Action {
    /// Path segment and element id: `quarantine`, `pause`, `release`, `decommission`.
    pub key: &'static str,
    pub label: &'static str,
    pub explain: &'static str,
    pub danger: bool,
    /// This form was sent and refused: open, with the refusal and the reason given.
    pub open: bool,
    pub errors: FieldErrors,
    pub reason: String,
}

const ACTIONS: [(&str, &str, &str, bool); 4] = [
    (
        "quarantine",
        "Quarantine",
        "Isolates the device: it stays connected for forensics but is cut off from its normal traffic until released.",
        true,
    ),
    ("pause", "Pause", "Stops the device's service until it is released; nothing is revoked.", false),
    ("release", "Release", "Returns the device to active.", false),
    (
        "decommission",
        "Decommission",
        "Permanent: the device's certificates are revoked and it is told to wipe itself. This cannot be undone.",
        true,
    ),
];

/// Whether an action can be taken from a state (the server checks again).
pub fn possible(action: &str, from: LifecycleState) -> bool {
    let next = from.allowed_next();
    match action {
        "quarantine" => next.contains(&LifecycleState::Quarantined),
        "pause" => next.contains(&LifecycleState::Paused),
        "release" => from.release().is_ok(),
        "decommission" => next.contains(&LifecycleState::Decommissioned),
        _ => false,
    }
}

/// A posture fact: its text and whether it is good, bad or unknown.
#[derive(Debug)]
pub struct Flag {
    pub text: &'static str,
    /// `good`, `bad` or `unknown`.
    pub class: &'static str,
}

/// `good_when`: the value that is healthy.
fn flag(v: Option<bool>, good_when: bool) -> Flag {
    match v {
        None => Flag { text: "not reported", class: "unknown" },
        Some(b) => Flag { text: if b { "yes" } else { "no" }, class: if b == good_when { "good" } else { "bad" } },
    }
}

/// What the latest telemetry says about the device's security posture.
#[derive(Debug)]
pub struct Posture {
    pub received_at: String,
    pub secure_boot: Flag,
    pub debug_enabled: Flag,
    pub default_credentials: Flag,
    pub firmware: String,
    pub digest: String,
    /// `tcp/22`…
    pub listening: Vec<String>,
    /// `tcp 203.0.113.9:443`… (the first 50).
    pub connections: Vec<String>,
    pub connections_total: usize,
    pub cpu: String,
    pub mem: String,
    pub uptime: String,
    pub failed_logins: String,
    pub cell: String,
    pub location: String,
}

fn posture(received_at: &str, t: &TelemetryV1) -> Posture {
    let fw = t.fw.clone().unwrap_or_default();
    let net = t.net.clone().unwrap_or_default();
    let sys = t.sys.clone().unwrap_or_default();
    let auth = t.auth.clone().unwrap_or_default();
    let shown = |v: Option<String>| v.unwrap_or_else(|| "—".to_owned());
    let mut listening: Vec<String> = net.listening.iter().map(|l| format!("{}/{}", l.proto, l.port)).collect();
    listening.sort();
    listening.dedup();
    let cell = t.cell.as_ref().map(|c| {
        let network = match (&c.mcc, &c.mnc) {
            (Some(mcc), Some(mnc)) => format!("{mcc}-{mnc}"),
            _ => "unknown network".to_owned(),
        };
        let rat = c.rat.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        format!("{network}{rat}, IMEI {}, ICCID {}", shown(c.imei.clone()), shown(c.iccid.clone()))
    });
    Posture {
        received_at: rfc_time(received_at),
        secure_boot: flag(fw.secure_boot, true),
        debug_enabled: flag(fw.debug_enabled, false),
        default_credentials: flag(auth.default_credentials, false),
        firmware: shown(fw.version),
        digest: shown(fw.digest),
        listening,
        connections: net.connections.iter().take(50).map(|c| format!("{} {}:{}", c.proto, c.dst, c.port)).collect(),
        connections_total: net.connections.len(),
        cpu: shown(sys.cpu_pct.map(|p| Unit::Percent.format(p))),
        mem: shown(sys.mem_pct.map(|p| Unit::Percent.format(p))),
        uptime: shown(sys.uptime_s.map(duration)),
        failed_logins: shown(auth.failed_logins.map(|n| n.to_string())),
        cell: shown(cell),
        location: shown(t.loc.as_ref().map(|l| match l.acc_m {
            Some(acc) => format!("{:.5}, {:.5} (±{acc:.0} m)", l.lat, l.lon),
            None => format!("{:.5}, {:.5}", l.lat, l.lon),
        })),
    }
}

/// `3d 4h`, `5h 12m`, `42s`.
fn duration(s: u64) -> String {
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[derive(Debug)]
pub struct CommandRow {
    pub id: String,
    pub command: String,
    pub status: String,
    pub created: String,
    pub updated: String,
}

#[derive(Debug)]
pub struct CertRow {
    pub serial: String,
    pub status: String,
    pub method: String,
    pub not_before: String,
    pub not_after: String,
    pub fingerprint: String,
    pub revoked: String,
}

#[derive(Debug)]
pub struct AlertRow {
    pub id: String,
    pub severity: String,
    pub status: String,
    pub title: String,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug)]
pub struct AuditRow {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

#[derive(Debug)]
pub struct WindowLink {
    pub key: &'static str,
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// A labelled fact of the identity section (`value` empty: not set).
#[derive(Debug)]
pub struct Fact {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    ctx: Ctx,
    id: String,
    serial: String,
    state: &'static str,
    criticality: &'static str,
    facts: Vec<Fact>,
    tags: Vec<String>,
    windows: Vec<WindowLink>,
    window_label: &'static str,
    posture: Option<Posture>,
    actions: Vec<Action>,
    may_act: bool,
    commands: Vec<CommandRow>,
    command_choices: &'static [(&'static str, &'static str)],
    command_errors: FieldErrors,
    can_command: bool,
    certificates: Vec<CertRow>,
    plot_data: String,
    plot_connections: String,
    plot_cpu: String,
    map: String,
    band_note: String,
    fence_count: usize,
    alerts: Option<Vec<AlertRow>>,
    /// The vulnerabilities of the device's firmware (for alerts.read holders).
    vulnerabilities: Option<VulnPanel>,
    audit: Option<Vec<AuditRow>>,
}

/// What the device's firmware build is known to carry.
struct VulnPanel {
    /// Whether the build has an SBOM (no findings without one means "unknown", not "clean").
    sbom: bool,
    rows: Vec<VulnRow>,
}

struct VulnRow {
    id: String,
    cvss: String,
    components: String,
    fix: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    window: Option<String>,
}

/// Which form was refused, why, and what was typed into it.
struct Refusal {
    form: &'static str,
    errors: FieldErrors,
    status: StatusCode,
    sent: String,
}

fn signed_in(ctx: &Ctx) -> Result<Caller, Page> {
    ctx.caller().cloned().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))
}

pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, Page> {
    let window = Window::parse(q.window.as_deref());
    build(&state, ctx, &id, window, None).await
}

/// The profiles in force (cloned out of the lock: it is never held across an await).
fn profiles(state: &AppState) -> Arc<Vec<Arc<ParsedProfile>>> {
    match state.profiles.read() {
        Ok(p) => p.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

async fn build(
    state: &AppState,
    ctx: Ctx,
    id: &str,
    window: Window,
    refusal: Option<Refusal>,
) -> Result<Response, Page> {
    let caller = signed_in(&ctx)?;
    let Json(d): Json<DeviceView> = api::get(State(state.clone()), caller.clone(), Path(id.to_owned())).await?;
    let id = d.id.clone();
    let lifecycle: LifecycleState = d.state.into();
    let criticality: Criticality = d.criticality.into();

    let latest = match api::latest_telemetry(State(state.clone()), caller.clone(), Path(id.clone())).await {
        Ok(Json(t)) => serde_json::from_value::<TelemetryV1>(t.payload).ok().map(|p| posture(&t.received_at, &p)),
        Err(e) if e.status == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e.into()),
    };
    let Json(certs) =
        crate::api::identity::device_certificates(State(state.clone()), caller.clone(), Path(id.clone())).await?;
    let Json(mut commands) = api::list_commands(State(state.clone()), caller.clone(), Path(id.clone())).await?;
    commands.reverse();
    commands.truncate(20);

    // Plots. The device's scope was checked above; the store gives the buckets the plots need.
    let now = crate::now_ms();
    let bucket = window.bucket_ms();
    let end = now.div_euclid(bucket) * bucket + bucket;
    let (from, history_from) = (end - window.span_ms(), end - charts::HISTORY_MS.max(window.span_ms()));
    let store = &state.store;
    let tx = store.telemetry_series(&id, Metric::TxBps, history_from, end, bucket).await?;
    let rx = store.telemetry_series(&id, Metric::RxBps, history_from, end, bucket).await?;
    let total_history = charts::sum_buckets(&tx, &rx);
    let learned = charts::hourly_band(&total_history, charts::BAND_K);
    let shown = |v: &[(i64, f64)]| v.iter().copied().filter(|(t, _)| *t >= from).collect::<Vec<_>>();
    let total = shown(&total_history);
    let band = learned
        .as_ref()
        // Over the whole window, so the time axis spans it even where the device sent nothing.
        .map(|b| Band {
            label: "learned normal".into(),
            points: charts::band_at((from..=end).step_by(usize::try_from(bucket).unwrap_or(1)), b),
        });
    let band_note = match &learned {
        Some(_) => format!(
            "The band is this device's learned normal for each hour of the day (UTC): the median ± {} robust \
             deviations of sent + received over the last 7 days ({} values).",
            charts::BAND_K,
            total_history.len()
        ),
        None => format!(
            "No learned normal yet: the band appears once there are {} values in the last 7 days ({} so far).",
            charts::MIN_HISTORY,
            total_history.len()
        ),
    };

    let may_read_alerts = caller.can(Permission::AlertsRead);
    let mut alerts = Vec::new();
    if may_read_alerts {
        let filter = AlertFilter { device: Some(id.clone()), limit: 200, ..AlertFilter::default() };
        alerts = store.alerts(&filter).await?;
        alerts.retain(|a| caller.can_on(Permission::AlertsRead, a.group.as_deref(), None));
    }
    let vulnerabilities = if may_read_alerts {
        match crate::api::vulns::device_findings(State(state.clone()), caller.clone(), Path(id.clone())).await {
            Ok(Json(v)) => Some(VulnPanel {
                sbom: v.sbom,
                rows: v
                    .findings
                    .into_iter()
                    .map(|f| VulnRow {
                        cvss: f.cvss.map_or_else(|| "—".to_owned(), |c| format!("{c:.1}")),
                        components: f
                            .components
                            .iter()
                            .map(|c| format!("{}@{}", c.component, c.version))
                            .collect::<Vec<_>>()
                            .join(", "),
                        fix: f.fixing_firmware.map(|fix| fix.target),
                        id: f.vulnerability,
                    })
                    .collect(),
            }),
            Err(e) => {
                tracing::warn!(error = %e.message, "the device page shows no vulnerabilities");
                None
            }
        }
    } else {
        None
    };
    let marks: Vec<(i64, String)> = alerts
        .iter()
        .filter(|a| (from..end).contains(&a.first_ms))
        .map(|a| (a.first_ms, format!("{}: {}", a.severity, a.title)))
        .collect();
    let series = vec![
        Series { label: "sent + received".into(), points: total, class: "plot-total" },
        Series { label: "sent".into(), points: shown(&charts::averages(&tx)), class: "plot-tx" },
        Series { label: "received".into(), points: shown(&charts::averages(&rx)), class: "plot-rx" },
    ];
    let plot_data = plot::time_plot("plot-data", "Data usage", Unit::BytesPerSec, &series, band.as_ref(), &marks);

    let cpu = store.telemetry_series(&id, Metric::CpuPct, from, end, bucket).await?;
    let mem = store.telemetry_series(&id, Metric::MemPct, from, end, bucket).await?;
    let usage = [
        Series { label: "CPU".into(), points: charts::averages(&cpu), class: "plot-cpu" },
        Series { label: "memory".into(), points: charts::averages(&mem), class: "plot-mem" },
    ];
    let plot_cpu = plot::time_plot("plot-cpu", "CPU and memory", Unit::Percent, &usage, None, &[]);

    let connects: Vec<i64> = store
        .connections(&id, end, MAX_CONNECTIONS)
        .await?
        .iter()
        .filter(|c| c.event == "connected")
        .map(|c| c.at_ms)
        .collect();
    let per_hour = charts::per_hour(&connects, from, end);
    let plot_connections = plot::bar_plot("plot-connections", "Connects per hour", Unit::Count, &per_hour);

    let fixes = charts::fixes(&store.recent_reports(&id, from, MAX_REPORTS).await?);
    let anchor = d.location.map(|l| (l.lat, l.lon)).or_else(|| fixes.first().map(|f| (f.1, f.2)));
    let fences = charts::fences(&profiles(state), d.group.as_deref(), &d.model, anchor);
    let map = plot::map("map", "Location", &fixes, &fences);

    let audit = if caller.can(Permission::AuditRead) {
        let filter = AuditFilter { target: Some(format!("device:{id}")), ..AuditFilter::default() };
        let entries = store.list_audit(&filter, None, 50).await?;
        Some(
            entries
                .items
                .iter()
                .map(|e| AuditRow {
                    seq: e.entry.seq,
                    at: time(e.entry.at_ms),
                    actor: e.entry.actor.clone(),
                    action: e.entry.action.clone(),
                    detail: short(e.entry.after.as_deref().unwrap_or_default(), 200),
                })
                .collect(),
        )
    } else {
        None
    };

    let may_act = caller.can(Permission::DevicesLifecycle);
    let (failed, errors, status, sent) = match refusal {
        Some(r) => (r.form, r.errors, r.status, r.sent),
        None => ("", FieldErrors::none(), StatusCode::OK, String::new()),
    };
    let actions = ACTIONS
        .iter()
        .filter(|(key, ..)| possible(key, lifecycle) || *key == failed)
        .map(|&(key, label, explain, danger)| Action {
            key,
            label,
            explain,
            danger,
            open: key == failed,
            errors: if key == failed { errors.clone() } else { FieldErrors::none() },
            reason: if key == failed { sent.clone() } else { String::new() },
        })
        .collect();
    let command_errors = if failed == "command" { errors } else { FieldErrors::none() };

    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut facts = vec![
        Fact { id: "device-id", label: "Id", value: id.clone() },
        Fact { id: "device-serial", label: "Serial", value: d.serial.clone() },
        Fact { id: "device-model", label: "Model", value: d.model.clone() },
        Fact { id: "device-vendor", label: "Vendor", value: d.vendor.clone() },
        Fact { id: "device-owner", label: "Owner", value: opt(&d.owner) },
    ];
    if d.owner_contact.is_some() {
        facts.push(Fact { id: "device-owner-contact", label: "Owner contact", value: opt(&d.owner_contact) });
    }
    facts.extend([
        Fact { id: "device-purpose", label: "Purpose", value: opt(&d.purpose) },
        Fact { id: "device-group", label: "Group", value: opt(&d.group) },
        Fact { id: "device-region", label: "Region", value: opt(&d.region) },
        Fact { id: "device-criticality", label: "Criticality", value: criticality.as_str().to_owned() },
        Fact { id: "device-firmware", label: "Firmware", value: opt(&d.firmware_version) },
        Fact { id: "device-created", label: "Registered", value: rfc_time(&d.created_at) },
        Fact { id: "device-updated", label: "Updated", value: rfc_time(&d.updated_at) },
    ]);
    if let Some(l) = d.location {
        facts.push(Fact { id: "device-location", label: "Location", value: format!("{:.5}, {:.5}", l.lat, l.lon) });
    }

    let page = DevicePage {
        serial: d.serial.clone(),
        state: lifecycle.as_str(),
        criticality: criticality.as_str(),
        facts,
        tags: d.tags.clone(),
        windows: Window::ALL
            .iter()
            .map(|w| WindowLink {
                key: w.key(),
                label: w.label(),
                href: format!("/ui/devices/{}?window={}", url_encode(&id), w.key()),
                current: *w == window,
            })
            .collect(),
        window_label: window.label(),
        posture: latest,
        actions,
        may_act,
        commands: commands
            .into_iter()
            .map(|c| CommandRow {
                id: c.id,
                command: c.command,
                status: c.status,
                created: rfc_time(&c.created_at),
                updated: c.updated_at.as_deref().map(rfc_time).unwrap_or_default(),
            })
            .collect(),
        command_choices: COMMANDS,
        command_errors,
        can_command: may_act && lifecycle != LifecycleState::Decommissioned,
        certificates: certs
            .into_iter()
            .map(|c| CertRow {
                serial: c.serial,
                status: c.status,
                method: c.method,
                not_before: rfc_time(&c.not_before),
                not_after: rfc_time(&c.not_after),
                fingerprint: c.fingerprint_sha256,
                revoked: match (c.revoked_at, c.revocation_reason) {
                    (Some(at), Some(reason)) => format!("{} ({reason})", rfc_time(&at)),
                    (Some(at), None) => rfc_time(&at),
                    _ => String::new(),
                },
            })
            .collect(),
        plot_data,
        plot_connections,
        plot_cpu,
        map,
        band_note,
        fence_count: fences.len(),
        alerts: may_read_alerts.then(|| {
            alerts
                .iter()
                .map(|a| AlertRow {
                    id: a.id.clone(),
                    severity: a.severity.clone(),
                    status: a.status.clone(),
                    title: a.title.clone(),
                    first_seen: time(a.first_ms),
                    last_seen: time(a.last_ms),
                })
                .collect()
        }),
        vulnerabilities,
        audit,
        id,
        ctx: ctx.at("devices"),
    };
    Ok(render(status, &page))
}

/// At most `n` characters, with `…` when cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n).chain(['…']).collect() }
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    reason: String,
}

impl ActionForm {
    fn request(self) -> ActionRequest {
        let reason = self.reason.trim();
        ActionRequest { reason: (!reason.is_empty()).then(|| reason.to_owned()) }
    }
}

fn back_to(id: &str, anchor: &str) -> Response {
    Redirect::to(&format!("/ui/devices/{}{anchor}", url_encode(id))).into_response()
}

/// After an action: back to the device, or the page again with the API's refusal in its form.
async fn answer<T>(
    state: &AppState,
    ctx: Ctx,
    id: &str,
    form: &'static str,
    sent: String,
    result: Result<T, ApiError>,
) -> Result<Response, Page> {
    match result {
        Ok(_) => Ok(back_to(id, if form == "command" { "#commands" } else { "" })),
        Err(e) => {
            let refusal = Refusal { form, errors: FieldErrors::from_api(&e, &[]), status: e.status, sent };
            build(state, ctx, id, Window::parse(None), Some(refusal)).await
        }
    }
}

macro_rules! lifecycle_action {
    ($name:ident, $key:literal) => {
        #[doc = concat!("`POST /ui/devices/{id}/", $key, "`: through `api::devices::", stringify!($name), "`.")]
        pub async fn $name(
            State(state): State<AppState>,
            ctx: Ctx,
            axum::Extension(caller): axum::Extension<Caller>,
            Path(id): Path<String>,
            axum::Form(form): axum::Form<ActionForm>,
        ) -> Result<Response, Page> {
            let sent = form.reason.clone();
            let result = api::$name(State(state.clone()), caller, Path(id.clone()), OptionalJson(form.request())).await;
            answer(&state, ctx, &id, $key, sent, result).await
        }
    };
}

lifecycle_action!(quarantine, "quarantine");
lifecycle_action!(pause, "pause");
lifecycle_action!(release, "release");
lifecycle_action!(decommission, "decommission");

#[derive(Debug, Deserialize)]
pub struct CommandForm {
    #[serde(default)]
    command: String,
}

/// `POST /ui/devices/{id}/commands`: through `api::devices::send_command`.
pub async fn command(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CommandForm>,
) -> Result<Response, Page> {
    let body = CommandRequest { command: form.command.clone() };
    let result = api::send_command(State(state.clone()), caller, Path(id.clone()), ApiJson(body)).await;
    answer(&state, ctx, &id, "command", form.command, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_lifecycle() {
        use LifecycleState::*;
        let offered = |s| ACTIONS.iter().map(|a| a.0).filter(|a| possible(a, s)).collect::<Vec<_>>();
        assert_eq!(offered(Active), ["quarantine", "pause", "decommission"]);
        assert_eq!(offered(Quarantined), ["release", "decommission"]);
        assert_eq!(offered(Paused), ["release", "decommission"]);
        assert_eq!(offered(Registered), ["decommission"]);
        assert_eq!(offered(Provisioned), ["quarantine", "pause", "decommission"]);
        assert!(offered(Decommissioned).is_empty());
    }

    #[test]
    fn posture_flags_bad_settings() {
        let t: TelemetryV1 = serde_json::from_str(
            r#"{"v":1,"fw":{"version":"1.4.2","secure_boot":false,"debug_enabled":true},
                "net":{"listening":[{"proto":"tcp","port":23},{"proto":"tcp","port":22},{"proto":"tcp","port":22}]},
                "sys":{"cpu_pct":12.5,"uptime_s":97200},"auth":{"default_credentials":false}}"#,
        )
        .unwrap();
        let p = posture("2026-01-02T03:04:05Z", &t);
        assert_eq!((p.secure_boot.class, p.debug_enabled.class, p.default_credentials.class), ("bad", "bad", "good"));
        assert_eq!(p.listening, ["tcp/22", "tcp/23"]);
        assert_eq!((p.firmware.as_str(), p.cpu.as_str(), p.uptime.as_str()), ("1.4.2", "12.5%", "1d 3h"));
        assert_eq!((p.mem.as_str(), p.cell.as_str()), ("—", "—"));
        assert_eq!(flag(None, true).class, "unknown");
        assert_eq!((duration(42), duration(300), duration(3900)), ("42s".into(), "5m".into(), "1h 5m".into()));
        assert_eq!(short("abcdef", 3), "abc…");
    }
}
