//! Certificate audit checks, on demand and hourly: certificates expiring soon, keys shared by
//! several devices, the device CA nearing its end.

use std::collections::HashMap;

use palisade_store::StoreError;

use crate::{AppState, now_ms};

/// Certificates expiring within this many days are reported.
const EXPIRING_DAYS: i64 = 30;
/// The device CA is reported this long before it expires.
const CA_EXPIRING_DAYS: i64 = 180;

/// Runs the checks, records each finding, and returns them as `(kind, device, detail)`.
pub async fn certificate_checks(state: &AppState) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
    let now = now_ms();
    let mut found = Vec::new();
    let valid = state.store.valid_certificates().await?;
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &valid {
        if c.not_after_ms < now + EXPIRING_DAYS * 86_400_000 {
            found.push((
                "certificate_expiring".to_owned(),
                Some(c.device_id.clone()),
                format!("certificate {} expires soon", c.serial),
            ));
        }
        if c.key_kind.starts_with("RSA-")
            && c.key_kind.trim_start_matches("RSA-").parse::<u32>().is_ok_and(|b| b < 3072)
        {
            found.push((
                "weak_key".to_owned(),
                Some(c.device_id.clone()),
                format!("certificate {} uses {}", c.serial, c.key_kind),
            ));
        }
        by_key.entry(c.spki_sha256.as_str()).or_default().push(c.device_id.as_str());
    }
    for (key, mut devices) in by_key {
        devices.sort_unstable();
        devices.dedup();
        if devices.len() > 1 {
            found.push((
                "shared_key".to_owned(),
                None,
                format!("public key {key} is used by devices {}", devices.join(", ")),
            ));
        }
    }
    let ca_der = state.pki.chain.first().map_or(&[][..], |c| c.as_ref());
    if let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) {
        let not_after_ms = ca.validity().not_after.timestamp().saturating_mul(1000);
        if not_after_ms < now + CA_EXPIRING_DAYS * 86_400_000 {
            found.push(("ca_expiring".to_owned(), None, "the device CA expires within 180 days".to_owned()));
        }
    }
    for (kind, device, detail) in &found {
        state.store.add_finding(kind.clone(), device.clone(), detail.clone(), now).await?;
    }
    Ok(found)
}
