//! What the fleet audit checks read (devices with their last signs of life and reported
//! firmware, revoked certificates, the health of notification channels), and how their findings
//! are recorded without repeating one that is still fresh. The decisions live in the server.

use crate::identity::Finding;
use crate::sql::{Db, Dialect, Row, Value};
use crate::{StoreError, args};

/// A device as the fleet checks see it (decommissioned devices are never listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetDevice {
    pub id: String,
    pub serial: String,
    pub model: String,
    pub owner: Option<String>,
    /// The `firmware_version` attribute, as registered.
    pub firmware_version: Option<String>,
    /// `fw.version` of the device's latest telemetry report, if it carried one.
    pub reported_firmware: Option<String>,
    pub created_ms: i64,
    /// When the device's latest message (by its own time) was received.
    pub last_message_ms: Option<i64>,
    /// When the device last connected or disconnected.
    pub last_connection_ms: Option<i64>,
}

impl FleetDevice {
    /// The firmware the device runs as far as we know: what it last reported, else the
    /// registered attribute. Empty values count as unknown.
    pub fn running_firmware(&self) -> Option<&str> {
        fn known(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        known(self.reported_firmware.as_deref()).or_else(|| known(self.firmware_version.as_deref()))
    }

    /// The latest sign of life: a message or a connection.
    pub fn last_seen_ms(&self) -> Option<i64> {
        self.last_message_ms.max(self.last_connection_ms)
    }
}

fn limit_arg(limit: usize) -> Value {
    Value::Int(i64::try_from(limit).unwrap_or(i64::MAX))
}

/// One page of the devices that are not decommissioned, by id, after `after` (exclusive).
pub async fn devices_page<D: Db>(
    db: &mut D,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<FleetDevice>, StoreError> {
    // Stored telemetry was parsed as JSON on the way in (so PostgreSQL's cast cannot fail); on
    // SQLite the guard also keeps an unexpected row from failing the whole page.
    let fw = match D::DIALECT {
        Dialect::Sqlite => {
            "CASE WHEN json_valid(m.payload) THEN CAST(json_extract(m.payload, '$.fw.version') AS TEXT) END"
        }
        Dialect::Postgres => "(m.payload::json #>> '{fw,version}')",
    };
    let sql = format!(
        "SELECT d.id, d.serial, d.model, d.owner, d.firmware_version, d.created_ms, \
         (SELECT m.received_ms FROM device_messages m WHERE m.device_id = d.id ORDER BY m.at_ms DESC LIMIT 1), \
         (SELECT c.at_ms FROM device_connections c WHERE c.device_id = d.id \
          AND c.event IN ('connected', 'disconnected') ORDER BY c.at_ms DESC LIMIT 1), \
         (SELECT {fw} FROM device_messages m WHERE m.device_id = d.id AND m.kind = 'telemetry' \
          ORDER BY m.at_ms DESC LIMIT 1) \
         FROM devices d WHERE d.state <> 'decommissioned' AND d.id > $1 ORDER BY d.id LIMIT $2"
    );
    let rows = db.query(&sql, vec![Value::from(after.unwrap_or("")), limit_arg(limit)]).await?;
    rows.iter()
        .map(|r| {
            Ok(FleetDevice {
                id: r.text(0)?,
                serial: r.text(1)?,
                model: r.text(2)?,
                owner: r.opt_text(3)?,
                firmware_version: r.opt_text(4)?,
                created_ms: r.int(5)?,
                last_message_ms: r.opt_int(6)?,
                last_connection_ms: r.opt_int(7)?,
                reported_firmware: r.opt_text(8)?,
            })
        })
        .collect()
}

/// How many serials one query asks about.
const SERIALS_PER_QUERY: usize = 256;

/// Of `serials`, those whose certificate is revoked, as (serial, device).
pub async fn revoked_among<D: Db>(db: &mut D, serials: &[String]) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for chunk in serials.chunks(SERIALS_PER_QUERY) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT serial, device_id FROM certificates WHERE status = 'revoked' AND serial IN ({}) ORDER BY serial",
            marks.join(", ")
        );
        let rows = db.query(&sql, chunk.iter().map(Value::from).collect()).await?;
        for r in &rows {
            out.push((r.text(0)?, r.text(1)?));
        }
    }
    Ok(out)
}

