//! The device plane: MQTT (3.1.1) over TLS 1.3 with client certificates.
//!
//! Every connection runs one task: handshake (device CA + current CRL), admission (the
//! certificate's device exists, may connect, and the certificate is still valid in the store),
//! then a read → decide → store → answer loop. The topic rules live in the core
//! (`palisade_core::mqtt::Session`); the frame codec is rumqttc's. A QoS 1 PUBACK is written
//! only after the message is durably committed, and while a write waits the connection is not
//! read: slow storage slows devices down instead of filling memory. Revocation, pause and
//! decommission close live sessions at once; quarantine restricts them at once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use palisade_core::detect::{Event as DetectEvent, Observation};
use palisade_core::mqtt::{AckQueue, AckReason, ConnectRefusal, Session, TopicKind};
use palisade_core::telemetry::CounterSample;
use palisade_core::{DeviceId, LifecycleState};
use palisade_proto::telemetry::TelemetryV1;
use palisade_store::plane::{ConnectionFact, DeviceMessage, Inbound, TelemetryFacts};
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode, UnsubAck};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use x509_parser::prelude::FromDer as _;

use crate::{AppState, now_ms};

/// Largest MQTT packet accepted (and sent).
pub const MAX_PACKET: usize = 256 * 1024;
/// The CONNECT must arrive within this after the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the rest of the server wants of a live session. A `watch` holds the latest orders, so
/// a close or a quarantine is never lost to a full queue and never applied out of order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Orders {
    close: Option<&'static str>,
    quarantined: Option<bool>,
}

struct Live {
    serial: String,
    ip: String,
    orders: watch::Sender<Orders>,
    /// "New commands wait in the outbox": a nudge; dropping one when eight wait loses nothing,
    /// since each delivery sends every pending command.
    deliver: mpsc::Sender<()>,
    generation: u64,
}

impl Live {
    fn close(&self, why: &'static str) {
        self.orders.send_modify(|o| {
            o.close.get_or_insert(why);
        });
    }
}

/// The device a refused handshake is recorded under (the certificate was not accepted, so it
/// names no one we trust).
pub const UNKNOWN_DEVICE: &str = "-";
/// Refused handshakes stored per second at most (the metric counts all of them).
const REFUSALS_RECORDED_PER_SECOND: u32 = 10;

/// The live sessions, by device.
#[derive(Default)]
pub struct Plane {
    sessions: Mutex<HashMap<String, Live>>,
    next: std::sync::atomic::AtomicU64,
    /// (second, refused handshakes recorded in it).
    refusals: Mutex<(i64, u32)>,
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

    /// A device changed state: paused or decommissioned sessions end, quarantine restricts.
    pub fn state_changed(&self, device: &str, state: LifecycleState) {
        let sessions = self.lock();
        let Some(live) = sessions.get(device) else { return };
        match state {
            LifecycleState::Paused => live.close("device paused"),
            LifecycleState::Decommissioned => live.close("device decommissioned"),
            LifecycleState::Quarantined => live.orders.send_modify(|o| o.quarantined = Some(true)),
            LifecycleState::Active => live.orders.send_modify(|o| o.quarantined = Some(false)),
            _ => {}
        }
    }

    /// A command was queued for the device: deliver it now if the device is listening.
    pub fn deliver(&self, device: &str) {
        if let Some(live) = self.lock().get(device) {
            let _ = live.deliver.try_send(());
        }
    }

    /// Ends the device's live session (an automated response).
    pub fn disconnect(&self, device: &str) {
        if let Some(live) = self.lock().get(device) {
            live.close("disconnected by a response");
        }
    }

    /// A certificate (by serial) or a whole device (`device:<id>`) was revoked.
    fn revoked(&self, what: &str) {
        let sessions = self.lock();
        for (device, live) in sessions.iter() {
            if live.serial == what || what.strip_prefix("device:") == Some(device.as_str()) {
                live.close("certificate revoked");
            }
        }
    }

    fn may_record_refusal(&self, now_ms: i64) -> bool {
        let mut r = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let second = now_ms / 1000;
        if r.0 != second {
            *r = (second, 0);
        }
        r.1 += 1;
        r.1 <= REFUSALS_RECORDED_PER_SECOND
    }

    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// The live sessions as (device, certificate serial), for the audit checks.
    pub fn live_sessions(&self) -> Vec<(String, String)> {
        self.lock().iter().map(|(device, live)| (device.clone(), live.serial.clone())).collect()
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
    let ingest = Ingest::start(state.store.clone(), state.detector.clone(), state.notifier.clone());
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
        let ingest = ingest.clone();
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
                    // Stored for detection, a few per second at most: a flood of bad handshakes
                    // must not turn into a flood of writes.
                    if state.plane.may_record_refusal(now_ms()) {
                        let fact = ConnectionFact {
                            device_id: UNKNOWN_DEVICE.to_owned(),
                            event: "refused".to_owned(),
                            at_ms: now_ms(),
                            source_ip: Some(peer.ip().to_string()),
                            detail: Some(format!("TLS handshake: {e:.200}")),
                            ..ConnectionFact::default()
                        };
                        if let Err(e) = state.store.record_connection(fact).await {
                            tracing::error!(error = %e, "cannot record a refused handshake");
                        }
                    }
                    return;
                }
                Err(_) => return,
            };
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
            let Some(leaf) = leaf else { return };
            connection(state, ingest, tls, peer, &leaf, shutdown).await;
        });
    }
    // Shutting down: end every session.
    for live in state.plane.lock().values() {
        live.close("server shutting down");
    }
}

