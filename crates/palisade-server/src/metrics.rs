//! Prometheus metrics: HTTP requests and latency, storage operation timings, auth failures.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/devices/{id}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// The permission lacking, `unauthenticated`, `csrf`, or a restriction.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub op: &'static str,
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub store_seconds: Family<StoreLabels, Histogram, fn() -> Histogram>,
    pub auth_failures: Counter,
    pub denials: Family<DenialLabels, Counter>,
    pub logins: Family<LoginLabels, Counter>,
    /// Live MQTT sessions (set when metrics are rendered).
    pub mqtt_sessions: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub outcome: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let store_seconds =
            Family::<StoreLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let auth_failures = Counter::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", request_seconds.clone());
        registry.register("store_operation_duration_seconds", "Storage operation latency", store_seconds.clone());
        registry.register(
            "api_auth_failures",
            "Requests refused for a missing or invalid API key",
            auth_failures.clone(),
        );
        let denials = Family::<DenialLabels, Counter>::default();
        registry.register("access_denials", "Requests refused by access policy", denials.clone());
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "Sign-in attempts by outcome", logins.clone());
        let mqtt_sessions = Gauge::default();
        registry.register("mqtt_sessions", "Live device MQTT sessions", mqtt_sessions.clone());
        Self { registry, requests, request_seconds, store_seconds, auth_failures, denials, logins, mqtt_sessions }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

impl palisade_store::StoreObserver for Metrics {
    fn observe(&self, op: &'static str, elapsed: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.store_seconds.get_or_create(&StoreLabels { op, outcome }).observe(elapsed.as_secs_f64());
    }
}
