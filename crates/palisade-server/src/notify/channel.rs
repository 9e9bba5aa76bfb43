//! Channel definitions: the stored JSON configuration parsed into what a delivery needs, every
//! refusal naming its field (`config.url`, `secret`…). Pure: no I/O.

use std::net::IpAddr;
use std::time::Duration;

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use palisade_core::InvalidField;
use palisade_proto::notify::{EmailConfig, HttpTemplateConfig, SyslogConfig, WebhookConfig};
use palisade_store::notify::ChannelKind;
use serde_json::Value as Json;

/// How often and how long to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub timeout: Duration,
    pub base_ms: u64,
    pub max_attempts: u32,
    pub concurrency: u32,
}

fn bounded<T: PartialOrd + Copy + std::fmt::Display>(
    field: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, InvalidField> {
    match value {
        None => Ok(default),
        Some(v) if v >= min && v <= max => Ok(v),
        Some(v) => Err(InvalidField::new(format!("config.{field}"), format!("{v} is not between {min} and {max}"))),
    }
}

impl Retry {
    fn parse(
        timeout_ms: Option<u64>,
        retry_base_ms: Option<u64>,
        max_attempts: Option<u32>,
        concurrency: Option<u32>,
    ) -> Result<Self, InvalidField> {
        Ok(Self {
            timeout: Duration::from_millis(bounded("timeout_ms", timeout_ms, 5000, 100, 60_000)?),
            base_ms: bounded("retry_base_ms", retry_base_ms, 1000, 10, 3_600_000)?,
            max_attempts: bounded("max_attempts", max_attempts, 8, 1, 50)?,
            concurrency: bounded("concurrency", concurrency, 4, 1, 64)?,
        })
    }
}

/// An HTTP(S) URL we may send to: `https://`, or `http://` to a loopback address only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
}

impl HttpUrl {
    /// The Host header's value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (self.https, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses `url`; errors say why without repeating the URL (it may carry a secret).
pub fn parse_url(field: &str, url: &str) -> Result<HttpUrl, InvalidField> {
    let bad = |why: &str| InvalidField::new(field, why.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("must start with https:// (or http:// to a loopback address)")),
    };
    let authority = uri.authority().ok_or_else(|| bad("names no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry credentials; use the channel's secret"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(bad("names no host"));
    }
    if !https && !is_loopback(&host) {
        return Err(bad("plain http:// is allowed only to a loopback address; use https://"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path_and_query = uri.path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    Ok(HttpUrl { https, host, port, path_and_query })
}

/// One value a template can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    AlertId,
    Severity,
    DeviceId,
    Title,
    Detail,
    Event,
    Secret,
}

impl Var {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "alert.id" => Self::AlertId,
            "alert.severity" => Self::Severity,
            "alert.device_id" => Self::DeviceId,
            "alert.title" => Self::Title,
            "alert.detail" => Self::Detail,
            "event" => Self::Event,
            "secret" => Self::Secret,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed `{{…}}` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `text`, allowing only the variables `allowed` admits.
    pub fn parse(field: &str, text: &str, allowed: impl Fn(Var) -> bool) -> Result<Self, InvalidField> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let (lit, after) = rest.split_at(start);
            if !lit.is_empty() {
                pieces.push(Piece::Text(lit.to_owned()));
            }
            let after = after.get(2..).unwrap_or_default();
            let end = after.find("}}").ok_or_else(|| InvalidField::new(field, "a {{ is not closed by }}"))?;
            let name = after.get(..end).unwrap_or_default().trim();
            let var = Var::parse(name)
                .ok_or_else(|| InvalidField::new(field, format!("unknown placeholder {{{{{name:.40}}}}}")))?;
            if !allowed(var) {
                return Err(InvalidField::new(field, format!("{{{{{name}}}}} cannot be used here")));
            }
            pieces.push(Piece::Var(var));
            rest = after.get(end + 2..).unwrap_or_default();
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    pub fn uses(&self, var: Var) -> bool {
        self.0.contains(&Piece::Var(var))
    }

    /// Fills the template; `value` gives each variable's text, already escaped as needed.
    pub fn render(&self, mut value: impl FnMut(Var) -> String) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&value(*v)),
            }
        }
        out
    }
}

/// How a template's values are escaped, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON string.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    None,
}

