//! Palisade's storage: one interface, two backends (embedded SQLite, PostgreSQL).
//!
//! The aggregates ([`devices`], [`audit`], [`apikeys`], [`secrets`]) are written once against
//! the [`sql::Db`] seam; [`Store`] runs them on whichever backend the URL chose, measures them,
//! and (on SQLite) routes writes through the group-committing writer.

pub mod alerts;
pub mod apikeys;
pub mod audit;
pub mod changes;
pub mod devices;
pub mod identity;
mod migrations;
pub mod plane;
mod postgres;
pub mod sealed;
pub mod secrets;
pub mod sql;
mod sqlite;
pub mod users;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::Ed25519KeyPair;
use palisade_core::audit::ChainBreak;
use palisade_core::device::{Device, DevicePatch};
use palisade_core::{DeviceId, IllegalTransition, InvalidField};
use zeroize::Zeroizing;

use crate::apikeys::{ApiKeyInfo, KeyAuthority, NewApiKey, PresentedKey};
use crate::audit::{AuditContext, AuditFilter, StoredEntry, Verified};
use crate::devices::{DeviceFilter, NewDevice, Page, RowError, Transition};
use crate::identity::{CertRecord, EnrollAuth, EnrollOutcome, Finding, ManufacturerCa};
use crate::sealed::{Keyring, MasterKey, WrappedDataKey};
use crate::sql::{BoxFuture, Db, Dialect};
use crate::users::{CustomRole, NewUser, Session, User, UserPatch};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error("import refused: {} row(s) with errors", .0.len())]
    ImportRejected(Vec<RowError>),
    #[error("the master key does not open this database's data keys (wrong key, or the key was rotated)")]
    WrongMasterKey,
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("crypto: {0}")]
    Crypto(&'static str),
    #[error("the write could not be committed: {0}")]
    Commit(String),
    #[error("the write was not carried out (the store is closing or could not start a transaction)")]
    NotWritten,
}

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// A `postgres://` URL (it may hold a password: never printed).
    Postgres(String),
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Self::Postgres(_) => f.write_str("Postgres(***)"),
        }
    }
}

/// Told how long each storage operation took (for metrics).
pub trait StoreObserver: Send + Sync {
    fn observe(&self, op: &'static str, elapsed: Duration, ok: bool);
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// The store. Cheap to clone; all clones share the backend.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    keys: Arc<Keyring>,
    audit_key: Arc<Ed25519KeyPair>,
    observer: Option<Arc<dyn StoreObserver>>,
    changes: Arc<changes::DeviceChanges>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

const AUDIT_KEY_SECRET: &str = "audit-checkpoint-ed25519";

/// Runs `$body` (an expression using the connection `$c`) as a write on either backend.
macro_rules! write_op {
    ($self:ident, $name:literal, |$c:ident| $body:expr) => {{
        let started = Instant::now();
        let r = match &$self.backend {
            Backend::Sqlite(b) => b.write(move |$c| Box::pin(async move { $body })).await,
            Backend::Postgres(b) => b.write(move |$c| Box::pin(async move { $body })).await,
        };
        $self.observe($name, started, r.is_ok());
        r
    }};
}

/// Runs `$body` on a pooled read connection `$c` of either backend.
macro_rules! read_op {
    ($self:ident, $name:literal, |$c:ident| $body:expr) => {{
        let started = Instant::now();
        let r = async {
            match &$self.backend {
                Backend::Sqlite(b) => {
                    let mut conn = b.readers().acquire().await?;
                    let $c = &mut *conn;
                    $body
                }
                Backend::Postgres(b) => {
                    let mut conn = b.pool().acquire().await?;
                    let $c = &mut *conn;
                    $body
                }
            }
        }
        .await;
        $self.observe($name, started, r.is_ok());
        r
    }};
}

/// Schema, data keys and the audit signing key: everything a database needs before use.
async fn init<D: Db>(db: &mut D, master: &MasterKey, now_ms: i64) -> Result<(Keyring, Ed25519KeyPair), StoreError> {
    db.exec_script(if D::DIALECT == Dialect::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" }).await?;
    let r = init_in_tx(db, master, now_ms).await;
    db.exec_script(if r.is_ok() { "COMMIT" } else { "ROLLBACK" }).await?;
    r
}

async fn init_in_tx<D: Db>(
    db: &mut D,
    master: &MasterKey,
    now_ms: i64,
) -> Result<(Keyring, Ed25519KeyPair), StoreError> {
    migrations::apply(db, now_ms).await?;
    let mut wrapped = load_data_keys(db).await?;
    if wrapped.is_empty() {
        let mut id = [0u8; 8];
        sealed::random(&mut id)?;
        let w = WrappedDataKey::generate(master, format!("dek-{}", hex::encode(id)))?;
        db.exec(
            "INSERT INTO data_keys (id, master_key_id, wrapped, created_ms) VALUES ($1, $2, $3, $4)",
            args![&w.id, &w.master_key_id, w.wrapped.clone(), now_ms],
        )
        .await?;
        wrapped.push(w);
    }
    let keys = Keyring::unwrap_all(master, &wrapped)?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let fresh =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| StoreError::Crypto("cannot generate a signing key"))?;
    let pkcs8 = secrets::put_if_absent(db, &keys, AUDIT_KEY_SECRET, fresh.as_ref(), now_ms).await?;
    let audit_key = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| StoreError::Corrupt("audit signing key".into()))?;
    Ok((keys, audit_key))
}

async fn load_data_keys<D: Db>(db: &mut D) -> Result<Vec<WrappedDataKey>, StoreError> {
    let rows = db.query("SELECT id, master_key_id, wrapped FROM data_keys ORDER BY created_ms, id", vec![]).await?;
    rows.iter().map(|r| Ok(WrappedDataKey { id: r.text(0)?, master_key_id: r.text(1)?, wrapped: r.blob(2)? })).collect()
}

impl Store {
    /// Opens the store: connects, applies migrations, unwraps the data keys with `master`.
    pub async fn open(
        location: &StoreLocation,
        master: &MasterKey,
        now_ms: i64,
        observer: Option<Arc<dyn StoreObserver>>,
    ) -> Result<Self, StoreError> {
        let (backend, (keys, audit_key)) = match location {
            StoreLocation::Sqlite(path) => {
                let mut conn = sqlite::Sqlite::connect(path).await?;
                let v = init(&mut conn, master, now_ms).await?;
                (Backend::Sqlite(sqlite::Sqlite::start(path, conn).await?), v)
            }
            StoreLocation::Postgres(url) => {
                let b = postgres::Postgres::connect(url).await?;
                let mut conn = b.pool().acquire().await?;
                let v = init(&mut *conn, master, now_ms).await?;
                drop(conn);
                (Backend::Postgres(b), v)
            }
        };
        Ok(Self { backend, keys: Arc::new(keys), audit_key: Arc::new(audit_key), observer, changes: Arc::default() })
    }

