//! Interop with python-tuf, the reference implementation: a repository written and signed here
//! must load and verify there (`tests/python/verify.py`), up to its own updater's full refresh.
//! Needs `python3` with `tuf` installed (`python3 -m pip install tuf`).

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use palisade_tuf::{
    Assignment, ImageCheck, KeyType, RoleKeys, Root, Signed, SigningKey, Snapshot, Targets, Timestamp, Trusted,
    TufError, expires_at, new_root, target_entry,
};
use serde::Serialize;
use serde_json::json;

fn write<T: Serialize>(dir: &Path, name: &str, t: T, keys: &[&SigningKey]) -> Vec<u8> {
    let mut s = Signed::new(t);
    for k in keys {
        s.sign(k).unwrap();
    }
    let bytes = s.to_json().unwrap();
    std::fs::write(dir.join(name), &bytes).unwrap();
    bytes
}

/// Fails the test with a clear message when python-tuf is not there (CI installs it).
fn require_python_tuf() {
    let has_tuf = Command::new("python3").args(["-c", "import tuf.api.metadata"]).output();
    match has_tuf {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python-tuf is not installed for python3: pip install tuf (see README)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 not found ({e}): install Python 3, then pip install tuf (see README)"),
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("python").join(name)
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

#[test]
fn python_tuf_verifies_our_repository() {
    require_python_tuf();
    let now = now();
    let expires = expires_at(now + 7 * 86_400);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("targets")).unwrap();

    let root_a = SigningKey::generate(KeyType::Ed25519).unwrap();
    let root_b = SigningKey::generate(KeyType::EcdsaP256).unwrap();
    let targets_ec = SigningKey::generate(KeyType::EcdsaP256).unwrap();
    let targets_ed = SigningKey::generate(KeyType::Ed25519).unwrap();
    let snapshot = SigningKey::generate(KeyType::Ed25519).unwrap();
    let timestamp = SigningKey::generate(KeyType::Ed25519).unwrap();
    let director = SigningKey::generate(KeyType::Ed25519).unwrap();

    // Root v1: two root keys (ed25519 and P-256), both needed; targets 2-of-2 likewise.
    let root1 = new_root(
        &[root_a.public(), root_b.public()],
        2,
        &[targets_ec.public(), targets_ed.public()],
        2,
        &snapshot.public(),
        &timestamp.public(),
        &director.public(),
        1,
        &expires,
    );
    let root1_json = write(dir.path(), "1.root.json", root1.clone(), &[&root_a, &root_b]);
    // Root v2 rotates root_a out for a new key, signed by the old threshold and the new one.
    let root_c = SigningKey::generate(KeyType::Ed25519).unwrap();
    let mut root2: Root = root1.clone();
    root2.version = 2;
    root2.keys.remove(&root_a.key_id());
    root2.keys.insert(root_c.key_id(), root_c.public());
    root2.roles.insert("root".into(), RoleKeys { keyids: vec![root_c.key_id(), root_b.key_id()], threshold: 2 });
    let root2_json = write(dir.path(), "2.root.json", root2.clone(), &[&root_a, &root_b, &root_c]);
    std::fs::write(dir.path().join("root.json"), &root2_json).unwrap();

    let image = b"\x7fELF firmware for meter-3, version 1.4.2".repeat(50);
    std::fs::write(dir.path().join("targets").join("meter-3-1.4.2.bin"), &image).unwrap();
    let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "busybox", "version": "1.36.1"}]});
    let entry = target_entry(&image, "1.4.2", "meter-3", 7, Some(sbom));
    let targets = Targets {
        version: 3,
        expires: expires.clone(),
        targets: BTreeMap::from([("meter-3-1.4.2.bin".to_owned(), entry)]),
        ..Targets::default()
    };
    let targets_json = write(dir.path(), "targets.json", targets, &[&targets_ec, &targets_ed]);
    let snapshot_json = write(dir.path(), "snapshot.json", Snapshot::for_targets(4, &expires, 3), &[&snapshot]);
    let timestamp_json =
        write(dir.path(), "timestamp.json", Timestamp::for_snapshot(5, &expires, &snapshot_json, 4), &[&timestamp]);
    let assignment = Assignment {
        device_id: "dev-0001".into(),
        target: "meter-3-1.4.2.bin".into(),
        length: image.len() as u64,
        sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &image)),
        version: "1.4.2".into(),
        hardware: "meter-3".into(),
        counter: 7,
        issued: 1,
        expires: expires.clone(),
    };
    let assignment_json = write(dir.path(), "assignment.json", assignment, &[&director]);

    // Our own client accepts the same repository.
    let mut trusted = Trusted::new(&root1_json).unwrap();
    trusted.update_root(&root2_json, now).unwrap();
    trusted.check_root_fresh(now).unwrap();
    trusted.update_timestamp(&timestamp_json, now).unwrap();
    trusted.update_snapshot(&snapshot_json, now).unwrap();
    trusted.update_targets(&targets_json, now).unwrap();
    let a = trusted.verify_assignment(&assignment_json, "dev-0001", now).unwrap();
    trusted.approve(&a, "meter-3", 6, 0).unwrap();

    let out = Command::new("python3").arg(script("verify.py")).arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "python-tuf refused the repository ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn we_verify_a_repository_signed_by_python_tuf() {
    require_python_tuf();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3").arg(script("make_repo.py")).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "make_repo.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let now = now();

    let mut trusted = Trusted::new(&read("1.root.json")).unwrap();
    // Key ids as securesystemslib computes them.
    for (id, key) in &trusted.root().keys {
        assert_eq!(&key.key_id(), id, "{key:?}");
    }
    trusted.update_root(&read("2.root.json"), now).unwrap();
    trusted.check_root_fresh(now).unwrap();
    trusted.update_timestamp(&read("timestamp.json"), now).unwrap();
    trusted.update_snapshot(&read("snapshot.json"), now).unwrap();
    let targets = trusted.update_targets(&read("targets.json"), now).unwrap();
    assert_eq!(targets.version, 2);
    let a = trusted.verify_assignment(&read("assignment.json"), "dev-0001", now).unwrap();
    let entry = trusted.approve(&a, "meter-3", 8, 9).unwrap();
    let mut check = ImageCheck::new(&entry).unwrap();
    check.update(&read("image.bin")).unwrap();
    check.finish().unwrap();

    // A byte changed in python's targets is caught by the snapshot's hash.
    let mut t = Trusted::new(&read("1.root.json")).unwrap();
    t.update_root(&read("2.root.json"), now).unwrap();
    t.update_timestamp(&read("timestamp.json"), now).unwrap();
    t.update_snapshot(&read("snapshot.json"), now).unwrap();
    let tampered = String::from_utf8(read("targets.json")).unwrap().replace("\"counter\": 9", "\"counter\": 10");
    assert!(matches!(t.update_targets(tampered.as_bytes(), now), Err(TufError::MixAndMatch { .. })));
}
