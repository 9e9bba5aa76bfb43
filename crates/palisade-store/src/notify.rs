//! Notification channels and their deliveries: a durable outbox, written in the transaction that
//! raises a notice and drained by the server's delivery worker.
//!
//! A channel's configuration is opaque JSON here (the server parses it: it knows HTTP, syslog
//! and SMTP); its secret is sealed under the data keys, bound to the channel's row. A delivery is
//! `pending` until the worker reports it `delivered`, or `dead` once it gave up (the
//! dead-letter list); an operator can send a dead one back to `pending`.

use std::fmt;

use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use crate::audit::{self, AuditContext};
use crate::sealed::{Keyring, random};
use crate::sql::{Db, Row};
use crate::{StoreError, args};
use palisade_core::InvalidField;

/// Severities, most severe first.
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// How severe a severity is: `info` 0 … `critical` 4; `None` for anything else.
pub fn severity_rank(severity: &str) -> Option<u8> {
    match severity {
        "info" => Some(0),
        "low" => Some(1),
        "medium" => Some(2),
        "high" => Some(3),
        "critical" => Some(4),
        _ => None,
    }
}

fn check_severity(field: &str, severity: &str) -> Result<(), InvalidField> {
    match severity_rank(severity) {
        Some(_) => Ok(()),
        None => Err(InvalidField::new(field, format!("{severity:.40?} is not one of {}", SEVERITIES.join(", ")))),
    }
}

/// How a channel reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// JSON POST signed per Standard Webhooks.
    Webhook,
    /// A templated HTTP request (SMS and chat providers).
    HttpTemplate,
    /// RFC 5424 over TCP (optionally TLS), optionally CEF.
    Syslog,
    /// Mail over SMTP, with STARTTLS.
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [Self::Webhook, Self::HttpTemplate, Self::Syslog, Self::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::HttpTemplate => "http_template",
            Self::Syslog => "syslog",
            Self::Email => "email",
        }
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, InvalidField> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            InvalidField::new("kind", format!("{s:.40?} is not one of webhook, http_template, syslog, email"))
        })
    }
}

/// A channel's secret (webhook signing key, provider token). Never printed, zeroised on drop.
#[derive(Clone)]
pub struct ChannelSecret(Zeroizing<String>);

impl ChannelSecret {
    pub fn new(secret: String) -> Self {
        Self(Zeroizing::new(secret))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelSecret(***)")
    }
}

/// A channel to create. `config` has already been checked by whoever understands it.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub kind: ChannelKind,
    pub config: Json,
    pub secret: Option<ChannelSecret>,
    pub min_severity: String,
    /// Device groups whose notices it receives; empty = every group.
    pub groups: Vec<String>,
    pub enabled: bool,
    /// Receives notices routed by severity and group; when false, only escalation tiers that
    /// name it (an on-call pager that should hear of what nobody acknowledged, not of everything).
    pub routed: bool,
}

/// A channel as stored (without its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub config: Json,
    pub has_secret: bool,
    pub min_severity: String,
    pub groups: Vec<String>,
    pub enabled: bool,
    pub routed: bool,
    pub created_ms: i64,
}

impl Channel {
    /// Whether a notice of `severity` about a device in `group` is routed here.
    pub fn accepts(&self, severity: &str, group: Option<&str>) -> bool {
        let severe =
            matches!((severity_rank(severity), severity_rank(&self.min_severity)), (Some(s), Some(m)) if s >= m);
        let in_group = self.groups.is_empty() || group.is_some_and(|g| self.groups.iter().any(|x| x == g));
        self.enabled && self.routed && severe && in_group
    }
}

const CHANNEL_COLUMNS: &str = "id, name, kind, config, secret, min_severity, groups, enabled, created_ms, routed";

