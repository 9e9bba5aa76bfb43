//! Notification channels through the API, delivered to receivers the test runs on loopback:
//! signed webhooks, retries and the dead-letter list, a restart mid-delivery, syslog with CEF,
//! templated HTTP, and refused definitions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use crate::common::{Backend, Server};

/// How long a test waits for something the server does on its own.
const PATIENCE: Duration = Duration::from_secs(10);

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    path: String,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// Answer every request with this status; 0 = never answer.
const HANG: u16 = 0;

/// A minimal HTTP/1.1 receiver on loopback: reports every request, answers with `status`.
struct Receiver {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), status).await
    }

    async fn start_on(addr: SocketAddr, status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let (tx, requests) = mpsc::unbounded_channel();
        let answer = status.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tx, answer) = (tx.clone(), answer.clone());
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (tx, answer) = (tx.clone(), answer.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                        let _ = tx.send(Received { path, headers: parts.headers, body });
                        let status = answer.load(Ordering::SeqCst);
                        if status == HANG {
                            std::future::pending::<()>().await;
                        }
                        let resp = hyper::Response::builder().status(status).body(Full::new(Bytes::from("ok")));
                        Ok::<_, hyper::Error>(resp.unwrap())
                    }
                });
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service));
            }
        });
        Self { addr, status, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request, within [`PATIENCE`].
    async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.requests.recv())
            .await
            .expect("no request reached the receiver in time")
            .unwrap()
    }
}

/// A loopback port nobody listens on (yet).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Polls `check` until it yields, for at most [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_channel(s: &Server, key: &str, body: Value) -> Value {
    let r = s.client.post("/api/v1/channels", key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()
}

