//! Vulnerabilities over HTTP: SBOMs attached to firmware builds, advisory imports with their
//! reports, and exposure queries (affected devices by any id or alias, a device's findings,
//! the fleet ranked by CVSS × criticality). The work is in [`crate::vuln`].

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::{DeviceId, Permission};
use palisade_proto::ErrorBody;
use palisade_vuln::index::{Build, Confidence, Finding};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::convert::rfc3339;
use super::error::ApiError;
use super::extract::{Caller, body_bytes};
use crate::AppState;
use crate::vuln::{self, MAX_ADVISORY_BYTES, MAX_SBOM_BYTES, Upload, VulnError};

impl From<VulnError> for ApiError {
    fn from(e: VulnError) -> Self {
        match e {
            VulnError::Refused { field, reason } => palisade_core::InvalidField::new(field, reason).into(),
            VulnError::Sbom(e) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_sbom", e.to_string()),
            e @ VulnError::Advisories(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_advisory", e.to_string())
            }
            e @ VulnError::Loading => Self::new(StatusCode::SERVICE_UNAVAILABLE, "loading", e.to_string()),
            VulnError::Store(e) => e.into(),
        }
    }
}

fn require_everywhere(caller: &Caller, p: Permission, what: &str) -> Result<(), ApiError> {
    caller.require(p)?;
    if caller.authority.scopes_for(p).is_none() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("{p} must be granted fleet-wide (not in a scope) to {what}")))
    }
}

// --- SBOMs -----------------------------------------------------------------------------------

/// What attaching an SBOM did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SbomView {
    pub model: String,
    pub version: String,
    /// e.g. `CycloneDX 1.5`, `SPDX-2.3`.
    pub format: String,
    pub components: usize,
    /// True when it replaced an earlier SBOM of the build.
    pub replaced: bool,
    /// Components whose version their ecosystem cannot parse: kept, never matched.
    pub unparsed_versions: Vec<UnparsedView>,
    /// Vulnerabilities known to touch the build now.
    pub vulnerabilities: Vec<String>,
    /// Devices running the build.
    pub devices: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnparsedView {
    pub component: String,
    pub version: String,
    pub reason: String,
}

/// Attach an SBOM (CycloneDX 1.2–1.6 or SPDX 2.2/2.3 JSON) to a firmware build, replacing any
/// earlier one. Its components are matched against every advisory at once.
#[utoipa::path(put, path = "/api/v1/firmware/{model}/{version}/sbom", tag = "vulnerabilities",
    params(("model" = String, Path), ("version" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = SbomView), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_sbom(
    State(state): State<AppState>,
    caller: Caller,
    Path((model, version)): Path<(String, String)>,
    req: Request,
) -> Result<Json<SbomView>, ApiError> {
    require_everywhere(&caller, Permission::FirmwarePublish, "attach SBOMs")?;
    let body = body_bytes(req, MAX_SBOM_BYTES).await?;
    let outcome = vuln::put_sbom(&state, &model, &version, &body, caller.audit()).await?;
    Ok(Json(SbomView {
        model,
        version,
        format: outcome.format,
        components: outcome.components,
        replaced: outcome.replaced,
        unparsed_versions: outcome
            .unparsed
            .into_iter()
            .map(|(component, version, reason)| UnparsedView { component, version, reason })
            .collect(),
        vulnerabilities: outcome.vulnerabilities,
        devices: outcome.devices,
    }))
}

/// The SBOM of a firmware build, as uploaded.
#[utoipa::path(get, path = "/api/v1/firmware/{model}/{version}/sbom", tag = "vulnerabilities",
    params(("model" = String, Path), ("version" = String, Path)),
    responses((status = 200, content_type = "application/json", body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_sbom(
    State(state): State<AppState>,
    caller: Caller,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(Permission::AlertsRead)?;
    match state.store.sbom(&model, &version).await? {
        Some(s) => Ok(([(header::CONTENT_TYPE, "application/json")], s.body).into_response()),
        None => Err(ApiError::not_found(format!("no SBOM is attached to {model} {version}"))),
    }
}

// --- advisories ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// A name for the uploaded file in the report (default `upload.json` or `upload.zip`).
    name: Option<String>,
}

/// Import advisories: one OSV entry (or a list, or an OSV API answer), a CycloneDX VEX or a
/// CSAF 2.0 document as `application/json`, or a zip of many as `application/zip`. All or
/// nothing: any unusable file refuses the whole import, naming the file and the reason. New
/// exposure of critical devices raises one alert per device. Answers the import report.
#[utoipa::path(post, path = "/api/v1/advisories", tag = "vulnerabilities", params(ImportQuery),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 201, content_type = "application/json", body = Object), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_everywhere(&caller, Permission::RulesManage, "import advisories")?;
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let kind = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(
        kind.as_str(),
        "application/json" | "application/zip" | "application/x-zip-compressed" | "application/octet-stream"
    ) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send one advisory file as Content-Type: application/json, or a zip as application/zip",
        ));
    }
    let body = body_bytes(req, MAX_ADVISORY_BYTES).await?;
    let zip = palisade_vuln::bundle::is_zip(&body);
    let name = q.name.filter(|n| !n.is_empty() && n.len() <= 256 && !n.chars().any(char::is_control));
    let name = name.unwrap_or_else(|| if zip { "upload.zip" } else { "upload.json" }.to_owned());
    let report = vuln::import(&state, vec![Upload { name, bytes: body.to_vec() }], caller.audit()).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// A stored import report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    pub id: String,
    pub actor: String,
    pub files: i64,
    pub documents: i64,
    pub at: String,
    #[schema(value_type = Object)]
    pub report: Value,
}