fn decode_channel(r: &Row, at: usize) -> Result<(Channel, Option<Vec<u8>>), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("channel {what}"));
    let kind: ChannelKind = r.text(at + 2)?.parse().map_err(|_| corrupt("kind"))?;
    let config: Json = serde_json::from_str(&r.text(at + 3)?).map_err(|_| corrupt("config"))?;
    let sealed = r.opt_blob(at + 4)?;
    let groups: Vec<String> = serde_json::from_str(&r.text(at + 6)?).map_err(|_| corrupt("groups"))?;
    Ok((
        Channel {
            id: r.text(at)?,
            name: r.text(at + 1)?,
            kind,
            config,
            has_secret: sealed.is_some(),
            min_severity: r.text(at + 5)?,
            groups,
            enabled: r.int(at + 7)? != 0,
            created_ms: r.int(at + 8)?,
            routed: r.int(at + 9)? != 0,
        },
        sealed,
    ))
}

fn secret_aad(channel_id: &str) -> String {
    format!("channel/{channel_id}/secret")
}

fn open_secret(keys: &Keyring, sealed: &[u8], channel_id: &str) -> Result<ChannelSecret, StoreError> {
    let plain = keys.open(sealed, &secret_aad(channel_id))?;
    let text = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt("channel secret is not text".into()))?;
    Ok(ChannelSecret::new(text.to_owned()))
}

fn new_id(bytes: usize) -> Result<String, StoreError> {
    let mut id = vec![0u8; bytes];
    random(&mut id)?;
    Ok(hex::encode(id))
}

/// Whether `name` could be taken for a channel id (16 hex digits): refused as a name, so that
/// a target naming a channel is never ambiguous.
fn looks_like_id(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The configuration as the audit log records it: header values masked (they may carry
/// credentials when the secret was not used for them).
fn audited_config(config: &Json) -> Json {
    let mut c = config.clone();
    if let Some(Json::Object(headers)) = c.get_mut("headers") {
        for v in headers.values_mut() {
            *v = Json::String("***".into());
        }
    }
    c
}

pub async fn create_channel<D: Db>(
    db: &mut D,
    keys: &Keyring,
    new: &NewChannel,
    ctx: &AuditContext,
) -> Result<Channel, StoreError> {
    let name = palisade_core::validate::required_text("name", &new.name, 64)?;
    if looks_like_id(&name) {
        return Err(InvalidField::new("name", "16 hex digits read as a channel id; choose another name").into());
    }
    check_severity("min_severity", &new.min_severity)?;
    let mut groups = Vec::with_capacity(new.groups.len());
    for g in &new.groups {
        groups.push(palisade_core::validate::required_text("groups", g, palisade_core::validate::MAX_TEXT)?);
    }
    if !new.config.is_object() {
        return Err(InvalidField::new("config", "must be an object").into());
    }
    if db.query_opt("SELECT id FROM channels WHERE name = $1", args![&name]).await?.is_some() {
        return Err(StoreError::Conflict(format!("a channel named {name:?} exists")));
    }
    let id = new_id(8)?;
    let sealed = new.secret.as_ref().map(|s| keys.seal_text(s.expose(), &secret_aad(&id))).transpose()?;
    let groups_json = serde_json::to_string(&groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    db.exec(
        &format!("INSERT INTO channels ({CHANNEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
        args![
            &id,
            &name,
            new.kind.as_str(),
            new.config.to_string(),
            sealed.clone(),
            &new.min_severity,
            groups_json,
            i64::from(new.enabled),
            ctx.at_ms,
            i64::from(new.routed)
        ],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "channel.create",
        &format!("channel:{id}"),
        None,
        Some(json!({
            "name": name, "kind": new.kind.as_str(), "config": audited_config(&new.config),
            "secret": sealed.is_some(), "min_severity": new.min_severity, "groups": groups, "enabled": new.enabled,
            "routed": new.routed,
        })),
    )
    .await?;
    Ok(Channel {
        id,
        name,
        kind: new.kind,
        config: new.config.clone(),
        has_secret: sealed.is_some(),
        min_severity: new.min_severity.clone(),
        groups,
        enabled: new.enabled,
        routed: new.routed,
        created_ms: ctx.at_ms,
    })
}

pub async fn channels<D: Db>(db: &mut D) -> Result<Vec<Channel>, StoreError> {
    let rows = db.query(&format!("SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY name"), vec![]).await?;
    rows.iter().map(|r| decode_channel(r, 0).map(|(c, _)| c)).collect()
}

/// A channel by id or, failing that, by name.
pub async fn channel<D: Db>(db: &mut D, id_or_name: &str) -> Result<Option<Channel>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC"),
            args![id_or_name],
        )
        .await?;
    rows.first().map(|r| decode_channel(r, 0).map(|(c, _)| c)).transpose()
}

/// Something people should hear about: an alert raised, escalated, resolved, or a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What happened (`alert.created`, `alert.escalated`, `channel.test`…).
    pub event: String,
    pub alert_id: String,
    pub device_id: String,
    /// The device's group, for channels that filter on groups.
    pub group: Option<String>,
    /// `critical`, `high`, `medium`, `low` or `info`.
    pub severity: String,
    /// The JSON event delivered, already serialized: `{"type", "timestamp_ms", "data": {…}}`.
    /// Templates' `{{alert.id}}`, `{{alert.severity}}`, `{{alert.device_id}}`, `{{alert.title}}`,
    /// `{{alert.detail}}` (and CEF's rule) read `data.id`, `data.severity`… from it.
    pub body: String,
}

/// Which channels a notice goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every enabled channel whose minimum severity the notice reaches and whose groups filter
    /// matches the notice's group.
    Routed,
    /// Exactly these channels (ids or names; escalation tiers). Unknown or disabled ones are
    /// skipped (and logged), so that a stale escalation policy never blocks the alert's write.
    Channels(Vec<String>),
}

