//! Role-based access: the permissions Palisade knows and the built-in roles.
//!
//! Least privilege: a role holds only what its people need. `technician` sees device status
//! and nothing of PKI, network, SIM or firmware; `auditor` reads, including the audit log.

use std::fmt;
use std::str::FromStr;

use crate::validate::InvalidField;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    DevicesRead,
    DevicesWrite,
    DevicesLifecycle,
    PkiEnroll,
    PkiRevoke,
    NetworkManage,
    SimManage,
    FirmwarePublish,
    RolloutsManage,
    AlertsRead,
    AlertsAck,
    RulesManage,
    UsersManage,
    AuditRead,
    ReportsRead,
    SystemManage,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        use Permission::*;
        match self {
            DevicesRead => "devices.read",
            DevicesWrite => "devices.write",
            DevicesLifecycle => "devices.lifecycle",
            PkiEnroll => "pki.enroll",
            PkiRevoke => "pki.revoke",
            NetworkManage => "network.manage",
            SimManage => "sim.manage",
            FirmwarePublish => "firmware.publish",
            RolloutsManage => "rollouts.manage",
            AlertsRead => "alerts.read",
            AlertsAck => "alerts.ack",
            RulesManage => "rules.manage",
            UsersManage => "users.manage",
            AuditRead => "audit.read",
            ReportsRead => "reports.read",
            SystemManage => "system.manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    SecurityAnalyst,
    Operator,
    Technician,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [Self::Admin, Self::SecurityAnalyst, Self::Operator, Self::Technician, Self::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::SecurityAnalyst => "security-analyst",
            Self::Operator => "operator",
            Self::Technician => "technician",
            Self::Auditor => "auditor",
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Self::Admin => &[
                DevicesRead,
                DevicesWrite,
                DevicesLifecycle,
                PkiEnroll,
                PkiRevoke,
                NetworkManage,
                SimManage,
                FirmwarePublish,
                RolloutsManage,
                AlertsRead,
                AlertsAck,
                RulesManage,
                UsersManage,
                AuditRead,
                ReportsRead,
                SystemManage,
            ],
            Self::SecurityAnalyst => {
                &[DevicesRead, DevicesLifecycle, PkiRevoke, AlertsRead, AlertsAck, RulesManage, AuditRead, ReportsRead]
            }
            Self::Operator => &[DevicesRead, DevicesWrite, DevicesLifecycle, PkiEnroll, AlertsRead, ReportsRead],
            Self::Technician => &[DevicesRead],
            Self::Auditor => &[DevicesRead, AlertsRead, AuditRead, ReportsRead],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            InvalidField::new(
                "role",
                format!("{s:.40?} is not one of admin, security-analyst, operator, technician, auditor"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege() {
        assert!(Role::Admin.allows(Permission::SystemManage));
        assert!(Role::Technician.allows(Permission::DevicesRead));
        for p in [Permission::DevicesWrite, Permission::PkiEnroll, Permission::NetworkManage, Permission::SimManage] {
            assert!(!Role::Technician.allows(p), "{p}");
        }
        assert!(Role::Auditor.allows(Permission::AuditRead));
        assert!(!Role::Auditor.allows(Permission::DevicesWrite));
        assert!(!Role::Operator.allows(Permission::AuditRead));
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
