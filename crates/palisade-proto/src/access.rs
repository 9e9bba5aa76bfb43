//! People and API access on the wire.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::device::present;

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The current TOTP code, for accounts with MFA.
    pub totp_code: Option<String>,
    /// A one-time recovery code, instead of a TOTP code.
    pub recovery_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserView,
    /// Send as `X-CSRF-Token` with every state-changing request of this session.
    pub csrf_token: String,
    /// The session may only change the password until this is done.
    pub must_change_password: bool,
    /// The session may only enrol MFA until this is done.
    pub mfa_enrollment_required: bool,
}

/// A role given to a user, optionally limited to device groups and/or regions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleBindingView {
    pub role: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub roles: Vec<RoleBindingView>,
    pub mfa_enabled: bool,
    pub must_change_password: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<RoleBindingView>,
}

/// A new user, with the one-time initial password (to be changed at first sign-in).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserCreated {
    pub user: UserView,
    pub initial_password: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// `active` or `disabled`.
    pub status: Option<String>,
    pub roles: Option<Vec<RoleBindingView>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasswordReset {
    pub initial_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaEnrollment {
    /// For authenticator apps.
    pub otpauth_uri: String,
    /// The same secret, base32, to type in by hand.
    pub secret: String,
    /// The URI as a QR code (SVG), rendered by the server.
    pub qr_svg: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaConfirm {
    pub code: String,
}

/// Shown once: keep them somewhere safe. Each works once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleView {
    pub name: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub mfa_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaCoverage {
    pub users: usize,
    pub mfa_enabled: usize,
    /// Users whose roles require MFA.
    pub mfa_required: usize,
    /// Usernames that must use MFA and have not enrolled.
    pub required_without_mfa: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    pub name: String,
    /// Permissions, a subset of the creator's.
    pub scopes: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub owner: Option<String>,
    pub role: Option<String>,
    pub scopes: Vec<String>,
    pub groups: Vec<String>,
    pub regions: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
}

/// The key itself appears here only, once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    pub key: String,
    pub info: ApiKeyView,
}

/// `POST /api/v1/devices/{id}/enrollment-tokens` (optional body).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentTokenRequest {
    /// Hours until the token expires (1–720, default 72).
    pub ttl_hours: Option<u32>,
}

/// Shown once; single use.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentToken {
    pub token: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateView {
    pub serial: String,
    pub device_id: String,
    pub fingerprint_sha256: String,
    pub key: String,
    pub not_before: String,
    pub not_after: String,
    /// `valid` or `revoked`.
    pub status: String,
    pub revoked_at: Option<String>,
    pub revocation_reason: Option<String>,
    /// `token`, `factory` or `renewal`.
    pub method: String,
    pub pem: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// RFC 5280 reason: unspecified, key_compromise, affiliation_changed, superseded,
    /// cessation_of_operation, certificate_hold, privilege_withdrawn.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManufacturerCaCreate {
    pub vendor: String,
    pub model: String,
    pub ca_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManufacturerCaView {
    pub fingerprint: String,
    pub vendor: String,
    pub model: String,
    pub subject: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    pub id: String,
    pub kind: String,
    pub device_id: Option<String>,
    pub detail: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SystemEndpoints {
    pub est: String,
    pub mqtt: String,
    pub crl: String,
}

/// The latest telemetry of a device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TelemetryView {
    pub received_at: String,
    pub seq: Option<i64>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// One metric of one device over a window, downsampled into buckets of equal width.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TelemetrySeries {
    pub metric: String,
    pub from: String,
    pub to: String,
    /// Width of each bucket.
    pub bucket_ms: i64,
    /// Buckets that hold at least one report, oldest first.
    pub points: Vec<SeriesPoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the bucket.
    pub at: String,
    /// Reports in the bucket.
    pub count: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
}

/// A device connection fact: connected, disconnected (with reason and duration) or refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionEvent {
    pub event: String,
    pub at: String,
    pub source_ip: Option<String>,
    pub detail: Option<String>,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    pub duration_ms: Option<i64>,
}