/// Queues one pending delivery per target channel, inside the caller's transaction (the alert's
/// write), due at once. How many were queued.
pub async fn enqueue<D: Db>(db: &mut D, notice: &Notice, targets: &Targets, now_ms: i64) -> Result<usize, StoreError> {
    Ok(enqueue_ids(db, notice, targets, now_ms).await?.len())
}

async fn enqueue_ids<D: Db>(
    db: &mut D,
    notice: &Notice,
    targets: &Targets,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    check_severity("severity", &notice.severity)?;
    let chosen: Vec<Channel> = match targets {
        Targets::Routed => {
            channels(db).await?.into_iter().filter(|c| c.accepts(&notice.severity, notice.group.as_deref())).collect()
        }
        Targets::Channels(wanted) => {
            let mut out: Vec<Channel> = Vec::with_capacity(wanted.len());
            for w in wanted {
                match channel(db, w).await? {
                    Some(c) if !c.enabled => tracing::warn!(channel = %w, "notice not queued: the channel is disabled"),
                    Some(c) if out.iter().any(|o| o.id == c.id) => {}
                    Some(c) => out.push(c),
                    None => tracing::warn!(channel = %w, "notice not queued: no such channel"),
                }
            }
            out
        }
    };
    let mut ids = Vec::with_capacity(chosen.len());
    for c in chosen {
        let id = new_id(16)?;
        db.exec(
            "INSERT INTO deliveries (id, channel_id, alert_id, event, severity, device_id, body, status, attempts, \
             next_attempt_ms, last_error, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, NULL, $8, $8)",
            args![
                &id,
                &c.id,
                &notice.alert_id,
                &notice.event,
                &notice.severity,
                &notice.device_id,
                &notice.body,
                now_ms
            ],
        )
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up after the channel's attempts: the dead-letter list.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, InvalidField> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidField::new("status", format!("{s:.40?} is not one of pending, delivered, dead")))
    }
}

/// One notice on its way to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Unique; also the `webhook-id` (the same on every attempt, so receivers can deduplicate).
    pub id: String,
    pub channel_id: String,
    pub channel_name: String,
    pub alert_id: String,
    pub event: String,
    pub severity: String,
    pub device_id: String,
    pub body: String,
    pub status: DeliveryStatus,
    /// Attempts made (since the last manual retry).
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const DELIVERY_COLUMNS: &str = "d.id, d.channel_id, c.name, d.alert_id, d.event, d.severity, d.device_id, d.body, \
                                d.status, d.attempts, d.next_attempt_ms, d.last_error, d.created_ms, d.updated_ms";
const DELIVERY_WIDTH: usize = 14;

fn decode_delivery(r: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.text(0)?,
        channel_id: r.text(1)?,
        channel_name: r.text(2)?,
        alert_id: r.text(3)?,
        event: r.text(4)?,
        severity: r.text(5)?,
        device_id: r.text(6)?,
        body: r.text(7)?,
        status: r.text(8)?.parse().map_err(|_| StoreError::Corrupt("delivery status".into()))?,
        attempts: r.int(9)?,
        next_attempt_ms: r.int(10)?,
        last_error: r.opt_text(11)?,
        created_ms: r.int(12)?,
        updated_ms: r.int(13)?,
    })
}

