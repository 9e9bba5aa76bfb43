//! Devices on the wire.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleState {
    Registered,
    Provisioned,
    Active,
    Quarantined,
    Paused,
    Decommissioned,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationView {
    pub lat: f64,
    pub lon: f64,
}

/// `POST /api/v1/devices`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCreate {
    /// Unique per vendor and model.
    pub serial: String,
    pub model: String,
    pub vendor: String,
    pub owner: Option<String>,
    /// Personal data: encrypted at rest, shown only to roles that may edit devices.
    pub owner_contact: Option<String>,
    pub purpose: Option<String>,
    /// Defaults to `medium`.
    pub criticality: Option<Criticality>,
    pub group: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Personal data: encrypted at rest, shown only to roles that may edit devices.
    pub location: Option<LocationView>,
    pub firmware_version: Option<String>,
}

/// Distinguishes "absent" (leave alone) from `null` (clear) in a PATCH.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/devices/{id}`: absent fields stay, `null` clears an optional field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    pub serial: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner_contact: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub purpose: Option<Option<String>>,
    pub criticality: Option<Criticality>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub group: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<LocationView>)]
    pub location: Option<Option<LocationView>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub firmware_version: Option<Option<String>>,
}

/// A device as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub serial: String,
    pub model: String,
    pub vendor: String,
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_contact: Option<String>,
    pub purpose: Option<String>,
    pub criticality: Criticality,
    pub group: Option<String>,
    pub region: Option<String>,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationView>,
    pub firmware_version: Option<String>,
    pub state: LifecycleState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A page of devices, in id (creation) order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    pub items: Vec<DeviceView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/devices/{id}/lifecycle`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRequest {
    pub to: LifecycleState,
    pub reason: Option<String>,
}

/// Body of the response actions (`quarantine`, `pause`, `release`, `decommission`); optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub reason: Option<String>,
}

impl From<palisade_core::Criticality> for Criticality {
    fn from(c: palisade_core::Criticality) -> Self {
        use palisade_core::Criticality as C;
        match c {
            C::Low => Self::Low,
            C::Medium => Self::Medium,
            C::High => Self::High,
            C::Critical => Self::Critical,
        }
    }
}

impl From<Criticality> for palisade_core::Criticality {
    fn from(c: Criticality) -> Self {
        match c {
            Criticality::Low => Self::Low,
            Criticality::Medium => Self::Medium,
            Criticality::High => Self::High,
            Criticality::Critical => Self::Critical,
        }
    }
}

impl From<palisade_core::LifecycleState> for LifecycleState {
    fn from(s: palisade_core::LifecycleState) -> Self {
        use palisade_core::LifecycleState as S;
        match s {
            S::Registered => Self::Registered,
            S::Provisioned => Self::Provisioned,
            S::Active => Self::Active,
            S::Quarantined => Self::Quarantined,
            S::Paused => Self::Paused,
            S::Decommissioned => Self::Decommissioned,
        }
    }
}

impl From<LifecycleState> for palisade_core::LifecycleState {
    fn from(s: LifecycleState) -> Self {
        match s {
            LifecycleState::Registered => Self::Registered,
            LifecycleState::Provisioned => Self::Provisioned,
            LifecycleState::Active => Self::Active,
            LifecycleState::Quarantined => Self::Quarantined,
            LifecycleState::Paused => Self::Paused,
            LifecycleState::Decommissioned => Self::Decommissioned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_absent_from_null() {
        let p: DevicePatch = serde_json::from_str(r#"{"owner": null, "region": "eu"}"#).unwrap();
        assert_eq!(p.owner, Some(None));
        assert_eq!(p.region, Some(Some("eu".into())));
        assert_eq!(p.group, None);
    }

    #[test]
    fn unknown_fields_and_bad_enums_are_named() {
        let e = serde_json::from_str::<DeviceCreate>(r#"{"serial":"1","model":"m","vendor":"v","colour":"red"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = serde_json::from_str::<LifecycleRequest>(r#"{"to":"hacked"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown variant `hacked`"), "{e}");
    }
}

/// `POST /api/v1/devices/{id}/commands`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// ping, reboot, wipe, quarantine-mode, rotate-credentials, collect-diagnostics.
    pub command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandView {
    pub id: String,
    pub command: String,
    /// queued, sent, delivered, done or failed.
    pub status: String,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// What the device answered on `commands/result`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}
