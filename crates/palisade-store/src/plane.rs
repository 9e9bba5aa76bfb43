//! What devices send and how they connect, as stored.

use crate::sql::Db;
use crate::{StoreError, args};

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMessage {
    pub device_id: String,
    pub kind: String,
    pub received_ms: i64,
    pub seq: Option<i64>,
    pub quarantined: bool,
    pub payload: String,
}

pub async fn ingest<D: Db>(db: &mut D, m: &DeviceMessage) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO device_messages (device_id, kind, received_ms, seq, quarantined, payload) VALUES ($1, $2, $3, $4, $5, $6)",
        args![&m.device_id, &m.kind, m.received_ms, m.seq, i64::from(m.quarantined), &m.payload],
    )
    .await?;
    Ok(())
}

pub async fn messages<D: Db>(
    db: &mut D,
    device_id: &str,
    kind: &str,
    limit: i64,
) -> Result<Vec<DeviceMessage>, StoreError> {
    let rows = db
        .query(
            "SELECT device_id, kind, received_ms, seq, quarantined, payload FROM device_messages \
             WHERE device_id = $1 AND kind = $2 ORDER BY received_ms DESC LIMIT $3",
            args![device_id, kind, limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceMessage {
                device_id: r.text(0)?,
                kind: r.text(1)?,
                received_ms: r.int(2)?,
                seq: r.opt_int(3)?,
                quarantined: r.int(4)? != 0,
                payload: r.text(5)?,
            })
        })
        .collect()
}

pub async fn connection<D: Db>(
    db: &mut D,
    device_id: &str,
    event: &str,
    at_ms: i64,
    source_ip: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO device_connections (device_id, event, at_ms, source_ip, detail) VALUES ($1, $2, $3, $4, $5)",
        args![device_id, event, at_ms, source_ip, detail],
    )
    .await?;
    Ok(())
}
