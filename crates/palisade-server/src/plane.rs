//! The device plane: MQTT (3.1.1) over TLS 1.3 with client certificates.
//!
//! Every connection runs one task: handshake (device CA + current CRL), admission (the
//! certificate's device exists, may connect, and the certificate is still valid in the store),
//! then a read → decide → store → answer loop. The topic rules live in the core
//! (`palisade_core::mqtt::Session`); the frame codec is rumqttc's. A QoS 1 PUBACK is written
//! only after the message is durably committed, and while a write waits the connection is not
//! read: slow storage slows devices down instead of filling memory. Revocation, pause and
//! decommission close live sessions at once; quarantine restricts them at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use palisade_core::mqtt::{ConnectRefusal, Session, TopicKind};
use palisade_core::{DeviceId, LifecycleState};
use palisade_store::plane::DeviceMessage;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode, UnsubAck};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use x509_parser::prelude::FromDer as _;

use crate::{AppState, now_ms};

/// Largest MQTT packet accepted (and sent).
pub const MAX_PACKET: usize = 256 * 1024;
/// The CONNECT must arrive within this after the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Something the rest of the server tells a live session.
#[derive(Debug, Clone)]
enum Control {
    Close(&'static str),
    Quarantine(bool),
}

struct Live {
    serial: String,
    ip: String,
    control: mpsc::Sender<Control>,
    generation: u64,
}

/// The live sessions, by device.
#[derive(Default)]
pub struct Plane {
    sessions: Mutex<HashMap<String, Live>>,
    next: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plane").finish_non_exhaustive()
    }
}

impl Plane {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, device: &str, c: Control) {
        if let Some(live) = self.lock().get(device) {
            let _ = live.control.try_send(c);
        }
    }

    /// A device changed state: paused or decommissioned sessions end, quarantine restricts.
    pub fn state_changed(&self, device: &str, state: LifecycleState) {
        match state {
            LifecycleState::Paused => self.send(device, Control::Close("device paused")),
            LifecycleState::Decommissioned => self.send(device, Control::Close("device decommissioned")),
            LifecycleState::Quarantined => self.send(device, Control::Quarantine(true)),
            LifecycleState::Active => self.send(device, Control::Quarantine(false)),
            _ => {}
        }
    }

    /// A certificate (by serial) or a whole device (`device:<id>`) was revoked.
    fn revoked(&self, what: &str) {
        let sessions = self.lock();
        for (device, live) in sessions.iter() {
            if live.serial == what || what.strip_prefix("device:") == Some(device.as_str()) {
                let _ = live.control.try_send(Control::Close("certificate revoked"));
            }
        }
    }

    pub fn connected(&self) -> usize {
        self.lock().len()
    }
}

/// Accepts MQTT connections until `shutdown`.
pub async fn serve(state: AppState, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let mut revocations = state.pki.subscribe();
    let watcher = state.clone();
    tokio::spawn(async move {
        loop {
            match revocations.recv().await {
                Ok(what) => watcher.plane.revoked(&what),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "MQTT accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(state.pki.mqtt_tls());
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "MQTT handshake refused");
                    state
                        .metrics
                        .denials
                        .get_or_create(&crate::metrics::DenialLabels { reason: "mqtt_handshake".into() })
                        .inc();
                    return;
                }
                Err(_) => return,
            };
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
            let Some(leaf) = leaf else { return };
            connection(state, tls, peer, &leaf, shutdown).await;
        });
    }
    // Shutting down: end every session.
    for live in state.plane.lock().values() {
        let _ = live.control.try_send(Control::Close("server shutting down"));
    }
}

fn identity(leaf: &[u8]) -> Option<(String, String)> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some((cn, cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect()))
}

type Tls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

async fn write(stream: &mut Tls, packet: Packet) -> bool {
    let mut out = BytesMut::new();
    if packet.write(&mut out, MAX_PACKET).is_err() {
        return false;
    }
    stream.write_all(&out).await.is_ok()
}

/// Reads one packet, waiting at most until `deadline`.
async fn read_packet(stream: &mut Tls, buf: &mut BytesMut) -> Result<Packet, &'static str> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(CodecError::PayloadSizeLimitExceeded(_)) => return Err("packet too large"),
            Err(_) => return Err("malformed packet"),
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err("connection closed"),
            Ok(_) => {}
        }
    }
}

