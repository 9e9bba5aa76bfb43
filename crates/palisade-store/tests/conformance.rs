//! One conformance suite, instantiated for every backend: SQLite always, PostgreSQL when
//! `PALISADE_TEST_POSTGRES_URL` is set (each test then gets a schema of its own).

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use palisade_core::audit::{Actor, ChainBreak};
use palisade_core::device::{DeviceAttributes, DevicePatch};
use palisade_core::{Criticality, DeviceId, LifecycleState, Location, Role};
use palisade_store::apikeys::{KeyAuthority, PresentedKey};
use palisade_store::audit::{AuditContext, AuditFilter};
use palisade_store::devices::{DeviceFilter, NewDevice, Transition};
use palisade_store::sealed::{MasterKey, random};
use palisade_store::{Store, StoreError, StoreLocation};
use sqlx::Connection as _;

/// A fresh database of one backend, with a way to reach it behind the store's back.
struct Fixture {
    location: StoreLocation,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(backend: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let location = match backend {
            "sqlite" => StoreLocation::Sqlite(dir.path().join("palisade.db")),
            _ => {
                let base = std::env::var("PALISADE_TEST_POSTGRES_URL").ok()?;
                let mut suffix = [0u8; 6];
                random(&mut suffix).unwrap();
                let schema = format!("conformance_{}", hex(&suffix));
                let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::Executor::execute(&mut c, format!("CREATE SCHEMA {schema}").as_str()).await.unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                StoreLocation::Postgres(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
            }
        };
        Some(Self { location, _dir: dir })
    }

    async fn try_raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        match &self.location {
            StoreLocation::Sqlite(p) => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", p.display())).await?;
                sqlx::Executor::execute(&mut c, sql).await?;
            }
            StoreLocation::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                sqlx::Executor::execute(&mut c, sql).await?;
            }
        }
        Ok(())
    }

    async fn raw(&self, sql: &str) {
        self.try_raw(sql).await.unwrap();
    }

    /// Every byte the database holds for the devices table, as the database stores it.
    async fn raw_device_bytes(&self) -> Vec<u8> {
        match &self.location {
            StoreLocation::Sqlite(p) => {
                let mut all = std::fs::read(p).unwrap();
                all.extend(std::fs::read(p.with_extension("db-wal")).unwrap_or_default());
                all
            }
            StoreLocation::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT d::text FROM devices d UNION ALL SELECT a::text FROM audit_log a")
                        .fetch_all(&mut c)
                        .await
                        .unwrap();
                rows.into_iter().flat_map(|r| r.0.into_bytes()).collect()
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ctx() -> AuditContext {
    AuditContext {
        actor: Actor::Local { what: "test".into() },
        source_ip: Some("127.0.0.1".into()),
        at_ms: 1_700_000_000_000,
    }
}

fn new_device(n: u64, group: &str, criticality: Criticality) -> NewDevice {
    let mut r = [0u8; 7];
    random(&mut r).unwrap();
    NewDevice {
        id: DeviceId::from_parts(1_700_000_000_000 + n, r),
        attrs: DeviceAttributes {
            serial: format!("SN-{n:05}"),
            model: "meter-3".into(),
            vendor: "acme".into(),
            owner: Some("metering".into()),
            owner_contact: Some(format!("owner{n}@example.com")),
            purpose: Some("billing".into()),
            criticality,
            group: Some(group.into()),
            region: Some("us-east".into()),
            tags: vec!["outdoor".into()],
            location: Some(Location::new(41.8781, -87.6298).unwrap()),
            firmware_version: Some("1.4.2".into()),
        },
    }
}

async fn open(f: &Fixture, master: &MasterKey) -> Store {
    Store::open(&f.location, master, 1_700_000_000_000, None).await.unwrap()
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name("postgres").await } )* }
    };
}

conformance!(
    devices_round_trip_filter_and_paginate,
    lifecycle_is_enforced_and_audited,
    audit_chain_detects_edits_and_deletions,
    personal_data_is_sealed_and_master_key_rotates,
    import_is_all_or_nothing,
    api_keys_authenticate_only_when_valid,
    concurrent_writes_all_land_in_one_chain,
    users_sessions_and_mfa_state,
    devices_sort_and_page_by_offset,
    console_filters_per_user,
    firmware_publish_assign_and_report,
    rollouts_keep_steps_outcomes_and_commands,
    reports_and_their_alerts_are_written_together,
);

