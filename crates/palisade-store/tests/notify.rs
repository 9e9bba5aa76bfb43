//! Notification channels and deliveries, instantiated for every backend like the conformance
//! suite: SQLite always, PostgreSQL when `PALISADE_TEST_POSTGRES_URL` is set.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use palisade_core::audit::Actor;
use palisade_store::audit::{AuditContext, AuditFilter};
use palisade_store::notify::{
    ChannelKind, ChannelSecret, DeliveryFilter, DeliveryStatus, NewChannel, Notice, Outcome, Targets,
};
use palisade_store::sealed::{MasterKey, random};
use palisade_store::{Store, StoreError, StoreLocation};
use serde_json::json;
use sqlx::Connection as _;

const T0: i64 = 1_700_000_000_000;

/// A fresh database of one backend.
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
                let schema = format!("notify_{}", hex::encode(suffix));
                let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::Executor::execute(&mut c, format!("CREATE SCHEMA {schema}").as_str()).await.unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                StoreLocation::Postgres(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
            }
        };
        Some(Self { location, _dir: dir })
    }

    async fn open(&self, master: &MasterKey) -> Store {
        Store::open(&self.location, master, T0, None).await.unwrap()
    }

    /// Every stored channel secret column, as the database holds it.
    async fn raw_secrets(&self) -> Vec<Vec<u8>> {
        let sql = "SELECT secret FROM channels WHERE secret IS NOT NULL";
        match &self.location {
            StoreLocation::Sqlite(p) => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", p.display())).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
            }
            StoreLocation::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
            }
        }
    }
}

fn ctx() -> AuditContext {
    AuditContext { actor: Actor::Local { what: "test".into() }, source_ip: None, at_ms: T0 }
}

fn channel(name: &str, min_severity: &str, groups: &[&str]) -> NewChannel {
    NewChannel {
        name: name.into(),
        kind: ChannelKind::Webhook,
        config: json!({"url": format!("https://{name}.example/hook")}),
        secret: None,
        min_severity: min_severity.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        enabled: true,
        routed: true,
    }
}

fn notice(severity: &str, group: Option<&str>) -> Notice {
    Notice {
        event: "alert.created".into(),
        alert_id: "a1".into(),
        device_id: "d1".into(),
        group: group.map(str::to_owned),
        severity: severity.into(),
        body: json!({"event": "alert.created", "alert": {"id": "a1", "severity": severity}}).to_string(),
    }
}

macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name("postgres").await } )* }
    };
}

backends!(
    channels_are_audited_and_their_secrets_sealed,
    notices_are_routed_by_severity_group_and_name,
    deliveries_retry_die_and_come_back,
    pending_deliveries_survive_a_reopen,
);

async fn channels_are_audited_and_their_secrets_sealed(backend: &str) {
    let Some(f) = Fixture::new(backend).await else { return };
    let m = MasterKey::generate().unwrap();
    let s = f.open(&m).await;
    let mut new = channel("ops", "high", &["north"]);
    new.secret = Some(ChannelSecret::new("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMw==".into()));
    new.config = json!({"url": "https://ops.example/hook", "headers": {"X-Token": "literal-token"}});
    let c = s.create_channel(new.clone(), ctx()).await.unwrap();
    assert!(c.has_secret && c.enabled);
    assert_eq!(
        (c.kind, c.min_severity.as_str(), c.groups.clone()),
        (ChannelKind::Webhook, "high", vec!["north".into()])
    );
    assert_eq!(s.channel(&c.id).await.unwrap().unwrap(), c);
    assert_eq!(s.channel("ops").await.unwrap().unwrap(), c);
    assert_eq!(s.channels().await.unwrap(), vec![c.clone()]);
    assert!(s.channel("nope").await.unwrap().is_none());

    // Refusals name the field; a name is unique.
    let dup = s.create_channel(channel("ops", "low", &[]), ctx()).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    for (bad, field) in [
        (channel("x", "urgent", &[]), "min_severity"),
        (channel(" ", "low", &[]), "name"),
        (channel("0123456789abcdef", "low", &[]), "name"),
        (channel("y", "low", &[""]), "groups"),
    ] {
        match s.create_channel(bad, ctx()).await.unwrap_err() {
            StoreError::Invalid(e) => assert_eq!(e.field, field),
            other => panic!("{other}"),
        }
    }

    // Sealed at rest, bound to its row; opened only for the worker.
    let raw = f.raw_secrets().await;
    assert_eq!(raw.len(), 1);
    assert!(!raw[0].windows(6).any(|w| w == b"whsec_"));
    s.notify(notice("critical", Some("north")), Targets::Routed, T0).await.unwrap();
    let due = s.due_deliveries(T0, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].secret.as_ref().unwrap().expose(), "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMw==");

    // Audited, without the secret or header values.
    let page = s
        .list_audit(&AuditFilter { action: Some("channel.create".into()), ..Default::default() }, None, 10)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let after = page.items[0].entry.after.clone().unwrap();
    assert!(
        after.contains("\"secret\":true") && !after.contains("whsec_") && !after.contains("literal-token"),
        "{after}"
    );
    s.close().await;
}

