//! `palisade sim`: a simulated fleet against a real Palisade, through its public interfaces
//! only. Devices are registered through the REST API, each enrolls over EST with its own key,
//! finds the MQTT endpoint from `GET /api/v1/system/endpoints`, and reports what its
//! [`VirtualDevice`] says, acting out the scenario's attacks on the network (reconnecting,
//! connecting a cloned certificate from a second address, going silent). It measures what it
//! does: PUBACK latency, messages per second, handshakes, errors.
//!
//! Devices take firmware updates: on the `update` command each runs the agent's own updater
//! ([`crate::update::Updater`]) against the device listener with its certificate, its state in a
//! temporary directory of its own (the initial root fetched on first use), hardware = its model,
//! and a health check that fails where the scenario's `[update]` says. A committed version is
//! what its telemetry reports from then on.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinSet;

use crate::fleet::{Action, Profile, Scenario, VirtualDevice};
use crate::http;
use crate::update::{HttpSource, Installed, Outcome, Staged, UpdateEvent, Updater};

/// What to simulate and where.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The console URL (REST API), e.g. `https://localhost:8443`.
    pub server: String,
    pub api_key: String,
    /// Palisade's root CA (PEM).
    pub ca_pem: Vec<u8>,
    pub devices: usize,
    pub duration: Duration,
    /// How often each device reports.
    pub interval: Duration,
    /// QoS 0 (fire and forget) or 1 (acknowledged once stored).
    pub qos: u8,
    /// Connections opened per second at the start (`None`: all at once).
    pub ramp: Option<f64>,
    /// Another MQTT broker to report to (`mqtts://host:port`) and the CA of its server
    /// certificate: the same fleet and load against, say, Mosquitto, side by side. Devices are
    /// still registered and enrolled through Palisade.
    pub broker: Option<(String, Vec<u8>)>,
    pub scenario: Scenario,
    /// Simulated time runs this many times faster than real time (1 = real time). Report times
    /// stay in the past: the simulated clock catches up with the real one at the end of the run.
    pub speed: f64,
    pub group: String,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {status} {body}")]
    Refused { what: String, status: u16, body: String },
}

