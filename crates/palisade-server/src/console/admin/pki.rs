//! `/ui/pki`: the CA chain devices trust, the current CRL and what it lists, manufacturer CAs,
//! the certificate findings, and revoking a certificate by its serial (`api::identity::revoke`).

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_core::Permission;
use palisade_proto::{FindingView, ManufacturerCaView, RevokeRequest};
use serde::Deserialize;

use super::{FormData, caller_of, capitalised};
use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, Caller, OptionalJson};
use crate::api::identity;
use crate::console::view::{Ctx, FieldErrors, Page, render, rfc_time, time};
use crate::{AppState, now_ms};

/// One certificate of the chain, as people check it.
#[derive(Debug, PartialEq)]
pub struct CertFacts {
    pub role: &'static str,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the DER, `AB:CD:…`.
    pub fingerprint: String,
    pub days_left: i64,
}

/// The CRL as issued now.
#[derive(Debug, PartialEq)]
pub struct CrlFacts {
    pub number: u64,
    pub revoked: usize,
    pub this_update: String,
    pub next_update: Option<String>,
    pub bytes: usize,
}

/// A certificate on the CRL.
#[derive(Debug)]
pub struct RevokedRow {
    pub serial: String,
    pub device_id: String,
    pub revoked: String,
    pub reason: String,
}

/// Finding kinds that concern certificates and keys.
const PKI_FINDINGS: &[&str] =
    &["certificate_expiring", "weak_key", "shared_key", "ca_expiring", "revoked_still_connected"];
/// Rows shown of long lists.
const SHOWN: usize = 50;
const DAY_MS: i64 = 86_400_000;

/// SHA-256 of the DER as `openssl x509 -fingerprint -sha256` shows it (`AB:CD:…`).
fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// What a certificate says, or `None` when it does not parse.
fn cert_facts(role: &'static str, der: &[u8], now: i64) -> Option<CertFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    let not_after_ms = validity.not_after.timestamp().saturating_mul(1000);
    Some(CertFacts {
        role,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex::encode(cert.raw_serial()),
        not_before: time(validity.not_before.timestamp().saturating_mul(1000)),
        not_after: time(not_after_ms),
        fingerprint: fingerprint(der),
        days_left: (not_after_ms - now).div_euclid(DAY_MS),
    })
}

/// What a CRL says, or `None` when it does not parse.
fn crl_facts(der: &[u8], number: u64) -> Option<CrlFacts> {
    let (_, crl) = x509_parser::parse_x509_crl(der).ok()?;
    Some(CrlFacts {
        number,
        revoked: crl.iter_revoked_certificates().count(),
        this_update: time(crl.last_update().timestamp().saturating_mul(1000)),
        next_update: crl.next_update().map(|t| time(t.timestamp().saturating_mul(1000))),
        bytes: der.len(),
    })
}

#[derive(Template)]
#[template(path = "admin_pki.html")]
struct PkiPage {
    ctx: Ctx,
    chain: Vec<CertFacts>,
    crl: Option<CrlFacts>,
    /// Where devices fetch the CRL.
    device_crl_url: String,
    revoked: Vec<RevokedRow>,
    revoked_total: usize,
    /// `None` without `pki.enroll`.
    manufacturers: Option<Vec<ManufacturerCaView>>,
    /// `None` without `alerts.read`.
    findings: Option<Vec<FindingView>>,
    /// RFC 5280 reasons: (value, label).
    reasons: Vec<(&'static str, String)>,
    serial: String,
    reason: String,
    errors: FieldErrors,
    notice: Option<String>,
}

impl PkiPage {
    async fn load(state: &AppState, ctx: Ctx) -> Result<Self, Page> {
        let caller = caller_of(&ctx)?;
        let now = now_ms();
        let roles = ["Device CA (issues device certificates)", "Root CA"];
        let chain = state
            .pki
            .chain
            .iter()
            .zip(roles.iter().copied().chain(std::iter::repeat("CA")))
            .filter_map(|(der, role)| cert_facts(role, der.as_ref(), now))
            .collect();
        let current = state.pki.crl();
        let mut revoked = state.store.revoked_certificates(now).await?;
        revoked.sort_by_key(|c| std::cmp::Reverse(c.revoked_ms));
        let revoked_total = revoked.len();
        let manufacturers = if caller.can(Permission::PkiEnroll) {
            Some(identity::list_manufacturers(State(state.clone())).await?.0)
        } else {
            None
        };
        let findings = if caller.can(Permission::AlertsRead) {
            let Json(all) = identity::findings(State(state.clone()), ApiQuery(Default::default())).await?;
            Some(all.into_iter().filter(|f| PKI_FINDINGS.contains(&f.kind.as_str())).take(SHOWN).collect())
        } else {
            None
        };
        Ok(Self {
            chain,
            crl: crl_facts(&current.der, current.number),
            device_crl_url: identity::endpoints(State(state.clone())).await.0.crl,
            revoked: revoked
                .into_iter()
                .take(SHOWN)
                .map(|c| RevokedRow {
                    revoked: c.revoked_ms.map_or_else(String::new, time),
                    reason: words(c.revocation_reason.as_deref().unwrap_or("unspecified")),
                    serial: c.serial,
                    device_id: c.device_id,
                })
                .collect(),
            revoked_total,
            manufacturers,
            findings: findings.map(|f: Vec<FindingView>| {
                f.into_iter().map(|f| FindingView { created_at: rfc_time(&f.created_at), ..f }).collect()
            }),
            reasons: palisade_pki::Reason::ALL.iter().map(|r| (r.as_str(), words(r.as_str()))).collect(),
            serial: String::new(),
            reason: "unspecified".to_owned(),
            errors: FieldErrors::none(),
            notice: None,
            ctx: ctx.at("pki"),
        })
    }
}

impl PkiPage {
    /// Whether this reason is the one chosen.
    fn chosen(&self, reason: &str) -> bool {
        self.reason == reason
    }
}

/// `key_compromise` as people read it.
fn words(name: &str) -> String {
    name.replace('_', " ")
}

/// A certificate serial as the API takes it: hex, at most 64 digits.
fn is_serial(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A serial as people paste it (`0A:1B…`, spaces) as the API takes it.
fn clean_serial(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ':' | ' ' | '-')).collect::<String>().to_lowercase()
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    revoked: Option<String>,
}

