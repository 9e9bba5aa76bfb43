//! The running PKI: the device CA, the current CRL, and the device listener's TLS settings.
//!
//! The CRL is re-issued on every revocation and on a schedule; each revocation is also
//! broadcast in-process (`subscribe`), so the device plane can act on live sessions.

use std::sync::{Arc, RwLock};

use palisade_pki::{Ca, Reason, Revoked, ServerIdentity};
use palisade_store::Store;
use rustls::pki_types::CertificateDer;
use tokio::sync::broadcast;

use crate::now_ms;

/// How long a CRL is valid; it is re-issued well before (hourly, and on every change).
const CRL_VALID_HOURS: i64 = 24;

/// The current CRL in both encodings.
#[derive(Debug, Clone, Default)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    pub number: u64,
}

pub struct PkiService {
    pub device_ca: Ca,
    /// Device CA then root: what `cacerts` returns and what device certificates chain to.
    pub chain: Vec<CertificateDer<'static>>,
    crl: RwLock<Arc<Crl>>,
    device_tls: RwLock<Arc<rustls::ServerConfig>>,
    /// The MQTT listener: client certificate required, checked against the device CA and the
    /// current CRL; rebuilt with every CRL.
    mqtt_tls: RwLock<Arc<rustls::ServerConfig>>,
    listener_identity: (Vec<CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>),
    revocations: broadcast::Sender<String>,
    pub validity_days: i64,
}

impl std::fmt::Debug for PkiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiService").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PkiServiceError {
    #[error(transparent)]
    Pki(#[from] palisade_pki::PkiError),
    #[error(transparent)]
    Store(#[from] palisade_store::StoreError),
    #[error("stored manufacturer CA is not PEM: {0}")]
    Pem(String),
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl PkiService {
    pub async fn new(
        store: &Store,
        device_ca: Ca,
        root: &Ca,
        listener: ServerIdentity,
        validity_days: i64,
    ) -> Result<Self, PkiServiceError> {
        let chain = vec![device_ca.cert_der().clone(), root.cert_der().clone()];
        let listener_identity = (listener.chain, listener.key);
        let placeholder = Self::device_config(&listener_identity, &chain, &[])?;
        let (revocations, _) = broadcast::channel(1024);
        let svc = Self {
            device_ca,
            chain,
            crl: RwLock::new(Arc::new(Crl::default())),
            device_tls: RwLock::new(placeholder.clone()),
            mqtt_tls: RwLock::new(placeholder),
            listener_identity,
            revocations,
            validity_days,
        };
        svc.refresh_crl(store).await?;
        svc.reload_trust(store).await?;
        Ok(svc)
    }

    fn device_config(
        identity: &(Vec<CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>),
        chain: &[CertificateDer<'static>],
        manufacturers: &[CertificateDer<'static>],
    ) -> Result<Arc<rustls::ServerConfig>, PkiServiceError> {
        let mut roots: Vec<CertificateDer<'static>> = chain.iter().take(1).cloned().collect();
        roots.extend(manufacturers.iter().cloned());
        let id = ServerIdentity { chain: identity.0.clone(), key: identity.1.clone_key() };
        Ok(palisade_pki::tls13_device_config(id, &roots)?)
    }

    /// Rebuilds the device listener's client trust (device CA + registered manufacturer CAs).
    pub async fn reload_trust(&self, store: &Store) -> Result<(), PkiServiceError> {
        let mut manufacturers = Vec::new();
        for m in store.manufacturer_cas().await? {
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(m.pem.as_bytes())
                .map_err(|e| PkiServiceError::Pem(e.to_string()))?;
            manufacturers.push(der);
        }
        let config = Self::device_config(&self.listener_identity, &self.chain, &manufacturers)?;
        *self.device_tls.write().unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    pub fn device_tls(&self) -> Arc<rustls::ServerConfig> {
        self.device_tls.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn crl(&self) -> Arc<Crl> {
        self.crl.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Re-issues the CRL from the store.
    pub async fn refresh_crl(&self, store: &Store) -> Result<(), PkiServiceError> {
        let now = time::OffsetDateTime::now_utc();
        let revoked: Vec<Revoked> = store
            .revoked_certificates(now_ms())
            .await?
            .into_iter()
            .map(|c| Revoked {
                at: time::OffsetDateTime::from_unix_timestamp(c.revoked_ms.unwrap_or(0) / 1000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                reason: c.revocation_reason.as_deref().and_then(Reason::parse).unwrap_or(Reason::Unspecified),
                serial_hex: c.serial,
            })
            .collect();
        let number = u64::try_from(now_ms()).unwrap_or(0).max(self.crl().number + 1);
        let der = self.device_ca.crl(&revoked, number, now, now + time::Duration::hours(CRL_VALID_HOURS))?;
        let pem = pem_block("X509 CRL", &der);
        let mqtt = self.mqtt_config(&der)?;
        *self.crl.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Crl { der, pem, number });
        *self.mqtt_tls.write().unwrap_or_else(std::sync::PoisonError::into_inner) = mqtt;
        Ok(())
    }

    fn mqtt_config(&self, crl_der: &[u8]) -> Result<Arc<rustls::ServerConfig>, PkiServiceError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for r in self.chain.iter().take(1) {
            roots.add(r.clone()).map_err(palisade_pki::PkiError::from)?;
        }
        let crl = rustls::pki_types::CertificateRevocationListDer::from(crl_der.to_vec());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls([crl])
            .build()
            .map_err(|e| palisade_pki::PkiError::Malformed(format!("MQTT client verifier: {e}")))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(palisade_pki::PkiError::from)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.listener_identity.0.clone(), self.listener_identity.1.clone_key())
            .map_err(palisade_pki::PkiError::from)?;
        Ok(Arc::new(config))
    }

    pub fn mqtt_tls(&self) -> Arc<rustls::ServerConfig> {
        self.mqtt_tls.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Publishes revocations (CRL now, and in-process subscribers).
    pub async fn revoked(&self, store: &Store, serials: &[String]) -> Result<(), PkiServiceError> {
        self.refresh_crl(store).await?;
        for s in serials {
            let _ = self.revocations.send(s.clone());
        }
        Ok(())
    }

    /// Serials as they are revoked.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.revocations.subscribe()
    }
}
