//! Detection end to end: profiles through the API and the config file, the simulator acting out
//! every attack, alerts on the right devices and none on the clean ones, automated response at
//! the device plane, signed webhooks, escalation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use crate::common::{BIN, Backend, Server};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// Alerts as (device, profile/rule) pairs.
async fn alerts(s: &Server, key: &str) -> Vec<Value> {
    let r = s.client.get("/api/v1/alerts?limit=1000", key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

#[tokio::test]
async fn every_attack_of_the_scenario_yields_its_alert_and_clean_devices_none() {
    let profiles = repo("examples/profiles/fleet.toml");
    let env = [("PALISADE_DETECTION_PROFILES_FILE", profiles.to_str().unwrap())];
    let s = Server::start_with(Backend::Sqlite, &env).await;
    let admin = s.api_key("admin");
    let listed = s.client.get("/api/v1/profiles", &admin).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 6, "{listed}");
    assert!(listed.as_array().unwrap().iter().all(|p| p["source"] == "config"), "{listed}");

    // 12 attacked devices (one attack each) and 4 clean ones; 11.7 simulated minutes in 70 s.
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.json");
    let scenario = repo("examples/scenarios/attacks.toml");
    let out = tokio::process::Command::new(BIN)
        .args(["sim", "--server", &format!("https://localhost:{}", s.addr.port()), "--ca"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .args(["--devices", "16", "--duration", "70s", "--interval", "1s", "--speed", "10", "--scenario"])
        .arg(&scenario)
        .arg("--report")
        .arg(&report)
        .env("PALISADE_API_KEY", &admin)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let devices: Vec<String> =
        report["devices"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
    assert_eq!(devices.len(), 16);

    let expected: BTreeMap<&str, &str> = [
        ("exfiltration", "fleet/exfiltration"),
        ("sim_swap", "fleet/sim-swap"),
        ("new_listening_port", "cameras/listening-ports"),
        ("unexpected_destination", "fleet/destinations"),
        ("geofence_breach", "stationary/moved"),
        ("impossible_travel", "fleet/impossible-travel"),
        ("failed_login_burst", "fleet/failed-logins"),
        ("connection_flapping", "fleet/flapping"),
        ("cloned_certificate", "fleet/cloned-certificate"),
        ("going_silent", "fleet/silent"),
        ("firmware_digest_mismatch", "fleet/firmware-integrity"),
        ("firmware_downgrade", "fleet/firmware-downgrade"),
    ]
    .into_iter()
    .collect();
    let attacks = report["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), expected.len(), "{report}");
    let all = alerts(&s, &admin).await;
    let mut by_device: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &all {
        let rule = format!("{}/{}", a["profile"].as_str().unwrap(), a["rule"].as_str().unwrap());
        by_device.entry(a["device_id"].as_str().unwrap().to_owned()).or_default().insert(rule);
    }
    for attack in attacks {
        let (device, kind) = (attack["device"].as_str().unwrap(), attack["kind"].as_str().unwrap());
        let want = expected[kind];
        let got = by_device.get(device).cloned().unwrap_or_default();
        assert!(
            got.contains(want),
            "{kind} on {device}: expected {want}, got {got:?}\nall alerts: {}",
            Value::from(all.clone())
        );
    }
    let attacked: BTreeSet<&str> = attacks.iter().map(|a| a["device"].as_str().unwrap()).collect();
    for clean in devices.iter().filter(|d| !attacked.contains(d.as_str())) {
        assert!(!by_device.contains_key(clean), "clean device {clean} alerted: {:?}", by_device[clean]);
    }
    // The exfiltrating meter's profile says quarantine: it is, and the audit log says why.
    let exfil = attacks.iter().find(|a| a["kind"] == "exfiltration").unwrap()["device"].as_str().unwrap();
    let d = s.client.get(&format!("/api/v1/devices/{exfil}"), &admin).await.json();
    assert_eq!(d["state"], "quarantined", "{d}");
    let audit = s.client.get(&format!("/api/v1/audit?target=device:{exfil}"), &admin).await.json();
    assert!(audit.to_string().contains("alert al_"), "{audit}");
}

/// One HTTP request a receiver got.
#[derive(Debug)]
struct Hook {
    at: Instant,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 webhook receiver on loopback: answers 200 to every request and hands it
/// to the test.
async fn receiver() -> (u16, mpsc::UnboundedReceiver<Hook>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(end) = head_end {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let mut lines = head.lines();
                        let path = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_owned();
                        let headers: BTreeMap<String, String> = lines
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                            .collect();
                        let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = buf[end + 4..end + 4 + len].to_vec();
                            let _ = tx.send(Hook { at: Instant::now(), path, headers, body });
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
    });
    (port, rx)
}

/// Waits (at most `secs`) for a request matching `pred`.
async fn hook(rx: &mut mpsc::UnboundedReceiver<Hook>, secs: u64, pred: impl Fn(&Hook) -> bool) -> Option<Hook> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(h)) if pred(&h) => return Some(h),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// Checks a Standard Webhooks signature: HMAC-SHA256 over "id.timestamp.body".
fn signed(h: &Hook, secret: &str) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let (id, ts) = (&h.headers["webhook-id"], &h.headers["webhook-timestamp"]);
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(&h.body);
    let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key), &msg);
    let want = format!("v1,{}", b64.encode(tag.as_ref()));
    h.headers["webhook-signature"].split(' ').any(|s| s == want)
}

async fn webhook(s: &Server, admin: &str, name: &str, port: u16, path: &str, min_severity: &str) -> String {
    webhook_routed(s, admin, name, port, path, min_severity, true).await
}

async fn webhook_routed(
    s: &Server,
    admin: &str,
    name: &str,
    port: u16,
    path: &str,
    min_severity: &str,
    routed: bool,
) -> String {
    let body = json!({
        "name": name, "kind": "webhook", "min_severity": min_severity, "routed": routed,
        "config": {"url": format!("http://127.0.0.1:{port}{path}")}
    });
    let r = s.client.post("/api/v1/channels", admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["secret"].as_str().unwrap().to_owned()
}

/// An MQTT 3.1.1 session with the device's certificate (rumqttc over TLS 1.3).
pub(crate) fn device_session(s: &Server, dir: &Path, id: &str, cert: &str, key: &str) -> (AsyncClient, EventLoop) {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(s.dir.join("pki/root-ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join(cert)).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(key)).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let mut opts = MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
    opts.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(config))));
    opts.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(opts, 64)
}

/// A meter's report at device time `at_s` (seconds after a start ten minutes ago) with its
/// upload counter.
pub(crate) fn report(at_s: u64, tx_bytes: u64) -> Vec<u8> {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| time::OffsetDateTime::now_utc().unix_timestamp() - 600);
    let at = time::OffsetDateTime::from_unix_timestamp(start + i64::try_from(at_s).unwrap()).unwrap();
    let ts = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    json!({"v": 1, "ts": ts, "net": {"tx_bytes": tx_bytes, "rx_bytes": 0}, "sys": {"boot_id": "b1"}})
        .to_string()
        .into_bytes()
}