fn identity(leaf: &[u8]) -> Option<(String, String)> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some((cn, cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect()))
}

/// MQTT protocol level of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V311,
    V5,
}

/// A packet from a device, whatever its protocol version.
#[derive(Debug)]
enum In {
    Connect { client_id: String, keep_alive: u16 },
    Publish { topic: String, qos: QoS, pkid: u16, payload: bytes::Bytes },
    Subscribe { pkid: u16, filters: Vec<String> },
    Unsubscribe { pkid: u16, count: usize },
    PingReq,
    PubAck { pkid: u16 },
    Disconnect,
    Other,
}

/// What the server sends.
#[derive(Debug)]
enum Out {
    ConnAck(Option<&'static str>),
    ClientIdRefused,
    PubAck {
        pkid: u16,
        ack: AckReason,
    },
    SubAck {
        pkid: u16,
        granted: Vec<bool>,
    },
    UnsubAck {
        pkid: u16,
        count: usize,
    },
    PingResp,
    /// A command to the device, QoS 1.
    Publish {
        topic: String,
        pkid: u16,
        payload: Vec<u8>,
    },
    /// v5 only: why the server ends the session.
    Disconnect(v5::DisconnectReasonCode),
}

use rumqttc::v5::mqttbytes as v5m;
use rumqttc::v5::mqttbytes::v5;

/// The protocol level of a buffered CONNECT, once enough of it has arrived.
fn connect_version(buf: &[u8]) -> Result<Option<Version>, &'static str> {
    // Fixed header, remaining length (1–4 bytes), protocol name (length-prefixed), level.
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.first().map(|b| b >> 4) != Some(1) {
        return Err("the first packet is not CONNECT");
    }
    let mut i = 1;
    loop {
        let Some(b) = buf.get(i) else { return Ok(None) };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err("malformed packet");
        }
    }
    let (Some(hi), Some(lo)) = (buf.get(i), buf.get(i + 1)) else { return Ok(None) };
    let name_len = usize::from(u16::from_be_bytes([*hi, *lo]));
    match buf.get(i + 2 + name_len) {
        None => Ok(None),
        Some(4) => Ok(Some(Version::V311)),
        Some(5) => Ok(Some(Version::V5)),
        Some(_) => Err("unsupported MQTT protocol level"),
    }
}

