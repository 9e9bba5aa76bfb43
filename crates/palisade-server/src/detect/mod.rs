//! Detection at run time: the core's [`Engine`] fed with what devices do, sharded by device.
//!
//! Telemetry reports are evaluated as the ingester forms a batch, before it is written
//! ([`Detector::evaluate`]): the signals come back to the ingester, which writes the alerts in
//! the same transaction as the reports, so a report and its alert are durable together and the
//! alert's notice is one commit away from the PUBLISH, not two. Connections and security events
//! arrive as the device plane records them ([`Detector::observe`]). Each shard owns the state of
//! its devices and an exact timer per device for absence rules. Signals of timers and events go
//! to one alert task ([`alerts`]), which records them, responds and notifies, in order; signals
//! already recorded with their batch go there too, for the response and the notices.
//!
//! Fleet-relative rules compare a device with the devices of its own shard: shards are a hash
//! of the device id, so each holds an unbiased sample of every group.

pub mod alerts;
pub mod spec;

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use palisade_core::detect::{Destination, Engine, Fix, LatLon, Observation, Profile, Report, Signal};
use palisade_proto::telemetry::TelemetryV1;
use palisade_store::plane::TelemetryFacts;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{AppState, now_ms};

pub use spec::ParsedProfile;

/// What a shard is told.
#[derive(Debug)]
enum Input {
    Observe(String, Observation),
    /// Reports of a batch about to be written: the signals they raise are answered.
    Evaluate(Vec<(String, Box<Report>)>, oneshot::Sender<Vec<DeviceSignal>>),
    Profiles(Arc<Vec<Arc<ParsedProfile>>>),
    DeviceChanged(String),
    FalsePositive {
        device: String,
        profile: String,
        rule: String,
    },
}

/// Queue depth per shard: facts wait here at most, then the sender waits (backpressure on
/// ingestion rather than unbounded memory).
const SHARD_QUEUE: usize = 8192;

/// The shard that owns `device`, of `n`.
fn shard_of(device: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    device.hash(&mut h);
    usize::try_from(h.finish() % n.max(1) as u64).unwrap_or(0)
}

/// The handle the device plane and the API use (cheap to clone).
#[derive(Debug, Clone)]
pub struct Detector {
    shards: Vec<mpsc::Sender<Input>>,
    /// The alert task's queue.
    alerts: mpsc::Sender<alerts::Work>,
    /// Alert changes as JSON, for live streams (the console's SSE).
    pub live: broadcast::Sender<String>,
    pub(crate) escalation: Arc<tokio::sync::Notify>,
    /// Where the shards and the ingester run.
    pub(crate) lane: Arc<Lane>,
}

/// A runtime of its own for the path from a device's report to its alert (the ingester, which
/// forms batches, and the detection shards). Its threads are idle most of the time, so they run
/// as soon as they are woken, instead of waiting their turn behind thousands of connection
/// tasks on the main runtime: under load that wait was most of a batch's time before its write.
/// The runtime stops when the last handle to it is dropped.
#[derive(Debug)]
pub struct Lane {
    handle: tokio::runtime::Handle,
    _stop: std::sync::mpsc::Sender<()>,
}

impl Lane {
    fn start(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("detect")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new().name("detect-lane".into()).spawn(move || {
            // Returns once every sender is gone (the server stopped).
            let _ = stopped.recv();
            runtime.shutdown_background();
        })?;
        Ok(Self { handle, _stop: stop })
    }

    /// Runs `task` on the lane.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

/// The receiving ends, handed to [`start`] once the application state exists.
#[derive(Debug)]
pub struct Inputs {
    shards: Vec<mpsc::Receiver<Input>>,
    alerts: mpsc::Receiver<alerts::Work>,
}

impl Detector {
    pub fn new() -> std::io::Result<(Self, Inputs)> {
        let n = std::thread::available_parallelism().map_or(2, usize::from).clamp(1, 8);
        let lane = Arc::new(Lane::start(n)?);
        let (txs, rxs) = (0..n).map(|_| mpsc::channel(SHARD_QUEUE)).unzip();
        let (live, _) = broadcast::channel(1024);
        let (alerts, alerts_rx) = mpsc::channel(SHARD_QUEUE);
        let detector = Self { shards: txs, alerts, live, escalation: Arc::new(tokio::sync::Notify::new()), lane };
        Ok((detector, Inputs { shards: rxs, alerts: alerts_rx }))
    }

