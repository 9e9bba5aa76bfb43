//! The agent's life: enroll over EST with a token (the key is made here and never leaves),
//! then report over MQTT with mutual TLS, spooling to disk while offline, reconnecting with
//! jittered exponential backoff, and running the commands Palisade sends.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, watch};
use zeroize::Zeroize as _;

use crate::collect::{Collector, StaticFacts};
use crate::config::AgentConfig;
use crate::spool::Spool;
use crate::update::{CommandHooks, HttpSource, Outcome, UpdateEvent, Updater};

/// Why the agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop.
    Stopped,
    /// Wiped by command: key material and data are gone.
    Wiped,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("enrollment refused ({status}): {body}")]
    EnrollmentRefused { status: u16, body: String },
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error(transparent)]
    Update(#[from] crate::update::UpdateError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::Io { path: path.to_owned(), source }
}

/// Where a device keeps its private key. The file store is the default; a PKCS#11 or TPM store
/// implements the same trait.
pub trait KeyStore: Send + Sync {
    /// The key, if the device has one (PKCS#8 PEM).
    fn load(&self) -> Result<Option<String>, AgentError>;
    /// Makes a new P-256 key on the device, keeps it, and returns it.
    fn generate(&self) -> Result<rcgen::KeyPair, AgentError>;
    /// Destroys the key beyond recovery.
    fn wipe(&self) -> Result<(), AgentError>;
}

/// A key in a file of mode 0600.
#[derive(Debug)]
pub struct FileKeyStore {
    pub path: PathBuf,
}

impl KeyStore for FileKeyStore {
    fn load(&self) -> Result<Option<String>, AgentError> {
        match std::fs::read_to_string(&self.path) {
            Ok(pem) => Ok(Some(pem)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&self.path)(e)),
        }
    }

    fn generate(&self) -> Result<rcgen::KeyPair, AgentError> {
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| AgentError::Tls(e.to_string()))?;
        let mut pem = key.serialize_pem();
        let written = write_private(&self.path, pem.as_bytes());
        pem.zeroize();
        written?;
        Ok(key)
    }

    fn wipe(&self) -> Result<(), AgentError> {
        shred(&self.path)
    }
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Overwrites a file with zeros, flushes it to disk, then deletes it (absent is fine).
fn shred(path: &Path) -> Result<(), AgentError> {
    use std::io::Write as _;
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(io(path))?;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        f.write_all(zeros.get(..n).unwrap_or(&zeros)).map_err(io(path))?;
        left -= n as u64;
    }
    f.sync_all().map_err(io(path))?;
    std::fs::remove_file(path).map_err(io(path))
}

/// The agent's files in its directory.
struct Files {
    key: FileKeyStore,
    cert: PathBuf,
    seq: PathBuf,
    spool: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Self {
        Self {
            key: FileKeyStore { path: dir.join("device.key") },
            cert: dir.join("device.pem"),
            seq: dir.join("seq"),
            spool: dir.join("spool"),
        }
    }
}

/// TLS to Palisade: its root (`server.root_ca`) is the only trust anchor.
fn tls_client(
    config: &AgentConfig,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    let pem = std::fs::read(&config.server.root_ca).map_err(io(&config.server.root_ca))?;
    crate::http::client_config(&pem, identity)
        .map_err(|e| AgentError::Tls(format!("{}: {e}", config.server.root_ca.display())))
}