    /// Devices changed by committed writes (model, firmware, criticality, group, region, state).
    pub fn device_changes(&self) -> Arc<changes::DeviceChanges> {
        self.changes.clone()
    }

    fn observe(&self, op: &'static str, started: Instant, ok: bool) {
        if let Some(o) = &self.observer {
            o.observe(op, started.elapsed(), ok);
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Finishes queued writes and closes connections.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(b) => b.close().await,
            Backend::Postgres(b) => b.close().await,
        }
    }

    /// Answers when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        read_op!(self, "ping", |c| c.query("SELECT 1", vec![]).await.map(drop))
    }

    // --- devices -------------------------------------------------------------------------

    pub async fn create_device(&self, new: NewDevice, ctx: AuditContext) -> Result<Device, StoreError> {
        let keys = self.keys.clone();
        let device = write_op!(self, "device.create", |c| devices::create(c, &keys, &new, &ctx).await)?;
        self.changes.mark([device.id.as_str()]);
        Ok(device)
    }

    /// All rows or none. `rows` pairs each device with its 1-based row number.
    pub async fn import_devices(&self, rows: Vec<(usize, NewDevice)>, ctx: AuditContext) -> Result<usize, StoreError> {
        let keys = self.keys.clone();
        let ids: Vec<String> = rows.iter().map(|(_, d)| d.id.to_string()).collect();
        let n = write_op!(self, "device.import", |c| devices::import(c, &keys, &rows, &ctx).await)?;
        self.changes.mark(ids.iter().map(String::as_str));
        Ok(n)
    }

    pub async fn get_device(&self, id: &DeviceId) -> Result<Device, StoreError> {
        read_op!(self, "device.get", |c| devices::get(c, &self.keys, id).await)
    }

    pub async fn list_devices(
        &self,
        filter: &DeviceFilter,
        cursor: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Page<Device>, StoreError> {
        read_op!(self, "device.list", |c| devices::list(c, &self.keys, filter, cursor, limit).await)
    }

    /// Devices counted by state, criticality, region and firmware, within a filter.
    pub async fn fleet_summary(&self, filter: &DeviceFilter) -> Result<devices::FleetSummary, StoreError> {
        read_op!(self, "device.summary", |c| devices::fleet_summary(c, filter).await)
    }

    pub async fn count_devices(&self) -> Result<i64, StoreError> {
        read_op!(self, "device.count", |c| devices::count(c).await)
    }

    pub async fn update_device(
        &self,
        id: DeviceId,
        patch: DevicePatch,
        ctx: AuditContext,
    ) -> Result<Device, StoreError> {
        let keys = self.keys.clone();
        let device = write_op!(self, "device.update", |c| devices::update(c, &keys, &id, patch, &ctx).await)?;
        self.changes.mark([device.id.as_str()]);
        Ok(device)
    }

    pub async fn transition_device(
        &self,
        id: DeviceId,
        transition: Transition,
        reason: Option<String>,
        ctx: AuditContext,
    ) -> Result<Device, StoreError> {
        let keys = self.keys.clone();
        let device = write_op!(self, "device.transition", |c| devices::transition(
            c,
            &keys,
            &id,
            transition,
            reason.as_deref(),
            &ctx
        )
        .await)?;
        self.changes.mark([device.id.as_str()]);
        Ok(device)
    }

    // --- audit ---------------------------------------------------------------------------

    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Page<StoredEntry>, StoreError> {
        read_op!(self, "audit.list", |c| audit::list(c, filter, before_seq, limit).await)
    }

    pub async fn audit_range(&self, after_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        read_op!(self, "audit.range", |c| audit::range(c, after_seq, limit).await)
    }

    /// Signs the chain head if it moved. The sequence number signed, if any.
    pub async fn audit_checkpoint(&self, now_ms: i64) -> Result<Option<u64>, StoreError> {
        let key = self.audit_key.clone();
        write_op!(self, "audit.checkpoint", |c| audit::checkpoint(c, &key, now_ms).await)
    }

    pub async fn verify_audit(&self) -> Result<Result<Verified, ChainBreak>, StoreError> {
        read_op!(self, "audit.verify", |c| audit::verify(c, &self.audit_key).await)
    }

    /// Records an event that changes no other table (a login, a key rotation…).
    pub async fn record(
        &self,
        ctx: AuditContext,
        action: &'static str,
        target: String,
        after: Option<serde_json::Value>,
    ) -> Result<u64, StoreError> {
        write_op!(self, "audit.record", |c| audit::append(c, &ctx, action, &target, None, after).await)
    }

    // --- API keys --------------------------------------------------------------------------

    pub async fn create_api_key(
        &self,
        name: String,
        authority: KeyAuthority,
        expires_ms: Option<i64>,
        ctx: AuditContext,
    ) -> Result<NewApiKey, StoreError> {
        write_op!(self, "apikey.create", |c| apikeys::create(c, &name, &authority, expires_ms, &ctx).await)
    }

    pub async fn api_keys(&self, owner: Option<&str>) -> Result<Vec<ApiKeyInfo>, StoreError> {
        read_op!(self, "apikey.list", |c| apikeys::list(c, owner).await)
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
        read_op!(self, "apikey.get", |c| apikeys::get(c, id).await)
    }

    pub async fn revoke_api_key(&self, id: String, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "apikey.revoke", |c| apikeys::revoke(c, &id, &ctx).await)
    }

