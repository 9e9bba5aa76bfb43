//! The embedded SQLite backend: WAL, one writer with pipelined group commit.
//!
//! All writes go through a single task that owns the only write connection. It takes every
//! write queued at that moment, runs each in its own savepoint inside one `BEGIN IMMEDIATE`
//! transaction, and commits once. A write's caller hears back only once that commit is durable,
//! so an acknowledged write survives a crash or a power cut.
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
//! Reads use a separate pool.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
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

type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Step> + Send>;

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

impl Sqlite {
    /// Opens (creating if needed) the database file: the connection that becomes the writer.
    pub async fn connect(path: &Path) -> Result<SqliteConnection, StoreError> {
        // The writer keeps the hot pages of the device-plane indexes in memory (64 MiB), and lets
        // the WAL grow to ~40 MiB before copying it back: index pages that every group commit
        // touches are then written back once per checkpoint instead of once per few commits.
        Ok(options(path)?
            .pragma("cache_size", "-65536")
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "memory")
            .connect()
            .await?)
    }

    /// Starts the writer on `conn` (already initialised) and opens the read pool.
    pub async fn start(path: &Path, mut conn: SqliteConnection) -> Result<Self, StoreError> {
        // From here on the syncer, not the commit, makes each group durable (module docs).
        exec(&mut conn, "PRAGMA synchronous = NORMAL").await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options(path)?.read_only(true))
            .await?;
        let (writer, rx) = mpsc::channel(QUEUE);
        let syncer = Syncer::start(wal_path(path))?;
        tokio::spawn(run_writer(conn, rx, syncer));
        Ok(Self { writer, readers })
    }

    /// Runs `op` in the next group commit; returns once the group is durable.
    pub async fn write<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<R, StoreError>> + Send + 'static,
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

async fn run_writer(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Msg>, syncer: Syncer) {
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
    }
    // Everything committed is flushed and answered before the connection closes.
    syncer.finish().await;
    let _ = conn.close().await;
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::Executor::execute(&mut *conn, sql).await?;
    Ok(())
}

async fn commit_group(conn: &mut SqliteConnection, jobs: Vec<Job>, syncer: &Syncer) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
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
                if let Err(e) = exec(conn, "ROLLBACK").await {
                    tracing::error!(error = %e, "cannot roll back a failed write");
                }
                (step.finish)(Ok(()));
                return;
            }
            finishes.push(step.finish);
            continue;
        }
        let step = match exec(conn, "SAVEPOINT job").await {
            Ok(()) => job(conn).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot open a savepoint");
                drop(job);
                continue;
            }
        };
        let end = if step.succeeded { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = exec(conn, end).await {
            tracing::error!(error = %e, "savepoint failed");
        }
        finishes.push(step.finish);
    }
    match exec(conn, "COMMIT").await {
        Ok(()) => syncer.flush_then_answer(finishes),
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let _ = exec(conn, "ROLLBACK").await;
            let e = e.to_string();
            for finish in finishes {
                finish(Err(StoreError::Commit(e.clone())));
            }
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