/// Enrolls with the one-time token (HTTP Basic: device id and token) or the factory
/// certificate (TLS client authentication): a new key made here, a CSR, `simpleenroll`, the
/// certificate chain kept next to the key.
async fn enroll(config: &AgentConfig, files: &Files) -> Result<(), AgentError> {
    let key = files.key.generate()?;
    let csr =
        rcgen::CertificateParams::default().serialize_request(&key).map_err(|e| AgentError::Tls(e.to_string()))?;
    let basic = match (&config.identity.token_file, &config.identity.device_id) {
        (Some(token_file), Some(id)) => {
            let mut token = std::fs::read_to_string(token_file).map_err(io(token_file))?;
            let mut credentials = format!("{id}:{}", token.trim());
            token.zeroize();
            let basic = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
            credentials.zeroize();
            Some(basic)
        }
        _ => None,
    };
    let auth = match (&basic, &config.identity.factory_cert, &config.identity.factory_key) {
        (Some(basic), _, _) => Auth::Basic(basic),
        (None, Some(cert), Some(key)) => Auth::Factory { cert, key },
        _ => return Err(AgentError::Tls("no enrollment credentials (token or factory certificate)".into())),
    };
    let body = base64::engine::general_purpose::STANDARD.encode(csr.der());
    let url = format!("{}/.well-known/est/simpleenroll", config.server.est_url.trim_end_matches('/'));
    let (status, resp) = post(config, &url, auth, body.into_bytes()).await?;
    if status != 200 {
        // The key is useless without its certificate: do not leave it behind.
        files.key.wipe()?;
        return Err(AgentError::EnrollmentRefused {
            status,
            body: String::from_utf8_lossy(&resp).chars().take(300).collect(),
        });
    }
    write_private(&files.cert, certificate_pem(&resp)?.as_bytes())
}

/// The certificates of an EST response (base64 PKCS#7), as PEM.
pub(crate) fn certificate_pem(resp: &[u8]) -> Result<String, AgentError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(resp.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect::<Vec<_>>())
        .map_err(|e| AgentError::Tls(format!("EST response is not base64: {e}")))?;
    let certs =
        palisade_pki::pkcs7::certificates(&der).ok_or_else(|| AgentError::Tls("EST response is not PKCS#7".into()))?;
    Ok(certs.iter().map(|c| pem_cert(c)).collect())
}

/// How an EST request proves who sends it.
enum Auth<'a> {
    /// The one-time token (first enrollment).
    Basic(&'a str),
    /// The device's current certificate (renewal, re-key).
    Certificate(&'a Files),
    /// The certificate and key the manufacturer installed (zero-touch enrollment).
    Factory { cert: &'a Path, key: &'a Path },
}

/// Renews the certificate with `simplereenroll`, authenticated by the current one. With
/// `new_key` the device also makes a new key (credential rotation); the old key is replaced only
/// once the new certificate is in hand.
async fn reenroll(config: &AgentConfig, files: &Files, new_key: bool) -> Result<(), AgentError> {
    let staged = FileKeyStore { path: files.key.path.with_extension("new") };
    let key = if new_key {
        staged.generate()?
    } else {
        let mut pem = files.key.load()?.ok_or_else(|| AgentError::Tls("the device key is missing".into()))?;
        let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| AgentError::Tls(format!("device key: {e}")));
        pem.zeroize();
        key?
    };
    let csr =
        rcgen::CertificateParams::default().serialize_request(&key).map_err(|e| AgentError::Tls(e.to_string()))?;
    let body = base64::engine::general_purpose::STANDARD.encode(csr.der());
    let url = format!("{}/.well-known/est/simplereenroll", config.server.est_url.trim_end_matches('/'));
    let (status, resp) = post(config, &url, Auth::Certificate(files), body.into_bytes()).await?;
    if status != 200 {
        staged.wipe()?;
        return Err(AgentError::EnrollmentRefused {
            status,
            body: String::from_utf8_lossy(&resp).chars().take(300).collect(),
        });
    }
    let pem = certificate_pem(&resp)?;
    if new_key {
        // The old key is shredded as the new one takes its place.
        files.key.wipe()?;
        std::fs::rename(&staged.path, &files.key.path).map_err(io(&files.key.path))?;
    }
    write_private(&files.cert, pem.as_bytes())
}

/// Whether a certificate valid from `not_before` to `not_after` (Unix seconds) should be renewed
/// at `now`: once two thirds of its lifetime have passed.
pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    now >= not_before + (not_after - not_before) / 3 * 2
}

