//! Detection on the wire: security profiles and alerts.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A security profile as stored. `spec` is the profile as written (see the server's
/// `detect::spec` for every rule kind and its keys).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfileView {
    pub name: String,
    /// `api` or `config` (loaded from the file named by `detection.profiles_file`).
    pub source: String,
    pub updated_at: String,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    pub id: String,
    pub device_id: String,
    pub group: Option<String>,
    pub profile: String,
    pub rule: String,
    /// `critical`, `high`, `medium`, `low` or `info`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub title: String,
    pub detail: String,
    /// Occurrences while not resolved.
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// What the rule's response did: `alert`, `quarantine`, `dry-run: quarantine`, …
    pub response: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
    pub resolved_at: Option<String>,
    /// `cleared` (by itself), `resolved` or `false_positive`.
    pub resolution: Option<String>,
    pub suppressed_until: Option<String>,
    /// Escalation tiers notified so far.
    pub escalation_step: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertEventView {
    pub at: String,
    pub kind: String,
    pub actor: Option<String>,
    pub detail: Option<String>,
}

/// One alert with its full history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    pub alert: AlertView,
    pub history: Vec<AlertEventView>,
}

/// `POST /api/v1/alerts/{id}/ack` and `/resolve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    pub note: Option<String>,
    /// On resolve: the alert was wrong; a learned baseline takes what it alarmed on as normal.
    #[serde(default)]
    pub false_positive: bool,
}

/// `POST /api/v1/alerts/{id}/suppress`: no notices or responses for repeats for a while.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressRequest {
    /// 1 to 43 200 (30 days).
    pub minutes: u32,
}
