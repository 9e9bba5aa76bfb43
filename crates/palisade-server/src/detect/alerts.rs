//! What happens to a signal: the alert is opened (or counted, or resolved) in the store together
//! with its notices, the notifier is woken, the rule's response acts on the device (or, in dry
//! run, says what it would have done), and live streams hear of it. One task, in order.
//!
//! A telemetry report's signals are recorded by the ingester in the same transaction as the
//! report ([`verdict`]; `Store::ingest_detected`); they come here already recorded
//! ([`Work::Recorded`]) for the rest. Signals of timers and connection events, and those of a
//! batch that could not be written, are recorded here ([`Work::Signal`]).
//!
//! Escalation: a second task walks open alerts of profiles with an escalation policy through
//! their tiers, sleeping until the next step falls due (or until woken by a new alert).

use palisade_core::LifecycleState;
use palisade_core::audit::Actor;
use palisade_core::detect::{Response, Severity};
use palisade_store::StoreError;
use palisade_store::alerts::{Raise, Recorded, Verdict, alert_json};
use palisade_store::audit::AuditContext;
use palisade_store::devices::Transition;
use tokio::sync::{mpsc, watch};

use super::DeviceSignal;
use crate::{AppState, now_ms};

fn system() -> AuditContext {
    AuditContext { actor: Actor::System, source_ip: None, at_ms: now_ms() }
}

/// What recording a verdict did, or why it failed.
pub type Outcome = Result<Recorded, StoreError>;

/// What the alert task is given.
#[derive(Debug)]
pub enum Work {
    /// A signal to record, then act on.
    Signal(DeviceSignal),
    /// A signal recorded already (with its batch), to act on.
    Recorded(DeviceSignal, Box<Outcome>),
}

/// The alert task: runs until shutdown, then handles what is queued already and stops.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Work>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            biased;
            work = rx.recv() => match work {
                Some(work) => take(&state, work).await,
                None => break,
            },
            _ = shutdown.changed() => {
                while let Ok(work) = rx.try_recv() {
                    take(&state, work).await;
                }
                break;
            }
        }
    }
}

async fn take(state: &AppState, work: Work) {
    let (signal, outcome) = match work {
        Work::Signal(s) => {
            let outcome = state.store.record_verdict(verdict(&s)).await;
            (s, outcome)
        }
        Work::Recorded(s, outcome) => (s, *outcome),
    };
    handle(state, signal, outcome).await;
}

/// What a signal asks the store to record.
pub fn verdict(ds: &DeviceSignal) -> Verdict {
    let sig = &ds.signal;
    if !sig.raised {
        return Verdict::Clear {
            device: ds.device.clone(),
            profile: sig.profile.clone(),
            rule: sig.rule.clone(),
            auto_resolve: sig.auto_resolve,
            at_ms: sig.at_ms,
        };
    }
    let response = match (sig.response, sig.dry_run) {
        (Response::AlertOnly, _) => "alert".to_owned(),
        (r, true) => format!("dry-run: {}", r.as_str()),
        (r, false) => r.as_str().to_owned(),
    };
    Verdict::Raise(Raise {
        device_id: ds.device.clone(),
        group: ds.group.clone(),
        profile: sig.profile.clone(),
        rule: sig.rule.clone(),
        severity: sig.severity.as_str().to_owned(),
        title: sig.title.clone(),
        detail: sig.detail.clone(),
        response,
        at_ms: sig.at_ms,
    })
}

/// Whether recording queued notices for the notifier.
pub fn queued_notices(outcome: &Outcome) -> bool {
    match outcome {
        Ok(Recorded::Raised(r)) => r.opened && !r.suppressed,
        Ok(Recorded::Cleared(a)) => a.as_ref().is_some_and(|a| a.status == "resolved"),
        Err(_) => false,
    }
}

fn live(state: &AppState, event: &str, alert: &palisade_store::alerts::Alert) {
    let _ = state.detector.live.send(serde_json::json!({"event": event, "alert": alert_json(alert)}).to_string());
}