/// Reads something from the device's own certificate (the first in its file).
fn from_certificate<T>(
    files: &Files,
    read: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> Result<T, AgentError>,
) -> Result<T, AgentError> {
    let pem = std::fs::read(&files.cert).map_err(io(&files.cert))?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| AgentError::Tls("no certificate".into()))?
        .map_err(|e| AgentError::Tls(format!("certificate: {e}")))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| AgentError::Tls(format!("certificate: {e}")))?;
    read(&cert)
}

/// (not before, not after) of the device's certificate, Unix seconds.
fn validity(files: &Files) -> Result<(i64, i64), AgentError> {
    from_certificate(files, |c| Ok((c.validity().not_before.timestamp(), c.validity().not_after.timestamp())))
}

fn pem_cert(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// One HTTPS POST to the device listener, trusting only Palisade's root.
async fn post(
    config: &AgentConfig,
    url: &str,
    auth: Auth<'_>,
    body: Vec<u8>,
) -> Result<(u16, bytes::Bytes), AgentError> {
    let identity = match &auth {
        Auth::Basic(_) => None,
        Auth::Certificate(files) => Some(identity(files)?),
        Auth::Factory { cert, key } => {
            let mut pem = std::fs::read_to_string(key).map_err(io(key))?;
            let loaded = load_identity(cert, &pem);
            pem.zeroize();
            Some(loaded?)
        }
    };
    let mut headers =
        vec![("Content-Type", "application/pkcs10".to_owned()), ("Content-Transfer-Encoding", "base64".to_owned())];
    if let Auth::Basic(basic) = auth {
        headers.push(("Authorization", format!("Basic {basic}")));
    }
    crate::http::send(tls_client(config, identity)?, hyper::Method::POST, url, &headers, body)
        .await
        .map_err(|detail| AgentError::Unreachable { url: url.to_owned(), detail })
}

/// Jittered exponential backoff: 1 s doubling to 60 s, each wait between half and all of it.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Duration::from_secs(1) }
    }
}

impl Backoff {
    pub fn wait(&mut self) -> Duration {
        let full = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(60));
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let half = full / 2;
        half + Duration::from_millis(random % (u64::try_from(half.as_millis()).unwrap_or(1).max(1)))
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }
}

