//! EST (RFC 7030) on the device listener: `cacerts`, `simpleenroll`, `simplereenroll`,
//! `csrattrs`; and the CRL (`/pki/crl`, on both listeners).
//!
//! Bodies are base64 DER; errors are plain text with the reason, as EST clients expect.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use palisade_core::DeviceId;
use palisade_core::audit::Actor;
use palisade_store::audit::AuditContext;
use palisade_store::identity::{CertRecord, EnrollAuth, EnrollOutcome};
use x509_parser::prelude::FromDer as _;

use super::extract::{PeerAddr, PeerCerts, body_bytes};
use crate::{AppState, auth, now_ms};

/// What `csrattrs` asks for: ecdsa-with-SHA256 (a P-256 key).
const CSR_ATTRS: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

fn text(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut r = (status, format!("{}\n", reason.into())).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn base64_lines(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 1);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn pkcs7_response(der: &[u8], certs_only: bool) -> Response {
    let ct = if certs_only { "application/pkcs7-mime; smime-type=certs-only" } else { "application/pkcs7-mime" };
    let mut r = base64_lines(der).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert("content-transfer-encoding", HeaderValue::from_static("base64"));
    r
}

/// `GET /.well-known/est/cacerts`: the device CA and the root.
pub async fn cacerts(State(state): State<AppState>) -> Response {
    let certs: Vec<&[u8]> = state.pki.chain.iter().map(|c| c.as_ref()).collect();
    pkcs7_response(&palisade_pki::pkcs7::certs_only(&certs), false)
}

/// `GET /.well-known/est/csrattrs`.
pub async fn csrattrs() -> Response {
    let mut r = base64_lines(CSR_ATTRS).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/csrattrs"));
    r.headers_mut().insert("content-transfer-encoding", HeaderValue::from_static("base64"));
    r
}

/// `GET /pki/crl`: PEM, or DER with `Accept: application/pkix-crl`.
pub async fn crl(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let crl = state.pki.crl();
    let der =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/pkix-crl"));
    let mut r = if der { crl.der.clone().into_response() } else { crl.pem.clone().into_response() };
    let ct = if der { "application/pkix-crl" } else { "application/x-pem-file" };
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// Reads the base64 PKCS#10 body.
async fn read_csr(req: Request) -> Result<(HeaderMap, Vec<u8>), Response> {
    let headers = req.headers().clone();
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/pkcs10")) {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the CSR as Content-Type: application/pkcs10 (base64 DER)",
        ));
    }
    let body: Bytes = body_bytes(req, palisade_pki::est::MAX_BODY).await.map_err(|e| text(e.status, e.message))?;
    let der = palisade_pki::est::decode_body(&body).map_err(|e| text(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok((headers, der))
}

/// The device a presented certificate was issued to by our device CA: `(device id, serial hex)`.
pub(crate) fn operational_identity(state: &AppState, cert: &[u8]) -> Option<(String, String)> {
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert).ok()?;
    let (_, ca) = x509_parser::certificate::X509Certificate::from_der(state.pki.chain.first()?.as_ref()).ok()?;
    parsed.verify_signature(Some(ca.public_key())).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    let serial: String = parsed.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    Some((cn, serial))
}

