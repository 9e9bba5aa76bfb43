//! Mail over SMTP (RFC 5321): one plain-text message per notice, through a small client that
//! upgrades with STARTTLS (never falling back to plaintext) and logs in with AUTH PLAIN only over
//! TLS. Composing the message and parsing replies are pure; [`send`] does the talking, bounded in
//! what it reads; the worker bounds the whole exchange with the channel's timeout.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use palisade_store::notify::{ChannelSecret, Delivery};
use serde_json::Value as Json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use zeroize::Zeroizing;

use super::channel::{EmailSpec, Var};
use super::http::{alert_of, notice_value};

/// The longest reply line read, CRLF included (RFC 5321 §4.5.3.1.5 promises 512).
const MAX_REPLY_LINE: usize = 2048;
/// The most lines of one reply (EHLO lists one extension a line).
const MAX_REPLY_LINES: usize = 100;
/// The most of a reply's text repeated in an error.
const MAX_ERROR_TEXT: usize = 300;
/// How long the server may take to answer QUIT once it took the message.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// One line of a reply: its code (200–599), whether it is the reply's last line, and its text.
pub fn parse_reply_line(line: &[u8]) -> Result<(u16, bool, String), String> {
    let bad = || format!("not an SMTP reply: {:.80?}", String::from_utf8_lossy(line));
    let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit)).ok_or_else(bad)?;
    let code = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..600).contains(&code) {
        return Err(bad());
    }
    let last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err(bad()),
    };
    let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default());
    Ok((code, last, text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()))
}

/// A whole reply: one code, one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The code and text, short enough for an error message.
    pub fn summary(&self) -> String {
        let text = self.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ");
        let mut out = format!("{} {text}", self.code);
        if out.len() > MAX_ERROR_TEXT {
            let cut = (0..=MAX_ERROR_TEXT).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
            out.truncate(cut);
            out.push('…');
        }
        out.trim_end().to_owned()
    }

    /// The extensions an EHLO reply lists (the lines after the first), upper-cased.
    fn extensions(&self) -> Vec<String> {
        self.lines.iter().skip(1).map(|l| l.trim().to_ascii_uppercase()).collect()
    }
}

/// Gathers the lines of one reply.
#[derive(Debug, Default)]
struct ReplyBuilder {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyBuilder {
    /// Takes one line; the reply once it is complete.
    fn push(&mut self, line: &[u8]) -> Result<Option<Reply>, String> {
        let (code, last, text) = parse_reply_line(line)?;
        if self.code.is_some_and(|c| c != code) {
            return Err(format!("a reply changes its code from {} to {code}", self.code.unwrap_or_default()));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(format!("a reply longer than {MAX_REPLY_LINES} lines"));
        }
        self.code = Some(code);
        self.lines.push(text);
        Ok(last.then(|| Reply { code, lines: std::mem::take(&mut self.lines) }))
    }
}

/// Fails unless the reply's code is one of `codes`, with the server's reply in the error.
fn expect(what: &str, reply: Reply, codes: &[u16]) -> Result<Reply, String> {
    if codes.contains(&reply.code) { Ok(reply) } else { Err(format!("{what} refused: {}", reply.summary())) }
}

/// Whether the EHLO extensions offer `keyword`.
fn offers(extensions: &[String], keyword: &str) -> bool {
    extensions.iter().any(|e| e.split_whitespace().next() == Some(keyword))
}

/// Whether the EHLO extensions offer AUTH PLAIN.
fn offers_auth_plain(extensions: &[String]) -> bool {
    extensions.iter().any(|e| {
        let mut words = e.split(|c: char| c.is_whitespace() || c == '=');
        words.next() == Some("AUTH") && words.any(|w| w == "PLAIN")
    })
}

/// One SMTP connection: the stream and what was read ahead of the current line.
struct Conn<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Self { io, buf: Vec::new() }
    }

    /// One line without its line ending, at most [`MAX_REPLY_LINE`] bytes.
    async fn read_line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                if end >= MAX_REPLY_LINE {
                    break;
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() >= MAX_REPLY_LINE {
                break;
            }
            let mut chunk = [0u8; 1024];
            let n = self.io.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        Err(format!("a reply line longer than {MAX_REPLY_LINE} bytes"))
    }

    async fn reply(&mut self) -> Result<Reply, String> {
        let mut builder = ReplyBuilder::default();
        loop {
            let line = self.read_line().await?;
            if let Some(reply) = builder.push(&line)? {
                return Ok(reply);
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.io.write_all(bytes).await.map_err(|e| format!("write: {e}"))?;
        self.io.flush().await.map_err(|e| format!("write: {e}"))
    }

    /// Sends one command line and reads its reply. The line may hold a credential: the buffer
    /// is wiped, and errors never repeat it.
    async fn command(&mut self, line: &str) -> Result<Reply, String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(line.len() + 2));
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes).await?;
        self.reply().await
    }

    /// EHLO; the extensions offered.
    async fn ehlo(&mut self, name: &str) -> Result<Vec<String>, String> {
        Ok(expect("EHLO", self.command(&format!("EHLO {name}")).await?, &[250])?.extensions())
    }

    /// The stream, for the TLS handshake. Anything the server sent after its answer to STARTTLS
    /// would be taken as coming over TLS by a careless client (CVE-2011-0411); here it fails.
    fn into_stream(self) -> Result<S, String> {
        if self.buf.is_empty() {
            Ok(self.io)
        } else {
            Err("the server sent more after agreeing to STARTTLS; refusing the connection".into())
        }
    }
}