/// Acts on a recorded signal: notices, live streams, metrics and the rule's response.
async fn handle(state: &AppState, ds: DeviceSignal, outcome: Outcome) {
    let DeviceSignal { device, signal: sig, .. } = ds;
    let raised = match outcome {
        Ok(Recorded::Raised(r)) => r,
        Ok(Recorded::Cleared(Some(alert))) => {
            state.notifier.wake();
            live(state, if alert.status == "resolved" { "alert.resolved" } else { "alert.cleared" }, &alert);
            return;
        }
        Ok(Recorded::Cleared(None)) => return,
        Err(e) => {
            tracing::error!(error = %e, device, rule = %sig.rule, "cannot record an alert");
            return;
        }
    };
    state
        .metrics
        .alerts
        .get_or_create(&crate::metrics::AlertLabels {
            severity: sig.severity.as_str().into(),
            kind: if raised.opened { "opened" } else { "repeated" },
        })
        .inc();
    if raised.opened && !raised.suppressed {
        state.notifier.wake();
        state.detector.escalation.notify_one();
    }
    live(state, if raised.opened { "alert.opened" } else { "alert.repeated" }, &raised.alert);
    if raised.suppressed || sig.response == Response::AlertOnly {
        return;
    }
    let id = raised.alert.id.clone();
    let outcome = if sig.dry_run {
        let ctx = system();
        let after = serde_json::json!({"alert": id, "device": device, "would": sig.response.as_str()});
        match state.store.record(ctx, "response.dry_run", format!("device:{device}"), Some(after)).await {
            Ok(_) => format!("dry run: would {}", sig.response.as_str()),
            Err(e) => format!("dry run: could not be audited: {e}"),
        }
    } else {
        respond(state, &device, sig.response, &id, &sig.title).await
    };
    if let Err(e) = state.store.alert_responded(id, now_ms(), outcome).await {
        tracing::error!(error = %e, "cannot record an alert's response");
    }
}

/// Carries out a response on a device; what happened, for the alert's history. Each action is
/// audited (actor `system`) with the alert that triggered it as its reason.
async fn respond(state: &AppState, device: &str, response: Response, alert: &str, title: &str) -> String {
    let reason = format!("alert {alert}: {title}");
    let Ok(id) = device.parse::<palisade_core::DeviceId>() else { return "no such device".into() };
    let to = match response {
        Response::Quarantine => LifecycleState::Quarantined,
        Response::Pause => LifecycleState::Paused,
        Response::Disconnect => {
            state.plane.disconnect(device);
            let after = serde_json::json!({"alert": alert, "action": "disconnect"});
            if let Err(e) =
                state.store.record(system(), "response.disconnect", format!("device:{device}"), Some(after)).await
            {
                tracing::error!(error = %e, "cannot audit a disconnect");
            }
            return "disconnected its live session".into();
        }
        Response::Revoke => return revoke(state, device, &reason).await,
        Response::AlertOnly => return "alert only".into(),
    };
    match state.store.transition_device(id, Transition::To(to), Some(reason), system()).await {
        Ok(d) => {
            state.plane.state_changed(d.id.as_str(), d.state);
            format!("device {}", d.state.as_str())
        }
        Err(palisade_store::StoreError::IllegalTransition(t)) => format!("not done: {t}"),
        Err(e) => {
            tracing::error!(error = %e, "automated response failed");
            format!("failed: {e}")
        }
    }
}

async fn revoke(state: &AppState, device: &str, reason: &str) -> String {
    let certs = match state.store.certificates_of(device).await {
        Ok(c) => c,
        Err(e) => return format!("failed: {e}"),
    };
    let mut revoked = Vec::new();
    for c in certs.into_iter().filter(|c| c.status == "valid") {
        match state.store.revoke_certificate(c.serial.clone(), "keyCompromise".into(), system()).await {
            Ok(_) => revoked.push(c.serial),
            Err(e) => tracing::error!(error = %e, reason, "automated revocation failed"),
        }
    }
    if let Err(e) = state.pki.revoked(&state.store, &revoked).await {
        tracing::error!(error = %e, "cannot re-issue the CRL after an automated revocation");
    }
    format!("revoked {} certificate(s): {}", revoked.len(), revoked.join(", "))
}

/// Walks open alerts through their escalation tiers.
pub async fn escalations(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = match escalate_due(&state).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "escalation pass failed");
                Some(now_ms().saturating_add(5_000))
            }
        };
        let sleep = async {
            match next {
                Some(at) => {
                    let wait = u64::try_from(at.saturating_sub(now_ms()).max(0)).unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = state.detector.escalation.notified() => {}
            () = sleep => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Sends every escalation step that is due; when the next one falls due.
async fn escalate_due(state: &AppState) -> Result<Option<i64>, palisade_store::StoreError> {
    let profiles = state.profiles.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if profiles.iter().all(|p| p.escalation.is_none()) {
        return Ok(None);
    }
    let now = now_ms();
    let mut next: Option<i64> = None;
    for a in state.store.open_alerts().await? {
        let Some((min, policy)) =
            profiles.iter().find(|p| p.profile.name == a.profile).and_then(|p| p.escalation.as_ref())
        else {
            continue;
        };
        if Severity::parse(&a.severity).is_none_or(|s| s < *min) || a.suppressed_until_ms.is_some_and(|u| u > now) {
            continue;
        }
        let (due, next_at) = policy.steps_due(a.first_ms, now);
        for step in a.escalation_step.max(0)..i64::from(due) {
            let Some(tier) = policy.tier(u32::try_from(step).unwrap_or(0)) else { break };
            match state.store.escalate_alert(a.id.clone(), step, tier.channels.clone(), system()).await {
                Ok(true) => state.notifier.wake(),
                Ok(false) => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(at) = next_at {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}
