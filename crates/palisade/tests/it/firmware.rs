//! Signed firmware updates end to end: offline keys and metadata made with the real CLI, published
//! to a real server, served on the device listener to an enrolled device (its client
//! certificate), checked with the TUF client workflow and with python-tuf.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use palisade_tuf::Trusted;
use serde_json::{Value, json};

use crate::common::{BIN, Server};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).args(args).output().unwrap()
}

/// Runs the CLI and expects success; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "palisade {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A repository's working directory and how to reach the server.
struct Operator<'a> {
    s: &'a Server,
    dir: PathBuf,
    key: String,
}

impl Operator<'_> {
    fn url(&self) -> String {
        format!("https://localhost:{}", self.s.addr.port())
    }

    fn ca(&self) -> String {
        self.s.dir.join("pki/root-ca.pem").display().to_string()
    }

    /// `palisade firmware <args> --server … --ca … --api-key …`.
    fn online(&self, args: &[&str]) -> Output {
        let (url, ca) = (self.url(), self.ca());
        let mut all = vec!["firmware"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url, "--ca", &ca, "--api-key", &self.key]);
        run(&self.dir, &all)
    }

    fn online_ok(&self, args: &[&str]) -> String {
        let out = self.online(args);
        assert!(out.status.success(), "firmware {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn image(&self, name: &str, len: usize, seed: u8) -> Vec<u8> {
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        std::fs::write(self.dir.join(name), &bytes).unwrap();
        bytes
    }
}

/// An enrolled device fetching from the device listener with curl and its client certificate.
struct Device<'a> {
    s: &'a Server,
    dir: PathBuf,
    id: String,
    cert: String,
    key: String,
}

impl Device<'_> {
    /// GET `path`; (status, body, response headers). `cert`: present the client certificate.
    fn get_as(&self, path: &str, cert: bool, extra: &[&str]) -> (u16, Vec<u8>, String) {
        let mut cmd = Command::new("curl");
        cmd.current_dir(&self.dir).args(["-sS", "--tlsv1.3", "--cacert"]).arg(self.s.dir.join("pki/root-ca.pem"));
        if cert {
            cmd.args(["--cert", &self.cert, "--key", &self.key]);
        }
        let out = format!("out-{}", crate::common::random_hex(4));
        cmd.args(extra).args(["-D", "headers.txt", "-o", &out, "-w", "%{http_code}"]);
        cmd.arg(format!("https://127.0.0.1:{}{path}", self.s.device_addr.port()));
        let o = cmd.output().unwrap();
        let code = String::from_utf8_lossy(&o.stdout).parse().unwrap_or(0);
        assert_ne!(code, 0, "curl {path}: {}", String::from_utf8_lossy(&o.stderr));
        let body = std::fs::read(self.dir.join(&out)).unwrap_or_default();
        (code, body, std::fs::read_to_string(self.dir.join("headers.txt")).unwrap_or_default().to_ascii_lowercase())
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>, String) {
        self.get_as(path, true, &[])
    }

    fn fetch(&self, path: &str) -> Vec<u8> {
        let (code, body, _) = self.get(path);
        assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
        body
    }
}

/// A fresh server with a root and one published image; the operator, a device, the image.
async fn published<'a>(s: &'a Server, tmp: &Path) -> (Operator<'a>, Device<'a>, Vec<u8>, String) {
    let admin = s.api_key("admin");
    let op = Operator { s, dir: tmp.to_owned(), key: admin.clone() };

    let keygen = ok(tmp, &["firmware", "keygen", "--dir", "keys", "--root-keys", "1", "--targets-keys", "1"]);
    assert_eq!(keygen.lines().count(), 2, "{keygen}");
    assert!(keygen.lines().all(|l| l.split('\t').nth(1).is_some_and(|id| id.len() == 64)), "{keygen}");
    let mode = |p: &str| std::fs::metadata(tmp.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("keys"), mode("keys/root-1.pem"), mode("keys/targets-1.pem")), (0o700, 0o600, 0o600));

    let out = op.online_ok(&["root", "--dir", "keys"]);
    assert!(out.contains("root version 1 published"), "{out}");

    let image = op.image("image.bin", 300_000, 7);
    ok(
        tmp,
        &[
            "firmware",
            "sign",
            "--dir",
            "keys",
            "--image",
            "image.bin",
            "--version",
            "2.0.0",
            "--hardware",
            "meter-3",
            "--counter",
            "2",
            "--name",
            "fw-2.0.0",
            "--server",
            &op.url(),
            "--ca",
            &op.ca(),
            "--api-key",
            &admin,
            "--out",
            "t1.json",
        ],
    );
    let printed = op.online_ok(&["publish", "--image", "image.bin", "--targets", "t1.json"]);
    let entry: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(entry["name"], "fw-2.0.0");
    assert_eq!((entry["hardware"].as_str(), entry["counter"].as_u64()), (Some("meter-3"), Some(2)));
    assert_eq!(entry["length"], 300_000);
    let sha256 = entry["sha256"].as_str().unwrap().to_owned();

    let dev_dir = tmp.join("device");
    std::fs::create_dir(&dev_dir).unwrap();
    let (id, cert, key) = crate::mqtt::enrolled(s, &admin, &dev_dir, "dev").await;
    (op, Device { s, dir: dev_dir, id, cert, key }, image, sha256)
}