/// Runs the agent until `shutdown` or a wipe.
pub async fn run(config: AgentConfig, mut shutdown: watch::Receiver<bool>) -> Result<Exit, AgentError> {
    let dir = &config.identity.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = Files::new(dir);
    if files.key.load()?.is_none() || !files.cert.exists() {
        let mut backoff = Backoff::default();
        loop {
            match enroll(&config, &files).await {
                Ok(()) => break,
                Err(e @ AgentError::Unreachable { .. }) => {
                    let wait = backoff.wait();
                    tracing::warn!(error = %e, ?wait, "enrollment: server unreachable, retrying");
                    tokio::select! {
                        _ = shutdown.changed() => return Ok(Exit::Stopped),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!("enrolled");
    }
    let mut spool = Spool::open(&files.spool, config.telemetry.spool_max_bytes)?;
    let mut seq: i64 = std::fs::read_to_string(&files.seq).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    // Collecting may wait on gpsd or mmcli for seconds: it runs on the blocking pool.
    let collector = Arc::new(std::sync::Mutex::new(Collector::new("/")));
    let mut facts = StaticFacts {
        firmware_version: config.facts.firmware_version.clone(),
        firmware_image: config.facts.firmware_image.clone(),
        secure_boot: config.facts.secure_boot,
        debug_enabled: config.facts.debug_enabled,
        cell: config.facts.cell.clone(),
        loc: config.facts.location.clone(),
        mmcli: config.facts.modem.as_ref().map(|_| "mmcli".into()),
        gpsd: config.facts.gpsd.clone(),
        auth_log: config.facts.auth_log.clone(),
    };
    let mut updates = match &config.update {
        Some(u) => Some(Updates::open(&config, u, &device_id(&config, &files)?, &mut facts)?),
        None => None,
    };
    let mut update_ticker =
        tokio::time::interval(Duration::from_secs(config.update.as_ref().map_or(3600, |u| u.check_interval_secs)));
    update_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticker = tokio::time::interval(Duration::from_secs(config.telemetry.interval_secs));
    let mut backoff = Backoff::default();
    loop {
        // Renew before expiry (and before connecting, so an expired certificate is not tried).
        let (not_before, not_after) = validity(&files)?;
        if renewal_due(not_before, not_after, now_ms() / 1000) {
            match reenroll(&config, &files, false).await {
                Ok(()) => tracing::info!("certificate renewed"),
                Err(e) => tracing::warn!(error = %e, "renewal failed; retrying later"),
            }
        }
        let device = device_id(&config, &files)?;
        let (client, mut events) = mqtt(&config, &files, &device)?;
        let mut session = Session::new(&device, client);
        let mut rotated = false;
        let error = loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(Exit::Stopped),
                _ = update_ticker.tick(), if updates.is_some() => {
                    if let Some(u) = &mut updates {
                        u.start(&config, &files);
                    }
                }
                Some(message) = next_update_message(&mut updates) => {
                    if let Some(u) = &mut updates {
                        u.received(message, &mut facts, &config, &files);
                        u.flush(&mut session).await;
                    }
                }
                _ = ticker.tick() => {
                    seq += 1;
                    let (c, f, ts) = (collector.clone(), facts.clone(), now_rfc3339());
                    let collected = tokio::task::spawn_blocking(move || {
                        let mut c = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        c.collect(&f, seq, ts)
                    });
                    let report = collected.await.map_err(|e| AgentError::Tls(format!("collector: {e}")))?;
                    let payload = serde_json::to_vec(&report).map_err(|e| AgentError::Tls(e.to_string()))?;
                    // The sequence number is kept first: a crash here leaves a gap the server can
                    // see, never two reports with one number.
                    write_private(&files.seq, seq.to_string().as_bytes())?;
                    // A report that cannot be kept (disk full, too large) is lost, loudly; the
                    // agent keeps reporting.
                    let dropped_before = spool.dropped();
                    if let Err(e) = spool.push(&payload) {
                        tracing::error!(error = %e, seq, "cannot keep a report; it is lost");
                    }
                    if spool.dropped() > dropped_before {
                        tracing::warn!(dropped = spool.dropped(), "offline buffer full: oldest reports dropped");
                    }
                    session.send_spooled(&mut spool).await?;
                }
                event = events.poll() => match event {
                    Ok(event) => {
                        if session.handle(event, &mut spool, &config).await? {
                            backoff.reset();
                        }
                        if let Some(id) = session.update.take() {
                            match &mut updates {
                                Some(u) => {
                                    u.waiting.push(id);
                                    u.start(&config, &files);
                                }
                                None => session.publish_result(&id, "failed", "updates are not configured ([update])").await,
                            }
                        }
                        if let Some(u) = &mut updates {
                            u.flush(&mut session).await;
                        }
                        if session.wiped {
                            wipe(&files)?;
                            return Ok(Exit::Wiped);
                        }
                        if session.rotation.is_some() {
                            let outcome = reenroll(&config, &files, true).await;
                            if let Err(e) = &outcome {
                                tracing::warn!(error = %e, "credential rotation failed");
                            }
                            session.finish_rotation(outcome.is_ok()).await;
                        }
                        if session.reconnect {
                            // New credentials: connect again with them.
                            let _ = session.client.disconnect().await;
                            rotated = true;
                            break rumqttc::ConnectionError::RequestsDone;
                        }
                    }
                    Err(e) => break e,
                },
            }
        };
        if session.wiping {
            // The wipe was ordered; do not wait for its acknowledgement forever.
            wipe(&files)?;
            return Ok(Exit::Wiped);
        }
        if rotated {
            tracing::info!("reconnecting with the rotated credentials");
            continue;
        }
        let wait = backoff.wait();
        tracing::warn!(error = %error, ?wait, "MQTT connection lost, reconnecting");
        tokio::select! {
            _ = shutdown.changed() => return Ok(Exit::Stopped),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn wipe(files: &Files) -> Result<(), AgentError> {
    files.key.wipe()?;
    shred(&files.cert)?;
    shred(&files.seq)?;
    if let Ok(entries) = std::fs::read_dir(&files.spool) {
        for e in entries.flatten() {
            shred(&e.path())?;
        }
    }
    let _ = std::fs::remove_dir(&files.spool);
    tracing::warn!("wiped: key, certificate and data destroyed");
    Ok(())
}

/// The device's certificate chain and key, for TLS client authentication.
fn identity(files: &Files) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), AgentError> {
    let mut key_pem = files.key.load()?.ok_or_else(|| AgentError::Tls("the device key is missing".into()))?;
    let loaded = load_identity(&files.cert, &key_pem);
    key_pem.zeroize();
    loaded
}

fn load_identity(
    cert: &Path,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), AgentError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| AgentError::Tls(format!("key: {e}")))?;
    let cert_pem = std::fs::read(cert).map_err(io(cert))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| AgentError::Tls(format!("{}: {e}", cert.display())))?;
    Ok((chain, key))
}

/// The device id: from the configuration, else the common name Palisade put in the certificate.
fn device_id(config: &AgentConfig, files: &Files) -> Result<String, AgentError> {
    if let Some(id) = &config.identity.device_id {
        return Ok(id.clone());
    }
    from_certificate(files, |cert| {
        let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok());
        cn.map(str::to_owned).ok_or_else(|| AgentError::Tls("the certificate names no device".into()))
    })
}

