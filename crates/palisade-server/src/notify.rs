//! Notifications: the worker that drains the store's delivery outbox to webhooks (signed per
//! Standard Webhooks), templated HTTP requests, syslog and mail (SMTP), retrying with backoff until a
//! delivery is delivered or dead-lettered.
//!
//! Deliveries are queued in the store by the write that raised the notice, so none is lost to a
//! crash: the worker starts by taking every pending one, and is woken ([`Notifier::wake`]) after
//! each write that queued more, so a fresh notice goes out at once. Otherwise it sleeps until the
//! next retry falls due. Delivery is at least once: a delivery interrupted by a crash is sent
//! again, with the same `webhook-id`, for the receiver to deduplicate. One worker per server; two
//! servers on one PostgreSQL database could both send a delivery that falls due.

mod channel;
mod email;
mod http;
mod syslog;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use palisade_core::InvalidField;
use palisade_store::Store;
use palisade_store::notify::{ChannelSecret, Delivery, DueDelivery, Outcome};
use tokio::sync::{Notify, OnceCell, watch};
use tokio::task::JoinSet;

pub use channel::{ChannelSpec, masked, parse as parse_channel};
pub use http::{new_webhook_secret, signature};

use crate::metrics::{DeliveryLabels, Metrics};
use crate::now_ms;
use channel::Target;

/// Wakes the delivery worker. Cheap to clone; all clones wake the same worker.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    wake: Arc<Notify>,
}

impl Notifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the worker that deliveries may be due now: call it after a write that queued some.
    /// A wake while the worker is busy is remembered, never lost.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Deliveries in flight at once, across channels.
const MAX_IN_FLIGHT: usize = 512;
/// Due deliveries read per channel per pass (more than any channel's concurrency).
const DUE_PER_CHANNEL: usize = 128;
/// How long delivered deliveries are kept.
const KEEP_DELIVERED_MS: i64 = 30 * 24 * 3_600_000;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: u64 = 6 * 3_600_000;
/// After a storage error, the worker tries again this much later.
const STORE_RETRY_MS: i64 = 1000;

/// The wait before the next attempt after `attempts_made` failed ones: `base · 2^(n-1)`, capped,
/// with "equal jitter" (half fixed, half drawn from `random`) so that many deliveries failing
/// together do not come back together.
pub fn backoff_ms(base_ms: u64, attempts_made: u32, random: u32) -> i64 {
    let exponent = attempts_made.saturating_sub(1).min(40);
    let full = base_ms.saturating_mul(1u64 << exponent).min(MAX_BACKOFF_MS);
    let half = full / 2;
    let jitter = u64::from(random) % (full - half + 1);
    i64::try_from(half + jitter).unwrap_or(i64::MAX)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = palisade_store::sealed::random(&mut b);
    u32::from_le_bytes(b)
}

/// What every attempt shares.
struct Worker {
    store: Store,
    metrics: Arc<Metrics>,
    /// TLS client configuration trusting the system's roots, loaded on first use.
    system_roots: OnceCell<Arc<rustls::ClientConfig>>,
    /// This machine's name, for syslog's HOSTNAME.
    hostname: String,
}

