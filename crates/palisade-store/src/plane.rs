//! What devices send and how they connect, as stored.

use crate::sql::{Db, Dialect};
use crate::{StoreError, args};

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMessage {
    pub device_id: String,
    pub kind: String,
    pub received_ms: i64,
    /// The device's own time for the message (telemetry `ts`), else `received_ms`.
    pub at_ms: i64,
    pub seq: Option<i64>,
    pub quarantined: bool,
    pub payload: String,
}

/// Facts derived from one accepted telemetry report (stored on the report's row).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryFacts {
    pub boot_id: Option<String>,
    pub uptime_s: Option<i64>,
    pub tx_bytes: Option<i64>,
    pub rx_bytes: Option<i64>,
    pub tx_bps: Option<f64>,
    pub rx_bps: Option<f64>,
    pub counter_reset: bool,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    pub failed_logins: Option<i64>,
}

/// A message as it arrives for storage: the raw message and, for telemetry, its facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub message: DeviceMessage,
    pub telemetry: Option<TelemetryFacts>,
}

const INSERT_HEAD: &str = "INSERT INTO device_messages (device_id, kind, received_ms, at_ms, seq, quarantined, payload, \
     boot_id, uptime_s, tx_bytes, rx_bytes, tx_bps, rx_bps, counter_reset, cpu_pct, mem_pct, failed_logins) VALUES ";
const INSERT_COLUMNS: usize = 17;
/// Rows per INSERT: a batch is cut into these sizes, largest first, so every statement is one
/// of four shapes the connection has prepared already.
const ROWS_PER_INSERT: [usize; 4] = [128, 32, 8, 1];

/// Stores a batch of messages with a few multi-row INSERTs (the strings move into the
/// statement's parameters: no copies on the hot path).
pub async fn ingest<D: Db>(db: &mut D, batch: Vec<Inbound>) -> Result<(), StoreError> {
    let mut left = batch.len();
    let mut rows = batch.into_iter();
    while left > 0 {
        let n = ROWS_PER_INSERT.into_iter().find(|n| *n <= left).unwrap_or(1).min(left);
        left -= n;
        let mut args = Vec::with_capacity(n * INSERT_COLUMNS);
        for Inbound { message: m, telemetry } in rows.by_ref().take(n) {
            let t = telemetry.unwrap_or_default();
            args.extend(args![
                m.device_id,
                m.kind,
                m.received_ms,
                m.at_ms,
                m.seq,
                i64::from(m.quarantined),
                m.payload,
                t.boot_id,
                t.uptime_s,
                t.tx_bytes,
                t.rx_bytes,
                t.tx_bps,
                t.rx_bps,
                i64::from(t.counter_reset),
                t.cpu_pct,
                t.mem_pct,
                t.failed_logins
            ]);
        }
        db.exec(&multi_row::<D>(INSERT_HEAD, INSERT_COLUMNS, n), args).await?;
    }
    Ok(())
}

