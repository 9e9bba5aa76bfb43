//! The security core's tests: canonical JSON vectors, keys, thresholds, root rotation, and one
//! test per attack, each refused with its own error.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::*;

const NOW: i64 = 1_750_000_000;
const DAY: i64 = 86_400;
const DEVICE: &str = "dev-0001";
const HW: &str = "meter-3";

fn later() -> String {
    expires_at(NOW + 30 * DAY)
}

fn key(kind: KeyType) -> SigningKey {
    SigningKey::generate(kind).unwrap()
}

fn signed<T: Serialize>(t: T, keys: &[&SigningKey]) -> Vec<u8> {
    let mut s = Signed::new(t);
    for k in keys {
        s.sign(k).unwrap();
    }
    s.to_json().unwrap()
}

/// A repository with one key per role (targets on P-256, the rest ed25519).
struct Repo {
    root_key: SigningKey,
    targets_key: SigningKey,
    snapshot_key: SigningKey,
    timestamp_key: SigningKey,
    director_key: SigningKey,
    root: Root,
}

impl Repo {
    fn new() -> Self {
        let root_key = key(KeyType::Ed25519);
        let targets_key = key(KeyType::EcdsaP256);
        let snapshot_key = key(KeyType::Ed25519);
        let timestamp_key = key(KeyType::Ed25519);
        let director_key = key(KeyType::Ed25519);
        let root = new_root(
            &[root_key.public()],
            1,
            &[targets_key.public()],
            1,
            &snapshot_key.public(),
            &timestamp_key.public(),
            &director_key.public(),
            1,
            &later(),
        );
        Self { root_key, targets_key, snapshot_key, timestamp_key, director_key, root }
    }

    fn root_json(&self) -> Vec<u8> {
        signed(self.root.clone(), &[&self.root_key])
    }

    fn trusted(&self) -> Trusted {
        Trusted::new(&self.root_json()).unwrap()
    }

    fn targets(&self, version: u64, image: &[u8], counter: u64) -> Vec<u8> {
        signed(self.targets_meta(version, image, counter), &[&self.targets_key])
    }

    fn targets_meta(&self, version: u64, image: &[u8], counter: u64) -> Targets {
        let entry =
            target_entry(image, &format!("1.{counter}.0"), HW, counter, Some(json!({"bomFormat": "CycloneDX"})));
        let targets = BTreeMap::from([("fw-meter-3.bin".to_owned(), entry)]);
        Targets { version, expires: later(), targets, ..Targets::default() }
    }

    fn snapshot(&self, version: u64, targets_version: u64) -> Vec<u8> {
        signed(Snapshot::for_targets(version, &later(), targets_version), &[&self.snapshot_key])
    }

    fn timestamp(&self, version: u64, snapshot: &[u8], snapshot_version: u64) -> Vec<u8> {
        signed(Timestamp::for_snapshot(version, &later(), snapshot, snapshot_version), &[&self.timestamp_key])
    }

    /// Timestamp, snapshot and targets, all version `v`.
    fn publish(&self, v: u64, image: &[u8], counter: u64) -> [Vec<u8>; 3] {
        let targets = self.targets(v, image, counter);
        let snapshot = self.snapshot(v, v);
        let timestamp = self.timestamp(v, &snapshot, v);
        [timestamp, snapshot, targets]
    }

    fn assignment(&self, image: &[u8], counter: u64) -> Assignment {
        Assignment {
            device_id: DEVICE.into(),
            target: "fw-meter-3.bin".into(),
            length: image.len() as u64,
            sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, image)),
            version: format!("1.{counter}.0"),
            hardware: HW.into(),
            counter,
            issued: 1,
            expires: expires_at(NOW + DAY),
        }
    }
}

fn update_all(t: &mut Trusted, [ts, snap, targets]: &[Vec<u8>; 3]) -> Result<(), TufError> {
    t.update_timestamp(ts, NOW)?;
    t.update_snapshot(snap, NOW)?;
    t.update_targets(targets, NOW)?;
    Ok(())
}

// ---------------------------------------------------------------- canonical JSON

fn canon(v: Value) -> String {
    String::from_utf8(canonical_json(&v).unwrap()).unwrap()
}

