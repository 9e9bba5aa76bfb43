//! `palisade sim` against a real server: devices registered through the API, enrolled over EST,
//! reporting over MQTT, acting out attacks the way compromised devices do.

use serde_json::Value;

use crate::common::{BIN, Server};

/// Runs `palisade sim` against `s` with `args`; asserts it succeeded and returns its report.
async fn run_sim(s: &Server, admin: &str, dir: &std::path::Path, args: &[&str]) -> Value {
    let report = dir.join("report.json");
    let out = tokio::process::Command::new(BIN)
        .args(["sim", "--server", &format!("https://localhost:{}", s.addr.port()), "--ca"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .args(args)
        .arg("--report")
        .arg(&report)
        .env("PALISADE_API_KEY", admin)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

#[tokio::test]
async fn a_simulated_fleet_enrolls_reports_and_acts_out_attacks() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("scenario.toml"),
        "[[attack]]\ndevice = 1\nkind = \"cloned_certificate\"\nat = \"1s\"\n\n\
         [[attack]]\ndevice = 2\nkind = \"new_listening_port\"\nat = \"0s\"\nduration = \"5m\"\n",
    )
    .unwrap();
    let scenario = dir.join("scenario.toml");
    let args = ["--devices", "4", "--duration", "4s", "--interval", "1s", "--scenario", scenario.to_str().unwrap()];
    let report = run_sim(&s, &admin, dir, &args).await;
    let devices: Vec<String> =
        report["devices"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
    assert_eq!(devices.len(), 4, "{report}");
    let attacks = report["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 2, "{report}");
    assert!(attacks.iter().any(|a| a["kind"] == "cloned_certificate" && a["device"] == devices[1].as_str()));
    let load = &report["load"];
    assert!(load["acked"].as_u64().unwrap() >= 8, "{load}");
    assert_eq!(load["connections"], 4);
    assert!(load["handshakes"].as_u64().unwrap() >= 4, "{load}");

    // Every device is registered in group "sim", enrolled, and has reported.
    for id in &devices {
        let d = s.client.get(&format!("/api/v1/devices/{id}"), &admin).await.json();
        assert_eq!(d["group"], "sim", "{d}");
        let t = s.client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &admin).await;
        assert_eq!(t.status, hyper::StatusCode::OK, "{id}: {}", t.text());
        assert!(serde_json::from_str::<Value>(&t.text()).unwrap()["payload"]["v"] == 1);
    }
    // Device 2 listens on telnet now.
    let t = s.client.get(&format!("/api/v1/devices/{}/telemetry/latest", devices[2]), &admin).await.json();
    let ports: Vec<u64> =
        t["payload"]["net"]["listening"].as_array().unwrap().iter().map(|l| l["port"].as_u64().unwrap()).collect();
    assert!(ports.contains(&23), "{t}");
    // Device 1's certificate was used from a second address at the same time.
    let findings = s.client.get("/api/v1/findings", &admin).await.json();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "certificate_two_places" && f["device_id"] == devices[1].as_str()),
        "{findings}"
    );
}

#[tokio::test]
async fn the_simulator_generates_load_at_a_rate_with_qos_0_and_a_ramp() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--devices", "3", "--duration", "3s", "--rate", "6", "--qos", "0", "--ramp", "10"];
    let load = run_sim(&s, &admin, tmp.path(), &args).await["load"].clone();
    // 3 devices at 6 reports/s in total: each reports every 0.5 s; QoS 0 has no PUBACK.
    let published = load["published"].as_u64().unwrap();
    assert!((9..=24).contains(&published), "{load}");
    assert_eq!(load["acked"], 0, "{load}");
    assert!(load["msgs_per_s"].as_f64().unwrap() >= 3.0, "{load}");
    let bad = std::process::Command::new(BIN)
        .args(["sim", "--server", "https://localhost:1", "--api-key", "k", "--ca", "/x", "--qos", "2"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--qos"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// The same simulated fleet against another broker (Mosquitto, TLS 1.3, client certificates
/// required and checked against Palisade's device CA): devices enrolled through Palisade, their
/// reports acknowledged by Mosquitto.
#[tokio::test]
async fn the_simulator_reports_to_another_broker() {
    use crate::identity::Est;
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let est = Est { s: &s, dir: dir.to_owned() };
    let (code, _) = est.curl("cacerts", &[], "cacerts.b64");
    assert_eq!(code, 200);
    est.certs_pem("cacerts.b64", "device-chain.pem");
    crate::identity::self_signed(dir, "mqca", "/CN=broker CA", &["basicConstraints=critical,CA:TRUE"]);
    std::fs::write(dir.join("mq.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    crate::identity::issue_with_openssl(dir, "mqca", "mq", "/CN=127.0.0.1", "mq.ext");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    // Mosquitto started as root drops to its own user, which cannot read a private temp dir.
    let user = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    std::fs::write(
        dir.join("mosquitto.conf"),
        format!(
            "per_listener_settings true\nuser {}\nlistener {port} 127.0.0.1\ncafile {d}/device-chain.pem\ncertfile {d}/mq.pem\n\
             keyfile {d}/mq.key\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n\
             allow_anonymous true\npersistence false\n",
            user.trim()
        ),
    )
    .unwrap();
    let _mosquitto = tokio::process::Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto (Debian package `mosquitto`) is needed for this test");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let broker = format!("mqtts://127.0.0.1:{port}");
    let broker_ca = dir.join("mqca.pem");
    let args = ["--devices", "2", "--duration", "3s", "--interval", "1s", "--broker", &broker, "--broker-ca"];
    let r = run_sim(&s, &admin, dir, &[&args[..], &[broker_ca.to_str().unwrap()]].concat()).await;
    assert_eq!(r["load"]["handshakes"], 2, "{r}");
    assert!(r["load"]["acked"].as_u64().unwrap() >= 4, "{r}");
    // The reports went to Mosquitto, not to Palisade.
    let id = r["devices"][0].as_str().unwrap();
    let t = s.client.get(&format!("/api/v1/devices/{id}/telemetry/latest"), &admin).await;
    assert_eq!(t.status, hyper::StatusCode::NOT_FOUND, "{}", t.text());
}
