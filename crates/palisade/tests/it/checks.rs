//! Fleet audit checks through the API: devices without owner, outdated firmware (registered and
//! reported over MQTT), accounts missing a required MFA, silent devices, failing notification
//! channels; each recorded once however often the checks run, and run only by those allowed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, Server, device};
use crate::mqtt::enrolled;

const DAY_MS: i64 = 86_400_000;

/// Registers a device from `device()` with some fields replaced (`null` removes one).
async fn register(s: &Server, key: &str, serial: &str, fields: Value) -> String {
    let mut body = device(serial, "low", "g");
    for (k, v) in fields.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    let r = s.client.post("/api/v1/devices", key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Publishes one telemetry report at QoS 1 (`mosquitto_pub` exits once it is acknowledged, and the
/// server acknowledges only what is stored).
fn publish_telemetry(s: &Server, dir: &Path, cert: &str, key: &str, id: &str, payload: &str) {
    let out = Command::new("mosquitto_pub")
        .current_dir(dir)
        .args(["-h", "127.0.0.1", "-p", &s.mqtt_addr.port().to_string(), "--tls-version", "tlsv1.3", "--cafile"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .args(["--cert", cert, "--key", key, "-i", id, "-q", "1", "-t", &format!("devices/{id}/telemetry")])
        .args(["-m", payload])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn run_checks(s: &Server, key: &str) -> Vec<Value> {
    let r = s.client.post("/api/v1/audit-checks", key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

fn of<'a>(found: &'a [Value], kind: &str, device: Option<&str>) -> Vec<&'a Value> {
    found.iter().filter(|f| f["kind"] == kind && device.is_none_or(|d| f["device_id"] == d)).collect()
}

async fn findings(s: &Server, key: &str, kind: &str) -> Vec<Value> {
    let r = s.client.get(&format!("/api/v1/findings?kind={kind}"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let list = r.json().as_array().unwrap().clone();
    assert!(list.iter().all(|f| f["kind"] == kind), "{list:?}");
    list
}

async fn owners_firmware_and_mfa_are_reported_once(backend: &str) {
    let Some(backend) = Backend::named(backend).await else {
        return;
    };
    let s = Server::start_on(backend).await;
    let admin = s.api_key("admin");
    let ownerless = register(&s, &admin, "CHK-NOBODY", json!({"owner": null})).await;
    let old = register(&s, &admin, "CHK-OLD", json!({"model": "gateway-7", "firmware_version": "1.9.3"})).await;
    let new = register(&s, &admin, "CHK-NEW", json!({"model": "gateway-7", "firmware_version": "1.10.0"})).await;
    // A meter registered with 1.4.2 reports 1.4.10: what it runs counts, and sets the bar.
    let tmp = tempfile::tempdir().unwrap();
    let (meter, cert, key) = enrolled(&s, &admin, tmp.path(), "CHK-METER").await;
    let report = r#"{"v":1,"seq":1,"fw":{"version":"1.4.10","digest":"sha256:00"}}"#;
    publish_telemetry(&s, tmp.path(), &cert, &key, &meter, report);
    for (name, role) in [("carol", "security-analyst"), ("dave", "operator")] {
        let r = s.client.post("/api/v1/users", &admin, json!({"username": name, "roles": [{"role": role}]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }

    let first = run_checks(&s, &admin).await;
    assert_eq!(of(&first, "no_owner", Some(&ownerless)).len(), 1, "{first:?}");
    assert!(of(&first, "no_owner", None).len() == 1, "only the device without owner: {first:?}");
    let outdated = of(&first, "outdated_firmware", Some(&old));
    assert_eq!(outdated.len(), 1, "{first:?}");
    let detail = outdated[0]["detail"].as_str().unwrap();
    assert!(detail.contains("1.9.3") && detail.contains("current version") && detail.contains("1.10.0"), "{detail}");
    assert!(of(&first, "outdated_firmware", Some(&new)).is_empty(), "{first:?}");
    assert!(of(&first, "outdated_firmware", Some(&meter)).is_empty(), "the reported 1.4.10 is current: {first:?}");
    let behind = of(&first, "outdated_firmware", Some(&ownerless));
    assert!(behind.len() == 1 && behind[0]["detail"].as_str().unwrap().contains("1.4.10"), "{first:?}");
    let mfa: Vec<&str> = of(&first, "mfa_missing", None).iter().map(|f| f["detail"].as_str().unwrap()).collect();
    assert!(mfa.iter().any(|d| d.contains("user carol ")), "{mfa:?}");
    assert!(!mfa.iter().any(|d| d.contains("user dave ")), "an operator needs no MFA: {mfa:?}");
    assert!(first.iter().all(|f| !f["id"].as_str().unwrap().is_empty()), "{first:?}");
    assert!(of(&first, "inactive_not_decommissioned", None).is_empty(), "all registered just now: {first:?}");

    // Again (as the hourly run would): nothing new is recorded, the earlier records come back.
    let second = run_checks(&s, &admin).await;
    let ids = |found: &[Value]| {
        let mut ids: Vec<String> = found.iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&second), ids(&first));
    let stored = findings(&s, &admin, "no_owner").await;
    assert_eq!(stored.iter().filter(|f| f["device_id"] == ownerless.as_str()).count(), 1, "{stored:?}");
    let stored = findings(&s, &admin, "mfa_missing").await;
    assert_eq!(stored.iter().filter(|f| f["detail"].as_str().unwrap().contains("user carol ")).count(), 1);
    assert_eq!(findings(&s, &admin, "outdated_firmware").await.len(), 2);
    assert_eq!(s.client.get("/api/v1/findings?kinds=x", &admin).await.status, StatusCode::BAD_REQUEST);

    // The certificate audit still answers on its own route.
    let r = s.client.post("/api/v1/pki/audit", &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Running the checks takes system.manage; reading findings does not.
    for role in ["security-analyst", "operator", "auditor"] {
        let key = s.api_key(role);
        let r = s.client.post("/api/v1/audit-checks", &key, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {}", r.text());
    }
    let auditor = s.api_key("auditor");
    assert_eq!(s.client.get("/api/v1/findings?kind=no_owner", &auditor).await.status, StatusCode::OK);
}

mod sqlite {
    #[tokio::test]
    async fn owners_firmware_and_mfa_are_reported_once() {
        super::owners_firmware_and_mfa_are_reported_once("sqlite").await
    }
}

mod postgres {
    #[tokio::test]
    async fn owners_firmware_and_mfa_are_reported_once() {
        super::owners_firmware_and_mfa_are_reported_once("postgres").await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn silent_devices_and_failing_channels_are_reported() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let quiet = register(&s, &admin, "CHK-QUIET", json!({})).await;
    let retired = register(&s, &admin, "CHK-RETIRED", json!({"owner": null})).await;
    let r = s.client.post(&format!("/api/v1/devices/{retired}/decommission"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Both were registered 40 days ago, as far as the database knows.
    let url = format!("sqlite://{}", s.dir.join("palisade.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("UPDATE devices SET created_ms = $1").bind(now_ms() - 40 * DAY_MS).execute(&mut db).await.unwrap();

    // A channel nobody listens to, giving up after one attempt.
    let config =
        json!({"url": format!("http://127.0.0.1:{}/hook", closed_port()), "max_attempts": 1, "retry_base_ms": 10});
    let r = s
        .client
        .post("/api/v1/channels", &admin, json!({"name": "dead-end", "kind": "webhook", "config": config}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = s.client.post("/api/v1/channels/dead-end/test", &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let delivery = r.json()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dead = s.client.get("/api/v1/deliveries?status=dead", &admin).await.json();
        if dead.as_array().unwrap().iter().any(|d| d["id"] == delivery.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the delivery never dead-lettered: {dead}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let found = run_checks(&s, &admin).await;
    let silent = of(&found, "inactive_not_decommissioned", Some(&quiet));
    assert!(silent.len() == 1 && silent[0]["detail"].as_str().unwrap().contains("never reported"), "{found:?}");
    assert!(found.iter().all(|f| f["device_id"] != retired.as_str()), "decommissioned devices are left alone");
    let failing = of(&found, "failing_channel", None);
    assert_eq!(failing.len(), 1, "{found:?}");
    let detail = failing[0]["detail"].as_str().unwrap();
    assert!(detail.contains("dead-end") && detail.contains("dead-lettered"), "{detail}");
    run_checks(&s, &admin).await;
    assert_eq!(findings(&s, &admin, "failing_channel").await.len(), 1);
    assert_eq!(findings(&s, &admin, "inactive_not_decommissioned").await.len(), 1);
}