/// Expected outputs produced by securesystemslib 1.6 `encode_canonical`.
#[test]
fn canonical_vectors() {
    assert_eq!(
        canon(json!({"b": 1, "a": [true, false, null], "c": {"z": "x", "y": -3}})),
        r#"{"a":[true,false,null],"b":1,"c":{"y":-3,"z":"x"}}"#
    );
    // Only `"` and `\` are escaped; control characters and non-ASCII are written raw.
    assert_eq!(canon(json!("a\"b\\c\nd\té☃")), "\"a\\\"b\\\\c\nd\té☃\"");
    // Keys by UTF-8 bytes (= code points): U+FFFF before U+1F600, unlike UTF-16 order.
    assert_eq!(
        canon(json!({"a": 1, "B": 2, "é": 3, "z": 4, "aa": 5, "😀": 6, "\u{ffff}": 7})),
        "{\"B\":2,\"a\":1,\"aa\":5,\"z\":4,\"é\":3,\"\u{ffff}\":7,\"😀\":6}"
    );
    assert_eq!(canon(json!([u64::MAX, i64::MIN, 0, [], {}])), "[18446744073709551615,-9223372036854775808,0,[],{}]");
}

#[test]
fn canonical_refuses_floats_and_deep_nesting() {
    assert!(matches!(canonical_json(&json!({"a": [1.5]})), Err(TufError::Malformed(_))));
    let one_point_zero: Value = serde_json::from_str("1.0").unwrap();
    assert!(canonical_json(&one_point_zero).is_err(), "1.0 is a float in JSON");
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    assert!(canonical_json(&deep).is_err());
}

// ---------------------------------------------------------------- keys

/// securesystemslib `SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(raw)).keyid`.
#[test]
fn key_id_matches_securesystemslib() {
    let raw = hex::decode("4e777de0d275f9d28588dd9a1606cc748e548f9e22b6795b7cb3f63f98035fcb").unwrap();
    let key = PublicKey::ed25519(&raw);
    assert_eq!(key.key_id(), "452b904a56c1fb7631282eccb66c1965e33bb632a7d9996e5b045edb90508a78");
    assert_eq!(
        serde_json::to_value(&key).unwrap(),
        json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(&raw)}})
    );
}

