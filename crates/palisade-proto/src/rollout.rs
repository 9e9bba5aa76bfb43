//! Staged firmware rollouts on the wire.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Start a rollout of a catalogue target to the devices the selectors match (all of them that
/// are given must match; an empty list matches every value).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutCreate {
    /// The catalogue target (`GET /api/v1/firmware`).
    pub target: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    /// Only devices currently running one of these versions.
    #[serde(default)]
    pub from_versions: Vec<String>,
    /// Devices of this group go first, and all must succeed before anyone else is updated.
    pub staging_group: Option<String>,
    /// Cumulative phases: `"10%"`, `"50%"`, `"100%"`, or device counts like `"25"`.
    pub phases: Vec<String>,
    /// Percentage of a phase's devices that must succeed to go on (default 95).
    pub success_pct: Option<u8>,
    /// Failures that halt the rollout: `"5%"` of the current phase (default) or a count like `"3"`.
    pub failure_threshold: Option<String>,
    /// Wait for `POST …/approve` between phases.
    #[serde(default)]
    pub approval: bool,
    /// A device silent this long after its assignment counts as failed (default 3600).
    pub silent_timeout_secs: Option<u64>,
    /// `{"per_minute": n}` or `{"start": n, "factor": f}`; none: no limit.
    pub rate: Option<RateView>,
    /// Assign only inside this window.
    pub window: Option<WindowView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateView {
    pub per_minute: Option<usize>,
    pub start: Option<usize>,
    pub factor: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowView {
    /// `minute hour day-of-month month day-of-week`, e.g. `"0 1 * * 1-5"`.
    pub cron: String,
    pub duration_mins: u32,
    /// `+02:00`, `-05:30` or `Z` (default).
    #[serde(default)]
    pub utc_offset: String,
}

/// Devices of a rollout by outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RolloutCounts {
    pub total: usize,
    pub waiting: usize,
    pub assigned: usize,
    pub committed: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutPhaseView {
    pub number: usize,
    /// `staging` or `phase`.
    pub kind: String,
    pub devices: RolloutCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    pub id: String,
    pub target: String,
    /// `running`, `awaiting_approval`, `paused`, `halted`, `aborted` or `completed`.
    pub status: String,
    /// Why it halted.
    pub reason: Option<String>,
    /// The current phase, from 1.
    pub phase: usize,
    pub phases: Vec<RolloutPhaseView>,
    pub devices: RolloutCounts,
    /// Failed devices and why (at most 100).
    pub failures: Vec<RolloutFailure>,
    pub created_at: String,
    pub updated_at: String,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutFailure {
    pub device_id: String,
    pub detail: Option<String>,
}

/// Patch compliance of one device group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupCompliance {
    /// The group (`""` for devices in none).
    pub group: String,
    pub devices: usize,
    /// Devices running the approved version of their model.
    pub compliant: usize,
    pub percent: f64,
    /// Devices on another version (at most 100), with what they run.
    pub stragglers: Vec<Straggler>,
    /// Devices silent since they committed an update (at most 100).
    pub silent_after_update: Vec<String>,
    /// Devices running a version the catalogue does not list for their model (at most 100).
    pub unknown_firmware: Vec<Straggler>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Straggler {
    pub device_id: String,
    pub model: String,
    pub running: Option<String>,
}

/// The fleet's patch compliance: the approved version of each model (the catalogue's newest,
/// by anti-rollback counter) and each group against it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceView {
    /// Model → approved version.
    pub approved: std::collections::BTreeMap<String, String>,
    pub groups: Vec<GroupCompliance>,
}
