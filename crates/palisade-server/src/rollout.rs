//! Staged rollouts at run time: creating one (select and order the devices), the engine task
//! that drives every active rollout (`palisade_core::rollout` decides, `firmware::assign`
//! assigns), the outcomes devices report, and operators' commands.
//!
//! The engine wakes when a device reports the end of an update and once a second otherwise
//! (silent devices, rate limits and maintenance windows are about time). Every decision is
//! stored before it is acted on; an assignment that fails marks its device failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use palisade_core::audit::Actor;
use palisade_core::rollout::{self, FailureThreshold, Outcome, PhaseSize, RateLimit, Rollout, Spec, Status, Window};
use palisade_core::{DeviceId, InvalidField, LifecycleState};
use palisade_proto::rollout::{
    ComplianceView, GroupCompliance, RolloutCounts, RolloutCreate, RolloutFailure, RolloutPhaseView, RolloutView,
    Straggler,
};
use palisade_store::StoreError;
use palisade_store::audit::AuditContext;
use palisade_store::devices::DeviceFilter;
use palisade_store::rollouts::{RolloutDevice, Step, StoredRollout};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::api::convert::rfc3339;
use crate::api::error::ApiError;
use crate::{AppState, now_ms};

/// Wakes the engine.
#[derive(Debug, Default)]
pub struct Engine {
    wake: Notify,
}

impl Engine {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The engine's state of one rollout, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    phase: usize,
    status: String,
    reason: Option<String>,
    phase_started_ms: i64,
    staging: Vec<String>,
    #[serde(default)]
    assigned_per_minute: BTreeMap<i64, usize>,
}

fn status_of(s: &State) -> Status {
    match s.status.as_str() {
        "awaiting_approval" => Status::AwaitingApproval,
        "paused" => Status::Paused,
        "halted" => Status::Halted(s.reason.clone().unwrap_or_default()),
        "aborted" => Status::Aborted,
        "completed" => Status::Completed,
        _ => Status::Running,
    }
}

fn reason_of(s: &Status) -> Option<String> {
    match s {
        Status::Halted(why) => Some(why.clone()),
        _ => None,
    }
}