#[test]
fn sign_and_verify_both_key_types() {
    for kind in [KeyType::Ed25519, KeyType::EcdsaP256] {
        let k = key(kind);
        let sig = k.sign(b"message").unwrap();
        let public = k.public();
        assert!(public.verify(b"message", &sig), "{kind:?}");
        assert!(!public.verify(b"messagE", &sig), "{kind:?}");
        assert!(!key(kind).public().verify(b"message", &sig), "{kind:?}: another key");
        // The PEM round trip keeps the key.
        let again = SigningKey::from_pkcs8_pem(&k.to_pkcs8_pem()).unwrap();
        assert_eq!(again.key_id(), k.key_id());
        assert!(public.verify(b"other", &again.sign(b"other").unwrap()));
        assert_eq!(k.key_id(), public.key_id());
    }
    let ec = key(KeyType::EcdsaP256).public();
    assert_eq!((ec.keytype.as_str(), ec.scheme.as_str()), ("ecdsa", "ecdsa-sha2-nistp256"));
    assert!(ec.keyval.public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(SigningKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    // An unknown scheme never verifies.
    let mut odd = key(KeyType::Ed25519).public();
    odd.scheme = "rsassa-pss-sha256".into();
    assert!(!odd.verify(b"m", &[0; 64]));
}

/// Keys made by `openssl genpkey` (PKCS#8 v1), one of them on a curve we do not use.
#[test]
fn openssl_keys_load() {
    let ed = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINAPlK/eafdUb3HLaDnfSJq+I95xYUwDr1P64jH078wW\n-----END PRIVATE KEY-----\n";
    let k = SigningKey::from_pkcs8_pem(ed).unwrap();
    assert_eq!(k.public().keyval.public, "7319f13d57d92815eb9e3af3940127036f01f1b07d1f5e50773a6b5ce2367d6a");
    assert!(k.public().verify(b"m", &k.sign(b"m").unwrap()));
    let ec = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggT6Bp96u2o6bVfBk\nMbq5tmIxwfx9Y20yWP9zyO4YDu2hRANCAATnTjs33ztmwfvBqF3rtcbA03dchAc8\nKV4MVS9h3KpwCgBrVPy31qrebv6egiSkvl659JKL48zBG1JfQ6lPdprs\n-----END PRIVATE KEY-----\n";
    let k = SigningKey::from_pkcs8_pem(ec).unwrap();
    assert_eq!(
        k.public().keyval.public,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5047N987ZsH7wahd67XGwNN3XIQH\n\
         PCleDFUvYdyqcAoAa1T8t9aq3m7+noIkpL5eufSSi+PMwRtSX0OpT3aa7A==\n-----END PUBLIC KEY-----\n"
    );
    let p384 = "-----BEGIN PRIVATE KEY-----\n\
        MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCdRs/G7gL6+qt2ak6w\n\
        sYDW5Z5fU7pq9hiRdvLjf7eyYixKbHFUK7arAjoZ0n2DBPuhZANiAAT/tX+/qvjT\n\
        MvnhRbzCZnwfegvNlelvbmXV5hAtavR8rRRdrPWbIkmGTRFPJy1STHQR+U5gdFj9\n\
        eBm2zrv5cdDIVFWeFwLsQqti8xqRn2rR+UShYqRVmS7KeDr0dTIFrP8=\n-----END PRIVATE KEY-----\n";
    assert!(matches!(SigningKey::from_pkcs8_pem(p384), Err(TufError::Malformed(_))));
}

#[test]
fn debug_does_not_print_the_secret() {
    let k = key(KeyType::Ed25519);
    let pem = k.to_pkcs8_pem();
    let body = pem.lines().nth(1).unwrap().to_owned();
    assert!(!format!("{k:?}").contains(&body));
}

// ---------------------------------------------------------------- format

#[test]
fn metadata_shape_is_tuf_1_0() {
    let repo = Repo::new();
    let root: Value = serde_json::from_slice(&repo.root_json()).unwrap();
    let s = &root["signed"];
    assert_eq!(s["_type"], "root");
    assert_eq!(s["spec_version"], SPEC_VERSION);
    assert_eq!(s["consistent_snapshot"], false);
    assert_eq!(s["x-palisade-director"]["keyids"][0], repo.director_key.key_id().as_str());
    assert_eq!(s["roles"]["targets"]["keyids"][0], repo.targets_key.key_id().as_str());
    assert_eq!(root["signatures"][0]["keyid"], repo.root_key.key_id().as_str());
    let [ts, snap, targets] = repo.publish(1, b"image", 3);
    let ts: Value = serde_json::from_slice(&ts).unwrap();
    assert_eq!(ts["signed"]["_type"], "timestamp");
    assert_eq!(ts["signed"]["meta"]["snapshot.json"]["length"], snap.len());
    let targets: Value = serde_json::from_slice(&targets).unwrap();
    let entry = &targets["signed"]["targets"]["fw-meter-3.bin"];
    assert_eq!(
        entry["custom"],
        json!({"version": "1.3.0", "hardware": HW, "counter": 3, "sbom": {"bomFormat": "CycloneDX"}})
    );
    assert_eq!(entry["length"], 5);
}

#[test]
fn parse_checks_type_and_size_and_keeps_unknown_fields() {
    let repo = Repo::new();
    let json = repo.root_json();
    assert!(parse::<Root>(&json, 1 << 20).is_ok());
    assert!(matches!(parse::<Targets>(&json, 1 << 20), Err(TufError::Malformed(_))));
    assert!(matches!(parse::<Root>(&json, 10), Err(TufError::TooLarge { limit: 10 })));

    let mut v: Value = serde_json::from_slice(&json).unwrap();
    v["signed"]["x-future"] = json!({"n": 1});
    let parsed: Signed<Root> = parse(&serde_json::to_vec(&v).unwrap(), 1 << 20).unwrap();
    assert_eq!(parsed.signed.extra.get("x-future"), Some(&json!({"n": 1})));
    assert_eq!(serde_json::to_value(&parsed.signed).unwrap()["x-future"], json!({"n": 1}));
}

#[test]
fn signatures_cover_unknown_fields() {
    let repo = Repo::new();
    let mut root = repo.root.clone();
    root.extra.insert("x-note".into(), json!("kept"));
    let json = signed(root, &[&repo.root_key]);
    assert_eq!(Trusted::new(&json).unwrap().root().extra.get("x-note"), Some(&json!("kept")));
    let mut v: Value = serde_json::from_slice(&json).unwrap();
    v["signed"]["x-note"] = json!("changed");
    let tampered = serde_json::to_vec(&v).unwrap();
    assert!(matches!(Trusted::new(&tampered), Err(TufError::BadSignature { role }) if role == "root"));
}

#[test]
fn expiry_format() {
    assert_eq!(expires_at(0), "1970-01-01T00:00:00Z");
    assert_eq!(expires_at(1_750_000_000), "2025-06-15T15:06:40Z");
    assert_eq!(parse_expires("2025-06-15T15:06:40Z"), Ok(1_750_000_000));
    assert_eq!(expires_at(i64::MAX), "9999-12-31T23:59:59Z");
    assert_eq!(expires_at(i64::MIN), "0000-01-01T00:00:00Z");
    for bad in [
        "2025-06-15T15:06:40",
        "2025-06-15 15:06:40Z",
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-06-15T24:00:00Z",
        "+025-06-15T15:06:40Z",
        "2025-06-15T15:06:40+00:00",
        "",
    ] {
        assert!(parse_expires(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------- workflow

#[test]
fn happy_path_end_to_end() {
    let repo = Repo::new();
    let image = b"firmware image bytes".repeat(100);
    let mut t = repo.trusted();
    t.check_root_fresh(NOW).unwrap();
    update_all(&mut t, &repo.publish(1, &image, 7)).unwrap();
    assert_eq!(t.targets().unwrap().version, 1);
    let a_json = signed(repo.assignment(&image, 7), &[&repo.director_key]);
    let a = t.verify_assignment(&a_json, DEVICE, NOW).unwrap();
    let entry = t.approve(&a, HW, 6, 7).unwrap();
    assert_eq!(entry.info().unwrap(), TargetInfo { version: "1.7.0".into(), hardware: HW.into(), counter: 7 });
    let mut check = ImageCheck::new(&entry).unwrap();
    for chunk in image.chunks(333) {
        check.update(chunk).unwrap();
    }
    assert_eq!(check.received(), image.len() as u64);
    check.finish().unwrap();
}

#[test]
fn threshold_two_of_three() {
    let mut repo = Repo::new();
    let extra = [key(KeyType::Ed25519), key(KeyType::EcdsaP256)];
    let publics = [repo.targets_key.public(), extra[0].public(), extra[1].public()];
    repo.root = new_root(
        &[repo.root_key.public()],
        1,
        &publics,
        2,
        &repo.snapshot_key.public(),
        &repo.timestamp_key.public(),
        &repo.director_key.public(),
        1,
        &later(),
    );
    let outsider = key(KeyType::Ed25519);
    let meta = repo.targets_meta(1, b"img", 1);
    let attempt = |keys: &[&SigningKey]| {
        let mut t = repo.trusted();
        let snap = repo.snapshot(1, 1);
        t.update_timestamp(&repo.timestamp(1, &snap, 1), NOW).unwrap();
        t.update_snapshot(&snap, NOW).unwrap();
        t.update_targets(&signed(meta.clone(), keys), NOW).map(|_| ())
    };
    let need2 = |got| Err(TufError::Threshold { role: "targets".into(), got, need: 2 });
    assert_eq!(attempt(&[&repo.targets_key]), need2(1));
    assert_eq!(attempt(&[&repo.targets_key, &outsider]), need2(1), "a key outside the role does not count");
    assert_eq!(attempt(&[&repo.targets_key, &extra[1]]), Ok(()));
    assert_eq!(attempt(&[&extra[0], &extra[1], &repo.targets_key]), Ok(()));

    // The same signature twice is refused outright (as python-tuf does).
    let mut twice = Signed::new(meta.clone());
    twice.sign(&repo.targets_key).unwrap();
    twice.signatures.push(twice.signatures[0].clone());
    let mut t = repo.trusted();
    let snap = repo.snapshot(1, 1);
    t.update_timestamp(&repo.timestamp(1, &snap, 1), NOW).unwrap();
    t.update_snapshot(&snap, NOW).unwrap();
    assert!(matches!(t.update_targets(&twice.to_json().unwrap(), NOW), Err(TufError::Malformed(_))));
}

#[test]
fn root_rotation() {
    let repo = Repo::new();
    let new_key = key(KeyType::EcdsaP256);
    let mut v2 = repo.root.clone();
    v2.version = 2;
    let old_id = repo.root_key.key_id();
    v2.keys.remove(&old_id);
    v2.keys.insert(new_key.key_id(), new_key.public());
    v2.roles.insert("root".into(), RoleKeys { keyids: vec![new_key.key_id()], threshold: 1 });

    // Signed only by the new key: the trusted root did not authorise it.
    let mut t = repo.trusted();
    assert_eq!(
        t.update_root(&signed(v2.clone(), &[&new_key]), NOW),
        Err(TufError::Threshold { role: "root".into(), got: 0, need: 1 })
    );
    // Signed only by the old key: the new root does not vouch for itself.
    assert_eq!(
        t.update_root(&signed(v2.clone(), &[&repo.root_key]), NOW),
        Err(TufError::Threshold { role: "root".into(), got: 0, need: 1 })
    );
    // Skipping a version.
    let mut v3 = v2.clone();
    v3.version = 3;
    assert_eq!(
        t.update_root(&signed(v3.clone(), &[&repo.root_key, &new_key]), NOW),
        Err(TufError::RootVersion { want: 2, got: 3 })
    );
    // Signed by both: accepted, and from then on only the new key counts.
    t.update_root(&signed(v2.clone(), &[&repo.root_key, &new_key]), NOW).unwrap();
    assert_eq!(t.root().version, 2);
    t.check_root_fresh(NOW).unwrap();
    assert_eq!(
        t.update_root(&signed(v3.clone(), &[&repo.root_key]), NOW),
        Err(TufError::Threshold { role: "root".into(), got: 0, need: 1 })
    );
    t.update_root(&signed(v3, &[&new_key]), NOW).unwrap();
    // Replaying the current version is not "the next".
    assert_eq!(
        t.update_root(&signed(v2, &[&repo.root_key, &new_key]), NOW),
        Err(TufError::RootVersion { want: 4, got: 2 })
    );
}

#[test]
fn rotating_the_timestamp_key_resets_timestamp_and_snapshot() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(5, b"img", 1)).unwrap();
    let new_ts = key(KeyType::Ed25519);
    let mut v2 = repo.root.clone();
    v2.version = 2;
    v2.keys.insert(new_ts.key_id(), new_ts.public());
    v2.roles.insert("timestamp".into(), RoleKeys { keyids: vec![new_ts.key_id()], threshold: 1 });
    t.update_root(&signed(v2, &[&repo.root_key]), NOW).unwrap();
    assert!(t.timestamp().is_none() && t.snapshot().is_none());
    // A lower version, under the new key, is accepted again (fast-forward recovery).
    let snap = repo.snapshot(1, 1);
    let ts = signed(Timestamp::for_snapshot(1, &later(), &snap, 1), &[&new_ts]);
    t.update_timestamp(&ts, NOW).unwrap();
    // The old timestamp key no longer counts.
    assert_eq!(
        t.update_timestamp(&repo.timestamp(9, &snap, 1), NOW),
        Err(TufError::Threshold { role: "timestamp".into(), got: 0, need: 1 })
    );
}

// ---------------------------------------------------------------- attacks

#[test]
fn attack_tampered_image() {
    let entry = target_entry(b"the real image", "1.0.0", HW, 1, None);
    let mut check = ImageCheck::new(&entry).unwrap();
    check.update(b"the evil image").unwrap();
    assert_eq!(check.finish(), Err(TufError::HashMismatch));
}

#[test]
fn attack_endless_data() {
    let entry = target_entry(b"0123456789", "1.0.0", HW, 1, None);
    let mut check = ImageCheck::new(&entry).unwrap();
    check.update(b"01234").unwrap();
    check.update(b"56789").unwrap();
    assert_eq!(check.update(b"!"), Err(TufError::TooLarge { limit: 10 }));
    assert_eq!(check.received(), 10);
    // And a short image is not complete.
    let mut short = ImageCheck::new(&entry).unwrap();
    short.update(b"0123").unwrap();
    assert_eq!(short.finish(), Err(TufError::LengthMismatch { want: 10, got: 4 }));
    let mut none = TargetFile { length: 1, hashes: BTreeMap::new(), custom: None };
    assert!(ImageCheck::new(&none).is_err());
    none.hashes.insert("sha256".into(), "zz".into());
    assert!(ImageCheck::new(&none).is_err());
}

#[test]
fn attack_targets_signed_by_a_key_outside_the_catalogue() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    let snap = repo.snapshot(1, 1);
    t.update_timestamp(&repo.timestamp(1, &snap, 1), NOW).unwrap();
    t.update_snapshot(&snap, NOW).unwrap();
    let evil = signed(repo.targets_meta(1, b"evil", 99), &[&key(KeyType::Ed25519)]);
    assert_eq!(
        t.update_targets(&evil, NOW).map(|_| ()),
        Err(TufError::Threshold { role: "targets".into(), got: 0, need: 1 })
    );
    // Signed by the real key, then altered.
    let mut v: Value = serde_json::from_slice(&repo.targets(1, b"img", 1)).unwrap();
    v["signed"]["targets"]["fw-meter-3.bin"]["length"] = json!(1);
    let altered = serde_json::to_vec(&v).unwrap();
    assert_eq!(t.update_targets(&altered, NOW).map(|_| ()), Err(TufError::BadSignature { role: "targets".into() }));
    // An assignment naming a target the catalogue does not have.
    t.update_targets(&repo.targets(1, b"img", 1), NOW).unwrap();
    let mut a = repo.assignment(b"img", 1);
    a.target = "evil.bin".into();
    assert_eq!(t.approve(&a, HW, 0, 0), Err(TufError::NotInCatalogue { target: "evil.bin".into() }));
    // The right name with another image.
    let other = repo.assignment(b"imh", 1);
    assert_eq!(t.approve(&other, HW, 0, 0), Err(TufError::HashMismatch));
    let mut longer = repo.assignment(b"img", 1);
    longer.length = 4;
    assert_eq!(t.approve(&longer, HW, 0, 0), Err(TufError::LengthMismatch { want: 3, got: 4 }));
}

#[test]
fn attack_rollback_of_the_image() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(1, b"img", 5)).unwrap();
    let a = repo.assignment(b"img", 5);
    let image = |have, got| Err(TufError::Rollback { role: "image".into(), have, got });
    assert_eq!(t.approve(&a, HW, 5, 0), image(5, 5), "same counter as installed");
    assert_eq!(t.approve(&a, HW, 9, 0), image(9, 5), "lower than installed");
    assert_eq!(t.approve(&a, HW, 1, 6), image(6, 5), "below the floor");
    assert!(t.approve(&a, HW, 4, 5).is_ok());
    // The assignment cannot claim another counter than the catalogue.
    let mut lying = a.clone();
    lying.counter = 50;
    assert!(matches!(t.approve(&lying, HW, 4, 0), Err(TufError::MixAndMatch { .. })));
}

#[test]
fn attack_rollback_of_metadata() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(2, b"img", 1)).unwrap();
    // An older timestamp.
    let old = repo.publish(1, b"img", 1);
    assert_eq!(t.update_timestamp(&old[0], NOW), Err(TufError::Rollback { role: "timestamp".into(), have: 2, got: 1 }));
    // A newer timestamp naming an older snapshot.
    let snap1 = repo.snapshot(1, 1);
    assert_eq!(
        t.update_timestamp(&repo.timestamp(3, &snap1, 1), NOW),
        Err(TufError::Rollback { role: "snapshot".into(), have: 2, got: 1 })
    );
    // A newer snapshot naming older targets.
    let snap3 = repo.snapshot(3, 1);
    t.update_timestamp(&repo.timestamp(3, &snap3, 3), NOW).unwrap();
    assert_eq!(t.update_snapshot(&snap3, NOW), Err(TufError::Rollback { role: "targets".into(), have: 2, got: 1 }));
    // An equal timestamp version keeps the trusted one.
    let same = signed(Timestamp::for_snapshot(3, &expires_at(NOW + 99 * DAY), &snap3, 3), &[&repo.timestamp_key]);
    t.update_timestamp(&same, NOW).unwrap();
    assert_eq!(t.timestamp().unwrap().expires, later());
}