async fn notices_are_routed_by_severity_group_and_name(backend: &str) {
    let Some(f) = Fixture::new(backend).await else { return };
    let s = f.open(&MasterKey::generate().unwrap()).await;
    let all = s.create_channel(channel("all", "info", &[]), ctx()).await.unwrap();
    let pager = s.create_channel(channel("pager", "critical", &[]), ctx()).await.unwrap();
    let north = s.create_channel(channel("north", "medium", &["north"]), ctx()).await.unwrap();
    let mut off = channel("off", "info", &[]);
    off.enabled = false;
    s.create_channel(off, ctx()).await.unwrap();

    let routed = |sev: &'static str, group: Option<&'static str>| {
        let s = s.clone();
        async move { s.notify(notice(sev, group), Targets::Routed, T0).await.unwrap() }
    };
    assert_eq!(routed("info", Some("north")).await, 1); // all
    assert_eq!(routed("medium", Some("north")).await, 2); // all, north
    assert_eq!(routed("medium", Some("south")).await, 1); // all
    assert_eq!(routed("critical", Some("north")).await, 3); // all, pager, north
    assert_eq!(routed("critical", None).await, 2); // all, pager

    // Explicit targets: by id or name, once each; unknown and disabled ones are skipped.
    let explicit =
        Targets::Channels(vec![pager.id.clone(), "north".into(), "pager".into(), "off".into(), "gone".into()]);
    assert_eq!(s.notify(notice("low", None), explicit, T0).await.unwrap(), 2);

    let bad = s.notify(notice("severe", None), Targets::Routed, T0).await.unwrap_err();
    assert!(matches!(&bad, StoreError::Invalid(e) if e.field == "severity"), "{bad}");

    let count = |id: String| {
        let s = s.clone();
        async move { s.deliveries(DeliveryFilter { channel_id: Some(id), ..Default::default() }, 100).await.unwrap().len() }
    };
    // Due ones come at most `per_channel` per channel, oldest first.
    let due = s.due_deliveries(T0, 2).await.unwrap();
    let of = |id: &str| due.iter().filter(|d| d.channel.id == id).count();
    assert_eq!((of(&all.id), of(&pager.id), of(&north.id), due.len()), (2, 2, 2, 6));
    assert_eq!(count(all.id).await, 5);
    assert_eq!(count(pager.id).await, 3);
    assert_eq!(count(north.id).await, 3);
    s.close().await;
}