    fn shard(&self, device: &str) -> Option<&mpsc::Sender<Input>> {
        self.shards.get(shard_of(device, self.shards.len()))
    }

    /// Something a device did (already durable where it is stored).
    pub async fn observe(&self, device: &str, obs: Observation) {
        if let Some(tx) = self.shard(device) {
            let _ = tx.send(Input::Observe(device.to_owned(), obs)).await;
        }
    }

    /// Evaluates the reports of a batch about to be written, in order: the signals they raise,
    /// for the batch's write to record ([`alerts::verdict`]). The shards work on their parts at
    /// the same time.
    pub async fn evaluate(&self, reports: Vec<(String, Box<Report>)>) -> Vec<DeviceSignal> {
        let n = self.shards.len();
        let mut parts: Vec<Vec<(String, Box<Report>)>> = (0..n).map(|_| Vec::new()).collect();
        for (device, report) in reports {
            if let Some(part) = parts.get_mut(shard_of(&device, n)) {
                part.push((device, report));
            }
        }
        let mut replies = Vec::new();
        for (tx, part) in self.shards.iter().zip(parts) {
            if part.is_empty() {
                continue;
            }
            let (reply, answer) = oneshot::channel();
            if tx.send(Input::Evaluate(part, reply)).await.is_ok() {
                replies.push(answer);
            }
        }
        let mut signals = Vec::new();
        for answer in replies {
            signals.extend(answer.await.unwrap_or_default());
        }
        signals
    }

    /// Hands the alert task a signal recorded with its batch (for the response and the
    /// notices), or, if the batch could not be written, one it must record on its own.
    pub async fn recorded(&self, signal: DeviceSignal, recorded: Option<alerts::Outcome>) {
        let work = match recorded {
            Some(r) => alerts::Work::Recorded(signal, Box::new(r)),
            None => alerts::Work::Signal(signal),
        };
        let _ = self.alerts.send(work).await;
    }

    /// A device's group or model changed: its profiles are looked up again.
    pub async fn device_changed(&self, device: &str) {
        if let Some(tx) = self.shard(device) {
            let _ = tx.send(Input::DeviceChanged(device.to_owned())).await;
        }
    }

    pub async fn false_positive(&self, device: &str, profile: &str, rule: &str) {
        if let Some(tx) = self.shard(device) {
            let input =
                Input::FalsePositive { device: device.to_owned(), profile: profile.to_owned(), rule: rule.to_owned() };
            let _ = tx.send(input).await;
        }
    }

    /// Reads the profiles from the store again and hands them to every shard.
    pub async fn reload(&self, state: &AppState) -> Result<Arc<Vec<Arc<ParsedProfile>>>, palisade_store::StoreError> {
        let profiles = load_profiles(state).await?;
        for tx in &self.shards {
            let _ = tx.send(Input::Profiles(profiles.clone())).await;
        }
        *state.profiles.write().unwrap_or_else(std::sync::PoisonError::into_inner) = profiles.clone();
        self.escalation.notify_one();
        Ok(profiles)
    }
}

/// The stored profiles, parsed. A stored profile that no longer parses (written by another
/// version) is skipped and logged: one bad profile never stops detection for the others.
async fn load_profiles(state: &AppState) -> Result<Arc<Vec<Arc<ParsedProfile>>>, palisade_store::StoreError> {
    let mut out = Vec::new();
    for p in state.store.profiles().await? {
        let parsed = serde_json::from_str::<serde_json::Value>(&p.spec)
            .map_err(|e| e.to_string())
            .and_then(|v| spec::parse(&v).map_err(|e| e.to_string()));
        match parsed {
            Ok(parsed) => out.push(Arc::new(parsed)),
            Err(e) => tracing::error!(profile = %p.name, error = %e, "stored profile does not parse; skipped"),
        }
    }
    Ok(Arc::new(out))
}

/// Parses a profiles file (TOML, `[[profile]]` tables in the API's JSON shape): every profile
/// as written (JSON) and parsed, or the first error with the profile's place and the field.
pub fn parse_profiles_toml(text: &str) -> Result<Vec<(serde_json::Value, ParsedProfile)>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(k) = doc.keys().find(|k| *k != "profile") {
        return Err(format!("unknown key `{k}` (profiles go in [[profile]] tables)"));
    }
    let json = serde_json::to_value(&doc).map_err(|e| e.to_string())?;
    let list = json.get("profile").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let p = spec::parse(&v).map_err(|e| format!("profile[{i}].{e}"))?;
            Ok((v, p))
        })
        .collect()
}