async fn devices_round_trip_filter_and_paginate(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let m = MasterKey::generate().unwrap();
    let s = open(&f, &m).await;
    for n in 0..25 {
        let (g, c) = if n % 2 == 0 { ("north", Criticality::High) } else { ("south", Criticality::Low) };
        s.create_device(new_device(n, g, c), ctx()).await.unwrap();
    }
    let dup = s.create_device(new_device(3, "x", Criticality::Low), ctx()).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");

    let filter =
        DeviceFilter { group: Some("north".into()), criticality: Some(Criticality::High), ..Default::default() };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list_devices(&filter, cursor.as_ref(), 5).await.unwrap();
        seen.extend(page.items.iter().map(|d| d.id.clone()));
        match page.next {
            Some(n) => cursor = Some(n.parse::<DeviceId>().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 13);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "pages are ordered and disjoint");

    let q = DeviceFilter { q: Some("sn-0001".into()), ..Default::default() };
    assert_eq!(s.list_devices(&q, None, 100).await.unwrap().items.len(), 10);
    let q = DeviceFilter { q: Some("%".into()), ..Default::default() };
    assert_eq!(s.list_devices(&q, None, 100).await.unwrap().items.len(), 0, "LIKE wildcards are literal");
    let t = DeviceFilter { tag: Some("outdoor".into()), ..Default::default() };
    assert_eq!(s.list_devices(&t, None, 100).await.unwrap().items.len(), 25);

    let first = seen[0].clone();
    let patch = DevicePatch { owner: Some(None), tags: Some(vec!["a".into(), "b".into()]), ..Default::default() };
    let d = s.update_device(first.clone(), patch, ctx()).await.unwrap();
    assert_eq!(d.attrs.owner, None);
    let d = s.get_device(&first).await.unwrap();
    assert_eq!(d.attrs.tags, vec!["a", "b"]);
    assert_eq!(d.attrs.owner_contact.as_deref(), Some("owner0@example.com"));
    assert_eq!(d.attrs.location.unwrap().lat(), 41.8781);

    let audit = s
        .list_audit(&AuditFilter { target: Some(format!("device:{first}")), ..Default::default() }, None, 10)
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 2);
    assert_eq!(audit.items[0].entry.action, "device.update");
    assert!(audit.items[0].entry.after.as_deref().unwrap().contains("\"tags\":[\"a\",\"b\"]"));
    assert_eq!(s.verify_audit().await.unwrap().unwrap().entries, 26);
    s.close().await;
}

async fn lifecycle_is_enforced_and_audited(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    let id = s.create_device(new_device(1, "g", Criticality::Medium), ctx()).await.unwrap().id;
    let err = s.transition_device(id.clone(), Transition::To(LifecycleState::Active), None, ctx()).await.unwrap_err();
    assert!(err.to_string().contains("allowed: provisioned, decommissioned"), "{err}");
    for to in [LifecycleState::Provisioned, LifecycleState::Active, LifecycleState::Quarantined] {
        s.transition_device(id.clone(), Transition::To(to), Some("test".into()), ctx()).await.unwrap();
    }
    let d = s.transition_device(id.clone(), Transition::Release, None, ctx()).await.unwrap();
    assert_eq!(d.state, LifecycleState::Active);
    s.transition_device(id.clone(), Transition::To(LifecycleState::Decommissioned), None, ctx()).await.unwrap();
    let err =
        s.update_device(id.clone(), DevicePatch { owner: Some(None), ..Default::default() }, ctx()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    let audit = s
        .list_audit(&AuditFilter { action: Some("device.lifecycle".into()), ..Default::default() }, None, 10)
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 5, "the refused transition changed nothing and recorded nothing");
    s.close().await;
}

async fn audit_chain_detects_edits_and_deletions(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    for n in 0..6 {
        s.create_device(new_device(n, "g", Criticality::Low), ctx()).await.unwrap();
    }
    assert_eq!(s.audit_checkpoint(1).await.unwrap(), Some(6));
    assert_eq!(s.audit_checkpoint(2).await.unwrap(), None, "nothing new to sign");
    assert_eq!(s.verify_audit().await.unwrap(), Ok(palisade_store::audit::Verified { entries: 6, checkpoints: 1 }));

    // The application cannot rewrite history…
    let refused = f.try_raw("UPDATE audit_log SET actor = 'x' WHERE seq = 2").await.unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    assert!(f.try_raw("DELETE FROM audit_log WHERE seq = 2").await.is_err());
    // …someone with the database in hand can, and the chain names the entry.
    let drop_triggers = match &f.location {
        StoreLocation::Sqlite(_) => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        StoreLocation::Postgres(_) => "DROP TRIGGER audit_log_no_update ON audit_log;",
    };
    f.raw(drop_triggers).await;
    f.raw("UPDATE audit_log SET actor = 'apikey:mallory' WHERE seq = 3").await;
    assert_eq!(s.verify_audit().await.unwrap(), Err(ChainBreak::Edited { seq: 3 }));
    f.raw("UPDATE audit_log SET actor = 'local:test' WHERE seq = 3").await;
    assert!(s.verify_audit().await.unwrap().is_ok());
    f.raw("DELETE FROM audit_log WHERE seq = 4").await;
    assert_eq!(s.verify_audit().await.unwrap(), Err(ChainBreak::Missing { seq: 4 }));
    s.close().await;
}

