//! The test harness: a real server process, an HTTPS client that trusts only its root CA, and
//! the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Which database a server uses.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// A URL pointing at a schema of the test's own.
    Postgres(String),
}

impl Backend {
    /// SQLite, or PostgreSQL with a fresh schema; `None` when PostgreSQL is not configured.
    pub async fn named(name: &str) -> Option<Self> {
        match name {
            "sqlite" => Some(Self::Sqlite),
            _ => {
                let base = std::env::var("PALISADE_TEST_POSTGRES_URL").ok()?;
                let schema = format!("it_{}", random_hex(6));
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&base).await.unwrap();
                sqlx::Executor::execute(&mut c, format!("CREATE SCHEMA {schema}").as_str()).await.unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                Some(Self::Postgres(format!("{base}{sep}options=-c%20search_path%3D{schema}")))
            }
        }
    }
}

pub fn random_hex(n: usize) -> String {
    use std::io::Read as _;
    let mut b = vec![0; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running `palisade serve`.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub device_addr: SocketAddr,
    pub mqtt_addr: SocketAddr,
    pub backend: Backend,
    pub client: Client,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_on(Backend::Sqlite).await
    }

    pub async fn start_on(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// A fresh server with extra environment variables (`PALISADE_…` settings).
    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Self::launch(&dir, backend, env).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing (or new) data directory.
    pub async fn start_in(dir: &Path, backend: Backend) -> Self {
        Self::launch(dir, backend, &[]).await
    }

    /// Starts on an existing data directory with the MQTT listener on `mqtt` (a restart that
    /// devices can find again).
    pub async fn start_in_at(dir: &Path, backend: Backend, mqtt: SocketAddr) -> Self {
        Self::launch_at(dir, backend, &[], &mqtt.to_string()).await
    }

    async fn launch(dir: &Path, backend: Backend, env: &[(&str, &str)]) -> Self {
        Self::launch_at(dir, backend, env, "127.0.0.1:0").await
    }

    async fn launch_at(dir: &Path, backend: Backend, env: &[(&str, &str)], mqtt: &str) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.envs(env.iter().copied());
        cmd.arg("serve").arg("--data-dir").arg(dir).arg("--console-addr").arg("127.0.0.1:0");
        cmd.arg("--device-https-addr").arg("127.0.0.1:0").arg("--mqtt-addr").arg(mqtt);
        if let Backend::Postgres(url) = &backend {
            cmd.arg("--database-url").arg(url);
        }
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.with_extension("log")).unwrap();
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log)).stdin(Stdio::null()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("server did not print its listening line within 60 s")
            .unwrap()
            .unwrap_or_else(|| {
                panic!("server exited: {}", std::fs::read_to_string(dir.with_extension("log")).unwrap())
            });
        assert!(line.starts_with(r#"{"event":"listening","console":"#), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        let addr: SocketAddr = v["console"].as_str().unwrap().parse().unwrap();
        let device_addr: SocketAddr = v["device_https"].as_str().unwrap().parse().unwrap();
        let mqtt_addr: SocketAddr = v["mqtt"].as_str().unwrap().parse().unwrap();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = Client::new(addr, &dir.join("pki/root-ca.pem"));
        Self { child, dir: dir.to_owned(), addr, device_addr, mqtt_addr, backend, client, _tmp: None }
    }

    /// Runs a local CLI command against this server's data (adds --data-dir and, on
    /// PostgreSQL, --database-url).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args).arg("--data-dir").arg(&self.dir);
        if let Backend::Postgres(url) = &self.backend {
            cmd.arg("--database-url").arg(url);
        }
        cmd.output().unwrap()
    }

    pub fn api_key(&self, role: &str) -> String {
        let out = self.cli(&["apikey", "create", "--role", role, "--name", &format!("test-{role}")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("pal_"), "{key}");
        key
    }

    pub fn kill9(&mut self) {
        self.child.start_kill().unwrap();
    }

    /// SIGTERM, then waits for the exit status. (The data directory stays until `self` drops.)
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap();
        let st = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
        assert!(st.success());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.expect("no exit after SIGTERM").unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }
}

/// An HTTPS client trusting only the server's root CA.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

/// A response: status, headers, body.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the error format and returns the code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code: {v}"));
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "no error.message: {v}");
        code.to_owned()
    }
}

impl Client {
    pub fn new(addr: SocketAddr, root_ca: &Path) -> Self {
        let pem = std::fs::read(root_ca).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        Self { addr, tls: tokio_rustls::TlsConnector::from(Arc::new(config)) }
    }

    pub async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Resp {
        let headers: Vec<(&str, String)> =
            key.map(|k| vec![("authorization", format!("Bearer {k}"))]).unwrap_or_default();
        self.send_with(method, path, &headers, body).await
    }

    /// A request with arbitrary headers (cookies, CSRF tokens).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.tls.connect(name, tcp).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = match body {
            Some((ct, bytes)) => req.header("content-type", ct).body(Full::new(Bytes::from(bytes))).unwrap(),
            None => req.body(Full::new(Bytes::new())).unwrap(),
        };
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = if headers.get("content-type").is_some_and(|c| c == "text/event-stream") {
            // An event stream does not end: its first frame stands for the body.
            match resp.into_body().frame().await {
                Some(Ok(f)) => f.into_data().unwrap_or_default(),
                _ => Bytes::new(),
            }
        } else {
            resp.into_body().collect().await.unwrap().to_bytes()
        };
        Resp { status, headers, body }
    }

    /// Server-Sent Events from `path`: each chunk as it arrives, until the test drops the receiver.
    pub async fn events(&self, path: &str, key: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.tls.connect(name, tcp).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .uri(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), hyper::StatusCode::OK);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut body = resp.into_body();
        tokio::spawn(async move {
            while let Some(Ok(f)) = body.frame().await {
                if let Ok(data) = f.into_data()
                    && tx.send(String::from_utf8_lossy(&data).into_owned()).is_err()
                {
                    return;
                }
            }
        });
        rx
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.send(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, json: Value) -> Resp {
        self.send(Method::POST, path, Some(key), Some(("application/json", json.to_string().into_bytes()))).await
    }

    pub async fn put(&self, path: &str, key: &str, json: Value) -> Resp {
        self.send(Method::PUT, path, Some(key), Some(("application/json", json.to_string().into_bytes()))).await
    }

    pub async fn patch(&self, path: &str, key: &str, json: Value) -> Resp {
        self.send(Method::PATCH, path, Some(key), Some(("application/json", json.to_string().into_bytes()))).await
    }
}

/// A device body with a unique serial.
pub fn device(serial: &str, criticality: &str, group: &str) -> Value {
    serde_json::json!({
        "serial": serial, "model": "meter-3", "vendor": "acme", "owner": "metering",
        "owner_contact": format!("{serial}-owner@example.com"), "criticality": criticality,
        "group": group, "region": "us-central", "tags": ["outdoor"],
        "location": {"lat": 41.8781, "lon": -87.6298}, "firmware_version": "1.4.2"
    })
}
