//! Offline repository helpers for the CLI and the server: building a root and catalogue entries.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{PublicKey, RoleKeys, Root, TargetFile};

/// A root (`consistent_snapshot` false) giving each role its keys; the director key signs
/// per-device assignments (`x-palisade-director`, threshold 1).
#[allow(clippy::too_many_arguments)]
pub fn new_root(
    root_keys: &[PublicKey],
    root_threshold: u32,
    targets_keys: &[PublicKey],
    targets_threshold: u32,
    snapshot_key: &PublicKey,
    timestamp_key: &PublicKey,
    director_key: &PublicKey,
    version: u64,
    expires: &str,
) -> Root {
    let mut keys = BTreeMap::new();
    let mut role = |members: &[&PublicKey], threshold: u32| {
        let mut keyids = Vec::new();
        for key in members {
            let id = key.key_id();
            if !keyids.contains(&id) {
                keyids.push(id.clone());
            }
            keys.insert(id, (*key).clone());
        }
        RoleKeys { keyids, threshold }
    };
    let root_role = role(&root_keys.iter().collect::<Vec<_>>(), root_threshold);
    let targets_role = role(&targets_keys.iter().collect::<Vec<_>>(), targets_threshold);
    let snapshot_role = role(&[snapshot_key], 1);
    let timestamp_role = role(&[timestamp_key], 1);
    let director = role(&[director_key], 1);
    let roles = BTreeMap::from([
        ("root".to_owned(), root_role),
        ("targets".to_owned(), targets_role),
        ("snapshot".to_owned(), snapshot_role),
        ("timestamp".to_owned(), timestamp_role),
    ]);
    Root { version, expires: expires.into(), keys, roles, director: Some(director), ..Root::default() }
}

/// The catalogue entry of `image`: length, SHA-256 and our `custom` fields.
pub fn target_entry(image: &[u8], version: &str, hardware: &str, counter: u64, sbom: Option<Value>) -> TargetFile {
    let sha = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, image));
    target_entry_for(u64::try_from(image.len()).unwrap_or(u64::MAX), &sha, version, hardware, counter, sbom)
}

/// The catalogue entry of an image known by its length and hex SHA-256 (e.g. streamed to disk).
pub fn target_entry_for(
    length: u64,
    sha256: &str,
    version: &str,
    hardware: &str,
    counter: u64,
    sbom: Option<Value>,
) -> TargetFile {
    let mut custom = json!({ "version": version, "hardware": hardware, "counter": counter });
    if let (Some(sbom), Some(map)) = (sbom, custom.as_object_mut()) {
        map.insert("sbom".into(), sbom);
    }
    TargetFile {
        length,
        hashes: BTreeMap::from([("sha256".to_owned(), sha256.to_ascii_lowercase())]),
        custom: Some(custom),
    }
}
