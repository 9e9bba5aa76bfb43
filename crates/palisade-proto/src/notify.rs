//! Notification channels and deliveries on the wire.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/channels`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelCreate {
    /// Unique; 1–64 characters.
    pub name: String,
    /// `webhook`, `http_template`, `syslog` or `email`.
    pub kind: String,
    /// Per kind: [`WebhookConfig`], [`HttpTemplateConfig`], [`SyslogConfig`] or [`EmailConfig`].
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// `http_template`: a provider credential, referenced as `{{secret}}` in the URL or header
    /// values; `email`: the SMTP password of `config.username`. Stored sealed and never shown again. (A webhook's signing secret is
    /// generated and shown once in the answer.)
    pub secret: Option<String>,
    /// The least severe notice the channel receives: `critical`, `high`, `medium`, `low` or
    /// `info` (default).
    pub min_severity: Option<String>,
    /// Device groups whose notices it receives; empty (default) = every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default true: receives notices routed by `min_severity` and `groups`. False: only the
    /// escalation tiers that name it (an on-call pager hears only of what nobody acknowledged).
    pub routed: Option<bool>,
}

// Every kind also takes `timeout_ms`, `retry_base_ms`, `max_attempts` and `concurrency`.

/// `kind = "webhook"`: the notice's JSON POSTed to `url`, signed per Standard Webhooks
/// (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…`; `http://` only to a loopback address.
    pub url: Option<String>,
    /// PEM file of the CAs to trust instead of the system's roots.
    pub ca_file: Option<String>,
    /// Limit of one attempt (connect, TLS, request, answer), 100–60000 ms; default 5000.
    pub timeout_ms: Option<u64>,
    /// First wait after a failure, 10 ms–1 h; default 1000. Doubles each time (with jitter).
    pub retry_base_ms: Option<u64>,
    /// Attempts before the delivery is dead-lettered, 1–50; default 8.
    pub max_attempts: Option<u32>,
    /// Deliveries to this channel in flight at once, 1–64; default 4.
    pub concurrency: Option<u32>,
}

/// `kind = "http_template"`: a templated request for SMS and chat providers. Placeholders:
/// `{{alert.id}}`, `{{alert.severity}}`, `{{alert.device_id}}`, `{{alert.title}}`, `{{alert.detail}}`
/// (from the notice's `data`) and `{{event}}` in the body (JSON-escaped when the content type is
/// JSON, form-encoded when it is `application/x-www-form-urlencoded`); `{{secret}}` in the URL and
/// header values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTemplateConfig {
    /// `POST` (default), `PUT`, `PATCH` or `GET`.
    pub method: Option<String>,
    /// `https://…`; `http://` only to a loopback address.
    pub url: Option<String>,
    /// Request headers. `Content-Type` defaults to `application/json`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body template (at most 64 KiB).
    pub body: Option<String>,
    /// PEM file of the CAs to trust instead of the system's roots.
    pub ca_file: Option<String>,
    /// Limit of one attempt (connect, TLS, request, answer), 100–60000 ms; default 5000.
    pub timeout_ms: Option<u64>,
    /// First wait after a failure, 10 ms–1 h; default 1000. Doubles each time (with jitter).
    pub retry_base_ms: Option<u64>,
    /// Attempts before the delivery is dead-lettered, 1–50; default 8.
    pub max_attempts: Option<u32>,
    /// Deliveries to this channel in flight at once, 1–64; default 4.
    pub concurrency: Option<u32>,
}

/// `kind = "syslog"`: one RFC 5424 message per notice over TCP with octet-counting framing
/// (RFC 6587), over TLS 1.2+ unless `tls` is false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub host: Option<String>,
    /// Default 6514 with TLS, 601 without.
    pub port: Option<u16>,
    /// Default true.
    pub tls: Option<bool>,
    /// PEM file of the CAs to trust instead of the system's roots (TLS).
    pub ca_file: Option<String>,
    /// The name the server's certificate must carry; default `host`.
    pub server_name: Option<String>,
    /// `cef` (default: ArcSight CEF in the message) or `json` (the notice's JSON).
    pub format: Option<String>,
    /// Syslog facility 0–23; default 10 (security/authorization, `authpriv`).
    pub facility: Option<u8>,
    /// The HOSTNAME field; default this machine's host name.
    pub hostname: Option<String>,
    /// Limit of one attempt (connect, TLS, request, answer), 100–60000 ms; default 5000.
    pub timeout_ms: Option<u64>,
    /// First wait after a failure, 10 ms–1 h; default 1000. Doubles each time (with jitter).
    pub retry_base_ms: Option<u64>,
    /// Attempts before the delivery is dead-lettered, 1–50; default 8.
    pub max_attempts: Option<u32>,
    /// Deliveries to this channel in flight at once, 1–64; default 4.
    pub concurrency: Option<u32>,
}

/// `kind = "email"`: one plain-text mail per notice over SMTP (RFC 5321), upgraded with STARTTLS
/// to TLS 1.2+ (the server's certificate verified for `host`) unless `starttls` is false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The mail server (submission or relay).
    pub host: Option<String>,
    /// Default 587.
    pub port: Option<u16>,
    /// The sender address (`alerts@example.com`).
    pub from: Option<String>,
    /// 1–50 recipient addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// Default true: the server must offer STARTTLS, or nothing is sent. False (no TLS, no
    /// `username`) only to a loopback host.
    pub starttls: Option<bool>,
    /// PEM file of the CAs to trust instead of the system's roots (STARTTLS).
    pub ca_file: Option<String>,
    /// Log in with AUTH PLAIN as this user (after STARTTLS only); the channel's `secret` is the
    /// password.
    pub username: Option<String>,
    /// Limit of one attempt (connect, the whole SMTP exchange), 100–60000 ms; default 5000.
    pub timeout_ms: Option<u64>,
    /// First wait after a failure, 10 ms–1 h; default 1000. Doubles each time (with jitter).
    pub retry_base_ms: Option<u64>,
    /// Attempts before the delivery is dead-lettered, 1–50; default 8.
    pub max_attempts: Option<u32>,
    /// Deliveries to this channel in flight at once, 1–64; default 4.
    pub concurrency: Option<u32>,
}

/// A channel. `secret` appears once, in the answer to its creation (webhooks).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// As given, with header values masked.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub min_severity: String,
    pub groups: Vec<String>,
    pub enabled: bool,
    /// False: only escalation tiers that name it.
    pub routed: bool,
    /// Whether a secret is stored (never shown after creation).
    pub has_secret: bool,
    pub created_at: String,
    /// The webhook signing secret (`whsec_…`): shown only now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `POST /api/v1/channels/{id}/test`: what the test notice says (all optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelTest {
    /// Default `info`.
    pub severity: Option<String>,
    pub title: Option<String>,
    pub detail: Option<String>,
    pub device_id: Option<String>,
}

/// One notice on its way to one channel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id`: the same on every attempt.
    pub id: String,
    pub channel_id: String,
    pub channel_name: String,
    pub alert_id: String,
    pub event: String,
    pub severity: String,
    pub device_id: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: i64,
    /// When a pending delivery is next tried (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The JSON event delivered.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}