async fn connection(
    state: AppState,
    mut stream: Tls,
    peer: SocketAddr,
    leaf: &[u8],
    mut shutdown: watch::Receiver<bool>,
) {
    let ip = peer.ip().to_string();
    let Some((device_id, serial)) = identity(leaf) else { return };
    let record = |event: &'static str, detail: String| {
        let (store, id, ip) = (state.store.clone(), device_id.clone(), ip.clone());
        async move {
            if let Err(e) = store.record_connection(id, event, now_ms(), Some(ip), Some(detail)).await {
                tracing::error!(error = %e, "cannot record a connection fact");
            }
        }
    };
    let mut buf = BytesMut::with_capacity(4096);
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut stream, &mut buf)).await {
        Ok(Ok(Packet::Connect(c))) => c,
        _ => {
            record("refused", "no CONNECT".into()).await;
            return;
        }
    };
    // Admission: the device exists and may connect; its certificate is still valid here.
    let admitted = admit(&state, &device_id, &serial).await;
    let quarantined = match admitted {
        Ok(q) => q,
        Err(why) => {
            record("refused", why.to_owned()).await;
            let _ = state
                .store
                .add_finding("mqtt_refused".into(), Some(device_id.clone()), format!("{why} (from {ip})"), now_ms())
                .await;
            write(&mut stream, Packet::ConnAck(ConnAck::new(ConnectReturnCode::NotAuthorized, false))).await;
            return;
        }
    };
    let mut session = Session::new(&device_id, quarantined, now_ms());
    if let Err(refusal) = session.connect(&connect.client_id, connect.keep_alive, now_ms()) {
        let why = match refusal {
            ConnectRefusal::ClientIdMismatch => "client id is not the device id",
            ConnectRefusal::AlreadyConnected => "second CONNECT",
        };
        record("refused", format!("{why}: {:.64?}", connect.client_id)).await;
        let _ = state
            .store
            .add_finding("mqtt_refused".into(), Some(device_id.clone()), format!("{why} (from {ip})"), now_ms())
            .await;
        write(&mut stream, Packet::ConnAck(ConnAck::new(ConnectReturnCode::BadClientId, false))).await;
        return;
    }
    // One live session per device: the newer one takes over.
    let (control, mut rx) = mpsc::channel(8);
    let generation = state.plane.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let previous = state
        .plane
        .lock()
        .insert(device_id.clone(), Live { serial: serial.clone(), ip: ip.clone(), control, generation });
    if let Some(prev) = previous {
        let _ = prev.control.try_send(Control::Close("taken over by a newer session"));
        if prev.ip != ip {
            let detail = format!("certificate used from two places: {} and {ip}", prev.ip);
            let _ = state
                .store
                .add_finding("certificate_two_places".into(), Some(device_id.clone()), detail, now_ms())
                .await;
        }
    }
    if !write(&mut stream, Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false))).await {
        return;
    }
    record("connected", format!("keep_alive={}s", connect.keep_alive)).await;
    let reason = run(&state, &mut stream, &mut buf, &mut session, &mut rx, &mut shutdown, &ip).await;
    let _ = stream.shutdown().await;
    {
        let mut sessions = state.plane.lock();
        if sessions.get(&device_id).is_some_and(|l| l.generation == generation) {
            sessions.remove(&device_id);
        }
    }
    record("disconnected", reason.to_owned()).await;
}

async fn admit(state: &AppState, device_id: &str, serial: &str) -> Result<bool, &'static str> {
    let id: DeviceId = device_id.parse().map_err(|_| "certificate names no device")?;
    let device = state.store.get_device(&id).await.map_err(|_| "unknown device")?;
    let cert = state.store.certificate(serial).await.map_err(|_| "store unavailable")?;
    match cert {
        Some(c) if c.device_id == device_id && c.status == "valid" => {}
        _ => return Err("certificate revoked or unknown"),
    }
    match device.state {
        LifecycleState::Provisioned | LifecycleState::Active => Ok(false),
        LifecycleState::Quarantined => Ok(true),
        LifecycleState::Registered => Err("device not provisioned"),
        LifecycleState::Paused => Err("device paused"),
        LifecycleState::Decommissioned => Err("device decommissioned"),
    }
}