/// What the run did; `--report` writes it as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub devices: Vec<String>,
    pub attacks: Vec<AttackEntry>,
    pub load: Load,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttackEntry {
    pub device: String,
    pub kind: crate::fleet::AttackKind,
    pub at: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Load {
    pub enroll_seconds: f64,
    pub connections: usize,
    pub handshakes: u64,
    pub handshakes_per_s: f64,
    pub published: u64,
    pub acked: u64,
    pub msgs_per_s: f64,
    pub puback_p50_ms: f64,
    pub puback_p99_ms: f64,
    pub errors: u64,
}

/// A device's credentials, in memory only.
struct Identity {
    id: String,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

impl Identity {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

fn tls(ca_pem: &[u8], identity: Option<&Identity>) -> Result<Arc<rustls::ClientConfig>, SimError> {
    http::client_config(ca_pem, identity.map(|i| (i.chain.clone(), i.key()))).map_err(SimError::Setup)
}

async fn api(
    opts: &SimOptions,
    tls: &Arc<rustls::ClientConfig>,
    method: hyper::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, SimError> {
    let url = format!("{}{path}", opts.server.trim_end_matches('/'));
    let headers = [("Authorization", format!("Bearer {}", opts.api_key)), ("Content-Type", "application/json".into())];
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let (status, resp) = http::send(tls.clone(), method, &url, &headers, body)
        .await
        .map_err(|e| SimError::Setup(format!("{url}: {e}")))?;
    if !(200..300).contains(&status) {
        let body = String::from_utf8_lossy(&resp).chars().take(300).collect();
        return Err(SimError::Refused { what: path.to_owned(), status, body });
    }
    serde_json::from_slice(&resp).map_err(|e| SimError::Setup(format!("{path}: {e}")))
}

/// The model a profile's devices are registered with (and the hardware their images are for).
fn model(profile: Profile) -> String {
    serde_json::to_value(profile).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Registers device `index` and enrolls it over EST with a key made here.
async fn enroll(opts: Arc<SimOptions>, est: String, run: u128, index: usize) -> Result<Identity, SimError> {
    let tls = tls(&opts.ca_pem, None)?;
    let model = model(Profile::for_index(index));
    let device = serde_json::json!({
        "serial": format!("SIM-{run}-{index}"), "model": model, "vendor": "palisade-sim", "group": opts.group,
    });
    let created = api(&opts, &tls, hyper::Method::POST, "/api/v1/devices", device).await?;
    let id = created
        .get("id")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| SimError::Setup("device id missing".into()))?
        .to_owned();
    let path = format!("/api/v1/devices/{id}/enrollment-tokens");
    let token = api(&opts, &tls, hyper::Method::POST, &path, serde_json::json!({})).await?;
    let token = token
        .get("token")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| SimError::Setup("token missing".into()))?;
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| SimError::Setup(e.to_string()))?;
    let csr =
        rcgen::CertificateParams::default().serialize_request(&key).map_err(|e| SimError::Setup(e.to_string()))?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{token}"));
    let headers = [("Authorization", format!("Basic {basic}")), ("Content-Type", "application/pkcs10".into())];
    let body = base64::engine::general_purpose::STANDARD.encode(csr.der()).into_bytes();
    let url = format!("{}/simpleenroll", est.trim_end_matches('/'));
    let (status, resp) = http::send(tls, hyper::Method::POST, &url, &headers, body)
        .await
        .map_err(|e| SimError::Setup(format!("{url}: {e}")))?;
    if status != 200 {
        let body = String::from_utf8_lossy(&resp).chars().take(300).collect();
        return Err(SimError::Refused { what: format!("enrolling {id}"), status, body });
    }
    let pem = crate::run::certificate_pem(&resp).map_err(|e| SimError::Setup(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Setup(e.to_string()))?;
    Ok(Identity { id, chain, key: key.serialize_der() })
}

/// What one device measured.
#[derive(Default)]
struct DeviceStats {
    handshakes: u64,
    published: u64,
    latencies: Vec<Duration>,
    errors: u64,
}

/// The CA that signs the MQTT broker's certificate: Palisade's root, or the other broker's.
fn broker_ca(opts: &SimOptions) -> &[u8] {
    opts.broker.as_ref().map_or(&opts.ca_pem, |(_, ca)| ca)
}

fn client(opts: &SimOptions, identity: &Identity, host: &str, port: u16) -> Result<(AsyncClient, EventLoop), SimError> {
    let mut o = MqttOptions::new(identity.id.clone(), host, port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(broker_ca(opts), Some(identity))?)));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    Ok(AsyncClient::new(o, 16))
}

/// The simulated clock: real time sped up by `speed`, reaching the real clock at `end_ms`.
#[derive(Debug, Clone, Copy)]
struct Clock {
    end_ms: i64,
    speed: f64,
}

impl Clock {
    fn new(start_ms: i64, duration: Duration, speed: f64) -> Self {
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self { end_ms: start_ms.saturating_add(duration_ms), speed: speed.max(1.0) }
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        reason = "run lengths are far below 2^52 ms"
    )]
    fn at(&self, real_ms: i64) -> i64 {
        self.end_ms.saturating_sub((self.end_ms.saturating_sub(real_ms) as f64 * self.speed) as i64)
    }

    fn now(&self) -> i64 {
        self.at(crate::run::now_ms())
    }
}

/// Where simulated devices take updates from and keep their update state.
struct SimUpdates {
    /// The device listener (`/tuf/…`, `/firmware/…`).
    device_url: String,
    /// Each device's state is `<state>/<device id>`.
    state: PathBuf,
}

/// A simulated device's hooks: installing and booting take no time; the health check fails where
/// the scenario's `[update]` says, for this device and the image's version.
struct SimHooks {
    opts: Arc<SimOptions>,
    index: usize,
}

impl crate::update::Hooks for SimHooks {
    async fn install(&self, _: &Staged) -> Result<(), String> {
        Ok(())
    }

    async fn boot(&self, _: &Staged) -> Result<(), String> {
        Ok(())
    }