/// Publishes and waits for the PUBACK (the report is stored) or for the session to end.
pub(crate) async fn publish_acked(client: &AsyncClient, events: &mut EventLoop, topic: &str, payload: Vec<u8>) -> bool {
    client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn an_exfiltration_spike_quarantines_the_live_session_and_signs_a_webhook_within_a_second() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let (port, mut hooks) = receiver().await;
    let secret = webhook(&s, &admin, "soc", port, "/hook", "high").await;
    let profile = json!({"groups": ["g"], "rules": [{
        "id": "exfil", "kind": "baseline", "metric": "tx_bps", "warmup": 8, "severity": "critical",
        "response": "quarantine"
    }]});
    let r = s.client.put("/api/v1/profiles/meters", &admin, profile).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let tmp = tempfile::tempdir().unwrap();
    let (id, cert, key) = crate::mqtt::enrolled(&s, &admin, tmp.path(), "exfil").await;
    let (client, mut events) = device_session(&s, tmp.path(), &id, &cert, &key);
    let topic = format!("devices/{id}/telemetry");
    // A quiet meter: about 40 bytes a second, one report every 10 s of device time.
    let mut tx = 1_000_000u64;
    for i in 0..12u64 {
        tx += 380 + (i * 37) % 50;
        assert!(publish_acked(&client, &mut events, &topic, report(i * 10, tx)).await, "report {i}");
    }
    // 200 KB/s: the offending publish.
    tx += 2_000_000;
    let sent = Instant::now();
    assert!(publish_acked(&client, &mut events, &topic, report(120, tx)).await);

    let h = hook(&mut hooks, 5, |h| h.path == "/hook").await.expect("no webhook within 5 s");
    let to_webhook = h.at - sent;
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(body["type"], "alert.opened", "{body}");
    assert_eq!((body["data"]["device_id"].as_str(), body["data"]["rule"].as_str()), (Some(id.as_str()), Some("exfil")));
    assert!(signed(&h, &secret), "bad signature: {:?}", h.headers);

    // The live session is restricted: telemetry is refused now (MQTT 3.1.1 closes the session).
    let mut restricted = None;
    for i in 0..50u64 {
        tx += 400;
        if !publish_acked(&client, &mut events, &topic, report(130 + i, tx)).await {
            restricted = Some(sent.elapsed());
            break;
        }
    }
    let restricted = restricted.expect("the session was never restricted");
    println!("publish -> signed webhook {to_webhook:?}, publish -> session restricted {restricted:?}");
    assert!(to_webhook < Duration::from_secs(1), "webhook after {to_webhook:?}");
    assert!(restricted < Duration::from_secs(1), "restricted after {restricted:?}");
    let d = s.client.get(&format!("/api/v1/devices/{id}"), &admin).await.json();
    assert_eq!(d["state"], "quarantined");
    let list = s.client.get(&format!("/api/v1/alerts?device={id}"), &admin).await.json();
    let alert = &list.as_array().unwrap()[0];
    assert_eq!((alert["severity"].as_str(), alert["response"].as_str()), (Some("critical"), Some("quarantine")));
    let detail = s.client.get(&format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()), &admin).await.json();
    let kinds: Vec<&str> = detail["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"opened") && kinds.contains(&"response"), "{detail}");
}

