//! The embedded SQLite backend: WAL, one writer with pipelined group commit.
//!
//! All writes go through a single thread, `sqlite-writer`, that owns the only write connection
//! (rusqlite: each statement runs in place, without a hop to a worker thread and back). It
//! takes every write queued at that moment, runs each in its own savepoint inside one
//! `BEGIN IMMEDIATE` transaction, and commits once. A write's caller hears back only once that
//! commit is durable, so an acknowledged write survives a crash or a power cut. WAL checkpoints
//! run on a thread of their own (`Checkpointer`).
//!
//! Durability is pipelined: the writer commits with `synchronous=NORMAL` (the commit is in the
//! WAL file but not yet on disk) and hands the group to the `Syncer` thread, which makes the
//! WAL durable with one `fdatasync` for every group committed before it started, then answers
//! their callers. Meanwhile the writer already runs the next group, so the disk's flush and the
//! next group's work overlap instead of taking turns. The rules that keep this as safe as
//! `synchronous=FULL`:
//! - nobody is answered before an `fdatasync` that started after their group's COMMIT returned
//!   (the WAL frames were written by then, so the flush covers them);
//! - the syncer flushes the file the WAL path names now (it reopens it if the inode changed, and
//!   flushes the directory the first time it sees a WAL file), so it never flushes a stale file;
//! - SQLite itself syncs the WAL before each checkpoint copies it into the database, and the
//!   database after, whatever `synchronous` says;
//! - one failed flush poisons the store: no later write is acknowledged (each caller gets an
//!   error, and the log says to restart), because after a failed `fdatasync` the kernel may
//!   have dropped the dirty pages and a later flush can succeed without them.
//!
//! Reads use a separate pool (sqlx, read-only connections).

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::sql::BoxFuture;

/// Most writes committed together.
const MAX_GROUP: usize = 512;
/// Queued writes before callers wait.
const QUEUE: usize = 4096;

type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Step {
    succeeded: bool,
    finish: Finish,
}

type Job = Box<dyn for<'c> FnOnce(&'c mut Writer) -> BoxFuture<'c, Step> + Send>;

enum Msg {
    Write(Job),
    Close(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct Sqlite {
    writer: mpsc::Sender<Msg>,
    readers: SqlitePool,
}

fn options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
    let url = format!("sqlite://{}", path.display());
    Ok(SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .disable_statement_logging())
}

/// The only write connection, owned by the writer thread. It is rusqlite rather than sqlx: a
/// statement runs on the thread that issues it, where sqlx would hand every statement to a
/// worker thread and wait to be woken with the result (two thread switches per statement,
/// which on a busy machine cost more than the statement).
pub struct Writer(rusqlite::Connection);

impl Writer {
    pub(crate) fn conn(&self) -> &rusqlite::Connection {
        &self.0
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.0.execute_batch(sql)?)
    }

    /// Copies what the checkpointer has not yet copied (what was committed during its last
    /// pass: little), so that the WAL is wholly in the database and the next transaction writes
    /// it again from its start.
    fn finish_checkpoint(&self) {
        match checkpoint(&self.0) {
            Ok((busy, log, copied)) => tracing::debug!(busy, log, copied, "the writer finished a checkpoint"),
            Err(e) => tracing::warn!(error = %e, "the writer's checkpoint failed"),
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file: the connection that becomes the writer.
    pub async fn connect(path: &Path) -> Result<Writer, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // Prepared statements kept: every write the store makes, and the ingest shapes.
        conn.set_prepared_statement_cache_capacity(256);
        // The writer keeps the hot pages of the device-plane indexes in memory (64 MiB). The
        // WAL is copied back by the checkpointer thread (below); the writer checkpoints by itself
        // only as a backstop, should the WAL reach 2 GiB (twice `RESTART_FRAMES`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 524288; PRAGMA temp_store = MEMORY;",
        )?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Commit(format!("the database is in journal mode {mode}, not WAL")));
        }
        Ok(Writer(conn))
    }

    /// Starts the writer on `conn` (already initialised) and opens the read pool.
    pub async fn start(path: &Path, conn: Writer) -> Result<Self, StoreError> {
        // From here on the syncer, not the commit, makes each group durable (module docs).
        conn.batch("PRAGMA synchronous = NORMAL")?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options(path)?.read_only(true))
            .await?;
        let (writer, rx) = mpsc::channel(QUEUE);
        let syncer = Syncer::start(wal_path(path))?;
        let checkpointer = Checkpointer::start(path)?;
        // The writer thread runs the jobs' futures on a runtime of its own: they never wait
        // (every statement runs in place), so nothing else is scheduled in between.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Commit(format!("cannot start the writer: {e}")))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || runtime.block_on(run_writer(conn, rx, syncer, checkpointer)))
            .map_err(|e| StoreError::Commit(format!("cannot start the writer: {e}")))?;
        Ok(Self { writer, readers })
    }

    /// Runs `op` in the next group commit; returns once the group is durable.
    pub async fn write<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Writer) -> BoxFuture<'c, Result<R, StoreError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                match op(conn).await {
                    Ok(value) => Step {
                        succeeded: true,
                        finish: Box::new(move |committed| {
                            let _ = tx.send(committed.map(|()| value));
                        }),
                    },
                    Err(e) => Step {
                        succeeded: false,
                        finish: Box::new(move |_| {
                            let _ = tx.send(Err(e));
                        }),
                    },
                }
            })
        });
        self.writer.send(Msg::Write(job)).await.map_err(|_| StoreError::NotWritten)?;
        rx.await.map_err(|_| StoreError::NotWritten)?
    }

    pub fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// Finishes every queued write, then closes the database.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(Msg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.readers.close().await;
    }
}