/// The name given in EHLO: our address as a literal (RFC 5321 §4.1.3).
fn ehlo_name(local: Option<std::net::SocketAddr>) -> String {
    match local.map(|a| a.ip()) {
        Some(std::net::IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
        Some(ip) => format!("[{ip}]"),
        None => "[127.0.0.1]".into(),
    }
}

/// Sends the message (as [`message`] makes it) over a fresh connection.
pub async fn send(
    spec: &EmailSpec,
    secret: Option<&ChannelSecret>,
    message: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(), String> {
    let where_to = if spec.host.contains(':') {
        format!("[{}]:{}", spec.host, spec.port)
    } else {
        format!("{}:{}", spec.host, spec.port)
    };
    session(spec, secret, message, tls).await.map_err(|e| format!("SMTP {where_to}: {e}"))
}

async fn session(
    spec: &EmailSpec,
    secret: Option<&ChannelSecret>,
    message: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(), String> {
    let tcp =
        tokio::net::TcpStream::connect((spec.host.as_str(), spec.port)).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ehlo_name(tcp.local_addr().ok());
    let mut conn = Conn::new(tcp);
    expect("the greeting", conn.reply().await?, &[220])?;
    let extensions = conn.ehlo(&name).await?;
    if !spec.starttls {
        return transaction(conn, spec, None, message, &extensions).await;
    }
    if !offers(&extensions, "STARTTLS") {
        return Err("the server does not offer STARTTLS; nothing was sent".into());
    }
    let tls = tls.ok_or("no TLS configuration")?;
    let server_name = rustls::pki_types::ServerName::try_from(spec.host.clone())
        .map_err(|_| format!("{} is not a valid TLS server name", spec.host))?;
    expect("STARTTLS", conn.command("STARTTLS").await?, &[220])?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, conn.into_stream()?)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let mut conn = Conn::new(stream);
    // What the server said before TLS may have been tampered with: ask again.
    let extensions = conn.ehlo(&name).await?;
    transaction(conn, spec, secret, message, &extensions).await
}

/// AUTH (over TLS only), MAIL, RCPT, DATA. `secret` is `None` without TLS.
async fn transaction<S>(
    mut conn: Conn<S>,
    spec: &EmailSpec,
    secret: Option<&ChannelSecret>,
    message: &str,
    extensions: &[String],
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Some(user) = &spec.username {
        let password = secret.ok_or("no password: the channel's secret is needed over TLS")?;
        if !offers_auth_plain(extensions) {
            return Err("the server does not offer AUTH PLAIN".into());
        }
        let mut token = Zeroizing::new(Vec::with_capacity(user.len() + password.expose().len() + 2));
        token.push(0);
        token.extend_from_slice(user.as_bytes());
        token.push(0);
        token.extend_from_slice(password.expose().as_bytes());
        let encoded = Zeroizing::new(STANDARD.encode(&*token));
        let command = Zeroizing::new(format!("AUTH PLAIN {}", &*encoded));
        expect("AUTH PLAIN", conn.command(&command).await?, &[235])?;
    }
    expect("MAIL FROM", conn.command(&format!("MAIL FROM:<{}>", spec.from)).await?, &[250])?;
    for to in &spec.to {
        expect(&format!("RCPT TO:<{to}>"), conn.command(&format!("RCPT TO:<{to}>")).await?, &[250, 251])?;
    }
    expect("DATA", conn.command("DATA").await?, &[354])?;
    conn.write(message.as_bytes()).await?;
    expect("the message", conn.reply().await?, &[250])?;
    // The server took the message: whatever becomes of QUIT, it is delivered.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(QUIT_WAIT, async {
            let _ = conn.command("QUIT").await;
            let _ = conn.io.shutdown().await;
        })
        .await;
    });
    Ok(())
}

