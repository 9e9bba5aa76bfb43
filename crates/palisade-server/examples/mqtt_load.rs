//! MQTT load tool: many connections, each with its own client certificate, publishing QoS 1
//! telemetry flat out; reports acknowledged messages per second and PUBACK latency. It speaks
//! plain MQTT 3.1.1 over TLS 1.3, so it measures any broker the same way (Palisade, Mosquitto).
//!
//! `mqtt_load HOST PORT CA_PEM DEVICE_DIR SECONDS [RATE [PER_WRITE]]` (measured after a 2 s
//! warm-up) — DEVICE_DIR holds `<device id>.pem` and `<device id>.key` per device; the client id
//! is the device id. With RATE, the connections together publish that many messages per second
//! instead of flat out, PER_WRITE at a time (1 by default): a flat-out run prints how many
//! PUBLISHes its writes carried on average, so a paced run can send the same traffic slower.
//! See `scripts/bench-mqtt.sh`.
//!
//! The client is deliberately lean so that the broker, not the tool, is what runs out of CPU
//! (both share the machine): each connection keeps up to `IN_FLIGHT` QoS 1 PUBLISHes
//! outstanding, writes every PUBLISH it may send in one TLS write, and reads PUBACKs in bulk.
//! Only the three packets it needs are encoded by hand (CONNECT, PUBLISH, PINGREQ); everything
//! the broker sends is framed by its remaining length, and anything but CONNACK, PUBACK and
//! PINGRESP ends the connection with an error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn tls(ca: &[u8], cert: &[u8], key: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Connections are set up and the broker warmed before the measured window starts (the same for
/// every broker): handshakes and the first allocations are not what is measured.
const WARMUP: Duration = Duration::from_secs(2);
/// QoS 1 messages outstanding per connection at most.
const IN_FLIGHT: usize = 32;
/// Keep-alive announced in CONNECT; a PINGREQ goes out when nothing else did for half of it.
const KEEP_ALIVE_S: u16 = 60;

/// Appends an MQTT remaining length.
fn remaining_length(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s);
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(4); // 3.1.1
    body.push(0x02); // clean session
    body.extend_from_slice(&KEEP_ALIVE_S.to_be_bytes());
    string(&mut body, client_id.as_bytes());
    let mut out = vec![0x10];
    remaining_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// One connection's QoS 1 PUBLISH with a telemetry v1 report, appended to `out`.