async fn run_writer(mut conn: Writer, mut rx: mpsc::Receiver<Msg>, syncer: Syncer, checkpointer: Checkpointer) {
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = rx.recv().await else { break };
        let mut jobs = Vec::new();
        match first {
            Msg::Write(j) => jobs.push(j),
            Msg::Close(ack) => closing = Some(ack),
        }
        while closing.is_none() && jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Msg::Write(j)) => jobs.push(j),
                Ok(Msg::Close(ack)) => closing = Some(ack),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            commit_group(&mut conn, jobs, &syncer).await;
        }
        if checkpointer.restart_wanted() {
            conn.finish_checkpoint();
        }
    }
    checkpointer.stop();
    // Everything committed is flushed and answered before the connection closes.
    syncer.finish().await;
    if let Err((_, e)) = conn.0.close() {
        tracing::error!(error = %e, "cannot close the database");
    }
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

async fn commit_group(conn: &mut Writer, jobs: Vec<Job>, syncer: &Syncer) {
    if let Err(e) = conn.batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        tracing::error!(error = %msg, "cannot begin a write transaction");
        // Dropping a job drops its reply channel: its caller gets `StoreError::NotWritten`.
        drop(jobs);
        return;
    }
    let mut finishes = Vec::with_capacity(jobs.len());
    // A write alone in its group needs no savepoint: the transaction is its own, and a failure
    // rolls all of it back. (A savepoint copies every page it first touches into the statement
    // journal: for a big ingest batch that was the writer's largest cost after the inserts.)
    let alone = jobs.len() == 1;
    for job in jobs {
        if alone {
            let step = job(conn).await;
            if !step.succeeded {
                if let Err(e) = conn.batch("ROLLBACK") {
                    tracing::error!(error = %e, "cannot roll back a failed write");
                }
                (step.finish)(Ok(()));
                return;
            }
            finishes.push(step.finish);
            continue;
        }
        let step = match conn.batch("SAVEPOINT job") {
            Ok(()) => job(conn).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot open a savepoint");
                drop(job);
                continue;
            }
        };
        let end = if step.succeeded { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = conn.batch(end) {
            tracing::error!(error = %e, "savepoint failed");
        }
        finishes.push(step.finish);
    }
    match conn.batch("COMMIT") {
        Ok(()) => syncer.flush_then_answer(finishes),
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let _ = conn.batch("ROLLBACK");
            let e = e.to_string();
            for finish in finishes {
                finish(Err(StoreError::Commit(e.clone())));
            }
        }
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (whether it was blocked, frames in the WAL, frames copied
/// into the database). A passive checkpoint never waits for, nor blocks, the writer or readers.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
}

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// WAL frames (pages) past which the writer is asked to let the WAL start over: 1 GiB.
///
/// Each restart stops the writer while it copies what the last pass missed and flushes the
/// database (20–80 ms under heavy ingest), so the threshold sets how often that happens: at
/// 64 MiB it was every 1.3 s at 57k msgs/s, most of the publish → alert p99; at 1 GiB it is every
/// ~17 s. The price: around each restart the database and WAL flushes sometimes take 0.25–0.5 s
/// (PUBACK max ~0.5 s instead of ~0.12 s on the benchmark machine; 256 MiB was between the two
/// on both counts). Whenever writes pause long enough for a pass to copy everything, the WAL
/// starts over by itself, so only sustained heavy writes grow it (the file keeps its size
/// afterwards). Recovery after a crash reads the whole WAL: 0.6 s for 1 GB (BENCHMARKS.md,
/// issue 7 run 9).
const RESTART_FRAMES: i64 = 262_144;