impl Version {
    fn read(self, buf: &mut BytesMut) -> Result<Option<In>, &'static str> {
        match self {
            Self::V311 => match Packet::read(buf, MAX_PACKET) {
                Ok(p) => Ok(Some(match p {
                    Packet::Connect(c) => In::Connect { client_id: c.client_id, keep_alive: c.keep_alive },
                    Packet::Publish(p) => In::Publish { topic: p.topic, qos: p.qos, pkid: p.pkid, payload: p.payload },
                    Packet::Subscribe(s) => {
                        In::Subscribe { pkid: s.pkid, filters: s.filters.into_iter().map(|f| f.path).collect() }
                    }
                    Packet::Unsubscribe(u) => In::Unsubscribe { pkid: u.pkid, count: u.topics.len() },
                    Packet::PingReq => In::PingReq,
                    Packet::PubAck(a) => In::PubAck { pkid: a.pkid },
                    Packet::Disconnect => In::Disconnect,
                    _ => In::Other,
                })),
                Err(CodecError::InsufficientBytes(_)) => Ok(None),
                Err(CodecError::PayloadSizeLimitExceeded(_)) => Err("packet too large"),
                Err(_) => Err("malformed packet"),
            },
            // A bare DISCONNECT (no reason code: "normal") is valid MQTT 5 that the codec refuses.
            Self::V5 if buf.starts_with(&[0xe0, 0x00]) => {
                let _ = buf.split_to(2);
                Ok(Some(In::Disconnect))
            }
            Self::V5 => match v5::Packet::read(buf, u32::try_from(MAX_PACKET).ok()) {
                Ok(p) => Ok(Some(match p {
                    v5::Packet::Connect(c, _, _) => In::Connect { client_id: c.client_id, keep_alive: c.keep_alive },
                    v5::Packet::Publish(p) => In::Publish {
                        topic: String::from_utf8(p.topic.to_vec()).map_err(|_| "topic is not UTF-8")?,
                        qos: match p.qos {
                            v5m::QoS::AtMostOnce => QoS::AtMostOnce,
                            v5m::QoS::AtLeastOnce => QoS::AtLeastOnce,
                            v5m::QoS::ExactlyOnce => QoS::ExactlyOnce,
                        },
                        pkid: p.pkid,
                        payload: p.payload,
                    },
                    v5::Packet::Subscribe(s) => {
                        In::Subscribe { pkid: s.pkid, filters: s.filters.into_iter().map(|f| f.path).collect() }
                    }
                    v5::Packet::Unsubscribe(u) => In::Unsubscribe { pkid: u.pkid, count: u.filters.len() },
                    v5::Packet::PingReq(_) => In::PingReq,
                    v5::Packet::PubAck(a) => In::PubAck { pkid: a.pkid },
                    v5::Packet::Disconnect(_) => In::Disconnect,
                    _ => In::Other,
                })),
                Err(v5m::Error::InsufficientBytes(_)) => Ok(None),
                Err(v5m::Error::PayloadSizeLimitExceeded { .. }) => Err("packet too large"),
                Err(_) => Err("malformed packet"),
            },
        }
    }

    fn encode(self, out: Out, bytes: &mut BytesMut) -> bool {
        match self {
            Self::V311 => {
                let packet = match out {
                    Out::ConnAck(None) => Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
                    Out::ConnAck(Some(_)) => Packet::ConnAck(ConnAck::new(ConnectReturnCode::NotAuthorized, false)),
                    Out::ClientIdRefused => Packet::ConnAck(ConnAck::new(ConnectReturnCode::BadClientId, false)),
                    Out::PubAck { pkid, .. } => Packet::PubAck(PubAck::new(pkid)),
                    Out::SubAck { pkid, granted } => Packet::SubAck(SubAck::new(
                        pkid,
                        granted
                            .into_iter()
                            .map(|g| {
                                if g {
                                    SubscribeReasonCode::Success(QoS::AtLeastOnce)
                                } else {
                                    SubscribeReasonCode::Failure
                                }
                            })
                            .collect(),
                    )),
                    Out::UnsubAck { pkid, .. } => Packet::UnsubAck(UnsubAck::new(pkid)),
                    Out::PingResp => Packet::PingResp,
                    Out::Publish { topic, pkid, payload } => {
                        let mut p = rumqttc::mqttbytes::v4::Publish::new(topic, QoS::AtLeastOnce, payload);
                        p.pkid = pkid;
                        Packet::Publish(p)
                    }
                    Out::Disconnect(_) => return true, // MQTT 3.1.1 has no server DISCONNECT: just close.
                };
                packet.write(bytes, MAX_PACKET).is_ok()
            }
            Self::V5 => {
                let packet = match out {
                    Out::ConnAck(None) => v5::Packet::ConnAck(v5::ConnAck {
                        session_present: false,
                        code: v5::ConnectReturnCode::Success,
                        properties: None,
                    }),
                    Out::ConnAck(Some(_)) => v5::Packet::ConnAck(v5::ConnAck {
                        session_present: false,
                        code: v5::ConnectReturnCode::NotAuthorized,
                        properties: None,
                    }),
                    Out::ClientIdRefused => v5::Packet::ConnAck(v5::ConnAck {
                        session_present: false,
                        code: v5::ConnectReturnCode::ClientIdentifierNotValid,
                        properties: None,
                    }),
                    Out::PubAck { pkid, ack } => v5::Packet::PubAck(v5::PubAck {
                        pkid,
                        reason: match ack {
                            AckReason::Stored => v5::PubAckReason::Success,
                            AckReason::NotAuthorized => v5::PubAckReason::NotAuthorized,
                            AckReason::PayloadInvalid => v5::PubAckReason::PayloadFormatInvalid,
                        },
                        properties: None,
                    }),
                    Out::SubAck { pkid, granted } => v5::Packet::SubAck(v5::SubAck {
                        pkid,
                        return_codes: granted
                            .into_iter()
                            .map(|g| {
                                if g {
                                    v5::SubscribeReasonCode::Success(v5m::QoS::AtLeastOnce)
                                } else {
                                    v5::SubscribeReasonCode::NotAuthorized
                                }
                            })
                            .collect(),
                        properties: None,
                    }),
                    Out::UnsubAck { pkid, count } => v5::Packet::UnsubAck(v5::UnsubAck {
                        pkid,
                        reasons: vec![v5::UnsubAckReason::Success; count],
                        properties: None,
                    }),
                    Out::PingResp => v5::Packet::PingResp(v5::PingResp),
                    Out::Publish { topic, pkid, payload } => {
                        let mut p = v5::Publish::new(topic, v5m::QoS::AtLeastOnce, payload, None);
                        p.pkid = pkid;
                        v5::Packet::Publish(p)
                    }
                    Out::Disconnect(reason_code) => {
                        v5::Packet::Disconnect(v5::Disconnect { reason_code, properties: None })
                    }
                };
                packet.write(bytes, u32::try_from(MAX_PACKET).ok()).is_ok()
            }
        }
    }
}

type Tls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

async fn write(stream: &mut Tls, version: Version, out: Out) -> bool {
    let mut bytes = BytesMut::new();
    version.encode(out, &mut bytes) && flush(stream, &mut bytes).await
}

/// Writes what is buffered for the device in one go (one TLS write for many PUBACKs).
async fn flush(stream: &mut Tls, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = stream.write_all(out).await.is_ok() && stream.flush().await.is_ok();
    out.clear();
    ok
}

/// Reads until the CONNECT's protocol level is known, then the CONNECT itself.
async fn read_connect(stream: &mut Tls, buf: &mut BytesMut) -> Result<(Version, In), &'static str> {
    loop {
        if let Some(version) = connect_version(buf)? {
            loop {
                if let Some(p) = version.read(buf)? {
                    return Ok((version, p));
                }
                buf.reserve(1024);
                match stream.read_buf(buf).await {
                    Ok(0) | Err(_) => return Err("connection closed"),
                    Ok(_) => {}
                }
            }
        }
        if buf.len() > 64 {
            return Err("malformed CONNECT");
        }
        buf.reserve(1024);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err("connection closed"),
            Ok(_) => {}
        }
    }
}

