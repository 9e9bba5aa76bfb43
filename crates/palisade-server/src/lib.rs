//! Every network edge of Palisade: the HTTPS REST API today; the console, the device plane
//! and the background workers as they arrive. The only crate that knows HTTP.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod checks;
pub mod config;
pub mod console;
pub mod detect;
pub mod firmware;
mod http;
pub mod metrics;
pub mod notify;
pub mod pki;
pub mod plane;
pub mod rollout;
pub mod vuln;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_core::DeviceId;
use palisade_store::{Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use bootstrap::BootstrapError;
pub use config::Config;

/// What every request handler can reach.
#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub metrics: Arc<metrics::Metrics>,
    pub config: Arc<Config>,
    pub auth: auth::Auth,
    pub pki: pki::PkiService,
    /// Where the device listener is bound.
    pub device_addr: SocketAddr,
    /// Where MQTT is bound.
    pub mqtt_addr: SocketAddr,
    pub plane: plane::Plane,
    /// Detection: where facts go once they are durable.
    pub detector: detect::Detector,
    /// The security profiles in force (parsed), for escalation and the API.
    pub profiles: std::sync::RwLock<Arc<Vec<Arc<detect::ParsedProfile>>>>,
    /// Wakes the notification delivery worker (after a write that queued deliveries).
    pub notifier: notify::Notifier,
    /// The OpenAPI document, rendered once.
    pub openapi: String,
    /// Signed firmware updates: the online TUF keys once loaded.
    pub firmware: firmware::Firmware,
    /// Wakes the rollout engine (a device reported the end of an update, an operator acted).
    pub rollouts: rollout::Engine,
    /// Vulnerability exposure: the index of SBOMs, advisories and devices.
    pub vulns: vuln::Vulns,
}

pub type AppState = Arc<App>;

/// Milliseconds since the Unix epoch: the one clock read of the server.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A fresh, time-ordered device id.
pub fn new_device_id() -> Result<DeviceId, StoreError> {
    let mut random = [0u8; 7];
    palisade_store::sealed::random(&mut random)?;
    Ok(DeviceId::from_parts(u64::try_from(now_ms()).unwrap_or(0), random))
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub console_addr: SocketAddr,
    pub device_addr: SocketAddr,
    pub mqtt_addr: SocketAddr,
    pub store: Store,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, signs the audit head, closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        match self.store.audit_checkpoint(now_ms()).await {
            Ok(Some(seq)) => tracing::info!(seq, "signed the audit log at shutdown"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot sign the audit log at shutdown"),
        }
        self.store.close().await;
    }
}

fn tls_names(config: &Config) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let ip = config.console_addr.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    for n in &config.tls_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

/// Opens the store (first start creates everything), binds the listeners and starts serving.
pub async fn start(config: Config) -> Result<Running, BootstrapError> {
    config.validate()?;
    let data_dir = config.data_dir()?.to_owned();
    let metrics = Arc::new(metrics::Metrics::default());
    let store = bootstrap::open_store(&config, true, Some(metrics.clone())).await?;
    let pki = bootstrap::pki(&store, &data_dir).await?;
    let identity = pki.server.issue_server(
        &tls_names(&config),
        &[pki.root.cert_der().clone()],
        time::OffsetDateTime::now_utc(),
    )?;
    let tls = palisade_pki::tls13_server_config(identity)?;
    let (listener, console_addr) = http::bind(config.console_addr).await.map_err(|source| BootstrapError::Io {
        what: "cannot listen on",
        path: config.console_addr.to_string().into(),
        source,
    })?;
    if !is_loopback(console_addr.ip()) {
        tracing::info!(%console_addr, "console listens beyond loopback");
    }
    let (device_listener, device_addr) = http::bind(config.device_https_addr).await.map_err(|source| {
        BootstrapError::Io { what: "cannot listen on", path: config.device_https_addr.to_string().into(), source }
    })?;
    let (mqtt_listener, mqtt_addr) = http::bind(config.mqtt_addr).await.map_err(|source| BootstrapError::Io {
        what: "cannot listen on",
        path: config.mqtt_addr.to_string().into(),
        source,
    })?;
    let device_identity = pki.server.issue_server(
        &tls_names(&config),
        &[pki.root.cert_der().clone()],
        time::OffsetDateTime::now_utc(),
    )?;
    let pki_service = pki::PkiService::new(&store, pki.device, &pki.root, device_identity, config.pki.validity_days)
        .await
        .map_err(|e| BootstrapError::Refused(format!("PKI: {e}")))?;

    let checkpoint_every = Duration::from_secs(config.audit.checkpoint_interval_secs);
    bootstrap::initial_admin(&store, &data_dir).await?;
    let auth = auth::Auth::new(config.auth.clone()).map_err(|e| BootstrapError::Refused(e.to_string()))?;
    let (detector, detect_inputs) =
        detect::Detector::new().map_err(|e| BootstrapError::Refused(format!("cannot start detection: {e}")))?;
    let cpe_matching = config.vulnerabilities.cpe_matching;
    let state = Arc::new(App {
        store: store.clone(),
        metrics,
        config: Arc::new(config),
        auth,
        pki: pki_service,
        device_addr,
        mqtt_addr,
        plane: plane::Plane::default(),
        detector,
        profiles: std::sync::RwLock::default(),
        notifier: notify::Notifier::new(),
        openapi: api::openapi_json(),
        firmware: firmware::Firmware::default(),
        rollouts: rollout::Engine::default(),
        vulns: vuln::Vulns::new(cpe_matching),
    });
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = detect::start(state.clone(), detect_inputs, rx.clone())
        .await
        .map_err(|e| BootstrapError::Refused(format!("detection: {e}")))?;
    let app = api::router(state.clone());
    let console_tls: http::TlsSource = Arc::new(move || tls.clone());
    tasks.push(tokio::spawn(http::serve(listener, console_tls, app, rx.clone())));
    let device_state = state.clone();
    let device_tls: http::TlsSource = Arc::new(move || device_state.pki.device_tls());
    tasks.push(tokio::spawn(http::serve(device_listener, device_tls, api::device_router(state.clone()), rx.clone())));
    tasks.push(tokio::spawn(plane::serve(state.clone(), mqtt_listener, rx.clone())));
    tasks.push(tokio::spawn(checkpoints(store.clone(), checkpoint_every, rx.clone())));
    tasks.push(tokio::spawn(rollout::run(state.clone(), rx.clone())));
    tasks.push(tokio::spawn(vuln::run(state.clone(), rx.clone())));
    let notifier = state.notifier.clone();
    tasks.push(state.detector.lane.spawn(notify::run(store.clone(), state.metrics.clone(), notifier, rx.clone())));
    tasks.push(tokio::spawn(hourly(state, rx)));
    tracing::info!(%console_addr, backend = store.backend_name(), "palisade is serving");
    Ok(Running { console_addr, device_addr, mqtt_addr, store, shutdown, tasks })
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Signs the audit chain head periodically.
async fn checkpoints(store: Store, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = store.audit_checkpoint(now_ms()).await {
                    tracing::error!(error = %e, "audit checkpoint failed");
                }
            }
        }
    }
}

/// Hourly: re-issue the CRL (before its nextUpdate) and run the fleet audit checks.
async fn hourly(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = state.pki.refresh_crl(&state.store).await {
                    tracing::error!(error = %e, "cannot re-issue the CRL");
                }
                if let Err(e) = checks::fleet_checks(&state).await {
                    tracing::error!(error = %e, "fleet audit checks failed");
                }
            }
        }
    }
}