    async fn health(&self, staged: &Staged) -> Result<(), String> {
        match self.opts.scenario.health_fails(self.index, self.opts.seed, &staged.version) {
            true => Err("simulated: the device did not come back healthy".into()),
            false => Ok(()),
        }
    }
}

/// What an update check of a simulated device sends back: its steps, then its outcome and the
/// image then running.
enum UpdateMessage {
    Step(UpdateEvent),
    Done(Result<(Outcome, Option<Installed>), String>),
}

/// One update check of device `index`, as the agent runs it.
async fn update(
    opts: Arc<SimOptions>,
    identity: Arc<Identity>,
    updates: Arc<SimUpdates>,
    index: usize,
    tx: tokio::sync::mpsc::UnboundedSender<UpdateMessage>,
) {
    let run = async {
        let hooks = SimHooks { opts: opts.clone(), index };
        let dir = updates.state.join(&identity.id);
        let updater =
            Updater::open(&dir, &identity.id, &model(Profile::for_index(index)), hooks).map_err(|e| e.to_string())?;
        let source =
            HttpSource::new(&updates.device_url, tls(&opts.ca_pem, Some(&identity)).map_err(|e| e.to_string())?);
        let steps = tx.clone();
        let mut report = move |event| {
            let _ = steps.send(UpdateMessage::Step(event));
        };
        let outcome = updater
            .check_and_install(&source, crate::run::now_ms() / 1000, &mut report)
            .await
            .map_err(|e| e.to_string())?;
        Ok((outcome, updater.running().map_err(|e| e.to_string())?))
    };
    let _ = tx.send(UpdateMessage::Done(run.await));
}

/// Messages waiting to be published at most (events and command results; the oldest go).
const OUTBOX: usize = 64;