async fn connection(
    state: AppState,
    ingest: Ingest,
    mut stream: Tls,
    peer: SocketAddr,
    leaf: &[u8],
    mut shutdown: watch::Receiver<bool>,
) {
    let ip = peer.ip().to_string();
    let Some((device_id, serial)) = identity(leaf) else { return };
    let (_, tls) = stream.get_ref();
    let tls_version = tls.protocol_version().map(|v| format!("{v:?}"));
    let cipher = tls.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite()));
    let record = |event: &'static str, detail: String, duration_ms: Option<i64>| {
        let store = state.store.clone();
        let fact = ConnectionFact {
            device_id: device_id.clone(),
            event: event.to_owned(),
            at_ms: now_ms(),
            source_ip: Some(ip.clone()),
            detail: Some(detail),
            tls_version: tls_version.clone(),
            cipher: cipher.clone(),
            duration_ms,
        };
        let detector = state.detector.clone();
        async move {
            let obs = crate::detect::connection_observation(&fact);
            let device = fact.device_id.clone();
            if let Err(e) = store.record_connection(fact).await {
                tracing::error!(error = %e, "cannot record a connection fact");
            }
            if let Some(obs) = obs {
                detector.observe(&device, obs).await;
            }
        }
    };
    let mut buf = BytesMut::new();
    let (version, client_id, keep_alive) =
        match tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut stream, &mut buf)).await {
            Ok(Ok((v, In::Connect { client_id, keep_alive }))) => (v, client_id, keep_alive),
            Ok(Err(why)) => {
                record("refused", why.into(), None).await;
                return;
            }
            _ => {
                record("refused", "no CONNECT".into(), None).await;
                return;
            }
        };
    // Admission: the device exists and may connect; its certificate is still valid here.
    let admitted = admit(&state, &device_id, &serial).await;
    let quarantined = match admitted {
        Ok(q) => q,
        Err(why) => {
            record("refused", why.to_owned(), None).await;
            let _ = state
                .store
                .add_finding("mqtt_refused".into(), Some(device_id.clone()), format!("{why} (from {ip})"), now_ms())
                .await;
            write(&mut stream, version, Out::ConnAck(Some(why))).await;
            return;
        }
    };
    let mut session = Session::new(&device_id, quarantined, now_ms());
    if let Err(refusal) = session.connect(&client_id, keep_alive, now_ms()) {
        let why = match refusal {
            ConnectRefusal::ClientIdMismatch => "client id is not the device id",
            ConnectRefusal::AlreadyConnected => "second CONNECT",
        };
        record("refused", format!("{why}: {client_id:.64?}"), None).await;
        let _ = state
            .store
            .add_finding("mqtt_refused".into(), Some(device_id.clone()), format!("{why} (from {ip})"), now_ms())
            .await;
        write(&mut stream, version, Out::ClientIdRefused).await;
        return;
    }
    // One live session per device: the newer one takes over.
    let (orders, mut orders_rx) = watch::channel(Orders::default());
    let (deliver, mut deliver_rx) = mpsc::channel(8);
    let generation = state.plane.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let previous = state
        .plane
        .lock()
        .insert(device_id.clone(), Live { serial: serial.clone(), ip: ip.clone(), orders, deliver, generation });
    if let Some(prev) = previous {
        prev.close("taken over by a newer session");
        if prev.ip != ip {
            let detail = format!("certificate used from two places: {} and {ip}", prev.ip);
            let _ = state
                .store
                .add_finding("certificate_two_places".into(), Some(device_id.clone()), detail.clone(), now_ms())
                .await;
            let obs = Observation::Event { at_ms: now_ms(), event: DetectEvent::CertificateTwoPlaces, detail };
            state.detector.observe(&device_id, obs).await;
        }
    }
    if !write(&mut stream, version, Out::ConnAck(None)).await {
        return;
    }
    let v = if version == Version::V5 { "5" } else { "3.1.1" };
    record("connected", format!("mqtt={v} keep_alive={keep_alive}s"), None).await;
    let started = now_ms();
    let counters = match state.store.last_counters(&device_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the device's last counters");
            None
        }
    };
    let mut conn = Conn {
        state: &state,
        ingest,
        stream: &mut stream,
        version,
        ip: &ip,
        out: BytesMut::new(),
        acks: AckQueue::new(MAX_PENDING_STORES),
        batch: Vec::new(),
        batches: VecDeque::new(),
        next_batch: 0,
        outbox: Outbox::default(),
        counters,
        last_read: 0,
    };
    let reason = conn.run(&mut buf, &mut session, &mut orders_rx, &mut deliver_rx, &mut shutdown).await;
    if version == Version::V5 {
        let code = match reason {
            "certificate revoked" | "device paused" | "device decommissioned" => {
                v5::DisconnectReasonCode::NotAuthorized
            }
            "taken over by a newer session" => v5::DisconnectReasonCode::SessionTakenOver,
            "keep-alive expired" => v5::DisconnectReasonCode::KeepAliveTimeout,
            "server shutting down" => v5::DisconnectReasonCode::ServerShuttingDown,
            "packet too large" => v5::DisconnectReasonCode::PacketTooLarge,
            "malformed packet" => v5::DisconnectReasonCode::MalformedPacket,
            "topic not allowed" => v5::DisconnectReasonCode::NotAuthorized,
            "QoS 2 is not supported" => v5::DisconnectReasonCode::QoSNotSupported,
            _ => v5::DisconnectReasonCode::UnspecifiedError,
        };
        if !matches!(reason, "client disconnected" | "connection closed") {
            write(&mut stream, version, Out::Disconnect(code)).await;
        }
    }
    let _ = stream.shutdown().await;
    {
        let mut sessions = state.plane.lock();
        if sessions.get(&device_id).is_some_and(|l| l.generation == generation) {
            sessions.remove(&device_id);
        }
    }
    record("disconnected", reason.to_owned(), Some(now_ms() - started)).await;
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