/// Queues a test notice; the delivery.
async fn test_notice(s: &Server, key: &str, channel: &str, body: Value) -> Value {
    let r = s.client.post(&format!("/api/v1/channels/{channel}/test"), key, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    r.json()
}

async fn delivery(s: &Server, key: &str, id: &str, status: &str) -> Option<Value> {
    let list = s.client.get(&format!("/api/v1/deliveries?status={status}"), key).await.json();
    list.as_array().unwrap().iter().find(|d| d["id"] == id).cloned()
}

async fn metrics(s: &Server) -> String {
    s.client.send(Method::GET, "/metrics", None, None).await.text()
}

/// Verifies a Standard Webhooks signature with the secret shown at creation.
fn verify_signature(secret: &str, r: &Received) {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(key.len(), 32);
    let signed = format!("{}.{}.", r.header("webhook-id"), r.header("webhook-timestamp"));
    let mut content = signed.into_bytes();
    content.extend_from_slice(&r.body);
    let (version, sig) = r.header("webhook-signature").split_once(',').unwrap();
    assert_eq!(version, "v1");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    hmac::verify(&key, &content, &STANDARD.decode(sig).unwrap()).expect("the signature does not verify");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn webhook_is_delivered_with_a_valid_standard_webhooks_signature() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let mut rx = Receiver::start(200).await;
    let ch =
        create_channel(&s, &admin, json!({"name": "ops-hook", "kind": "webhook", "config": {"url": rx.url("/hook")}}))
            .await;
    let secret = ch["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{ch}");
    assert_eq!((ch["kind"].as_str(), ch["has_secret"].as_bool()), (Some("webhook"), Some(true)));

    let sent = Instant::now();
    let d = test_notice(&s, &admin, "ops-hook", json!({"severity": "high", "title": "Door open"})).await;
    let got = rx.next().await;
    let took = sent.elapsed();
    assert_eq!(got.path, "/hook");
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("webhook-id"), d["id"].as_str().unwrap());
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert!((ts - unix_now()).abs() < 60, "{ts}");
    verify_signature(&secret, &got);
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["title"].as_str()), (Some("channel.test"), Some("Door open")));
    assert_eq!(body["data"]["severity"], "high");
    assert!(took < Duration::from_secs(2), "took {took:?} from the API call to the receiver");

    let done =
        eventually("the delivery to be recorded", || delivery(&s, &admin, d["id"].as_str().unwrap(), "delivered"))
            .await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["channel_name"], "ops-hook");

    // The secret is shown once: never listed, never in the audit log or the server's log.
    let listed = s.client.get("/api/v1/channels", &admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(listed.json()[0].get("secret").is_none(), "{}", listed.text());
    let audit = s.client.get("/api/v1/audit?action=channel.create", &admin).await.text();
    assert!(audit.contains("ops-hook") && !audit.contains(&secret), "{audit}");
    let key_part = secret.strip_prefix("whsec_").unwrap();
    assert!(!s.log().contains(key_part));
    let m = metrics(&s).await;
    assert!(m.contains(r#"palisade_notify_deliveries_total{kind="webhook",outcome="delivered"} 1"#), "{m}");
}

#[tokio::test]
async fn failing_deliveries_are_retried_then_dead_lettered_and_retried_by_hand() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let down = free_port();
    let fast =
        json!({"url": format!("http://{down}/hook"), "retry_base_ms": 10, "max_attempts": 3, "timeout_ms": 2000});
    create_channel(&s, &admin, json!({"name": "flaky", "kind": "webhook", "config": fast})).await;
    let d = test_notice(&s, &admin, "flaky", json!({})).await;
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["status"], "pending");

    // Nobody listens: three attempts, then the dead-letter list.
    let dead = eventually("the delivery to die", || delivery(&s, &admin, &id, "dead")).await;
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert!(dead["last_error"].as_str().unwrap().contains("connect"), "{dead}");
    assert!(dead.get("next_attempt_at").is_none());
    let m = metrics(&s).await;
    assert!(m.contains(r#"palisade_notify_deliveries_total{kind="webhook",outcome="retry"} 2"#), "{m}");
    assert!(m.contains(r#"palisade_notify_deliveries_total{kind="webhook",outcome="dead"} 1"#), "{m}");

    // Only a dead delivery can be retried; once the receiver is up, the retry gets through.
    let mut rx = Receiver::start_on(down, 200).await;
    let r = s.client.post(&format!("/api/v1/deliveries/{id}/retry"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!((r.json()["status"].as_str(), r.json()["attempts"].as_i64()), (Some("pending"), Some(0)));
    assert_eq!(rx.next().await.header("webhook-id"), id);
    let done = eventually("the retried delivery to land", || delivery(&s, &admin, &id, "delivered")).await;
    assert_eq!(done["attempts"], 1);
    let again = s.client.post(&format!("/api/v1/deliveries/{id}/retry"), &admin, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let r = s.client.post("/api/v1/deliveries/nope/retry", &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let audit = s.client.get("/api/v1/audit?action=delivery.retry", &admin).await.json();
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");

    // An answer other than 2xx is a failure too, and says what came back.
    let mut refusing = Receiver::start(503).await;
    let config = json!({"url": refusing.url("/"), "retry_base_ms": 10, "max_attempts": 2});
    create_channel(&s, &admin, json!({"name": "refusing", "kind": "webhook", "config": config})).await;
    let d = test_notice(&s, &admin, "refusing", json!({})).await;
    let first = refusing.next().await;
    assert_eq!(refusing.next().await.header("webhook-id"), first.header("webhook-id"), "retries keep the id");
    let dead = eventually("the 503s to dead-letter", || delivery(&s, &admin, d["id"].as_str().unwrap(), "dead")).await;
    assert!(dead["last_error"].as_str().unwrap().starts_with("HTTP 503"), "{dead}");
    let listed = s.client.get("/api/v1/deliveries?status=dead", &admin).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

async fn a_pending_delivery_survives_a_restart(backend: &str) {
    let Some(backend) = Backend::named(backend).await else {
        return;
    };
    let mut s = Server::start_on(backend).await;
    let admin = s.api_key("admin");
    // The receiver takes the request and never answers: the server dies mid-delivery.
    let mut rx = Receiver::start(HANG).await;
    let config = json!({"url": rx.url("/hook"), "timeout_ms": 30000});
    create_channel(&s, &admin, json!({"name": "slow", "kind": "webhook", "config": config})).await;
    let d = test_notice(&s, &admin, "slow", json!({})).await;
    let first = rx.next().await;
    assert_eq!(first.header("webhook-id"), d["id"].as_str().unwrap());
    s.kill9();
    s.child.wait().await.unwrap();

    rx.status.store(200, Ordering::SeqCst);
    let dir = s.dir.clone();
    let backend = s.backend.clone();
    let s = Server::start_in(&dir, backend).await;
    let again = rx.next().await;
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"), "the same delivery, sent again");
    assert_eq!(again.body, first.body);
    let done =
        eventually("the delivery after the restart", || delivery(&s, &admin, d["id"].as_str().unwrap(), "delivered"))
            .await;
    assert_eq!(done["attempts"], 1);
}

mod sqlite {
    #[tokio::test]
    async fn a_pending_delivery_survives_a_restart() {
        super::a_pending_delivery_survives_a_restart("sqlite").await
    }
}

mod postgres {
    #[tokio::test]
    async fn a_pending_delivery_survives_a_restart() {
        super::a_pending_delivery_survives_a_restart("postgres").await
    }
}

#[tokio::test]
async fn syslog_receives_an_octet_counted_rfc5424_message_with_cef() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let siem = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = siem.local_addr().unwrap().port();
    let config = json!({"host": "127.0.0.1", "port": port, "tls": false, "hostname": "palisade-test"});
    create_channel(&s, &admin, json!({"name": "siem", "kind": "syslog", "config": config})).await;
    let notice =
        json!({"severity": "high", "title": "Port|scan", "detail": "ports=22,23\nfrom 10.0.0.9", "device_id": "dev-1"});
    let d = test_notice(&s, &admin, "siem", notice).await;

    let (mut conn, _) = tokio::time::timeout(PATIENCE, siem.accept()).await.unwrap().unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut bytes)).await.unwrap().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    // RFC 6587 octet counting: MSG-LEN SP SYSLOG-MSG, the length in bytes.
    let (len, msg) = text.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "{text:?}");
    // RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG; authpriv (10) × 8 + err (3).
    let fields: Vec<&str> = msg.splitn(8, ' ').collect();
    assert_eq!(fields[0], "<83>1", "{msg}");
    time::OffsetDateTime::parse(fields[1], &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(&fields[2..5], ["palisade-test", "palisade", &s.child.id().unwrap().to_string()]);
    assert_eq!(&fields[5..7], ["channel.test", "-"]);
    let cef = fields[7];
    let version = env!("CARGO_PKG_VERSION");
    assert!(cef.starts_with(&format!("CEF:0|Palisade|Palisade|{version}|channel.test|Port\\|scan|8|")), "{cef}");
    assert!(cef.contains("dvchost=dev-1 "), "{cef}");
    assert!(cef.contains(&format!("externalId={} ", d["alert_id"].as_str().unwrap())), "{cef}");
    assert!(cef.ends_with("msg=ports\\=22,23\\nfrom 10.0.0.9"), "{cef}");
    eventually("the syslog delivery to be recorded", || delivery(&s, &admin, d["id"].as_str().unwrap(), "delivered"))
        .await;
}

/// A TLS 1.2-only SIEM on loopback with a certificate for `siem.test` from a fresh test CA; the
/// CA file's path and the listener.
async fn tls_siem(dir: &std::path::Path) -> (String, tokio::net::TcpListener, tokio_rustls::TlsAcceptor) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca_ext = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"];
    crate::identity::self_signed(dir, "ca", "/CN=Test SIEM CA", &ca_ext);
    let ext = "subjectAltName=DNS:siem.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("siem.ext"), ext).unwrap();
    crate::identity::issue_with_openssl(dir, "ca", "siem", "/CN=siem.test", "siem.ext");
    let chain = CertificateDer::pem_file_iter(dir.join("siem.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("siem.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ca = dir.join("ca.pem").to_str().unwrap().to_owned();
    (ca, listener, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn syslog_over_tls_trusts_only_the_configured_ca() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let (ca, siem, acceptor) = tls_siem(tmp.path()).await;
    let port = siem.local_addr().unwrap().port();
    let config =
        json!({"host": "127.0.0.1", "port": port, "server_name": "siem.test", "ca_file": ca, "format": "json"});
    create_channel(&s, &admin, json!({"name": "siem-tls", "kind": "syslog", "config": config})).await;
    let d = test_notice(&s, &admin, "siem-tls", json!({"severity": "critical"})).await;

    let (tcp, _) = tokio::time::timeout(PATIENCE, siem.accept()).await.unwrap().unwrap();
    let mut tls = tokio::time::timeout(PATIENCE, acceptor.accept(tcp)).await.unwrap().unwrap();
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, tls.read_to_end(&mut bytes)).await.unwrap().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (len, msg) = text.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), msg.len());
    assert!(msg.starts_with("<82>1 "), "authpriv × 8 + crit: {msg}");
    let json_part = &msg[msg.find(" - {").unwrap() + 3..];
    let event: Value = serde_json::from_str(json_part).unwrap();
    assert_eq!((event["type"].as_str(), event["data"]["severity"].as_str()), (Some("channel.test"), Some("critical")));
    eventually("the TLS syslog delivery", || delivery(&s, &admin, d["id"].as_str().unwrap(), "delivered")).await;

    // Without the CA file the SIEM's certificate is not trusted: nothing is sent, the delivery dies.
    let untrusted = json!({"host": "127.0.0.1", "port": port, "server_name": "siem.test", "max_attempts": 1});
    create_channel(&s, &admin, json!({"name": "siem-untrusted", "kind": "syslog", "config": untrusted})).await;
    let d = test_notice(&s, &admin, "siem-untrusted", json!({})).await;
    let refused = tokio::spawn(async move {
        let (tcp, _) = siem.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let mut bytes = Vec::new();
        tls.read_to_end(&mut bytes).await.ok().map(|_| bytes)
    });
    let dead =
        eventually("the untrusted SIEM to be given up", || delivery(&s, &admin, d["id"].as_str().unwrap(), "dead"))
            .await;
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("TLS") || error.contains("root"), "{error}");
    if refused.is_finished() {
        assert!(refused.await.unwrap().is_none_or(|b| b.is_empty()), "nothing may reach an untrusted SIEM");
    }
}

#[tokio::test]
async fn http_template_body_is_filled_and_json_escaped() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let mut rx = Receiver::start(201).await;
    let token = "s3cr3t-provider-token";
    let body = r#"{"text":"[{{alert.severity}}] {{alert.title}}","detail":"{{alert.detail}}","device":"{{alert.device_id}}","id":"{{alert.id}}","event":"{{event}}"}"#;
    let config = json!({
        "method": "POST", "url": rx.url("/send/{{secret}}?to=ops"), "body": body,
        "headers": {"Authorization": "Bearer {{secret}}", "Content-Type": "application/json; charset=utf-8"},
    });
    let ch =
        create_channel(&s, &admin, json!({"name": "chat", "kind": "http_template", "config": config, "secret": token}))
            .await;
    assert!(ch.get("secret").is_none(), "a provider secret is never shown back: {ch}");
    let title = r#"He said "stop" \ now"#;
    let detail = "line one\nline two\t</script>";
    let d = test_notice(
        &s,
        &admin,
        "chat",
        json!({"severity": "critical", "title": title, "detail": detail, "device_id": "dev-9"}),
    )
    .await;
    let got = rx.next().await;
    assert_eq!(got.path, format!("/send/{token}?to=ops"));
    assert_eq!(got.header("authorization"), format!("Bearer {token}"));
    let sent: Value = serde_json::from_slice(&got.body).unwrap_or_else(|e| panic!("{e}: {:?}", got.body));
    assert_eq!(
        sent,
        json!({"text": format!("[critical] {title}"), "detail": detail, "device": "dev-9",
               "id": d["alert_id"], "event": "channel.test"})
    );
    eventually("the templated delivery to be recorded", || {
        delivery(&s, &admin, d["id"].as_str().unwrap(), "delivered")
    })
    .await;
    let listed = s.client.get("/api/v1/channels", &admin).await;
    assert!(!listed.text().contains(token), "{}", listed.text());
    let chat = listed.json().as_array().unwrap().iter().find(|c| c["name"] == "chat").cloned().unwrap();
    assert_eq!(chat["config"]["headers"]["Authorization"], "***");
    assert_eq!(chat["has_secret"], true);
    assert!(!s.log().contains(token));
}

#[tokio::test]
async fn bad_channel_definitions_are_refused_naming_the_field() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let hook = |config: Value| json!({"name": "h", "kind": "webhook", "config": config});
    let cases = [
        (json!({"name": "x", "kind": "pager", "config": {}}), "kind"),
        (hook(json!({"url": "http://hooks.example.com/in"})), "config.url"),
        (hook(json!({})), "config.url"),
        (hook(json!({"url": "ftp://127.0.0.1/"})), "config.url"),
        (hook(json!({"url": "https://hooks.example.com/", "retries": 3})), "config"),
        (hook(json!({"url": "https://hooks.example.com/", "max_attempts": 0})), "config.max_attempts"),
        (
            json!({"name": "h", "kind": "webhook", "config": {"url": "https://h.example/"}, "min_severity": "urgent"}),
            "min_severity",
        ),
        (json!({"name": "h", "kind": "webhook", "config": {"url": "https://h.example/"}, "secret": "mine"}), "secret"),
        (json!({"name": "s", "kind": "syslog", "config": {"port": 514}}), "config.host"),
        (json!({"name": "s", "kind": "syslog", "config": {"host": "siem", "format": "leef"}}), "config.format"),
        (
            json!({"name": "s", "kind": "syslog", "config": {"host": "siem", "ca_file": "/nonexistent/ca.pem"}}),
            "config.ca_file",
        ),
        (
            json!({"name": "t", "kind": "http_template", "config": {"url": "https://t.example/", "body": "{{alert.colour}}"}}),
            "config.body",
        ),
        (
            json!({"name": "t", "kind": "http_template", "config": {"url": "https://t.example/", "headers": {"X-Key": "{{secret}}"}}}),
            "secret",
        ),
        (json!({"name": "", "kind": "webhook", "config": {"url": "https://h.example/"}}), "name"),
    ];
    for (body, field) in cases {
        let r = s.client.post("/api/v1/channels", &admin, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_field", "{body}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(&format!("{field}: ")), "{body}: {message}");
    }
    // Unknown top-level fields are refused by the request type itself.
    let r = s
        .client
        .post("/api/v1/channels", &admin, json!({"name": "x", "kind": "webhook", "config": {}, "colour": 1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        s.client.get("/api/v1/channels", &admin).await.json().as_array().unwrap().is_empty(),
        "nothing was created"
    );

    // Names are unique; tests need an existing channel; listings need a known status.
    create_channel(&s, &admin, hook(json!({"url": "https://h.example/"}))).await;
    let dup = s.client.post("/api/v1/channels", &admin, hook(json!({"url": "https://h.example/"}))).await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.text());
    let r = s.client.post("/api/v1/channels/nope/test", &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = s.client.post("/api/v1/channels/h/test", &admin, json!({"severity": "dire"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = s.client.get("/api/v1/deliveries?status=lost", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // A reader may list, not create.
    let auditor = s.api_key("auditor");
    assert_eq!(s.client.get("/api/v1/channels", &auditor).await.status, StatusCode::OK);
    let r = s.client.post("/api/v1/channels", &auditor, hook(json!({"url": "https://v.example/"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Mail: a tiny SMTP server on loopback, speaking STARTTLS with a certificate from a test CA.
mod email {
    use super::*;
    use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};

    /// What the test SMTP server saw of one connection.
    #[derive(Debug, Default)]
    struct SmtpLog {
        /// Every command line (an AUTH line only as `AUTH PLAIN`), `TLS` where TLS began.
        commands: Vec<String>,
        /// The AUTH PLAIN credentials, decoded, and whether they came over TLS.
        auth: Option<(String, bool)>,
        /// The message after DATA, dot-stuffing undone.
        message: String,
    }

    /// A CA (`ca.pem`) and a TLS acceptor with a certificate it issued for 127.0.0.1.
    fn smtp_tls(dir: &std::path::Path) -> (String, tokio_rustls::TlsAcceptor) {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let ca_ext = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"];
        crate::identity::self_signed(dir, "ca", "/CN=Test Mail CA", &ca_ext);
        let ext = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
        std::fs::write(dir.join("mail.ext"), ext).unwrap();
        crate::identity::issue_with_openssl(dir, "ca", "mail", "/CN=mail.test", "mail.ext");
        let chain = CertificateDer::pem_file_iter(dir.join("mail.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("mail.key")).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        (dir.join("ca.pem").to_str().unwrap().to_owned(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Starts the SMTP server: it offers STARTTLS when given an acceptor, AUTH only over TLS,
    /// and reports each connection once it ends.
    async fn smtp_server(acceptor: Option<tokio_rustls::TlsAcceptor>) -> (u16, mpsc::UnboundedReceiver<SmtpLog>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let mut log = SmtpLog::default();
                    let mut plain = BufReader::new(tcp);
                    plain.write_all(b"220 mail.test ESMTP ready\r\n").await.unwrap();
                    if dialogue(&mut plain, acceptor.is_some(), false, &mut log).await {
                        log.commands.push("TLS".into());
                        let tls = acceptor.unwrap().accept(plain.into_inner()).await;
                        if let Ok(tls) = tls {
                            dialogue(&mut BufReader::new(tls), false, true, &mut log).await;
                        }
                    }
                    let _ = tx.send(log);
                });
            }
        });
        (port, rx)
    }

    /// Answers commands until QUIT or the end of the connection (false), or until STARTTLS is
    /// agreed (true).
    async fn dialogue<S: AsyncBufRead + AsyncWrite + Unpin>(
        io: &mut S,
        offer_tls: bool,
        secure: bool,
        log: &mut SmtpLog,
    ) -> bool {
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            let upper = line.to_ascii_uppercase();
            let answer = if upper.starts_with("EHLO ") {
                log.commands.push(line);
                match (offer_tls, secure) {
                    (true, _) => "250-mail.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                    (false, true) => "250-mail.test\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n",
                    (false, false) => "250-mail.test\r\n250 8BITMIME\r\n",
                }
            } else if upper == "STARTTLS" && offer_tls {
                log.commands.push(line);
                io.write_all(b"220 2.0.0 go ahead\r\n").await.unwrap();
                return true;
            } else if let Some(token) = line.strip_prefix("AUTH PLAIN ") {
                log.commands.push("AUTH PLAIN".into());
                let decoded = String::from_utf8(STANDARD.decode(token).unwrap()).unwrap();
                log.auth = Some((decoded, secure));
                if secure { "235 2.7.0 ok\r\n" } else { "530 5.7.0 STARTTLS first\r\n" }
            } else if upper == "DATA" {
                log.commands.push(line);
                io.write_all(b"354 go on\r\n").await.unwrap();
                loop {
                    let mut l = String::new();
                    if io.read_line(&mut l).await.unwrap_or(0) == 0 {
                        return false;
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    log.message.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                "250 2.0.0 queued\r\n"
            } else if upper == "QUIT" {
                log.commands.push(line);
                let _ = io.write_all(b"221 bye\r\n").await;
                return false;
            } else {
                log.commands.push(line);
                if upper.starts_with("MAIL FROM:") || upper.starts_with("RCPT TO:") {
                    "250 2.1.0 ok\r\n"
                } else {
                    "502 5.5.1 what?\r\n"
                }
            };
            io.write_all(answer.as_bytes()).await.unwrap();
        }
    }

    async fn next_session(rx: &mut mpsc::UnboundedReceiver<SmtpLog>) -> SmtpLog {
        tokio::time::timeout(PATIENCE, rx.recv()).await.expect("no SMTP session ended in time").unwrap()
    }

    #[tokio::test]
    async fn email_goes_out_over_starttls_and_logs_in_only_over_tls() {
        let s = Server::start().await;
        let admin = s.api_key("admin");
        let tmp = tempfile::tempdir().unwrap();
        let (ca, acceptor) = smtp_tls(tmp.path());
        let (port, mut sessions) = smtp_server(Some(acceptor)).await;
        let password = "smtp-pa55word-not-for-logs";
        let config = json!({"host": "127.0.0.1", "port": port, "from": "palisade@example.com",
            "to": ["ops@example.com", "oncall@example.net"], "ca_file": ca, "username": "palisade"});
        let ch =
            create_channel(&s, &admin, json!({"name": "mail", "kind": "email", "config": config, "secret": password}))
                .await;
        assert_eq!((ch["kind"].as_str(), ch["has_secret"].as_bool()), (Some("email"), Some(true)), "{ch}");
        assert!(ch.get("secret").is_none(), "{ch}");
        let notice = json!({"severity": "high", "title": "Door open", "device_id": "dev-3",
            "detail": "line one\n.starts with a dot\n."});
        let d = test_notice(&s, &admin, "mail", notice).await;

        let log = next_session(&mut sessions).await;
        let ehlo = log.commands[0].clone();
        assert!(ehlo.starts_with("EHLO [127.0.0.1]"), "{log:?}");
        let expected = [
            &ehlo,
            "STARTTLS",
            "TLS",
            &ehlo,
            "AUTH PLAIN",
            "MAIL FROM:<palisade@example.com>",
            "RCPT TO:<ops@example.com>",
            "RCPT TO:<oncall@example.net>",
            "DATA",
        ];
        assert_eq!(log.commands[..expected.len()], expected, "{log:?}");
        assert_eq!(log.auth, Some((format!("\0palisade\0{password}"), true)), "AUTH only after STARTTLS");
        let (head, body) = log.message.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("\r\nSubject: [Palisade HIGH] Door open on dev-3\r\n"), "{head}");
        assert!(head.contains("From: palisade@example.com\r\n"), "{head}");
        assert!(head.contains("To: ops@example.com,\r\n oncall@example.net\r\n"), "{head}");
        assert!(head.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{head}");
        let id = d["id"].as_str().unwrap();
        assert!(head.contains(&format!("Message-ID: <{id}@example.com>")), "{head}");
        let date = head.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap();
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822).unwrap();
        assert!(body.contains("Severity: HIGH\r\n") && body.contains("Device:   dev-3\r\n"), "{body}");
        assert!(body.contains(&format!("Alert:    {}\r\n", d["alert_id"].as_str().unwrap())), "{body}");
        assert!(body.contains("line one\r\n.starts with a dot\r\n.\r\n"), "dot-stuffing undone: {body}");

        let done = eventually("the mail to be recorded", || delivery(&s, &admin, id, "delivered")).await;
        assert_eq!(done["attempts"], 1);
        assert!(!s.log().contains(password));
        let listed = s.client.get("/api/v1/channels", &admin).await.text();
        assert!(!listed.contains(password), "{listed}");
        let m = metrics(&s).await;
        assert!(m.contains(r#"palisade_notify_deliveries_total{kind="email",outcome="delivered"} 1"#), "{m}");
    }

    #[tokio::test]
    async fn email_is_never_sent_in_plaintext_when_starttls_is_missing() {
        let s = Server::start().await;
        let admin = s.api_key("admin");
        let tmp = tempfile::tempdir().unwrap();
        let (ca, _) = smtp_tls(tmp.path());
        let (port, mut sessions) = smtp_server(None).await;
        let config = json!({"host": "127.0.0.1", "port": port, "from": "palisade@example.com",
            "to": ["ops@example.com"], "ca_file": ca, "retry_base_ms": 10, "max_attempts": 2});
        create_channel(&s, &admin, json!({"name": "no-tls", "kind": "email", "config": config})).await;
        let d = test_notice(&s, &admin, "no-tls", json!({"severity": "critical"})).await;
        let id = d["id"].as_str().unwrap();

        for _ in 0..2 {
            let log = next_session(&mut sessions).await;
            assert!(log.commands.iter().all(|c| c.starts_with("EHLO ") || c == "QUIT"), "{log:?}");
            assert!(log.message.is_empty() && log.auth.is_none(), "{log:?}");
        }
        let dead = eventually("the mail to be dead-lettered", || delivery(&s, &admin, id, "dead")).await;
        assert_eq!(dead["attempts"], 2, "{dead}");
        assert!(dead["last_error"].as_str().unwrap().contains("STARTTLS"), "{dead}");

        // Without TLS by choice: only to loopback, and then it goes out.
        let plain = json!({"host": "127.0.0.1", "port": port, "starttls": false, "from": "p@example.com",
            "to": ["ops@example.com"]});
        create_channel(&s, &admin, json!({"name": "local-relay", "kind": "email", "config": plain})).await;
        let d = test_notice(&s, &admin, "local-relay", json!({"title": "Plain"})).await;
        let log = next_session(&mut sessions).await;
        assert!(log.message.contains("Subject: [Palisade INFO] Plain on -\r\n"), "{log:?}");
        eventually("the plain mail", || delivery(&s, &admin, d["id"].as_str().unwrap(), "delivered")).await;
    }

    #[tokio::test]
    async fn bad_email_channels_are_refused_naming_the_field() {
        let s = Server::start().await;
        let admin = s.api_key("admin");
        let mail = |config: Value| json!({"name": "m", "kind": "email", "config": config});
        let base = || json!({"host": "smtp.example.com", "from": "p@example.com", "to": ["ops@example.com"]});
        let with = |k: &str, v: Value| {
            let mut c = base();
            c[k] = v;
            mail(c)
        };
        let cases = [
            (mail(json!({"host": "smtp.example.com", "from": "p@example.com"})), "config.to"),
            (with("to", json!([])), "config.to"),
            (with("to", json!(["ops@example.com\r\nRCPT TO:<x@evil.example>"])), "config.to"),
            (with("starttls", json!(false)), "config.starttls"),
            (with("from", json!("nobody")), "config.from"),
            (with("host", json!("")), "config.host"),
            (with("ca_file", json!("/nonexistent/ca.pem")), "config.ca_file"),
            (with("username", json!("palisade")), "secret"),
            (json!({"name": "m", "kind": "email", "config": base(), "secret": "pw"}), "config.username"),
            (
                json!({"name": "m", "kind": "email", "secret": "pw", "config": {"host": "127.0.0.1",
                    "starttls": false, "username": "u", "from": "p@example.com", "to": ["o@example.com"]}}),
                "config.starttls",
            ),
        ];
        for (body, field) in cases {
            let r = s.client.post("/api/v1/channels", &admin, body.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
            let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.starts_with(&format!("{field}: ")), "{body}: {message}");
        }
        assert!(s.client.get("/api/v1/channels", &admin).await.json().as_array().unwrap().is_empty());
    }
}