    /// Notes a key's use (rate-limited per key inside).
    pub async fn touch_api_key(&self, info: &ApiKeyInfo, now_ms: i64, ip: Option<String>) -> Result<(), StoreError> {
        if info.last_used_ms.is_some_and(|t| now_ms - t < 60_000) {
            return Ok(());
        }
        let id = info.id.clone();
        write_op!(self, "apikey.touch", |c| apikeys::touch(c, &id, now_ms, ip.as_deref()).await)
    }

    // --- device identity ----------------------------------------------------------------------

    pub async fn add_enrollment_token(
        &self,
        device_id: String,
        hash: Vec<u8>,
        expires_ms: i64,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        write_op!(self, "pki.token", |c| identity::add_token(c, &device_id, &hash, expires_ms, &ctx).await)
    }

    pub async fn enroll(
        &self,
        auth: EnrollAuth,
        cert: CertRecord,
        ctx: AuditContext,
    ) -> Result<EnrollOutcome, StoreError> {
        write_op!(self, "pki.enroll", |c| identity::enroll(c, &auth, &cert, &ctx).await)
    }

    pub async fn certificates_of(&self, device_id: &str) -> Result<Vec<CertRecord>, StoreError> {
        read_op!(self, "pki.certs_of", |c| identity::certificates_of(c, device_id).await)
    }

    pub async fn certificate(&self, serial: &str) -> Result<Option<CertRecord>, StoreError> {
        read_op!(self, "pki.cert", |c| identity::certificate(c, serial).await)
    }

    pub async fn revoke_certificate(
        &self,
        serial: String,
        reason: String,
        ctx: AuditContext,
    ) -> Result<CertRecord, StoreError> {
        write_op!(self, "pki.revoke", |c| identity::revoke(c, &serial, &reason, &ctx).await)
    }

    pub async fn revoked_certificates(&self, now_ms: i64) -> Result<Vec<CertRecord>, StoreError> {
        read_op!(self, "pki.revoked", |c| identity::revoked(c, now_ms).await)
    }

    pub async fn valid_certificates(&self) -> Result<Vec<CertRecord>, StoreError> {
        read_op!(self, "pki.valid", |c| identity::valid_certificates(c).await)
    }