/// How a notification channel has been doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelHealth {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Deliveries dead-lettered at or after the `since` asked for.
    pub dead_since: i64,
    /// Whether each of the latest attempted deliveries failed, newest first (at most the number
    /// asked for). A delivery not yet attempted is left out; one still being retried failed.
    pub latest_failed: Vec<bool>,
}

/// Channels read at most (far more than anyone configures).
const MAX_CHANNELS: i64 = 1000;

/// The health of every channel (up to a thousand): dead letters since `since_ms`, and the
/// outcome of the `last_n` latest attempted deliveries.
pub async fn channel_health<D: Db>(db: &mut D, since_ms: i64, last_n: usize) -> Result<Vec<ChannelHealth>, StoreError> {
    let rows = db
        .query(
            "SELECT c.id, c.name, c.enabled, (SELECT count(*) FROM deliveries d WHERE d.channel_id = c.id \
             AND d.status = 'dead' AND d.updated_ms >= $1) FROM channels c ORDER BY c.name LIMIT $2",
            args![since_ms, MAX_CHANNELS],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = r.text(0)?;
        let latest = db
            .query(
                "SELECT status FROM deliveries WHERE channel_id = $1 AND (status <> 'pending' OR attempts > 0) \
                 ORDER BY updated_ms DESC, id DESC LIMIT $2",
                vec![Value::from(&id), limit_arg(last_n)],
            )
            .await?;
        let latest_failed = latest.iter().map(|s| Ok(s.text(0)? != "delivered")).collect::<Result<_, StoreError>>()?;
        out.push(ChannelHealth { id, name: r.text(1)?, enabled: r.int(2)? != 0, dead_since: r.int(3)?, latest_failed });
    }
    Ok(out)
}

fn decode_finding(r: &Row) -> Result<Finding, StoreError> {
    Ok(Finding {
        id: r.text(0)?,
        kind: r.text(1)?,
        device_id: r.opt_text(2)?,
        detail: r.text(3)?,
        created_ms: r.int(4)?,
    })
}

