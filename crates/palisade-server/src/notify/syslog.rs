//! Syslog to a SIEM: one RFC 5424 message per notice, octet-counted (RFC 6587) over TCP or
//! TLS 1.2+, its MSG an ArcSight CEF record or the notice's JSON. Formatting is pure.

use std::sync::Arc;

use palisade_store::notify::Delivery;
use serde_json::Value as Json;
use tokio::io::AsyncWriteExt as _;

use super::channel::{SyslogFormat, SyslogSpec, Var};
use super::http::{alert_of, notice_value};

/// Syslog severity (RFC 5424 §6.2.1) of a notice severity.
fn syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2, // crit
        "high" => 3,     // err
        "medium" => 4,   // warning
        "low" => 5,      // notice
        _ => 6,          // info
    }
}

/// CEF severity (0–10) of a notice severity.
fn cef_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 10,
        "high" => 8,
        "medium" => 5,
        "low" => 3,
        _ => 1,
    }
}

/// A CEF header field: `\` and `|` escaped, line breaks flattened.
fn cef_header(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n` / `\r`.
fn cef_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// `CEF:0|Palisade|Palisade|<version>|<rule>|<title>|<severity>|<extensions>`.
pub fn cef(delivery: &Delivery) -> String {
    let body: Json = serde_json::from_str(&delivery.body).unwrap_or(Json::Null);
    let value = |v: Var| notice_value(delivery, &body, v);
    let rule = match alert_of(&body).and_then(|a| a.get("rule")) {
        Some(Json::String(r)) if !r.is_empty() => r.clone(),
        _ => delivery.event.clone(),
    };
    let title = Some(value(Var::Title)).filter(|t| !t.is_empty()).unwrap_or_else(|| delivery.event.clone());
    let severity = value(Var::Severity);
    format!(
        "CEF:0|Palisade|Palisade|{}|{}|{}|{}|dvchost={} externalId={} cs1Label=event cs1={} msg={}",
        cef_header(env!("CARGO_PKG_VERSION")),
        cef_header(&rule),
        cef_header(&title),
        cef_severity(&severity),
        cef_value(&value(Var::DeviceId)),
        cef_value(&value(Var::AlertId)),
        cef_value(&delivery.event),
        cef_value(&value(Var::Detail)),
    )
}

/// `PRINTUSASCII` only (RFC 5424 header fields), at most `max` characters; `-` when empty.
fn header_field(v: &str, max: usize) -> String {
    let s: String = v.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if s.is_empty() { "-".into() } else { s }
}

/// One RFC 5424 message (without framing).
pub fn rfc5424(spec: &SyslogSpec, delivery: &Delivery, timestamp: &str, hostname: &str, procid: u32) -> String {
    let pri = u16::from(spec.facility) * 8 + u16::from(syslog_severity(&delivery.severity));
    let msg = match spec.format {
        SyslogFormat::Cef => cef(delivery),
        SyslogFormat::Json => delivery.body.replace(['\r', '\n'], " "),
    };
    format!(
        "<{pri}>1 {timestamp} {} palisade {procid} {} - {msg}",
        header_field(spec.hostname.as_deref().unwrap_or(hostname), 255),
        header_field(&delivery.event, 32),
    )
}

/// Octet-counting framing (RFC 6587 §3.4.1): `MSG-LEN SP SYSLOG-MSG`.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// Sends one framed message over a fresh connection, and closes it cleanly.
pub async fn send(spec: &SyslogSpec, framed: &[u8], tls: Option<Arc<rustls::ClientConfig>>) -> Result<(), String> {
    let where_to = format!("{}:{}", spec.host, spec.port);
    let tcp = tokio::net::TcpStream::connect((spec.host.as_str(), spec.port))
        .await
        .map_err(|e| format!("connect to {where_to}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io = |e: std::io::Error| format!("write to {where_to}: {e}");
    if spec.tls {
        let tls = tls.ok_or("no TLS configuration")?;
        let name = rustls::pki_types::ServerName::try_from(spec.server_name.clone())
            .map_err(|_| format!("{} is not a valid TLS server name", spec.server_name))?;
        let mut stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {where_to}: {e}"))?;
        stream.write_all(framed).await.map_err(io)?;
        stream.shutdown().await.map_err(io)?;
    } else {
        let mut stream = tcp;
        stream.write_all(framed).await.map_err(io)?;
        stream.shutdown().await.map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channel::{self, Target};
    use palisade_store::notify::{ChannelKind, DeliveryStatus};
    use serde_json::json;

    fn delivery(severity: &str, body: Json) -> Delivery {
        Delivery {
            id: "m1".into(),
            channel_id: "c".into(),
            channel_name: "n".into(),
            alert_id: "a-1".into(),
            event: "alert.created".into(),
            severity: severity.into(),
            device_id: "dev-7".into(),
            body: body.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    fn spec(config: Json) -> SyslogSpec {
        match channel::parse(ChannelKind::Syslog, &config, false).unwrap().target {
            Target::Syslog(s) => s,
            _ => panic!(),
        }
    }

    #[test]
    fn cef_escapes_headers_and_extensions() {
        let d = delivery(
            "critical",
            json!({"data": {"rule": "port|scan", "title": "a\\b", "detail": "x=1\ny", "device_id": "dev-7"}}),
        );
        assert_eq!(
            cef(&d),
            format!(
                "CEF:0|Palisade|Palisade|{}|port\\|scan|a\\\\b|10|dvchost=dev-7 externalId=a-1 cs1Label=event \
                 cs1=alert.created msg=x\\=1\\ny",
                env!("CARGO_PKG_VERSION")
            )
        );
        // Without a rule or title, the event names it.
        assert!(cef(&delivery("low", json!({}))).contains("|alert.created|alert.created|3|"));
    }

    #[test]
    fn rfc5424_lines_are_framed_by_their_length() {
        let s = spec(json!({"host": "127.0.0.1", "tls": false, "facility": 4}));
        let d = delivery("high", json!({"data": {"title": "é"}}));
        let m = rfc5424(&s, &d, "2024-01-02T03:04:05.678Z", "gw 1", 42);
        assert!(m.starts_with("<35>1 2024-01-02T03:04:05.678Z gw1 palisade 42 alert.created - CEF:0|"), "{m}");
        let framed = frame(&m);
        let (len, rest) = std::str::from_utf8(&framed).unwrap().split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert_eq!(rest.len(), m.len(), "bytes, not characters");
        let json_spec = spec(json!({"host": "h", "tls": false, "format": "json", "hostname": "pal-1"}));
        let m = rfc5424(&json_spec, &delivery("info", json!({"a": "b"})), "t", "ignored", 1);
        assert_eq!(m, "<86>1 t pal-1 palisade 1 alert.created - {\"a\":\"b\"}");
    }
}
