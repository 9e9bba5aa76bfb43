//! The embedded SQLite backend: WAL, `synchronous=FULL`, one writer with group commit.
//!
//! All writes go through a single task that owns the only write connection. It takes every
//! write queued at that moment, runs each in its own savepoint inside one `BEGIN IMMEDIATE`
//! transaction, and commits once: one fsync for the whole group. A write's caller hears back
//! only after that commit, so an acknowledged write is durable. Reads use a separate pool.

use std::path::Path;
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
    pub async fn start(path: &Path, conn: SqliteConnection) -> Result<Self, StoreError> {
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options(path)?.read_only(true))
            .await?;
        let (writer, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run_writer(conn, rx));
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

async fn run_writer(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Msg>) {
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
            commit_group(&mut conn, jobs).await;
        }
    }
    let _ = conn.close().await;
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::Executor::execute(&mut *conn, sql).await?;
    Ok(())
}

async fn commit_group(conn: &mut SqliteConnection, jobs: Vec<Job>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        let msg = e.to_string();
        tracing::error!(error = %msg, "cannot begin a write transaction");
        // Dropping a job drops its reply channel: its caller gets `StoreError::NotWritten`.
        drop(jobs);
        return;
    }
    let mut finishes = Vec::with_capacity(jobs.len());
    for job in jobs {
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
    let committed = match exec(conn, "COMMIT").await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let _ = exec(conn, "ROLLBACK").await;
            Err(e.to_string())
        }
    };
    for finish in finishes {
        finish(committed.clone().map_err(StoreError::Commit));
    }
}