/// Largest packet the agent sends: the server's own limit (256 KiB), which leaves room for a
/// diagnostics bundle (`diagnostics::MAX_BUNDLE`) and its topic.
pub(crate) const MAX_OUTGOING_PACKET: usize = 256 * 1024;
/// Largest packet the agent accepts (commands are small).
const MAX_INCOMING_PACKET: usize = 64 * 1024;

fn mqtt(config: &AgentConfig, files: &Files, device: &str) -> Result<(AsyncClient, EventLoop), AgentError> {
    let (chain, key) = identity(files)?;
    let (host, port) = crate::http::host_port(&config.server.mqtt_url, 8883)
        .ok_or_else(|| AgentError::Tls(format!("{}: not a URL", config.server.mqtt_url)))?;
    let mut opts = MqttOptions::new(device, host, port);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls_client(config, Some((chain, key)))?)));
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    // rumqttc refuses to send anything over 10 KiB by default, and drops the connection: a
    // diagnostics bundle of a machine with a hundred processes is larger than that.
    opts.set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    // A fresh client per connection: the spool, not the client, holds what is still unsent.
    Ok(AsyncClient::new(opts, 64))
}

/// The wall clock, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(0)
}

pub(crate) fn now_rfc3339() -> String {
    crate::fleet::rfc3339(now_ms())
}

/// What an update check sends back to the session: its steps as they happen, then its outcome.
enum UpdateMessage {
    Step(UpdateEvent),
    Done(Result<Outcome, String>),
}

/// Something to publish once connected: an update step (events) or a command result.
enum Note {
    Event(Vec<u8>),
    Result { id: String, ok: bool, detail: String },
}

/// Notes kept while offline at most (the oldest go first).
const MAX_NOTES: usize = 64;

/// Firmware update checks, one at a time, run in their own task so the session goes on; their
/// steps come back over a channel and are published on `devices/<id>/events`.
struct Updates {
    updater: Arc<Updater<CommandHooks>>,
    running: bool,
    /// Commands the check under way answers, and those the next check will.
    answering: Vec<String>,
    waiting: Vec<String>,
    /// Another check was asked for while one ran.
    again: bool,
    notes: VecDeque<Note>,
    tx: mpsc::UnboundedSender<UpdateMessage>,
    rx: mpsc::UnboundedReceiver<UpdateMessage>,
}

