//! Webhooks (Standard Webhooks signatures) and templated HTTP requests: building the request
//! (pure) and sending it once over a fresh connection, reading a bounded answer.

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::header::{HeaderName, HeaderValue};
use palisade_store::notify::{ChannelSecret, Delivery};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::channel::{Escape, HttpUrl, TemplateSpec, Var, WebhookSpec, parse_url};

/// What a webhook secret looks like: `whsec_` and the base64 of the key.
const WHSEC: &str = "whsec_";
/// Most of an answer read (the rest is dropped with the connection).
const MAX_ANSWER: usize = 64 * 1024;
/// Most of an error answer kept in `last_error`.
const MAX_ERROR_TEXT: usize = 200;

/// A fresh webhook signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_webhook_secret() -> Result<ChannelSecret, palisade_store::StoreError> {
    let mut key = Zeroizing::new([0u8; 32]);
    palisade_store::sealed::random(key.as_mut())?;
    Ok(ChannelSecret::new(format!("{WHSEC}{}", STANDARD.encode(key.as_slice()))))
}

/// The Standard Webhooks signature header value: `v1,<base64(HMAC-SHA256(key, id.ts.body))>`.
pub fn signature(secret: &ChannelSecret, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let encoded = secret.expose().strip_prefix(WHSEC).ok_or("the webhook secret is not a whsec_ secret")?;
    let key = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| "the webhook secret is not base64")?);
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Ok(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// One request, ready to send.
#[derive(Debug)]
pub struct Request {
    pub method: hyper::Method,
    pub url: HttpUrl,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("Palisade/", env!("CARGO_PKG_VERSION")))
}

fn header(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|_| "a header value is not valid".to_owned())
}