fn publish_packet(out: &mut Vec<u8>, topic: &str, pkid: u16, payload: &mut Vec<u8>, seq: u64) {
    payload.clear();
    write!(
        payload,
        r#"{{"v":1,"seq":{seq},"net":{{"tx_bytes":{},"rx_bytes":{}}},"sys":{{"cpu_pct":12.5}}}}"#,
        seq * 100,
        seq * 7
    )
    .unwrap();
    out.push(0x32); // PUBLISH, QoS 1
    remaining_length(out, 2 + topic.len() + 2 + payload.len());
    string(out, topic.as_bytes());
    out.extend_from_slice(&pkid.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The next whole packet in `buf` (type nibble and body), or `None` if more bytes are needed.
fn next_packet(buf: &[u8]) -> Option<(u8, std::ops::Range<usize>)> {
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        len |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        assert!(shift <= 21, "malformed remaining length from the broker");
    }
    (buf.len() >= i + len).then(|| (buf[0] >> 4, i..i + len))
}

struct Outcome {
    latencies: Vec<Duration>,
    /// PUBLISHes written, and the writes that carried them, inside the measured window.
    published: u64,
    writes: u64,
    error: Option<String>,
}

struct Load {
    topic: String,
    /// Time between publishes at the requested rate; `None` for flat out.
    every: Option<Duration>,
    /// Publishes written together at the requested rate.
    per_write: u32,
    measuring: Instant,
    deadline: Instant,
}

async fn handshake(addr: &str, host: &str, config: Arc<rustls::ClientConfig>, id: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let mut stream = TlsConnector::from(config).connect(name, tcp).await.unwrap();
    stream.write_all(&connect_packet(id)).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// Publishes on one connection until the deadline; PUBACK latencies inside the measured window.
async fn run(mut stream: TlsStream<TcpStream>, load: Load) -> Outcome {
    let mut latencies = Vec::new();
    // Outstanding PUBLISHes: packet id and when it was written.
    let mut sent_at: Vec<(u16, Instant)> = Vec::with_capacity(IN_FLIGHT);
    let (mut next_pkid, mut seq) = (0u16, 0u64);
    let mut connected = false;
    let (mut out, mut payload) = (Vec::with_capacity(8192), Vec::with_capacity(256));
    let mut input = bytes::BytesMut::with_capacity(16 * 1024);
    // At a requested rate, what is due follows the clock: a tick that comes late (the task had
    // to wait for a core) brings every publish that fell due meanwhile, written together, so
    // the rate asked is the rate sent (skipping late ticks instead fell far short of it).
    let mut pace = load.every.map(|e| {
        let mut i = tokio::time::interval(e * load.per_write);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        (i, Instant::now(), e)
    });
    let mut scheduled = 0u64;
    let mut due = 0usize;
    let mut last_sent = Instant::now();
    let (mut published, mut writes) = (0u64, 0u64);
    let fail = |latencies, e: String| Outcome { latencies, published: 0, writes: 0, error: Some(e) };
    loop {
        if Instant::now() >= load.deadline {
            return Outcome { latencies, published, writes, error: None };
        }
        if connected {
            let room = IN_FLIGHT - sent_at.len();
            let n = if pace.is_some() { due.min(room) } else { room };
            let now = Instant::now();
            for _ in 0..n {
                next_pkid = next_pkid.checked_add(1).unwrap_or(1);
                seq += 1;
                publish_packet(&mut out, &load.topic, next_pkid, &mut payload, seq);
                sent_at.push((next_pkid, now));
            }
            due -= n.min(due);
            if n > 0 && now >= load.measuring {
                published += n as u64;
                writes += 1;
            }
            if out.is_empty() && now.duration_since(last_sent) > Duration::from_secs(u64::from(KEEP_ALIVE_S / 2)) {
                out.extend_from_slice(&[0xc0, 0x00]); // PINGREQ
            }
            if !out.is_empty() {
                if let Err(e) = stream.write_all(&out).await {
                    return fail(latencies, format!("write: {e}"));
                }
                if let Err(e) = stream.flush().await {
                    return fail(latencies, format!("flush: {e}"));
                }
                out.clear();
                last_sent = now;
            }
        }
        let read = tokio::select! {
            r = stream.read_buf(&mut input) => r,
            _ = async { pace.as_mut().unwrap().0.tick().await }, if pace.is_some() => {
                let (_, start, every) = pace.as_ref().unwrap();
                let fell_due = (start.elapsed().as_secs_f64() / every.as_secs_f64()) as u64 + 1;
                due += usize::try_from(fell_due.saturating_sub(scheduled)).unwrap();
                scheduled = scheduled.max(fell_due);
                continue;
            }
            () = tokio::time::sleep_until(load.deadline.into()) => continue,
        };
        match read {
            Ok(0) => return fail(latencies, "connection closed by the broker".into()),
            Err(e) => return fail(latencies, format!("read: {e}")),
            Ok(_) => {}
        }
        let now = Instant::now();
        let mut used = 0;
        while let Some((kind, body)) = next_packet(&input[used..]) {
            let packet = &input[used + body.start..used + body.end];
            match kind {
                2 if packet.len() >= 2 && packet[1] == 0 => connected = true,
                2 => return fail(latencies, format!("CONNACK refused: return code {}", packet[1])),
                4 if packet.len() >= 2 => {
                    let pkid = u16::from_be_bytes([packet[0], packet[1]]);
                    if let Some(i) = sent_at.iter().position(|(p, _)| *p == pkid) {
                        let (_, t) = sent_at.swap_remove(i);
                        if t >= load.measuring && now <= load.deadline {
                            latencies.push(now - t);
                        }
                    }
                }
                13 => {} // PINGRESP
                k => return fail(latencies, format!("unexpected packet type {k} from the broker")),
            }
            used += body.end;
        }
        let _ = input.split_to(used);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = |why: &str| -> ! {
        eprintln!("{why}\nusage: mqtt_load HOST PORT CA_PEM DEVICE_DIR SECONDS [RATE [PER_WRITE]]");
        std::process::exit(2)
    };
    if !(6..=8).contains(&args.len()) {
        usage("wrong number of arguments");
    }
    let (host, port, ca, dir, secs) = (
        args[1].clone(),
        args[2].parse::<u16>().unwrap(),
        std::fs::read(&args[3]).unwrap(),
        &args[4],
        args[5].parse::<u64>().unwrap(),
    );
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".pem").map(String::from))
        .collect();
    ids.sort();
    // Each connection's interval between publishes at the requested total rate.
    let every = args.get(6).map(|r| match r.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Duration::from_secs_f64(ids.len() as f64 / rate),
        _ => usage("RATE must be a positive number of messages per second"),
    });
    let per_write = args.get(7).map_or(1, |n| match n.parse::<u32>() {
        Ok(n) if n > 0 => n,
        _ => usage("PER_WRITE must be a positive whole number"),
    });
    let started = Instant::now();
    let measuring = started + WARMUP;
    let deadline = measuring + Duration::from_secs(secs);
    let addr = format!("{host}:{port}");
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let cert = std::fs::read(format!("{dir}/{id}.pem")).unwrap();
        let key = std::fs::read(format!("{dir}/{id}.key")).unwrap();
        let config = tls(&ca, &cert, &key);
        let (addr, host) = (addr.clone(), host.clone());
        let load = Load { topic: format!("devices/{id}/telemetry"), every, per_write, measuring, deadline };
        tasks.push(tokio::spawn(async move { run(handshake(&addr, &host, config, &id).await, load).await }));
    }
    let mut all = Vec::new();
    let mut errors = false;
    let (mut published, mut writes) = (0u64, 0u64);
    for t in tasks {
        let outcome = t.await.unwrap();
        if let Some(e) = outcome.error {
            eprintln!("connection error: {e}");
            errors = true;
        }
        all.extend(outcome.latencies);
        published += outcome.published;
        writes += outcome.writes;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "connections={} acked={} msgs/s={:.0} per_write={:.1} puback_ms p50={:.2} p99={:.2} max={:.2}",
        ids.len(),
        all.len(),
        all.len() as f64 / secs as f64,
        published as f64 / writes.max(1) as f64,
        pct(0.50),
        pct(0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    if errors {
        std::process::exit(1);
    }
}
