//! Fleet audit checks, hourly and on demand: certificates (expiring, weak, shared keys, the
//! device CA nearing its end), revoked certificates still connected, outdated firmware,
//! firmware the signed catalogue does not list, devices without an owner or silent too long,
//! accounts missing a required MFA, failing notification channels. Each is recorded as a
//! finding, unless the same one was recorded in the last 24 h.
//!
//! The decisions (version order, inactivity, "the last N all failed") are pure functions here;
//! the reads behind them are `palisade_store::fleet_checks`.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use palisade_store::StoreError;
use palisade_store::fleet_checks::{ChannelHealth, FleetDevice};
use palisade_store::identity::Finding;
use palisade_store::users::{CustomRole, User, UserStatus};

use crate::api::convert::rfc3339;
use crate::{AppState, now_ms};

const DAY_MS: i64 = 86_400_000;
/// Certificates expiring within this many days are reported.
const EXPIRING_DAYS: i64 = 30;
/// The device CA is reported this long before it expires.
const CA_EXPIRING_DAYS: i64 = 180;
/// Devices without a message or connection for this long are reported.
pub const INACTIVE_AFTER_MS: i64 = 30 * DAY_MS;
/// A channel is failing when it dead-lettered a delivery within this window…
const DEAD_LETTER_WINDOW_MS: i64 = DAY_MS;
/// …or when this many of its latest attempted deliveries all failed.
const FAILED_IN_A_ROW: usize = 5;
/// A finding recorded within this window is not recorded again.
const REPEAT_AFTER_MS: i64 = DAY_MS;
/// Devices read per query.
const DEVICE_PAGE: usize = 500;
/// Findings recorded per write.
const RECORD_BATCH: usize = 200;

/// A finding as the checks produce it: (kind, device, detail).
pub type Found = (String, Option<String>, String);

fn found(kind: &str, device: Option<&str>, detail: String) -> Found {
    (kind.to_owned(), device.map(str::to_owned), detail)
}

/// Runs every check, records each finding (unless recorded in the last 24 h), and returns them
/// as `(kind, device, detail)`.
pub async fn fleet_checks(state: &AppState) -> Result<Vec<Found>, StoreError> {
    Ok(run_fleet_checks(state).await?.into_iter().map(|f| (f.kind, f.device_id, f.detail)).collect())
}

/// [`fleet_checks`], returning the findings as stored (a repeat as its earlier record).
pub async fn run_fleet_checks(state: &AppState) -> Result<Vec<Finding>, StoreError> {
    let now = now_ms();
    let mut all = certificate_findings(state, now).await?;
    all.extend(revoked_still_connected(state).await?);
    all.extend(device_findings(state, now).await?);
    all.extend(mfa_findings(state).await?);
    all.extend(channel_findings(state, now).await?);
    record(state, all, now).await
}

/// The certificate checks alone (`POST /api/v1/pki/audit`), recorded the same way.
pub async fn certificate_checks(state: &AppState) -> Result<Vec<Finding>, StoreError> {
    let now = now_ms();
    let found = certificate_findings(state, now).await?;
    record(state, found, now).await
}

async fn record(state: &AppState, found: Vec<Found>, now: i64) -> Result<Vec<Finding>, StoreError> {
    let mut out = Vec::with_capacity(found.len());
    for batch in found.chunks(RECORD_BATCH) {
        out.extend(state.store.record_findings(batch.to_vec(), now - REPEAT_AFTER_MS, now).await?);
    }
    Ok(out)
}

async fn certificate_findings(state: &AppState, now: i64) -> Result<Vec<Found>, StoreError> {
    let mut out = Vec::new();
    let valid = state.store.valid_certificates().await?;
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &valid {
        if c.not_after_ms < now + EXPIRING_DAYS * DAY_MS {
            out.push(found(
                "certificate_expiring",
                Some(&c.device_id),
                format!("certificate {} expires soon", c.serial),
            ));
        }
        if c.key_kind.starts_with("RSA-")
            && c.key_kind.trim_start_matches("RSA-").parse::<u32>().is_ok_and(|b| b < 3072)
        {
            out.push(found("weak_key", Some(&c.device_id), format!("certificate {} uses {}", c.serial, c.key_kind)));
        }
        by_key.entry(c.spki_sha256.as_str()).or_default().push(c.device_id.as_str());
    }
    let mut shared: Vec<(&str, Vec<&str>)> = by_key.into_iter().collect();
    shared.sort_unstable();
    for (key, mut devices) in shared {
        devices.sort_unstable();
        devices.dedup();
        if devices.len() > 1 {
            out.push(found("shared_key", None, format!("public key {key} is used by devices {}", devices.join(", "))));
        }
    }
    let ca_der = state.pki.chain.first().map_or(&[][..], |c| c.as_ref());
    if let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) {
        let not_after_ms = ca.validity().not_after.timestamp().saturating_mul(1000);
        if not_after_ms < now + CA_EXPIRING_DAYS * DAY_MS {
            out.push(found("ca_expiring", None, "the device CA expires within 180 days".to_owned()));
        }
    }
    Ok(out)
}