/// Messages of one connection waiting for storage at most (the session stops reading at the
/// limit, so slow storage slows the device down instead of filling memory).
const MAX_PENDING_STORES: usize = 64;
/// Room made for a read after a big one: dozens of small PUBLISHes at once.
const READ_CHUNK: usize = 8 * 1024;
/// Room made for a read after a small one.
const IDLE_READ: usize = 1024;

/// One admitted connection's working state.
struct Conn<'a> {
    state: &'a AppState,
    ingest: Ingest,
    stream: &'a mut Tls,
    version: Version,
    ip: &'a str,
    /// Bytes for the device, written once per turn of the loop.
    out: BytesMut,
    /// PUBACKs owed, in order; how many messages wait for storage.
    acks: AckQueue,
    /// Messages decoded in this turn, stored together as one batch.
    batch: Vec<Accepted>,
    /// Batches being stored, oldest first.
    batches: VecDeque<(u64, oneshot::Receiver<bool>)>,
    next_batch: u64,
    outbox: Outbox,
    /// The device's latest counters, to derive rates from.
    counters: Option<CounterSample>,
    /// Bytes the last read brought.
    last_read: usize,
}

impl Conn<'_> {
    /// The session loop; returns why it ended. Each turn decodes everything buffered, hands the
    /// accepted messages to storage as one batch, writes every reply that may go, then waits
    /// for the next thing to happen: bytes, a committed batch, orders, or the keep-alive.
    async fn run(
        &mut self,
        buf: &mut BytesMut,
        session: &mut Session,
        orders: &mut watch::Receiver<Orders>,
        deliver: &mut mpsc::Receiver<()>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> &'static str {
        loop {
            while self.acks.has_room() {
                match self.version.read(buf) {
                    Ok(Some(packet)) => {
                        session.seen(now_ms());
                        if let Err(why) = self.packet(packet, session).await {
                            return why;
                        }
                    }
                    Ok(None) => break,
                    Err(why) => return why,
                }
            }
            if !self.batch.is_empty() {
                let stored = self.ingest.submit(std::mem::take(&mut self.batch)).await;
                self.batches.push_back((self.next_batch, stored));
                self.next_batch += 1;
            }
            for (pkid, ack) in self.acks.release() {
                self.version.encode(Out::PubAck { pkid, ack }, &mut self.out);
            }
            if !flush(self.stream, &mut self.out).await {
                return "connection closed";
            }
            let wait = session
                .deadline_ms()
                .map_or(Duration::from_secs(3600), |d| Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0)));
            let reading = self.acks.has_room();
            if reading {
                // A busy device gets room for dozens of PUBLISHes per read; an idle one holds
                // little memory (this matters at tens of thousands of connections).
                buf.reserve(if self.last_read >= IDLE_READ { READ_CHUNK } else { IDLE_READ });
            }
            tokio::select! {
                done = oldest(&mut self.batches) => {
                    self.batches.pop_front();
                    match done {
                        Ok(id) => self.acks.stored(id),
                        Err(why) => return why,
                    }
                }
                read = self.stream.read_buf(buf), if reading => match read {
                    Ok(0) | Err(_) => return "connection closed",
                    Ok(n) => self.last_read = n,
                },
                changed = orders.changed() => {
                    if changed.is_err() {
                        return "session replaced";
                    }
                    let o = *orders.borrow_and_update();
                    if let Some(why) = o.close {
                        // A decommissioned device still gets its wipe command, if it listens.
                        if why == "device decommissioned" {
                            self.deliver(session).await;
                            flush(self.stream, &mut self.out).await;
                        }
                        return why;
                    }
                    if let Some(q) = o.quarantined {
                        session.set_quarantined(q);
                    }
                }
                nudge = deliver.recv() => {
                    if nudge.is_none() {
                        return "session replaced";
                    }
                    self.deliver(session).await;
                }
                _ = shutdown.changed() => return "server shutting down",
                () = tokio::time::sleep(wait) => return "keep-alive expired",
            }
        }
    }

    /// Handles one packet from the device.
    async fn packet(&mut self, packet: In, session: &Session) -> Result<(), &'static str> {
        match packet {
            In::Publish { topic, qos, pkid, payload } => {
                let pkid = match qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(pkid),
                    QoS::ExactlyOnce => return Err("QoS 2 is not supported"),
                };
                self.publish(session, &topic, pkid, &payload).await?;
            }
            In::Subscribe { pkid, filters } => {
                let mut granted = Vec::with_capacity(filters.len());
                for f in &filters {
                    match session.authorize_subscribe(f) {
                        Ok(()) => granted.push(true),
                        Err(v) => {
                            self.acl_violation(session, &v).await;
                            granted.push(false);
                        }
                    }
                }
                let commands = granted.iter().any(|g| *g);
                self.version.encode(Out::SubAck { pkid, granted }, &mut self.out);
                if commands {
                    self.outbox.subscribed = true;
                    self.deliver(session).await;
                }
            }
            In::Unsubscribe { pkid, count } => {
                self.version.encode(Out::UnsubAck { pkid, count }, &mut self.out);
            }
            In::PingReq => {
                self.version.encode(Out::PingResp, &mut self.out);
            }
            In::PubAck { pkid } => {
                if let Some(id) = self.outbox.inflight.remove(&pkid)
                    && let Err(e) = self
                        .state
                        .store
                        .set_command_status(session.device_id().to_owned(), id, "delivered", None, now_ms())
                        .await
                {
                    tracing::error!(error = %e, "cannot record a command delivery");
                }
            }
            In::Disconnect => return Err("client disconnected"),
            In::Connect { .. } => return Err("second CONNECT"),
            In::Other => return Err("unexpected packet"),
        }
        Ok(())
    }

    /// A PUBLISH: refused (ACL, payload) or queued for storage; its PUBACK waits its turn.
    async fn publish(
        &mut self,
        session: &Session,
        topic: &str,
        pkid: Option<u16>,
        payload: &[u8],
    ) -> Result<(), &'static str> {
        let kind = match session.authorize_publish(topic) {
            Ok(kind) => kind,
            Err(v) => {
                self.acl_violation(session, &v).await;
                // MQTT 5 refuses the message and keeps the session; 3.1.1 can only close.
                if self.version == Version::V311 {
                    return Err("topic not allowed");
                }
                self.acks.decided(pkid, AckReason::NotAuthorized);
                return Ok(());
            }
        };
        let accepted = match accept(session, kind, payload, &mut self.counters) {
            Ok(i) => i,
            Err(why) => {
                self.deny(why);
                self.acks.decided(pkid, AckReason::PayloadInvalid);
                return Ok(());
            }
        };
        let update = match kind {
            TopicKind::Event => crate::firmware::update_event(&accepted.inbound.message.payload),
            _ => None,
        };
        if kind != TopicKind::CommandResult && update.is_none() {
            self.acks.store(pkid, self.next_batch);
            self.batch.push(accepted);
            return Ok(());
        }
        let inbound = accepted.inbound;
        // A command result also settles the command, an update event the device's update
        // report: stored at once, in its own write.
        let result = if kind == TopicKind::CommandResult { command_result(&inbound.message.payload) } else { None };
        if let Err(e) = self.state.store.ingest(vec![inbound]).await {
            tracing::error!(error = %e, "cannot store a device message");
            return Err("storage unavailable");
        }
        if let Some((id, status, detail)) = result {
            let dev = session.device_id().to_owned();
            if let Err(e) = self.state.store.set_command_status(dev, id, status, Some(detail), now_ms()).await {
                tracing::error!(error = %e, "cannot record a command result");
            }
        }
        if let Some(update) = update {
            let (event, target, detail) = (update.event.clone(), update.target.clone(), update.detail.clone());
            if let Err(e) = crate::firmware::record_update(self.state, session.device_id(), update).await {
                tracing::error!(error = %e, "cannot record an update report");
            }
            let device = session.device_id().to_owned();
            crate::rollout::outcome(self.state, &device, &event, target.as_deref(), detail.as_deref()).await;
        }
        self.acks.decided(pkid, AckReason::Stored);
        Ok(())
    }

    fn deny(&self, reason: &str) {
        self.state.metrics.denials.get_or_create(&crate::metrics::DenialLabels { reason: reason.into() }).inc();
    }

    /// A topic refused: a security event with the source address.
    async fn acl_violation(&self, session: &Session, v: &palisade_core::mqtt::AclViolation) {
        let detail = format!("{v} (from {})", self.ip);
        let device = Some(session.device_id().to_owned());
        if let Err(e) = self.state.store.add_finding("acl_violation".into(), device, detail.clone(), now_ms()).await {
            tracing::error!(error = %e, "cannot record an ACL violation");
        }
        let obs = Observation::Event { at_ms: now_ms(), event: DetectEvent::UnauthorizedTopic, detail };
        self.state.detector.observe(session.device_id(), obs).await;
        self.deny("mqtt_acl");
    }

    /// Queues the device's pending commands (if it listens) for the next write.
    async fn deliver(&mut self, session: &Session) {
        if !self.outbox.subscribed {
            return;
        }
        let device = session.device_id().to_owned();
        let pending = match self.state.store.pending_commands(&device).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the command outbox");
                return;
            }
        };
        for c in pending {
            let outbox = &mut self.outbox;
            if outbox.inflight.len() >= MAX_INFLIGHT || outbox.inflight.values().any(|id| *id == c.id) {
                continue;
            }
            outbox.next_pkid = outbox.next_pkid.checked_add(1).unwrap_or(1);
            let pkid = outbox.next_pkid;
            let payload = serde_json::json!({ "id": c.id, "command": c.command }).to_string().into_bytes();
            let topic = format!("devices/{device}/commands");
            self.version.encode(Out::Publish { topic, pkid, payload }, &mut self.out);
            outbox.inflight.insert(pkid, c.id.clone());
            if let Err(e) = self.state.store.set_command_status(device.clone(), c.id, "sent", None, now_ms()).await {
                tracing::error!(error = %e, "cannot record a command as sent");
            }
        }
    }
}