#[tokio::test]
async fn publish_assign_and_fetch_with_the_device_certificate() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (op, dev, image, sha256) = published(&s, tmp.path()).await;
    let admin = op.key.clone();
    let now = now();

    // The metadata verifies with the client workflow: root, timestamp, snapshot, targets.
    let root1 = dev.fetch("/tuf/1.root.json");
    assert_eq!(dev.fetch("/tuf/root.json"), root1);
    let mut trusted = Trusted::new(&root1).unwrap();
    trusted.update_timestamp(&dev.fetch("/tuf/timestamp.json"), now).unwrap();
    trusted.update_snapshot(&dev.fetch("/tuf/snapshot.json"), now).unwrap();
    let targets = trusted.update_targets(&dev.fetch("/tuf/targets.json"), now).unwrap();
    assert_eq!(targets.targets["fw-2.0.0"].sha256(), Some(sha256.as_str()));
    let (code, _, headers) = dev.get("/tuf/targets.json");
    assert_eq!(code, 200);
    assert!(headers.contains("content-type: application/json"), "{headers}");
    assert_eq!(dev.get("/tuf/2.root.json").0, 404);
    assert_eq!(dev.get("/tuf/nope.json").0, 404);
    assert_eq!(dev.get_as("/tuf/root.json", false, &[]).0, 401, "a device certificate is required");

    // No assignment yet; then one, signed for this device, with the update command queued.
    let (code, body, _) = dev.get("/tuf/assignment");
    assert_eq!(code, 404);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_object());
    let path = format!("/api/v1/devices/{}/firmware", dev.id);
    let r = s.client.put(&path, &admin, json!({"target": "fw-2.0.0"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["issued"], 1);
    let commands = s.client.get(&format!("/api/v1/devices/{}/commands", dev.id), &admin).await.json();
    assert!(commands.as_array().unwrap().iter().any(|c| c["command"] == "update"), "{commands}");
    let assignment = trusted.verify_assignment(&dev.fetch("/tuf/assignment"), &dev.id, now).unwrap();
    assert_eq!((assignment.target.as_str(), assignment.issued), ("fw-2.0.0", 1));
    let file = trusted.approve(&assignment, "meter-3", 1, 0).unwrap();
    assert_eq!(file.length, 300_000);
    let view = s.client.get(&path, &admin).await.json();
    assert_eq!(view["assignment"]["signed"]["target"], "fw-2.0.0");
    assert!(view["reported"].is_null());

    // The image, whole and resumed from a byte range.
    let url = format!("/firmware/{sha256}");
    let (code, body, headers) = dev.get(&url);
    assert_eq!(code, 200);
    assert_eq!(body, image);
    assert!(headers.contains("content-length: 300000") && headers.contains("accept-ranges: bytes"), "{headers}");
    let (code, body, headers) = dev.get_as(&url, true, &["-r", "123456-"]);
    assert_eq!(code, 206);
    assert_eq!(body, image[123_456..]);
    assert!(headers.contains("content-range: bytes 123456-299999/300000"), "{headers}");
    assert!(headers.contains(&format!("content-length: {}", 300_000 - 123_456)), "{headers}");
    let (code, body, headers) = dev.get_as(&url, true, &["-r", "10-19"]);
    assert_eq!((code, body.as_slice()), (206, &image[10..20]));
    assert!(headers.contains("content-range: bytes 10-19/300000"), "{headers}");
    let (code, _, headers) = dev.get_as(&url, true, &["-r", "300000-"]);
    assert_eq!(code, 416);
    assert!(headers.contains("content-range: bytes */300000"), "{headers}");
    assert_eq!(dev.get(&format!("/firmware/{}", "0".repeat(64))).0, 404);
    assert_eq!(dev.get_as(&url, false, &[]).0, 401);

    // The agent's update events: the last one is the device's report; a commit sets its version.
    for (event, version) in [("update.downloading", None), ("update.committed", Some("2.0.0"))] {
        let payload = json!({"event": event, "target": "fw-2.0.0", "version": version}).to_string();
        let st = Command::new("mosquitto_pub")
            .current_dir(&dev.dir)
            .args(["-h", "127.0.0.1", "-p", &s.mqtt_addr.port().to_string(), "--tls-version", "tlsv1.3", "--cafile"])
            .arg(s.dir.join("pki/root-ca.pem"))
            .args(["--cert", &dev.cert, "--key", &dev.key, "-i", &dev.id, "-q", "1"])
            .args(["-t", &format!("devices/{}/events", dev.id), "-m", &payload])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let view = s.client.get(&path, &admin).await.json();
    assert_eq!(view["reported"]["event"], "update.committed", "{view}");
    let device = s.client.get(&format!("/api/v1/devices/{}", dev.id), &admin).await.json();
    assert_eq!(device["firmware_version"], "2.0.0");
    let audit = s.client.get("/api/v1/audit?action=firmware.assign", &admin).await.json();
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");
}

async fn put_targets(s: &Server, key: &str, file: &Path) -> crate::common::Resp {
    let body = std::fs::read(file).unwrap();
    s.client.send(Method::PUT, "/api/v1/firmware/targets", Some(key), Some(("application/json", body))).await
}

#[tokio::test]
async fn refusals_leave_everything_as_it_was() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (op, dev, _, _) = published(&s, tmp.path()).await;
    let admin = op.key.clone();
    let dir = tmp.path();
    let targets_before = s.client.get("/api/v1/firmware/targets", &admin).await.body;
    let catalogue = || async { s.client.get("/api/v1/firmware", &admin).await.json() };
    let catalogue_before = catalogue().await;

    // Signed by a key the root does not know: refused, offline signing needs no server.
    ok(dir, &["firmware", "keygen", "--dir", "other", "--root-keys", "0", "--targets-keys", "1"]);
    op.image("image2.bin", 5000, 9);
    let sign = |keys: &str, image: &str, hardware: &str, name: &str, out: &str| {
        ok(
            dir,
            &[
                "firmware",
                "sign",
                "--dir",
                keys,
                "--image",
                image,
                "--version",
                "3.0.0",
                "--hardware",
                hardware,
                "--counter",
                "3",
                "--name",
                name,
                "--targets",
                "t1.json",
                "--out",
                out,
            ],
        )
    };
    sign("other", "image2.bin", "meter-3", "fw-3.0.0", "foreign.json");
    let r = put_targets(&s, &admin, &dir.join("foreign.json")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("signatures"), "{}", r.text());

    // Listing an image that was never uploaded: refused, naming the target.
    sign("keys", "image2.bin", "meter-3", "fw-3.0.0", "t2.json");
    let r = put_targets(&s, &admin, &dir.join("t2.json")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("signed.targets.fw-3.0.0") && r.text().contains("not uploaded"), "{}", r.text());
    assert_eq!(s.client.get("/api/v1/firmware/targets", &admin).await.body, targets_before);
    assert_eq!(catalogue().await, catalogue_before);

    // An image for other hardware publishes, but cannot be assigned to this device.
    sign("keys", "image2.bin", "gateway-9", "gw-3.0.0", "t3.json");
    op.online_ok(&["publish", "--image", "image2.bin", "--targets", "t3.json"]);
    assert_eq!(catalogue().await.as_array().unwrap().len(), 2);
    let path = format!("/api/v1/devices/{}/firmware", dev.id);
    let r = s.client.put(&path, &admin, json!({"target": "gw-3.0.0"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("gateway-9"), "{}", r.text());
    let r = s.client.put(&path, &admin, json!({"target": "nope"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(dev.get("/tuf/assignment").0, 404);
    // The same metadata again: not a higher version.
    let r = put_targets(&s, &admin, &dir.join("t3.json")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());

    // Images: a body over the limit is refused at 413 (on a server with a small limit).
    let small =
        Server::start_with(crate::common::Backend::Sqlite, &[("PALISADE_FIRMWARE_MAX_IMAGE_BYTES", "1000")]).await;
    let small_admin = small.api_key("admin");
    let r = small
        .client
        .send(
            Method::POST,
            "/api/v1/firmware/images",
            Some(&small_admin),
            Some(("application/octet-stream", vec![1; 5000])),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    // Without a Content-Length (chunked), the bound holds while streaming to disk.
    std::fs::write(dir.join("big.bin"), vec![2u8; 200_000]).unwrap();
    let out = Command::new("curl")
        .current_dir(dir)
        .args(["-sS", "--tlsv1.3", "--cacert"])
        .arg(small.dir.join("pki/root-ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {small_admin}"), "-H", "Content-Type: application/octet-stream"])
        .args([
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@big.bin",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("https://localhost:{}/api/v1/firmware/images", small.addr.port()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413", "{}", String::from_utf8_lossy(&out.stderr));
    let leftovers = std::fs::read_dir(small.dir.join("firmware")).map_or(0, Iterator::count);
    assert_eq!(leftovers, 0, "no temporary file stays behind");
    let r = small
        .client
        .send(
            Method::POST,
            "/api/v1/firmware/images",
            Some(&small_admin),
            Some(("application/octet-stream", vec![1; 1000])),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let sha = r.json()["sha256"].as_str().unwrap().to_owned();
    let stored = small.dir.join("firmware").join(&sha);
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);

    // A technician may not publish.
    let tech = s.api_key("technician");
    let r = s
        .client
        .send(Method::POST, "/api/v1/firmware/images", Some(&tech), Some(("application/octet-stream", vec![1])))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
}

#[tokio::test]
async fn root_rotation_and_python_tuf_reads_what_the_server_publishes() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (op, dev, _, _) = published(&s, tmp.path()).await;
    let dir = tmp.path();
    let now = now();

    // A root signed only by keys the current root does not know is refused.
    ok(dir, &["firmware", "keygen", "--dir", "stranger", "--root-keys", "1", "--targets-keys", "1"]);
    let out = op.online(&["root", "--dir", "stranger"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("current root"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dev.get("/tuf/2.root.json").0, 404);

    // Rotation: a new root key joins; version 2 is signed by the old and the new key.
    let added = ok(dir, &["firmware", "keygen", "--dir", "keys", "--root-keys", "1", "--targets-keys", "0"]);
    assert!(added.contains("keys/root-2.pem"), "keygen never overwrites: {added}");
    let out = op.online_ok(&["root", "--dir", "keys", "--threshold", "2"]);
    assert!(out.contains("root version 2 published"), "{out}");
    let root1 = dev.fetch("/tuf/1.root.json");
    let root2 = dev.fetch("/tuf/2.root.json");
    assert_eq!(dev.fetch("/tuf/root.json"), root2);
    assert_eq!(dev.get("/tuf/3.root.json").0, 404);
    let mut trusted = Trusted::new(&root1).unwrap();
    trusted.update_root(&root2, now).unwrap();
    assert_eq!(trusted.root().version, 2);
    trusted.update_timestamp(&dev.fetch("/tuf/timestamp.json"), now).unwrap();
    trusted.update_snapshot(&dev.fetch("/tuf/snapshot.json"), now).unwrap();
    trusted.update_targets(&dev.fetch("/tuf/targets.json"), now).unwrap();

    // python-tuf, the reference implementation, loads and verifies every role as served.
    let served = dir.join("served");
    std::fs::create_dir(&served).unwrap();
    for (name, path) in [
        ("1.root.json", "/tuf/1.root.json"),
        ("root.json", "/tuf/root.json"),
        ("timestamp.json", "/tuf/timestamp.json"),
        ("snapshot.json", "/tuf/snapshot.json"),
        ("targets.json", "/tuf/targets.json"),
    ] {
        std::fs::write(served.join(name), dev.fetch(path)).unwrap();
    }
    let script = r#"
import sys
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
d = sys.argv[1]
old = Metadata[Root].from_file(f"{d}/1.root.json")
root = Metadata[Root].from_file(f"{d}/root.json")
old.verify_delegate("root", root)
root.verify_delegate("root", root)
ts = Metadata[Timestamp].from_file(f"{d}/timestamp.json")
root.verify_delegate("timestamp", ts)
snapshot_bytes = open(f"{d}/snapshot.json", "rb").read()
ts.signed.snapshot_meta.verify_length_and_hashes(snapshot_bytes)
snap = Metadata[Snapshot].from_bytes(snapshot_bytes)
root.verify_delegate("snapshot", snap)
targets = Metadata[Targets].from_file(f"{d}/targets.json")
root.verify_delegate("targets", targets)
assert snap.signed.meta["targets.json"].version == targets.signed.version
assert "fw-2.0.0" in targets.signed.targets
print("verified", root.signed.version, ts.signed.version, snap.signed.version, targets.signed.version)
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(&served).output().unwrap();
    assert!(
        out.status.success(),
        "python-tuf (pip install tuf) refused the served metadata:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("verified 2 "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