/// Live sessions on a revoked certificate (the plane closes them within a second, so normally
/// none: one found here means that path failed).
async fn revoked_still_connected(state: &AppState) -> Result<Vec<Found>, StoreError> {
    let live = state.plane.live_sessions();
    if live.is_empty() {
        return Ok(Vec::new());
    }
    let revoked: HashSet<String> = state
        .store
        .revoked_among(live.iter().map(|(_, s)| s.clone()).collect())
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    Ok(live
        .iter()
        .filter(|(_, serial)| revoked.contains(serial))
        .map(|(device, serial)| {
            found(
                "revoked_still_connected",
                Some(device.as_str()),
                format!("a live session uses revoked certificate {serial}"),
            )
        })
        .collect())
}

/// Outdated firmware, no owner, inactivity: two passes over the fleet, page by page (the first
/// finds the newest firmware of each model, the second judges each device).
async fn device_findings(state: &AppState, now: i64) -> Result<Vec<Found>, StoreError> {
    let mut newest: HashMap<String, String> = HashMap::new();
    let mut after = None;
    loop {
        let page = state.store.fleet_devices(after.clone(), DEVICE_PAGE).await?;
        for d in &page {
            if let Some(v) = d.running_firmware() {
                match newest.get_mut(&d.model) {
                    Some(n) if compare_versions(v, n) == Ordering::Greater => v.clone_into(n),
                    Some(_) => {}
                    None => {
                        newest.insert(d.model.clone(), v.to_owned());
                    }
                }
            }
        }
        match page.last() {
            Some(last) if page.len() == DEVICE_PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    let live: HashSet<String> = state.plane.live_sessions().into_iter().map(|(device, _)| device).collect();
    // Versions the signed catalogue lists, per model (models it has no target for are not judged).
    let mut known: HashMap<String, HashSet<String>> = HashMap::new();
    for t in state.store.firmware_catalogue().await? {
        known.entry(t.hardware).or_default().insert(t.version);
    }
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state.store.fleet_devices(after.clone(), DEVICE_PAGE).await?;
        for d in &page {
            judge_device(d, &newest, live.contains(&d.id), now, &mut out);
            if let (Some(versions), Some(running)) = (known.get(&d.model), d.running_firmware())
                && !versions.contains(running)
            {
                let detail =
                    format!("runs firmware {running}, which the signed catalogue does not list for model {}", d.model);
                out.push(found("unknown_firmware", Some(d.id.as_str()), detail));
            }
        }
        match page.last() {
            Some(last) if page.len() == DEVICE_PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    Ok(out)
}

fn judge_device(d: &FleetDevice, newest: &HashMap<String, String>, live: bool, now: i64, out: &mut Vec<Found>) {
    let id = Some(d.id.as_str());
    if let (Some(running), Some(current)) = (d.running_firmware(), newest.get(&d.model))
        && is_outdated(running, current)
    {
        let detail = format!("firmware {running} is older than {current}, the current version of model {}", d.model);
        out.push(found("outdated_firmware", id, detail));
    }
    if d.owner.as_deref().is_none_or(|o| o.trim().is_empty()) {
        out.push(found("no_owner", id, "no owner is recorded".to_owned()));
    }
    if live {
        return;
    }
    match inactivity(d.last_seen_ms(), d.created_ms, now, INACTIVE_AFTER_MS) {
        Some(Inactivity::SilentSince(at)) => out.push(found(
            "inactive_not_decommissioned",
            id,
            format!("no message or connection since {} (over 30 days) and not decommissioned", rfc3339(at)),
        )),
        Some(Inactivity::NeverReported) => out.push(found(
            "inactive_not_decommissioned",
            id,
            format!("never reported since it was registered on {} and not decommissioned", rfc3339(d.created_ms)),
        )),
        None => {}
    }
}

/// Active accounts that must use MFA and have none, by the same rule sign-in enforces
/// ([`crate::auth::Auth::mfa_required`]); what `GET /api/v1/reports/mfa-coverage` counts.
pub fn required_without_mfa<'a>(auth: &crate::auth::Auth, users: &'a [User], roles: &[CustomRole]) -> Vec<&'a User> {
    users.iter().filter(|u| u.status == UserStatus::Active && auth.mfa_required(u, roles) && !u.mfa_enabled()).collect()
}

async fn mfa_findings(state: &AppState) -> Result<Vec<Found>, StoreError> {
    let users = state.store.users().await?;
    let roles = state.store.custom_roles().await?;
    Ok(required_without_mfa(&state.auth, &users, &roles)
        .into_iter()
        .map(|u| {
            let bound: Vec<&str> = u.bindings.iter().map(|b| b.role.as_str()).collect();
            let detail = format!("user {} has no MFA, which their roles require ({})", u.username, bound.join(", "));
            found("mfa_missing", None, detail)
        })
        .collect())
}

async fn channel_findings(state: &AppState, now: i64) -> Result<Vec<Found>, StoreError> {
    let health = state.store.channel_health(now - DEAD_LETTER_WINDOW_MS, FAILED_IN_A_ROW).await?;
    Ok(health.iter().filter_map(channel_failing).map(|detail| found("failing_channel", None, detail)).collect())
}

/// Why an enabled channel is failing, if it is. (The text stays the same while the cause does,
/// so that an hourly run does not record it again.)
fn channel_failing(c: &ChannelHealth) -> Option<String> {
    if !c.enabled {
        return None;
    }
    let mut why = Vec::new();
    if c.dead_since > 0 {
        why.push("dead-lettered deliveries in the last 24 h".to_owned());
    }
    if all_failed(&c.latest_failed, FAILED_IN_A_ROW) {
        why.push(format!("its last {FAILED_IN_A_ROW} attempted deliveries all failed"));
    }
    (!why.is_empty()).then(|| format!("channel {} ({}): {}", c.name, c.id, why.join("; ")))
}

/// Whether the `n` latest outcomes (newest first; `true` = failed) all failed. Fewer than `n`
/// outcomes are not enough to say.
pub fn all_failed(latest_failed: &[bool], n: usize) -> bool {
    n > 0 && latest_failed.len() >= n && latest_failed.iter().take(n).all(|failed| *failed)
}

/// Why a device counts as inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactivity {
    /// Its last message or connection was at this time.
    SilentSince(i64),
    /// It never sent a message nor connected, and was registered longer ago than the threshold.
    NeverReported,
}

