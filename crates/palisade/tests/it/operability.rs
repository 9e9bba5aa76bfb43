//! OpenAPI in sync with the routes, metrics, configuration checks.

use hyper::{Method, StatusCode};

use crate::common::{BIN, Server, device};

#[tokio::test]
async fn every_documented_route_exists_and_requires_authentication() {
    let s = Server::start().await;
    let key = s.api_key("auditor");
    let doc = s.client.get("/api/v1/openapi.json", &key).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    let paths = doc["paths"].as_object().unwrap();
    // The contract's core resources that exist today are documented…
    for p in [
        "/api/v1/devices",
        "/api/v1/devices/{id}",
        "/api/v1/devices/{id}/lifecycle",
        "/api/v1/devices/{id}/quarantine",
        "/api/v1/devices/{id}/pause",
        "/api/v1/devices/{id}/release",
        "/api/v1/devices/{id}/decommission",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    // …and every documented operation is served (401 without a key, never 404 or 405).
    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let policy = item[method]["x-palisade-policy"].as_str().unwrap_or("none");
            assert_ne!(policy, "none", "{method} {path} has no access policy");
            if policy == "public" {
                continue;
            }
            let concrete = path.replace("{id}", "0000000000000000000z");
            let r = s.client.send(method.to_uppercase().parse::<Method>().unwrap(), &concrete, None, None).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}: {}", r.text());
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} operations documented");
    // The document served equals the one the code generates.
    assert_eq!(doc["info"]["title"], "Palisade API");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_time_the_database() {
    let s = Server::start().await;
    let key = s.api_key("admin");
    s.client.post("/api/v1/devices", &key, device("M-1", "low", "g")).await;
    s.client.get("/api/v1/devices/0000000000000000000z", &key).await;
    let m = s.client.send(Method::GET, "/metrics", None, None).await.text();
    assert!(m.contains(r#"palisade_http_requests_total{method="POST",route="/api/v1/devices",status="201"} 1"#), "{m}");
    assert!(m.contains(r#"route="/api/v1/devices/{id}",status="404"} 1"#), "{m}");
    assert!(m.contains(r#"palisade_store_operation_duration_seconds_count{op="device.create",outcome="ok"} 1"#), "{m}");
    assert!(m.contains("palisade_http_request_duration_seconds_bucket"), "{m}");
}

#[test]
fn config_check_names_unknown_keys_with_their_line_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "data_dir = \"/var/lib/palisade\"\n\n[log]\nformat = \"json\"\nverbosity = 3\n").unwrap();
    let out = std::process::Command::new(BIN).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `verbosity`") && err.contains("line 5"), "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "data_dir = \"/var/lib/palisade\"\ndatabase_url = \"postgres://u:hunter2@db/palisade\"\n")
        .unwrap();
    let out = std::process::Command::new(BIN).args(["config", "check"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("database_url = \"***\"") && !shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn the_demo_serves_a_sample_fleet_and_prints_how_to_reach_it() {
    use tokio::io::AsyncBufReadExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--console-addr",
            "127.0.0.1:0",
            "--device-https-addr",
            "127.0.0.1:0",
            "--mqtt-addr",
            "127.0.0.1:0",
            "--devices",
            "8",
            "--data-dir",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap()
    };
    let listening: serde_json::Value = serde_json::from_str(&next().await).unwrap();
    assert_eq!(listening["event"], "listening");
    let addr: std::net::SocketAddr = listening["console"].as_str().unwrap().parse().unwrap();
    let key = loop {
        let line = next().await;
        if let Some(rest) = line.trim().strip_prefix("Admin key: ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let client = crate::common::Client::new(addr, &dir.join("pki/root-ca.pem"));
    let sample = client.get("/api/v1/devices?tag=demo", &key).await.json();
    assert_eq!(sample["items"].as_array().unwrap().len(), 12);
    let q = client.get("/api/v1/devices?state=quarantined", &key).await.json();
    assert_eq!(q["items"].as_array().unwrap().len(), 2);
    // The sample SBOMs and advisories: Log4Shell on both meter builds, the Debian openssl fix
    // (`~deb12u1` before `~deb12u2`) on the meter only, lodash suppressed by the vendor's VEX.
    let log4j = client.get("/api/v1/vulnerabilities/CVE-2021-44228/devices", &key).await.json();
    assert_eq!(
        (log4j["devices_total"].as_u64(), log4j["builds"].as_array().map(Vec::len)),
        (Some(3), Some(2)),
        "{log4j}"
    );
    let openssl = client.get("/api/v1/vulnerabilities/CVE-2023-5363/devices", &key).await.json();
    assert_eq!(openssl["devices_total"], 2, "{openssl}");
    let lodash = client.get("/api/v1/vulnerabilities/GHSA-35jh-r3h4-6jhm/devices", &key).await.json();
    assert_eq!((lodash["devices_total"].as_u64(), lodash["suppressed"].as_array().map(Vec::len)), (Some(0), Some(1)));
    let fleet = client.get("/api/v1/vulnerabilities", &key).await.json();
    assert!(fleet["devices_without_sbom"].as_u64().is_some_and(|n| n > 0), "{fleet}");
    // The simulated fleet registers, enrolls over EST and reports over MQTT.
    let mut reporting = 0;
    for _ in 0..300 {
        let sim = client.get("/api/v1/devices?group=sim", &key).await.json();
        let ids: Vec<String> =
            sim["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
        reporting = 0;
        for id in &ids {
            if client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &key).await.status == StatusCode::OK {
                reporting += 1;
            }
        }
        if reporting == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(reporting, 8, "simulated devices reporting");
    child.kill().await.unwrap();
}