#[tokio::test]
async fn an_unacknowledged_critical_alert_escalates_to_tier_two_and_acknowledging_stops_it() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let (port, mut hooks) = receiver().await;
    webhook(&s, &admin, "tier1", port, "/tier1", "info").await;
    // The pager is never routed to: it hears only what escalates.
    webhook_routed(&s, &admin, "tier2", port, "/tier2", "info", false).await;
    // Tier 1 hears of everything as it opens; tier 2 only of what is still unacknowledged 2 s later.
    let r = s
        .client
        .put(
            "/api/v1/profiles/posture",
            &admin,
            json!({
                "groups": ["g"],
                "escalation": {"min_severity": "critical", "tiers": [
                    {"after_s": 0, "channels": ["tier1"]}, {"after_s": 2, "channels": ["tier2"]}
                ]},
                "rules": [{"id": "debug", "kind": "posture", "severity": "critical"}]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut live = s.client.events("/api/v1/alerts/stream", &admin).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for name in ["ignored", "handled"] {
        let (id, cert, key) = crate::mqtt::enrolled(&s, &admin, tmp.path(), name).await;
        let (client, mut events) = device_session(&s, tmp.path(), &id, &cert, &key);
        let payload = json!({"v": 1, "fw": {"version": "1.0", "debug_enabled": true}}).to_string().into_bytes();
        assert!(publish_acked(&client, &mut events, &format!("devices/{id}/telemetry"), payload).await);
        ids.push(id);
    }
    let alert_of = |id: &str| {
        let (s, admin, id) = (&s, &admin, id.to_owned());
        async move {
            for _ in 0..100 {
                let list = s.client.get(&format!("/api/v1/alerts?device={id}"), admin).await.json();
                if let Some(a) = list.as_array().unwrap().first() {
                    return a["id"].as_str().unwrap().to_owned();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no alert for {id}");
        }
    };
    let (ignored, handled) = (alert_of(&ids[0]).await, alert_of(&ids[1]).await);
    // The live stream told of both as they opened.
    let mut streamed = String::new();
    while !(streamed.contains(&ignored) && streamed.contains(&handled)) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.recv()).await.unwrap().unwrap();
        streamed.push_str(&chunk);
    }
    assert!(streamed.contains("event: alert\ndata: {\"alert\":"), "{streamed}");
    assert!(streamed.contains("\"event\":\"alert.opened\""), "{streamed}");
    let r = s.client.post(&format!("/api/v1/alerts/{handled}/ack"), &admin, json!({"note": "on it"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let acked = r.json();
    assert_eq!(acked["status"], "acknowledged");

    let tier2 = hook(&mut hooks, 10, |h| h.path == "/tier2").await.expect("tier 2 never heard");
    let body: Value = serde_json::from_slice(&tier2.body).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["id"].as_str()), (Some("alert.escalated"), Some(ignored.as_str())));
    // Both alerts fell due for tier 2 in the same pass: the acknowledged one did not escalate.
    let detail = s.client.get(&format!("/api/v1/alerts/{handled}"), &admin).await.json();
    assert_eq!(detail["alert"]["escalation_step"], 1, "{detail}");
    let escalated = s.client.get(&format!("/api/v1/alerts/{ignored}"), &admin).await.json();
    assert_eq!(escalated["alert"]["escalation_step"], 2, "{escalated}");
    // A second acknowledgement is refused; the escalation is in the audit log.
    let again = s.client.post(&format!("/api/v1/alerts/{handled}/ack"), &admin, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let audit = s.client.get(&format!("/api/v1/audit?target=alert:{ignored}"), &admin).await.json();
    assert!(audit.to_string().contains("alert.escalate"), "{audit}");
}

#[tokio::test]
async fn bad_profiles_are_refused_with_the_field_and_the_reason() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let cases = [
        (json!({"rules": [{"id": "x", "kind": "telepathy"}]}), "rules[0].kind: `telepathy` is not a rule kind"),
        (
            json!({"rules": [{"id": "x", "kind": "threshold", "metric": "tx_bps", "op": ">", "value": "lots"}]}),
            "rules[0].value: is required and must be a number",
        ),
        (
            json!({"rules": [{"id": "x", "kind": "membership", "field": "destination", "op": "not_in", "set": ["nope"]}]}),
            "rules[0].set[0]: must be an address or a CIDR block",
        ),
        (json!({"rules": [{"id": "x", "kind": "posture", "sevrity": "high"}]}), "rules[0].sevrity: unknown key"),
        (json!({"name": "other", "rules": []}), "name: must match the name in the path"),
    ];
    for (body, message) in cases {
        let r = s.client.put("/api/v1/profiles/p", &admin, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
        assert!(r.json()["error"]["message"].as_str().unwrap().starts_with(message), "{body}: {}", r.text());
    }
    assert_eq!(s.client.get("/api/v1/profiles", &admin).await.json(), json!([]));
    // An auditor may read alerts but not write profiles.
    let auditor = s.api_key("auditor");
    let r = s.client.put("/api/v1/profiles/p", &auditor, json!({"rules": []})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // A bad profiles file stops the server at start with the file, the profile and the field.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("profiles.toml");
    std::fs::write(
        &file,
        "[[profile]]\nname = \"p\"\n[[profile.rules]]\nid = \"x\"\nkind = \"posture\"\nseverity = \"dire\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--console-addr", "127.0.0.1:0", "--device-https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"])
        .env("PALISADE_DETECTION_PROFILES_FILE", &file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("profile[0].rules[0].severity: `dire` is not one of"), "{err}");
}

#[tokio::test]
async fn learned_state_survives_a_restart() {
    let mut s = Server::start().await;
    let admin = s.api_key("admin");
    let profile = json!({"groups": ["g"], "rules": [{
        "id": "exfil", "kind": "baseline", "metric": "tx_bps", "warmup": 8, "severity": "high"
    }]});
    assert_eq!(s.client.put("/api/v1/profiles/meters", &admin, profile).await.status, StatusCode::OK);
    let tmp = tempfile::tempdir().unwrap();
    let (id, cert, key) = crate::mqtt::enrolled(&s, &admin, tmp.path(), "restart").await;
    let topic = format!("devices/{id}/telemetry");
    let mut tx = 1_000_000u64;
    {
        let (client, mut events) = device_session(&s, tmp.path(), &id, &cert, &key);
        for i in 0..12u64 {
            tx += 400;
            assert!(publish_acked(&client, &mut events, &topic, report(i * 10, tx)).await);
        }
        let _ = client.disconnect().await;
    }
    // The baseline learned before the restart is rebuilt from the stored reports: the first
    // spike after it alarms (a fresh baseline would still be warming up).
    assert!(s.terminate().await.success());
    let dir = s.dir.clone();
    let s2 = Server::start_in(&dir, Backend::Sqlite).await;
    let (client, mut events) = device_session(&s2, tmp.path(), &id, &cert, &key);
    tx += 2_000_000;
    assert!(publish_acked(&client, &mut events, &topic, report(120, tx)).await);
    let mut found = Value::Null;
    for _ in 0..100 {
        found = s2.client.get(&format!("/api/v1/alerts?device={id}"), &admin).await.json();
        if !found.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found[0]["rule"], "exfil", "{found}");
}

/// Facts are committed before detection sees them: if the process dies in between, the alert
/// is raised at the next start. Staged here by storing the facts while no profile watches the
/// device, then adding the profile: the store then holds facts that call for an alert it lacks,
/// which is what such a crash leaves behind.
#[tokio::test]
async fn an_alert_missing_for_stored_facts_is_raised_at_start() {
    let mut s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let (id, cert, key) = crate::mqtt::enrolled(&s, &admin, tmp.path(), "crashed").await;
    let (client, mut events) = device_session(&s, tmp.path(), &id, &cert, &key);
    let telnet = json!({"v": 1, "net": {"listening": [{"proto": "tcp", "port": 23}]}}).to_string().into_bytes();
    assert!(publish_acked(&client, &mut events, &format!("devices/{id}/telemetry"), telnet).await);
    let _ = client.disconnect().await;
    let profile = json!({"groups": ["g"], "rules": [{
        "id": "ports", "kind": "membership", "field": "listening_port", "op": "not_in", "set": [443],
        "severity": "high"
    }]});
    assert_eq!(s.client.put("/api/v1/profiles/ports", &admin, profile).await.status, StatusCode::OK);
    assert_eq!(alerts(&s, &admin).await, Vec::<Value>::new());
    assert!(s.terminate().await.success());
    let s2 = Server::start_in(&s.dir.clone(), Backend::Sqlite).await;
    let mut found = Vec::new();
    for _ in 0..100 {
        found = alerts(&s2, &admin).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0]["device_id"].as_str(), found[0]["rule"].as_str()), (Some(id.as_str()), Some("ports")));
    // Raised once: a second restart finds it recorded.
    let mut s2 = s2;
    assert!(s2.terminate().await.success());
    let s3 = Server::start_in(&s.dir.clone(), Backend::Sqlite).await;
    let after = alerts(&s3, &admin).await;
    assert_eq!((after.len(), after[0]["count"].as_i64()), (1, Some(1)), "{after:?}");
}