/// The thread that copies the WAL into the database file on a connection of its own, so the
/// writer no longer stops for tens of milliseconds every few seconds to do it (a checkpoint
/// copies every page changed since the last one and flushes the database file).
///
/// A passive checkpoint copies only the frames committed when it starts, and the WAL can only
/// start over from its beginning once all of it is copied. Under steady writes that never
/// happens by itself, so once the WAL is long the checkpointer asks the writer to copy the rest
/// between two groups (`Writer::finish_checkpoint`): only what was committed during the last
/// pass. The writer's next transaction then restarts the WAL. SQLite flushes the WAL before and
/// the database after every checkpoint, whichever connection runs it.
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let restart = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wanted = restart.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run_checkpointer(&conn, &wanted, &stopped))
            .map_err(|e| StoreError::Commit(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self { stop, restart })
    }

    fn restart_wanted(&self) -> bool {
        self.restart.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn stop(&self) {
        let _ = self.stop.send(());
    }
}

fn run_checkpointer(
    conn: &rusqlite::Connection,
    restart: &std::sync::atomic::AtomicBool,
    stop: &std::sync::mpsc::Receiver<()>,
) {
    // Said once when checkpoints start failing and once when they work again, not ten times a
    // second; the writer's own checkpoints (at 2 GiB) keep the WAL bounded meanwhile.
    let mut failing = false;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        match checkpoint(conn) {
            Ok((_, log, _)) => {
                if failing {
                    tracing::info!("WAL checkpoints work again");
                    failing = false;
                }
                if log >= RESTART_FRAMES {
                    restart.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) if !failing => {
                tracing::warn!(error = %e, "WAL checkpoint failed; the writer checkpoints by itself past 2 GiB");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Groups committed to the WAL and waiting for it to reach the disk.
enum SyncMsg {
    Committed(Vec<Finish>),
    Done(oneshot::Sender<()>),
}

/// The thread that makes committed groups durable and then answers their callers (module docs).
struct Syncer {
    tx: std::sync::mpsc::Sender<SyncMsg>,
}

impl Syncer {
    fn start(wal: PathBuf) -> Result<Self, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || run_syncer(&wal, &rx))
            .map_err(|e| StoreError::Commit(format!("cannot start the WAL syncer: {e}")))?;
        Ok(Self { tx })
    }

    /// Called right after a COMMIT returned: the group's callers hear back after the next flush.
    fn flush_then_answer(&self, finishes: Vec<Finish>) {
        if let Err(std::sync::mpsc::SendError(SyncMsg::Committed(finishes))) =
            self.tx.send(SyncMsg::Committed(finishes))
        {
            for finish in finishes {
                finish(Err(StoreError::Commit("the WAL syncer stopped".into())));
            }
        }
    }

    /// Returns once every group handed over so far is flushed and answered.
    async fn finish(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(SyncMsg::Done(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn run_syncer(wal: &Path, rx: &std::sync::mpsc::Receiver<SyncMsg>) {
    let mut file: Option<(std::fs::File, u64)> = None;
    let mut poisoned: Option<String> = None;
    while let Ok(first) = rx.recv() {
        // Everything handed over until now is covered by one flush.
        let mut groups = Vec::new();
        let mut done = Vec::new();
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                SyncMsg::Committed(g) => groups.push(g),
                SyncMsg::Done(ack) => done.push(ack),
            }
        }
        if !groups.is_empty()
            && poisoned.is_none()
            && let Err(e) = flush_wal(wal, &mut file)
        {
            tracing::error!(error = %e, wal = %wal.display(), "cannot flush the WAL: no write is acknowledged from now on; restart the server");
            poisoned = Some(e.to_string());
        }
        for finish in groups.into_iter().flatten() {
            finish(match &poisoned {
                None => Ok(()),
                Some(e) => Err(StoreError::Commit(format!("the WAL could not be flushed to disk: {e}"))),
            });
        }
        for ack in done {
            let _ = ack.send(());
        }
    }
}

/// `fdatasync` of the file at `wal`, reopening it (and flushing its directory) when the path
/// names another file than the one held.
fn flush_wal(wal: &Path, held: &mut Option<(std::fs::File, u64)>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let current = std::fs::metadata(wal)?.ino();
    if held.as_ref().is_none_or(|(_, ino)| *ino != current) {
        let f = std::fs::File::open(wal)?;
        let ino = f.metadata()?.ino();
        if let Some(dir) = wal.parent() {
            std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all()?;
        }
        *held = Some((f, ino));
    }
    match held {
        Some((f, _)) => f.sync_data(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_binds_numbered_parameters_by_number() {
        use crate::sql::{Db as _, Kind, Value};
        let dir = tempfile::tempdir().expect("temp dir");
        let mut w = Sqlite::connect(&dir.path().join("db")).await.expect("open");
        w.exec_script("CREATE TABLE t (a TEXT, b INTEGER, c REAL, d BLOB)").await.expect("create");
        // Numbered out of order and reused, as the shared SQL does; a NULL; RETURNING through exec.
        let n = w
            .exec(
                "INSERT INTO t (a, b, c, d) VALUES ($2, $1, $3, $4), ($2, $1, NULL, NULL) RETURNING b",
                vec![Value::Int(7), Value::Text("x".into()), Value::Null(Kind::Real), Value::Blob(vec![1, 2])],
            )
            .await
            .expect("insert");
        assert_eq!(n, 2);
        let rows =
            w.query("SELECT a, b, c, d FROM t WHERE b = ? ORDER BY rowid", vec![Value::Int(7)]).await.expect("query");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text(0).expect("a"), "x");
        assert_eq!(rows[0].int(1).expect("b"), 7);
        assert_eq!(rows[0].opt_real(2).expect("c"), None);
        assert_eq!(rows[0].blob(3).expect("d"), vec![1, 2]);
        assert!(w.exec("INSERT INTO nope VALUES (1)", vec![]).await.is_err(), "an error, not a panic");
    }

    #[tokio::test]
    async fn after_the_writer_finishes_a_checkpoint_the_wal_starts_over() {
        use crate::sql::Db as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        let mut w = Sqlite::connect(&path).await.expect("open");
        w.exec_script("CREATE TABLE t (v BLOB)").await.expect("create");
        let other = rusqlite::Connection::open(&path).expect("checkpointer connection");
        let write = |w: &mut Writer| w.conn().execute("INSERT INTO t VALUES (zeroblob(20000))", []).expect("insert");
        for _ in 0..20 {
            write(&mut w);
        }
        let wal_len = || std::fs::metadata(wal_path(&path)).expect("wal").len();
        // A checkpoint copies only what every reader can already see: a reader that began before
        // the last write stands for the writes a checkpoint misses while it runs.
        let reader = rusqlite::Connection::open(&path).expect("reader connection");
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").expect("read");
        write(&mut w);
        let (_, log, copied) = checkpoint(&other).expect("checkpoint");
        assert!(copied < log, "the checkpointer copied what the reader can see ({copied} of {log} frames)");
        reader.execute_batch("COMMIT").expect("end the read");
        // With frames not yet copied, the WAL grows at its end.
        let before = wal_len();
        write(&mut w);
        assert!(wal_len() > before, "the WAL grew");
        // Once the writer has copied the rest, its next transaction writes the WAL from its start.
        w.finish_checkpoint();
        let before = wal_len();
        write(&mut w);
        assert_eq!(wal_len(), before, "written over its start, not appended");
        let (_, restarted, _) = checkpoint(&other).expect("checkpoint");
        assert!(restarted < log / 4, "the WAL started over: {restarted} frames, {log} before");
    }

    #[test]
    fn the_syncer_flushes_the_file_the_wal_path_names_now() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = dir.path().join("db-wal");
        let mut held = None;
        assert!(flush_wal(&wal, &mut held).is_err(), "a missing WAL is an error, never a silent success");
        std::fs::write(&wal, b"first").expect("write");
        flush_wal(&wal, &mut held).expect("flush");
        let first = held.as_ref().map(|(_, ino)| *ino);
        assert_eq!(first, Some(std::fs::metadata(&wal).expect("stat").ino()));
        // Another file now has the name (SQLite deleted and recreated the WAL): it is reopened.
        let other = dir.path().join("other");
        std::fs::write(&other, b"second").expect("write");
        std::fs::rename(&other, &wal).expect("rename");
        flush_wal(&wal, &mut held).expect("flush");
        let second = held.as_ref().map(|(_, ino)| *ino);
        assert_ne!(first, second);
        assert_eq!(second, Some(std::fs::metadata(&wal).expect("stat").ino()));
    }
}