    pub async fn add_manufacturer_ca(&self, ca: ManufacturerCa, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "pki.manufacturer_ca", |c| identity::add_manufacturer_ca(c, &ca, &ctx).await)
    }

    pub async fn manufacturer_cas(&self) -> Result<Vec<ManufacturerCa>, StoreError> {
        read_op!(self, "pki.manufacturer_cas", |c| identity::manufacturer_cas(c).await)
    }

    pub async fn allow_serials(
        &self,
        rows: Vec<(String, String, String)>,
        ctx: AuditContext,
    ) -> Result<usize, StoreError> {
        write_op!(self, "pki.serials", |c| identity::allow_serials(c, &rows, &ctx).await)
    }

    pub async fn factory_device(&self, vendor: &str, model: &str, serial: &str) -> Result<Option<String>, StoreError> {
        read_op!(self, "pki.factory_device", |c| identity::factory_device(c, vendor, model, serial).await)
    }

    pub async fn add_finding(
        &self,
        kind: String,
        device_id: Option<String>,
        detail: String,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        write_op!(self, "finding.add", |c| identity::add_finding(c, &kind, device_id.as_deref(), &detail, now_ms).await)
    }

    pub async fn findings(&self, kind: Option<&str>) -> Result<Vec<Finding>, StoreError> {
        read_op!(self, "finding.list", |c| identity::findings(c, kind).await)
    }

    // --- detection ------------------------------------------------------------------------

    pub async fn put_profile(
        &self,
        name: String,
        spec: String,
        source: &'static str,
        ctx: AuditContext,
    ) -> Result<bool, StoreError> {
        write_op!(self, "profile.put", |c| alerts::put_profile(c, &name, &spec, source, &ctx).await)
    }

    pub async fn delete_profile(&self, name: String, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "profile.delete", |c| alerts::delete_profile(c, &name, &ctx).await)
    }

    pub async fn profiles(&self) -> Result<Vec<alerts::StoredProfile>, StoreError> {
        read_op!(self, "profile.list", |c| alerts::profiles(c).await)
    }

    /// Records what detection decided, on its own (a timer's or a connection's verdict).
    pub async fn record_verdict(&self, verdict: alerts::Verdict) -> Result<alerts::Recorded, StoreError> {
        write_op!(self, "alert.record", |c| alerts::record(c, &verdict).await)
    }

    pub async fn set_alert_status(
        &self,
        id: String,
        to: palisade_core::detect::alert::Status,
        false_positive: bool,
        note: Option<String>,
        ctx: AuditContext,
    ) -> Result<alerts::Alert, StoreError> {
        write_op!(self, "alert.status", |c| alerts::set_status(c, &id, to, false_positive, note.as_deref(), &ctx).await)
    }

    pub async fn suppress_alert(
        &self,
        id: String,
        until_ms: i64,
        ctx: AuditContext,
    ) -> Result<alerts::Alert, StoreError> {
        write_op!(self, "alert.suppress", |c| alerts::suppress(c, &id, until_ms, &ctx).await)
    }

    pub async fn escalate_alert(
        &self,
        id: String,
        step: i64,
        channels: Vec<String>,
        ctx: AuditContext,
    ) -> Result<bool, StoreError> {
        write_op!(self, "alert.escalate", |c| alerts::escalate(c, &id, step, &channels, &ctx).await)
    }

    pub async fn alert_responded(&self, id: String, at_ms: i64, detail: String) -> Result<(), StoreError> {
        write_op!(self, "alert.response", |c| alerts::responded(c, &id, at_ms, &detail).await)
    }

    pub async fn alert(&self, id: &str) -> Result<alerts::Alert, StoreError> {
        read_op!(self, "alert.get", |c| alerts::get(c, id).await)
    }

    pub async fn alert_history(&self, id: &str) -> Result<Vec<alerts::AlertEvent>, StoreError> {
        read_op!(self, "alert.history", |c| alerts::history(c, id).await)
    }

    pub async fn alerts(&self, filter: &alerts::AlertFilter) -> Result<Vec<alerts::Alert>, StoreError> {
        read_op!(self, "alert.list", |c| alerts::list(c, filter).await)
    }

    pub async fn open_alerts(&self) -> Result<Vec<alerts::Alert>, StoreError> {
        read_op!(self, "alert.open", |c| alerts::open(c).await)
    }

    pub async fn commands_of(&self, device_id: &str) -> Result<Vec<identity::Command>, StoreError> {
        read_op!(self, "command.list", |c| identity::commands_of(c, device_id).await)
    }

    pub async fn pending_commands(&self, device_id: &str) -> Result<Vec<identity::Command>, StoreError> {
        read_op!(self, "command.pending", |c| identity::pending_commands(c, device_id).await)
    }

    pub async fn queue_command(
        &self,
        device_id: String,
        command: String,
        ctx: AuditContext,
    ) -> Result<String, StoreError> {
        write_op!(self, "command.queue", |c| identity::queue_command(c, &device_id, &command, &ctx).await)
    }

    pub async fn set_command_status(
        &self,
        device_id: String,
        id: String,
        status: &'static str,
        result: Option<String>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        write_op!(self, "command.status", |c| identity::set_command_status(
            c,
            &device_id,
            &id,
            status,
            result.as_deref(),
            now_ms
        )
        .await)
    }

    // --- device plane -----------------------------------------------------------------------

    /// Stores a batch of messages from devices; returns once it is durable (the QoS 1 acks wait
    /// for it).
    pub async fn ingest(&self, batch: Vec<plane::Inbound>) -> Result<(), StoreError> {
        write_op!(self, "plane.ingest", |c| plane::ingest(c, batch).await)
    }

    /// Stores a batch of device messages together with what detection decided about them, in
    /// one transaction: the alerts and their notices are durable when the reports are (one
    /// commit on the way from a report to its notice, not two), and neither is ever stored
    /// without the other. A verdict that cannot be recorded fails alone (its savepoint is rolled
    /// back) and its error is returned in its place; the batch and the other verdicts stand.
    ///
    /// `started` hears when the write begins (its turn at the writer, or a connection of its
    /// own): the ingester forms the next batch then.
    pub async fn ingest_detected(
        &self,
        batch: Vec<plane::Inbound>,
        verdicts: Vec<alerts::Verdict>,
        started: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Vec<Result<alerts::Recorded, StoreError>>, StoreError> {
        write_op!(self, "plane.ingest", |c| {
            let _ = started.send(());
            plane::ingest(c, batch).await?;
            let mut recorded = Vec::with_capacity(verdicts.len());
            for v in &verdicts {
                c.exec_script("SAVEPOINT verdict").await?;
                let r = alerts::record(c, v).await;
                if r.is_err() {
                    c.exec_script("ROLLBACK TO SAVEPOINT verdict").await?;
                }
                c.exec_script("RELEASE SAVEPOINT verdict").await?;
                recorded.push(r);
            }
            Ok(recorded)
        })
    }

    pub async fn device_messages(
        &self,
        device_id: &str,
        kind: &str,
        limit: i64,
    ) -> Result<Vec<plane::DeviceMessage>, StoreError> {
        read_op!(self, "plane.messages", |c| plane::messages(c, device_id, kind, limit).await)
    }

    /// A device's telemetry reports since `since_ms` (device time), oldest first.
    pub async fn recent_reports(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<plane::StoredReport>, StoreError> {
        read_op!(self, "plane.recent_reports", |c| plane::recent_reports(c, device_id, since_ms, limit).await)
    }

    /// The counters of a device's latest telemetry report.
    pub async fn last_counters(
        &self,
        device_id: &str,
    ) -> Result<Option<palisade_core::telemetry::CounterSample>, StoreError> {
        read_op!(self, "plane.last_counters", |c| plane::last_counters(c, device_id).await)
    }

    /// A metric's time series, downsampled into buckets.
    pub async fn telemetry_series(
        &self,
        device_id: &str,
        metric: plane::Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<plane::Bucket>, StoreError> {
        read_op!(self, "plane.series", |c| plane::series(c, device_id, metric, from_ms, to_ms, bucket_ms).await)
    }

    pub async fn record_connection(&self, fact: plane::ConnectionFact) -> Result<(), StoreError> {
        write_op!(self, "plane.connection", |c| plane::connection(c, &fact).await)
    }

    /// A device's connection history, newest first.
    pub async fn connections(
        &self,
        device_id: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<plane::ConnectionFact>, StoreError> {
        read_op!(self, "plane.connections", |c| plane::connections(c, device_id, before_ms, limit).await)
    }

    // --- users ------------------------------------------------------------------------------

    pub async fn create_user(&self, new: NewUser, ctx: AuditContext) -> Result<(), StoreError> {
        let keys = self.keys.clone();
        write_op!(self, "user.create", |c| users::create(c, &keys, &new, &ctx).await)
    }

    pub async fn user(&self, id: &str) -> Result<User, StoreError> {
        read_op!(self, "user.get", |c| users::get(c, &self.keys, id).await)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        read_op!(self, "user.by_name", |c| users::by_username(c, &self.keys, username).await)
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        read_op!(self, "user.list", |c| users::list(c, &self.keys).await)
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        read_op!(self, "user.count", |c| users::count(c).await)
    }

    pub async fn update_user(&self, id: String, patch: UserPatch, ctx: AuditContext) -> Result<User, StoreError> {
        let keys = self.keys.clone();
        write_op!(self, "user.update", |c| users::update(c, &keys, &id, patch, &ctx).await)
    }

    /// Sets a password hash and ends the user's other sessions.
    pub async fn set_password(
        &self,
        id: String,
        hash: Zeroizing<String>,
        must_change: bool,
        keep_session: Option<Vec<u8>>,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        write_op!(self, "user.password", |c| users::set_password(
            c,
            &id,
            &hash,
            must_change,
            keep_session.as_deref(),
            &ctx
        )
        .await)
    }

    pub async fn set_totp_pending(
        &self,
        id: String,
        secret: Zeroizing<Vec<u8>>,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        let keys = self.keys.clone();
        write_op!(self, "user.totp_pending", |c| users::set_totp_pending(c, &keys, &id, &secret, &ctx).await)
    }

    pub async fn confirm_totp(
        &self,
        id: String,
        secret: Zeroizing<Vec<u8>>,
        step: u64,
        recovery_hashes: Vec<Vec<u8>>,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        let keys = self.keys.clone();
        write_op!(self, "user.totp_confirm", |c| users::confirm_totp(
            c,
            &keys,
            &id,
            &secret,
            step,
            &recovery_hashes,
            &ctx
        )
        .await)
    }

    pub async fn disable_totp(&self, id: String, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "user.totp_disable", |c| users::disable_totp(c, &id, &ctx).await)
    }

    pub async fn use_totp_step(&self, id: String, step: u64) -> Result<bool, StoreError> {
        write_op!(self, "user.totp_step", |c| users::use_totp_step(c, &id, step).await)
    }

    pub async fn use_recovery_code(&self, id: String, hash: Vec<u8>, now_ms: i64) -> Result<bool, StoreError> {
        write_op!(self, "user.recovery_code", |c| users::use_recovery_code(c, &id, &hash, now_ms).await)
    }

    pub async fn set_user_locked(
        &self,
        id: String,
        until_ms: Option<i64>,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        write_op!(self, "user.lock", |c| users::set_locked(c, &id, until_ms, &ctx).await)
    }

    pub async fn create_session(
        &self,
        id_hash: Vec<u8>,
        user_id: String,
        now_ms: i64,
        ip: Option<String>,
    ) -> Result<(), StoreError> {
        write_op!(self, "session.create", |c| users::create_session(c, &id_hash, &user_id, now_ms, ip.as_deref()).await)
    }

    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        read_op!(self, "session.get", |c| users::get_session(c, id_hash).await)
    }

    pub async fn touch_session(&self, id_hash: Vec<u8>, now_ms: i64) -> Result<(), StoreError> {
        write_op!(self, "session.touch", |c| users::touch_session(c, &id_hash, now_ms).await)
    }

    pub async fn delete_session(&self, id_hash: Vec<u8>) -> Result<(), StoreError> {
        write_op!(self, "session.delete", |c| users::delete_session(c, &id_hash).await)
    }

    pub async fn create_role(&self, role: CustomRole, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "role.create", |c| users::create_role(c, &role, &ctx).await)
    }

    pub async fn custom_roles(&self) -> Result<Vec<CustomRole>, StoreError> {
        read_op!(self, "role.list", |c| users::roles(c).await)
    }

    pub async fn authenticate_api_key(
        &self,
        key: &PresentedKey,
        now_ms: i64,
    ) -> Result<Option<ApiKeyInfo>, StoreError> {
        read_op!(self, "apikey.authenticate", |c| apikeys::authenticate(c, key, now_ms).await)
    }

    // --- secrets -----------------------------------------------------------------------------

    pub async fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        read_op!(self, "secret.get", |c| secrets::get(c, &self.keys, name).await)
    }

    /// Stores `value` under `name` unless a value exists; returns the stored one.
    pub async fn secret_or_insert(
        &self,
        name: String,
        value: Zeroizing<Vec<u8>>,
        now_ms: i64,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let keys = self.keys.clone();
        write_op!(self, "secret.put", |c| secrets::put_if_absent(c, &keys, &name, &value, now_ms).await)
    }

    // --- master key ----------------------------------------------------------------------------

    /// Re-wraps every data key from `old` to `new`, in one transaction, and audits it.
    pub async fn rotate_master_key(
        &self,
        old: MasterKey,
        new: Arc<MasterKey>,
        ctx: AuditContext,
    ) -> Result<usize, StoreError> {
        write_op!(self, "keys.rotate", |c| {
            let wrapped = load_data_keys(c).await?;
            for w in &wrapped {
                let re = w.rewrap(&old, &new)?;
                c.exec(
                    "UPDATE data_keys SET master_key_id = $2, wrapped = $3 WHERE id = $1",
                    args![&re.id, &re.master_key_id, re.wrapped],
                )
                .await?;
            }
            audit::append(
                c,
                &ctx,
                "keys.rotate",
                "master-key",
                Some(serde_json::json!({ "master_key_id": old.id() })),
                Some(serde_json::json!({ "master_key_id": new.id(), "data_keys": wrapped.len() })),
            )
            .await?;
            Ok(wrapped.len())
        })
    }
}