async fn personal_data_is_sealed_and_master_key_rotates(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let old = MasterKey::generate().unwrap();
    let s = open(&f, &old).await;
    let mut d = new_device(7, "g", Criticality::Low);
    d.attrs.owner_contact = Some("carol.private@example.org".into());
    let id = s.create_device(d, ctx()).await.unwrap().id;
    s.close().await;
    let raw = f.raw_device_bytes().await;
    assert!(!raw.windows(13).any(|w| w == b"carol.private"), "contact stored in clear");
    assert!(!raw.windows(7).any(|w| w == b"41.8781"), "location stored in clear");

    let s = open(&f, &old).await;
    let new = Arc::new(MasterKey::generate().unwrap());
    let old_id = old.id();
    let n = s.rotate_master_key(old, new.clone(), ctx()).await.unwrap();
    assert_eq!(n, 1);
    // The running store keeps working.
    assert_eq!(s.get_device(&id).await.unwrap().attrs.owner_contact.as_deref(), Some("carol.private@example.org"));
    s.close().await;
    // Reopened with the new key, everything decrypts…
    let s = open(&f, &new).await;
    assert_eq!(s.get_device(&id).await.unwrap().attrs.owner_contact.as_deref(), Some("carol.private@example.org"));
    s.close().await;
    // …and no other key opens it (the old key's id no longer matches any data key).
    assert_ne!(old_id, new.id());
    let err = Store::open(&f.location, &MasterKey::generate().unwrap(), 0, None).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err}");
}