/// Records each finding `(kind, device, detail)` unless the same one was recorded at or after
/// `fresh_since_ms`. Returns each as stored: the new record, or the earlier one it repeats.
pub async fn record<D: Db>(
    db: &mut D,
    found: &[(String, Option<String>, String)],
    fresh_since_ms: i64,
    now_ms: i64,
) -> Result<Vec<Finding>, StoreError> {
    let mut out = Vec::with_capacity(found.len());
    for (kind, device_id, detail) in found {
        let earlier = db
            .query_opt(
                "SELECT id, kind, device_id, detail, created_ms FROM findings WHERE kind = $1 \
                 AND coalesce(device_id, '') = $2 AND detail = $3 AND created_ms >= $4 ORDER BY created_ms LIMIT 1",
                args![kind, device_id.as_deref().unwrap_or(""), detail, fresh_since_ms],
            )
            .await?;
        if let Some(r) = earlier {
            out.push(decode_finding(&r)?);
            continue;
        }
        let mut id = [0u8; 8];
        crate::sealed::random(&mut id)?;
        let id = hex::encode(id);
        db.exec(
            "INSERT INTO findings (id, kind, device_id, detail, created_ms) VALUES ($1, $2, $3, $4, $5)",
            args![&id, kind, device_id.as_deref(), detail, now_ms],
        )
        .await?;
        out.push(Finding {
            id,
            kind: kind.clone(),
            device_id: device_id.clone(),
            detail: detail.clone(),
            created_ms: now_ms,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify;

    const DAY: i64 = 86_400_000;

    async fn sqlite() -> sqlx::SqliteConnection {
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect("sqlite::memory:").await.unwrap();
        crate::migrations::apply(&mut c, 0).await.unwrap();
        c
    }

    async fn device<D: Db>(db: &mut D, id: &str, model: &str, owner: Option<&str>, fw: Option<&str>, state: &str) {
        db.exec(
            "INSERT INTO devices (id, serial, model, vendor, owner, criticality, firmware_version, state, created_ms, \
             updated_ms) VALUES ($1, $1, $2, 'acme', $3, 'low', $4, $5, $6, $6)",
            args![id, model, owner, fw, state, DAY],
        )
        .await
        .unwrap();
    }

    async fn message<D: Db>(db: &mut D, id: &str, kind: &str, at_ms: i64, received_ms: i64, payload: &str) {
        db.exec(
            "INSERT INTO device_messages (device_id, kind, received_ms, at_ms, quarantined, payload) \
             VALUES ($1, $2, $3, $4, 0, $5)",
            args![id, kind, received_ms, at_ms, payload],
        )
        .await
        .unwrap();
    }

    async fn exercise<D: Db>(db: &mut D) {
        device(db, "a", "m", Some("ops"), Some("1.0"), "active").await;
        device(db, "b", "m", None, None, "registered").await;
        device(db, "c", "m", None, Some("1.0"), "decommissioned").await;
        message(db, "a", "telemetry", 5 * DAY, 5 * DAY + 1, r#"{"v":1,"fw":{"version":"1.2.0"}}"#).await;
        // An older report received later (spooled), and an event without firmware.
        message(db, "a", "telemetry", 3 * DAY, 6 * DAY, r#"{"v":1,"fw":{"version":"0.9"}}"#).await;
        message(db, "a", "event", 4 * DAY, 4 * DAY, r#"{"type":"boot"}"#).await;
        db.exec(
            "INSERT INTO device_connections (device_id, event, at_ms) VALUES ('b', 'refused', $1), ('b', 'connected', $2)",
            args![9 * DAY, 2 * DAY],
        )
        .await
        .unwrap();

        let page = devices_page(db, None, 10).await.unwrap();
        assert_eq!(page.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["a", "b"], "decommissioned left out");
        let (a, b) = (&page[0], &page[1]);
        assert_eq!(a.reported_firmware.as_deref(), Some("1.2.0"), "the latest report by device time");
        assert_eq!(a.running_firmware(), Some("1.2.0"));
        assert_eq!(a.last_message_ms, Some(5 * DAY + 1));
        assert_eq!((b.owner.as_deref(), b.running_firmware(), b.last_seen_ms()), (None, None, Some(2 * DAY)));
        let next = devices_page(db, Some("a"), 1).await.unwrap();
        assert_eq!(next.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["b"]);

        let found = vec![("no_owner".to_owned(), Some("b".to_owned()), "no owner".to_owned())];
        let first = record(db, &found, 0, 10 * DAY).await.unwrap();
        let again = record(db, &found, 9 * DAY, 10 * DAY + 5).await.unwrap();
        assert_eq!(first, again, "a fresh finding is not recorded again");
        let later = record(db, &found, 10 * DAY + 1, 11 * DAY).await.unwrap();
        assert_ne!(later[0].id, first[0].id, "a stale one is recorded anew");
        let global = vec![("x".to_owned(), None, "d".to_owned()), ("x".to_owned(), None, "d".to_owned())];
        let both = record(db, &global, 0, DAY).await.unwrap();
        assert_eq!(both[0], both[1], "the same finding twice in one run is recorded once");
        let n = db.query("SELECT count(*) FROM findings", vec![]).await.unwrap()[0].int(0).unwrap();
        assert_eq!(n, 3);

        db.exec(
            "INSERT INTO certificates (serial, device_id, fingerprint, spki_sha256, key_kind, not_before_ms, \
             not_after_ms, status, method, pem, created_ms) VALUES ('01', 'a', 'f', 's', 'P-256', 0, 1, 'revoked', \
             'token', '', 0), ('02', 'b', 'f', 's', 'P-256', 0, 1, 'valid', 'token', '', 0)",
            vec![],
        )
        .await
        .unwrap();
        let serials = ["01", "02", "03"].map(String::from);
        assert_eq!(revoked_among(db, &serials).await.unwrap(), [("01".to_owned(), "a".to_owned())]);

        // Channels and deliveries through their own module, which owns their schema.
        let master = crate::sealed::MasterKey::generate().unwrap();
        let wrapped = crate::sealed::WrappedDataKey::generate(&master, "k".into()).unwrap();
        let keys = crate::sealed::Keyring::unwrap_all(&master, &[wrapped]).unwrap();
        let ctx = crate::audit::AuditContext {
            actor: palisade_core::audit::Actor::Local { what: "test".into() },
            source_ip: None,
            at_ms: 0,
        };
        let mut ids = Vec::new();
        for (name, enabled) in [("ops", true), ("sms", false)] {
            let new = notify::NewChannel {
                name: name.into(),
                kind: notify::ChannelKind::Webhook,
                config: serde_json::json!({}),
                secret: None,
                min_severity: "info".into(),
                groups: vec![],
                enabled,
                routed: true,
            };
            ids.push(notify::create_channel(db, &keys, &new, &ctx).await.unwrap().id);
        }
        let notice = notify::Notice {
            event: "alert.created".into(),
            alert_id: "al".into(),
            device_id: "a".into(),
            group: None,
            severity: "high".into(),
            body: "{}".into(),
        };
        for _ in 0..5 {
            notify::enqueue(db, &notice, &notify::Targets::Channels(vec!["ops".into()]), 0).await.unwrap();
        }
        let filter = notify::DeliveryFilter { channel_id: Some(ids[0].clone()), ..Default::default() };
        let queued = notify::list(db, &filter, 10).await.unwrap();
        let dead = || notify::Outcome::Dead { error: "HTTP 503".into() };
        let retry = notify::Outcome::Retry { error: "HTTP 503".into(), next_attempt_ms: 9 * DAY };
        // Oldest to newest outcome; the fourth is never attempted.
        for (d, outcome, at) in
            [(0, dead(), DAY), (1, notify::Outcome::Delivered, 2 * DAY), (2, retry, 3 * DAY), (4, dead(), 5 * DAY)]
        {
            assert!(notify::finish(db, &queued[d].id, &outcome, at).await.unwrap());
        }
        let health = channel_health(db, 2 * DAY, 3).await.unwrap();
        let ops = ChannelHealth {
            id: ids[0].clone(),
            name: "ops".into(),
            enabled: true,
            dead_since: 1,
            latest_failed: vec![true, true, false],
        };
        let sms = ChannelHealth {
            id: ids[1].clone(),
            name: "sms".into(),
            enabled: false,
            dead_since: 0,
            latest_failed: vec![],
        };
        assert_eq!(health, [ops, sms]);
    }

    #[tokio::test]
    async fn reads_and_recording_on_sqlite() {
        exercise(&mut sqlite().await).await;
    }

    #[tokio::test]
    async fn reads_and_recording_on_postgres() {
        let Ok(base) = std::env::var("PALISADE_TEST_POSTGRES_URL") else { return };
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&base).await.unwrap();
        let mut schema = [0u8; 6];
        crate::sealed::random(&mut schema).unwrap();
        let schema = format!("fleet_checks_{}", hex::encode(schema));
        c.exec_script(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema}")).await.unwrap();
        crate::migrations::apply(&mut c, 0).await.unwrap();
        exercise(&mut c).await;
        c.exec_script(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
    }
}