#[test]
fn attack_rollback_survives_save_and_load() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(4, b"img", 1)).unwrap();
    let a = signed(Assignment { issued: 7, ..repo.assignment(b"img", 1) }, &[&repo.director_key]);
    let a = t.verify_assignment(&a, DEVICE, NOW).unwrap();
    t.record_assignment(&a);
    let mut loaded = Trusted::load(&t.save().unwrap()).unwrap();
    assert_eq!(loaded.root(), t.root());
    assert_eq!(loaded.targets(), t.targets());
    assert_eq!(loaded.assignment_issued(), 7);
    assert_eq!(
        loaded.update_timestamp(&repo.publish(3, b"img", 1)[0], NOW),
        Err(TufError::Rollback { role: "timestamp".into(), have: 4, got: 3 })
    );
    let older = signed(Assignment { issued: 6, ..repo.assignment(b"img", 1) }, &[&repo.director_key]);
    assert_eq!(
        loaded.verify_assignment(&older, DEVICE, NOW),
        Err(TufError::Rollback { role: "assignment".into(), have: 7, got: 6 })
    );
    assert!(Trusted::load(b"{}").is_err());
    assert!(Trusted::load(b"not json").is_err());
}

#[test]
fn attack_freeze() {
    let repo = Repo::new();
    let past = expires_at(NOW - 1);
    let at_now = expires_at(NOW);
    let expired = |role: &str, expires: &str| Err(TufError::Expired { role: role.into(), expires: expires.into() });

    // Root.
    let mut old_root = repo.root.clone();
    old_root.expires = past.clone();
    let t = Trusted::new(&signed(old_root, &[&repo.root_key])).unwrap();
    assert_eq!(t.check_root_fresh(NOW), expired("root", &past));

    // Timestamp (expiring exactly now counts as expired, as in python-tuf).
    let mut t = repo.trusted();
    let snap = repo.snapshot(1, 1);
    let mut ts = Timestamp::for_snapshot(1, &at_now, &snap, 1);
    assert_eq!(t.update_timestamp(&signed(ts.clone(), &[&repo.timestamp_key]), NOW), expired("timestamp", &at_now));
    ts.expires = later();
    t.update_timestamp(&signed(ts, &[&repo.timestamp_key]), NOW).unwrap();

    // Snapshot.
    let stale_snap = signed(Snapshot::for_targets(1, &past, 1), &[&repo.snapshot_key]);
    let mut t = repo.trusted();
    t.update_timestamp(&repo.timestamp(1, &stale_snap, 1), NOW).unwrap();
    assert_eq!(t.update_snapshot(&stale_snap, NOW), expired("snapshot", &past));

    // Targets.
    let mut t = repo.trusted();
    let mut targets = repo.targets_meta(1, b"img", 1);
    targets.expires = past.clone();
    let snap = repo.snapshot(1, 1);
    t.update_timestamp(&repo.timestamp(1, &snap, 1), NOW).unwrap();
    t.update_snapshot(&snap, NOW).unwrap();
    assert_eq!(t.update_targets(&signed(targets, &[&repo.targets_key]), NOW).map(|_| ()), expired("targets", &past));

    // A trusted timestamp that has since expired stops the snapshot.
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(1, b"img", 1)).unwrap();
    let much_later = NOW + 365 * DAY;
    assert!(
        matches!(t.update_snapshot(&repo.snapshot(1, 1), much_later), Err(TufError::Expired { role, .. }) if role == "timestamp")
    );
    // And an expired root stops everything.
    assert!(
        matches!(t.update_timestamp(&repo.publish(2, b"img", 1)[0], much_later), Err(TufError::Expired { role, .. }) if role == "root")
    );

    // Assignment.
    let mut a = repo.assignment(b"img", 1);
    a.expires = past.clone();
    let a = signed(a, &[&repo.director_key]);
    assert_eq!(repo.trusted().verify_assignment(&a, DEVICE, NOW).map(|_| ()), expired("assignment", &past));
}

