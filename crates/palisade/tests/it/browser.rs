//! A WebDriver harness for the web console: headless Chromium driven through chromedriver with the
//! W3C WebDriver protocol (JSON over plain HTTP on loopback).
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (see README). Every helper panics
//! with the WebDriver error and the page it happened on: a failure is a test failure. Waiting is
//! always a bounded poll for a condition, never a fixed pause.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::common::{Server, random_hex};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long `find` waits for an element to appear.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How long chromedriver may take to start and report itself ready.
const STARTUP: Duration = Duration::from_secs(10);

/// The longest any one WebDriver command may take (page loads are capped at 30 s by the session).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Interval between two checks of a polled condition.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1440,1000",
];

/// Where tests put their screenshots: `<workspace>/target/console-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).unwrap_or(crate_dir).join("target/console-screenshots")
}

/// A failed WebDriver command: the W3C error code and message, or what went wrong on the wire.
#[derive(Debug)]
struct WdError {
    error: String,
    message: String,
}

impl WdError {
    fn transport(message: String) -> Self {
        Self { error: "transport".into(), message }
    }

    fn is(&self, code: &str) -> bool {
        self.error == code
    }
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Chromedriver appends "(Session info: chrome=…)" on a line of its own: noise here.
        let message = self.message.lines().next().unwrap_or_default();
        write!(f, "{}: {}", self.error, message)
    }
}