/// The request's rollout parameters as the core's [`Spec`], each refusal naming its field.
pub fn spec_of(req: &RolloutCreate, staging: Vec<String>) -> Result<Spec, InvalidField> {
    let phases = req
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let bad =
                || InvalidField::new(format!("phases[{i}]"), format!("{p:?}: a percentage like \"10%\" or a count"));
            match p.trim().strip_suffix('%') {
                Some(n) => n.trim().parse().map(PhaseSize::Percent).map_err(|_| bad()),
                None => p.trim().parse().map(PhaseSize::Count).map_err(|_| bad()),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let failure = match req.failure_threshold.as_deref().map(str::trim) {
        None => FailureThreshold::Percent(5),
        Some(f) => {
            let bad = || InvalidField::new("failure_threshold", format!("{f:?}: a percentage like \"5%\" or a count"));
            match f.strip_suffix('%') {
                Some(n) => FailureThreshold::Percent(n.trim().parse().map_err(|_| bad())?),
                None => FailureThreshold::Absolute(f.parse().map_err(|_| bad())?),
            }
        }
    };
    let rate = match &req.rate {
        None => RateLimit::None,
        Some(r) => match (r.per_minute, r.start, r.factor) {
            (Some(per_minute), None, None) => RateLimit::Constant { per_minute },
            (None, Some(start), Some(factor)) => RateLimit::Exponential { start, factor },
            _ => return Err(InvalidField::new("rate", "either {\"per_minute\": n} or {\"start\": n, \"factor\": f}")),
        },
    };
    let window = req.window.as_ref().map(|w| Window::parse(&w.cron, w.duration_mins, &w.utc_offset)).transpose()?;
    let silent = req.silent_timeout_secs.unwrap_or(3600);
    if silent == 0 || silent > 30 * 86_400 {
        return Err(InvalidField::new("silent_timeout_secs", "1 second to 30 days"));
    }
    let spec = Spec {
        staging,
        phases,
        success_pct: req.success_pct.unwrap_or(95),
        failure,
        approval: req.approval,
        silent_timeout_ms: i64::try_from(silent).unwrap_or(i64::MAX / 2_000) * 1000,
        rate,
        window,
    };
    spec.validate()?;
    Ok(spec)
}

fn matches(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
}

/// Starts a rollout: the catalogue target must exist; the devices are those the selectors
/// match, built for the target's hardware, neither decommissioned, quarantined nor paused.
pub async fn create(state: &AppState, req: RolloutCreate, ctx: AuditContext) -> Result<RolloutView, ApiError> {
    let Some(entry) = state.store.firmware_target(&req.target).await? else {
        return Err(
            InvalidField::new("target", format!("{:.128?} is not in the firmware catalogue", req.target)).into()
        );
    };
    let mut devices: Vec<(String, Option<String>)> = Vec::new();
    let mut staging = Vec::new();
    let mut cursor: Option<DeviceId> = None;
    loop {
        let page = state.store.list_devices(&DeviceFilter::default(), cursor.as_ref(), 1000).await?;
        for d in &page.items {
            let a = &d.attrs;
            let eligible = matches!(d.state, LifecycleState::Active | LifecycleState::Provisioned)
                && a.model == entry.hardware
                && matches(&req.groups, a.group.as_deref())
                && matches(&req.regions, a.region.as_deref())
                && matches(&req.models, Some(&a.model))
                && matches(&req.from_versions, a.firmware_version.as_deref())
                && (req.tags.is_empty() || req.tags.iter().any(|t| a.tags.contains(t)));
            if eligible {
                if req.staging_group.is_some() && a.group.as_deref() == req.staging_group.as_deref() {
                    staging.push(d.id.to_string());
                }
                devices.push((d.id.to_string(), a.region.clone()));
            }
        }
        match page.next.and_then(|n| n.parse().ok()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if devices.is_empty() {
        return Err(InvalidField::new("groups", "no eligible device matches the selectors").into());
    }
    if req.staging_group.is_some() && staging.is_empty() {
        return Err(InvalidField::new("staging_group", "no eligible device of the rollout is in this group").into());
    }
    let spec = spec_of(&req, staging.clone())?;
    let order = rollout::order(&devices, &staging);
    let now = now_ms();
    let r = Rollout::new(spec, order.clone(), now);
    let st = State {
        phase: 0,
        status: "running".into(),
        reason: None,
        phase_started_ms: now,
        staging,
        assigned_per_minute: BTreeMap::new(),
    };
    let id = format!("ro_{}", hex_id()?);
    let stored = StoredRollout {
        id: id.clone(),
        target: entry.name.clone(),
        spec: serde_json::to_string(&req).map_err(|_| ApiError::internal())?,
        state: serde_json::to_string(&st).map_err(|_| ApiError::internal())?,
        status: r.status.as_str().into(),
        created_ms: now,
        updated_ms: now,
    };
    state.store.create_rollout(stored, order, ctx).await?;
    state.rollouts.wake();
    view(state, &id).await
}

fn hex_id() -> Result<String, StoreError> {
    let mut b = [0u8; 8];
    palisade_store::sealed::random(&mut b)?;
    Ok(hex::encode(b))
}

/// The engine's rollout of a stored one.
fn load(stored: &StoredRollout, devices: &[RolloutDevice]) -> Result<(Rollout, State), InvalidField> {
    let req: RolloutCreate = serde_json::from_str(&stored.spec)
        .map_err(|e| InvalidField::new("spec", format!("stored rollout {}: {e}", stored.id)))?;
    let st: State = serde_json::from_str(&stored.state)
        .map_err(|e| InvalidField::new("state", format!("stored rollout {}: {e}", stored.id)))?;
    let spec = spec_of(&req, st.staging.clone())?;
    let order = devices.iter().map(|d| d.device_id.clone()).collect();
    let mut r = Rollout::new(spec, order, st.phase_started_ms);
    r.phase = st.phase;
    r.status = status_of(&st);
    r.assigned_per_minute = st.assigned_per_minute.clone();
    Ok((r, st))
}

fn outcome_of(d: &RolloutDevice) -> Outcome {
    match d.outcome.as_str() {
        "assigned" => Outcome::Assigned { at_ms: d.assigned_ms.unwrap_or(0) },
        "committed" => Outcome::Committed,
        "failed" => Outcome::Failed,
        _ => Outcome::Waiting,
    }
}

fn counts<'a>(devices: impl Iterator<Item = &'a RolloutDevice>) -> RolloutCounts {
    let mut c = RolloutCounts::default();
    for d in devices {
        c.total += 1;
        match d.outcome.as_str() {
            "assigned" => c.assigned += 1,
            "committed" => c.committed += 1,
            "failed" => c.failed += 1,
            _ => c.waiting += 1,
        }
    }
    c
}

pub async fn view(state: &AppState, id: &str) -> Result<RolloutView, ApiError> {
    let stored = state.store.rollout(id).await?;
    let devices = state.store.rollout_devices(id).await?;
    let (r, st) = load(&stored, &devices)?;
    let mut phases = Vec::new();
    let mut start = 0;
    let staged = !st.staging.is_empty();
    for (i, end) in r.phase_ends().into_iter().enumerate() {
        let slice = devices.get(start..end).unwrap_or_default();
        let kind = if staged && i == 0 { "staging" } else { "phase" };
        phases.push(RolloutPhaseView { number: i + 1, kind: kind.into(), devices: counts(slice.iter()) });
        start = end;
    }
    let failures = devices
        .iter()
        .filter(|d| d.outcome == "failed")
        .take(100)
        .map(|d| RolloutFailure { device_id: d.device_id.clone(), detail: d.detail.clone() })
        .collect();
    Ok(RolloutView {
        id: stored.id.clone(),
        target: stored.target.clone(),
        status: stored.status.clone(),
        reason: st.reason.clone(),
        phase: r.phase + 1,
        phases,
        devices: counts(devices.iter()),
        failures,
        created_at: rfc3339(stored.created_ms),
        updated_at: rfc3339(stored.updated_ms),
        spec: serde_json::from_str(&stored.spec).unwrap_or_default(),
    })
}

/// Pause, resume, approve or abort.
pub async fn command(state: &AppState, id: &str, cmd: &str, ctx: AuditContext) -> Result<RolloutView, ApiError> {
    let stored = state.store.rollout(id).await?;
    let devices = state.store.rollout_devices(id).await?;
    let (mut r, mut st) = load(&stored, &devices)?;
    r.command(cmd, ctx.at_ms).map_err(|e| ApiError {
        field: Some(e.field.clone()),
        ..ApiError::new(axum::http::StatusCode::CONFLICT, "conflict", e.reason)
    })?;
    st.status = r.status.as_str().into();
    st.phase_started_ms = r.phase_started_ms;
    let json = serde_json::to_string(&st).map_err(|_| ApiError::internal())?;
    state.store.rollout_command(id.to_owned(), cmd.to_owned(), json, st.status.clone(), ctx).await?;
    if cmd == "abort" {
        withdraw(state, id, &stored.target).await;
    }
    state.rollouts.wake();
    view(state, id).await
}

fn system(at_ms: i64) -> AuditContext {
    AuditContext { actor: Actor::System, source_ip: None, at_ms }
}

/// One pass over one rollout: decide, store the decision, then assign.
async fn drive(state: &AppState, stored: &StoredRollout) -> Result<(), ApiError> {
    if stored.status != "running" {
        return Ok(());
    }
    let devices = state.store.rollout_devices(&stored.id).await?;
    let (mut r, mut st) = load(stored, &devices)?;
    let outcomes: HashMap<&str, Outcome> = devices.iter().map(|d| (d.device_id.as_str(), outcome_of(d))).collect();
    let now = now_ms();
    let d = r.step(now, |id| outcomes.get(id).copied().unwrap_or(Outcome::Waiting));
    if d.assign.is_empty() && d.timed_out.is_empty() && d.status_changed.is_none() {
        return Ok(());
    }
    st.phase = r.phase;
    st.status = r.status.as_str().into();
    st.reason = reason_of(&r.status);
    st.phase_started_ms = r.phase_started_ms;
    st.assigned_per_minute = r.assigned_per_minute.clone();
    let step = Step {
        state: serde_json::to_string(&st).map_err(|_| ApiError::internal())?,
        status: st.status.clone(),
        assigned: d.assign.clone(),
        timed_out: d.timed_out.clone(),
        status_changed: d.status_changed.as_ref().map(|s| (s.as_str().to_owned(), reason_of(s))),
        read_updated_ms: stored.updated_ms,
    };
    if !state.store.save_rollout_step(stored.id.clone(), step, system(now)).await? {
        return Ok(()); // changed meanwhile (a command, another node): decide again on the next pass
    }
    if let Some(s) = &d.status_changed {
        tracing::info!(rollout = %stored.id, status = s.as_str(), reason = reason_of(s).as_deref().unwrap_or(""), "rollout status");
    }
    if matches!(d.status_changed, Some(Status::Halted(_))) {
        withdraw(state, &stored.id, &stored.target).await;
    }

    for device in &d.assign {
        // An operator may abort while this step assigns: assign nothing more (its withdrawal
        // already ran over what was assigned before).
        if state.store.rollout(&stored.id).await.is_ok_and(|r| r.status == "aborted") {
            break;
        }
        let assigned = match device.parse::<DeviceId>() {
            Ok(id) => {
                crate::firmware::assign(state, &id, &stored.target, system(now_ms())).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = assigned {
            tracing::warn!(rollout = %stored.id, device, error = %why, "assignment failed");
            state
                .store
                .record_rollout_outcome(device.clone(), stored.target.clone(), false, Some(why), now_ms())
                .await?;
        }
    }
    Ok(())
}

/// A rollout that halted or was aborted withdraws the assignments its devices have not acted
/// on yet: each such device whose current assignment is still the rollout's target is assigned
/// the catalogue image it runs now, which its agent takes as nothing to do. So an image found
/// bad stops spreading to devices that were offline or slow when it was found. Devices that
/// run a version the catalogue does not list cannot be pointed back, and are logged.
async fn withdraw(state: &AppState, rollout_id: &str, target: &str) {
    let (devices, catalogue) =
        match (state.store.rollout_devices(rollout_id).await, state.store.firmware_catalogue().await) {
            (Ok(d), Ok(c)) => (d, c),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(rollout = rollout_id, error = %e, "cannot withdraw the rollout's assignments");
                return;
            }
        };
    for d in devices.iter().filter(|d| d.outcome == "assigned") {
        let Ok(id) = d.device_id.parse::<DeviceId>() else { continue };
        let current = state.store.firmware_assignment(id.as_str()).await;
        if !matches!(&current, Ok(Some(a)) if a.target == target) {
            continue; // another assignment came since, or none: nothing of this rollout to withdraw
        }
        let Ok(device) = state.store.get_device(&id).await else { continue };
        let running = catalogue.iter().find(|t| {
            t.name != target
                && t.hardware == device.attrs.model
                && device.attrs.firmware_version.as_deref() == Some(t.version.as_str())
        });
        let Some(running) = running else {
            tracing::warn!(rollout = rollout_id, device = %id, "cannot withdraw: the catalogue lists no image of the version the device runs");
            continue;
        };
        if let Err(e) = crate::firmware::assign(state, &id, &running.name, system(now_ms())).await {
            tracing::warn!(rollout = rollout_id, device = %id, error = %e, "cannot withdraw an assignment");
        }
    }
}

/// A device reported the end of an update: committed, or refused / rolled back.
pub async fn outcome(state: &AppState, device_id: &str, event: &str, target: Option<&str>, detail: Option<&str>) {
    let committed = match event {
        "update.committed" => true,
        "update.rolled_back" | "update.refused" => false,
        _ => return,
    };
    let Some(target) = target else { return };
    let detail = if committed { None } else { Some(format!("{event}: {}", detail.unwrap_or(""))) };
    match state.store.record_rollout_outcome(device_id.to_owned(), target.to_owned(), committed, detail, now_ms()).await
    {
        Ok(ids) if !ids.is_empty() => state.rollouts.wake(),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, device_id, "cannot record a rollout outcome"),
    }
}

/// The engine task: every active rollout, when woken and every second.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        match state.store.active_rollouts().await {
            Ok(list) => {
                for r in &list {
                    if let Err(e) = drive(&state, r).await {
                        tracing::error!(rollout = %r.id, error = %e.message, "rollout step failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read rollouts"),
        }
        tokio::select! {
            _ = state.rollouts.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// An hour: a device that committed an update and has not been heard from since is a
/// "did not come back" device after this long.
const COMEBACK_MS: i64 = 3_600_000;

/// The fleet's patch compliance, per group (within `filter`'s scope).
pub async fn compliance(state: &AppState, filter: DeviceFilter) -> Result<ComplianceView, ApiError> {
    let catalogue = state.store.firmware_catalogue().await?;
    let mut approved: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut known: HashMap<&str, Vec<&str>> = HashMap::new();
    for t in &catalogue {
        known.entry(t.hardware.as_str()).or_default().push(t.version.as_str());
        let newer = approved.get(&t.hardware).is_none_or(|(c, _)| t.counter > *c);
        if newer {
            approved.insert(t.hardware.clone(), (t.counter, t.version.clone()));
        }
    }
    let silent: HashSet<String> =
        state.store.silent_after_update(now_ms() - COMEBACK_MS).await?.into_iter().map(|(d, _)| d).collect();
    let mut groups: BTreeMap<String, GroupCompliance> = BTreeMap::new();
    let mut cursor: Option<DeviceId> = None;
    loop {
        let page = state.store.list_devices(&filter, cursor.as_ref(), 1000).await?;
        for d in &page.items {
            if d.state == LifecycleState::Decommissioned {
                continue;
            }
            let a = &d.attrs;
            let g = a.group.clone().unwrap_or_default();
            let entry = groups.entry(g.clone()).or_insert_with(|| GroupCompliance {
                group: g,
                devices: 0,
                compliant: 0,
                percent: 0.0,
                stragglers: Vec::new(),
                silent_after_update: Vec::new(),
                unknown_firmware: Vec::new(),
            });
            entry.devices += 1;
            let running = a.firmware_version.clone();
            let straggler =
                || Straggler { device_id: d.id.to_string(), model: a.model.clone(), running: running.clone() };
            match approved.get(&a.model) {
                Some((_, v)) if running.as_deref() == Some(v.as_str()) => entry.compliant += 1,
                Some(_) if entry.stragglers.len() < 100 => entry.stragglers.push(straggler()),
                _ => {}
            }
            let listed =
                known.get(a.model.as_str()).is_some_and(|vs| running.as_deref().is_some_and(|r| vs.contains(&r)));
            if known.contains_key(a.model.as_str()) && !listed && entry.unknown_firmware.len() < 100 {
                entry.unknown_firmware.push(straggler());
            }
            if silent.contains(d.id.as_str()) && entry.silent_after_update.len() < 100 {
                entry.silent_after_update.push(d.id.to_string());
            }
        }
        match page.next.and_then(|n| n.parse().ok()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let groups = groups
        .into_values()
        .map(|mut g| {
            g.percent =
                if g.devices == 0 { 0.0 } else { (g.compliant as f64 * 1000.0 / g.devices as f64).round() / 10.0 };
            g
        })
        .collect();
    Ok(ComplianceView { approved: approved.into_iter().map(|(m, (_, v))| (m, v)).collect(), groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(phases: &[&str]) -> RolloutCreate {
        serde_json::from_value(serde_json::json!({"target": "t", "phases": phases})).unwrap()
    }

    #[test]
    fn requests_become_specs_or_name_the_field() {
        let s = spec_of(&req(&["10%", "50%", "100%"]), vec![]).unwrap();
        assert_eq!(s.phases, vec![PhaseSize::Percent(10), PhaseSize::Percent(50), PhaseSize::Percent(100)]);
        assert_eq!(s.failure, FailureThreshold::Percent(5));
        assert_eq!(spec_of(&req(&["10%", "x"]), vec![]).unwrap_err().field, "phases[1]");
        assert_eq!(spec_of(&req(&["50%", "10%"]), vec![]).unwrap_err().field, "phases[1]");
        let mut r = req(&["5", "100%"]);
        r.failure_threshold = Some("3".into());
        r.rate = Some(palisade_proto::rollout::RateView { per_minute: Some(10), start: Some(1), factor: None });
        assert_eq!(spec_of(&r, vec![]).unwrap_err().field, "rate");
        r.rate = None;
        let s = spec_of(&r, vec![]).unwrap();
        assert_eq!((s.phases[0], s.failure), (PhaseSize::Count(5), FailureThreshold::Absolute(3)));
        r.window = Some(palisade_proto::rollout::WindowView {
            cron: "0 1 * *".into(),
            duration_mins: 60,
            utc_offset: "Z".into(),
        });
        assert_eq!(spec_of(&r, vec![]).unwrap_err().field, "window");
    }
}
