//! Staged rollouts end to end: 1,000 simulated devices (`palisade sim`, each running the real
//! updater over the device listener) take a three-phase rollout per model; then an image whose
//! health check fails on a third of the meters halts its rollout in phase 1 by itself, and the
//! devices that failed are back on the old version.

use std::path::Path;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::common::{BIN, Server};

const MODELS: [&str; 4] = ["smart_meter", "asset_tracker", "camera", "gateway"];
const FLEET: usize = 1000;

/// Runs the CLI in `dir`; asserts success and returns stdout.
async fn cli(dir: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(BIN).current_dir(dir).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "palisade {args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Signs and publishes an image of `hardware` at `version`.
async fn publish(s: &Server, dir: &Path, admin: &str, hardware: &str, version: &str, counter: u64) -> String {
    let name = format!("{hardware}-{version}");
    let image = format!("{name}.bin");
    let bytes: Vec<u8> = (0..48 * 1024).map(|i| (i as u8) ^ (counter as u8)).chain(name.bytes()).collect();
    std::fs::write(dir.join(&image), bytes).unwrap();
    let url = format!("https://localhost:{}", s.addr.port());
    let ca = s.dir.join("pki/root-ca.pem");
    let ca = ca.to_str().unwrap();
    let counter = counter.to_string();
    let sign = [
        "firmware",
        "sign",
        "--dir",
        "keys",
        "--image",
        &image,
        "--version",
        version,
        "--hardware",
        hardware,
        "--counter",
        &counter,
        "--name",
        &name,
        "--server",
        &url,
        "--ca",
        ca,
        "--api-key",
        admin,
        "--out",
        "targets.json",
    ];
    cli(dir, &sign).await;
    cli(
        dir,
        &[
            "firmware",
            "publish",
            "--image",
            &image,
            "--targets",
            "targets.json",
            "--server",
            &url,
            "--ca",
            ca,
            "--api-key",
            admin,
        ],
    )
    .await;
    std::fs::remove_file(dir.join("targets.json")).unwrap();
    name
}

/// Every device of group `sim`.
async fn sim_devices(s: &Server, admin: &str) -> Vec<Value> {
    let r = s.client.get("/api/v1/devices?group=sim&limit=1000", admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    v["items"].as_array().or(v.as_array()).cloned().unwrap_or_default()
}

/// Polls a rollout until `done` says so (bounded); returns it.
async fn wait_rollout(s: &Server, admin: &str, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = s.client.get(&format!("/api/v1/rollouts/{id}"), admin).await.json();
        if done(&r) {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "rollout {id} did not get there in {secs} s: {r}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_thousand_devices_take_a_three_phase_rollout_and_a_failing_image_halts_in_phase_one() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("https://localhost:{}", s.addr.port());
    let ca = s.dir.join("pki/root-ca.pem");
    let ca = ca.to_str().unwrap();
    cli(dir, &["firmware", "keygen", "--dir", "keys"]).await;
    cli(dir, &["firmware", "root", "--dir", "keys", "--server", &url, "--ca", ca, "--api-key", &admin]).await;
    let mut targets = Vec::new();
    for (i, model) in MODELS.iter().enumerate() {
        targets.push(publish(&s, dir, &admin, model, "9.0.0", 10 + i as u64).await);
    }

    // The fleet: a third of the meters fail the health check of version 9.1.0 (fixed by seed).
    std::fs::write(dir.join("scenario.toml"), "[update]\nhealth_fail = 0.3\nhealth_fail_version = \"9.1.0\"\n")
        .unwrap();
    let mut sim = tokio::process::Command::new(BIN)
        .current_dir(dir)
        .args(["sim", "--server", &url, "--ca", ca, "--devices", &FLEET.to_string(), "--duration", "900s"])
        .args(["--interval", "60s", "--ramp", "200", "--scenario", "scenario.toml"])
        .env("PALISADE_API_KEY", &admin)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let n = sim_devices(&s, &admin).await.len();
        if n == FLEET {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {n} devices registered");
        assert!(sim.try_wait().unwrap().is_none(), "the simulator stopped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // One three-phase rollout per model: every device of the fleet ends on 9.0.0.
    let started = std::time::Instant::now();
    let mut rollouts = Vec::new();
    for t in &targets {
        let body =
            json!({"target": t, "groups": ["sim"], "phases": ["10%", "50%", "100%"], "silent_timeout_secs": 300});
        let r = s.client.post("/api/v1/rollouts", &admin, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        rollouts.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    let mut committed = 0;
    for id in &rollouts {
        let r = wait_rollout(&s, &admin, id, 600, |r| r["status"] != "running").await;
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["phases"].as_array().unwrap().len(), 3, "{r}");
        assert_eq!(r["devices"]["committed"], r["devices"]["total"], "{r}");
        committed += r["devices"]["committed"].as_u64().unwrap();
    }
    assert_eq!(committed, FLEET as u64);
    println!("{FLEET} devices updated through three phases in {:?}", started.elapsed());
    for d in sim_devices(&s, &admin).await {
        assert_eq!(d["firmware_version"], "9.0.0", "{d}");
    }
    let compliance = s.client.get("/api/v1/firmware/compliance", &admin).await.json();
    let sim_group = compliance["groups"].as_array().unwrap().iter().find(|g| g["group"] == "sim").unwrap().clone();
    assert_eq!((sim_group["devices"].as_u64(), sim_group["percent"].as_f64()), (Some(FLEET as u64), Some(100.0)));

    // 9.1.0 for the meters fails its health check on about a third of them: phase 1 halts.
    let bad = publish(&s, dir, &admin, "smart_meter", "9.1.0", 20).await;
    let body = json!({"target": bad, "groups": ["sim"], "phases": ["20%", "100%"], "failure_threshold": "5%"});
    let r = s.client.post("/api/v1/rollouts", &admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = wait_rollout(&s, &admin, &id, 300, |r| r["status"] != "running").await;
    assert_eq!(r["status"], "halted", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("phase 1"), "{r}");
    let phase1 = &r["phases"][0]["devices"];
    let failed = phase1["failed"].as_u64().unwrap();
    assert!(failed * 100 > phase1["total"].as_u64().unwrap() * 5, "{r}");
    assert_eq!(r["phases"][1]["devices"]["waiting"], r["phases"][1]["devices"]["total"], "nobody past phase 1: {r}");
    // The devices that failed rolled back by themselves and run the old version.
    for f in r["failures"].as_array().unwrap() {
        let dev = f["device_id"].as_str().unwrap();
        let d = s.client.get(&format!("/api/v1/devices/{dev}"), &admin).await.json();
        assert_eq!(d["firmware_version"], "9.0.0", "{d}");
        assert!(f["detail"].as_str().unwrap().contains("rolled_back"), "{f}");
    }
    let _ = sim.kill().await;

    // The console's firmware page shows the signed catalogue and both rollouts' outcomes.
    let cookie = admin_session(&s).await;
    let r = s.client.send_with(hyper::Method::GET, "/ui/firmware", &[("cookie", cookie)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    assert!(page.contains("data-target=\"smart_meter-9.1.0\""), "{page}");
    assert!(page.contains(&format!("data-rollout-id=\"{id}\"")) && page.contains("rollout-halted"), "{page}");
    assert_eq!(page.matches("rollout-completed").count(), 4, "{page}");
}

/// The initial administrator signed in through the API, password changed and TOTP enrolled:
/// the session cookie.
async fn admin_session(s: &Server) -> String {
    let initial = std::fs::read_to_string(s.dir.join("initial-admin-password")).unwrap().trim().to_owned();
    let (cookie, csrf) = crate::console::api_session(s, "admin", &initial).await;
    let headers = [("cookie", cookie.clone()), ("x-csrf-token", csrf)];
    let post = |path: &'static str, body: Value| {
        let headers = headers.clone();
        async move {
            let body = Some(("application/json", body.to_string().into_bytes()));
            s.client.send_with(hyper::Method::POST, path, &headers, body).await
        }
    };
    let new = "violet tractor harbour minute";
    assert_eq!(
        post("/api/v1/auth/password", json!({"current_password": initial, "new_password": new})).await.status,
        StatusCode::NO_CONTENT
    );
    let e = post("/api/v1/auth/mfa/enroll", json!({})).await.json();
    let secret = crate::console::base32_decode(e["secret"].as_str().unwrap());
    let r = post("/api/v1/auth/mfa/confirm", json!({"code": crate::console::totp_code(&secret, 0)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    cookie
}

#[tokio::test]
async fn an_aborted_rollout_points_devices_that_have_not_acted_back_at_what_they_run() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("https://localhost:{}", s.addr.port());
    let ca = s.dir.join("pki/root-ca.pem");
    cli(dir, &["firmware", "keygen", "--dir", "keys"]).await;
    cli(
        dir,
        &["firmware", "root", "--dir", "keys", "--server", &url, "--ca", ca.to_str().unwrap(), "--api-key", &admin],
    )
    .await;
    let old = publish(&s, dir, &admin, "meter-3", "1.4.2", 1).await;
    let new = publish(&s, dir, &admin, "meter-3", "1.5.0", 2).await;
    // Three meters on 1.4.2 that are offline: their assignments wait.
    let mut ids = Vec::new();
    for n in 0..3 {
        let r =
            s.client.post("/api/v1/devices", &admin, crate::common::device(&format!("lab-{n}"), "low", "lab")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let r = s.client.post(&format!("/api/v1/devices/{id}/lifecycle"), &admin, json!({"to": "provisioned"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(id);
    }
    let body = json!({"target": new, "groups": ["lab"], "phases": ["100%"]});
    let r = s.client.post("/api/v1/rollouts", &admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let rollout = r.json()["id"].as_str().unwrap().to_owned();
    wait_rollout(&s, &admin, &rollout, 30, |r| r["devices"]["assigned"] == 3).await;
    let assigned = |id: String| {
        let s = &s;
        let admin = admin.clone();
        async move { s.client.get(&format!("/api/v1/devices/{id}/firmware"), &admin).await.json()["assignment"].to_string() }
    };
    // The engine records its decision before it signs the assignments: wait for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for id in &ids {
        while !assigned(id.clone()).await.contains(&new) {
            assert!(tokio::time::Instant::now() < deadline, "{id} never got its assignment");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let r = s.client.post(&format!("/api/v1/rollouts/{rollout}/abort"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "aborted");
    // Each now holds an assignment of the image it runs: its agent has nothing to install.
    for id in &ids {
        let a = assigned(id.clone()).await;
        assert!(a.contains(&old) && !a.contains(&new), "{id}: {a}");
    }
}