/// A header value on one line: control characters (CR and LF above all) become spaces, at most
/// `max` characters.
pub fn header_text(value: &str, max: usize) -> String {
    let flat: String = value.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect();
    flat.trim().to_owned()
}

/// A header value as it goes on the wire: as it is when ASCII, else RFC 2047 encoded words
/// (UTF-8, base64) on folded lines.
pub fn encode_header(value: &str) -> String {
    if value.is_ascii() {
        return value.to_owned();
    }
    // 45 bytes make 60 base64 characters: an encoded word of 72, under the limit of 75.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?utf-8?B?{}?=", STANDARD.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?utf-8?B?{}?=", STANDARD.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// Lines ending in CRLF (bare CR and LF too), a leading `.` doubled (RFC 5321 §4.5.2), and the
/// closing `.` line.
pub fn dot_stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut line_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\r\n");
                line_start = true;
            }
            c => {
                if line_start && c == '.' {
                    out.push('.');
                }
                out.push(c);
                line_start = false;
            }
        }
    }
    if !line_start {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// One field of the notice's alert as text on one line, if present.
fn alert_field(body: &Json, name: &str) -> Option<String> {
    let text = match alert_of(body)?.get(name)? {
        Json::Null => return None,
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = header_text(&text, 1000);
    (!text.is_empty()).then_some(text)
}

/// The subject: `[Palisade <SEVERITY>] <title> on <device>`, on one line.
pub fn subject(delivery: &Delivery) -> String {
    let body: Json = serde_json::from_str(&delivery.body).unwrap_or(Json::Null);
    let value = |v: Var| notice_value(delivery, &body, v);
    let title = Some(value(Var::Title)).filter(|t| !t.trim().is_empty()).unwrap_or_else(|| delivery.event.clone());
    format!(
        "[Palisade {}] {} on {}",
        header_text(&value(Var::Severity).to_uppercase(), 16),
        header_text(&title, 200),
        header_text(&value(Var::DeviceId), 64)
    )
}

/// The plain-text body: the title, the alert's fields, the detail.
fn body_text(delivery: &Delivery, body: &Json) -> String {
    let value = |v: Var| notice_value(delivery, body, v);
    let title = Some(value(Var::Title)).filter(|t| !t.trim().is_empty()).unwrap_or_else(|| delivery.event.clone());
    let mut out = header_text(&title, 1000);
    out.push_str("\n\n");
    let mut line = |label: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push_str(&format!("{label:<10}{}\n", header_text(&v, 1000)));
        }
    };
    line("Severity:", Some(value(Var::Severity).to_uppercase()));
    line("Device:", Some(value(Var::DeviceId)));
    for (label, name) in [
        ("Group:", "group"),
        ("Profile:", "profile"),
        ("Rule:", "rule"),
        ("Status:", "status"),
        ("Count:", "count"),
        ("Response:", "response"),
    ] {
        line(label, alert_field(body, name));
    }
    line("Alert:", Some(value(Var::AlertId)));
    line("Event:", Some(delivery.event.clone()));
    let at = body.get("timestamp_ms").and_then(Json::as_i64).unwrap_or(delivery.created_ms);
    line("Time:", Some(crate::api::convert::rfc3339(at)));
    let detail: String = value(Var::Detail)
        .chars()
        .map(|c| if c.is_control() && !matches!(c, '\n' | '\r' | '\t') { ' ' } else { c })
        .collect();
    if !detail.trim().is_empty() {
        out.push('\n');
        out.push_str(detail.trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "\n-- \nSent by Palisade through the channel {}.\n",
        header_text(&delivery.channel_name, 64)
    ));
    out
}

/// RFC 5322 `Date`.
fn date(now_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc2822).unwrap_or_default()
}