#[test]
fn attack_metadata_for_another_device_or_hardware() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(1, b"img", 2)).unwrap();
    let a_json = signed(repo.assignment(b"img", 2), &[&repo.director_key]);
    assert_eq!(
        t.verify_assignment(&a_json, "dev-0002", NOW),
        Err(TufError::WrongDevice { want: "dev-0002".into(), got: DEVICE.into() })
    );
    let a = t.verify_assignment(&a_json, DEVICE, NOW).unwrap();
    assert_eq!(t.approve(&a, "meter-4", 0, 0), Err(TufError::WrongHardware { want: "meter-4".into(), got: HW.into() }));
    // Not signed by the director.
    let forged = signed(repo.assignment(b"img", 2), &[&repo.targets_key]);
    assert_eq!(
        t.verify_assignment(&forged, DEVICE, NOW),
        Err(TufError::Threshold { role: "director".into(), got: 0, need: 1 })
    );
    // A root without a director trusts no assignment.
    let mut root = repo.root.clone();
    root.director = None;
    let t = Trusted::new(&signed(root, &[&repo.root_key])).unwrap();
    assert_eq!(t.verify_assignment(&a_json, DEVICE, NOW), Err(TufError::NoDirector));
    // Other metadata is not an assignment.
    assert!(matches!(
        repo.trusted().verify_assignment(&repo.root_json(), DEVICE, NOW),
        Err(TufError::Threshold { .. } | TufError::Malformed(_))
    ));
}