/// Waits for the oldest batch to be stored; its id, or why the session must end. Pending
/// forever when nothing is being stored.
async fn oldest(batches: &mut VecDeque<(u64, oneshot::Receiver<bool>)>) -> Result<u64, &'static str> {
    let Some((id, stored)) = batches.front_mut() else { return std::future::pending().await };
    match stored.await {
        Ok(true) => Ok(*id),
        Ok(false) | Err(_) => Err("storage unavailable"),
    }
}

/// A message accepted for storage, and what detection looks at once it is stored.
struct Accepted {
    inbound: Inbound,
    report: Option<Box<palisade_core::detect::Report>>,
}

/// A connection's batch and who to tell once it is durable.
type IngestRequest = (Vec<Accepted>, oneshot::Sender<bool>);

/// Rows one write takes at most.
const INGEST_MAX_ROWS: usize = 16384;
/// Writes in flight at most (being written, or waiting to be durable: SQLite pipelines its
/// commits, see `palisade_store::sqlite`). The next batch is formed as soon as the previous
/// one's write has begun, so this only bounds how many wait for their flush.
const INGEST_PIPELINE: usize = 8;

/// Gathers the batches of every connection into one store write: one transaction (one fsync,
/// one multi-row INSERT per table) for everything that arrived while the previous write was
/// committing. Per-write costs are paid per group of connections instead of per connection.
/// The queue is bounded and each connection has at most `MAX_PENDING_STORES` messages in it.
#[derive(Clone)]
struct Ingest {
    tx: mpsc::Sender<IngestRequest>,
}