/// The signed webhook POST of `delivery` at `now_secs`.
pub fn webhook(
    spec: &WebhookSpec,
    delivery: &Delivery,
    secret: Option<&ChannelSecret>,
    now_secs: i64,
) -> Result<Request, String> {
    let secret = secret.ok_or("the channel has no signing secret")?;
    let body = Bytes::from(delivery.body.clone());
    let signed = signature(secret, &delivery.id, now_secs, &body)?;
    let headers = vec![
        (hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (hyper::header::USER_AGENT, user_agent()),
        (HeaderName::from_static("webhook-id"), header(&delivery.id)?),
        (HeaderName::from_static("webhook-timestamp"), header(&now_secs.to_string())?),
        (HeaderName::from_static("webhook-signature"), header(&signed)?),
    ];
    Ok(Request { method: hyper::Method::POST, url: spec.url.clone(), headers, body })
}

/// The alert object of a notice body (`{"type", "timestamp_ms", "data": {…}}`, the Standard Webhooks
/// envelope), if any.
pub fn alert_of(body: &Json) -> Option<&Json> {
    body.get("data").filter(|d| d.is_object())
}

/// A text value of the notice: from the body's alert (`data`), else from the delivery.
pub fn notice_value(delivery: &Delivery, body: &Json, var: Var) -> String {
    let field = |name: &str| match alert_of(body).and_then(|a| a.get(name)) {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    match var {
        Var::AlertId => field("id").unwrap_or_else(|| delivery.alert_id.clone()),
        Var::Severity => field("severity").unwrap_or_else(|| delivery.severity.clone()),
        Var::DeviceId => field("device_id").unwrap_or_else(|| delivery.device_id.clone()),
        Var::Title => field("title").unwrap_or_default(),
        Var::Detail => field("detail").unwrap_or_default(),
        Var::Event => delivery.event.clone(),
        Var::Secret => String::new(),
    }
}

fn escape(escape: Escape, value: &str) -> String {
    match escape {
        Escape::Json => {
            let quoted = Json::String(value.to_owned()).to_string();
            quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_owned()
        }
        Escape::Form => form_encode(value),
        Escape::None => value.to_owned(),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The templated request of `delivery`. Errors never repeat the secret or the URL.
pub fn templated(spec: &TemplateSpec, delivery: &Delivery, secret: Option<&ChannelSecret>) -> Result<Request, String> {
    let body_json: Json = serde_json::from_str(&delivery.body).unwrap_or(Json::Null);
    let secret_text = || secret.map(|s| s.expose().to_owned()).unwrap_or_default();
    let url = Zeroizing::new(spec.url.render(|_| secret_text()));
    let url = parse_url("url", &url).map_err(|_| "the URL with the secret filled in is not valid".to_owned())?;
    if url.https != spec.https {
        return Err("the URL with the secret filled in changed scheme".into());
    }
    let mut headers = Vec::with_capacity(spec.headers.len() + 1);
    for (name, template) in &spec.headers {
        let value = Zeroizing::new(template.render(|_| secret_text()));
        let mut value = header(&value).map_err(|_| format!("header {name}: not a valid value once filled in"))?;
        if template.uses(Var::Secret) {
            value.set_sensitive(true);
        }
        headers.push((name.clone(), value));
    }
    headers.push((hyper::header::USER_AGENT, user_agent()));
    let body = spec.body.render(|v| escape(spec.escape, &notice_value(delivery, &body_json, v)));
    Ok(Request { method: spec.method.clone(), url, headers, body: Bytes::from(body) })
}

/// Sends `req` once over a fresh connection (HTTP/1.1; TLS with `tls` for https). Ok for a 2xx
/// answer; otherwise what went wrong, fit for `last_error` (no secrets, no URL path).
pub async fn send(req: Request, tls: Option<Arc<rustls::ClientConfig>>) -> Result<u16, String> {
    let where_to = format!("{}:{}", req.url.host, req.url.port);
    let tcp = tokio::net::TcpStream::connect((req.url.host.as_str(), req.url.port))
        .await
        .map_err(|e| format!("connect to {where_to}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut builder = hyper::Request::builder().method(req.method).uri(req.url.path_and_query.as_str());
    builder = builder.header(hyper::header::HOST, req.url.authority());
    for (k, v) in req.headers {
        builder = builder.header(k, v);
    }
    let request =
        builder.body(http_body_util::Full::new(req.body)).map_err(|e| format!("cannot build the request: {e}"))?;
    let response = if req.url.https {
        let tls = tls.ok_or("no TLS configuration for https")?;
        let name = rustls::pki_types::ServerName::try_from(req.url.host.clone())
            .map_err(|_| format!("{} is not a valid TLS server name", req.url.host))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {where_to}: {e}"))?;
        exchange(hyper_util::rt::TokioIo::new(stream), request).await
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), request).await
    }
    .map_err(|e| format!("HTTP with {where_to}: {e}"))?;
    let status = response.status();
    let answer = bounded_body(response.into_body()).await;
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        let text: String =
            String::from_utf8_lossy(&answer).chars().filter(|c| !c.is_control()).take(MAX_ERROR_TEXT).collect();
        Err(if text.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {}: {text}", status.as_u16())
        })
    }
}

async fn exchange<I>(
    io: I,
    request: hyper::Request<http_body_util::Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(request).await
}

/// Up to [`MAX_ANSWER`] bytes of the answer; the rest is not read.
async fn bounded_body(mut body: hyper::body::Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < MAX_ANSWER {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = MAX_ANSWER - out.len();
                    out.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
                }
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channel::{self, Target};
    use palisade_store::notify::{ChannelKind, DeliveryStatus};
    use serde_json::json;

    fn delivery(body: Json) -> Delivery {
        Delivery {
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek".into(),
            channel_id: "c".into(),
            channel_name: "n".into(),
            alert_id: "a-1".into(),
            event: "alert.created".into(),
            severity: "high".into(),
            device_id: "d-1".into(),
            body: body.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = ChannelSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(signature(&ChannelSecret::new("nope".into()), "i", 1, b"").is_err());
    }

    #[test]
    fn new_secrets_are_32_random_bytes() {
        let a = new_webhook_secret().unwrap();
        let b = new_webhook_secret().unwrap();
        assert_ne!(a.expose(), b.expose());
        let key = STANDARD.decode(a.expose().strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn webhook_requests_carry_the_three_headers() {
        let spec = WebhookSpec { url: parse_url("u", "http://127.0.0.1:9/hook").unwrap(), ca_file: None };
        let d = delivery(json!({"a": 1}));
        let secret = new_webhook_secret().unwrap();
        let r = webhook(&spec, &d, Some(&secret), 1_700_000_000).unwrap();
        let get = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_str().unwrap().to_owned());
        assert_eq!(get("webhook-id").unwrap(), d.id);
        assert_eq!(get("webhook-timestamp").unwrap(), "1700000000");
        assert_eq!(
            get("webhook-signature").unwrap(),
            signature(&secret, &d.id, 1_700_000_000, d.body.as_bytes()).unwrap()
        );
        assert_eq!(r.body, d.body.as_bytes());
        assert!(webhook(&spec, &d, None, 1).is_err());
    }

    #[test]
    fn templates_escape_for_their_content_type() {
        let d = delivery(
            json!({"data": {"id": "a-9", "title": "Say \"hi\"\n", "detail": "50% & more", "severity": "critical"}}),
        );
        let config = json!({"url": "https://x.example/{{secret}}", "headers": {"Authorization": "Bearer {{secret}}"},
                            "body": "{\"t\":\"{{alert.title}}\",\"d\":\"{{alert.detail}}\",\"s\":\"{{alert.severity}}\",\"dev\":\"{{alert.device_id}}\",\"e\":\"{{event}}\"}"});
        let Target::Template(spec) = channel::parse(ChannelKind::HttpTemplate, &config, true).unwrap().target else {
            panic!()
        };
        let secret = ChannelSecret::new("tok".into());
        let r = templated(&spec, &d, Some(&secret)).unwrap();
        let body: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"t": "Say \"hi\"\n", "d": "50% & more", "s": "critical", "dev": "d-1", "e": "alert.created"})
        );
        assert_eq!(r.url.path_and_query, "/tok");
        let auth = r.headers.iter().find(|(k, _)| k == "authorization").unwrap();
        assert!(auth.1.is_sensitive());
        assert_eq!(auth.1, "Bearer tok");

        let form = json!({"url": "https://x.example/", "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                          "body": "Body={{alert.detail}}&To=1"});
        let Target::Template(spec) = channel::parse(ChannelKind::HttpTemplate, &form, false).unwrap().target else {
            panic!()
        };
        assert_eq!(templated(&spec, &d, None).unwrap().body, "Body=50%25+%26+more&To=1");
    }
}