pub async fn page(State(state): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Result<Response, Page> {
    let mut page = PkiPage::load(&state, ctx).await?;
    if let Some(serial) = q.revoked.filter(|s| is_serial(s)) {
        page.notice = Some(format!(
            "Certificate {serial} is revoked. The CRL is re-issued and a device using it is disconnected."
        ));
    }
    Ok(render(StatusCode::OK, &page))
}

fn revoke_errors(e: &ApiError) -> FieldErrors {
    match (e.status, e.field.as_deref()) {
        (_, Some("reason")) => FieldErrors::from_api(e, &[]),
        (StatusCode::BAD_REQUEST, _) => FieldErrors::field("serial", "A serial is up to 64 hexadecimal digits."),
        (StatusCode::NOT_FOUND, _) => {
            FieldErrors::field("serial", "No certificate of a device you may manage has this serial.")
        }
        (StatusCode::CONFLICT, _) => FieldErrors::field("serial", capitalised(&e.message)),
        _ => FieldErrors::from_api(e, &[]),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let f = FormData(pairs);
    let (serial, reason) = (clean_serial(&f.text("serial")), f.text("reason"));
    let body = RevokeRequest { reason: Some(reason.clone()) };
    match identity::revoke(State(state.clone()), caller, Path(serial.clone()), OptionalJson(body)).await {
        Ok(Json(cert)) => Ok(Redirect::to(&format!("/ui/pki?revoked={}#revoke", cert.serial)).into_response()),
        Err(e) => {
            let mut page = PkiPage::load(&state, ctx).await?;
            page.errors = revoke_errors(&e);
            page.serial = f.text("serial");
            page.reason = reason;
            Ok(render(e.status, &page))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_pki::{Ca, Reason, Revoked};

    #[test]
    fn the_chain_and_crl_read_as_issued() {
        let now = ::time::OffsetDateTime::now_utc();
        let root = Ca::generate("test", now).unwrap();
        let device = root.issue_intermediate("Palisade Device CA test", now).unwrap();
        let now_ms = now.unix_timestamp() * 1000;
        let facts = cert_facts("Device CA", device.cert_der().as_ref(), now_ms).unwrap();
        assert_eq!(facts.subject, "O=Palisade, CN=Palisade Device CA test");
        assert!(facts.issuer.contains("Palisade Root CA test"), "{}", facts.issuer);
        assert_eq!((facts.fingerprint.len(), facts.fingerprint.matches(':').count()), (95, 31));
        assert!(facts.days_left > 300, "{}", facts.days_left);
        assert!(cert_facts("x", b"not a certificate", now_ms).is_none());

        let revoked = [Revoked { serial_hex: "0a1b".into(), at: now, reason: Reason::KeyCompromise }];
        let der = device.crl(&revoked, 7, now, now + ::time::Duration::hours(24)).unwrap();
        let crl = crl_facts(&der, 7).unwrap();
        assert_eq!((crl.number, crl.revoked, crl.bytes), (7, 1, der.len()));
        assert!(crl.next_update.is_some());
        assert!(crl_facts(b"nope", 1).is_none());
    }

    #[test]
    fn serials_are_taken_as_people_paste_them() {
        assert_eq!(clean_serial("0A:1B 2c-3D"), "0a1b2c3d");
        assert!(is_serial("0a1b") && !is_serial("") && !is_serial("xyz") && !is_serial(&"a".repeat(65)));
    }

    #[test]
    fn refusals_are_shown_by_the_serial_or_the_reason() {
        let e = ApiError::not_found("certificate not found");
        assert!(revoke_errors(&e).get("serial").is_some());
        let e = ApiError::new(StatusCode::CONFLICT, "conflict", "certificate 0a is already revoked");
        assert_eq!(revoke_errors(&e).get("serial"), Some("Certificate 0a is already revoked"));
        let e: ApiError = palisade_core::InvalidField::new("reason", "\"x\" is not one of …").into();
        assert!(revoke_errors(&e).get("reason").is_some());
        let e = ApiError::bad_request("invalid_id", "a certificate serial is hex");
        assert!(revoke_errors(&e).get("serial").is_some());
    }
}
