//! The device plane with real MQTT clients (`mosquitto_pub`, `mosquitto_sub`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use crate::common::Server;
use crate::identity::{Est, new_device, p256_csr, token};

/// Enrolls a new device over EST; returns (device id, cert file, key file) in `dir`.
pub(crate) async fn enrolled(s: &Server, admin: &str, dir: &Path, name: &str) -> (String, String, String) {
    let id = new_device(s, admin, name).await;
    let tok = token(s, admin, &id).await;
    let est = Est { s, dir: dir.to_owned() };
    let (key, csr) = p256_csr(dir, name);
    let (code, body) = est.enroll("simpleenroll", &csr, &["-u", &format!("{id}:{tok}")], &format!("{name}.b64"));
    assert_eq!(code, 200, "{body}");
    let pem = format!("{name}.pem");
    est.certs_pem(&format!("{name}.b64"), &pem);
    (id, pem, key)
}

fn mosquitto(s: &Server, dir: &Path, tool: &str, cert: &str, key: &str, client_id: &str, args: &[&str]) -> Command {
    let mut c = Command::new(tool);
    c.current_dir(dir)
        .args(["-h", "127.0.0.1", "-p", &s.mqtt_addr.port().to_string(), "--tls-version", "tlsv1.3", "--cafile"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .args(["--cert", cert, "--key", key, "-i", client_id])
        .args(args);
    c
}

fn publish(s: &Server, dir: &Path, cert: &str, key: &str, id: &str, topic: &str, payload: &str) -> bool {
    let out =
        mosquitto(s, dir, "mosquitto_pub", cert, key, id, &["-t", topic, "-q", "1", "-m", payload]).output().unwrap();
    out.status.success()
}

async fn findings_of(s: &Server, admin: &str, kind: &str, id: &str) -> usize {
    let f = s.client.get("/api/v1/findings", admin).await.json();
    f.as_array().unwrap().iter().filter(|x| x["kind"] == kind && x["device_id"] == id).count()
}

/// Milliseconds from `since_ms` until the server records the device's session as ended.
async fn disconnect_delay(s: &Server, id: &str, since_ms: i64) -> Option<i64> {
    connection_event(s, id, "disconnected", since_ms).await.map(|at| at - since_ms)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The first connection fact of `event` for the device at or after `since_ms`, polled for up
/// to 3 s.
async fn connection_event(s: &Server, id: &str, event: &str, since_ms: i64) -> Option<i64> {
    let url = format!("sqlite://{}", s.dir.join("palisade.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    for _ in 0..150 {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT at_ms FROM device_connections WHERE device_id = $1 AND event = $2 AND at_ms >= $3 ORDER BY at_ms LIMIT 1",
        )
        .bind(id)
        .bind(event)
        .bind(since_ms)
        .fetch_optional(&mut db)
        .await
        .unwrap();
        if let Some((at,)) = row {
            return Some(at);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Starts a subscriber on the device's commands topic and waits until its session is live.
async fn subscriber(s: &Server, dir: &Path, cert: &str, key: &str, id: &str) -> std::process::Child {
    let topic = format!("devices/{id}/commands");
    let since = now_ms();
    let child = mosquitto(s, dir, "mosquitto_sub", cert, key, id, &["-t", &topic, "-q", "1", "-k", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    connection_event(s, id, "connected", since).await.expect("the subscriber never connected");
    child
}

#[tokio::test]
async fn mosquitto_clients_publish_telemetry_and_the_topic_contract_holds() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id, cert, key) = enrolled(&s, &admin, dir, "m1").await;

    let topic = format!("devices/{id}/telemetry");
    assert!(publish(&s, dir, &cert, &key, &id, &topic, r#"{"v":1,"seq":7,"net":{"tx_bytes":1234,"rx_bytes":99}}"#));
    let latest = s.client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &admin).await;
    assert_eq!(latest.status, StatusCode::OK, "{}", latest.text());
    assert_eq!(latest.json()["seq"], 7);
    assert_eq!(latest.json()["payload"]["net"]["tx_bytes"], 1234);

    // Another device's topic: the session is cut and the attempt recorded.
    let (other, _, _) = enrolled(&s, &admin, dir, "m2").await;
    publish(&s, dir, &cert, &key, &id, &format!("devices/{other}/telemetry"), r#"{"v":1}"#);
    assert_eq!(findings_of(&s, &admin, "acl_violation", &id).await, 1);
    mosquitto(&s, dir, "mosquitto_sub", &cert, &key, &id, &["-t", "devices/#", "-C", "1", "-W", "2"]).output().unwrap();
    assert_eq!(
        findings_of(&s, &admin, "acl_violation", &id).await,
        2,
        "a wildcard subscription is refused and recorded"
    );
    // A client id other than the device id.
    assert!(!publish(&s, dir, &cert, &key, "impostor", &topic, r#"{"v":1}"#));
    assert_eq!(findings_of(&s, &admin, "mqtt_refused", &id).await, 1);
    // Malformed telemetry is refused (counted), not stored.
    publish(&s, dir, &cert, &key, &id, &topic, "not json at all");
    assert_eq!(s.client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &admin).await.json()["seq"], 7);
    let metrics = s.client.send(hyper::Method::GET, "/metrics", None, None).await.text();
    assert!(metrics.contains("reason=\"malformed_json\""), "{metrics}");
    // Another CA's certificate does not get past the handshake.
    crate::identity::self_signed(dir, "self", &format!("/CN={id}"), &[]);
    assert!(!publish(&s, dir, "self.pem", "self.key", &id, &topic, r#"{"v":1}"#));
}

#[tokio::test]
async fn revocation_pause_and_quarantine_reach_live_sessions_at_once() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id, cert, key) = enrolled(&s, &admin, dir, "live").await;
    s.client.post(&format!("/api/v1/devices/{id}/lifecycle"), &admin, json!({"to": "active"})).await;

    // Quarantine restricts the live session at once; release restores it.
    let mut sub = subscriber(&s, dir, &cert, &key, &id).await;
    let r = s.client.post(&format!("/api/v1/devices/{id}/quarantine"), &admin, json!({"reason": "test"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        publish(&s, dir, &cert, &key, &id, &format!("devices/{id}/events"), r#"{"type":"boot"}"#),
        "events still flow"
    );
    publish(&s, dir, &cert, &key, &id, &format!("devices/{id}/telemetry"), r#"{"v":1,"seq":1}"#);
    assert_eq!(
        findings_of(&s, &admin, "acl_violation", &id).await,
        1,
        "telemetry from a quarantined device is refused"
    );
    s.client.post(&format!("/api/v1/devices/{id}/release"), &admin, json!({})).await;
    assert!(publish(&s, dir, &cert, &key, &id, &format!("devices/{id}/telemetry"), r#"{"v":1,"seq":2}"#));

    // Pause closes the live session within a second. (One subscriber at a time: two clients
    // with one id would take the session from each other.)
    let _ = sub.kill();
    let _ = sub.wait();
    sub = subscriber(&s, dir, &cert, &key, &id).await;
    let t0 = now_ms();
    s.client.post(&format!("/api/v1/devices/{id}/pause"), &admin, json!({})).await;
    let delay = disconnect_delay(&s, &id, t0).await.expect("the paused session was not closed");
    assert!(delay <= 1000, "paused session closed after {delay} ms");
    let _ = sub.kill();
    assert!(
        !publish(&s, dir, &cert, &key, &id, &format!("devices/{id}/events"), "{}"),
        "a paused device is not admitted"
    );
    s.client.post(&format!("/api/v1/devices/{id}/release"), &admin, json!({})).await;

    // Revoking the certificate closes the live session within a second, and new handshakes fail.
    let mut sub = subscriber(&s, dir, &cert, &key, &id).await;
    let serial = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json()[0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let t0 = now_ms();
    let r = s
        .client
        .post(&format!("/api/v1/certificates/{serial}/revoke"), &admin, json!({"reason": "key_compromise"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let delay = disconnect_delay(&s, &id, t0).await.expect("the revoked session was not closed");
    assert!(delay <= 1000, "revoked session closed after {delay} ms");
    let _ = sub.kill();
    assert!(
        !publish(&s, dir, &cert, &key, &id, &format!("devices/{id}/events"), "{}"),
        "the revoked certificate fails the handshake"
    );
}

#[tokio::test]
async fn mqtt_5_clients_get_reason_codes() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id, cert, key) = enrolled(&s, &admin, dir, "v5").await;
    let topic = format!("devices/{id}/telemetry");
    let pub5 = |topic: &str, payload: &str| {
        mosquitto(&s, dir, "mosquitto_pub", &cert, &key, &id, &["-V", "mqttv5", "-t", topic, "-q", "1", "-m", payload])
            .output()
            .unwrap()
    };
    let out = pub5(&topic, r#"{"v":1,"seq":11}"#);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &admin).await.json()["seq"], 11);
    // Malformed telemetry: PUBACK with reason 0x99 (payload format invalid).
    let out = pub5(&topic, "{not json");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("payload format invalid"), "{err}");
    // Another device's topic: PUBACK with reason 0x87 (not authorized), recorded.
    let out = pub5("devices/0000000000000000000z/telemetry", r#"{"v":1}"#);
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("not authorized"), "{err}");
    assert_eq!(findings_of(&s, &admin, "acl_violation", &id).await, 1);
    // A client id that is not the device id: CONNACK "client identifier not valid".
    let out = mosquitto(
        &s,
        dir,
        "mosquitto_pub",
        &cert,
        &key,
        "impostor",
        &["-V", "mqttv5", "-t", &topic, "-q", "1", "-m", "{}"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("client identifier not valid"), "{err}");
}

/// Waits (bounded) for a command's status in the API.
async fn command_status(s: &Server, admin: &str, id: &str, cid: &str, want: &str) -> bool {
    for _ in 0..150 {
        let list = s.client.get(&format!("/api/v1/devices/{id}/commands"), admin).await.json();
        if list.as_array().unwrap().iter().any(|c| c["id"] == cid && c["status"] == want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn commands_are_delivered_from_a_persistent_outbox_and_results_recorded() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id, cert, key) = enrolled(&s, &admin, dir, "cmd").await;
    let topic = format!("devices/{id}/commands");

    // Queued while the device is offline…
    let r = s.client.post(&format!("/api/v1/devices/{id}/commands"), &admin, json!({"command": "reboot"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let reboot = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["status"], "queued");
    let r = s.client.post(&format!("/api/v1/devices/{id}/commands"), &admin, json!({"command": "self-destruct"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // …is delivered when it subscribes.
    let out = mosquitto(&s, dir, "mosquitto_sub", &cert, &key, &id, &["-t", &topic, "-q", "1", "-C", "1", "-W", "10"])
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((got["id"].as_str(), got["command"].as_str()), (Some(reboot.as_str()), Some("reboot")));
    assert!(command_status(&s, &admin, &id, &reboot, "delivered").await);
    // The device answers on commands/result.
    let result = json!({"id": reboot, "status": "done", "output": "rebooting"}).to_string();
    assert!(publish(&s, dir, &cert, &key, &id, &format!("devices/{id}/commands/result"), &result));
    assert!(command_status(&s, &admin, &id, &reboot, "done").await);

    // A live subscriber gets a new command at once; decommission sends `wipe`, then closes.
    let file = dir.join("received.txt");
    let mut sub = mosquitto(&s, dir, "mosquitto_sub", &cert, &key, &id, &["-t", &topic, "-q", "1"])
        .stdout(std::fs::File::create(&file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let since = now_ms();
    connection_event(&s, &id, "connected", since).await.unwrap();
    let r = s.client.post(&format!("/api/v1/devices/{id}/commands"), &admin, json!({"command": "ping"})).await;
    let ping = r.json()["id"].as_str().unwrap().to_owned();
    assert!(command_status(&s, &admin, &id, &ping, "delivered").await, "a live session gets the command at once");
    let r = s.client.post(&format!("/api/v1/devices/{id}/decommission"), &admin, json!({"reason": "stolen"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = s.client.get(&format!("/api/v1/devices/{id}/commands"), &admin).await.json();
    let wipe =
        list.as_array().unwrap().iter().find(|c| c["command"] == "wipe").unwrap()["id"].as_str().unwrap().to_owned();
    assert!(
        command_status(&s, &admin, &id, &wipe, "sent").await
            || command_status(&s, &admin, &id, &wipe, "delivered").await
    );
    connection_event(&s, &id, "disconnected", since).await.expect("the decommissioned session was closed");
    let _ = sub.kill();
    let _ = sub.wait();
    let received = std::fs::read_to_string(&file).unwrap();
    assert!(received.contains("\"ping\"") && received.contains("\"wipe\""), "{received}");
}

/// Every sequence number stored for the device, read behind the server's back.
pub(crate) async fn stored_seqs(s: &Server, id: &str) -> std::collections::HashSet<i64> {
    let sql = "SELECT seq FROM device_messages WHERE device_id = $1 AND kind = 'telemetry' AND seq IS NOT NULL";
    let rows: Vec<(i64,)> = match &s.backend {
        crate::common::Backend::Sqlite => {
            let url = format!("sqlite://{}", s.dir.join("palisade.db").display());
            let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
            sqlx::query_as(sql).bind(id).fetch_all(&mut db).await.unwrap()
        }
        crate::common::Backend::Postgres(url) => {
            let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
            sqlx::query_as(sql).bind(id).fetch_all(&mut db).await.unwrap()
        }
    };
    rows.into_iter().map(|r| r.0).collect()
}

/// QoS 1 publishers (one `mosquitto_pub` per message: it exits 0 only after the PUBACK) until the
/// server is killed with SIGKILL; every acknowledged sequence number must be stored.
async fn pubacked_telemetry_survives_kill_9(backend: &str) {
    let Some(backend) = crate::common::Backend::named(backend).await else { return };
    let mut s = Server::start_on(backend).await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    // One publisher per device: a device has one session at a time (a second one takes over).
    let mut devices = Vec::new();
    for w in 0..4 {
        devices.push(enrolled(&s, &admin, &dir, &format!("storm{w}")).await);
    }
    let acked: std::sync::Arc<std::sync::Mutex<Vec<(String, i64)>>> = std::sync::Arc::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for (w, (id, cert, key)) in devices.iter().cloned().enumerate() {
        let w = w as i64;
        let (acked, stop, dir) = (acked.clone(), stop.clone(), dir.clone());
        let (port, ca) = (s.mqtt_addr.port(), s.dir.join("pki/root-ca.pem"));
        workers.push(std::thread::spawn(move || {
            for n in 0..100_000i64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let seq = w * 1_000_000 + n;
                // A publisher caught mid-publish by the kill would retry forever: bound it.
                let ok = Command::new("timeout")
                    .current_dir(&dir)
                    .args([
                        "5",
                        "mosquitto_pub",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "--tls-version",
                        "tlsv1.3",
                        "--cafile",
                    ])
                    .arg(&ca)
                    .args(["--cert", &cert, "--key", &key, "-i", &id, "-q", "1"])
                    .args(["-t", &format!("devices/{id}/telemetry"), "-m", &format!(r#"{{"v":1,"seq":{seq}}}"#)])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|st| st.success());
                if ok {
                    acked.lock().unwrap().push((id.clone(), seq));
                }
            }
        }));
    }
    for _ in 0..3000 {
        if acked.lock().unwrap().len() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.kill9();
    s.child.wait().await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60, "only {} publishes acknowledged", acked.len());
    let (dir2, backend2) = (s.dir.clone(), s.backend.clone());
    let s2 = Server::start_in(&dir2, backend2).await;
    let mut stored = std::collections::HashSet::new();
    for (id, _, _) in &devices {
        stored.extend(stored_seqs(&s2, id).await.into_iter().map(|q| (id.clone(), q)));
    }
    let lost: Vec<&(String, i64)> = acked.iter().filter(|q| !stored.contains(*q)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

mod storm {
    #[tokio::test]
    async fn sqlite_pubacked_telemetry_survives_kill_9() {
        super::pubacked_telemetry_survives_kill_9("sqlite").await
    }
    #[tokio::test]
    async fn postgres_pubacked_telemetry_survives_kill_9() {
        super::pubacked_telemetry_survives_kill_9("postgres").await
    }
}

#[tokio::test]
async fn telemetry_rates_series_and_connection_history() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id, cert, key) = enrolled(&s, &admin, dir, "series").await;
    let topic = format!("devices/{id}/telemetry");
    // Five reports 10 s apart (device time), one mosquitto_pub connection each: the counters of
    // the previous report come from the store. The fourth follows a reboot (new boot id,
    // counters small again): no rate, not a negative spike.
    let base = now_ms() / 1000 - 120;
    let reports = [("b1", 1_000, 0), ("b1", 11_000, 10), ("b1", 21_000, 20), ("b2", 500, 30), ("b2", 10_500, 40)];
    for (seq, (boot, tx, dt)) in reports.iter().enumerate() {
        let ts = time::OffsetDateTime::from_unix_timestamp(base + dt)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = json!({"v": 1, "seq": seq, "ts": ts, "net": {"tx_bytes": tx, "rx_bytes": 0},
            "sys": {"boot_id": boot, "cpu_pct": 10.0 * (seq as f64 + 1.0)}});
        assert!(publish(&s, dir, &cert, &key, &id, &topic, &body.to_string()));
    }
    let window = |metric: &str, points: u32| {
        let from = time::OffsetDateTime::from_unix_timestamp(base - 60).unwrap();
        let to = time::OffsetDateTime::from_unix_timestamp(base + 60).unwrap();
        let f = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
        format!("/api/v1/devices/{id}/telemetry?metric={metric}&from={}&to={}&points={points}", f(from), f(to))
    };
    // One bucket over the whole window: three rates (reports 2, 3 and 5), all 1,000 B/s.
    let r = s.client.get(&window("tx_bps", 1), &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let points = r.json()["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0]["count"], 3, "no rate across the reboot: {points:?}");
    assert_eq!(points[0]["min"], 1000.0);
    assert_eq!(points[0]["max"], 1000.0);
    // One-second buckets: each report in its own bucket, empty buckets left out.
    let r = s.client.get(&window("cpu_pct", 120), &admin).await.json();
    assert_eq!(r["bucket_ms"], 1000);
    let cpu: Vec<f64> = r["points"].as_array().unwrap().iter().map(|p| p["avg"].as_f64().unwrap()).collect();
    assert_eq!(cpu, [10.0, 20.0, 30.0, 40.0, 50.0]);
    // Ten-second buckets hold one report each; 60-second buckets average several.
    let r = s.client.get(&window("tx_bytes", 2), &admin).await.json();
    let counts: i64 = r["points"].as_array().unwrap().iter().map(|p| p["count"].as_i64().unwrap()).sum();
    assert_eq!(counts, 5);
    // Bad requests say which field is wrong.
    let r = s.client.get(&format!("/api/v1/devices/{id}/telemetry?metric=temperature"), &admin).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("metric"), "{}", r.text());
    let r = s.client.get(&format!("/api/v1/devices/{id}/telemetry?metric=tx_bps&points=0"), &admin).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());

    // Connection history: every publish above was one session, with its TLS facts and duration.
    // (A disconnect is recorded after the client has gone: poll until the last one is in, ≤ 3 s.)
    let history = format!("/api/v1/devices/{id}/connections?limit=1000");
    let mut h = serde_json::Value::Null;
    for _ in 0..150 {
        let r = s.client.get(&history, &admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        h = r.json();
        if h.as_array().unwrap().iter().filter(|e| e["event"] == "disconnected").count() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = h.as_array().unwrap();
    let connected: Vec<_> = events.iter().filter(|e| e["event"] == "connected").collect();
    assert_eq!(connected.len(), 5, "{events:?}");
    for e in &connected {
        assert_eq!(e["tls_version"], "TLSv1_3", "{e}");
        assert!(e["cipher"].as_str().unwrap().starts_with("TLS13_"), "{e}");
        assert_eq!(e["source_ip"], "127.0.0.1");
    }
    let disconnected: Vec<_> = events.iter().filter(|e| e["event"] == "disconnected").collect();
    assert_eq!(disconnected.len(), 5, "{events:?}");
    assert!(
        disconnected.iter().all(|e| e["duration_ms"].as_i64().unwrap() >= 0 && e["detail"] == "client disconnected")
    );

    // A refused handshake (another CA) is stored too, for detection, with its source address.
    crate::identity::self_signed(dir, "stranger", &format!("/CN={id}"), &[]);
    assert!(!publish(&s, dir, "stranger.pem", "stranger.key", &id, &topic, r#"{"v":1}"#));
    let url = format!("sqlite://{}", s.dir.join("palisade.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    // The server records it after the client has given up: poll for it (up to 3 s).
    let mut refused: Vec<(String, Option<String>)> = Vec::new();
    for _ in 0..150 {
        refused = sqlx::query_as(
            "SELECT source_ip, detail FROM device_connections WHERE device_id = '-' AND event = 'refused'",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "127.0.0.1");
    assert!(refused[0].1.as_deref().unwrap().starts_with("TLS handshake"), "{refused:?}");
}

/// paho-mqtt (Debian `python3-paho-mqtt`), MQTT 3.1.1 and 5: telemetry is acknowledged and
/// stored, the commands topic is granted, `devices/#` refused.
#[tokio::test]
async fn paho_mqtt_devices_interoperate() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id, cert, key) = enrolled(&s, &admin, dir, "paho").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/paho_device.py");
    // The Debian package installs into the system interpreter (another python3 may come first
    // on PATH, e.g. from pyenv).
    let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    for (version, seq) in [("3.1.1", "1"), ("5", "2")] {
        let out = Command::new(python)
            .current_dir(dir)
            .arg(&script)
            .args(["127.0.0.1", &s.mqtt_addr.port().to_string()])
            .arg(s.dir.join("pki/root-ca.pem"))
            .args([&cert, &key, &id, version, seq])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "paho {version}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(r["telemetry_acked"], true, "{r}");
        assert_eq!(r["commands_granted"], json!([1]), "{r}");
        // MQTT 3.1.1 SUBACK failure is 0x80; MQTT 5 says "not authorized" (0x87).
        let refused = if version == "5" { 0x87 } else { 0x80 };
        assert_eq!(r["wildcard_granted"], json!([refused]), "{r}");
        let latest = s.client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &admin).await.json();
        assert_eq!(latest["seq"].to_string(), seq, "{latest}");
    }
    assert_eq!(findings_of(&s, &admin, "acl_violation", &id).await, 2);
}