#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: HttpUrl,
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TemplateSpec {
    pub method: hyper::Method,
    /// The URL template (may hold `{{secret}}` in its path or query).
    pub url: Template,
    pub https: bool,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Template,
    pub escape: Escape,
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    Cef,
    Json,
}

#[derive(Debug, Clone)]
pub struct SyslogSpec {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub ca_file: Option<String>,
    pub server_name: String,
    pub format: SyslogFormat,
    pub facility: u8,
    pub hostname: Option<String>,
}

/// A mail channel: where to connect, who sends, who receives.
#[derive(Debug, Clone)]
pub struct EmailSpec {
    pub host: String,
    pub port: u16,
    /// Upgrade with STARTTLS (required of the server); false only to a loopback host.
    pub starttls: bool,
    pub ca_file: Option<String>,
    /// A bare address (`local@domain`), checked.
    pub from: String,
    /// 1–[`MAX_RECIPIENTS`] bare addresses, checked.
    pub to: Vec<String>,
    /// AUTH PLAIN as this user (only with STARTTLS), the channel's secret the password.
    pub username: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Webhook(WebhookSpec),
    Template(TemplateSpec),
    Syslog(SyslogSpec),
    Email(EmailSpec),
}

/// A channel's configuration, parsed.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub target: Target,
    pub retry: Retry,
}

impl ChannelSpec {
    /// The CA file to trust instead of the system's roots, if any.
    pub fn ca_file(&self) -> Option<&str> {
        match &self.target {
            Target::Webhook(w) => w.ca_file.as_deref(),
            Target::Template(t) => t.ca_file.as_deref(),
            Target::Syslog(s) => s.ca_file.as_deref(),
            Target::Email(e) => e.ca_file.as_deref(),
        }
    }
}

fn config<T: serde::de::DeserializeOwned>(config: &Json) -> Result<T, InvalidField> {
    if !config.is_object() {
        return Err(InvalidField::new("config", "must be an object"));
    }
    serde_json::from_value(config.clone()).map_err(|e| InvalidField::new("config", e.to_string()))
}

fn required<'a>(field: &str, v: Option<&'a String>) -> Result<&'a str, InvalidField> {
    match v.map(|s| s.trim()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(InvalidField::new(field, "required")),
    }
}

fn ca_file(v: Option<String>) -> Result<Option<String>, InvalidField> {
    match v {
        Some(p) if p.trim().is_empty() || !p.starts_with('/') => {
            Err(InvalidField::new("config.ca_file", "must be an absolute path"))
        }
        other => Ok(other),
    }
}

/// Headers the client sets itself.
const RESERVED_HEADERS: [&str; 6] = ["host", "content-length", "transfer-encoding", "connection", "upgrade", "te"];
const MAX_BODY_TEMPLATE: usize = 64 * 1024;

/// Parses and checks a channel's configuration. `has_secret`: whether a secret comes with it.
pub fn parse(kind: ChannelKind, json: &Json, has_secret: bool) -> Result<ChannelSpec, InvalidField> {
    match kind {
        ChannelKind::Webhook => {
            let c: WebhookConfig = config(json)?;
            let retry = Retry::parse(c.timeout_ms, c.retry_base_ms, c.max_attempts, c.concurrency)?;
            let url = parse_url("config.url", required("config.url", c.url.as_ref())?)?;
            Ok(ChannelSpec { target: Target::Webhook(WebhookSpec { url, ca_file: ca_file(c.ca_file)? }), retry })
        }
        ChannelKind::HttpTemplate => {
            let c: HttpTemplateConfig = config(json)?;
            let retry = Retry::parse(c.timeout_ms, c.retry_base_ms, c.max_attempts, c.concurrency)?;
            template_spec(c, has_secret).map(|t| ChannelSpec { target: Target::Template(t), retry })
        }
        ChannelKind::Syslog => {
            let c: SyslogConfig = config(json)?;
            let retry = Retry::parse(c.timeout_ms, c.retry_base_ms, c.max_attempts, c.concurrency)?;
            syslog_spec(c).map(|s| ChannelSpec { target: Target::Syslog(s), retry })
        }
        ChannelKind::Email => {
            let c: EmailConfig = config(json)?;
            let retry = Retry::parse(c.timeout_ms, c.retry_base_ms, c.max_attempts, c.concurrency)?;
            email_spec(c, has_secret).map(|e| ChannelSpec { target: Target::Email(e), retry })
        }
    }
}