/// A delivery due now, with what the worker needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub channel: Channel,
    pub secret: Option<ChannelSecret>,
}

/// Pending deliveries due at `now_ms`, longest-waiting first, with their channels: at most
/// `per_channel` of each channel, so that one channel's backlog never hides another's.
pub async fn due<D: Db>(
    db: &mut D,
    keys: &Keyring,
    now_ms: i64,
    per_channel: usize,
) -> Result<Vec<DueDelivery>, StoreError> {
    let channel_columns: Vec<String> = CHANNEL_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
    let rows = db
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS}, {} FROM ( \
                   SELECT d.*, row_number() OVER (PARTITION BY d.channel_id ORDER BY d.next_attempt_ms, d.id) AS nth \
                   FROM deliveries d WHERE d.status = 'pending' AND d.next_attempt_ms <= $1 \
                 ) d JOIN channels c ON c.id = d.channel_id WHERE d.nth <= $2 ORDER BY d.next_attempt_ms, d.id",
                channel_columns.join(", ")
            ),
            args![now_ms, i64::try_from(per_channel).unwrap_or(i64::MAX)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let delivery = decode_delivery(r)?;
            let (channel, sealed) = decode_channel(r, DELIVERY_WIDTH)?;
            let secret = sealed.map(|s| open_secret(keys, &s, &channel.id)).transpose()?;
            Ok(DueDelivery { delivery, channel, secret })
        })
        .collect()
}

/// When the next pending delivery falls due after `after_ms`, if any.
pub async fn next_due_ms<D: Db>(db: &mut D, after_ms: i64) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_opt(
            "SELECT min(next_attempt_ms) FROM deliveries WHERE status = 'pending' AND next_attempt_ms > $1",
            args![after_ms],
        )
        .await?;
    Ok(row.map(|r| r.opt_int(0)).transpose()?.flatten())
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; try again at `next_attempt_ms`.
    Retry {
        error: String,
        next_attempt_ms: i64,
    },
    /// Failed for the last time: dead-lettered.
    Dead {
        error: String,
    },
}

/// Records an attempt of a pending delivery. False when it was no longer pending.
pub async fn finish<D: Db>(db: &mut D, id: &str, outcome: &Outcome, now_ms: i64) -> Result<bool, StoreError> {
    let (status, next, error) = match outcome {
        Outcome::Delivered => ("delivered", None, None),
        Outcome::Retry { error, next_attempt_ms } => ("pending", Some(*next_attempt_ms), Some(error.as_str())),
        Outcome::Dead { error } => ("dead", None, Some(error.as_str())),
    };
    let n = db
        .exec(
            "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_ms = coalesce($3, next_attempt_ms), \
             last_error = coalesce($4, last_error), updated_ms = $5 WHERE id = $1 AND status = 'pending'",
            args![id, status, next, error, now_ms],
        )
        .await?;
    Ok(n == 1)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub channel_id: Option<String>,
    pub alert_id: Option<String>,
}

/// Deliveries matching `filter`, newest first.
pub async fn list<D: Db>(db: &mut D, filter: &DeliveryFilter, limit: usize) -> Result<Vec<Delivery>, StoreError> {
    let rows = db
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN channels c ON c.id = d.channel_id \
                 WHERE ($1 = '' OR d.status = $1) AND ($2 = '' OR d.channel_id = $2) AND ($3 = '' OR d.alert_id = $3) \
                 ORDER BY d.created_ms DESC, d.id DESC LIMIT $4"
            ),
            args![
                filter.status.map_or("", DeliveryStatus::as_str),
                filter.channel_id.as_deref().unwrap_or(""),
                filter.alert_id.as_deref().unwrap_or(""),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
        )
        .await?;
    rows.iter().map(decode_delivery).collect()
}