fn import_view(r: palisade_store::vuln::ImportRecord) -> ImportView {
    ImportView {
        id: r.id,
        actor: r.actor,
        files: r.files,
        documents: r.documents,
        at: rfc3339(r.at_ms),
        report: r.report,
    }
}

/// Advisory imports, newest first (the last 100).
#[utoipa::path(get, path = "/api/v1/advisories/imports", tag = "vulnerabilities",
    responses((status = 200, body = Vec<ImportView>)))]
pub async fn list_imports(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ImportView>>, ApiError> {
    caller.require(Permission::AlertsRead)?;
    Ok(Json(state.store.advisory_imports(100).await?.into_iter().map(import_view).collect()))
}

/// One import's report.
#[utoipa::path(get, path = "/api/v1/advisories/imports/{id}", tag = "vulnerabilities",
    params(("id" = String, Path)), responses((status = 200, body = ImportView), (status = 404, body = ErrorBody)))]
pub async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    caller.require(Permission::AlertsRead)?;
    match state.store.advisory_import(&id).await? {
        Some(r) => Ok(Json(import_view(r))),
        None => Err(ApiError::not_found(format!("import {id} not found"))),
    }
}

// --- exposure --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DevicesQuery {
    /// Devices to skip (default 0).
    pub offset: Option<usize>,
    /// 0 to 1000 device ids (default 100).
    pub limit: Option<usize>,
}

/// An affected firmware build.
#[derive(Debug, Serialize, ToSchema)]
pub struct AffectedBuildView {
    pub model: String,
    pub version: String,
    pub devices: usize,
    /// The first fixed version of the vulnerable component above the shipped one, per the
    /// advisory.
    pub fixed_in: Option<String>,
    /// The newest firmware of the catalogue for this model whose SBOM is free of the
    /// vulnerability: the target to roll out.
    pub fixing_firmware: Option<FixView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FixView {
    pub target: String,
    pub version: String,
}

/// A VEX `not_affected` statement that suppressed a match.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressedView {
    pub component: String,
    pub justification: Option<String>,
}

/// A VEX statement about one product (a purl or CPE when the document gives one).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementView {
    pub product: String,
    pub status: String,
    pub justification: Option<String>,
}

fn statement(product: String, status: palisade_vuln::advisory::VexStatus) -> StatementView {
    use palisade_vuln::advisory::VexStatus;
    let (status, justification) = match status {
        VexStatus::NotAffected { justification } => ("not_affected", justification),
        VexStatus::Affected => ("affected", None),
        VexStatus::Fixed => ("fixed", None),
        VexStatus::UnderInvestigation => ("under_investigation", None),
    };
    StatementView { product, status: status.to_owned(), justification }
}

/// Which devices a vulnerability touches.
#[derive(Debug, Serialize, ToSchema)]
pub struct AffectedView {
    /// The canonical id: the lowest CVE id when there is one.
    pub vulnerability: String,
    pub aliases: Vec<String>,
    /// Highest CVSS base score among its advisories.
    pub cvss: Option<f64>,
    /// Affected devices (within the caller's scope).
    pub devices_total: usize,
    pub by_criticality: BTreeMap<String, usize>,
    pub by_region: BTreeMap<String, usize>,
    pub by_group: BTreeMap<String, usize>,
    pub builds: Vec<AffectedBuildView>,
    pub suppressed: Vec<SuppressedView>,
    /// What VEX documents (CycloneDX, CSAF) say about products: `not_affected`, `affected`,
    /// `fixed`, `under_investigation`.
    pub statements: Vec<StatementView>,
    /// `ecosystem`, `generic` (version order of an unknown ecosystem) or `cpe` (lower confidence).
    pub confidence: Option<String>,
    /// A page of affected device ids, in build then id order.
    pub devices: Vec<String>,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<usize>,
}