impl Ingest {
    fn start(
        store: palisade_store::Store,
        detector: crate::detect::Detector,
        notifier: crate::notify::Notifier,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        detector.lane.clone().spawn(run_ingest(store, detector, notifier, rx));
        Self { tx }
    }

    /// Queues a batch; the receiver hears `true` once it is durable, `false` if it failed.
    async fn submit(&self, batch: Vec<Accepted>) -> oneshot::Receiver<bool> {
        let (done, stored) = oneshot::channel();
        // If the ingester is gone, `done` is dropped and the receiver reports a failure.
        let _ = self.tx.send((batch, done)).await;
        stored
    }
}

/// Forms the batches, has detection evaluate each one's reports (in order, before it is
/// written) and writes the batch together with the alerts it raised.
async fn run_ingest(
    store: palisade_store::Store,
    detector: crate::detect::Detector,
    notifier: crate::notify::Notifier,
    mut rx: mpsc::Receiver<IngestRequest>,
) {
    let mut writing = tokio::task::JoinSet::new();
    // Writes may be queued, and finish (PostgreSQL), out of order. Rows of different batches do
    // not care; alerts do (a rule's clear must not be written before its raise), so a batch with
    // verdicts starts its write only once the previous batch with verdicts has finished its own.
    let mut verdicts_before: Option<oneshot::Receiver<()>> = None;
    // The previous batch's write has begun: the next batch is formed then, with everything that
    // arrived meanwhile, and waits for its turn at the writer (so a batch never waits behind
    // more than one other to start, while any number are being made durable).
    let mut previous_started: Option<oneshot::Receiver<()>> = None;
    loop {
        while writing.try_join_next().is_some() {}
        if let Some(started) = previous_started.take() {
            let _ = started.await;
        }
        while writing.len() >= INGEST_PIPELINE {
            writing.join_next().await;
        }
        let Some((mut accepted, done)) = rx.recv().await else { break };
        let mut waiting = vec![done];
        while accepted.len() < INGEST_MAX_ROWS {
            let Ok((more, done)) = rx.try_recv() else { break };
            accepted.extend(more);
            waiting.push(done);
        }
        let mut reports = Vec::new();
        let rows: Vec<Inbound> = accepted
            .into_iter()
            .map(|a| {
                if let Some(r) = a.report {
                    reports.push((a.inbound.message.device_id.clone(), r));
                }
                a.inbound
            })
            .collect();
        let signals = if reports.is_empty() { Vec::new() } else { detector.evaluate(reports).await };
        let verdicts: Vec<_> = signals.iter().map(crate::detect::alerts::verdict).collect();
        let (previous, written) = if verdicts.is_empty() {
            (None, None)
        } else {
            let (written, next) = oneshot::channel();
            (verdicts_before.replace(next), Some(written))
        };
        let (store, detector, notifier) = (store.clone(), detector.clone(), notifier.clone());
        let (started, starting) = oneshot::channel();
        previous_started = Some(starting);
        writing.spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let result = store.ingest_detected(rows, verdicts, started).await;
            drop(written);
            let ok = result.is_ok();
            for done in waiting {
                let _ = done.send(ok);
            }
            match result {
                Ok(recorded) => {
                    if recorded.iter().any(crate::detect::alerts::queued_notices) {
                        notifier.wake();
                    }
                    for (signal, outcome) in signals.into_iter().zip(recorded) {
                        detector.recorded(signal, Some(outcome)).await;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot store device messages");
                    // Detection has seen these reports: what it raised is recorded on its own.
                    for signal in signals {
                        detector.recorded(signal, None).await;
                    }
                }
            }
        });
    }
    while writing.join_next().await.is_some() {}
}

