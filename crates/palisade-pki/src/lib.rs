//! Palisade's certificate authority.
//!
//! At first start Palisade creates a root CA (ECDSA P-256, 10 years) and two issuing
//! intermediates under it: one for devices, one for the server's own TLS listeners. The root
//! certificate is the trust anchor every client uses (`DATA_DIR/pki/root-ca.pem`); all private
//! keys stay sealed in the store. Signing goes through rcgen's `SigningKey` trait, so a
//! PKCS#11/HSM-backed key can replace the in-memory one without touching the callers.

pub mod csr;
pub mod est;
pub mod pkcs7;

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use csr::{CsrError, KeyKind, VerifiedCsr};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("stored CA is malformed: {0}")]
    Malformed(String),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Validity of the root.
const ROOT_DAYS: i64 = 3650;
/// Validity of the issuing intermediates.
const INTERMEDIATE_DAYS: i64 = 1825;
/// Validity of a listener certificate (reissued at every start).
const SERVER_DAYS: i64 = 90;

/// A certificate authority: its certificate and signing key.
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

/// The root CA (kept as its own name for clarity at call sites).
pub type RootCa = Ca;

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate chain and its private key, ready for rustls.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A certificate issued to a device.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    pub pem: String,
    /// Serial number, hex.
    pub serial: String,
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A revoked certificate for the CRL.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub serial_hex: String,
    pub at: OffsetDateTime,
    pub reason: Reason,
}

/// RFC 5280 revocation reasons that operators use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key_compromise",
            Self::AffiliationChanged => "affiliation_changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation_of_operation",
            Self::CertificateHold => "certificate_hold",
            Self::PrivilegeWithdrawn => "privilege_withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn rcgen(self) -> RevocationReason {
        match self {
            Self::Unspecified => RevocationReason::Unspecified,
            Self::KeyCompromise => RevocationReason::KeyCompromise,
            Self::AffiliationChanged => RevocationReason::AffiliationChanged,
            Self::Superseded => RevocationReason::Superseded,
            Self::CessationOfOperation => RevocationReason::CessationOfOperation,
            Self::CertificateHold => RevocationReason::CertificateHold,
            Self::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// 16 random bytes, positive.
pub fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut bytes = vec![0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| PkiError::Malformed("the random source failed".into()))?;
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x01;
    }
    Ok(bytes)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, path_len: u8, days: i64, now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    Ok(params)
}

impl Ca {
    /// Creates a new root named `Palisade Root CA <installation>`.
    pub fn generate(installation: &str, now: OffsetDateTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(&format!("Palisade Root CA {installation}"), 1, ROOT_DAYS, now)?.self_signed(&key)?;
        Ok(Self { cert_pem: cert.pem(), cert_der: cert.der().clone(), key })
    }

    /// Creates an issuing intermediate under this CA.
    pub fn issue_intermediate(&self, cn: &str, now: OffsetDateTime) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(cn, 0, INTERMEDIATE_DAYS, now)?;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(Self { cert_pem: cert.pem(), cert_der: cert.der().clone(), key })
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, PkiError> {
        Ok(Issuer::from_ca_cert_der(&self.cert_der, &self.key)?)
    }

    /// The form kept (sealed) in the store: certificate PEM followed by key PEM.
    pub fn to_stored(&self) -> Zeroizing<Vec<u8>> {
        let key = Zeroizing::new(self.key.serialize_pem());
        Zeroizing::new([self.cert_pem.as_bytes(), key.as_bytes()].concat())
    }