fn confidence(c: Confidence) -> String {
    match c {
        Confidence::Ecosystem => "ecosystem",
        Confidence::Generic => "generic",
        Confidence::Cpe => "cpe",
    }
    .to_owned()
}

/// The devices a vulnerability touches, by any of its ids (CVE, GHSA, GO-…, OSV ids): counts
/// by criticality, region and group, the affected builds with the firmware that fixes them,
/// and a page of device ids.
#[utoipa::path(get, path = "/api/v1/vulnerabilities/{id}/devices", tag = "vulnerabilities",
    params(("id" = String, Path), DevicesQuery),
    responses((status = 200, body = AffectedView), (status = 404, body = ErrorBody)))]
pub async fn affected(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DevicesQuery>,
) -> Result<Json<AffectedView>, ApiError> {
    caller.require(Permission::AlertsRead)?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).min(1000);
    let scopes = caller.authority.scopes_for(Permission::AlertsRead);
    let catalogue = state.store.firmware_catalogue().await?;
    let exposure = state.vulns.read(&state.store).await?;
    let Some(e) = exposure.index.affected(&id) else {
        return Err(ApiError::not_found(format!("no imported advisory names {id}")));
    };
    let mut view = AffectedView {
        vulnerability: e.vulnerability.clone(),
        aliases: e.aliases,
        cvss: e.cvss_max,
        devices_total: e.devices,
        by_criticality: e.by_criticality,
        by_region: e.by_region,
        by_group: e.by_group,
        builds: Vec::with_capacity(e.builds.len()),
        suppressed: e
            .suppressed
            .into_iter()
            .map(|(component, justification)| SuppressedView { component, justification })
            .collect(),
        statements: e.statements.into_iter().map(|(product, status)| statement(product, status)).collect(),
        confidence: e.confidence.map(confidence),
        devices: Vec::new(),
        next_offset: None,
    };
    for (build, fixed_in) in e.builds {
        let devices = exposure.index.build_id(&build).map_or(0, |b| exposure.index.build_device_count(b));
        let fixing_firmware = vuln::fixing_firmware(&exposure, &catalogue, &build.model, &e.vulnerability)
            .map(|(target, version)| FixView { target, version });
        view.builds.push(AffectedBuildView {
            model: build.model,
            version: build.version,
            devices,
            fixed_in,
            fixing_firmware,
        });
    }
    if scopes.is_none() {
        view.devices = exposure.index.affected_devices(&id, offset, limit.saturating_add(1));
    } else {
        // A scoped caller: count and list only the devices it may read (the API's own rule).
        view.by_criticality.clear();
        view.by_region.clear();
        view.by_group.clear();
        view.devices_total = 0;
        let mut skipped = 0usize;
        for b in &mut view.builds {
            b.devices = 0;
            let build = Build { model: b.model.clone(), version: b.version.clone() };
            let Some(build_id) = exposure.index.build_id(&build) else { continue };
            for (device, class) in exposure.index.devices_on(build_id) {
                let part = |s: &str| (!s.is_empty()).then(|| s.to_owned());
                if !caller.can_on(Permission::AlertsRead, part(&class.group).as_deref(), part(&class.region).as_deref())
                {
                    continue;
                }
                view.devices_total += 1;
                b.devices += 1;
                *view.by_criticality.entry(class.criticality.clone()).or_default() += 1;
                *view.by_region.entry(class.region.clone()).or_default() += 1;
                *view.by_group.entry(class.group.clone()).or_default() += 1;
                if skipped < offset {
                    skipped += 1;
                } else if view.devices.len() <= limit {
                    view.devices.push(device.to_owned());
                }
            }
        }
        view.builds.retain(|b| b.devices > 0);
    }
    if view.devices.len() > limit {
        view.devices.truncate(limit);
        view.next_offset = Some(offset + limit);
    }
    Ok(Json(view))
}

/// One vulnerability touching a device.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    pub vulnerability: String,
    pub aliases: Vec<String>,
    pub cvss: Option<f64>,
    pub components: Vec<ComponentView>,
    pub fixing_firmware: Option<FixView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    /// The component's purl without version.
    pub component: String,
    pub version: String,
    pub fixed_in: Option<String>,
    pub confidence: String,
}

