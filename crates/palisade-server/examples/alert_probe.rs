//! Publish → webhook latency probe: one device alternately opens telnet (23/tcp) and closes it;
//! a rule on its listening ports alarms and clears, so every "open" report opens a new alert
//! and the server POSTs a signed webhook. Measures from just before the offending PUBLISH to the
//! webhook's arrival at a local receiver. See `scripts/bench-alerts.sh`.
//!
//! `alert_probe HOST PORT CA_PEM PROBE_DIR RECEIVER_PORT SAMPLES` — PROBE_DIR holds one device's
//! `<id>.pem` and `<id>.key`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

fn tls(ca: &[u8], cert: &[u8], key: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).map(|c| c.unwrap()).collect();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key).unwrap())
        .unwrap();
    Arc::new(config)
}

/// Answers 200 to every POST and reports (arrival, event type) of each.
async fn receiver(port: u16, tx: mpsc::UnboundedSender<(Instant, String)>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    while let Ok((mut sock, _)) = listener.accept().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let at = Instant::now();
                        let body: serde_json::Value =
                            serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or_default();
                        let _ = tx.send((at, body["type"].as_str().unwrap_or("").to_owned()));
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
                        buf.drain(..end + 4 + len);
                        continue;
                    }
                }
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

/// The next webhook of `kind`, or `None` after 5 s.
/// The next PUBACK's arrival (at most 5 s away).
async fn ack(acks: &mut mpsc::UnboundedReceiver<Instant>) -> Option<Instant> {
    tokio::time::timeout(Duration::from_secs(5), acks.recv()).await.ok().flatten()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(Instant, String)>, kind: &str) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((at, t))) if t == kind => return Some(at),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: alert_probe HOST PORT CA_PEM PROBE_DIR RECEIVER_PORT SAMPLES");
        std::process::exit(2);
    }
    let (host, port, ca, dir) = (&args[1], args[2].parse::<u16>().unwrap(), std::fs::read(&args[3]).unwrap(), &args[4]);
    let (receiver_port, samples) = (args[5].parse::<u16>().unwrap(), args[6].parse::<usize>().unwrap());
    let id = std::fs::read_dir(dir)
        .unwrap()
        .find_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".pem").map(String::from))
        .expect("no device in PROBE_DIR");
    let (hooks_tx, mut hooks) = mpsc::unbounded_channel();
    tokio::spawn(receiver(receiver_port, hooks_tx));

    let cert = std::fs::read(format!("{dir}/{id}.pem")).unwrap();
    let key = std::fs::read(format!("{dir}/{id}.key")).unwrap();
    let mut opts = MqttOptions::new(id.clone(), host.clone(), port);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(&ca, &cert, &key))));
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let (connected_tx, mut connected) = mpsc::channel(1);
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = connected_tx.try_send(());
                }
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    let _ = acks_tx.send(Instant::now());
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("probe connection: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    connected.recv().await;
    let topic = format!("devices/{id}/telemetry");
    let report = |seq: usize, port: u16| {
        format!(r#"{{"v":1,"seq":{seq},"net":{{"listening":[{{"proto":"tcp","port":{port}}}]}}}}"#)
    };
    // One clean report first, so the first "open" is a change.
    client.publish(&topic, QoS::AtLeastOnce, false, report(0, 443)).await.unwrap();
    let _ = next(&mut hooks, "alert.resolved").await;
    // PUBACKs come in publish order: each one is taken right after its publish's webhook, so a
    // late PUBACK of the clean report can never pass for the offending one's.
    let _ = ack(&mut acks).await;
    let mut latencies = Vec::new();
    let mut stored = Vec::new();
    let mut missed = 0;
    for k in 0..samples {
        let sent = Instant::now();
        client.publish(&topic, QoS::AtLeastOnce, false, report(2 * k + 1, 23)).await.unwrap();
        match next(&mut hooks, "alert.opened").await {
            Some(at) => latencies.push(at.duration_since(sent)),
            None => missed += 1,
        }
        // The offending report's PUBACK: when it was durably stored (detection starts then).
        if let Some(at) = ack(&mut acks).await {
            stored.push(at.duration_since(sent));
        }
        client.publish(&topic, QoS::AtLeastOnce, false, report(2 * k + 2, 443)).await.unwrap();
        if next(&mut hooks, "alert.resolved").await.is_none() {
            missed += 1;
        }
        let _ = ack(&mut acks).await;
    }
    latencies.sort();
    stored.sort();
    let pct = |v: &[Duration], p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "samples={} missed={missed} publish_to_webhook_ms p50={:.1} p99={:.1} max={:.1} \
         (of which publish_to_puback_ms p50={:.1} p99={:.1})",
        latencies.len(),
        pct(&latencies, 0.50),
        pct(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        pct(&stored, 0.50),
        pct(&stored, 0.99),
    );
}
