//! `/api/v1/…` for device identity: enrollment tokens, certificates, revocation, manufacturer
//! trust, findings, and where devices connect.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use palisade_core::{DeviceId, Permission};
use palisade_proto::{
    CertificateView, EnrollmentToken, EnrollmentTokenRequest, ErrorBody, FindingView, ImportResult,
    ManufacturerCaCreate, ManufacturerCaView, RevokeRequest, SystemEndpoints,
};
use palisade_store::identity::{CertRecord, Finding, ManufacturerCa};
use serde::Deserialize;
use utoipa::IntoParams;
use x509_parser::prelude::FromDer as _;

use super::convert::rfc3339;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Caller, OptionalJson, body_bytes};
use crate::{AppState, auth, now_ms};

fn cert_view(c: &CertRecord) -> CertificateView {
    CertificateView {
        serial: c.serial.clone(),
        device_id: c.device_id.clone(),
        fingerprint_sha256: c.fingerprint.clone(),
        key: c.key_kind.clone(),
        not_before: rfc3339(c.not_before_ms),
        not_after: rfc3339(c.not_after_ms),
        status: c.status.clone(),
        revoked_at: c.revoked_ms.map(rfc3339),
        revocation_reason: c.revocation_reason.clone(),
        method: c.method.clone(),
        pem: c.pem.clone(),
    }
}

async fn device_in_scope(state: &AppState, caller: &Caller, id: &str, p: Permission) -> Result<DeviceId, ApiError> {
    let id = id.parse::<DeviceId>().map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    let d = state.store.get_device(&id).await?;
    if !caller.can_on(p, d.attrs.group.as_deref(), d.attrs.region.as_deref()) {
        return Err(ApiError::not_found(format!("device {id} not found")));
    }
    Ok(id)
}

/// Mint a one-time enrollment token for a device (HTTP Basic at EST: device id, token).
#[utoipa::path(post, path = "/api/v1/devices/{id}/enrollment-tokens", tag = "pki", params(("id" = String, Path)),
    request_body(content = Option<EnrollmentTokenRequest>),
    responses((status = 201, body = EnrollmentToken), (status = 409, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<EnrollmentTokenRequest>,
) -> Result<(StatusCode, Json<EnrollmentToken>), ApiError> {
    let id = device_in_scope(&state, &caller, &id, Permission::PkiEnroll).await?;
    let hours = body.ttl_hours.unwrap_or(72);
    if !(1..=720).contains(&hours) {
        return Err(palisade_core::InvalidField::new("ttl_hours", "must be between 1 and 720").into());
    }
    let token = auth::random_token(24)?;
    let expires_ms = now_ms() + i64::from(hours) * 3_600_000;
    state
        .store
        .add_enrollment_token(id.to_string(), auth::sha256(token.as_bytes()), expires_ms, caller.audit())
        .await?;
    Ok((StatusCode::CREATED, Json(EnrollmentToken { token: token.to_string(), expires_at: rfc3339(expires_ms) })))
}

/// A device's certificates.
#[utoipa::path(get, path = "/api/v1/devices/{id}/certificates", tag = "pki", params(("id" = String, Path)),
    responses((status = 200, body = Vec<CertificateView>)))]
pub async fn device_certificates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<CertificateView>>, ApiError> {
    let id = device_in_scope(&state, &caller, &id, Permission::DevicesRead).await?;
    Ok(Json(state.store.certificates_of(id.as_str()).await?.iter().map(cert_view).collect()))
}

/// Revoke a certificate (RFC 5280 reason); the CRL is re-issued at once.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", tag = "pki", params(("serial" = String, Path)),
    request_body(content = Option<RevokeRequest>),
    responses((status = 200, body = CertificateView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
    OptionalJson(body): OptionalJson<RevokeRequest>,
) -> Result<Json<CertificateView>, ApiError> {
    let serial = serial.to_lowercase();
    if serial.is_empty() || serial.len() > 64 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("invalid_id", "a certificate serial is hex"));
    }
    let reason = body.reason.unwrap_or_else(|| "unspecified".into());
    if palisade_pki::Reason::parse(&reason).is_none() {
        let names: Vec<&str> = palisade_pki::Reason::ALL.iter().map(|r| r.as_str()).collect();
        return Err(palisade_core::InvalidField::new(
            "reason",
            format!("{reason:?} is not one of {}", names.join(", ")),
        )
        .into());
    }
    let cert = state.store.certificate(&serial).await?.ok_or_else(|| ApiError::not_found("certificate not found"))?;
    device_in_scope(&state, &caller, &cert.device_id, Permission::PkiRevoke).await?;
    let cert = state.store.revoke_certificate(serial.clone(), reason, caller.audit()).await?;
    state.pki.revoked(&state.store, &[serial]).await.map_err(|e| {
        tracing::error!(error = %e, "cannot re-issue the CRL");
        ApiError::internal()
    })?;
    Ok(Json(cert_view(&cert)))
}