fn tls_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Worker {
    /// The TLS client configuration: the CAs of `ca_file`, or the system's roots.
    async fn tls(&self, ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
        use rustls::pki_types::pem::PemObject as _;
        if let Some(path) = ca_file {
            let pem = tokio::fs::read(path).await.map_err(|e| format!("cannot read the CA file {path}: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("CA file {path}: {e}"))?;
                roots.add(cert).map_err(|e| format!("CA file {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("the CA file {path} holds no certificate"));
            }
            return tls_config(roots);
        }
        self.system_roots
            .get_or_try_init(|| async {
                let loaded = tokio::task::spawn_blocking(rustls_native_certs::load_native_certs)
                    .await
                    .map_err(|e| format!("cannot load the system's trusted roots: {e}"))?;
                let mut roots = rustls::RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    return Err("the system has no trusted root certificates; set ca_file".to_owned());
                }
                tls_config(roots)
            })
            .await
            .cloned()
    }

    /// One attempt: Ok when the receiver took it.
    async fn deliver(
        &self,
        spec: &ChannelSpec,
        delivery: &Delivery,
        secret: Option<&ChannelSecret>,
    ) -> Result<(), String> {
        match &spec.target {
            Target::Webhook(w) => {
                let tls = if w.url.https { Some(self.tls(spec.ca_file()).await?) } else { None };
                let request = http::webhook(w, delivery, secret, now_ms() / 1000)?;
                http::send(request, tls).await.map(drop)
            }
            Target::Template(t) => {
                let tls = if t.https { Some(self.tls(spec.ca_file()).await?) } else { None };
                http::send(http::templated(t, delivery, secret)?, tls).await.map(drop)
            }
            Target::Syslog(s) => {
                let tls = if s.tls { Some(self.tls(spec.ca_file()).await?) } else { None };
                let at = crate::api::convert::rfc3339(now_ms());
                let message = syslog::rfc5424(s, delivery, &at, &self.hostname, std::process::id());
                syslog::send(s, &syslog::frame(&message), tls).await
            }
            Target::Email(e) => {
                let tls = if e.starttls { Some(self.tls(spec.ca_file()).await?) } else { None };
                email::send(e, secret, &email::message(e, delivery, now_ms()), tls).await
            }
        }
    }

    /// Attempts one delivery and records how it went.
    async fn attempt(self: Arc<Self>, due: DueDelivery, spec: Result<ChannelSpec, InvalidField>) {
        let DueDelivery { delivery, channel, secret } = due;
        let kind = channel.kind.as_str();
        let attempts = u32::try_from(delivery.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        let result = match &spec {
            Err(e) => Err((format!("the channel's configuration is not valid: {e}"), true)),
            Ok(spec) => {
                match tokio::time::timeout(spec.retry.timeout, self.deliver(spec, &delivery, secret.as_ref())).await {
                    Ok(r) => r.map_err(|e| (e, false)),
                    Err(_) => Err((format!("no answer within {} ms", spec.retry.timeout.as_millis()), false)),
                }
            }
        };
        let now = now_ms();
        let outcome = match (result, &spec) {
            (Ok(()), _) => Outcome::Delivered,
            (Err((error, false)), Ok(spec)) if attempts < spec.retry.max_attempts => {
                Outcome::Retry { error, next_attempt_ms: now + backoff_ms(spec.retry.base_ms, attempts, random_u32()) }
            }
            (Err((error, _)), _) => Outcome::Dead { error },
        };
        let label = match &outcome {
            Outcome::Delivered => {
                #[allow(clippy::cast_precision_loss)]
                let waited = (now - delivery.created_ms).max(0) as f64 / 1000.0;
                self.metrics
                    .notify_latency
                    .get_or_create(&DeliveryLabels { kind, outcome: "delivered" })
                    .observe(waited);
                tracing::debug!(delivery = %delivery.id, channel = %channel.name, attempts, "delivered");
                "delivered"
            }
            Outcome::Retry { error, next_attempt_ms } => {
                tracing::info!(delivery = %delivery.id, channel = %channel.name, attempts, %error,
                    retry_in_ms = next_attempt_ms - now, "delivery failed; will retry");
                "retry"
            }
            Outcome::Dead { error } => {
                tracing::warn!(delivery = %delivery.id, channel = %channel.name, attempts, %error,
                    "delivery failed for the last time; dead-lettered");
                "dead"
            }
        };
        self.metrics.notify_deliveries.get_or_create(&DeliveryLabels { kind, outcome: label }).inc();
        if let Err(e) = self.store.delivery_done(delivery.id.clone(), outcome, now).await {
            // It stays pending and goes out again (at least once); holding its place in flight a
            // while keeps a failing store from turning into a stream of repeats.
            tracing::error!(delivery = %delivery.id, error = %e, "cannot record a delivery attempt");
            tokio::time::sleep(Duration::from_millis(STORE_RETRY_MS.unsigned_abs())).await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// What is in flight: by task, its delivery and channel; counts per channel.
#[derive(Default)]
struct InFlight {
    tasks: HashMap<tokio::task::Id, (String, String)>,
    deliveries: HashSet<String>,
    per_channel: HashMap<String, u32>,
}

impl InFlight {
    fn finished(&mut self, task: tokio::task::Id) {
        if let Some((delivery, channel)) = self.tasks.remove(&task) {
            self.deliveries.remove(&delivery);
            if let Some(n) = self.per_channel.get_mut(&channel) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_channel.remove(&channel);
                }
            }
        }
    }
}

/// The delivery worker: runs until `shutdown`. Attempts still in flight then are abandoned; their
/// deliveries stay pending and go out after the next start.
pub async fn run(store: Store, metrics: Arc<Metrics>, notifier: Notifier, mut shutdown: watch::Receiver<bool>) {
    let worker = Arc::new(Worker { store, metrics, system_roots: OnceCell::new(), hostname: hostname() });
    let mut tasks = JoinSet::new();
    let mut in_flight = InFlight::default();
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(done) = tasks.try_join_next_with_id() {
            in_flight.finished(done.map_or_else(|e| e.id(), |(id, ())| id));
        }
        let now = now_ms();
        let mut next = None;
        match worker.store.due_deliveries(now, DUE_PER_CHANNEL).await {
            Ok(due) => {
                for d in due {
                    if in_flight.deliveries.len() >= MAX_IN_FLIGHT {
                        break;
                    }
                    if in_flight.deliveries.contains(&d.delivery.id) {
                        continue;
                    }
                    let spec = channel::parse(d.channel.kind, &d.channel.config, d.secret.is_some());
                    let limit = spec.as_ref().map_or(1, |s| s.retry.concurrency);
                    let busy = in_flight.per_channel.entry(d.channel.id.clone()).or_default();
                    if *busy >= limit {
                        continue;
                    }
                    *busy += 1;
                    let ids = (d.delivery.id.clone(), d.channel.id.clone());
                    in_flight.deliveries.insert(ids.0.clone());
                    let handle = tasks.spawn(worker.clone().attempt(d, spec));
                    in_flight.tasks.insert(handle.id(), ids);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the due deliveries");
                next = Some(now + STORE_RETRY_MS);
            }
        }
        match worker.store.next_delivery_due(now).await {
            Ok(Some(at)) => next = Some(next.map_or(at, |n: i64| n.min(at))),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read when the next delivery is due");
                next = Some(now + STORE_RETRY_MS);
            }
        }
        let wait = next.map_or(3_600_000, |at| u64::try_from(at - now_ms()).unwrap_or(0).min(3_600_000));
        tokio::select! {
            _ = shutdown.changed() => break,
            () = notifier.wake.notified() => {}
            Some(done) = tasks.join_next_with_id() => in_flight.finished(done.map_or_else(|e| e.id(), |(id, ())| id)),
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = prune.tick() => {
                match worker.store.prune_deliveries(now_ms() - KEEP_DELIVERED_MS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deliveries = n, "forgot old delivered notifications"),
                    Err(e) => tracing::error!(error = %e, "cannot prune delivered notifications"),
                }
            }
        }
    }
    tasks.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for (n, full) in [(1, 1000), (2, 2000), (3, 4000), (8, 128_000)] {
            assert_eq!(backoff_ms(1000, n, 0), full / 2, "attempt {n}, least");
            assert_eq!(backoff_ms(1000, n, u32::try_from(full / 2).unwrap()), full, "attempt {n}, most");
            for r in [1, 77, 999_999, u32::MAX] {
                let b = backoff_ms(1000, n, r);
                assert!((full / 2..=full).contains(&b), "{b}");
            }
        }
        assert!(backoff_ms(3_600_000, 50, u32::MAX) <= i64::try_from(MAX_BACKOFF_MS).unwrap());
        assert_eq!(backoff_ms(10, 0, 0), 5);
    }

    #[tokio::test]
    async fn a_wake_is_not_lost_while_nobody_waits() {
        let n = Notifier::new();
        n.clone().wake();
        tokio::time::timeout(Duration::from_secs(1), n.wake.notified()).await.unwrap();
    }
}