/// Whether a device last seen at `last_seen_ms` (never: `None`), registered at `created_ms`,
/// has been silent for longer than `threshold_ms` at `now_ms`.
pub fn inactivity(last_seen_ms: Option<i64>, created_ms: i64, now_ms: i64, threshold_ms: i64) -> Option<Inactivity> {
    let cutoff = now_ms.saturating_sub(threshold_ms);
    match last_seen_ms {
        Some(at) => (at < cutoff).then_some(Inactivity::SilentSince(at)),
        None => (created_ms < cutoff).then_some(Inactivity::NeverReported),
    }
}

/// Whether firmware `running` is older than `current`.
pub fn is_outdated(running: &str, current: &str) -> bool {
    compare_versions(running, current) == Ordering::Less
}

/// Orders dotted versions part by part: numeric parts as numbers (`1.10.0` > `1.9.3`, `1.02` =
/// `1.2`), other parts as text; a missing part counts as `0` (`1.2` = `1.2.0`). A leading `v`
/// is ignored.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parts(v: &str) -> Vec<&str> {
        let v = v.trim();
        v.strip_prefix(['v', 'V'])
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or(v)
            .split('.')
            .collect()
    }
    fn numeric(p: &str) -> Option<&str> {
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.trim_start_matches('0'))
    }
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or("0");
        let y = b.get(i).copied().unwrap_or("0");
        let order = match (numeric(x), numeric(y)) {
            // Digits only, leading zeros dropped: the longer is larger, else compare as text.
            (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_number_by_number() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.10.0", "1.9.3", Greater),
            ("1.9.3", "1.10.0", Less),
            ("1.2", "1.2.0", Equal),
            ("1.2", "1.2.1", Less),
            ("1.02", "1.2", Equal),
            ("v2.0", "1.99", Greater),
            ("2.0.0", "2.0.0", Equal),
            ("99999999999999999999999.1", "99999999999999999999998.9", Greater),
            ("1.0.beta", "1.0.alpha", Greater),
            ("1.a", "1.10", Greater),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
        assert!(is_outdated("1.9.3", "1.10.0"));
        assert!(!is_outdated("1.10.0", "1.10.0"));
        assert!(!is_outdated("1.10.1", "1.10.0"));
    }

    #[test]
    fn inactivity_is_silence_beyond_the_threshold() {
        let (now, t) = (100 * DAY_MS, INACTIVE_AFTER_MS);
        assert_eq!(inactivity(Some(now - t - 1), 0, now, t), Some(Inactivity::SilentSince(now - t - 1)));
        assert_eq!(inactivity(Some(now - t), 0, now, t), None, "exactly the threshold is not beyond it");
        assert_eq!(inactivity(Some(now - DAY_MS), 0, now, t), None);
        assert_eq!(inactivity(None, now - t - 1, now, t), Some(Inactivity::NeverReported));
        assert_eq!(inactivity(None, now - DAY_MS, now, t), None, "registered recently: not yet overdue");
        assert_eq!(inactivity(None, i64::MIN, i64::MIN + 1, t), None, "no overflow");
    }

    #[test]
    fn all_failed_needs_n_failures_in_a_row() {
        assert!(all_failed(&[true; 5], 5));
        assert!(all_failed(&[true, true, true, true, true, false], 5), "older successes do not count");
        assert!(!all_failed(&[true, true, false, true, true], 5));
        assert!(!all_failed(&[true; 4], 5), "too few to say");
        assert!(!all_failed(&[], 0));
    }

    fn health(enabled: bool, dead_since: i64, latest_failed: Vec<bool>) -> ChannelHealth {
        ChannelHealth { id: "c1".into(), name: "ops".into(), enabled, dead_since, latest_failed }
    }

    #[test]
    fn failing_channels_say_why_in_stable_words() {
        assert_eq!(channel_failing(&health(true, 0, vec![false, true])), None);
        assert_eq!(
            channel_failing(&health(true, 3, vec![])).as_deref(),
            Some("channel ops (c1): dead-lettered deliveries in the last 24 h")
        );
        assert_eq!(
            channel_failing(&health(true, 1, vec![true; 5])),
            channel_failing(&health(true, 7, vec![true; 6])),
            "the count does not change the finding"
        );
        assert!(channel_failing(&health(true, 0, vec![true; 5])).unwrap().contains("last 5 attempted"));
        assert_eq!(channel_failing(&health(false, 3, vec![true; 5])), None, "a disabled channel is not in service");
    }

    fn fleet_device(model: &str, owner: Option<&str>, fw: Option<&str>, reported: Option<&str>) -> FleetDevice {
        FleetDevice {
            id: "d1".into(),
            serial: "S1".into(),
            model: model.into(),
            owner: owner.map(Into::into),
            firmware_version: fw.map(Into::into),
            reported_firmware: reported.map(Into::into),
            created_ms: 0,
            last_message_ms: None,
            last_connection_ms: None,
        }
    }

    #[test]
    fn devices_are_judged_on_firmware_owner_and_silence() {
        let newest = HashMap::from([("m".to_owned(), "1.10.0".to_owned())]);
        let now = 100 * DAY_MS;
        let mut out = Vec::new();
        judge_device(&fleet_device("m", Some("ops"), Some("1.9.3"), None), &newest, false, now, &mut out);
        let kinds: Vec<&str> = out.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(kinds, ["outdated_firmware", "inactive_not_decommissioned"]);
        assert_eq!(out[0].2, "firmware 1.9.3 is older than 1.10.0, the current version of model m");

        // The reported firmware wins over the attribute; a live device is not inactive.
        let mut out = Vec::new();
        judge_device(&fleet_device("m", Some(" "), Some("1.0"), Some("1.10.0")), &newest, true, now, &mut out);
        assert_eq!(out, [found("no_owner", Some("d1"), "no owner is recorded".into())]);
    }
}