/// Register a manufacturer (factory / IDevID) CA for a vendor and model: its devices enroll
/// with their factory certificate, when their serial is allowlisted and registered.
#[utoipa::path(post, path = "/api/v1/manufacturers", tag = "pki", request_body = ManufacturerCaCreate,
    responses((status = 201, body = ManufacturerCaView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_manufacturer(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ManufacturerCaCreate>,
) -> Result<(StatusCode, Json<ManufacturerCaView>), ApiError> {
    let invalid = |m: &str| ApiError::from(palisade_core::InvalidField::new("ca_pem", m));
    let der: rustls::pki_types::CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(body.ca_pem.as_bytes())
            .map_err(|_| invalid("not a PEM certificate"))?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|_| invalid("not an X.509 certificate"))?;
    if !cert.is_ca() {
        return Err(invalid("not a CA certificate (basicConstraints CA:TRUE)"));
    }
    let fingerprint: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let ca = ManufacturerCa {
        fingerprint,
        vendor: palisade_core::validate::required_text("vendor", &body.vendor, 256)?,
        model: palisade_core::validate::required_text("model", &body.model, 256)?,
        subject: cert.subject().to_string(),
        pem: body.ca_pem,
    };
    state.store.add_manufacturer_ca(ca.clone(), caller.audit()).await?;
    state.pki.reload_trust(&state.store).await.map_err(|e| {
        tracing::error!(error = %e, "cannot reload device trust");
        ApiError::internal()
    })?;
    Ok((
        StatusCode::CREATED,
        Json(ManufacturerCaView {
            fingerprint: ca.fingerprint,
            vendor: ca.vendor,
            model: ca.model,
            subject: ca.subject,
        }),
    ))
}

/// Registered manufacturer CAs.
#[utoipa::path(get, path = "/api/v1/manufacturers", tag = "pki", responses((status = 200, body = Vec<ManufacturerCaView>)))]
pub async fn list_manufacturers(State(state): State<AppState>) -> Result<Json<Vec<ManufacturerCaView>>, ApiError> {
    Ok(Json(
        state
            .store
            .manufacturer_cas()
            .await?
            .into_iter()
            .map(|c| ManufacturerCaView {
                fingerprint: c.fingerprint,
                vendor: c.vendor,
                model: c.model,
                subject: c.subject,
            })
            .collect(),
    ))
}

/// Allowlist factory serials (CSV: `vendor,model,serial`).
#[utoipa::path(post, path = "/api/v1/manufacturers/serials", tag = "pki",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = ImportResult), (status = 422, body = ErrorBody)))]
pub async fn allow_serials(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<(StatusCode, Json<ImportResult>), ApiError> {
    let body = body_bytes(req, super::extract::MAX_IMPORT_BYTES).await?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(body.as_ref());
    let headers = reader.headers().map_err(|e| palisade_core::InvalidField::new("header", e.to_string()))?.clone();
    if headers.iter().collect::<Vec<_>>() != ["vendor", "model", "serial"] {
        return Err(palisade_core::InvalidField::new("header", "the columns are vendor,model,serial").into());
    }
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| palisade_core::InvalidField::new(format!("row {}", i + 1), e.to_string()))?;
        let field = |n: usize, name: &str| {
            palisade_core::validate::required_text(&format!("row {} {name}", i + 1), rec.get(n).unwrap_or(""), 256)
        };
        rows.push((field(0, "vendor")?, field(1, "model")?, field(2, "serial")?));
    }
    let imported = state.store.allow_serials(rows, caller.audit()).await?;
    Ok((StatusCode::CREATED, Json(ImportResult { imported })))
}

fn finding_view(f: Finding) -> FindingView {
    FindingView { id: f.id, kind: f.kind, device_id: f.device_id, detail: f.detail, created_at: rfc3339(f.created_ms) }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// Only findings of this kind (`no_owner`, `outdated_firmware`, `shared_key`…).
    kind: Option<String>,
}

/// Findings from certificate and fleet checks (shared keys, expiring certificates…), newest
/// first (the latest 1000).
#[utoipa::path(get, path = "/api/v1/findings", tag = "pki", params(FindingQuery),
    responses((status = 200, body = Vec<FindingView>), (status = 400, body = ErrorBody)))]
pub async fn findings(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FindingQuery>,
) -> Result<Json<Vec<FindingView>>, ApiError> {
    let kind = q.kind.map(|k| palisade_core::validate::required_text("kind", &k, 64)).transpose()?;
    Ok(Json(state.store.findings(kind.as_deref()).await?.into_iter().map(finding_view).collect()))
}

/// Run the certificate audit checks now (they also run every hour, with the fleet checks). A
/// finding already recorded in the last 24 h is returned as recorded then, not recorded again.
#[utoipa::path(post, path = "/api/v1/pki/audit", tag = "pki", responses((status = 200, body = Vec<FindingView>)))]
pub async fn run_audit(State(state): State<AppState>) -> Result<Json<Vec<FindingView>>, ApiError> {
    let found = crate::checks::certificate_checks(&state).await?;
    Ok(Json(found.into_iter().map(finding_view).collect()))
}

/// Run every fleet audit check now (they also run every hour): certificates, revoked
/// certificates still connected, outdated firmware, devices without owner or silent for 30
/// days, accounts missing a required MFA, failing notification channels. A finding already
/// recorded in the last 24 h is returned as recorded then, not recorded again.
#[utoipa::path(post, path = "/api/v1/audit-checks", tag = "pki", responses((status = 200, body = Vec<FindingView>)))]
pub async fn run_checks(State(state): State<AppState>) -> Result<Json<Vec<FindingView>>, ApiError> {
    let found = crate::checks::run_fleet_checks(&state).await?;
    Ok(Json(found.into_iter().map(finding_view).collect()))
}

/// Where devices connect.
#[utoipa::path(get, path = "/api/v1/system/endpoints", tag = "pki", responses((status = 200, body = SystemEndpoints)))]
pub async fn endpoints(State(state): State<AppState>) -> Json<SystemEndpoints> {
    let host = state.config.tls_names.first().cloned().unwrap_or_else(|| "localhost".into());
    let port = state.device_addr.port();
    Json(SystemEndpoints {
        est: format!("https://{host}:{port}/.well-known/est"),
        crl: format!("https://{host}:{port}/pki/crl"),
        mqtt: format!("mqtts://{host}:{}", state.mqtt_addr.port()),
    })
}
