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
    /// Alerts raised by severity, new or repeated.
    pub alerts: Family<AlertLabels, Counter>,
    /// Notification delivery attempts by channel kind and outcome.
    pub notify_deliveries: Family<DeliveryLabels, Counter>,
    /// Time from a notice being queued to its delivery, by channel kind.
    pub notify_latency: Family<DeliveryLabels, Histogram, fn() -> Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `webhook`, `http_template` or `syslog`.
    pub kind: &'static str,
    /// `delivered`, `retry` or `dead`.
    pub outcome: &'static str,
}

fn delivery_histogram() -> Histogram {
    // 1 ms … ~35 min (retries included)
    Histogram::new(exponential_buckets(0.001, 2.0, 22))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub severity: String,
    /// `opened` (a new alert) or `repeated`.
    pub kind: &'static str,
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
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register("alerts_raised", "Alerts raised by severity (kind: opened or repeated)", alerts.clone());
        let notify_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "notify_deliveries",
            "Notification delivery attempts by channel kind and outcome",
            notify_deliveries.clone(),
        );
        let notify_latency =
            Family::<DeliveryLabels, Histogram, fn() -> Histogram>::new_with_constructor(delivery_histogram);
        registry.register(
            "notify_delivery_seconds",
            "Time from a notice being queued to its delivery",
            notify_latency.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            store_seconds,
            auth_failures,
            denials,
            logins,
            mqtt_sessions,
            alerts,
            notify_deliveries,
            notify_latency,
        }
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
