//! A fleet for the benchmarks. `enroll` enrolls many devices through Palisade's public
//! interfaces (REST API and EST, each device its own P-256 key, 16 at a time) and writes their
//! keys and certificates for the load tools. `idle` holds one idle MQTT 3.1.1 session per device
//! over TLS 1.3 with its client certificate and reports the broker's resident memory per
//! connection; it runs against any broker, so Mosquitto is measured the same way.
//!
//! ```text
//! mqtt_fleet enroll API_URL EST_URL CA_PEM API_KEY N DIR   # writes DIR/<id>.pem, DIR/<id>.key
//! mqtt_fleet idle HOST PORT CA_PEM DIR BROKER_PID          # connects every device in DIR
//! ```
//! See `scripts/bench-mqtt.sh` and `scripts/bench-idle.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(ca: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn client_config(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(ca));
    Arc::new(match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert).map(|c| c.unwrap()).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

/// One HTTP/1.1 request over a fresh TLS connection; (status, body).
async fn https(
    tls: &Arc<rustls::ClientConfig>,
    url: &str,
    method: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("https://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let (host, port) = authority.rsplit_once(':').unwrap();
    let tcp = TcpStream::connect((host, port.parse::<u16>().unwrap())).await.unwrap();
    let name = ServerName::try_from(if host == "127.0.0.1" { "localhost" } else { host }.to_owned()).unwrap();
    let mut s = TlsConnector::from(tls.clone()).connect(name, tcp).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..head_end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[head_end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line + 2..line + 2 + n]);
        b = &b[line + 2 + n + 2..];
    }
}

async fn enroll_one(
    api: String,
    est: String,
    tls: Arc<rustls::ClientConfig>,
    key: String,
    serial: String,
    dir: String,
) {
    let auth = [("Authorization", format!("Bearer {key}")), ("Content-Type", "application/json".to_owned())];
    let body = format!(r#"{{"serial":"{serial}","model":"fleet","vendor":"bench"}}"#);
    let (code, resp) = https(&tls, &format!("{api}/api/v1/devices"), "POST", &auth, body.as_bytes()).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&resp));
    let id = serde_json::from_slice::<serde_json::Value>(&resp).unwrap()["id"].as_str().unwrap().to_owned();
    let (code, resp) = https(&tls, &format!("{api}/api/v1/devices/{id}/enrollment-tokens"), "POST", &auth, b"{}").await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&resp));
    let token = serde_json::from_slice::<serde_json::Value>(&resp).unwrap()["token"].as_str().unwrap().to_owned();
    let keypair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::default().serialize_request(&keypair).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(csr.der());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{token}"));
    let est_headers = [("Authorization", format!("Basic {basic}")), ("Content-Type", "application/pkcs10".to_owned())];
    let (code, resp) =
        https(&tls, &format!("{est}/.well-known/est/simpleenroll"), "POST", &est_headers, b64.as_bytes()).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&resp));
    let (code, resp) = https(&tls, &format!("{api}/api/v1/devices/{id}/certificates"), "GET", &auth, b"").await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&resp));
    let certs: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    let pem = format!("{}{}", certs[0]["pem"].as_str().unwrap(), certs[0]["ca_pem"].as_str().unwrap_or(""));
    std::fs::write(format!("{dir}/{id}.pem"), pem).unwrap();
    std::fs::write(format!("{dir}/{id}.key"), keypair.serialize_pem()).unwrap();
}

/// MQTT 3.1.1 CONNECT: clean session, keep-alive 600 s, client id `id`.
fn connect_packet(id: &str) -> Vec<u8> {
    let mut var = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0x02, 0x58];
    var.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
    var.extend_from_slice(id.as_bytes());
    let mut p = vec![0x10, u8::try_from(var.len()).unwrap()];
    p.extend(var);
    p
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("enroll") if args.len() == 8 => {
            let (api, est, ca, key, n, dir) = (&args[2], &args[3], &args[4], &args[5], &args[6], &args[7]);
            let tls = client_config(&std::fs::read(ca).unwrap(), None);
            let n: usize = n.parse().unwrap();
            let started = Instant::now();
            // Serials unique across runs against one server.
            let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
            let mut tasks = JoinSet::new();
            for i in 0..n {
                if tasks.len() >= 16 {
                    tasks.join_next().await.unwrap().unwrap();
                }
                let serial = format!("FLEET-{run}-{i}");
                tasks.spawn(enroll_one(api.clone(), est.clone(), tls.clone(), key.clone(), serial, dir.clone()));
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
            println!("enrolled={n} seconds={:.1}", started.elapsed().as_secs_f64());
        }
        Some("idle") if args.len() == 7 => {
            let (host, port, ca, dir) = (&args[2], args[3].parse::<u16>().unwrap(), &args[4], &args[5]);
            let pid: u32 = args[6].parse().unwrap();
            let ca = std::fs::read(ca).unwrap();
            let mut ids: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".pem").map(String::from))
                .collect();
            ids.sort();
            let before = rss_kib(pid);
            let started = Instant::now();
            let mut tasks = JoinSet::new();
            let mut held = Vec::with_capacity(ids.len());
            for id in ids {
                if tasks.len() >= 32
                    && let Some(s) = tasks.join_next().await.unwrap().unwrap()
                {
                    held.push(s);
                }
                let cert = std::fs::read(format!("{dir}/{id}.pem")).unwrap();
                let key = std::fs::read(format!("{dir}/{id}.key")).unwrap();
                let tls = client_config(&ca, Some((&cert, &key)));
                let host = host.clone();
                tasks.spawn(async move {
                    let tcp = TcpStream::connect((host.as_str(), port)).await.ok()?;
                    let name = ServerName::try_from(host).unwrap();
                    let mut s = TlsConnector::from(tls).connect(name, tcp).await.ok()?;
                    s.write_all(&connect_packet(&id)).await.ok()?;
                    let mut connack = [0u8; 4];
                    s.read_exact(&mut connack).await.ok()?;
                    (connack == [0x20, 2, 0, 0]).then_some(s)
                });
            }
            while let Some(r) = tasks.join_next().await {
                if let Some(s) = r.unwrap() {
                    held.push(s);
                }
            }
            let connect_secs = started.elapsed().as_secs_f64();
            // Let the broker finish what each CONNECT started (connection facts, allocations).
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = rss_kib(pid);
            let n = held.len().max(1) as u64;
            println!(
                "connections={} connect_seconds={connect_secs:.1} rss_before_kib={before} rss_after_kib={after} \
                 per_connection_kib={:.1}",
                held.len(),
                (after.saturating_sub(before)) as f64 / n as f64
            );
        }
        _ => {
            eprintln!("usage: mqtt_fleet enroll API_URL EST_URL CA_PEM API_KEY N DIR | idle HOST PORT CA_PEM DIR PID");
            std::process::exit(2);
        }
    }
}
