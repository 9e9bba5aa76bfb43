//! Palisade's certificate authority.
//!
//! At first start Palisade creates a root CA (ECDSA P-256, 10 years). Its certificate is the
//! trust anchor every client uses (`DATA_DIR/pki/root-ca.pem`); its private key is kept sealed
//! in the store. Each start issues a fresh short-lived server certificate for the HTTPS
//! listeners. (The device-identity issue adds issuing intermediates, CSRs and CRLs here.)

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

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
/// Validity of a listener certificate (reissued at every start).
const SERVER_DAYS: i64 = 90;

/// The root CA: certificate and signing key.
pub struct RootCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa").finish_non_exhaustive()
    }
}

/// A certificate chain and its private key, ready for rustls.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    // A failing OS random source leaves zeros; the serial is not a secret, only unique-ish.
    let _ = aws_lc_rs_fill(&mut bytes);
    bytes[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&bytes)
}

fn aws_lc_rs_fill(buf: &mut [u8]) -> Result<(), ()> {
    use rustls::crypto::aws_lc_rs::default_provider;
    default_provider().secure_random.fill(buf).map_err(|_| ())
}

impl RootCa {
    /// Creates a new root named `Palisade Root CA <installation>`.
    pub fn generate(installation: &str, now: OffsetDateTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Palisade");
        dn.push(DnType::CommonName, format!("Palisade Root CA {installation}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(ROOT_DAYS);
        params.serial_number = Some(serial());
        let cert = params.self_signed(&key)?;
        Ok(Self { cert_pem: cert.pem(), cert_der: cert.der().clone(), key })
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

    /// Issues a listener certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String], now: OffsetDateTime) -> Result<ServerIdentity, PkiError> {
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Palisade");
        dn.push(DnType::CommonName, names.first().map_or("palisade", String::as_str));
        params.distinguished_name = dn;
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
        params.serial_number = Some(serial());
        let cert = params.signed_by(&key, &issuer)?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_round_trips_and_issues() {
        let now = OffsetDateTime::now_utc();
        let root = RootCa::generate("test", now).unwrap();
        let again = RootCa::from_stored(&root.to_stored()).unwrap();
        assert_eq!(again.cert_der(), root.cert_der());
        let id = again.issue_server(&["localhost".into(), "127.0.0.1".into()], now).unwrap();
        assert_eq!(id.chain.len(), 2);
        tls13_server_config(id).unwrap();
        assert!(RootCa::from_stored(b"garbage").is_err());
    }
}