/// A short, non-secret explanation of what broke, for operators.
pub fn describe_break(b: &ChainBreak) -> String {
    b.to_string()
}

pub use palisade_core::audit::Actor;

#[doc(hidden)]
pub fn _assert_send<T: Send>(_: &T) {}

#[allow(dead_code)]
fn _store_future_is_send(s: &Store, f: &DeviceFilter) -> BoxFuture<'static, ()> {
    let s = s.clone();
    let f = f.clone();
    Box::pin(async move {
        let _ = s.list_devices(&f, None, 1).await;
    })
}

// Fleet audit checks.

pub mod fleet_checks;

impl Store {
    /// One page of the devices that are not decommissioned (ids after `after`), with their last
    /// message, last connection and reported firmware.
    pub async fn fleet_devices(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<fleet_checks::FleetDevice>, StoreError> {
        read_op!(self, "checks.devices", |c| fleet_checks::devices_page(c, after.as_deref(), limit).await)
    }

    /// Of these certificate serials, the revoked ones, as (serial, device).
    pub async fn revoked_among(&self, serials: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        read_op!(self, "checks.revoked", |c| fleet_checks::revoked_among(c, &serials).await)
    }

    /// Every channel's dead letters since `since_ms` and its `last_n` latest outcomes.
    pub async fn channel_health(
        &self,
        since_ms: i64,
        last_n: usize,
    ) -> Result<Vec<fleet_checks::ChannelHealth>, StoreError> {
        read_op!(self, "checks.channels", |c| fleet_checks::channel_health(c, since_ms, last_n).await)
    }

    /// Records findings `(kind, device, detail)`, except those recorded at or after
    /// `fresh_since_ms`; each as stored (a repeat as its earlier record).
    pub async fn record_findings(
        &self,
        found: Vec<(String, Option<String>, String)>,
        fresh_since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Finding>, StoreError> {
        write_op!(self, "finding.record", |c| fleet_checks::record(c, &found, fresh_since_ms, now_ms).await)
    }
}

// Notifications.

pub mod notify;

impl Store {
    /// Creates a channel (its secret sealed), audited.
    pub async fn create_channel(
        &self,
        new: notify::NewChannel,
        ctx: AuditContext,
    ) -> Result<notify::Channel, StoreError> {
        let keys = self.keys.clone();
        write_op!(self, "notify.channel_create", |c| notify::create_channel(c, &keys, &new, &ctx).await)
    }

    /// Every channel, by name.
    pub async fn channels(&self) -> Result<Vec<notify::Channel>, StoreError> {
        read_op!(self, "notify.channels", |c| notify::channels(c).await)
    }

    /// A channel by id or name.
    pub async fn channel(&self, id_or_name: &str) -> Result<Option<notify::Channel>, StoreError> {
        read_op!(self, "notify.channel", |c| notify::channel(c, id_or_name).await)
    }

    /// Queues `notice` for its targets in a write of its own; how many deliveries were queued.
    /// (Inside another write, call [`notify::enqueue`] instead.)
    pub async fn notify(
        &self,
        notice: notify::Notice,
        targets: notify::Targets,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        write_op!(self, "notify.enqueue", |c| notify::enqueue(c, &notice, &targets, now_ms).await)
    }

    /// Queues `notice` to one channel as a test, audited.
    pub async fn test_channel(
        &self,
        channel: String,
        notice: notify::Notice,
        ctx: AuditContext,
    ) -> Result<notify::Delivery, StoreError> {
        write_op!(self, "notify.channel_test", |c| notify::test_channel(c, &channel, &notice, &ctx).await)
    }

    /// Pending deliveries due at `now_ms`, longest-waiting first, with channel and secret; at
    /// most `per_channel` of each channel.
    pub async fn due_deliveries(
        &self,
        now_ms: i64,
        per_channel: usize,
    ) -> Result<Vec<notify::DueDelivery>, StoreError> {
        read_op!(self, "notify.due", |c| notify::due(c, &self.keys, now_ms, per_channel).await)
    }

    /// When the next pending delivery falls due after `after_ms`.
    pub async fn next_delivery_due(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        read_op!(self, "notify.next_due", |c| notify::next_due_ms(c, after_ms).await)
    }

    /// Records an attempt's outcome. False when the delivery was no longer pending.
    pub async fn delivery_done(&self, id: String, outcome: notify::Outcome, now_ms: i64) -> Result<bool, StoreError> {
        write_op!(self, "notify.done", |c| notify::finish(c, &id, &outcome, now_ms).await)
    }

    /// Deliveries matching `filter`, newest first.
    pub async fn deliveries(
        &self,
        filter: notify::DeliveryFilter,
        limit: usize,
    ) -> Result<Vec<notify::Delivery>, StoreError> {
        read_op!(self, "notify.deliveries", |c| notify::list(c, &filter, limit).await)
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<notify::Delivery>, StoreError> {
        read_op!(self, "notify.delivery", |c| notify::get(c, id).await)
    }

    /// Sends a dead delivery back to pending (due now, attempts counted afresh), audited.
    pub async fn retry_delivery(&self, id: String, ctx: AuditContext) -> Result<notify::Delivery, StoreError> {
        write_op!(self, "notify.retry", |c| notify::retry(c, &id, &ctx).await)
    }

    /// Forgets delivered deliveries last updated before `before_ms`.
    pub async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        write_op!(self, "notify.prune", |c| notify::prune(c, before_ms).await)
    }
}

// The web console.

pub mod console;
pub mod rollouts;

impl Store {
    /// One page of devices matching `filter` in `order`, `offset` rows in (`next`: the next offset).
    pub async fn list_devices_sorted(
        &self,
        filter: &DeviceFilter,
        order: devices::DeviceOrder,
        offset: usize,
        limit: usize,
    ) -> Result<Page<Device>, StoreError> {
        read_op!(self, "device.list_sorted", |c| devices::list_sorted(c, &self.keys, filter, order, offset, limit)
            .await)
    }

    /// How many devices match `filter`.
    pub async fn count_devices_matching(&self, filter: &DeviceFilter) -> Result<i64, StoreError> {
        read_op!(self, "device.count_matching", |c| devices::count_matching(c, filter).await)
    }

    /// Saves (or replaces) a person's named filter of the device list.
    pub async fn save_console_filter(
        &self,
        user_id: String,
        name: String,
        query: String,
        now_ms: i64,
    ) -> Result<console::SavedFilter, StoreError> {
        write_op!(self, "console.filter_save", |c| console::save(c, &user_id, &name, &query, now_ms).await)
    }

    /// A person's saved filters, by name.
    pub async fn console_filters(&self, user_id: &str) -> Result<Vec<console::SavedFilter>, StoreError> {
        read_op!(self, "console.filters", |c| console::list(c, user_id).await)
    }

    /// Forgets a person's saved filter; false when there was none of that name.
    pub async fn delete_console_filter(&self, user_id: String, name: String) -> Result<bool, StoreError> {
        write_op!(self, "console.filter_delete", |c| console::delete(c, &user_id, &name).await)
    }
}

// Signed firmware updates.

pub mod firmware;

impl Store {
    /// The newest version of a TUF role's metadata.
    pub async fn tuf_latest(&self, role: firmware::Role) -> Result<Option<firmware::Metadata>, StoreError> {
        read_op!(self, "firmware.latest", |c| firmware::latest(c, role).await)
    }

    /// One version of a TUF role's metadata.
    pub async fn tuf_version(
        &self,
        role: firmware::Role,
        version: u64,
    ) -> Result<Option<firmware::Metadata>, StoreError> {
        read_op!(self, "firmware.version", |c| firmware::version(c, role, version).await)
    }

    /// Stores a verified root (version = newest + 1), audited.
    pub async fn put_tuf_root(&self, root: firmware::NewMetadata, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "firmware.root", |c| firmware::put_root(c, &root, &ctx).await)
    }

    /// Records an uploaded image whose file is durable, audited.
    pub async fn put_firmware_image(
        &self,
        sha256: String,
        length: u64,
        ctx: AuditContext,
    ) -> Result<firmware::Image, StoreError> {
        write_op!(self, "firmware.image", |c| firmware::put_image(c, &sha256, length, &ctx).await)
    }

    pub async fn firmware_image(&self, sha256: &str) -> Result<Option<firmware::Image>, StoreError> {
        read_op!(self, "firmware.image_get", |c| firmware::image(c, sha256).await)
    }

    /// Publishes verified targets with their snapshot and timestamp; the catalogue follows. Audited.
    pub async fn publish_targets(&self, p: firmware::Publication, ctx: AuditContext) -> Result<(), StoreError> {
        write_op!(self, "firmware.targets", |c| firmware::publish_targets(c, &p, &ctx).await)
    }

    /// Stores re-signed online metadata (a timestamp, and the snapshot when it was re-signed too).
    pub async fn resign_tuf(
        &self,
        snapshot: Option<firmware::NewMetadata>,
        timestamp: firmware::NewMetadata,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        write_op!(self, "firmware.resign", |c| firmware::resign(c, snapshot.as_ref(), &timestamp, &ctx).await)
    }

    /// The catalogue (the current targets), by name.
    pub async fn firmware_catalogue(&self) -> Result<Vec<firmware::CatalogueEntry>, StoreError> {
        read_op!(self, "firmware.catalogue", |c| firmware::catalogue(c).await)
    }

    pub async fn firmware_target(&self, name: &str) -> Result<Option<firmware::CatalogueEntry>, StoreError> {
        read_op!(self, "firmware.target", |c| firmware::target(c, name).await)
    }

    /// A device's newest signed assignment.
    pub async fn firmware_assignment(&self, device_id: &str) -> Result<Option<firmware::StoredAssignment>, StoreError> {
        read_op!(self, "firmware.assignment", |c| firmware::assignment(c, device_id).await)
    }

    /// Stores a signed assignment and queues the device's `update` command in one transaction,
    /// audited; the command's id.
    pub async fn assign_firmware(&self, a: firmware::NewAssignment, ctx: AuditContext) -> Result<String, StoreError> {
        write_op!(self, "firmware.assign", |c| firmware::assign(c, &a, &ctx).await)
    }

    /// Records a device's `update.*` event; `update.committed` also sets its firmware version.
    pub async fn record_update_report(
        &self,
        report: firmware::UpdateReport,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        let keys = self.keys.clone();
        let device_id = report.device_id.clone();
        write_op!(self, "firmware.report", |c| firmware::record_report(c, &keys, &report, &ctx).await)?;
        self.changes.mark([device_id.as_str()]);
        Ok(())
    }

    /// A device's last update report.
    pub async fn update_report(&self, device_id: &str) -> Result<Option<firmware::UpdateReport>, StoreError> {
        read_op!(self, "firmware.report_get", |c| firmware::report(c, device_id).await)
    }

    // --- rollouts ----------------------------------------------------------------------------

    pub async fn create_rollout(
        &self,
        r: rollouts::StoredRollout,
        devices: Vec<String>,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        write_op!(self, "rollout.create", |c| rollouts::create(c, &r, &devices, &ctx).await)
    }

    pub async fn rollout(&self, id: &str) -> Result<rollouts::StoredRollout, StoreError> {
        read_op!(self, "rollout.get", |c| rollouts::get(c, id).await)
    }

    pub async fn rollouts(&self) -> Result<Vec<rollouts::StoredRollout>, StoreError> {
        read_op!(self, "rollout.list", |c| rollouts::list(c).await)
    }

    pub async fn active_rollouts(&self) -> Result<Vec<rollouts::StoredRollout>, StoreError> {
        read_op!(self, "rollout.active", |c| rollouts::active(c).await)
    }

    pub async fn rollout_devices(&self, id: &str) -> Result<Vec<rollouts::RolloutDevice>, StoreError> {
        read_op!(self, "rollout.devices", |c| rollouts::devices(c, id).await)
    }

    /// Stores an engine step; `false` when the rollout changed since it was read (then dropped).
    pub async fn save_rollout_step(
        &self,
        id: String,
        step: rollouts::Step,
        ctx: AuditContext,
    ) -> Result<bool, StoreError> {
        write_op!(self, "rollout.step", |c| rollouts::save_step(c, &id, &step, &ctx).await)
    }

    pub async fn rollout_command(
        &self,
        id: String,
        command: String,
        state: String,
        status: String,
        ctx: AuditContext,
    ) -> Result<(), StoreError> {
        write_op!(self, "rollout.command", |c| rollouts::command(c, &id, &command, &state, &status, &ctx).await)
    }

    /// Devices silent since the update they committed before `before_ms`.
    pub async fn silent_after_update(&self, before_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        read_op!(self, "rollout.silent_after_update", |c| rollouts::silent_after_update(c, before_ms).await)
    }

    /// A device reported the end of an update to `target`; returns the rollouts it advances.
    pub async fn record_rollout_outcome(
        &self,
        device_id: String,
        target: String,
        committed: bool,
        detail: Option<String>,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        write_op!(self, "rollout.outcome", |c| rollouts::record_outcome(
            c,
            &device_id,
            &target,
            committed,
            detail.as_deref(),
            now_ms
        )
        .await)
    }
}

pub mod vuln;

/// SBOMs, advisories and what the exposure index is rebuilt from.
impl Store {
    /// Stores (or replaces) a build's SBOM; true when it replaced one.
    pub async fn put_sbom(&self, sbom: vuln::Sbom, ctx: AuditContext) -> Result<bool, StoreError> {
        write_op!(self, "vuln.sbom", |c| vuln::put_sbom(c, &sbom, &ctx).await)
    }

