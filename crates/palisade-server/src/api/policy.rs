//! Who may call what: one table, enforced for every API route before its handler runs.
//!
//! A route missing from the table is refused (and the authorization matrix test fails), so a
//! new route cannot ship without a decision. The table is also published in the OpenAPI
//! document as `x-palisade-policy` on every operation.

use palisade_core::Permission;
use palisade_core::Permission::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// No credentials needed (signing in).
    Public,
    /// Any authenticated caller, even one whose session is restricted to finishing sign-up
    /// (changing the initial password, enrolling MFA).
    Session,
    /// Any authenticated caller with an unrestricted session or a key.
    Authenticated,
    /// Callers holding the permission (in some scope; handlers check the device's scope).
    Permission(Permission),
}

impl Policy {
    /// The form published in the OpenAPI document.
    pub fn describe(self) -> String {
        match self {
            Self::Public => "public".into(),
            Self::Session => "session".into(),
            Self::Authenticated => "authenticated".into(),
            Self::Permission(p) => format!("permission:{p}"),
        }
    }
}

use Policy::{Authenticated, Public, Session};
const fn perm(p: Permission) -> Policy {
    Policy::Permission(p)
}

pub const POLICIES: &[(&str, &str, Policy)] = &[
    ("GET", "/api/v1/openapi.json", Authenticated),
    ("POST", "/api/v1/devices", perm(DevicesWrite)),
    ("GET", "/api/v1/devices", perm(DevicesRead)),
    ("GET", "/api/v1/devices/{id}", perm(DevicesRead)),
    ("PATCH", "/api/v1/devices/{id}", perm(DevicesWrite)),
    ("POST", "/api/v1/devices/{id}/lifecycle", perm(DevicesLifecycle)),
    ("POST", "/api/v1/devices/{id}/quarantine", perm(DevicesLifecycle)),
    ("POST", "/api/v1/devices/{id}/pause", perm(DevicesLifecycle)),
    ("POST", "/api/v1/devices/{id}/release", perm(DevicesLifecycle)),
    ("POST", "/api/v1/devices/{id}/decommission", perm(DevicesLifecycle)),
    ("POST", "/api/v1/devices/import", perm(DevicesWrite)),
    ("GET", "/api/v1/devices/export", perm(DevicesRead)),
    ("GET", "/api/v1/audit", perm(AuditRead)),
    ("GET", "/api/v1/audit/export", perm(AuditRead)),
    ("GET", "/api/v1/audit/verify", perm(AuditRead)),
    ("POST", "/api/v1/auth/login", Public),
    ("POST", "/api/v1/auth/logout", Session),
    ("GET", "/api/v1/auth/me", Session),
    ("POST", "/api/v1/auth/password", Session),
    ("POST", "/api/v1/auth/mfa/enroll", Session),
    ("POST", "/api/v1/auth/mfa/confirm", Session),
    ("GET", "/api/v1/users", perm(UsersManage)),
    ("POST", "/api/v1/users", perm(UsersManage)),
    ("GET", "/api/v1/users/{id}", perm(UsersManage)),
    ("PATCH", "/api/v1/users/{id}", perm(UsersManage)),
    ("POST", "/api/v1/users/{id}/unlock", perm(UsersManage)),
    ("POST", "/api/v1/users/{id}/mfa/reset", perm(UsersManage)),
    ("POST", "/api/v1/users/{id}/password-reset", perm(UsersManage)),
    ("GET", "/api/v1/roles", perm(UsersManage)),
    ("POST", "/api/v1/roles", perm(UsersManage)),
    ("GET", "/api/v1/reports/mfa-coverage", perm(ReportsRead)),
    ("GET", "/api/v1/apikeys", Authenticated),
    ("POST", "/api/v1/apikeys", Authenticated),
    ("POST", "/api/v1/apikeys/{id}/revoke", Authenticated),
    ("POST", "/api/v1/devices/{id}/enrollment-tokens", perm(PkiEnroll)),
    ("GET", "/api/v1/devices/{id}/certificates", perm(DevicesRead)),
    ("GET", "/api/v1/devices/{id}/telemetry/latest", perm(DevicesRead)),
    ("GET", "/api/v1/devices/{id}/telemetry", perm(DevicesRead)),
    ("GET", "/api/v1/devices/{id}/connections", perm(DevicesRead)),
    ("POST", "/api/v1/devices/{id}/commands", perm(DevicesLifecycle)),
    ("GET", "/api/v1/devices/{id}/commands", perm(DevicesRead)),
    ("POST", "/api/v1/certificates/{serial}/revoke", perm(PkiRevoke)),
    ("POST", "/api/v1/manufacturers", perm(PkiEnroll)),
    ("GET", "/api/v1/manufacturers", perm(PkiEnroll)),
    ("POST", "/api/v1/manufacturers/serials", perm(PkiEnroll)),
    ("GET", "/api/v1/findings", perm(AlertsRead)),
    ("GET", "/api/v1/profiles", perm(AlertsRead)),
    ("PUT", "/api/v1/profiles/{name}", perm(RulesManage)),
    ("DELETE", "/api/v1/profiles/{name}", perm(RulesManage)),
    ("GET", "/api/v1/alerts", perm(AlertsRead)),
    ("GET", "/api/v1/alerts/stream", perm(AlertsRead)),
    ("GET", "/api/v1/alerts/{id}", perm(AlertsRead)),
    ("POST", "/api/v1/alerts/{id}/ack", perm(AlertsAck)),
    ("POST", "/api/v1/alerts/{id}/resolve", perm(AlertsAck)),
    ("POST", "/api/v1/alerts/{id}/suppress", perm(AlertsAck)),
    ("POST", "/api/v1/channels", perm(RulesManage)),
    ("GET", "/api/v1/channels", perm(AlertsRead)),
    ("POST", "/api/v1/channels/{id}/test", perm(RulesManage)),
    ("GET", "/api/v1/deliveries", perm(AlertsRead)),
    ("POST", "/api/v1/deliveries/{id}/retry", perm(RulesManage)),
    ("POST", "/api/v1/pki/audit", perm(PkiRevoke)),
    ("POST", "/api/v1/audit-checks", perm(SystemManage)),
    ("GET", "/api/v1/system/endpoints", Authenticated),
    ("POST", "/api/v1/rollouts", perm(RolloutsManage)),
    ("GET", "/api/v1/rollouts", perm(DevicesRead)),
    ("GET", "/api/v1/rollouts/{id}", perm(DevicesRead)),
    ("POST", "/api/v1/rollouts/{id}/{command}", perm(RolloutsManage)),
    ("GET", "/api/v1/firmware/compliance", perm(DevicesRead)),
    ("GET", "/api/v1/firmware/keys", perm(FirmwarePublish)),
    ("GET", "/api/v1/firmware/root", perm(FirmwarePublish)),
    ("PUT", "/api/v1/firmware/root", perm(FirmwarePublish)),
    ("GET", "/api/v1/firmware/targets", perm(FirmwarePublish)),
    ("PUT", "/api/v1/firmware/targets", perm(FirmwarePublish)),
    ("POST", "/api/v1/firmware/images", perm(FirmwarePublish)),
    ("GET", "/api/v1/firmware", perm(FirmwarePublish)),
    ("PUT", "/api/v1/devices/{id}/firmware", perm(RolloutsManage)),
    ("GET", "/api/v1/devices/{id}/firmware", perm(DevicesRead)),
    ("PUT", "/api/v1/firmware/{model}/{version}/sbom", perm(FirmwarePublish)),
    ("GET", "/api/v1/firmware/{model}/{version}/sbom", perm(AlertsRead)),
    ("POST", "/api/v1/advisories", perm(RulesManage)),
    ("GET", "/api/v1/advisories/imports", perm(AlertsRead)),
    ("GET", "/api/v1/advisories/imports/{id}", perm(AlertsRead)),
    ("GET", "/api/v1/vulnerabilities", perm(AlertsRead)),
    ("GET", "/api/v1/vulnerabilities/{id}/devices", perm(AlertsRead)),
    ("GET", "/api/v1/devices/{id}/vulnerabilities", perm(AlertsRead)),
];

pub fn lookup(method: &str, path: &str) -> Option<Policy> {
    POLICIES.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, policy)| *policy)
}
