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
    pub const ALL: [Permission; 16] = [
        Self::DevicesRead,
        Self::DevicesWrite,
        Self::DevicesLifecycle,
        Self::PkiEnroll,
        Self::PkiRevoke,
        Self::NetworkManage,
        Self::SimManage,
        Self::FirmwarePublish,
        Self::RolloutsManage,
        Self::AlertsRead,
        Self::AlertsAck,
        Self::RulesManage,
        Self::UsersManage,
        Self::AuditRead,
        Self::ReportsRead,
        Self::SystemManage,
    ];

    /// Denials of these are audited, not only counted.
    pub fn is_sensitive(self) -> bool {
        matches!(
            self,
            Self::PkiEnroll
                | Self::PkiRevoke
                | Self::NetworkManage
                | Self::SimManage
                | Self::FirmwarePublish
                | Self::UsersManage
                | Self::AuditRead
                | Self::SystemManage
                | Self::DevicesLifecycle
        )
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

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

impl FromStr for Permission {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| InvalidField::new("permission", format!("{s:.40?} is not a permission")))
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    pub fn of(perms: &[Permission]) -> Self {
        Self(perms.iter().fold(0, |acc, p| acc | p.bit()))
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_subset_of(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn union(self, other: PermissionSet) -> Self {
        Self(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// Parses names like `devices.read`; the first unknown one is named.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, InvalidField> {
        let perms = names.iter().map(|n| n.as_ref().parse()).collect::<Result<Vec<Permission>, _>>()?;
        Ok(Self::of(&perms))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }
}

/// Where a grant applies: device groups and/or regions. Empty lists mean "everywhere".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    pub groups: Vec<String>,
    pub regions: Vec<String>,
}

impl Scope {
    pub fn everywhere() -> Self {
        Self::default()
    }

    pub fn is_everywhere(&self) -> bool {
        self.groups.is_empty() && self.regions.is_empty()
    }

    /// Whether a device in `group` and `region` is inside this scope.
    pub fn covers(&self, group: Option<&str>, region: Option<&str>) -> bool {
        let inside =
            |list: &[String], v: Option<&str>| list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v));
        inside(&self.groups, group) && inside(&self.regions, region)
    }

    /// Whether `inner` is no wider than this scope.
    pub fn contains(&self, inner: &Scope) -> bool {
        let narrower = |outer: &[String], inner: &[String]| {
            outer.is_empty() || (!inner.is_empty() && inner.iter().all(|i| outer.contains(i)))
        };
        narrower(&self.groups, &inner.groups) && narrower(&self.regions, &inner.regions)
    }
}

/// Permissions granted within a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub permissions: PermissionSet,
    pub scope: Scope,
}

/// Everything a caller may do: the union of their grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authority {
    pub grants: Vec<Grant>,
}

impl Authority {
    pub fn new(grants: Vec<Grant>) -> Self {
        Self { grants }
    }

    /// Whether `p` is granted anywhere (the route-level check).
    pub fn allows(&self, p: Permission) -> bool {
        self.grants.iter().any(|g| g.permissions.contains(p))
    }

    /// Whether `p` is granted on a device in `group` and `region`.
    pub fn allows_on(&self, p: Permission, group: Option<&str>, region: Option<&str>) -> bool {
        self.grants.iter().any(|g| g.permissions.contains(p) && g.scope.covers(group, region))
    }

    /// The scopes in which `p` is granted; `None` when one of them is everywhere.
    pub fn scopes_for(&self, p: Permission) -> Option<Vec<Scope>> {
        let scopes: Vec<Scope> =
            self.grants.iter().filter(|g| g.permissions.contains(p)).map(|g| g.scope.clone()).collect();
        if scopes.iter().any(Scope::is_everywhere) { None } else { Some(scopes) }
    }

    /// Every permission granted somewhere.
    pub fn permissions(&self) -> PermissionSet {
        self.grants.iter().fold(PermissionSet::default(), |acc, g| acc.union(g.permissions))
    }

    /// Whether a key with `wanted` permissions in `scope` would stay within this authority:
    /// each wanted permission must be granted by one grant whose scope contains `scope`.
    pub fn can_delegate(&self, wanted: PermissionSet, scope: &Scope) -> bool {
        wanted.iter().all(|p| self.grants.iter().any(|g| g.permissions.contains(p) && g.scope.contains(scope)))
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

    pub fn permission_set(self) -> PermissionSet {
        PermissionSet::of(self.permissions())
    }

    /// Roles whose holders must use MFA (policy default).
    pub fn requires_mfa(self) -> bool {
        matches!(self, Self::Admin | Self::SecurityAnalyst)
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
    fn scopes_and_delegation() {
        let north = Scope { groups: vec!["north".into()], regions: vec![] };
        assert!(north.covers(Some("north"), None));
        assert!(!north.covers(Some("south"), Some("eu")));
        assert!(!north.covers(None, None));
        assert!(Scope::everywhere().covers(None, None));
        let a = Authority::new(vec![Grant { permissions: Role::Operator.permission_set(), scope: north.clone() }]);
        assert!(a.allows(Permission::DevicesWrite));
        assert!(a.allows_on(Permission::DevicesWrite, Some("north"), None));
        assert!(!a.allows_on(Permission::DevicesWrite, Some("south"), None));
        assert_eq!(a.scopes_for(Permission::DevicesRead), Some(vec![north.clone()]));
        // No escalation: not beyond the permissions, not beyond the scope.
        assert!(a.can_delegate(PermissionSet::of(&[Permission::DevicesRead]), &north));
        assert!(!a.can_delegate(PermissionSet::of(&[Permission::UsersManage]), &north));
        assert!(!a.can_delegate(PermissionSet::of(&[Permission::DevicesRead]), &Scope::everywhere()));
        let admin =
            Authority::new(vec![Grant { permissions: Role::Admin.permission_set(), scope: Scope::everywhere() }]);
        assert!(admin.can_delegate(Role::Admin.permission_set(), &north));
        assert_eq!(admin.scopes_for(Permission::DevicesRead), None);
    }

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        let set = PermissionSet::parse(&["audit.read", "devices.read"]).unwrap();
        assert_eq!(set.names(), vec!["devices.read", "audit.read"]);
        assert!(PermissionSet::parse(&["root"]).is_err());
        assert!(set.is_subset_of(Role::Auditor.permission_set()));
        assert!(!Role::Admin.permission_set().is_subset_of(set));
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