/// The whole message as sent after DATA: headers and body, CRLF line endings, dot-stuffed, ended
/// by the `.` line. Its Message-ID is the delivery's, the same on every attempt.
pub fn message(spec: &EmailSpec, delivery: &Delivery, now_ms: i64) -> String {
    let body: Json = serde_json::from_str(&delivery.body).unwrap_or(Json::Null);
    let text = body_text(delivery, &body);
    let (encoding, content) = if text.is_ascii() && text.lines().all(|l| l.len() <= 990) {
        ("7bit", text)
    } else {
        let encoded = STANDARD.encode(text.as_bytes());
        let lines: Vec<&str> =
            encoded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
        ("base64", lines.join("\n"))
    };
    let domain = spec.from.rsplit_once('@').map_or("palisade.invalid", |(_, d)| d);
    let id: String = delivery.id.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    let headers = [
        format!("Date: {}", date(now_ms)),
        format!("From: {}", header_text(&spec.from, 254)),
        format!("To: {}", spec.to.iter().map(|t| header_text(t, 254)).collect::<Vec<_>>().join(",\n ")),
        format!("Subject: {}", encode_header(&subject(delivery))),
        format!("Message-ID: <{id}@{domain}>"),
        "MIME-Version: 1.0".into(),
        "Content-Type: text/plain; charset=utf-8".into(),
        format!("Content-Transfer-Encoding: {encoding}"),
        "Auto-Submitted: auto-generated".into(),
        format!("X-Palisade-Event: {}", header_text(&delivery.event, 64)),
    ];
    dot_stuff(&format!("{}\n\n{content}", headers.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channel::{self, Target};
    use palisade_store::notify::{ChannelKind, DeliveryStatus};
    use serde_json::json;

    fn delivery(body: Json) -> Delivery {
        Delivery {
            id: "d-1".into(),
            channel_id: "c".into(),
            channel_name: "ops-mail".into(),
            alert_id: "a-1".into(),
            event: "alert.created".into(),
            severity: "high".into(),
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

    fn spec() -> EmailSpec {
        let config =
            json!({"host": "smtp.example", "from": "palisade@example.com", "to": ["a@example.com", "b@example.org"]});
        match channel::parse(ChannelKind::Email, &config, false).unwrap().target {
            Target::Email(e) => e,
            _ => panic!(),
        }
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_lines_in_crlf() {
        assert_eq!(dot_stuff(".a\n..b\r\nc.\rd\n.\n"), "..a\r\n...b\r\nc.\r\nd\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff("no newline"), "no newline\r\n.\r\n");
        assert_eq!(dot_stuff(""), ".\r\n");
        assert_eq!(dot_stuff("a\n.\n"), "a\r\n..\r\n.\r\n", "a lone dot cannot end the message early");
    }

    #[test]
    fn header_values_cannot_inject_headers() {
        assert_eq!(header_text("Door\r\nBcc: evil@example.com", 100), "Door  Bcc: evil@example.com");
        assert_eq!(header_text("a\u{0}b\u{85}c\td", 100), "a b c d");
        assert_eq!(header_text("abcdef", 3), "abc");
        let d = delivery(json!({"data": {"title": "Open\r\nBcc: evil@example.com\r\n\r\nbody", "device_id": "d\n1",
                                          "severity": "critical"}}));
        let m = message(&spec(), &d, 0);
        let (head, _) = m.split_once("\r\n\r\n").unwrap();
        assert!(!head.lines().any(|l| l.starts_with("Bcc")), "{head}");
        assert!(
            head.contains("\r\nSubject: [Palisade CRITICAL] Open  Bcc: evil@example.com    body on d 1\r\n"),
            "{head}"
        );
    }

    #[test]
    fn the_message_has_its_headers_and_the_alert() {
        let d = delivery(json!({"type": "alert.created", "timestamp_ms": 1_704_164_645_000_i64,
            "data": {"id": "a-1", "title": "Port scan", "detail": "ports 22, 23\n.hidden", "severity": "high",
                     "device_id": "dev-7", "group": "north", "rule": "scan", "count": 3, "response": null}}));
        let m = message(&spec(), &d, 1_704_164_645_000);
        let bare = m.replace("\r\n", "");
        assert!(m.ends_with("\r\n.\r\n") && !bare.contains('\n') && !bare.contains('\r'), "{m:?}");
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        for h in [
            "Date: Tue, 02 Jan 2024 03:04:05 +0000",
            "From: palisade@example.com",
            "To: a@example.com,\r\n b@example.org",
            "Subject: [Palisade HIGH] Port scan on dev-7",
            "Message-ID: <d-1@example.com>",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 7bit",
        ] {
            assert!(head.contains(h), "{h} in {head}");
        }
        for line in [
            "Severity: HIGH",
            "Device:   dev-7",
            "Group:    north",
            "Rule:     scan",
            "Count:    3",
            "Alert:    a-1",
            "Time:     2024-01-02T03:04:05Z",
            "ports 22, 23\r\n..hidden",
        ] {
            assert!(body.contains(line), "{line} in {body}");
        }
        assert!(!body.contains("Response"), "{body}");
        // Non-ASCII: an encoded subject, a base64 body.
        let d = delivery(
            json!({"data": {"title": "Tür offen – ünd noch viel mehr Text, der lang genug ist", "detail": "é"}}),
        );
        let m = message(&spec(), &d, 0);
        let subject = m.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject.starts_with("Subject: =?utf-8?B?") && subject.ends_with("?="), "{subject}");
        assert!(m.contains("Content-Transfer-Encoding: base64"));
        let words: String = m
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Subject: "))
            .take_while(|l| l.starts_with("Subject: ") || l.starts_with(' '))
            .map(|l| l.trim_start_matches("Subject: ").trim().trim_start_matches("=?utf-8?B?").trim_end_matches("?="))
            .map(|w| String::from_utf8(STANDARD.decode(w).unwrap()).unwrap())
            .collect();
        assert_eq!(words, "[Palisade HIGH] Tür offen – ünd noch viel mehr Text, der lang genug ist on dev-7");
    }

    #[test]
    fn replies_parse_line_by_line() {
        assert_eq!(parse_reply_line(b"250 OK").unwrap(), (250, true, "OK".into()));
        assert_eq!(parse_reply_line(b"250-STARTTLS").unwrap(), (250, false, "STARTTLS".into()));
        assert_eq!(parse_reply_line(b"354").unwrap(), (354, true, String::new()));
        for bad in [&b"25 OK"[..], b"abc OK", b"250+x", b"199 x", b"600 x", b""] {
            assert!(parse_reply_line(bad).is_err(), "{bad:?}");
        }
        let mut b = ReplyBuilder::default();
        assert_eq!(b.push(b"250-smtp.example hello").unwrap(), None);
        assert_eq!(b.push(b"250-AUTH LOGIN PLAIN").unwrap(), None);
        let r = b.push(b"250 STARTTLS").unwrap().unwrap();
        assert_eq!((r.code, r.lines.len()), (250, 3));
        let ext = r.extensions();
        assert!(offers(&ext, "STARTTLS") && offers_auth_plain(&ext) && !offers(&ext, "SMTPUTF8"));
        assert!(offers_auth_plain(&["AUTH=PLAIN".into()]) && !offers_auth_plain(&["AUTH LOGIN".into()]));
        let mut b = ReplyBuilder::default();
        b.push(b"250-a").unwrap();
        assert!(b.push(b"550 b").is_err(), "one reply, one code");
        let e = expect("RCPT TO:<x@y>", Reply { code: 550, lines: vec!["5.1.1 no such user".into()] }, &[250]);
        assert_eq!(e.unwrap_err(), "RCPT TO:<x@y> refused: 550 5.1.1 no such user");
    }

    #[tokio::test]
    async fn reads_are_bounded() {
        let (mut server, client) = tokio::io::duplex(64 * 1024);
        let mut conn = Conn::new(client);
        server.write_all(b"220-first\r\n220 second\n").await.unwrap();
        assert_eq!(conn.reply().await.unwrap().lines, ["first", "second"]);
        server.write_all(&vec![b'2'; MAX_REPLY_LINE + 10]).await.unwrap();
        assert!(conn.reply().await.unwrap_err().contains("longer than"));

        let (mut server, client) = tokio::io::duplex(64 * 1024);
        let mut conn = Conn::new(client);
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        server.write_all(many.as_bytes()).await.unwrap();
        assert!(conn.reply().await.unwrap_err().contains("lines"));
        drop(server);
        assert!(conn.reply().await.is_err());
    }
}