/// Runs one virtual device until `until`.
#[allow(clippy::too_many_arguments)]
async fn device(
    opts: Arc<SimOptions>,
    identity: Arc<Identity>,
    updates: Arc<SimUpdates>,
    index: usize,
    mut model: VirtualDevice,
    clock: Clock,
    host: String,
    port: u16,
    start: Instant,
    until: Instant,
) -> DeviceStats {
    let mut stats = DeviceStats::default();
    tokio::time::sleep_until(start.into()).await;
    let qos = if opts.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    let topic = format!("devices/{}/telemetry", identity.id);
    let commands_topic = format!("devices/{}/commands", identity.id);
    let events_topic = format!("devices/{}/events", identity.id);
    let result_topic = format!("devices/{}/commands/result", identity.id);
    let Ok((mut client_, mut events)) = client(&opts, &identity, &host, port) else {
        stats.errors += 1;
        return stats;
    };
    // Publishes queued to the client, in order: the time of a report (QoS 1), else `None`.
    let mut queued: VecDeque<Option<Instant>> = VecDeque::new();
    // Update events and command results not yet handed to the client.
    let mut outbox: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    let (update_tx, mut update_rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut updating, mut answering, mut waiting) = (false, Vec::<String>::new(), Vec::<String>::new());
    // Reports are made only while connected: one queued on a connection attempt that fails
    // would be lost without a trace.
    let mut connected = false;
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(opts.interval);
    loop {
        while connected && let Some((topic, payload)) = outbox.front() {
            if client_.try_publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone()).is_err() {
                break;
            }
            outbox.pop_front();
            queued.push_back(None);
        }
        if !updating && !waiting.is_empty() {
            updating = true;
            answering = std::mem::take(&mut waiting);
            tokio::spawn(update(opts.clone(), identity.clone(), updates.clone(), index, update_tx.clone()));
        }
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => break,
            Some(message) = update_rx.recv() => match message {
                UpdateMessage::Step(event) => push_bounded(&mut outbox, (events_topic.clone(), event.to_json())),
                UpdateMessage::Done(outcome) => {
                    updating = false;
                    if let Ok((Outcome::Committed { .. }, Some(running))) = &outcome {
                        model.install_firmware(&running.version, &running.sha256);
                    }
                    let (ok, detail) = match &outcome {
                        Ok((outcome, _)) => outcome.summary(),
                        Err(e) => (false, format!("update check failed: {e}")),
                    };
                    let status = if ok { "done" } else { "failed" };
                    for id in std::mem::take(&mut answering) {
                        let result = serde_json::json!({ "id": id, "status": status, "detail": detail });
                        push_bounded(&mut outbox, (result_topic.clone(), result.to_string().into_bytes()));
                    }
                }
            },
            _ = ticker.tick() => {
                let tick = model.report(clock.now());
                for action in &tick.actions {
                    match action {
                        Action::Reconnect => {
                            let _ = client_.disconnect().await;
                            connected = false;
                            match client(&opts, &identity, &host, port) {
                                Ok((c, e)) => (client_, events) = (c, e),
                                Err(_) => stats.errors += 1,
                            }
                            queued.clear();
                            sent.clear();
                        }
                        Action::CloneConnect => {
                            tokio::spawn(clone_connect(opts.clone(), identity.clone(), host.clone(), port));
                        }
                        Action::Silent => {}
                    }
                }
                if let Some(report) = tick.report
                    && connected
                    && let Ok(payload) = serde_json::to_vec(&report)
                    && client_.try_publish(&topic, qos, false, payload).is_ok()
                {
                    stats.published += 1;
                    if qos == QoS::AtLeastOnce {
                        queued.push_back(Some(Instant::now()));
                    }
                }
            }
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    stats.handshakes += 1;
                    connected = true;
                    let _ = client_.try_subscribe(&commands_topic, QoS::AtLeastOnce);
                    // Report at once on (re)connecting, then every interval.
                    ticker.reset_immediately();
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(Some(t)) = queued.pop_front() {
                        sent.insert(pkid, t);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == commands_topic => {
                    // The simulator answers firmware updates; other commands stay unanswered.
                    #[derive(serde::Deserialize)]
                    struct Command {
                        id: String,
                        command: String,
                    }
                    if let Ok(c) = serde_json::from_slice::<Command>(&p.payload)
                        && c.command == "update"
                    {
                        waiting.push(c.id);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(t) = sent.remove(&ack.pkid) {
                        stats.latencies.push(t.elapsed());
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    stats.errors += 1;
                    connected = false;
                    queued.clear();
                    sent.clear();
                    // rumqttc reconnects on the next poll; do not spin while the server is away.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    }
    let _ = client_.disconnect().await;
    stats
}

/// A cloned certificate in use: a second MQTT connection with the device's certificate, from
/// another loopback address when the server is on loopback (a second place), held for a while.
async fn clone_connect(opts: Arc<SimOptions>, identity: Arc<Identity>, host: String, port: u16) {
    let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await else { return };
    let Some(addr) = addrs.into_iter().find(std::net::SocketAddr::is_ipv4) else { return };
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else { return };
    if addr.ip().is_loopback() {
        let _ = socket.bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0)));
    }
    let Ok(tcp) = socket.connect(addr).await else { return };
    let (Ok(tls), Ok(name)) = (tls(broker_ca(&opts), Some(&identity)), ServerName::try_from(host)) else { return };
    let Ok(mut stream) = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await else { return };
    let id = identity.id.as_bytes();
    let mut connect = vec![0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    connect.extend_from_slice(&u16::try_from(id.len()).unwrap_or(0).to_be_bytes());
    connect.extend_from_slice(id);
    if let Some(len) = connect.get_mut(1) {
        *len = u8::try_from(10 + 2 + id.len()).unwrap_or(0);
    }
    if stream.write_all(&connect).await.is_err() {
        return;
    }
    let mut connack = [0u8; 4];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut connack)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() >= OUTBOX {
        queue.pop_front();
    }
    queue.push_back(item);
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Registers, enrolls and runs the fleet; the report of what happened.
pub async fn run(opts: SimOptions) -> Result<SimReport, SimError> {
    opts.scenario.check_devices(opts.devices).map_err(|e| SimError::Setup(e.to_string()))?;
    let opts = Arc::new(opts);
    let api_tls = tls(&opts.ca_pem, None)?;
    let endpoints =
        api(&opts, &api_tls, hyper::Method::GET, "/api/v1/system/endpoints", serde_json::Value::Null).await?;
    let est = endpoints
        .get("est")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| SimError::Setup("no EST endpoint".into()))?
        .to_owned();
    let mqtt = endpoints
        .get("mqtt")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| SimError::Setup("no MQTT endpoint".into()))?;
    let mqtt = opts.broker.as_ref().map_or(mqtt, |(url, _)| url.as_str());
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let updates = Arc::new(SimUpdates {
        device_url: est.clone(),
        state: std::env::temp_dir().join(format!("palisade-sim-{}-{run_id}", std::process::id())),
    });
    let (host, port) = http::host_port(mqtt, 8883).ok_or_else(|| SimError::Setup(format!("{mqtt}: not a URL")))?;

    let started = Instant::now();
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let mut enrolling = JoinSet::new();
    let mut identities: Vec<Option<Identity>> = (0..opts.devices).map(|_| None).collect();
    for index in 0..opts.devices {
        if enrolling.len() >= 16
            && let Some(done) = enrolling.join_next().await
        {
            let (i, identity) = done.map_err(|e| SimError::Setup(e.to_string()))?;
            if let Some(slot) = identities.get_mut(i) {
                *slot = Some(identity?);
            }
        }
        let (opts, est) = (opts.clone(), est.clone());
        enrolling.spawn(async move { (index, enroll(opts, est, run, index).await) });
    }
    while let Some(done) = enrolling.join_next().await {
        let (i, identity) = done.map_err(|e| SimError::Setup(e.to_string()))?;
        if let Some(slot) = identities.get_mut(i) {
            *slot = Some(identity?);
        }
    }
    let identities: Vec<Arc<Identity>> = identities.into_iter().flatten().map(Arc::new).collect();
    let enroll_seconds = started.elapsed().as_secs_f64();

    let clock = Clock::new(crate::run::now_ms(), opts.duration, opts.speed);
    let start_ms = clock.now();
    let now = Instant::now();
    let until = now + opts.duration;
    let mut running = JoinSet::new();
    for (index, identity) in identities.iter().enumerate() {
        let mut model = VirtualDevice::new(index, Profile::for_index(index), opts.seed, start_ms);
        model.schedule(opts.scenario.for_device(index));
        #[allow(clippy::cast_precision_loss)]
        let delay =
            opts.ramp.filter(|r| *r > 0.0).map_or(Duration::ZERO, |r| Duration::from_secs_f64(index as f64 / r));
        let args = (host.clone(), port, now + delay, until);
        let (opts, identity, updates) = (opts.clone(), identity.clone(), updates.clone());
        running.spawn(device(opts, identity, updates, index, model, clock, args.0, args.1, args.2, args.3));
    }
    let mut load = Load { enroll_seconds, connections: identities.len(), ..Load::default() };
    let mut latencies = Vec::new();
    while let Some(done) = running.join_next().await {
        let s = done.map_err(|e| SimError::Setup(e.to_string()))?;
        load.handshakes += s.handshakes;
        load.published += s.published;
        load.errors += s.errors;
        latencies.extend(s.latencies);
    }
    // The devices' update state was for this run only.
    let _ = std::fs::remove_dir_all(&updates.state);
    latencies.sort();
    let secs = opts.duration.as_secs_f64().max(0.001);
    load.acked = latencies.len() as u64;
    // QoS 0 has no acknowledgement: what was sent is what is counted.
    let delivered = if opts.qos == 0 { load.published } else { load.acked };
    #[allow(clippy::cast_precision_loss)]
    {
        load.msgs_per_s = delivered as f64 / secs;
        load.handshakes_per_s = load.handshakes as f64 / secs;
    }
    load.puback_p50_ms = percentile(&latencies, 0.50);
    load.puback_p99_ms = percentile(&latencies, 0.99);
    let attacks = opts
        .scenario
        .records(start_ms)
        .into_iter()
        .filter_map(|r| {
            let device = identities.get(r.device_index)?.id.clone();
            Some(AttackEntry { device, kind: r.kind, at: crate::fleet::rfc3339(r.at_ms) })
        })
        .collect();
    Ok(SimReport { devices: identities.iter().map(|i| i.id.clone()).collect(), attacks, load })
}