/// Stores the profiles of a file, each validated first: a file with one bad profile changes
/// nothing, and the error names the file, the profile's place and the field.
pub async fn install_file(state: &AppState, path: &std::path::Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed = parse_profiles_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let ctx = palisade_store::audit::AuditContext {
        actor: palisade_core::audit::Actor::Local { what: format!("profiles file {}", path.display()) },
        source_ip: None,
        at_ms: now_ms(),
    };
    let n = parsed.len();
    for (spec, p) in parsed {
        state
            .store
            .put_profile(p.profile.name, spec.to_string(), "config", ctx.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Starts the shards and the alert task.
pub async fn start(
    state: AppState,
    inputs: Inputs,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    if let Some(path) = &state.config.detection.profiles_file {
        let n = install_file(&state, path).await?;
        tracing::info!(profiles = n, file = %path.display(), "security profiles loaded");
    }
    let profiles = load_profiles(&state).await.map_err(|e| e.to_string())?;
    *state.profiles.write().unwrap_or_else(std::sync::PoisonError::into_inner) = profiles.clone();
    let signals_tx = state.detector.alerts.clone();
    let mut engines: Vec<Engine> = inputs.shards.iter().map(|_| Engine::default()).collect();
    let started = std::time::Instant::now();
    let (replayed, missed) =
        replay(&state, &profiles, &mut engines).await.map_err(|e| format!("rebuilding detection: {e}"))?;
    tracing::info!(
        devices = replayed,
        unrecorded = missed.len(),
        ms = started.elapsed().as_millis(),
        "detection state rebuilt from the store"
    );
    let mut tasks = Vec::new();
    for (rx, mut engine) in inputs.shards.into_iter().zip(engines) {
        engine.resume(now_ms());
        let mut shard = Shard {
            state: state.clone(),
            engine,
            profiles: profiles.clone(),
            devices: HashMap::new(),
            timers: BTreeSet::new(),
            deadlines: HashMap::new(),
            signals: signals_tx.clone(),
        };
        let ids: Vec<String> = shard.engine.device_ids().cloned().collect();
        for id in ids {
            if let Some(rules) = shard.rules(&id).await {
                shard.reschedule(&id, &rules.profiles);
            }
        }
        tasks.push(state.detector.lane.spawn(shard.run(rx, shutdown.clone())));
    }
    tasks.push(tokio::spawn(alerts::run(state.clone(), inputs.alerts, shutdown.clone())));
    tasks.push(tokio::spawn(alerts::escalations(state, shutdown)));
    // What the store missed goes through the alert task like any signal (alert, response, notices).
    tokio::spawn(async move {
        for s in missed {
            if signals_tx.send(alerts::Work::Signal(s)).await.is_err() {
                break;
            }
        }
    });
    Ok(tasks)
}

/// How far back detection state is rebuilt from at start, and reports per device at most.
const REPLAY_MS: i64 = 2 * 3_600_000;
const REPLAY_REPORTS: i64 = 720;
const REPLAY_CONNECTIONS: i64 = 200;

/// Rebuilds each device's state from what is stored (the last two hours of reports and
/// connections), in order. Signals whose alerts are stored already are dropped; the last signal
/// of a rule that the store does not reflect (the process died after a fact was committed and
/// before its alert was written) is returned, to be handled now. Returns how many devices were
/// replayed, and those signals.
async fn replay(
    state: &AppState,
    profiles: &[Arc<ParsedProfile>],
    engines: &mut [Engine],
) -> Result<(usize, Vec<DeviceSignal>), palisade_store::StoreError> {
    let mut missed = Vec::new();
    if profiles.is_empty() || engines.is_empty() {
        return Ok((0, missed));
    }
    let since = now_ms().saturating_sub(REPLAY_MS);
    let filter = palisade_store::devices::DeviceFilter::default();
    let mut cursor: Option<palisade_core::DeviceId> = None;
    let mut replayed = 0;
    loop {
        let page = state.store.list_devices(&filter, cursor.as_ref(), 1000).await?;
        for d in &page.items {
            let id = d.id.as_str();
            let rules: Vec<Arc<Profile>> = profiles
                .iter()
                .filter(|p| p.profile.applies_to(d.attrs.group.as_deref(), Some(d.attrs.model.as_str())))
                .map(|p| Arc::new(p.profile.clone()))
                .collect();
            if rules.is_empty() || d.state == palisade_core::LifecycleState::Decommissioned {
                continue;
            }
            let mut facts: Vec<(i64, Observation)> = Vec::new();
            for r in state.store.recent_reports(id, since, REPLAY_REPORTS).await? {
                let Ok(t) = TelemetryV1::parse(r.payload.as_bytes()) else { continue };
                let stored = TelemetryFacts {
                    tx_bps: r.tx_bps,
                    rx_bps: r.rx_bps,
                    cpu_pct: r.cpu_pct,
                    mem_pct: r.mem_pct,
                    ..TelemetryFacts::default()
                };
                facts.push((r.received_ms, Observation::Report(Box::new(report(&t, r.at_ms, r.received_ms, &stored)))));
            }
            for c in state.store.connections(id, i64::MAX, REPLAY_CONNECTIONS).await? {
                if c.at_ms >= since
                    && let Some(obs) = connection_observation(&c)
                {
                    facts.push((c.at_ms, obs));
                }
            }
            if facts.is_empty() {
                continue;
            }
            facts.sort_by_key(|(at, _)| *at);
            let n = engines.len();
            let mut last: HashMap<(String, String), Signal> = HashMap::new();
            if let Some(engine) = engines.get_mut(shard_of(id, n)) {
                for (_, obs) in &facts {
                    for s in engine.observe(id, &rules, obs) {
                        last.insert((s.profile.clone(), s.rule.clone()), s);
                    }
                }
                replayed += 1;
            }
            if last.is_empty() {
                continue;
            }
            let filter =
                palisade_store::alerts::AlertFilter { device: Some(id.to_owned()), limit: 1000, ..Default::default() };
            let stored = state.store.alerts(&filter).await?;
            for signal in last.into_values() {
                if unrecorded(&signal, &stored) {
                    missed.push(DeviceSignal { device: id.to_owned(), group: d.attrs.group.clone(), signal });
                }
            }
        }
        match page.next.as_deref().map(str::parse::<palisade_core::DeviceId>) {
            Some(Ok(next)) => cursor = Some(next),
            _ => break,
        }
    }
    Ok((replayed, missed))
}

/// Whether the store does not reflect a rule's last signal from replay: a raise with no alert of
/// the rule seen at or after it (whatever its status since), or a clear of an alert still active
/// that was last seen before it.
fn unrecorded(signal: &Signal, stored: &[palisade_store::alerts::Alert]) -> bool {
    let mut of_rule = stored.iter().filter(|a| a.profile == signal.profile && a.rule == signal.rule);
    if signal.raised {
        !of_rule.any(|a| a.last_ms >= signal.at_ms)
    } else {
        signal.auto_resolve && of_rule.any(|a| a.status != "resolved" && a.last_ms < signal.at_ms)
    }
}

/// What a connection fact tells detection: a connection, or a session that ended.
pub fn connection_observation(f: &palisade_store::plane::ConnectionFact) -> Option<Observation> {
    let reason = f.detail.as_deref().unwrap_or("");
    match f.event.as_str() {
        "connected" => Some(Observation::Connected { at_ms: f.at_ms, ip: f.source_ip.clone().unwrap_or_default() }),
        "disconnected" => Some(Observation::Disconnected {
            at_ms: f.at_ms,
            duration_ms: f.duration_ms.unwrap_or(0),
            // Not a takeover, a revocation or a shutdown on our side.
            by_device: matches!(reason, "client disconnected" | "connection closed" | "keep-alive expired"),
            graceful: reason == "client disconnected",
        }),
        _ => None,
    }
}

/// A signal with the device it is about.
#[derive(Debug)]
pub struct DeviceSignal {
    pub device: String,
    pub group: Option<String>,
    pub signal: Signal,
}

/// A device's rules, and its group.
#[derive(Debug, Clone)]
struct DeviceRules {
    group: Option<String>,
    profiles: Arc<[Arc<Profile>]>,
}

struct Shard {
    state: AppState,
    engine: Engine,
    profiles: Arc<Vec<Arc<ParsedProfile>>>,
    devices: HashMap<String, DeviceRules>,
    timers: BTreeSet<(i64, String)>,
    deadlines: HashMap<String, i64>,
    signals: mpsc::Sender<alerts::Work>,
}

/// Devices whose rules a shard caches at most (then it starts over).
const RULE_CACHE: usize = 200_000;

impl Shard {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.timers.first().map(|(at, _)| *at);
            let sleep = async {
                match next {
                    Some(at) => {
                        let wait = u64::try_from(at.saturating_sub(now_ms()).max(0)).unwrap_or(0);
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.input(input).await,
                    None => break,
                },
                () = sleep => self.expire(now_ms()).await,
                _ = shutdown.changed() => break,
            }
        }
    }

    async fn input(&mut self, input: Input) {
        match input {
            Input::Observe(device, obs) => {
                let Some(rules) = self.rules(&device).await else { return };
                let signals = self.engine.observe(&device, &rules.profiles, &obs);
                self.reschedule(&device, &rules.profiles);
                self.emit(&device, rules.group.as_ref(), signals).await;
            }
            Input::Evaluate(reports, reply) => {
                let mut out = Vec::new();
                for (device, report) in reports {
                    let Some(rules) = self.rules(&device).await else { continue };
                    let signals = self.engine.observe(&device, &rules.profiles, &Observation::Report(report));
                    self.reschedule(&device, &rules.profiles);
                    out.extend(signals.into_iter().map(|signal| DeviceSignal {
                        device: device.clone(),
                        group: rules.group.clone(),
                        signal,
                    }));
                }
                let _ = reply.send(out);
            }
            Input::Profiles(p) => {
                self.profiles = p;
                self.devices.clear();
            }
            Input::DeviceChanged(device) => {
                self.devices.remove(&device);
            }
            Input::FalsePositive { device, profile, rule } => self.engine.false_positive(&device, &profile, &rule),
        }
    }

    /// The rules of `device`, from the cache or from its group and model in the store.
    async fn rules(&mut self, device: &str) -> Option<DeviceRules> {
        if let Some(r) = self.devices.get(device) {
            return Some(r.clone());
        }
        let id: palisade_core::DeviceId = device.parse().ok()?;
        let d = match self.state.store.get_device(&id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(device, error = %e, "no rules for an unknown device");
                return None;
            }
        };
        let (group, model) = (d.attrs.group.clone(), Some(d.attrs.model.clone()));
        let profiles: Arc<[Arc<Profile>]> = self
            .profiles
            .iter()
            .filter(|p| p.profile.applies_to(group.as_deref(), model.as_deref()))
            .map(|p| Arc::new(p.profile.clone()))
            .collect();
        if self.devices.len() >= RULE_CACHE {
            self.devices.clear();
        }
        let rules = DeviceRules { group, profiles };
        self.devices.insert(device.to_owned(), rules.clone());
        Some(rules)
    }

    fn reschedule(&mut self, device: &str, profiles: &[Arc<Profile>]) {
        if let Some(old) = self.deadlines.remove(device) {
            self.timers.remove(&(old, device.to_owned()));
        }
        if let Some(at) = self.engine.deadline(device, profiles) {
            self.deadlines.insert(device.to_owned(), at);
            self.timers.insert((at, device.to_owned()));
        }
    }

    async fn expire(&mut self, now: i64) {
        while let Some((at, device)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.deadlines.remove(&device);
            let Some(rules) = self.rules(&device).await else { continue };
            let signals = self.engine.expire(&device, &rules.profiles, now);
            self.reschedule(&device, &rules.profiles);
            self.emit(&device, rules.group.as_ref(), signals).await;
        }
    }

    async fn emit(&self, device: &str, group: Option<&String>, signals: Vec<Signal>) {
        for signal in signals {
            let s = DeviceSignal { device: device.to_owned(), group: group.cloned(), signal };
            let _ = self.signals.send(alerts::Work::Signal(s)).await;
        }
    }
}

/// The facts of a telemetry report that rules look at.
pub fn report(t: &TelemetryV1, at_ms: i64, received_ms: i64, facts: &TelemetryFacts) -> Report {
    let net = t.net.as_ref();
    let (fw, cell, auth) = (t.fw.as_ref(), t.cell.as_ref(), t.auth.as_ref());
    Report {
        at_ms,
        received_ms,
        tx_bps: facts.tx_bps,
        rx_bps: facts.rx_bps,
        cpu_pct: facts.cpu_pct,
        mem_pct: facts.mem_pct,
        failed_logins: auth.and_then(|a| a.failed_logins),
        listening: net.map(|n| n.listening.iter().map(|l| l.port).collect()),
        destinations: net
            .map(|n| n.connections.iter().map(|c| Destination { dst: c.dst.clone(), port: c.port }).collect()),
        fw_version: fw.and_then(|f| f.version.clone()),
        fw_digest: fw.and_then(|f| f.digest.clone()),
        secure_boot: fw.and_then(|f| f.secure_boot),
        debug_enabled: fw.and_then(|f| f.debug_enabled),
        default_credentials: auth.and_then(|a| a.default_credentials),
        iccid: cell.and_then(|c| c.iccid.clone()),
        imei: cell.and_then(|c| c.imei.clone()),
        cell_network: cell.and_then(|c| match (&c.mcc, &c.mnc) {
            (Some(mcc), Some(mnc)) => Some(format!("{mcc}-{mnc}")),
            _ => None,
        }),
        fix: t
            .loc
            .as_ref()
            .map(|l| Fix { at: LatLon { lat: l.lat, lon: l.lon }, acc_m: l.acc_m.unwrap_or(0.0) })
            .filter(|f| f.at.is_valid()),
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::detect::{Response, Severity};
    use palisade_store::alerts::Alert;

    use super::*;

    fn signal(raised: bool, at_ms: i64) -> Signal {
        Signal {
            profile: "p".into(),
            rule: "r".into(),
            raised,
            severity: Severity::High,
            response: Response::AlertOnly,
            dry_run: false,
            auto_resolve: true,
            title: "t".into(),
            detail: "d".into(),
            at_ms,
        }
    }

    fn alert(rule: &str, status: &str, last_ms: i64) -> Alert {
        Alert {
            id: "al".into(),
            device_id: "d".into(),
            group: None,
            profile: "p".into(),
            rule: rule.into(),
            severity: "high".into(),
            status: status.into(),
            title: "t".into(),
            detail: "d".into(),
            count: 1,
            first_ms: 0,
            last_ms,
            response: "alert".into(),
            acked_by: None,
            acked_ms: None,
            resolved_ms: None,
            resolution: None,
            escalation_step: 0,
            suppressed_until_ms: None,
        }
    }

    #[test]
    fn replay_hands_on_only_what_the_store_missed() {
        // A raise the store has (even resolved since) is not raised again; one it lacks is.
        assert!(!unrecorded(&signal(true, 100), &[alert("r", "resolved", 100)]));
        assert!(!unrecorded(&signal(true, 100), &[alert("r", "open", 150)]));
        assert!(unrecorded(&signal(true, 100), &[alert("r", "open", 50)]));
        assert!(unrecorded(&signal(true, 100), &[alert("other", "open", 150)]));
        assert!(unrecorded(&signal(true, 100), &[]));
        // A clear is handed on only if an active alert predates it.
        assert!(unrecorded(&signal(false, 100), &[alert("r", "open", 50)]));
        assert!(!unrecorded(&signal(false, 100), &[alert("r", "resolved", 50)]));
        assert!(!unrecorded(&signal(false, 100), &[alert("r", "open", 150)]));
        assert!(!unrecorded(&signal(false, 100), &[]));
    }
}
