//! Schema migrations, one list per backend, applied in order at start.

use crate::sql::{Db, Dialect};
use crate::{StoreError, args};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_foundation.sql")),
    (2, include_str!("../migrations/sqlite/0002_access.sql")),
    (3, include_str!("../migrations/sqlite/0003_identity.sql")),
    (4, include_str!("../migrations/sqlite/0004_device_plane.sql")),
    (5, include_str!("../migrations/sqlite/0005_commands.sql")),
    (6, include_str!("../migrations/sqlite/0006_telemetry.sql")),
    (7, include_str!("../migrations/sqlite/0007_detection.sql")),
    (8, include_str!("../migrations/sqlite/0008_notify.sql")),
    (9, include_str!("../migrations/sqlite/0009_console.sql")),
    (10, include_str!("../migrations/sqlite/0010_firmware.sql")),
    (11, include_str!("../migrations/sqlite/0011_rollouts.sql")),
    (12, include_str!("../migrations/sqlite/0012_vulnerabilities.sql")),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_foundation.sql")),
    (2, include_str!("../migrations/postgres/0002_access.sql")),
    (3, include_str!("../migrations/postgres/0003_identity.sql")),
    (4, include_str!("../migrations/postgres/0004_device_plane.sql")),
    (5, include_str!("../migrations/postgres/0005_commands.sql")),
    (6, include_str!("../migrations/postgres/0006_telemetry.sql")),
    (7, include_str!("../migrations/postgres/0007_detection.sql")),
    (8, include_str!("../migrations/postgres/0008_notify.sql")),
    (9, include_str!("../migrations/postgres/0009_console.sql")),
    (10, include_str!("../migrations/postgres/0010_firmware.sql")),
    (11, include_str!("../migrations/postgres/0011_rollouts.sql")),
    (12, include_str!("../migrations/postgres/0012_vulnerabilities.sql")),
];

/// Applies every migration not yet applied. Runs inside the caller's transaction (DDL is
/// transactional on both backends), which on PostgreSQL also holds a lock against other nodes.
pub async fn apply<D: Db>(db: &mut D, now_ms: i64) -> Result<(), StoreError> {
    let list = match D::DIALECT {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => {
            db.exec("SELECT pg_advisory_xact_lock($1)", args![0x006d_6967_7261_7465_i64]).await?;
            POSTGRES
        }
    };
    db.exec_script(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .await?;
    let done = db.query("SELECT version FROM schema_migrations", vec![]).await?;
    let done: Vec<i64> = done.iter().map(|r| r.int(0)).collect::<Result<_, _>>()?;
    for (version, sql) in list {
        if done.contains(version) {
            continue;
        }
        tracing::info!(version, "applying migration");
        db.exec_script(sql).await?;
        db.exec("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)", args![*version, now_ms]).await?;
    }
    Ok(())
}