fn template_spec(c: HttpTemplateConfig, has_secret: bool) -> Result<TemplateSpec, InvalidField> {
    let method = match c.method.as_deref().unwrap_or("POST").to_ascii_uppercase().as_str() {
        "POST" => hyper::Method::POST,
        "PUT" => hyper::Method::PUT,
        "PATCH" => hyper::Method::PATCH,
        "GET" => hyper::Method::GET,
        other => {
            return Err(InvalidField::new("config.method", format!("{other:.20?} is not POST, PUT, PATCH or GET")));
        }
    };
    let raw_url = required("config.url", c.url.as_ref())?;
    let url = Template::parse("config.url", raw_url, |v| v == Var::Secret)?;
    // Checked with a stand-in for the secret, which may sit only in the path or query.
    let checked = parse_url("config.url", &url.render(|_| "SECRET".into()))?;
    if checked.host.contains("SECRET") {
        return Err(InvalidField::new("config.url", "{{secret}} may appear only in the path or query"));
    }
    let mut headers = Vec::with_capacity(c.headers.len());
    let mut escape = Escape::Json;
    let mut content_type = false;
    for (name, value) in &c.headers {
        let field = format!("config.headers.{name:.40}");
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidField::new(field.clone(), "not a valid header name"))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(InvalidField::new(field, "set by Palisade itself"));
        }
        let template = Template::parse(&field, value, |v| v == Var::Secret)?;
        HeaderValue::from_str(&template.render(|_| "x".into()))
            .map_err(|_| InvalidField::new(field.clone(), "not a valid header value"))?;
        if parsed == hyper::header::CONTENT_TYPE {
            content_type = true;
            let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            escape = if essence == "application/json" || essence.ends_with("+json") {
                Escape::Json
            } else if essence == "application/x-www-form-urlencoded" {
                Escape::Form
            } else {
                Escape::None
            };
        }
        headers.push((parsed, template));
    }
    if !content_type {
        headers.push((hyper::header::CONTENT_TYPE, Template(vec![Piece::Text("application/json".into())])));
    }
    let body_text = c.body.unwrap_or_default();
    if body_text.len() > MAX_BODY_TEMPLATE {
        return Err(InvalidField::new("config.body", format!("longer than {MAX_BODY_TEMPLATE} bytes")));
    }
    let body = Template::parse("config.body", &body_text, |v| v != Var::Secret)?;
    let uses_secret = url.uses(Var::Secret) || headers.iter().any(|(_, t)| t.uses(Var::Secret));
    if uses_secret && !has_secret {
        return Err(InvalidField::new("secret", "the template uses {{secret}}: give the secret"));
    }
    Ok(TemplateSpec { method, url, https: checked.https, headers, body, escape, ca_file: ca_file(c.ca_file)? })
}

fn syslog_spec(c: SyslogConfig) -> Result<SyslogSpec, InvalidField> {
    let host = required("config.host", c.host.as_ref())?.to_owned();
    if host.len() > 253 || host.chars().any(|ch| ch.is_whitespace() || ch.is_control() || "/@".contains(ch)) {
        return Err(InvalidField::new("config.host", "not a host name or address"));
    }
    let tls = c.tls.unwrap_or(true);
    let port = match c.port {
        Some(0) => return Err(InvalidField::new("config.port", "must not be 0")),
        Some(p) => p,
        None if tls => 6514,
        None => 601,
    };
    let server_name = c.server_name.clone().unwrap_or_else(|| host.clone());
    if tls && rustls::pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        return Err(InvalidField::new("config.server_name", "not a DNS name or IP address"));
    }
    let format = match c.format.as_deref().unwrap_or("cef") {
        "cef" => SyslogFormat::Cef,
        "json" => SyslogFormat::Json,
        other => return Err(InvalidField::new("config.format", format!("{other:.20?} is not cef or json"))),
    };
    let facility = bounded("facility", c.facility, 10, 0, 23)?;
    if let Some(h) = &c.hostname
        && (h.is_empty() || h.len() > 255 || !h.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(InvalidField::new("config.hostname", "1–255 printable ASCII characters without spaces"));
    }
    if !tls && (c.ca_file.is_some() || c.server_name.is_some()) {
        return Err(InvalidField::new("config.tls", "ca_file and server_name need tls"));
    }
    Ok(SyslogSpec {
        host,
        port,
        tls,
        ca_file: ca_file(c.ca_file)?,
        server_name,
        format,
        facility,
        hostname: c.hostname,
    })
}