impl Updates {
    /// Opens the update directory (default `identity.dir/update`), settles what a stop left
    /// behind, and reports the running image's version and file in the telemetry facts.
    fn open(
        config: &AgentConfig,
        u: &crate::config::Update,
        device: &str,
        facts: &mut StaticFacts,
    ) -> Result<Self, AgentError> {
        let dir = u.dir.clone().unwrap_or_else(|| config.identity.dir.join("update"));
        let mut updater = Updater::open(&dir, device, &u.hardware, CommandHooks::from_config(u))?;
        if let Some(root) = &u.root {
            updater = updater.with_root(std::fs::read(root).map_err(io(root))?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut updates = Self {
            updater: Arc::new(updater),
            running: false,
            answering: Vec::new(),
            waiting: Vec::new(),
            again: false,
            notes: VecDeque::new(),
            tx,
            rx,
        };
        if let Some(event) = updates.updater.recover()? {
            tracing::warn!(event = ?event.event, detail = ?event.detail, "update settled at start");
            updates.note(Note::Event(event.to_json()));
        }
        updates.report_running(facts);
        Ok(updates)
    }

    fn report_running(&self, facts: &mut StaticFacts) {
        if let (Ok(Some(running)), Ok(image)) = (self.updater.running(), self.updater.running_image()) {
            facts.firmware_version = Some(running.version);
            facts.firmware_image = image;
        }
    }

    fn note(&mut self, note: Note) {
        if self.notes.len() >= MAX_NOTES {
            self.notes.pop_front();
        }
        self.notes.push_back(note);
    }

    /// Starts a check unless one is under way (then another follows it).
    fn start(&mut self, config: &AgentConfig, files: &Files) {
        if self.running {
            self.again = true;
            return;
        }
        self.running = true;
        self.again = false;
        self.answering = std::mem::take(&mut self.waiting);
        // The device's current certificate (it may have been renewed since the last check).
        let source = identity(files)
            .and_then(|id| tls_client(config, Some(id)))
            .map(|tls| HttpSource::new(&config.server.est_url, tls));
        let (updater, tx) = (self.updater.clone(), self.tx.clone());
        tokio::spawn(async move {
            let outcome = match source {
                Ok(source) => {
                    let steps = tx.clone();
                    let mut report = move |event| {
                        let _ = steps.send(UpdateMessage::Step(event));
                    };
                    updater.check_and_install(&source, now_ms() / 1000, &mut report).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(UpdateMessage::Done(outcome));
        });
    }

    /// A step to publish, or the end of a check: its commands are answered.
    fn received(&mut self, message: UpdateMessage, facts: &mut StaticFacts, config: &AgentConfig, files: &Files) {
        match message {
            UpdateMessage::Step(event) => {
                tracing::info!(event = ?event.event, target = ?event.target, detail = ?event.detail, "update");
                self.note(Note::Event(event.to_json()));
            }
            UpdateMessage::Done(outcome) => {
                self.running = false;
                let (ok, detail) = match &outcome {
                    Ok(outcome) => outcome.summary(),
                    Err(e) => (false, format!("update check failed: {e}")),
                };
                if !ok {
                    tracing::warn!(%detail, "update");
                }
                if let Ok(Outcome::Committed { .. }) = outcome {
                    self.report_running(facts);
                }
                for id in std::mem::take(&mut self.answering) {
                    self.note(Note::Result { id, ok, detail: detail.clone() });
                }
                if self.again || !self.waiting.is_empty() {
                    self.start(config, files);
                }
            }
        }
    }

    /// Publishes what is waiting, once connected.
    async fn flush(&mut self, session: &mut Session) {
        if !session.connected {
            return;
        }
        while let Some(note) = self.notes.pop_front() {
            match note {
                Note::Event(payload) => session.publish_event(payload).await,
                Note::Result { id, ok, detail } => {
                    session.publish_result(&id, if ok { "done" } else { "failed" }, &detail).await;
                }
            }
        }
    }
}

/// The next message of the update check under way (never, without updates).
async fn next_update_message(updates: &mut Option<Updates>) -> Option<UpdateMessage> {
    match updates {
        Some(u) => u.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reports in flight at most (sent, not yet acknowledged).
const IN_FLIGHT: usize = 16;

/// One MQTT connection's state: what was sent, what each packet id was for.
struct Session {
    client: AsyncClient,
    telemetry_topic: String,
    commands_topic: String,
    result_topic: String,
    events_topic: String,
    connected: bool,
    /// Spooled reports published on this connection and not yet acknowledged.
    in_flight: usize,
    /// Kinds of publishes queued to the client, in order (true = a spooled report).
    queued: VecDeque<bool>,
    /// Packet id → whether it carried a spooled report.
    sent: HashMap<u16, bool>,
    /// A wipe was ordered: its result is on the way.
    wiping: bool,
    wiped: bool,
    /// Credential rotation ordered by the command with this id, run outside the handler.
    rotation: Option<String>,
    /// The rotation succeeded: once its result is acknowledged, reconnect with the new identity.
    rotated: bool,
    reconnect: bool,
    /// A firmware update ordered by the command with this id, run outside the handler.
    update: Option<String>,
}

impl Session {
    fn new(device: &str, client: AsyncClient) -> Self {
        Self {
            client,
            telemetry_topic: format!("devices/{device}/telemetry"),
            commands_topic: format!("devices/{device}/commands"),
            result_topic: format!("devices/{device}/commands/result"),
            events_topic: format!("devices/{device}/events"),
            connected: false,
            in_flight: 0,
            queued: VecDeque::new(),
            sent: HashMap::new(),
            wiping: false,
            wiped: false,
            rotation: None,
            rotated: false,
            reconnect: false,
            update: None,
        }
    }

    /// Publishes spooled reports, oldest first, up to the in-flight limit.
    async fn send_spooled(&mut self, spool: &mut Spool) -> Result<(), AgentError> {
        if !self.connected || self.in_flight >= IN_FLIGHT {
            return Ok(());
        }
        let waiting = spool.peek(IN_FLIGHT)?;
        for payload in waiting.into_iter().skip(self.in_flight) {
            if self.client.publish(&self.telemetry_topic, QoS::AtLeastOnce, false, payload).await.is_err() {
                return Ok(()); // the event loop reports the broken connection
            }
            self.in_flight += 1;
            self.queued.push_back(true);
        }
        Ok(())
    }

    /// Handles one event; true when the connection was (re)established.
    async fn handle(&mut self, event: Event, spool: &mut Spool, config: &AgentConfig) -> Result<bool, AgentError> {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.connected = true;
                let _ = self.client.subscribe(&self.commands_topic, QoS::AtLeastOnce).await;
                self.send_spooled(spool).await?;
                return Ok(true);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let telemetry = self.queued.pop_front().unwrap_or(false);
                self.sent.insert(pkid, telemetry);
            }
            Event::Incoming(Packet::PubAck(ack)) => match self.sent.remove(&ack.pkid) {
                // Palisade acknowledges in order, so the oldest spooled report is the one stored.
                Some(true) => {
                    spool.ack(1)?;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.send_spooled(spool).await?;
                }
                Some(false) if self.wiping => self.wiped = true,
                Some(false) if self.rotated => self.reconnect = true,
                _ => {}
            },
            Event::Incoming(Packet::Publish(p)) if p.topic == self.commands_topic => {
                self.command(&p.payload, config).await;
            }
            _ => {}
        }
        Ok(false)
    }

    /// Sends the diagnostics bundle on the events topic; the command's outcome.
    async fn diagnostics(&mut self, id: &str, config: &AgentConfig) -> (&'static str, String) {
        let proc = Path::new("/proc");
        let (listening, connections) = crate::diagnostics::sockets(proc);
        let log = match &config.diagnostics.log_file {
            Some(path) => crate::diagnostics::tail(path, config.diagnostics.log_lines)
                .unwrap_or_else(|e| vec![format!("cannot read {}: {e}", path.display())]),
            None => Vec::new(),
        };
        let bundle = crate::diagnostics::Bundle {
            kind: "diagnostics",
            command: id.to_owned(),
            collected_at: now_rfc3339(),
            processes: crate::diagnostics::processes(proc),
            listening,
            connections,
            log,
        };
        let summary = format!(
            "bundle on events: {} processes, {} listening sockets, {} log lines",
            bundle.processes.len(),
            bundle.listening.len(),
            bundle.log.len()
        );
        if self.client.publish(&self.events_topic, QoS::AtLeastOnce, false, bundle.to_json()).await.is_err() {
            return ("failed", "connection lost".to_owned());
        }
        self.queued.push_back(false);
        ("done", summary)
    }

    /// Publishes the rotation's result; once it is acknowledged the session reconnects.
    async fn finish_rotation(&mut self, ok: bool) {
        let Some(id) = self.rotation.take() else { return };
        let (status, detail) =
            if ok { ("done", "new key and certificate") } else { ("failed", "re-enrollment failed") };
        self.publish_result(&id, status, detail).await;
        self.rotated = ok;
    }

    async fn publish_event(&mut self, payload: Vec<u8>) {
        if self.client.publish(&self.events_topic, QoS::AtLeastOnce, false, payload).await.is_ok() {
            self.queued.push_back(false);
        }
    }

    async fn publish_result(&mut self, id: &str, status: &str, detail: &str) {
        let result = serde_json::json!({ "id": id, "status": status, "detail": detail }).to_string();
        if self.client.publish(&self.result_topic, QoS::AtLeastOnce, false, result).await.is_ok() {
            self.queued.push_back(false);
        }
    }

    /// Runs a command and publishes its result.
    async fn command(&mut self, payload: &[u8], config: &AgentConfig) {
        #[derive(serde::Deserialize)]
        struct Command {
            id: String,
            command: String,
        }
        let Ok(c) = serde_json::from_slice::<Command>(payload) else {
            tracing::warn!("ignoring a malformed command");
            return;
        };
        tracing::info!(id = %c.id, command = %c.command, "command");
        let hook = |program: &[String]| match program.split_first() {
            None => ("failed", "no hook configured".to_owned()),
            Some((cmd, args)) => match std::process::Command::new(cmd).args(args).status() {
                Ok(s) if s.success() => ("done", format!("{cmd} ran")),
                Ok(s) => ("failed", format!("{cmd} exited with {s}")),
                Err(e) => ("failed", format!("{cmd}: {e}")),
            },
        };
        let (status, detail) = match c.command.as_str() {
            "ping" => ("done", "pong".to_owned()),
            "reboot" => hook(&config.commands.reboot),
            "quarantine-mode" => hook(&config.commands.quarantine_mode),
            "wipe" => {
                self.wiping = true;
                ("done", "wiping key, certificate and data".to_owned())
            }
            "collect-diagnostics" => self.diagnostics(&c.id, config).await,
            "rotate-credentials" => {
                // Answered once the new certificate is in hand (`finish_rotation`).
                self.rotation = Some(c.id);
                return;
            }
            "update" => {
                // Answered once the check is over (`Updates::received`).
                self.update = Some(c.id);
                return;
            }
            other => ("failed", format!("{other} is not supported by this agent yet")),
        };
        self.publish_result(&c.id, status, &detail).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| b.wait()).collect();
        assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= Duration::from_secs(1));
        assert!(waits[3] >= Duration::from_secs(4) && waits[3] <= Duration::from_secs(8));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(60)));
        assert!(waits[9] >= Duration::from_secs(30));
        b.reset();
        assert!(b.wait() <= Duration::from_secs(1));
    }

    #[test]
    fn wiped_files_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path());
        files.key.generate().unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&files.key.path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&files.cert, "cert").unwrap();
        wipe(&files).unwrap();
        assert!(files.key.load().unwrap().is_none());
        assert!(!files.cert.exists());
    }

    #[test]
    fn renewal_after_two_thirds_of_the_lifetime() {
        assert!(!renewal_due(0, 300, 199));
        assert!(renewal_due(0, 300, 200));
        assert!(renewal_due(0, 300, 400), "expired: renew");
    }

    #[test]
    fn rfc3339_now_parses() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