    pub async fn sboms(&self) -> Result<Vec<vuln::Sbom>, StoreError> {
        read_op!(self, "vuln.sboms", |c| vuln::sboms(c).await)
    }

    pub async fn sbom(&self, model: &str, version: &str) -> Result<Option<vuln::Sbom>, StoreError> {
        read_op!(self, "vuln.sbom_get", |c| vuln::sbom(c, model, version).await)
    }

    /// Writes an import with its report and alerts, all or nothing; the ids of alerts opened.
    pub async fn import_advisories(&self, imp: vuln::NewImport, ctx: AuditContext) -> Result<Vec<String>, StoreError> {
        write_op!(self, "vuln.import", |c| vuln::import(c, &imp, &ctx).await)
    }

    pub async fn advisory_sources(&self) -> Result<Vec<vuln::LiveSource>, StoreError> {
        read_op!(self, "vuln.sources", |c| vuln::live_sources(c).await)
    }

    pub async fn advisory_imports(&self, limit: i64) -> Result<Vec<vuln::ImportRecord>, StoreError> {
        read_op!(self, "vuln.imports", |c| vuln::imports(c, limit).await)
    }

    pub async fn advisory_import(&self, id: &str) -> Result<Option<vuln::ImportRecord>, StoreError> {
        read_op!(self, "vuln.import_get", |c| vuln::import_record_of(c, id).await)
    }

    /// A page of devices as the exposure index sees it, in id order after `after`.
    pub async fn indexed_fleet_page(&self, after: &str, limit: i64) -> Result<Vec<vuln::IndexedDevice>, StoreError> {
        read_op!(self, "vuln.fleet", |c| vuln::fleet_page(c, after, limit).await)
    }

    pub async fn indexed_devices(&self, ids: Vec<String>) -> Result<Vec<vuln::IndexedDevice>, StoreError> {
        read_op!(self, "vuln.devices", |c| vuln::devices(c, &ids).await)
    }
}