/// Recipients of one mail channel, at most.
pub const MAX_RECIPIENTS: usize = 50;

/// A host to connect to: a DNS name or an IP address, without port or credentials.
fn host(field: &str, v: Option<&String>) -> Result<String, InvalidField> {
    let host = required(field, v)?.to_owned();
    if host.len() > 253 || host.chars().any(|ch| ch.is_whitespace() || ch.is_control() || "/@".contains(ch)) {
        return Err(InvalidField::new(field, "not a host name or address"));
    }
    Ok(host)
}

/// A bare mail address, `local@domain`: printable ASCII without spaces, quotes, angle brackets or
/// the other specials, so that it can go as it is into `MAIL FROM:<…>` and a header.
fn mail_address(field: &str, v: &str) -> Result<String, InvalidField> {
    let v = v.trim();
    let bad = || InvalidField::new(field, format!("{v:.60?} is not a plain address like alerts@example.com"));
    if v.is_empty() || v.len() > 254 || !v.bytes().all(|b| b.is_ascii_graphic() && !b"<>()[],;:\\\"".contains(&b)) {
        return Err(bad());
    }
    let (local, domain) = v.rsplit_once('@').ok_or_else(bad)?;
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-');
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !domain.split('.').all(label_ok)
        || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(bad());
    }
    Ok(v.to_owned())
}

fn email_spec(c: EmailConfig, has_secret: bool) -> Result<EmailSpec, InvalidField> {
    let host = host("config.host", c.host.as_ref())?;
    let starttls = c.starttls.unwrap_or(true);
    let port = match c.port {
        Some(0) => return Err(InvalidField::new("config.port", "must not be 0")),
        Some(p) => p,
        None => 587,
    };
    if starttls && rustls::pki_types::ServerName::try_from(host.as_str()).is_err() {
        return Err(InvalidField::new("config.host", "not a DNS name or IP address"));
    }
    if !starttls && !is_loopback(&host) {
        return Err(InvalidField::new(
            "config.starttls",
            "mail without STARTTLS may go only to a loopback host; it would cross the network in plaintext",
        ));
    }
    let from = mail_address("config.from", required("config.from", c.from.as_ref())?)?;
    if c.to.is_empty() || c.to.len() > MAX_RECIPIENTS {
        return Err(InvalidField::new("config.to", format!("give 1–{MAX_RECIPIENTS} addresses")));
    }
    let mut to = Vec::with_capacity(c.to.len());
    for address in &c.to {
        let address = mail_address("config.to", address)?;
        if !to.contains(&address) {
            to.push(address);
        }
    }
    let username = c.username.filter(|u| !u.is_empty());
    match (&username, has_secret) {
        (Some(u), _) if u.len() > 256 || u.chars().any(char::is_control) => {
            return Err(InvalidField::new("config.username", "at most 256 characters, no control characters"));
        }
        (Some(_), false) => return Err(InvalidField::new("secret", "give the SMTP password of config.username")),
        (None, true) => {
            return Err(InvalidField::new("config.username", "the secret is an SMTP password: give its user name"));
        }
        (Some(_), true) if !starttls => {
            return Err(InvalidField::new("config.starttls", "a password is sent only after STARTTLS"));
        }
        _ => {}
    }
    if !starttls && c.ca_file.is_some() {
        return Err(InvalidField::new("config.starttls", "ca_file needs starttls"));
    }
    Ok(EmailSpec { host, port, starttls, ca_file: ca_file(c.ca_file)?, from, to, username })
}