#[test]
fn attack_mix_and_match() {
    let repo = Repo::new();
    // Targets of another version than the snapshot names.
    let mut t = repo.trusted();
    let snap = repo.snapshot(1, 2);
    t.update_timestamp(&repo.timestamp(1, &snap, 1), NOW).unwrap();
    t.update_snapshot(&snap, NOW).unwrap();
    assert!(matches!(
        t.update_targets(&repo.targets(1, b"img", 1), NOW),
        Err(TufError::MixAndMatch { role, .. }) if role == "targets"
    ));
    t.update_targets(&repo.targets(2, b"img", 1), NOW).unwrap();

    // A snapshot other than the one the timestamp hashed (same version, validly signed).
    let mut t = repo.trusted();
    let real = repo.snapshot(1, 1);
    let other = signed(Snapshot::for_targets(1, &expires_at(NOW + 99 * DAY), 1), &[&repo.snapshot_key]);
    t.update_timestamp(&repo.timestamp(1, &real, 1), NOW).unwrap();
    assert!(matches!(t.update_snapshot(&other, NOW), Err(TufError::MixAndMatch { role, .. }) if role == "snapshot"));
    // A snapshot of another version than the timestamp names (length and hash left out).
    let mut ts = Timestamp::for_snapshot(2, &later(), &real, 2);
    ts.meta.insert("snapshot.json".into(), MetaFile { version: 2, length: None, hashes: None });
    t.update_timestamp(&signed(ts, &[&repo.timestamp_key]), NOW).unwrap();
    assert!(matches!(t.update_snapshot(&real, NOW), Err(TufError::MixAndMatch { role, .. }) if role == "snapshot"));
    // Targets checked against a snapshot the newest timestamp no longer names.
    let mut t = repo.trusted();
    update_all(&mut t, &repo.publish(1, b"img", 1)).unwrap();
    let snap2 = repo.snapshot(2, 2);
    t.update_timestamp(&repo.timestamp(2, &snap2, 2), NOW).unwrap();
    assert!(matches!(
        t.update_targets(&repo.targets(1, b"img", 1), NOW),
        Err(TufError::MixAndMatch { role, .. }) if role == "snapshot"
    ));
}