/// A device's exposure: its build and the vulnerabilities its firmware's SBOM carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceExposureView {
    pub device: String,
    pub model: Option<String>,
    pub firmware_version: Option<String>,
    /// False when the device's build has no SBOM: no findings does not mean no vulnerabilities.
    pub sbom: bool,
    pub findings: Vec<FindingView>,
}

/// The vulnerabilities touching a device, highest CVSS first.
#[utoipa::path(get, path = "/api/v1/devices/{id}/vulnerabilities", tag = "vulnerabilities",
    params(("id" = String, Path)), responses((status = 200, body = DeviceExposureView), (status = 404, body = ErrorBody)))]
pub async fn device_findings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeviceExposureView>, ApiError> {
    let id: DeviceId =
        id.parse().map_err(|e: palisade_core::InvalidField| ApiError::bad_request("invalid_id", e.to_string()))?;
    let device = state.store.get_device(&id).await?;
    if !caller.can_on(Permission::AlertsRead, device.attrs.group.as_deref(), device.attrs.region.as_deref()) {
        return Err(ApiError::not_found(format!("device {id} not found")));
    }
    let catalogue = state.store.firmware_catalogue().await?;
    let exposure = state.vulns.read(&state.store).await?;
    let build = exposure.index.device(id.as_str()).map(|(b, _)| b);
    let findings: Vec<Finding> = exposure.index.device_findings(id.as_str());
    let findings = findings
        .into_iter()
        .map(|f| FindingView {
            fixing_firmware: vuln::fixing_firmware(&exposure, &catalogue, &device.attrs.model, &f.vulnerability)
                .map(|(target, version)| FixView { target, version }),
            vulnerability: f.vulnerability,
            aliases: f.aliases,
            cvss: f.cvss_max,
            components: f
                .components
                .into_iter()
                .map(|c| ComponentView {
                    component: c.purl_key,
                    version: c.version,
                    fixed_in: c.fixed_in,
                    confidence: confidence(c.confidence),
                })
                .collect(),
        })
        .collect();
    Ok(Json(DeviceExposureView {
        device: id.to_string(),
        model: Some(device.attrs.model.clone()),
        firmware_version: device.attrs.firmware_version.clone(),
        sbom: build.is_some_and(|b| vuln::has_sbom(&exposure, b)),
        findings,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RankQuery {
    /// How many vulnerabilities, 1 to 1000 (default 50).
    pub top: Option<usize>,
}

/// A vulnerability's weight in the fleet.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankedView {
    pub vulnerability: String,
    pub cvss: Option<f64>,
    /// CVSS × Σ criticality weight of the affected devices (critical 4, high 3, medium 2, low 1).
    pub risk: f64,
    pub devices: usize,
    pub by_criticality: BTreeMap<String, usize>,
}

/// Fleet exposure: the most urgent vulnerabilities and how much of the fleet is covered by SBOMs.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetExposureView {
    pub vulnerabilities: Vec<RankedView>,
    /// Devices whose build has an SBOM.
    pub devices_covered: usize,
    /// Devices whose build has no SBOM: their exposure is unknown.
    pub devices_without_sbom: usize,
    /// Devices with no firmware version recorded.
    pub devices_without_firmware_version: usize,
}

/// Fleet exposure ranked by CVSS × device criticality (fleet-wide callers only).
#[utoipa::path(get, path = "/api/v1/vulnerabilities", tag = "vulnerabilities", params(RankQuery),
    responses((status = 200, body = FleetExposureView), (status = 403, body = ErrorBody)))]
pub async fn fleet(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RankQuery>,
) -> Result<Json<FleetExposureView>, ApiError> {
    require_everywhere(&caller, Permission::AlertsRead, "rank the whole fleet's exposure")?;
    let top = q.top.unwrap_or(50).clamp(1, 1000);
    let exposure = state.vulns.read(&state.store).await?;
    let vulnerabilities = exposure
        .index
        .fleet_exposure(top)
        .into_iter()
        .filter_map(|(id, risk)| {
            let e = exposure.index.affected(&id)?;
            Some(RankedView {
                vulnerability: id,
                cvss: e.cvss_max,
                risk,
                devices: e.devices,
                by_criticality: e.by_criticality,
            })
        })
        .collect();
    let (devices_covered, devices_without_sbom, devices_without_firmware_version) = vuln::coverage(&exposure);
    Ok(Json(FleetExposureView {
        vulnerabilities,
        devices_covered,
        devices_without_sbom,
        devices_without_firmware_version,
    }))
}