/// The configuration as shown back: header values masked (they may hold credentials).
pub fn masked(config: &Json) -> Json {
    let mut c = config.clone();
    if let Some(Json::Object(headers)) = c.get_mut("headers") {
        for (name, v) in headers.iter_mut() {
            if !name.eq_ignore_ascii_case("content-type") {
                *v = Json::String("***".into());
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(kind: ChannelKind, config: Json, has_secret: bool) -> String {
        parse(kind, &config, has_secret).unwrap_err().field
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        let u = parse_url("u", "https://hooks.example/a/b?c=d").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path_and_query.as_str()),
            (true, "hooks.example", 443, "/a/b?c=d")
        );
        assert_eq!(u.authority(), "hooks.example");
        let u = parse_url("u", "http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.https, u.port, u.path_and_query.as_str(), u.authority()),
            (false, 8080, "/", "127.0.0.1:8080".into())
        );
        assert_eq!(parse_url("u", "http://[::1]:9/x").unwrap().authority(), "[::1]:9");
        assert!(parse_url("u", "http://localhost/x").is_ok());
        for bad in ["http://hooks.example/x", "http://10.0.0.1/", "ftp://x/", "https://user:pw@x/", "nonsense", ""] {
            assert!(parse_url("u", bad).is_err(), "{bad}");
        }
        let e = parse_url("config.url", "http://hooks.example/secret-token").unwrap_err();
        assert!(e.reason.contains("loopback") && !e.reason.contains("secret-token"), "{e}");
    }

    #[test]
    fn refusals_name_the_field() {
        use ChannelKind::*;
        assert_eq!(field(Webhook, json!({}), false), "config.url");
        assert_eq!(field(Webhook, json!({"url": "http://example.com/"}), false), "config.url");
        assert_eq!(field(Webhook, json!({"url": "https://x/", "bogus": 1}), false), "config");
        assert_eq!(field(Webhook, json!({"url": "https://x/", "max_attempts": 0}), false), "config.max_attempts");
        assert_eq!(field(Webhook, json!({"url": "https://x/", "timeout_ms": 10}), false), "config.timeout_ms");
        assert_eq!(field(Webhook, json!([]), false), "config");
        assert_eq!(field(HttpTemplate, json!({"url": "https://x/", "body": "{{alert.nope}}"}), false), "config.body");
        assert_eq!(field(HttpTemplate, json!({"url": "https://x/", "body": "{{secret}}"}), true), "config.body");
        assert_eq!(field(HttpTemplate, json!({"url": "https://x/", "body": "{{event"}), false), "config.body");
        assert_eq!(field(HttpTemplate, json!({"url": "https://x/", "method": "TRACE"}), false), "config.method");
        assert_eq!(
            field(HttpTemplate, json!({"url": "https://x/", "headers": {"Authorization": "Bearer {{secret}}"}}), false),
            "secret"
        );
        assert_eq!(field(HttpTemplate, json!({"url": "https://{{secret}}.x/"}), true), "config.url");
        assert_eq!(
            field(HttpTemplate, json!({"url": "https://x/", "headers": {"Host": "y"}}), false),
            "config.headers.Host"
        );
        assert_eq!(
            field(HttpTemplate, json!({"url": "https://x/", "headers": {"X-A": "a\nb"}}), false),
            "config.headers.X-A"
        );
        assert_eq!(field(Syslog, json!({}), false), "config.host");
        assert_eq!(field(Syslog, json!({"host": "siem", "format": "leef"}), false), "config.format");
        assert_eq!(field(Syslog, json!({"host": "siem", "facility": 24}), false), "config.facility");
        assert_eq!(field(Syslog, json!({"host": "siem", "ca_file": "relative.pem"}), false), "config.ca_file");
        assert_eq!(field(Syslog, json!({"host": "siem", "tls": false, "ca_file": "/ca.pem"}), false), "config.tls");
        let mail = |extra: Json| {
            let mut c = json!({"host": "smtp.example", "from": "p@example.com", "to": ["ops@example.com"]});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        assert!(parse(Email, &mail(json!({})), false).is_ok());
        assert_eq!(field(Email, json!({"from": "p@example.com", "to": ["o@example.com"]}), false), "config.host");
        assert_eq!(field(Email, mail(json!({"to": []})), false), "config.to");
        assert_eq!(field(Email, json!({"host": "smtp.example", "from": "p@example.com"}), false), "config.to");
        let many: Vec<String> = (0..51).map(|i| format!("u{i}@example.com")).collect();
        assert_eq!(field(Email, mail(json!({"to": many})), false), "config.to");
        for bad in [
            "ops",
            "ops@",
            "@example.com",
            "a b@example.com",
            "<a@example.com>",
            "a@b@example.com",
            "a@example..com",
            "a@-x.com",
            "a@example.com\r\nRCPT TO:<b@example.com>",
            "é@example.com",
            "a\"@x.com",
        ] {
            assert_eq!(field(Email, mail(json!({"to": [bad]})), false), "config.to", "{bad}");
        }
        assert_eq!(field(Email, mail(json!({"from": "nobody"})), false), "config.from");
        assert_eq!(field(Email, mail(json!({"from": null})), false), "config.from");
        assert_eq!(field(Email, mail(json!({"starttls": false})), false), "config.starttls");
        assert_eq!(field(Email, mail(json!({"port": 0})), false), "config.port");
        assert_eq!(field(Email, mail(json!({"username": "u"})), false), "secret");
        assert_eq!(field(Email, mail(json!({})), true), "config.username");
        let plain = json!({"host": "127.0.0.1", "starttls": false, "username": "u"});
        assert_eq!(field(Email, mail(plain), true), "config.starttls", "no password over plaintext");
        assert_eq!(
            field(Email, mail(json!({"host": "127.0.0.1", "starttls": false, "ca_file": "/ca.pem"})), false),
            "config.starttls"
        );
        assert_eq!(field(Email, mail(json!({"ca_file": "ca.pem"})), false), "config.ca_file");
        assert_eq!(field(Email, mail(json!({"host": "smtp.example:25"})), false), "config.host");
    }

    #[test]
    fn email_defaults() {
        let config = json!({"host": "smtp.example", "from": "p@example.com", "to": ["a@example.com", "a@example.com"],
                            "username": "palisade"});
        let Target::Email(e) = parse(ChannelKind::Email, &config, true).unwrap().target else { panic!() };
        assert_eq!((e.port, e.starttls, e.to.len(), e.username.as_deref()), (587, true, 1, Some("palisade")));
        let local =
            json!({"host": "localhost", "port": 2525, "starttls": false, "from": "p@x.test", "to": ["o@x.test"]});
        let Target::Email(e) = parse(ChannelKind::Email, &local, false).unwrap().target else { panic!() };
        assert_eq!((e.port, e.starttls), (2525, false));
    }

    #[test]
    fn templates_fill_and_escape() {
        let c = json!({"url": "https://api.example/v1/{{secret}}/send", "body": "{\"text\": \"{{alert.title}}: {{alert.detail}}\", \"e\": \"{{event}}\"}",
                       "headers": {"Authorization": "Bearer {{secret}}"}});
        let spec = parse(ChannelKind::HttpTemplate, &c, true).unwrap();
        let Target::Template(t) = spec.target else { panic!() };
        assert_eq!((t.escape, t.method.as_str()), (Escape::Json, "POST"));
        assert!(t.url.uses(Var::Secret) && !t.body.uses(Var::Secret));
        assert_eq!(t.url.render(|_| "tok".into()), "https://api.example/v1/tok/send");
        assert_eq!(t.headers.len(), 2, "content type added");
        assert_eq!(
            spec.retry,
            Retry { timeout: Duration::from_secs(5), base_ms: 1000, max_attempts: 8, concurrency: 4 }
        );
        let form = json!({"url": "https://x/", "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": "Body={{alert.title}}"});
        let Target::Template(t) = parse(ChannelKind::HttpTemplate, &form, false).unwrap().target else { panic!() };
        assert_eq!((t.escape, t.headers.len()), (Escape::Form, 1));
        assert_eq!(Template::parse("b", "a{{ event }}b", |_| true).unwrap().render(|_| "X".into()), "aXb");
    }

    #[test]
    fn syslog_defaults() {
        let Target::Syslog(s) = parse(ChannelKind::Syslog, &json!({"host": "siem.example"}), false).unwrap().target
        else {
            panic!()
        };
        assert_eq!(
            (s.port, s.tls, s.format, s.facility, s.server_name.as_str()),
            (6514, true, SyslogFormat::Cef, 10, "siem.example")
        );
        let Target::Syslog(s) =
            parse(ChannelKind::Syslog, &json!({"host": "127.0.0.1", "tls": false, "format": "json"}), false)
                .unwrap()
                .target
        else {
            panic!()
        };
        assert_eq!((s.port, s.tls, s.format), (601, false, SyslogFormat::Json));
    }

    #[test]
    fn masking_keeps_content_type() {
        let m =
            masked(&json!({"url": "u", "headers": {"Authorization": "Bearer x", "Content-Type": "application/json"}}));
        assert_eq!(m["headers"]["Authorization"], "***");
        assert_eq!(m["headers"]["Content-Type"], "application/json");
    }
}