pub async fn get<D: Db>(db: &mut D, id: &str) -> Result<Option<Delivery>, StoreError> {
    db.query_opt(
        &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN channels c ON c.id = d.channel_id WHERE d.id = $1"),
        args![id],
    )
    .await?
    .as_ref()
    .map(decode_delivery)
    .transpose()
}

/// Sends a dead delivery back to pending, due at once, with its attempts counted afresh.
pub async fn retry<D: Db>(db: &mut D, id: &str, ctx: &AuditContext) -> Result<Delivery, StoreError> {
    let d = get(db, id).await?.ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
    if d.status != DeliveryStatus::Dead {
        return Err(StoreError::Conflict(format!("delivery {id} is {}, not dead", d.status.as_str())));
    }
    db.exec(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = $2, updated_ms = $2 \
         WHERE id = $1 AND status = 'dead'",
        args![id, ctx.at_ms],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "delivery.retry",
        &format!("delivery:{id}"),
        Some(json!({"status": "dead", "attempts": d.attempts})),
        Some(json!({"status": "pending", "channel": d.channel_id, "alert": d.alert_id})),
    )
    .await?;
    get(db, id).await?.ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))
}

/// Queues `notice` to one channel as a test, audited; the delivery queued.
pub async fn test_channel<D: Db>(
    db: &mut D,
    channel_id: &str,
    notice: &Notice,
    ctx: &AuditContext,
) -> Result<Delivery, StoreError> {
    let c = channel(db, channel_id).await?.ok_or_else(|| StoreError::NotFound(format!("channel {channel_id}")))?;
    if !c.enabled {
        return Err(StoreError::Conflict(format!("channel {} is disabled", c.name)));
    }
    let ids = enqueue_ids(db, notice, &Targets::Channels(vec![c.id.clone()]), ctx.at_ms).await?;
    let id = ids.first().ok_or_else(|| StoreError::NotFound(format!("channel {channel_id}")))?;
    audit::append(db, ctx, "channel.test", &format!("channel:{}", c.id), None, Some(json!({"delivery": id}))).await?;
    get(db, id).await?.ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))
}

/// Deletes delivered deliveries last updated before `before_ms`; how many.
pub async fn prune<D: Db>(db: &mut D, before_ms: i64) -> Result<u64, StoreError> {
    db.exec("DELETE FROM deliveries WHERE status = 'delivered' AND updated_ms < $1", args![before_ms]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(min: &str, groups: &[&str], enabled: bool) -> Channel {
        Channel {
            id: "c".into(),
            name: "n".into(),
            kind: ChannelKind::Webhook,
            config: json!({}),
            has_secret: false,
            min_severity: min.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            enabled,
            routed: true,
            created_ms: 0,
        }
    }

    #[test]
    fn routing_by_severity_and_group() {
        let all = channel("high", &[], true);
        assert!(all.accepts("critical", None));
        assert!(all.accepts("high", Some("north")));
        assert!(!all.accepts("medium", Some("north")));
        assert!(!all.accepts("bogus", None));
        let north = channel("info", &["north"], true);
        assert!(north.accepts("info", Some("north")));
        assert!(!north.accepts("critical", Some("south")));
        assert!(!north.accepts("critical", None), "a notice without a group only reaches unfiltered channels");
        assert!(!channel("info", &[], false).accepts("critical", None));
        let pager = Channel { routed: false, ..channel("info", &[], true) };
        assert!(!pager.accepts("critical", None), "escalation-only channels are named, never routed to");
    }

    #[test]
    fn kinds_and_statuses_parse_back() {
        for k in ChannelKind::ALL {
            assert_eq!(k.as_str().parse::<ChannelKind>().unwrap(), k);
        }
        assert_eq!("sms".parse::<ChannelKind>().unwrap_err().field, "kind");
        assert_eq!("dead".parse::<DeliveryStatus>().unwrap(), DeliveryStatus::Dead);
        assert!("gone".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn secrets_never_print_and_headers_are_masked_in_audit() {
        let s = ChannelSecret::new("whsec_abc".into());
        assert!(!format!("{s:?}").contains("abc"));
        let c = audited_config(&json!({"url": "https://x", "headers": {"Authorization": "Bearer t0ken"}}));
        assert!(!c.to_string().contains("t0ken"), "{c}");
        assert_eq!(c["url"], "https://x");
    }
}