#[test]
fn workflow_order_is_enforced() {
    let repo = Repo::new();
    let mut t = repo.trusted();
    assert_eq!(t.update_snapshot(&repo.snapshot(1, 1), NOW), Err(TufError::Missing { role: "timestamp".into() }));
    let a = repo.assignment(b"img", 1);
    assert_eq!(t.approve(&a, HW, 0, 0), Err(TufError::Missing { role: "targets".into() }));
}

#[test]
fn malformed_roots_are_refused() {
    let repo = Repo::new();
    type Edit = Box<dyn Fn(&mut Root)>;
    let cases: Vec<Edit> = vec![
        Box::new(|r| drop(r.roles.remove("snapshot"))),
        Box::new(|r| r.roles.get_mut("targets").unwrap().threshold = 0),
        Box::new(|r| r.roles.get_mut("targets").unwrap().threshold = 2),
        Box::new(|r| r.roles.get_mut("timestamp").unwrap().keyids.push("00".into())),
        Box::new(|r| r.spec_version = "2.0.0".into()),
        Box::new(|r| r.version = 0),
        Box::new(|r| r.expires = "tomorrow".into()),
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut root = repo.root.clone();
        case(&mut root);
        assert!(matches!(Trusted::new(&signed(root, &[&repo.root_key])), Err(TufError::Malformed(_))), "case {i}");
    }
    // Keys listed twice under two ids are one key.
    let mut root = repo.root.clone();
    let mut twin = repo.root_key.public();
    twin.keyval.public = twin.keyval.public.to_uppercase();
    let twin_id = twin.key_id();
    root.keys.insert(twin_id.clone(), twin);
    let role = root.roles.get_mut("root").unwrap();
    role.keyids.push(twin_id);
    role.threshold = 2;
    assert!(matches!(Trusted::new(&signed(root, &[&repo.root_key])), Err(TufError::Malformed(_))));
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max_len in 0usize..600) {
        let r = parse::<Root>(&bytes, max_len);
        if bytes.len() > max_len {
            let too_large = matches!(r, Err(TufError::TooLarge { .. }));
            prop_assert!(too_large, "not refused as too large");
        }
        let _ = parse::<Targets>(&bytes, max_len);
        let _ = parse::<Assignment>(&bytes, max_len);
        let _ = Trusted::new(&bytes);
        let _ = Trusted::load(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_metadata(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let repo = Repo::new();
        let mut json = repo.root_json();
        let at = pos.index(json.len());
        json[at] = byte;
        let _ = parse::<Root>(&json, 1 << 20);
        let _ = Trusted::new(&json);
    }

    #[test]
    fn expiry_round_trips(secs in YEAR_0..YEAR_10000) {
        prop_assert_eq!(parse_expires(&expires_at(secs)), Ok(secs));
    }
}

const YEAR_0: i64 = -62_167_219_200;
const YEAR_10000: i64 = 253_402_300_800;
