//! Personal data is encrypted at rest, and the master key rotates while the server runs.

use hyper::StatusCode;

use crate::common::{Server, device};

fn bytes_of_database(s: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["palisade.db", "palisade.db-wal"] {
        all.extend(std::fs::read(s.dir.join(f)).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_are_not_in_the_database_file_and_the_master_key_rotates_live() {
    let mut s = Server::start().await;
    let key = s.api_key("admin");
    let mut body = device("E-1", "high", "g");
    body["owner_contact"] = "dana.private@example.org".into();
    body["location"] = serde_json::json!({"lat": 12.345678, "lon": 98.765432});
    let r = s.client.post("/api/v1/devices", &key, body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/devices/{id}");

    // Like `strings palisade.db*`: the plaintext is nowhere; the non-secret serial is.
    let raw = bytes_of_database(&s);
    assert!(contains(&raw, "E-1"), "sanity: the device is in the file");
    for secret in ["dana.private", "12.345678", "98.765432"] {
        assert!(!contains(&raw, secret), "{secret} found in the database file");
    }
    let key_file = std::fs::read(s.dir.join("master.key")).unwrap();
    assert!(!contains(&raw, &String::from_utf8_lossy(&key_file)), "master key not in the database");

    // Rotate while the server runs.
    let old = s.dir.with_file_name("old-master.key");
    std::fs::copy(s.dir.join("master.key"), &old).unwrap();
    let out = s.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(s.dir.join("master.key")).unwrap(), key_file);
    // The running server still reads and writes sealed data.
    let d = s.client.get(&path, &key).await.json();
    assert_eq!(d["owner_contact"], "dana.private@example.org");
    let r = s.client.patch(&path, &key, serde_json::json!({"owner_contact": "erin.private@example.org"})).await;
    assert_eq!(r.status, StatusCode::OK);

    // After a restart everything still decrypts under the new key…
    let dir = s.dir.clone();
    assert!(s.terminate().await.success());
    let s = Server::start_in(&dir, crate::common::Backend::Sqlite).await;
    let d = s.client.get(&path, &key).await.json();
    assert_eq!(d["owner_contact"], "erin.private@example.org");
    assert_eq!(d["location"]["lat"], 12.345678);
    // …and the old master key no longer opens the database.
    let out = std::process::Command::new(crate::common::BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .arg("--master-key-file")
        .arg(&old)
        .output()
        .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key does not open"), "{err}");
    // The rotation is in the audit trail.
    let a = s.client.get("/api/v1/audit?action=keys.rotate", &key).await.json();
    assert_eq!(a["items"].as_array().unwrap().len(), 1, "{a}");
}
