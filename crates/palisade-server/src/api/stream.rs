//! Streamed response bodies: a producer task pages through the store and sends chunks, so an
//! export of any size never sits whole in memory.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use serde::Serialize;
use tokio::sync::mpsc;

/// Chunks in flight between producer and client.
const BUFFER: usize = 16;

#[derive(Debug)]
pub struct Sender(mpsc::Sender<Result<Bytes, io::Error>>);

/// The client went away; the producer stops.
#[derive(Debug)]
pub struct Gone;

impl Sender {
    pub async fn send(&self, chunk: Vec<u8>) -> Result<(), Gone> {
        self.0.send(Ok(Bytes::from(chunk))).await.map_err(|_| Gone)
    }

    pub async fn send_csv_row<S: AsRef<[u8]>>(&self, fields: &[S]) -> Result<(), Gone> {
        let mut w = csv::Writer::from_writer(Vec::new());
        if w.write_record(fields).is_err() {
            return Err(Gone);
        }
        self.send(w.into_inner().map_err(|_| Gone)?).await
    }

    pub async fn send_json_line<T: Serialize>(&self, value: &T) -> Result<(), Gone> {
        let mut line = serde_json::to_vec(value).map_err(|_| Gone)?;
        line.push(b'\n');
        self.send(line).await
    }
}

/// Logs a storage failure mid-stream; the body is cut short so the client sees an error.
pub fn failed(e: palisade_store::StoreError) -> Gone {
    tracing::error!(error = %e, "export failed");
    Gone
}

struct Chunks(mpsc::Receiver<Result<Bytes, io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A body fed by `producer`. If the producer fails, the body ends with an error (the client
/// sees a truncated transfer, never a silently short file).
pub fn produce<F, Fut>(producer: F) -> Body
where
    F: FnOnce(Sender) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Gone>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    let errors = tx.clone();
    tokio::spawn(async move {
        if producer(Sender(tx)).await.is_err() {
            let _ = errors.send(Err(io::Error::other("export interrupted"))).await;
        }
    });
    Body::from_stream(Chunks(rx))
}