async fn import_is_all_or_nothing(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    s.create_device(new_device(2, "g", Criticality::Low), ctx()).await.unwrap();
    let rows: Vec<_> = (0..5).map(|n| (n as usize + 1, new_device(10 + n, "g", Criticality::Low))).collect();
    let mut bad = rows.clone();
    bad.push((6, new_device(2, "g", Criticality::Low)));
    bad.push((7, new_device(11, "g", Criticality::Low)));
    match s.import_devices(bad, ctx()).await.unwrap_err() {
        StoreError::ImportRejected(errs) => {
            assert_eq!(errs.iter().map(|e| e.row).collect::<Vec<_>>(), vec![6, 7]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(s.count_devices().await.unwrap(), 1, "nothing of a refused import lands");
    assert_eq!(s.import_devices(rows, ctx()).await.unwrap(), 5);
    assert_eq!(s.count_devices().await.unwrap(), 6);
    s.close().await;
}

async fn api_keys_authenticate_only_when_valid(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    let k = s.create_api_key("ci".into(), KeyAuthority::Role(Role::Operator), None, ctx()).await.unwrap();
    let now = 1_700_000_000_000;
    let ok = s.authenticate_api_key(&PresentedKey::new(&k.key), now).await.unwrap().unwrap();
    assert_eq!((ok.role, ok.name.as_str()), (Some(Role::Operator), "ci"));
    let mut wrong = k.key.to_string();
    wrong.pop();
    wrong.push('x');
    assert!(s.authenticate_api_key(&PresentedKey::new(&wrong), now).await.unwrap().is_none());
    assert!(s.authenticate_api_key(&PresentedKey::new("pal_0000000000000000_x"), now).await.unwrap().is_none());
    let e = s.create_api_key("short".into(), KeyAuthority::Role(Role::Admin), Some(now + 10), ctx()).await.unwrap();
    assert!(s.authenticate_api_key(&PresentedKey::new(&e.key), now).await.unwrap().is_some());
    assert!(s.authenticate_api_key(&PresentedKey::new(&e.key), now + 10).await.unwrap().is_none(), "expired");
    s.close().await;
}

async fn concurrent_writes_all_land_in_one_chain(backend: &str) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move { s.create_device(new_device(n, "g", Criticality::Low), ctx()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.count_devices().await.unwrap(), 200);
    assert_eq!(s.verify_audit().await.unwrap().unwrap().entries, 200);
    s.close().await;
}

async fn users_sessions_and_mfa_state(backend: &str) {
    use palisade_core::{PermissionSet, Scope};
    use palisade_store::users::{CustomRole, NewUser, RoleBinding, UserPatch, UserStatus};
    let Some(f) = Fixture::new(backend).await else { return };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    let north = Scope { groups: vec!["north".into()], regions: vec!["eu".into(), "us".into()] };
    let new = NewUser {
        id: "u1".into(),
        username: "alice".into(),
        display_name: Some("Alice".into()),
        email: Some("alice.private@example.org".into()),
        password_hash: zeroize::Zeroizing::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        must_change_password: true,
        bindings: vec![RoleBinding { role: "operator".into(), scope: north.clone() }],
    };
    s.create_user(new.clone(), ctx()).await.unwrap();
    assert!(matches!(s.create_user(NewUser { id: "u2".into(), ..new }, ctx()).await, Err(StoreError::Conflict(_))));
    let u = s.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!((u.email.as_deref(), u.bindings[0].scope.clone()), (Some("alice.private@example.org"), north));
    assert!(u.must_change_password && !u.mfa_enabled());

    // MFA: a step is used once, never an older one; recovery codes once.
    let secret = zeroize::Zeroizing::new(b"12345678901234567890".to_vec());
    s.set_totp_pending("u1".into(), secret.clone(), ctx()).await.unwrap();
    assert_eq!(s.user("u1").await.unwrap().totp_pending.as_deref().map(|v| v.to_vec()), Some(secret.to_vec()));
    s.confirm_totp("u1".into(), secret.clone(), 100, vec![vec![1; 32], vec![2; 32]], ctx()).await.unwrap();
    let u = s.user("u1").await.unwrap();
    assert!(u.mfa_enabled() && u.totp_pending.is_none());
    assert!(!s.use_totp_step("u1".into(), 100).await.unwrap(), "the enrolment step is spent");
    assert!(s.use_totp_step("u1".into(), 101).await.unwrap());
    assert!(!s.use_totp_step("u1".into(), 101).await.unwrap());
    assert!(s.use_recovery_code("u1".into(), vec![1; 32], 5).await.unwrap());
    assert!(!s.use_recovery_code("u1".into(), vec![1; 32], 6).await.unwrap());
    s.disable_totp("u1".into(), ctx()).await.unwrap();
    assert!(!s.user("u1").await.unwrap().mfa_enabled());

    // Sessions: a password change ends the others; disabling the user ends all.
    for h in [[1u8; 32], [2u8; 32]] {
        s.create_session(h.to_vec(), "u1".into(), 10, Some("127.0.0.1".into())).await.unwrap();
    }
    s.set_password("u1".into(), zeroize::Zeroizing::new("new-hash".into()), false, Some(vec![1; 32]), ctx())
        .await
        .unwrap();
    assert!(s.session(&[1; 32]).await.unwrap().is_some());
    assert!(s.session(&[2; 32]).await.unwrap().is_none());
    let patch = UserPatch { status: Some(UserStatus::Disabled), ..Default::default() };
    s.update_user("u1".into(), patch, ctx()).await.unwrap();
    assert!(s.session(&[1; 32]).await.unwrap().is_none());

    let role = CustomRole {
        name: "fw-team".into(),
        permissions: PermissionSet::parse(&["firmware.publish"]).unwrap(),
        mfa_required: true,
    };
    s.create_role(role.clone(), ctx()).await.unwrap();
    assert_eq!(s.custom_roles().await.unwrap(), vec![role]);
    s.set_user_locked("u1".into(), Some(99), ctx()).await.unwrap();
    assert_eq!(s.user("u1").await.unwrap().locked_until_ms, Some(99));
    s.close().await;
}

async fn devices_sort_and_page_by_offset(backend: &str) {
    use palisade_store::devices::{DeviceOrder, SortKey};
    let Some(f) = Fixture::new(backend).await else { return };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    // Serials that byte-wise order and a locale's order disagree on; one device without a region.
    let rows = [
        ("b-2", Criticality::Low, Some("us-east")),
        ("B-1", Criticality::Critical, Some("eu-west")),
        ("a_3", Criticality::Medium, None),
        ("c-4", Criticality::High, Some("ap-south")),
        ("a-5", Criticality::Low, Some("eu-west")),
    ];
    let mut ids = Vec::new();
    for (n, (serial, crit, region)) in rows.iter().enumerate() {
        let mut d = new_device(n as u64, "north", *crit);
        d.attrs.serial = (*serial).into();
        d.attrs.region = region.map(Into::into);
        ids.push(s.create_device(d, ctx()).await.unwrap().id);
    }
    s.create_device(new_device(99, "south", Criticality::Low), ctx()).await.unwrap();
    s.transition_device(ids[3].clone(), Transition::To(LifecycleState::Provisioned), None, ctx()).await.unwrap();
    let north = DeviceFilter { group: Some("north".into()), ..Default::default() };
    let serials = |page: &palisade_store::devices::Page<palisade_core::device::Device>| {
        page.items.iter().map(|d| d.attrs.serial.clone()).collect::<Vec<_>>()
    };
    let by = |key, descending| DeviceOrder { key, descending };

    let page = s.list_devices_sorted(&north, by(SortKey::Serial, false), 0, 10).await.unwrap();
    assert_eq!(serials(&page), ["B-1", "a-5", "a_3", "b-2", "c-4"], "byte-wise on every backend");
    assert_eq!(page.next, None);
    let first = s.list_devices_sorted(&north, by(SortKey::Serial, true), 0, 2).await.unwrap();
    assert_eq!((serials(&first), first.next.as_deref()), (vec!["c-4".to_owned(), "b-2".to_owned()], Some("2")));
    let second = s.list_devices_sorted(&north, by(SortKey::Serial, true), 2, 2).await.unwrap();
    assert_eq!((serials(&second), second.next.as_deref()), (vec!["a_3".to_owned(), "a-5".to_owned()], Some("4")));
    let last = s.list_devices_sorted(&north, by(SortKey::Serial, true), 4, 2).await.unwrap();
    assert_eq!((serials(&last), last.next), (vec!["B-1".to_owned()], None));

    let crit = s.list_devices_sorted(&north, by(SortKey::Criticality, true), 0, 10).await.unwrap();
    let order: Vec<&str> = crit.items.iter().map(|d| d.attrs.criticality.as_str()).collect();
    assert_eq!(order, ["critical", "high", "medium", "low", "low"], "by rank, not alphabetically");
    let region = s.list_devices_sorted(&north, by(SortKey::Region, false), 0, 10).await.unwrap();
    assert_eq!(region.items[0].attrs.region, None, "no region sorts first, as empty text");
    assert_eq!(region.items[1].attrs.region.as_deref(), Some("ap-south"));
    let state = s.list_devices_sorted(&north, by(SortKey::State, true), 0, 1).await.unwrap();
    assert_eq!(state.items[0].id, ids[3], "provisioned after registered");
    assert_eq!(s.count_devices_matching(&north).await.unwrap(), 5);
    let none = DeviceFilter { scopes: Some(vec![]), ..Default::default() };
    assert_eq!(s.count_devices_matching(&none).await.unwrap(), 0);
    assert!(s.list_devices_sorted(&none, by(SortKey::Updated, true), 0, 10).await.unwrap().items.is_empty());
    s.close().await;
}

async fn console_filters_per_user(backend: &str) {
    use palisade_store::users::NewUser;
    let Some(f) = Fixture::new(backend).await else { return };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    for (id, name) in [("u1", "alice"), ("u2", "bob")] {
        let new = NewUser {
            id: id.into(),
            username: name.into(),
            display_name: None,
            email: None,
            password_hash: zeroize::Zeroizing::new("hash".into()),
            must_change_password: false,
            bindings: vec![],
        };
        s.create_user(new, ctx()).await.unwrap();
    }
    s.save_console_filter("u1".into(), " quarantined ".into(), "state=quarantined".into(), 1).await.unwrap();
    s.save_console_filter("u1".into(), "critical".into(), "criticality=critical".into(), 2).await.unwrap();
    s.save_console_filter("u1".into(), "quarantined".into(), "state=quarantined&sort=updated".into(), 3).await.unwrap();
    let mine = s.console_filters("u1").await.unwrap();
    let names: Vec<(&str, &str)> = mine.iter().map(|f| (f.name.as_str(), f.query.as_str())).collect();
    assert_eq!(names, [("critical", "criticality=critical"), ("quarantined", "state=quarantined&sort=updated")]);
    assert!(s.console_filters("u2").await.unwrap().is_empty(), "filters are per person");

    for (name, query) in [("", "q=x"), (&"n".repeat(65)[..], "q=x"), ("ok", &"q".repeat(513)[..])] {
        let e = s.save_console_filter("u1".into(), name.into(), query.into(), 4).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{name:?}: {e}");
    }
    for n in 2..50 {
        s.save_console_filter("u1".into(), format!("f{n:02}"), "q=x".into(), 5).await.unwrap();
    }
    let e = s.save_console_filter("u1".into(), "one too many".into(), "q=x".into(), 6).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(f) if f.field == "name"), "{e}");
    s.save_console_filter("u1".into(), "critical".into(), "criticality=high".into(), 7).await.unwrap();
    assert!(s.delete_console_filter("u1".into(), "critical".into()).await.unwrap());
    assert!(!s.delete_console_filter("u1".into(), "critical".into()).await.unwrap());
    assert!(!s.delete_console_filter("u2".into(), "quarantined".into()).await.unwrap());
    assert_eq!(s.console_filters("u1").await.unwrap().len(), 49);
    s.close().await;
}

async fn firmware_publish_assign_and_report(backend: &str) {
    use palisade_store::firmware::{CatalogueEntry, NewAssignment, NewMetadata, Publication, Role, UpdateReport};
    let Some(f) = Fixture::new(backend).await else { return };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    let device = s.create_device(new_device(1, "g", Criticality::High), ctx()).await.unwrap();
    let meta = |version: u64, body: &str| NewMetadata {
        version,
        body: body.as_bytes().to_vec(),
        expires_ms: 2_000_000_000_000,
    };
    let count = |action: &'static str| {
        let s = s.clone();
        async move {
            let filter = AuditFilter { action: Some(action.into()), ..AuditFilter::default() };
            s.list_audit(&filter, None, 100).await.unwrap().items.len()
        }
    };

    // Roots: 1, then exactly the next version; every version kept.
    for bad in [0, 2] {
        let e = s.put_tuf_root(meta(bad, "r"), ctx()).await.unwrap_err();
        assert!(matches!(&e, StoreError::Invalid(f) if f.field == "signed.version"), "{e}");
    }
    s.put_tuf_root(meta(1, "root one"), ctx()).await.unwrap();
    assert!(s.put_tuf_root(meta(1, "again"), ctx()).await.is_err());
    s.put_tuf_root(meta(2, "root two"), ctx()).await.unwrap();
    assert_eq!(s.tuf_latest(Role::Root).await.unwrap().unwrap().body, b"root two");
    assert_eq!(s.tuf_version(Role::Root, 1).await.unwrap().unwrap().body, b"root one");
    assert!(s.tuf_version(Role::Root, 3).await.unwrap().is_none());
    assert_eq!(count("firmware.root").await, 2);

    // Images.
    let sha = "ab".repeat(32);
    let e = s.put_firmware_image("AB".repeat(32), 10, ctx()).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(f) if f.field == "sha256"), "{e}");
    let image = s.put_firmware_image(sha.clone(), 1000, ctx()).await.unwrap();
    assert_eq!((image.sha256.as_str(), image.length), (sha.as_str(), 1000));
    s.put_firmware_image(sha.clone(), 1000, ctx()).await.unwrap();
    assert_eq!(s.firmware_image(&sha).await.unwrap().unwrap().length, 1000);
    assert!(s.firmware_image(&"cd".repeat(32)).await.unwrap().is_none());

    // Targets: every image uploaded with its length, or nothing changes.
    let entry = |name: &str, sha256: &str, length: u64| CatalogueEntry {
        name: name.into(),
        hardware: "meter-3".into(),
        version: "2.0.0".into(),
        counter: 7,
        sha256: sha256.into(),
        length,
        created_ms: 0,
    };
    let publication = |v: u64, entries: Vec<CatalogueEntry>| Publication {
        targets: meta(v, "targets"),
        entries,
        snapshot: meta(v, "snapshot"),
        timestamp: meta(v, "timestamp"),
    };
    let e = s.publish_targets(publication(1, vec![entry("fw-a", &"cd".repeat(32), 1000)]), ctx()).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(f) if f.field == "signed.targets.fw-a"), "{e}");
    let e = s.publish_targets(publication(1, vec![entry("fw-a", &sha, 999)]), ctx()).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(f) if f.field == "signed.targets.fw-a.length"), "{e}");
    assert!(s.tuf_latest(Role::Targets).await.unwrap().is_none());
    assert!(s.firmware_catalogue().await.unwrap().is_empty());
    s.publish_targets(publication(1, vec![entry("fw-a", &sha, 1000)]), ctx()).await.unwrap();
    let catalogue = s.firmware_catalogue().await.unwrap();
    assert_eq!(catalogue.len(), 1);
    assert_eq!((catalogue[0].name.as_str(), catalogue[0].counter), ("fw-a", 7));
    assert_eq!(s.tuf_latest(Role::Timestamp).await.unwrap().unwrap().version, 1);
    let e = s.publish_targets(publication(1, vec![]), ctx()).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(f) if f.field == "signed.version"), "{e}");
    let stale = Publication { snapshot: meta(1, "s"), ..publication(2, vec![]) };
    assert!(matches!(s.publish_targets(stale, ctx()).await.unwrap_err(), StoreError::Conflict(_)));
    assert_eq!(count("firmware.targets").await, 1);

    // Re-signing the online metadata moves by one version.
    s.resign_tuf(None, meta(2, "timestamp two"), ctx()).await.unwrap();
    assert!(matches!(s.resign_tuf(None, meta(2, "t"), ctx()).await.unwrap_err(), StoreError::Conflict(_)));
    s.resign_tuf(Some(meta(2, "snapshot two")), meta(3, "timestamp three"), ctx()).await.unwrap();
    assert_eq!(s.tuf_latest(Role::Snapshot).await.unwrap().unwrap().body, b"snapshot two");

    // Assignments: numbered per device, the target still in the catalogue, the command queued.
    let id = device.id.to_string();
    let assignment = |issued: u64, target: &str, sha256: &str| NewAssignment {
        device_id: id.clone(),
        issued,
        target: target.into(),
        sha256: sha256.into(),
        signed: format!("{{\"issued\":{issued}}}"),
    };
    assert!(matches!(
        s.assign_firmware(assignment(2, "fw-a", &sha), ctx()).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert!(matches!(
        s.assign_firmware(assignment(1, "nope", &sha), ctx()).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
    let moved = assignment(1, "fw-a", &"cd".repeat(32));
    assert!(matches!(s.assign_firmware(moved, ctx()).await.unwrap_err(), StoreError::Conflict(_)));
    assert!(s.firmware_assignment(&id).await.unwrap().is_none());
    let command = s.assign_firmware(assignment(1, "fw-a", &sha), ctx()).await.unwrap();
    s.assign_firmware(assignment(2, "fw-a", &sha), ctx()).await.unwrap();
    let latest = s.firmware_assignment(&id).await.unwrap().unwrap();
    assert_eq!((latest.issued, latest.target.as_str(), latest.signed.as_str()), (2, "fw-a", "{\"issued\":2}"));
    let commands = s.commands_of(&id).await.unwrap();
    assert!(commands.iter().any(|c| c.id == command && c.command == "update" && c.status == "queued"));
    assert_eq!(commands.iter().filter(|c| c.command == "update").count(), 2);
    assert_eq!(count("firmware.assign").await, 2);

    // Update reports: the last one kept; a commit sets the device's firmware version, audited.
    let report = |event: &str, version: Option<&str>| UpdateReport {
        device_id: id.clone(),
        event: event.into(),
        target: Some("fw-a".into()),
        version: version.map(Into::into),
        detail: Some("x".repeat(10_000)),
        at_ms: 1_700_000_000_500,
    };
    let device_ctx = || AuditContext { actor: Actor::Device { id: id.clone() }, ..ctx() };
    s.record_update_report(report("update.downloading", None), device_ctx()).await.unwrap();
    let r = s.update_report(&id).await.unwrap().unwrap();
    assert_eq!((r.event.as_str(), r.detail.as_ref().map(String::len)), ("update.downloading", Some(4096)));
    assert_eq!(s.get_device(&device.id).await.unwrap().attrs.firmware_version.as_deref(), Some("1.4.2"));
    let updates = count("device.update").await;
    s.record_update_report(report("update.committed", Some("2.0.0")), device_ctx()).await.unwrap();
    assert_eq!(s.update_report(&id).await.unwrap().unwrap().event, "update.committed");
    assert_eq!(s.get_device(&device.id).await.unwrap().attrs.firmware_version.as_deref(), Some("2.0.0"));
    assert_eq!(count("device.update").await, updates + 1);
    assert!(s.verify_audit().await.unwrap().is_ok());
    s.close().await;
}

async fn rollouts_keep_steps_outcomes_and_commands(backend: &str) {
    use palisade_store::rollouts::{Step, StoredRollout};
    let Some(f) = Fixture::new(backend).await else { return };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    let r = StoredRollout {
        id: "ro_1".into(),
        target: "meter-2.0".into(),
        spec: "{}".into(),
        state: "{}".into(),
        status: "running".into(),
        created_ms: 10,
        updated_ms: 10,
    };
    s.create_rollout(r, vec!["d1".into(), "d2".into(), "d3".into()], ctx()).await.unwrap();
    let step = |updated, assigned: Vec<&str>, timed_out: Vec<&str>| Step {
        state: "{\"phase\":0}".into(),
        status: "running".into(),
        assigned: assigned.into_iter().map(Into::into).collect(),
        timed_out: timed_out.into_iter().map(Into::into).collect(),
        status_changed: None,
        read_updated_ms: updated,
    };
    assert!(s.save_rollout_step("ro_1".into(), step(10, vec!["d1", "d2"], vec![]), ctx()).await.unwrap());
    // A step computed from the old row is dropped whole.
    assert!(!s.save_rollout_step("ro_1".into(), step(10, vec!["d3"], vec![]), ctx()).await.unwrap());
    assert_eq!((outcome(&s, "d1").await, outcome(&s, "d3").await), ("assigned".to_owned(), "waiting".to_owned()));
    // Outcomes land on assigned rows of active rollouts of that target only.
    let touched = s.record_rollout_outcome("d1".into(), "meter-2.0".into(), true, None, 20).await.unwrap();
    assert_eq!(touched, vec!["ro_1".to_owned()]);
    assert!(s.record_rollout_outcome("d2".into(), "other".into(), false, None, 20).await.unwrap().is_empty());
    assert!(s.record_rollout_outcome("d3".into(), "meter-2.0".into(), true, None, 20).await.unwrap().is_empty());
    assert_eq!(outcome(&s, "d1").await, "committed");
    let updated = s.rollout("ro_1").await.unwrap().updated_ms;
    assert!(s.save_rollout_step("ro_1".into(), step(updated, vec![], vec!["d2"]), ctx()).await.unwrap());
    assert_eq!(outcome(&s, "d2").await, "failed");
    // A command wins over a step computed before it.
    let before = s.rollout("ro_1").await.unwrap().updated_ms;
    s.rollout_command("ro_1".into(), "pause".into(), "{}".into(), "paused".into(), ctx()).await.unwrap();
    assert!(!s.save_rollout_step("ro_1".into(), step(before, vec!["d3"], vec![]), ctx()).await.unwrap());
    assert_eq!(s.rollout("ro_1").await.unwrap().status, "paused");
    assert_eq!(s.active_rollouts().await.unwrap().len(), 1);
    s.rollout_command("ro_1".into(), "abort".into(), "{}".into(), "aborted".into(), ctx()).await.unwrap();
    assert!(s.active_rollouts().await.unwrap().is_empty());
    assert!(s.record_rollout_outcome("d3".into(), "meter-2.0".into(), true, None, 30).await.unwrap().is_empty());
    let actions: Vec<String> = s
        .list_audit(&Default::default(), None, 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.entry.action.clone())
        .filter(|a| a.starts_with("rollout."))
        .collect();
    assert_eq!(actions.len(), 3, "create, pause, abort: {actions:?}");
    let e = s.rollout_command("nope".into(), "pause".into(), "{}".into(), "paused".into(), ctx()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}

async fn outcome(s: &Store, device: &str) -> String {
    s.rollout_devices("ro_1").await.unwrap().into_iter().find(|x| x.device_id == device).unwrap().outcome
}

/// Refuses, by trigger, alert rows of the rule `refused` and messages whose payload is `refuse`.
async fn install_refusals(f: &Fixture) {
    match &f.location {
        StoreLocation::Sqlite(_) => {
            f.raw(
                "CREATE TRIGGER refuse_alert BEFORE INSERT ON alerts WHEN NEW.rule = 'refused' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END; \
                 CREATE TRIGGER refuse_message BEFORE INSERT ON device_messages WHEN NEW.payload = 'refuse' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .await;
        }
        StoreLocation::Postgres(_) => {
            for (table, test) in [("alerts", "NEW.rule = 'refused'"), ("device_messages", "NEW.payload = 'refuse'")] {
                f.raw(&format!(
                    "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN \
                     IF {test} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                ))
                .await;
                f.raw(&format!(
                    "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
                ))
                .await;
            }
        }
    }
}

fn report(device: &str, payload: &str, at_ms: i64) -> palisade_store::plane::Inbound {
    palisade_store::plane::Inbound {
        message: palisade_store::plane::DeviceMessage {
            device_id: device.into(),
            kind: "telemetry".into(),
            received_ms: at_ms,
            at_ms,
            seq: Some(1),
            quarantined: false,
            payload: payload.into(),
        },
        telemetry: Some(palisade_store::plane::TelemetryFacts::default()),
    }
}

fn raise(device: &str, rule: &str, at_ms: i64) -> palisade_store::alerts::Verdict {
    palisade_store::alerts::Verdict::Raise(palisade_store::alerts::Raise {
        device_id: device.into(),
        group: None,
        profile: "p".into(),
        rule: rule.into(),
        severity: "high".into(),
        title: format!("{rule} on {device}"),
        detail: "d".into(),
        response: "alert".into(),
        at_ms,
    })
}

async fn reports_and_their_alerts_are_written_together(backend: &str) {
    use palisade_store::alerts::{AlertFilter, Recorded};
    let Some(f) = Fixture::new(backend).await else { return };
    let s = open(&f, &MasterKey::generate().unwrap()).await;
    install_refusals(&f).await;
    let alerts_of = |device: &'static str| {
        let s = s.clone();
        async move {
            let filter = AlertFilter { device: Some(device.into()), limit: 100, ..Default::default() };
            let mut rules: Vec<String> = s.alerts(&filter).await.unwrap().into_iter().map(|a| a.rule).collect();
            rules.sort();
            rules
        }
    };

    // The batch and its verdicts in one write: a verdict that fails fails alone.
    let (started, starting) = tokio::sync::oneshot::channel();
    let verdicts = vec![raise("d1", "telnet", 10), raise("d1", "refused", 10), raise("d1", "other", 10)];
    let recorded = s.ingest_detected(vec![report("d1", "{}", 10)], verdicts, started).await.unwrap();
    starting.await.expect("the write said when it began");
    assert_eq!(recorded.len(), 3);
    assert!(matches!(&recorded[0], Ok(Recorded::Raised(r)) if r.opened && r.alert.rule == "telnet"));
    assert!(recorded[1].is_err(), "{:?}", recorded[1]);
    assert!(matches!(&recorded[2], Ok(Recorded::Raised(r)) if r.opened && r.alert.rule == "other"));
    assert_eq!(s.device_messages("d1", "telemetry", 10).await.unwrap().len(), 1);
    assert_eq!(alerts_of("d1").await, ["other", "telnet"]);

    // A repeat and a clear are recorded the same way.
    let (started, _) = tokio::sync::oneshot::channel();
    let clear = palisade_store::alerts::Verdict::Clear {
        device: "d1".into(),
        profile: "p".into(),
        rule: "other".into(),
        auto_resolve: true,
        at_ms: 20,
    };
    let recorded =
        s.ingest_detected(vec![report("d1", "{}", 20)], vec![raise("d1", "telnet", 20), clear], started).await.unwrap();
    assert!(matches!(&recorded[0], Ok(Recorded::Raised(r)) if !r.opened && r.alert.count == 2));
    assert!(matches!(&recorded[1], Ok(Recorded::Cleared(Some(a))) if a.status == "resolved"));

    // A batch that cannot be written takes its alerts with it: neither is stored.
    let (started, _) = tokio::sync::oneshot::channel();
    let failed = s
        .ingest_detected(
            vec![report("d2", "{}", 30), report("d2", "refuse", 30)],
            vec![raise("d2", "telnet", 30)],
            started,
        )
        .await;
    assert!(failed.is_err());
    assert!(s.device_messages("d2", "telemetry", 10).await.unwrap().is_empty());
    assert!(alerts_of("d2").await.is_empty());
}
