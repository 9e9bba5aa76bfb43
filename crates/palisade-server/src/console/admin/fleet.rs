//! `/ui/firmware` (firmware versions in the fleet, by model) and `/ui/network` (where devices
//! connect, live MQTT sessions, the listeners' TLS policy): read-only pages.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use palisade_core::Permission;
use palisade_proto::SystemEndpoints;
use palisade_store::devices::DeviceFilter;

use super::caller_of;
use crate::AppState;
use crate::api::identity;
use crate::console::overview::version_key;
use crate::console::view::{Ctx, Page, render};

/// One firmware version of a model.
#[derive(Debug, PartialEq)]
pub struct VersionRow {
    /// Empty when devices did not report one.
    pub version: String,
    pub devices: i64,
    /// Share of the model's devices, 0–100.
    pub percent: i64,
    pub newest: bool,
}

/// A model's devices by firmware version, newest version first.
#[derive(Debug, PartialEq)]
pub struct ModelFirmware {
    pub model: String,
    pub devices: i64,
    pub versions: Vec<VersionRow>,
}

/// Groups `(model, version, devices)` rows by model; the newest version (by number) is marked.
fn by_model(rows: &[(String, String, i64)]) -> Vec<ModelFirmware> {
    let mut models: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for (model, version, n) in rows {
        match models.iter_mut().find(|(m, _)| m == model) {
            Some((_, v)) => v.push((version.clone(), *n)),
            None => models.push((model.clone(), vec![(version.clone(), *n)])),
        }
    }
    models.sort_by(|a, b| a.0.cmp(&b.0));
    models
        .into_iter()
        .map(|(model, mut versions)| {
            let devices = versions.iter().map(|(_, n)| n).sum::<i64>();
            // Unknown versions last; the others newest first.
            versions.sort_by(|a, b| {
                a.0.is_empty().cmp(&b.0.is_empty()).then_with(|| version_key(&b.0).cmp(&version_key(&a.0)))
            });
            let newest = versions.first().filter(|(v, _)| !v.is_empty()).map(|(v, _)| v.clone());
            ModelFirmware {
                model,
                devices,
                versions: versions
                    .into_iter()
                    .map(|(version, n)| VersionRow {
                        newest: newest.as_deref() == Some(version.as_str()),
                        percent: n * 100 / devices.max(1),
                        devices: n,
                        version,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A target of the signed catalogue.
#[derive(Debug)]
pub struct CatalogueRow {
    pub name: String,
    pub hardware: String,
    pub version: String,
    pub counter: u64,
    pub sha256: String,
    pub length: u64,
}

/// A rollout and how far it got.
#[derive(Debug)]
pub struct RolloutRow {
    pub id: String,
    pub target: String,
    pub status: String,
    pub reason: String,
    pub phase: usize,
    pub phases: usize,
    pub committed: usize,
    pub failed: usize,
    pub total: usize,
    pub percent: usize,
}

/// Rollouts shown on the page, newest first.
const ROLLOUTS_SHOWN: usize = 20;

#[derive(Template)]
#[template(path = "admin_firmware.html")]
struct FirmwarePage {
    ctx: Ctx,
    models: Vec<ModelFirmware>,
    devices: i64,
    /// Whether only part of the fleet is counted (the caller's scope).
    scoped: bool,
    catalogue: Vec<CatalogueRow>,
    rollouts: Vec<RolloutRow>,
}

pub async fn firmware(State(state): State<AppState>, ctx: Ctx) -> Result<Response, Page> {
    let caller = caller_of(&ctx)?;
    // Counted where the caller may publish firmware: the whole fleet for most.
    let scopes = caller.authority.scopes_for(Permission::FirmwarePublish);
    let scoped = scopes.is_some();
    let summary = state.store.fleet_summary(&DeviceFilter { scopes, ..DeviceFilter::default() }).await?;
    let models = by_model(&summary.firmware);
    let catalogue = state
        .store
        .firmware_catalogue()
        .await?
        .into_iter()
        .map(|t| CatalogueRow {
            sha256: t.sha256.get(..12).unwrap_or(&t.sha256).to_owned(),
            name: t.name,
            hardware: t.hardware,
            version: t.version,
            counter: t.counter,
            length: t.length,
        })
        .collect();
    let mut rollouts = Vec::new();
    for r in state.store.rollouts().await?.iter().take(ROLLOUTS_SHOWN) {
        let v = crate::rollout::view(&state, &r.id).await?;
        rollouts.push(RolloutRow {
            percent: v.devices.committed * 100 / v.devices.total.max(1),
            id: v.id,
            target: v.target,
            status: v.status,
            reason: v.reason.unwrap_or_default(),
            phase: v.phase,
            phases: v.phases.len(),
            committed: v.devices.committed,
            failed: v.devices.failed,
            total: v.devices.total,
        });
    }
    let page = FirmwarePage {
        devices: models.iter().map(|m| m.devices).sum(),
        models,
        scoped,
        catalogue,
        rollouts,
        ctx: ctx.at("firmware"),
    };
    Ok(render(StatusCode::OK, &page))
}

/// A listener and the TLS it requires.
#[derive(Debug)]
pub struct Listener {
    pub name: &'static str,
    pub bound: String,
    pub serves: &'static str,
    pub tls: &'static str,
    pub clients: &'static str,
}

#[derive(Template)]
#[template(path = "admin_network.html")]
struct NetworkPage {
    ctx: Ctx,
    endpoints: SystemEndpoints,
    live_sessions: usize,
    listeners: Vec<Listener>,
    tls_names: Vec<String>,
}

pub async fn network(State(state): State<AppState>, ctx: Ctx) -> Result<Response, Page> {
    let axum::Json(endpoints) = identity::endpoints(State(state.clone())).await;
    // What `lib::start` builds: `palisade_pki::tls13_server_config` for the console,
    // `tls13_device_config` for device HTTPS, `PkiService::mqtt_tls` for MQTT.
    let listeners = vec![
        Listener {
            name: "MQTT (devices)",
            bound: state.mqtt_addr.to_string(),
            serves: "telemetry, commands",
            tls: "TLS 1.3 only",
            clients: "mutual TLS: a device certificate is required, chaining to the device CA and not on the CRL",
        },
        Listener {
            name: "Device HTTPS",
            bound: state.device_addr.to_string(),
            serves: "EST enrolment and renewal, CRL",
            tls: "TLS 1.3 only, HTTP/1.1",
            clients: "a client certificate is optional (token enrolment needs none); when given it must chain to \
                      the device CA or a registered manufacturer CA",
        },
        Listener {
            name: "Console and API",
            bound: state.config.console_addr.to_string(),
            serves: "this console, the REST API, metrics",
            tls: "TLS 1.3 only, HTTP/2 and HTTP/1.1",
            clients: "no client certificates: people sign in, programs use API keys",
        },
    ];
    let page = NetworkPage {
        ctx: ctx.at("network"),
        endpoints,
        live_sessions: state.plane.connected(),
        listeners,
        tls_names: state.config.tls_names.clone(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(m: &str, v: &str, n: i64) -> (String, String, i64) {
        (m.to_owned(), v.to_owned(), n)
    }

    #[test]
    fn versions_are_grouped_by_model_with_the_newest_marked() {
        let models =
            by_model(&[row("meter", "2.0", 4), row("gw", "1.9.2", 30), row("gw", "", 5), row("gw", "1.10.0", 10)]);
        assert_eq!(models.len(), 2);
        let gw = &models[0];
        assert_eq!((gw.model.as_str(), gw.devices), ("gw", 45));
        let order: Vec<(&str, i64, bool)> =
            gw.versions.iter().map(|v| (v.version.as_str(), v.percent, v.newest)).collect();
        assert_eq!(order, [("1.10.0", 22, true), ("1.9.2", 66, false), ("", 11, false)]);
        assert_eq!(models[1].versions[0], VersionRow { version: "2.0".into(), devices: 4, percent: 100, newest: true });
    }

    #[test]
    fn a_model_without_versions_has_no_newest() {
        let models = by_model(&[row("cam", "", 3)]);
        assert!(!models[0].versions[0].newest);
        assert!(by_model(&[]).is_empty());
    }
}