/// One WebDriver request to chromedriver at `addr`; the response's `value`, or the error.
async fn wd_request(addr: SocketAddr, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
    let what = format!("{method} {path}");
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| WdError::transport(format!("cannot connect to chromedriver at {addr}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| WdError::transport(format!("HTTP handshake with chromedriver: {e}")))?;
        tokio::spawn(conn);
        let req = Request::builder().method(method).uri(path).header("host", addr.to_string());
        let req = match body {
            Some(v) => req.header("content-type", "application/json").body(Full::new(Bytes::from(v.to_string()))),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|e| WdError::transport(format!("bad request: {e}")))?;
        let resp = sender.send_request(req).await.map_err(|e| WdError::transport(format!("no response: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| WdError::transport(format!("reading the response: {e}")))?
            .to_bytes();
        let mut v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            WdError::transport(format!("HTTP {status}, not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        })?;
        let value = v.get_mut("value").map(Value::take).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        Err(WdError {
            error: field("error").unwrap_or_else(|| format!("HTTP {status}")),
            message: field("message").unwrap_or_else(|| value.to_string()),
        })
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(WdError::transport(format!("{what}: no answer within {COMMAND_TIMEOUT:?}"))),
    }
}

/// Calls `attempt` until it yields a value, at most `timeout` long (at least once).
async fn poll<T>(timeout: Duration, mut attempt: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(v) = attempt().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// An open WebDriver session: what a `Browser` and its elements share.
#[derive(Debug, Clone)]
struct Session {
    addr: SocketAddr,
    id: String,
}

impl Session {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        wd_request(self.addr, method, &format!("/session/{}{path}", self.id), body).await
    }

    /// `call`, panicking with `what`, the error and the page on failure.
    async fn must(&self, method: Method, path: &str, body: Option<Value>, what: &str) -> Value {
        match self.call(method, path, body).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("{what} failed: {e}")).await,
        }
    }

    async fn fail(&self, msg: &str) -> ! {
        let page = self.where_now().await;
        panic!("browser: {msg}\n  {page}");
    }

    /// Best effort: the current page and a screenshot of it, to say where a failure happened.
    async fn where_now(&self) -> String {
        let url = match self.call(Method::GET, "/url", None).await {
            Ok(v) => v.as_str().unwrap_or_default().to_owned(),
            Err(e) => return format!("(page unknown: {e})"),
        };
        let title = self.call(Method::GET, "/title", None).await.ok();
        let title = title.as_ref().and_then(Value::as_str).unwrap_or_default();
        let shot = screenshot_dir().join(format!("failure-{}.png", random_hex(4)));
        let saved = match self.call(Method::GET, "/screenshot", None).await {
            Ok(v) => save_png(&v, &shot).map(|()| format!("screenshot: {}", shot.display())),
            Err(e) => Err(e.to_string()),
        };
        format!("on {url} (title {title:?}); {}", saved.unwrap_or_else(|e| format!("no screenshot: {e}")))
    }

    /// The first element matching `css` under `scope` ("" or "/element/ID"), if any now.
    async fn find_now(&self, scope: &str, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css});
        match self.call(Method::POST, &format!("{scope}/element"), Some(body)).await {
            Ok(v) => Some(element_id(&v)),
            Err(e) if e.is("no such element") => None,
            Err(e) => self.fail(&format!("finding `{css}` failed: {e}")).await,
        }
    }

    /// The first element matching `css` under `scope`, waiting up to `timeout` for it.
    async fn find_within(&self, scope: &str, css: &str, timeout: Duration) -> String {
        match poll(timeout, async || self.find_now(scope, css).await).await {
            Some(id) => id,
            None => self.fail(&format!("no element matches `{css}` after {timeout:?}")).await,
        }
    }

    async fn find_all(&self, scope: &str, css: &str) -> Vec<String> {
        let body = json!({"using": "css selector", "value": css});
        let v = self.must(Method::POST, &format!("{scope}/elements"), Some(body), &format!("finding `{css}`")).await;
        v.as_array().unwrap_or_else(|| panic!("browser: /elements answered {v}")).iter().map(element_id).collect()
    }

    fn element(&self, id: String, css: &str) -> Element {
        Element { session: self.clone(), id, css: css.to_owned() }
    }
}

fn element_id(v: &Value) -> String {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("browser: not an element reference: {v}"))
        .to_owned()
}

/// Decodes a base64 PNG from WebDriver and writes it to `path`, creating its parent directories.
fn save_png(v: &Value, path: &Path) -> Result<(), String> {
    let b64 = v.as_str().ok_or_else(|| format!("screenshot is not a string: {v}"))?;
    let png = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("not base64: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, png).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Keeps reading `from` into `log` so the process never blocks on a full pipe.
fn drain(from: impl AsyncRead + Unpin + Send + 'static, log: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// Headless Chromium under chromedriver, with one WebDriver session. Dropping it ends the
/// session (so Chromium exits) and kills chromedriver; `quit` does the same and checks it.
#[derive(Debug)]
pub struct Browser {
    session: Session,
    /// Chromium's browser process, to kill should ending the session fail.
    chromium_pid: Option<u32>,
    open: bool,
    driver: Child,
    /// Chromium's profile and the temporary files of both programs, removed on drop.
    _scratch: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Self {
        for (bin, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(bin).exists(),
                "browser: {bin} is missing (Debian package `{package}`): browser tests need the Debian packages \
                 `chromium` and `chromium-driver`: `apt-get install chromium chromium-driver` (see README)"
            );
        }
        let scratch = tempfile::Builder::new().prefix("palisade-chromium-").tempdir().unwrap();
        let (profile, tmp) = (scratch.path().join("profile"), scratch.path().join("tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        // Port 0: chromedriver picks a free port and says which, so no other test can race us to it.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            // Chromedriver's scoped directories, which it does not always remove, land in `scratch`.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("browser: cannot run {CHROMEDRIVER}: {e}"));
        let driver_log = Arc::new(Mutex::new(String::new()));
        drain(driver.stderr.take().unwrap(), driver_log.clone());
        let mut stdout = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(STARTUP, async {
            while let Ok(Some(line)) = stdout.next_line().await {
                driver_log.lock().unwrap().push_str(&format!("{line}\n"));
                // "ChromeDriver was started successfully on port 41903."
                if line.contains("started successfully") {
                    let port = line.rsplit("on port ").next().unwrap_or_default().trim_end_matches('.');
                    return port.parse::<u16>().ok().filter(|p| *p != 0);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let log = driver_log.lock().unwrap().clone();
        let port =
            port.unwrap_or_else(|| panic!("browser: chromedriver did not report its port within {STARTUP:?}:\n{log}"));
        drain(stdout.into_inner().into_inner(), driver_log.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));

        let ready = poll(STARTUP, async || {
            let status = wd_request(addr, Method::GET, "/status", None).await.ok()?;
            status.get("ready").and_then(Value::as_bool).filter(|r| *r)
        })
        .await;
        assert!(ready.is_some(), "browser: chromedriver on {addr} not ready within {STARTUP:?}");

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "pageLoadStrategy": "normal",
            "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 30_000},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created = wd_request(addr, Method::POST, "/session", Some(caps)).await.unwrap_or_else(|e| {
            let log = driver_log.lock().unwrap().clone();
            panic!("browser: chromedriver could not start {CHROMIUM}: {e}\nchromedriver output:\n{log}")
        });
        let id = created["sessionId"].as_str().unwrap_or_else(|| panic!("browser: no sessionId in {created}"));
        let chromium_pid = created["capabilities"]["goog:processID"].as_u64().and_then(|p| u32::try_from(p).ok());
        Self { session: Session { addr, id: id.to_owned() }, chromium_pid, open: true, driver, _scratch: scratch }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.session.must(Method::POST, "/url", Some(json!({"url": url})), &format!("opening {url}")).await;
    }

    pub async fn current_url(&self) -> String {
        let v = self.session.must(Method::GET, "/url", None, "reading the URL").await;
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn title(&self) -> String {
        let v = self.session.must(Method::GET, "/title", None, "reading the title").await;
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn page_source(&self) -> String {
        let v = self.session.must(Method::GET, "/source", None, "reading the page source").await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching `css`, waiting up to `DEFAULT_WAIT` for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(css, DEFAULT_WAIT).await
    }

    /// The first element matching `css`, waiting up to `timeout` for it to appear.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let id = self.session.find_within("", css, timeout).await;
        self.session.element(id, css)
    }

    /// Every element matching `css` now (no waiting; possibly none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.session.find_all("", css).await.into_iter().map(|id| self.session.element(id, css)).collect()
    }

    /// The first element matching `css` now, if any (no waiting).
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.session.find_now("", css).await.map(|id| self.session.element(id, css))
    }

    /// Waits up to `timeout` until the first element matching `css` has a text containing
    /// `needle`, and returns it. The element is looked up afresh on each check, so a page that
    /// replaces it meanwhile is fine.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> Element {
        let mut last = None;
        let found = poll(timeout, async || {
            let id = self.session.find_now("", css).await?;
            match self.session.call(Method::GET, &format!("/element/{id}/text"), None).await {
                Ok(text) => {
                    let text = text.as_str().unwrap_or_default().to_owned();
                    let hit = text.contains(needle);
                    last = Some(text);
                    hit.then_some(id)
                }
                Err(e) if e.is("stale element reference") => None,
                Err(e) => self.session.fail(&format!("reading the text of `{css}` failed: {e}")).await,
            }
        })
        .await;
        match found {
            Some(id) => self.session.element(id, css),
            None => {
                let seen = last.map_or_else(|| "no such element".to_owned(), |t| format!("its text was {t:?}"));
                let msg = format!("`{css}` did not contain {needle:?} within {timeout:?}; {seen}");
                self.session.fail(&msg).await
            }
        }
    }

    /// Runs `js` as a function body (use `return`) with `args` as `arguments`; its result.
    /// `Element::as_arg` passes an element.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": js, "args": args});
        self.session.must(Method::POST, "/execute/sync", Some(body), "running a script").await
    }

    /// Saves a PNG of the viewport to `path`, creating its parent directories.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let v = self.session.must(Method::GET, "/screenshot", None, "taking a screenshot").await;
        if let Err(e) = save_png(&v, path) {
            panic!("browser: saving the screenshot {}: {e}", path.display());
        }
    }

    /// The host (`name:port`) of every request the current page made, its own navigation first,
    /// one entry per request, from the Resource Timing API. A request appears once its response
    /// has ended (an open event stream does not), and requests made by frames are not included.
    pub async fn request_hosts(&self) -> Vec<String> {
        let js = "return performance.getEntriesByType('navigation')\
                  .concat(performance.getEntriesByType('resource'))\
                  .map(e => new URL(e.name).host);";
        let v = self.execute(js, vec![]).await;
        let hosts = v.as_array().unwrap_or_else(|| panic!("browser: request hosts: {v}"));
        hosts.iter().map(|h| h.as_str().unwrap_or_default().to_owned()).collect()
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn quit(mut self) {
        if let Err(e) = self.session.call(Method::DELETE, "", None).await {
            panic!("browser: ending the session failed: {e}");
        }
        self.open = false;
        self.driver.start_kill().unwrap();
        let waited = tokio::time::timeout(STARTUP, self.driver.wait()).await;
        assert!(waited.is_ok(), "browser: chromedriver did not exit within {STARTUP:?} of being killed");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // Killing chromedriver alone would leave Chromium running: end the session first, with a
        // blocking request (no async in drop), and kill Chromium should that fail.
        if delete_session_blocking(self.session.addr, &self.session.id).is_err()
            && let Some(pid) = self.chromium_pid
        {
            let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
        // `kill_on_drop` stops chromedriver; `_scratch` removes the profile and temporary files.
    }
}

/// `DELETE /session/ID` over a plain socket, with bounded waits.
fn delete_session_blocking(addr: SocketAddr, id: &str) -> std::io::Result<()> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "DELETE /session/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    // The status line is enough: "HTTP/1.1 200 OK".
    let mut head = Vec::new();
    let mut buf = [0; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    if head.starts_with(b"HTTP/1.1 2") {
        Ok(())
    } else {
        Err(std::io::Error::other(String::from_utf8_lossy(&head).into_owned()))
    }
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element {
    session: Session,
    id: String,
    /// The selector that found it, for messages.
    css: String,
}

impl Element {
    async fn call(&self, method: Method, what: &str, body: Option<Value>) -> Value {
        let path = format!("/element/{}/{what}", self.id);
        let msg = format!("{what} on `{}`", self.css);
        self.session.must(method, &path, body, &msg).await
    }

    pub async fn click(&self) {
        self.call(Method::POST, "click", Some(json!({}))).await;
    }

    /// Types `text` into the element (focusing it first).
    pub async fn send_keys(&self, text: &str) {
        self.call(Method::POST, "value", Some(json!({"text": text}))).await;
    }

    pub async fn clear(&self) {
        self.call(Method::POST, "clear", Some(json!({}))).await;
    }

    /// The rendered text (what a user sees; hidden parts excluded).
    pub async fn text(&self) -> String {
        self.call(Method::GET, "text", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute as written in the HTML; `None` when absent. (An input's current value is
    /// `prop("value")`.)
    pub async fn attr(&self, name: &str) -> Option<String> {
        let v = self.call(Method::GET, &format!("attribute/{}", percent_encode(name)), None).await;
        match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }

    /// A DOM property, such as an input's live `value` or `checked`; `null` when undefined.
    pub async fn prop(&self, name: &str) -> Value {
        self.call(Method::GET, &format!("property/{}", percent_encode(name)), None).await
    }

    pub async fn is_displayed(&self) -> bool {
        self.call(Method::GET, "displayed", None).await.as_bool().unwrap_or(false)
    }

    /// The first descendant matching `css`, waiting up to `DEFAULT_WAIT` for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let id = self.session.find_within(&format!("/element/{}", self.id), css, DEFAULT_WAIT).await;
        self.session.element(id, css)
    }

    /// Every descendant matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let ids = self.session.find_all(&format!("/element/{}", self.id), css).await;
        ids.into_iter().map(|id| self.session.element(id, css)).collect()
    }

    /// The element as a script argument for `Browser::execute`.
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn browser_harness_drives_headless_chromium() {
    let server = Server::start().await;
    let browser = Browser::start().await;

    let url = format!("https://{}/healthz", server.addr);
    browser.goto(&url).await;
    assert_eq!(browser.current_url().await, url);
    let expected = server.client.send(Method::GET, "/healthz", None, None).await.text();
    assert_eq!(serde_json::from_str::<Value>(&expected).unwrap(), json!({"status": "ok"}));
    let body = browser.find("body").await.text().await;
    assert_eq!(body.trim(), expected.trim(), "{}", browser.page_source().await);

    let shot = screenshot_dir().join("browser-harness-healthz.png");
    let _ = std::fs::remove_file(&shot);
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", shot.display());

    let hosts = browser.request_hosts().await;
    assert!(!hosts.is_empty(), "the page's own request is missing");
    let own = server.addr.to_string();
    assert!(hosts.iter().all(|h| *h == own), "requests to other hosts than {own}: {hosts:?}");

    browser.quit().await;
}

/// The element helpers, on a page of the test's own (no server).
#[tokio::test]
async fn browser_harness_finds_clicks_and_types() {
    let browser = Browser::start().await;
    let page = r#"<title>t</title><form id="f"><input id="name" value="old">
        <button type="button" id="go" onclick="setTimeout(() => {
          const p = document.createElement('p'); p.id = 'late';
          p.textContent = 'hello ' + document.getElementById('name').value;
          document.body.append(p); }, 300)">Go</button></form>
        <ul><li>a</li><li>b</li><li hidden>c</li></ul><div id="msg">waiting</div>"#;
    browser.goto(&format!("data:text/html;charset=utf-8,{}", percent_encode(page))).await;
    assert_eq!(browser.title().await, "t");
    assert!(browser.try_find("#late").await.is_none());

    let name = browser.find("#name").await;
    assert_eq!(name.attr("value").await.as_deref(), Some("old"));
    assert_eq!(name.attr("data-missing").await, None);
    name.clear().await;
    name.send_keys("world").await;
    assert_eq!(name.prop("value").await, json!("world"));
    assert_eq!(name.attr("value").await.as_deref(), Some("old"), "the attribute is what the HTML says");

    browser.find("#f").await.find("#go").await.click().await;
    let late = browser.find("#late").await;
    assert_eq!(late.text().await, "hello world");

    let items = browser.find_all("li").await;
    assert_eq!(items.len(), 3);
    assert!(items[0].is_displayed().await);
    assert!(!items[2].is_displayed().await);
    assert_eq!(browser.find("ul").await.find_all("li").await.len(), 3);

    let msg = browser.find("#msg").await;
    let changed =
        browser.execute("arguments[0].textContent = arguments[1]; return 42;", vec![msg.as_arg(), json!("done")]);
    assert_eq!(changed.await, json!(42));
    browser.wait_for_text("#msg", "done", Duration::from_secs(2)).await;
    assert!(browser.request_hosts().await.iter().all(String::is_empty), "a data: page made requests");

    browser.quit().await;
}