async fn deliveries_retry_die_and_come_back(backend: &str) {
    let Some(f) = Fixture::new(backend).await else { return };
    let s = f.open(&MasterKey::generate().unwrap()).await;
    let c = s.create_channel(channel("hook", "info", &[]), ctx()).await.unwrap();
    let d = s.test_channel("hook".into(), notice("info", None), ctx()).await.unwrap();
    assert_eq!((d.status, d.attempts, d.channel_name.as_str()), (DeliveryStatus::Pending, 0, "hook"));
    assert_eq!(d.channel_id, c.id);

    // Due at once; after a failure, due again only at the time given.
    assert_eq!(s.due_deliveries(T0, 10).await.unwrap()[0].delivery.id, d.id);
    let retry = Outcome::Retry { error: "connection refused".into(), next_attempt_ms: T0 + 1000 };
    assert!(s.delivery_done(d.id.clone(), retry, T0).await.unwrap());
    assert!(s.due_deliveries(T0 + 999, 10).await.unwrap().is_empty());
    assert_eq!(s.next_delivery_due(T0).await.unwrap(), Some(T0 + 1000));
    assert_eq!(s.next_delivery_due(T0 + 1000).await.unwrap(), None);
    assert_eq!(s.due_deliveries(T0 + 1000, 10).await.unwrap().len(), 1);

    // Given up: dead-lettered, listed, no longer due; a retry brings it back with a fresh count.
    let dead = Outcome::Dead { error: "HTTP 500".into() };
    assert!(s.delivery_done(d.id.clone(), dead.clone(), T0 + 1000).await.unwrap());
    assert!(!s.delivery_done(d.id.clone(), dead, T0 + 1000).await.unwrap(), "only a pending delivery is finished");
    let listed = s.deliveries(DeliveryFilter { status: Some(DeliveryStatus::Dead), ..Default::default() }, 10).await;
    let listed = listed.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].attempts, listed[0].last_error.as_deref()), (2, Some("HTTP 500")));
    assert!(s.due_deliveries(T0 + 10_000, 10).await.unwrap().is_empty());
    let mut later = ctx();
    later.at_ms = T0 + 5000;
    let back = s.retry_delivery(d.id.clone(), later.clone()).await.unwrap();
    assert_eq!((back.status, back.attempts, back.next_attempt_ms), (DeliveryStatus::Pending, 0, T0 + 5000));
    let again = s.retry_delivery(d.id.clone(), later).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    assert!(matches!(s.retry_delivery("nope".into(), ctx()).await, Err(StoreError::NotFound(_))));
    let audited = s
        .list_audit(&AuditFilter { action: Some("delivery.retry".into()), ..Default::default() }, None, 10)
        .await
        .unwrap();
    assert_eq!(audited.items.len(), 1);

    // Delivered; old delivered ones are pruned, others stay.
    assert!(s.delivery_done(d.id.clone(), Outcome::Delivered, T0 + 6000).await.unwrap());
    let got = s.delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts, got.last_error.as_deref()), (DeliveryStatus::Delivered, 1, Some("HTTP 500")));
    s.test_channel(c.id.clone(), notice("info", None), ctx()).await.unwrap();
    assert_eq!(s.prune_deliveries(T0 + 6001).await.unwrap(), 1);
    assert!(s.delivery(&d.id).await.unwrap().is_none());
    assert_eq!(s.deliveries(DeliveryFilter::default(), 10).await.unwrap().len(), 1);
    assert!(matches!(s.test_channel("nope".into(), notice("info", None), ctx()).await, Err(StoreError::NotFound(_))));
    s.close().await;
}

async fn pending_deliveries_survive_a_reopen(backend: &str) {
    let Some(f) = Fixture::new(backend).await else { return };
    let m = MasterKey::generate().unwrap();
    let s = f.open(&m).await;
    s.create_channel(channel("hook", "info", &[]), ctx()).await.unwrap();
    assert_eq!(s.notify(notice("high", None), Targets::Routed, T0).await.unwrap(), 1);
    s.close().await;
    let s = f.open(&m).await;
    let due = s.due_deliveries(T0, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].delivery.severity, "high");
    assert_eq!(due[0].channel.name, "hook");
    s.close().await;
}