/// `head` followed by `rows` groups of `columns` placeholders: `($1, $2), ($3, $4)`.
///
/// SQLite gets anonymous `?` placeholders instead: looking up a numbered parameter by index is a
/// linear scan in SQLite, so binding a thousand `$n` costs a million steps.
fn multi_row<D: Db>(head: &str, columns: usize, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + rows * columns * 6);
    sql.push_str(head);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            sql.push_str(if c == 0 { "" } else { ", " });
            match D::DIALECT {
                Dialect::Sqlite => sql.push('?'),
                Dialect::Postgres => {
                    let _ = write!(sql, "${}", r * columns + c + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// The counters of the device's latest telemetry report, to derive the next rates from.
pub async fn last_counters<D: Db>(
    db: &mut D,
    device_id: &str,
) -> Result<Option<palisade_core::telemetry::CounterSample>, StoreError> {
    let row = db
        .query_opt(
            "SELECT at_ms, boot_id, uptime_s, tx_bytes, rx_bytes FROM device_messages \
             WHERE device_id = $1 AND kind = 'telemetry' ORDER BY at_ms DESC LIMIT 1",
            args![device_id],
        )
        .await?;
    let unsigned = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    row.map(|r| {
        Ok(palisade_core::telemetry::CounterSample {
            at_ms: r.int(0)?,
            boot_id: r.opt_text(1)?,
            uptime_s: unsigned(r.opt_int(2)?),
            tx_bytes: unsigned(r.opt_int(3)?),
            rx_bytes: unsigned(r.opt_int(4)?),
        })
    })
    .transpose()
}

/// A telemetry metric with a time series (a column of `telemetry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    TxBps,
    RxBps,
    TxBytes,
    RxBytes,
    CpuPct,
    MemPct,
    UptimeS,
    FailedLogins,
}

impl Metric {
    pub const ALL: [Self; 8] = [
        Self::TxBps,
        Self::RxBps,
        Self::TxBytes,
        Self::RxBytes,
        Self::CpuPct,
        Self::MemPct,
        Self::UptimeS,
        Self::FailedLogins,
    ];

    /// The metric's name in the API, which is also its column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TxBps => "tx_bps",
            Self::RxBps => "rx_bps",
            Self::TxBytes => "tx_bytes",
            Self::RxBytes => "rx_bytes",
            Self::CpuPct => "cpu_pct",
            Self::MemPct => "mem_pct",
            Self::UptimeS => "uptime_s",
            Self::FailedLogins => "failed_logins",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A stored telemetry report with the facts derived when it arrived (for rebuilding detection
/// state at start).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub received_ms: i64,
    pub at_ms: i64,
    pub payload: String,
    pub tx_bps: Option<f64>,
    pub rx_bps: Option<f64>,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
}

/// A device's telemetry reports taken at or after `since_ms` (device time), oldest first, at
/// most the newest `limit`.
pub async fn recent_reports<D: Db>(
    db: &mut D,
    device_id: &str,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<StoredReport>, StoreError> {
    let rows = db
        .query(
            "SELECT received_ms, at_ms, payload, tx_bps, rx_bps, cpu_pct, mem_pct FROM device_messages \
             WHERE device_id = $1 AND at_ms >= $2 AND kind = 'telemetry' ORDER BY at_ms DESC LIMIT $3",
            args![device_id, since_ms, limit],
        )
        .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(StoredReport {
                received_ms: r.int(0)?,
                at_ms: r.int(1)?,
                payload: r.text(2)?,
                tx_bps: r.opt_real(3)?,
                rx_bps: r.opt_real(4)?,
                cpu_pct: r.opt_real(5)?,
                mem_pct: r.opt_real(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.reverse();
    Ok(out)
}

/// One bucket of a downsampled series.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    pub count: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
}

/// `metric` of one device over `[from_ms, to_ms)`, in buckets of `bucket_ms` (empty buckets
/// left out).
pub async fn series<D: Db>(
    db: &mut D,
    device_id: &str,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
) -> Result<Vec<Bucket>, StoreError> {
    // The column name comes from the closed `Metric` list, never from the request.
    let col = metric.as_str();
    let sql = format!(
        "SELECT (at_ms - $2) / $4 AS b, COUNT(*), AVG(CAST({col} AS DOUBLE PRECISION)), \
         MIN(CAST({col} AS DOUBLE PRECISION)), MAX(CAST({col} AS DOUBLE PRECISION)) FROM device_messages \
         WHERE device_id = $1 AND at_ms >= $2 AND at_ms < $3 AND {col} IS NOT NULL GROUP BY b ORDER BY b"
    );
    let rows = db.query(&sql, args![device_id, from_ms, to_ms, bucket_ms.max(1)]).await?;
    rows.iter()
        .map(|r| {
            let number = |i| r.opt_real(i).map(Option::unwrap_or_default);
            Ok(Bucket {
                start_ms: from_ms + r.int(0)? * bucket_ms.max(1),
                count: r.int(1)?,
                avg: number(2)?,
                min: number(3)?,
                max: number(4)?,
            })
        })
        .collect()
}

pub async fn messages<D: Db>(
    db: &mut D,
    device_id: &str,
    kind: &str,
    limit: i64,
) -> Result<Vec<DeviceMessage>, StoreError> {
    let rows = db
        .query(
            "SELECT device_id, kind, received_ms, at_ms, seq, quarantined, payload FROM device_messages \
             WHERE device_id = $1 AND kind = $2 ORDER BY at_ms DESC LIMIT $3",
            args![device_id, kind, limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceMessage {
                device_id: r.text(0)?,
                kind: r.text(1)?,
                received_ms: r.int(2)?,
                at_ms: r.int(3)?,
                seq: r.opt_int(4)?,
                quarantined: r.int(5)? != 0,
                payload: r.text(6)?,
            })
        })
        .collect()
}

/// A fact about a device's connections, for detection and the connection history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionFact {
    pub device_id: String,
    /// `connected`, `disconnected` or `refused`.
    pub event: String,
    pub at_ms: i64,
    pub source_ip: Option<String>,
    pub detail: Option<String>,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    /// On `disconnected`: how long the session lasted.
    pub duration_ms: Option<i64>,
}

pub async fn connection<D: Db>(db: &mut D, f: &ConnectionFact) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO device_connections (device_id, event, at_ms, source_ip, detail, tls_version, cipher, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            &f.device_id,
            &f.event,
            f.at_ms,
            f.source_ip.as_deref(),
            f.detail.as_deref(),
            f.tls_version.as_deref(),
            f.cipher.as_deref(),
            f.duration_ms
        ],
    )
    .await?;
    Ok(())
}

/// A device's connection history, newest first, before `before_ms`.
pub async fn connections<D: Db>(
    db: &mut D,
    device_id: &str,
    before_ms: i64,
    limit: i64,
) -> Result<Vec<ConnectionFact>, StoreError> {
    let rows = db
        .query(
            "SELECT device_id, event, at_ms, source_ip, detail, tls_version, cipher, duration_ms \
             FROM device_connections WHERE device_id = $1 AND at_ms < $2 ORDER BY at_ms DESC LIMIT $3",
            args![device_id, before_ms, limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ConnectionFact {
                device_id: r.text(0)?,
                event: r.text(1)?,
                at_ms: r.int(2)?,
                source_ip: r.opt_text(3)?,
                detail: r.opt_text(4)?,
                tls_version: r.opt_text(5)?,
                cipher: r.opt_text(6)?,
                duration_ms: r.opt_int(7)?,
            })
        })
        .collect()
}
