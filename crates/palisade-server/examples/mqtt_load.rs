//! MQTT load tool: many connections, each with its own client certificate, publishing QoS 1
//! telemetry flat out; reports acknowledged messages per second and PUBACK latency. It speaks
//! plain MQTT 3.1.1 over TLS 1.3, so it measures any broker the same way (Palisade, Mosquitto).
//!
//! `mqtt_load HOST PORT CA_PEM DEVICE_DIR SECONDS [RATE]` (measured after a 2 s warm-up) —
//! DEVICE_DIR holds `<device id>.pem` and `<device id>.key` per device; the client id is the
//! device id. With RATE, the connections together publish that many messages per second
//! instead of flat out.
//! See `scripts/bench-mqtt.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 && args.len() != 7 {
        eprintln!("usage: mqtt_load HOST PORT CA_PEM DEVICE_DIR SECONDS [RATE]");
        std::process::exit(2);
    }
    let (host, port, ca, dir, secs) = (
        &args[1],
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
    let every = args.get(6).map(|r| Duration::from_secs_f64(ids.len() as f64 / r.parse::<f64>().unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for id in ids.clone() {
        let cert = std::fs::read(format!("{dir}/{id}.pem")).unwrap();
        let key = std::fs::read(format!("{dir}/{id}.key")).unwrap();
        let mut opts = MqttOptions::new(id.clone(), host.clone(), port);
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(&ca, &cert, &key))));
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(32);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let publishing = stop.clone();
        let topic = format!("devices/{id}/telemetry");
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut pace = every.map(|e| {
                let mut i = tokio::time::interval(e);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            while !publishing.load(Ordering::Relaxed) {
                if let Some(p) = &mut pace {
                    p.tick().await;
                }
                seq += 1;
                let payload = format!(
                    r#"{{"v":1,"seq":{seq},"net":{{"tx_bytes":{},"rx_bytes":{}}},"sys":{{"cpu_pct":12.5}}}}"#,
                    seq * 100,
                    seq * 7
                );
                if client.publish(topic.clone(), QoS::AtLeastOnce, false, payload).await.is_err() {
                    return;
                }
            }
            let _ = client.disconnect().await;
        });
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent: HashMap<u16, Instant> = HashMap::new();
            let mut latencies = Vec::new();
            let measuring = started + WARMUP;
            let deadline = measuring + Duration::from_secs(secs);
            loop {
                let ev = tokio::time::timeout_at(deadline.into(), eventloop.poll()).await;
                match ev {
                    Err(_) => break,
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        sent.insert(pkid, Instant::now());
                    }
                    Ok(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                        if let Some(t) = sent.remove(&ack.pkid)
                            && Instant::now() >= measuring
                        {
                            latencies.push(t.elapsed());
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        eprintln!("connection error: {e}");
                        break;
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = secs as f64;
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "connections={} acked={} msgs/s={:.0} puback_ms p50={:.2} p99={:.2} max={:.2}",
        ids.len(),
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
}