/// The session loop; returns why it ended.
async fn run(
    state: &AppState,
    stream: &mut Tls,
    buf: &mut BytesMut,
    session: &mut Session,
    rx: &mut mpsc::Receiver<Control>,
    shutdown: &mut watch::Receiver<bool>,
    ip: &str,
) -> &'static str {
    loop {
        // Packets already buffered first.
        let packet = match Packet::read(buf, MAX_PACKET) {
            Ok(p) => Some(p),
            Err(CodecError::InsufficientBytes(_)) => None,
            Err(CodecError::PayloadSizeLimitExceeded(_)) => return "packet too large",
            Err(_) => return "malformed packet",
        };
        let Some(packet) = packet else {
            let wait = session
                .deadline_ms()
                .map_or(Duration::from_secs(3600), |d| Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0)));
            tokio::select! {
                read = stream.read_buf(buf) => match read {
                    Ok(0) | Err(_) => return "connection closed",
                    Ok(_) => continue,
                },
                ctl = rx.recv() => match ctl {
                    Some(Control::Close(why)) => return why,
                    Some(Control::Quarantine(q)) => {
                        session.set_quarantined(q);
                        continue;
                    }
                    None => return "session replaced",
                },
                _ = shutdown.changed() => return "server shutting down",
                () = tokio::time::sleep(wait) => return "keep-alive expired",
            }
        };
        session.seen(now_ms());
        match packet {
            Packet::Publish(p) => {
                let kind = match session.authorize_publish(&p.topic) {
                    Ok(k) => k,
                    Err(v) => {
                        let detail = format!("{v} (from {ip})");
                        let _ = state
                            .store
                            .add_finding("acl_violation".into(), Some(session.device_id().to_owned()), detail, now_ms())
                            .await;
                        state
                            .metrics
                            .denials
                            .get_or_create(&crate::metrics::DenialLabels { reason: "mqtt_acl".into() })
                            .inc();
                        return "topic not allowed";
                    }
                };
                if p.qos == QoS::ExactlyOnce {
                    return "QoS 2 is not supported";
                }
                match accept(session, kind, &p.payload) {
                    Ok(msg) => {
                        if let Err(e) = state.store.ingest(msg).await {
                            tracing::error!(error = %e, "cannot store a device message");
                            return "storage unavailable";
                        }
                    }
                    Err(why) => {
                        // MQTT 3.1.1 cannot carry a reason: count it, acknowledge, keep going.
                        state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: why.into() }).inc();
                    }
                }
                if p.qos == QoS::AtLeastOnce && !write(stream, Packet::PubAck(PubAck::new(p.pkid))).await {
                    return "connection closed";
                }
            }
            Packet::Subscribe(s) => {
                let mut codes = Vec::with_capacity(s.filters.len());
                for f in &s.filters {
                    match session.authorize_subscribe(&f.path) {
                        Ok(()) => codes.push(SubscribeReasonCode::Success(QoS::AtLeastOnce)),
                        Err(v) => {
                            let detail = format!("{v} (from {ip})");
                            let _ = state
                                .store
                                .add_finding(
                                    "acl_violation".into(),
                                    Some(session.device_id().to_owned()),
                                    detail,
                                    now_ms(),
                                )
                                .await;
                            codes.push(SubscribeReasonCode::Failure);
                        }
                    }
                }
                if !write(stream, Packet::SubAck(SubAck::new(s.pkid, codes))).await {
                    return "connection closed";
                }
            }
            Packet::Unsubscribe(u) => {
                if !write(stream, Packet::UnsubAck(UnsubAck::new(u.pkid))).await {
                    return "connection closed";
                }
            }
            Packet::PingReq => {
                if !write(stream, Packet::PingResp).await {
                    return "connection closed";
                }
            }
            Packet::PubAck(_) => {}
            Packet::Disconnect => return "client disconnected",
            _ => return "unexpected packet",
        }
    }
}

/// Validates a payload into a message to store.
fn accept(session: &Session, kind: TopicKind, payload: &[u8]) -> Result<DeviceMessage, &'static str> {
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|_| "malformed_json")?;
    let obj = value.as_object().ok_or("not_an_object")?;
    if kind == TopicKind::Telemetry && obj.get("v").and_then(serde_json::Value::as_u64) != Some(1) {
        return Err("unsupported_telemetry_version");
    }
    let seq = obj.get("seq").and_then(serde_json::Value::as_i64);
    Ok(DeviceMessage {
        device_id: session.device_id().to_owned(),
        kind: kind.as_str().to_owned(),
        received_ms: now_ms(),
        seq,
        quarantined: session.is_quarantined(),
        payload: value.to_string(),
    })
}
