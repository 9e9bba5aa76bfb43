//! The device agent (`palisade agent`) against a real server: enrollment over EST with a token,
//! telemetry over MQTT with mutual TLS, commands, wipe.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use crate::common::{BIN, Server};
use crate::identity::{new_device, token};

fn agent_config(s: &Server, dir: &Path, id: &str) -> std::path::PathBuf {
    let config = format!(
        r#"
[server]
est_url = "https://127.0.0.1:{est}"
mqtt_url = "mqtts://127.0.0.1:{mqtt}"
root_ca = "{root}"

[identity]
device_id = "{id}"
dir = "{state}"
token_file = "{token}"

[telemetry]
interval_secs = 1
spool_max_bytes = 1048576

[facts]
firmware_version = "1.2.3"

[diagnostics]
log_file = "{log}"
log_lines = 2
"#,
        est = s.device_addr.port(),
        mqtt = s.mqtt_addr.port(),
        root = s.dir.join("pki/root-ca.pem").display(),
        state = dir.join("state").display(),
        token = dir.join("token").display(),
        log = dir.join("device.log").display(),
    );
    std::fs::write(dir.join("device.log"), "started\nboot ok\nsensor 3 offline\n").unwrap();
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn spawn_agent(config: &Path, log: &Path) -> tokio::process::Child {
    let log = std::fs::File::create(log).unwrap();
    tokio::process::Command::new(BIN)
        .args(["agent", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Polls `check` every 100 ms for up to 60 s (a loaded machine runs diagnostics slowly).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn command(s: &Server, admin: &str, id: &str, command: &str) -> String {
    let r = s.client.post(&format!("/api/v1/devices/{id}/commands"), admin, json!({"command": command})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn command_state(s: &Server, admin: &str, id: &str, cid: &str) -> (String, serde_json::Value) {
    let all = s.client.get(&format!("/api/v1/devices/{id}/commands"), admin).await.json();
    let c = all.as_array().unwrap().iter().find(|c| c["id"] == cid).unwrap().clone();
    (c["status"].as_str().unwrap().to_owned(), c["result"].clone())
}

#[tokio::test]
async fn agent_enrolls_reports_runs_commands_and_wipes() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let id = new_device(&s, &admin, "agent-1").await;
    std::fs::write(dir.join("token"), token(&s, &admin, &id).await).unwrap();
    let config = agent_config(&s, dir, &id);
    let log = dir.join("agent.log");
    let mut agent = spawn_agent(&config, &log);

    // Enrolled: the key was made on the device (0600) and the device is provisioned.
    let key = dir.join("state/device.key");
    eventually("the agent's certificate", || async { dir.join("state/device.pem").exists() }).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let certs = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json();
    assert_eq!(certs.as_array().unwrap().len(), 1, "{certs}");

    // Its telemetry, collected from this machine's /proc, arrives over MQTT.
    let url = format!("/api/v1/devices/{id}/telemetry/latest");
    eventually("telemetry", || async { s.client.get(&url, &admin).await.status == StatusCode::OK }).await;
    let latest = s.client.get(&url, &admin).await.json();
    let p = &latest["payload"];
    assert_eq!(p["v"], 1, "{latest}");
    assert_eq!(p["fw"]["version"], "1.2.3", "{latest}");
    assert!(p["sys"]["uptime_s"].as_u64().unwrap() > 0, "{latest}");
    assert!(p["net"]["rx_bytes"].is_u64(), "{latest}");
    assert!(latest["seq"].as_i64().unwrap() >= 1);
    let metrics = s.client.send(hyper::Method::GET, "/metrics", None, None).await.text();
    assert!(metrics.contains("palisade_mqtt_sessions 1\n"), "{metrics}");

    // A command runs and its result is recorded.
    let ping = command(&s, &admin, &id, "ping").await;
    eventually("ping done", || async { command_state(&s, &admin, &id, &ping).await.0 == "done" }).await;
    assert_eq!(command_state(&s, &admin, &id, &ping).await.1["detail"], "pong");
    // Diagnostics: processes, sockets and the log's last lines, sent as an event.
    let diag = command(&s, &admin, &id, "collect-diagnostics").await;
    eventually("diagnostics done", || async { command_state(&s, &admin, &id, &diag).await.0 == "done" }).await;
    let sql = "SELECT payload FROM device_messages WHERE device_id = $1 AND kind = 'event'";
    let url_db = format!("sqlite://{}", s.dir.join("palisade.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url_db).await.unwrap();
    let events: Vec<(String,)> = sqlx::query_as(sql).bind(&id).fetch_all(&mut db).await.unwrap();
    let bundle: serde_json::Value = serde_json::from_str(&events.last().unwrap().0).unwrap();
    assert_eq!(bundle["type"], "diagnostics");
    assert_eq!(bundle["command"], diag.as_str());
    assert!(bundle["processes"].as_array().unwrap().iter().any(|p| p["name"] == "palisade"), "{bundle}");
    assert_eq!(bundle["log"], json!(["boot ok", "sensor 3 offline"]));

    // Credential rotation: a new key made on the device and a new certificate through EST
    // `simplereenroll` (authenticated by the current one); reports continue on the new identity.
    let old_key = std::fs::read(&key).unwrap();
    let rotate = command(&s, &admin, &id, "rotate-credentials").await;
    eventually("rotation done", || async { command_state(&s, &admin, &id, &rotate).await.0 == "done" }).await;
    let certs = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json();
    let certs = certs.as_array().unwrap();
    assert_eq!(certs.len(), 2, "{certs:?}");
    assert!(certs.iter().any(|c| c["method"] == "renewal"), "{certs:?}");
    assert_ne!(std::fs::read(&key).unwrap(), old_key, "the key was not replaced");
    let seq_now = s.client.get(&url, &admin).await.json()["seq"].as_i64().unwrap();
    eventually("reports after the rotation", || async {
        s.client.get(&url, &admin).await.json()["seq"].as_i64().unwrap() > seq_now + 1
    })
    .await;

    // Wipe: the agent reports, destroys its key material and stops.
    let wipe = command(&s, &admin, &id, "wipe").await;
    let status =
        tokio::time::timeout(Duration::from_secs(20), agent.wait()).await.expect("agent did not stop").unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap());
    assert_eq!(command_state(&s, &admin, &id, &wipe).await.0, "done");
    assert!(!key.exists() && !dir.join("state/device.pem").exists(), "key material left behind");

    // It cannot come back: no key, and the spent token does not enroll again.
    let again = spawn_agent(&config, &dir.join("again.log")).wait_with_output();
    let out = tokio::time::timeout(Duration::from_secs(20), again).await.expect("agent did not give up").unwrap();
    assert!(!out.status.success());
    let err = std::fs::read_to_string(dir.join("again.log")).unwrap();
    assert!(err.contains("enrollment refused"), "{err}");
    assert!(!key.exists(), "a refused enrollment leaves no key behind");
}

#[tokio::test]
async fn bad_agent_config_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("agent.toml");
    std::fs::write(
        &path,
        "[server]\nest_url = \"https://x:1\"\nmqtt_url = \"mqtts://x:2\"\nroot_ca = \"/r.pem\"\n\
         [identity]\ndevice_id = \"abc\"\ndir = \"/tmp/x\"\ntoken_file = \"/t\"\n[telemetry]\ninterval_secs = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN).args(["agent", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("telemetry.interval_secs"), "{err}");
}

fn seq_file(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join("state/seq")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn telemetry_collected_offline_arrives_in_order_without_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let mut s = Server::start_in(&data, crate::common::Backend::Sqlite).await;
    let admin = s.api_key("admin");
    let id = new_device(&s, &admin, "offline-1").await;
    std::fs::write(dir.join("token"), token(&s, &admin, &id).await).unwrap();
    let config = agent_config(&s, dir, &id);
    let _agent = spawn_agent(&config, &dir.join("agent.log"));
    let url = format!("/api/v1/devices/{id}/telemetry/latest");
    eventually("telemetry", || async { s.client.get(&url, &admin).await.status == StatusCode::OK }).await;

    // The server goes away; the agent keeps collecting (its sequence file advances).
    let mqtt = s.mqtt_addr;
    s.kill9();
    s.child.wait().await.unwrap();
    let offline_from = seq_file(dir);
    eventually("reports collected offline", || async { seq_file(dir) >= offline_from + 4 }).await;

    // Back on the same address: the buffered reports arrive, and nothing is missing.
    let s = Server::start_in_at(&data, crate::common::Backend::Sqlite, mqtt).await;
    let target = seq_file(dir);
    for _ in 0..300 {
        if crate::mqtt::stored_seqs(&s, &id).await.contains(&target) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seqs = crate::mqtt::stored_seqs(&s, &id).await;
    let max = *seqs.iter().max().unwrap();
    assert!(max >= target, "report {target} never arrived: {seqs:?}");
    let missing: Vec<i64> = (1..=max).filter(|n| !seqs.contains(n)).collect();
    assert!(missing.is_empty(), "gaps in seq: {missing:?}");
    // In order: by device time, the reports were stored in seq order.
    let latest = s.client.get(&url, &admin).await.json();
    assert!(latest["seq"].as_i64().unwrap() >= target);
}

#[tokio::test]
async fn an_unreachable_server_is_retried_with_backoff_not_a_tight_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.join("token"), "t").unwrap();
    std::fs::write(dir.join("root.pem"), "").unwrap();
    let config = format!(
        "[server]\nest_url = \"https://127.0.0.1:{port}\"\nmqtt_url = \"mqtts://127.0.0.1:{port}\"\n\
         root_ca = \"{root}\"\n[identity]\ndevice_id = \"abc\"\ndir = \"{state}\"\ntoken_file = \"{token}\"\n",
        root = dir.join("root.pem").display(),
        state = dir.join("state").display(),
        token = dir.join("token").display(),
    );
    std::fs::write(dir.join("agent.toml"), config).unwrap();
    let log = dir.join("agent.log");
    let mut agent = spawn_agent(&dir.join("agent.toml"), &log);
    // Observe 3.5 s of retrying: waits of 0.5–1 s, 1–2 s, 2–4 s… give three or four attempts.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(agent.try_wait().unwrap().is_none(), "the agent gave up: {}", std::fs::read_to_string(&log).unwrap());
    agent.kill().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let retries = text.matches("retrying").count();
    assert!((2..=5).contains(&retries), "{retries} retries in 3.5 s:\n{text}");
    assert!(text.contains("cannot reach"), "{text}");
}

/// Zero-touch: the agent enrolls with the certificate its manufacturer installed; Palisade finds
/// the device by serial, and the agent learns its id from the certificate it is issued.
#[tokio::test]
async fn agent_enrolls_with_a_factory_certificate() {
    use crate::identity::self_signed;
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    self_signed(
        dir,
        "factory-ca",
        "/CN=acme factory CA",
        &["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    std::fs::write(dir.join("ext.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    crate::identity::issue_with_openssl(dir, "factory-ca", "factory", "/CN=meter/serialNumber=FAC-A1", "ext.cnf");
    let ca_pem = std::fs::read_to_string(dir.join("factory-ca.pem")).unwrap();
    let r = s
        .client
        .post("/api/v1/manufacturers", &admin, json!({"vendor": "acme", "model": "meter-3", "ca_pem": ca_pem}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let serials = "vendor,model,serial\nacme,meter-3,FAC-A1\n".as_bytes().to_vec();
    let r = s
        .client
        .send(hyper::Method::POST, "/api/v1/manufacturers/serials", Some(&admin), Some(("text/csv", serials)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = new_device(&s, &admin, "FAC-A1").await;

    // No device id and no token in the configuration: only the factory identity.
    let config = std::fs::read_to_string(agent_config(&s, dir, &id)).unwrap();
    let config = config.replace(&format!("device_id = \"{id}\"\n"), "").replace(
        &format!("token_file = \"{}\"", dir.join("token").display()),
        &format!(
            "factory_cert = \"{}\"\nfactory_key = \"{}\"",
            dir.join("factory.pem").display(),
            dir.join("factory.key").display()
        ),
    );
    assert!(!config.contains("token_file") && !config.contains("device_id"), "{config}");
    std::fs::write(dir.join("agent.toml"), config).unwrap();
    let _agent = spawn_agent(&dir.join("agent.toml"), &dir.join("agent.log"));
    let url = format!("/api/v1/devices/{id}/telemetry/latest");
    eventually("telemetry from the zero-touch device", || async {
        s.client.get(&url, &admin).await.status == StatusCode::OK
    })
    .await;
    let certs = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json();
    assert_eq!(certs[0]["method"], "factory", "{certs}");
}