    pub fn from_stored(stored: &[u8]) -> Result<Self, PkiError> {
        let text = std::str::from_utf8(stored).map_err(|_| PkiError::Malformed("not UTF-8".into()))?;
        let split = text.find("-----BEGIN PRIVATE KEY-----").ok_or_else(|| PkiError::Malformed("no key".into()))?;
        let (cert_pem, key_pem) = text.split_at(split);
        let key = KeyPair::from_pem(key_pem)?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| PkiError::Malformed(format!("certificate: {e}")))?;
        Ok(Self { cert_pem: cert_pem.to_owned(), cert_der: der, key })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a listener certificate for `names` (DNS names or IP addresses); the chain runs
    /// to (and includes) `chain_above`, the certificates between this CA and the root.
    pub fn issue_server(
        &self,
        names: &[String],
        chain_above: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<ServerIdentity, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(names.first().map_or("palisade", String::as_str));
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(SERVER_DAYS);
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        let cert = params.signed_by(&key, &self.issuer()?)?;
        let mut chain = vec![cert.der().clone(), self.cert_der.clone()];
        chain.extend(chain_above.iter().cloned());
        Ok(ServerIdentity { chain, key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())) })
    }

    /// Issues a device certificate: subject and SAN come from the device id (never from the
    /// CSR), client authentication only.
    pub fn issue_device(
        &self,
        csr: &VerifiedCsr,
        device_id: &str,
        serial: &[u8],
        days: i64,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(device_id);
        let uri = format!("urn:palisade:device:{device_id}");
        params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let req = rcgen::CertificateSigningRequestParams { params, public_key: csr.public_key.clone() };
        let cert = req.signed_by(&self.issuer()?)?;
        let der = cert.der().to_vec();
        let fingerprint = csr::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref());
        Ok(IssuedCert {
            pem: cert.pem(),
            der,
            serial: csr::hex(serial),
            fingerprint,
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(days),
        })
    }

    /// Signs a CRL listing `revoked`, valid until `next_update`.
    pub fn crl(
        &self,
        revoked: &[Revoked],
        number: u64,
        now: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                let serial = (0..r.serial_hex.len())
                    .step_by(2)
                    .map(|i| r.serial_hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| PkiError::Malformed(format!("serial {}", r.serial_hex)))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: r.at,
                    reason_code: Some(r.reason.rcgen()),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer()?)?.der().to_vec())
    }
}

/// A TLS 1.3-only server configuration (aws-lc-rs), speaking HTTP/2 and HTTP/1.1.
pub fn tls13_server_config(identity: ServerIdentity) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS 1.3 for the device listener: a client certificate is optional (token enrollment needs
/// none) but, when presented, must chain to one of `client_roots` (the device CA for renewal,
/// registered manufacturer CAs for zero-touch enrollment).
pub fn tls13_device_config(
    identity: ServerIdentity,
    client_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for r in client_roots {
        roots.add(r.clone())?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Malformed(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    // EST is defined over HTTP/1.1, and constrained devices speak it; the device listener does
    // not offer HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_round_trips_and_issues() {
        let now = OffsetDateTime::now_utc();
        let root = Ca::generate("test", now).unwrap();
        let again = Ca::from_stored(&root.to_stored()).unwrap();
        assert_eq!(again.cert_der(), root.cert_der());
        let server_ca = root.issue_intermediate("Palisade Server CA", now).unwrap();
        let id =
            server_ca.issue_server(&["localhost".into(), "127.0.0.1".into()], &[root.cert_der().clone()], now).unwrap();
        assert_eq!(id.chain.len(), 3);
        tls13_server_config(id).unwrap();
        assert!(Ca::from_stored(b"garbage").is_err());

        let device_ca = root.issue_intermediate("Palisade Device CA", now).unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(vec!["evil.example".into()]).unwrap().serialize_request(&key).unwrap();
        let verified = csr::verify(csr.der()).unwrap();
        let cert =
            device_ca.issue_device(&verified, "0123456789abcdefghjk", &random_serial().unwrap(), 90, now).unwrap();
        assert_eq!(cert.serial.len(), 32);
        let text = String::from_utf8_lossy(&cert.der);
        assert!(text.contains("urn:palisade:device:0123456789abcdefghjk"));
        assert!(!text.contains("evil.example"), "SANs from the CSR are never copied");
        let crl = device_ca
            .crl(
                &[Revoked { serial_hex: cert.serial.clone(), at: now, reason: Reason::KeyCompromise }],
                1,
                now,
                now + Duration::days(1),
            )
            .unwrap();
        assert!(!crl.is_empty());
    }
}