/// A factory certificate's manufacturer CA and the device serial it names.
async fn factory_identity(state: &AppState, cert: &[u8]) -> Result<Option<(String, String, String, String)>, Response> {
    let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(cert) else { return Ok(None) };
    let cas = state.store.manufacturer_cas().await.map_err(|_| text(StatusCode::SERVICE_UNAVAILABLE, "try again"))?;
    for ca in cas {
        let Ok(der) = rustls::pki_types::pem::PemObject::from_pem_slice(ca.pem.as_bytes()) else { continue };
        let der: rustls::pki_types::CertificateDer<'static> = der;
        let Ok((_, ca_cert)) = x509_parser::certificate::X509Certificate::from_der(der.as_ref()) else { continue };
        if parsed.verify_signature(Some(ca_cert.public_key())).is_ok() {
            let subject = parsed.subject();
            let serial = subject
                .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
                .next()
                .or_else(|| subject.iter_common_name().next())
                .and_then(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Ok(Some((ca.fingerprint, ca.vendor, ca.model, serial)));
        }
    }
    Ok(None)
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(v.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// `POST /.well-known/est/simpleenroll`: by one-time token (HTTP Basic: device id, token) or by
/// a factory certificate from a registered manufacturer (zero-touch).
pub async fn simpleenroll(State(state): State<AppState>, req: Request) -> Response {
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip().to_string());
    let certs = req.extensions().get::<PeerCerts>().cloned();
    let (headers, der) = match read_csr(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (device_id, auth) = if let Some((user, token)) = basic_auth(&headers) {
        let Ok(id) = user.parse::<DeviceId>() else {
            return text(StatusCode::UNAUTHORIZED, "the user name must be the device id");
        };
        (id.to_string(), EnrollAuth::Token(auth::sha256(token.as_bytes())))
    } else if let Some(leaf) = certs.as_ref().and_then(|c| c.0.first().cloned()) {
        if operational_identity(&state, &leaf).is_some() {
            return text(StatusCode::BAD_REQUEST, "this device is enrolled already: use simplereenroll");
        }
        let Some((ca, vendor, model, serial)) = (match factory_identity(&state, &leaf).await {
            Ok(x) => x,
            Err(r) => return r,
        }) else {
            return text(StatusCode::FORBIDDEN, "the client certificate is not from a registered manufacturer CA");
        };
        match state.store.factory_device(&vendor, &model, &serial).await {
            Ok(Some(id)) => (id, EnrollAuth::Factory { manufacturer_ca: ca }),
            Ok(None) => {
                return text(
                    StatusCode::FORBIDDEN,
                    format!("serial {serial:.64?} is not allowlisted and registered for {vendor} {model}"),
                );
            }
            Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, "try again"),
        }
    } else {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "authenticate with a factory certificate or HTTP Basic (device id, enrollment token)",
        );
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"palisade-est\""));
        return r;
    };
    issue(&state, &device_id, auth, &der, peer).await
}

/// `POST /.well-known/est/simplereenroll`: with the device's current, valid certificate.
pub async fn simplereenroll(State(state): State<AppState>, req: Request) -> Response {
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip().to_string());
    let leaf = req.extensions().get::<PeerCerts>().and_then(|c| c.0.first().cloned());
    let (_, der) = match read_csr(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some((device_id, serial)) = leaf.as_ref().and_then(|l| operational_identity(&state, l)) else {
        return text(StatusCode::UNAUTHORIZED, "present the device's current certificate (TLS client authentication)");
    };
    issue(&state, &device_id, EnrollAuth::Renewal { serial }, &der, peer).await
}

async fn issue(state: &AppState, device_id: &str, auth: EnrollAuth, der: &[u8], peer: Option<String>) -> Response {
    let csr = match palisade_pki::csr::verify(der) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("CSR refused: {e}")),
    };
    let serial = match palisade_pki::random_serial() {
        Ok(s) => s,
        Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let now = time::OffsetDateTime::now_utc();
    let cert = match state.pki.device_ca.issue_device(&csr, device_id, &serial, state.pki.validity_days, now) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a device certificate");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot issue a certificate now");
        }
    };
    let method = match &auth {
        EnrollAuth::Token(_) => "token",
        EnrollAuth::Factory { .. } => "factory",
        EnrollAuth::Renewal { .. } => "renewal",
    };
    let record = CertRecord {
        serial: cert.serial.clone(),
        device_id: device_id.to_owned(),
        fingerprint: cert.fingerprint.clone(),
        spki_sha256: csr.spki_sha256.clone(),
        key_kind: csr.key_kind.describe(),
        not_before_ms: i64::try_from(cert.not_before.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
        not_after_ms: i64::try_from(cert.not_after.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
        status: "valid".into(),
        revoked_ms: None,
        revocation_reason: None,
        method: method.into(),
        pem: cert.pem.clone(),
    };
    let ctx = AuditContext { actor: Actor::Device { id: device_id.to_owned() }, source_ip: peer, at_ms: now_ms() };
    match state.store.enroll(auth, record, ctx).await {
        Ok(EnrollOutcome::Enrolled) => pkcs7_response(&palisade_pki::pkcs7::certs_only(&[&cert.der]), true),
        Ok(EnrollOutcome::Refused(reason)) => text(StatusCode::FORBIDDEN, reason),
        Ok(EnrollOutcome::KeyReused { .. }) => text(
            StatusCode::CONFLICT,
            "this public key is already bound to another device (recorded as a finding): generate a new key",
        ),
        Err(e) => {
            tracing::error!(error = %e, "enrollment failed");
            text(StatusCode::SERVICE_UNAVAILABLE, "enrollment failed; try again")
        }
    }
}