/// Commands sent and not yet acknowledged, on one connection.
#[derive(Default)]
struct Outbox {
    subscribed: bool,
    next_pkid: u16,
    inflight: HashMap<u16, String>,
}

/// Commands in flight at most per session.
const MAX_INFLIGHT: usize = 16;

/// `{"id": "...", "status": "done" | "failed", ...}` on `commands/result`.
fn command_result(payload: &str) -> Option<(String, &'static str, String)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let id = v.get("id")?.as_str()?.chars().take(64).collect();
    let status = match v.get("status")?.as_str()? {
        "done" | "ok" => "done",
        _ => "failed",
    };
    Some((id, status, payload.chars().take(4096).collect()))
}

/// Validates a payload into a message to store. Telemetry is parsed once, into the v1 type; its
/// facts (with rates derived from the device's previous counters) are stored next to the raw
/// report, which is kept as sent.
fn accept(
    session: &Session,
    kind: TopicKind,
    payload: &[u8],
    counters: &mut Option<CounterSample>,
) -> Result<Accepted, &'static str> {
    let received_ms = now_ms();
    let (seq, at_ms, telemetry, report) = if kind == TopicKind::Telemetry {
        let t = TelemetryV1::parse(payload).map_err(|r| r.as_str())?;
        let (at_ms, facts) = facts(&t, received_ms, counters)?;
        let report = crate::detect::report(&t, at_ms, received_ms, &facts);
        (t.seq, at_ms, Some(facts), Some(Box::new(report)))
    } else {
        let value: serde_json::Value = serde_json::from_slice(payload).map_err(|_| "malformed_json")?;
        let obj = value.as_object().ok_or("not_an_object")?;
        (obj.get("seq").and_then(serde_json::Value::as_i64), received_ms, None, None)
    };
    let text = std::str::from_utf8(payload).map_err(|_| "malformed_json")?;
    let inbound = Inbound {
        message: DeviceMessage {
            device_id: session.device_id().to_owned(),
            kind: kind.as_str().to_owned(),
            received_ms,
            at_ms,
            seq,
            quarantined: session.is_quarantined(),
            payload: text.to_owned(),
        },
        telemetry,
    };
    Ok(Accepted { inbound, report })
}

/// The facts of one telemetry report. Its time is the device's `ts` (never later than now: a
/// clock running ahead cannot push facts into the future); rates come from `counters`, the
/// device's previous report, which this report then replaces unless it is older.
fn facts(
    t: &TelemetryV1,
    received_ms: i64,
    counters: &mut Option<CounterSample>,
) -> Result<(i64, TelemetryFacts), &'static str> {
    let at_ms = match &t.ts {
        Some(ts) => crate::api::convert::parse_rfc3339("ts", ts).map_err(|_| "invalid_telemetry")?.min(received_ms),
        None => received_ms,
    };
    let (net, sys) = (t.net.as_ref(), t.sys.as_ref());
    let sample = CounterSample {
        at_ms,
        boot_id: sys.and_then(|s| s.boot_id.clone()),
        uptime_s: sys.and_then(|s| s.uptime_s),
        tx_bytes: net.and_then(|n| n.tx_bytes),
        rx_bytes: net.and_then(|n| n.rx_bytes),
    };
    let rates = palisade_core::telemetry::rates(counters.as_ref(), &sample);
    let signed = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    let facts = TelemetryFacts {
        boot_id: sample.boot_id.clone(),
        uptime_s: signed(sample.uptime_s),
        tx_bytes: signed(sample.tx_bytes),
        rx_bytes: signed(sample.rx_bytes),
        tx_bps: rates.tx_bps,
        rx_bps: rates.rx_bps,
        counter_reset: rates.reset,
        cpu_pct: sys.and_then(|s| s.cpu_pct),
        mem_pct: sys.and_then(|s| s.mem_pct),
        failed_logins: signed(t.auth.as_ref().and_then(|a| a.failed_logins)),
    };
    if rates.reset || counters.as_ref().is_none_or(|c| at_ms > c.at_ms) {
        *counters = Some(sample);
    }
    Ok((at_ms, facts))
}

/// Feeds raw bytes from a device through everything the plane parses before storage: protocol
/// detection, the frame decoder of either version, the topic rules and payload validation.
/// For the fuzz harness (`tests/fuzz_mqtt.rs`); returns how many packets decoded.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) -> usize {
    let Ok(Some(version)) = connect_version(bytes) else { return 0 };
    let mut buf = BytesMut::from(bytes);
    let mut session = Session::new("06h05qdcsfk8ph7e73kt", false, 0);
    let mut counters = None;
    let mut n = 0;
    while let Ok(Some(packet)) = version.read(&mut buf) {
        n += 1;
        match packet {
            In::Connect { client_id, keep_alive } => {
                let _ = session.connect(&client_id, keep_alive, 0);
            }
            In::Publish { topic, payload, .. } => {
                if let Ok(kind) = session.authorize_publish(&topic) {
                    let _ = accept(&session, kind, &payload, &mut counters);
                }
            }
            In::Subscribe { filters, .. } => {
                for f in &filters {
                    let _ = session.authorize_subscribe(f);
                }
            }
            _ => {}
        }
        let mut out = BytesMut::new();
        let _ = version.encode(Out::PubAck { pkid: 1, ack: AckReason::PayloadInvalid }, &mut out);
    }
    n
}
