//! End-to-end benchmark of vulnerability exposure through the server's HTTPS API (issue 10).
//! Driven by `scripts/bench-vuln.sh`; three subcommands:
//!
//! ```text
//! vuln_bench generate --dir D [--builds 1000] [--components 200] [--advisories 1000]
//!                     [--devices 1000000] [--big 10000] [--seed N]
//! vuln_bench put-sboms --url https://localhost:PORT --ca CA --key KEY --dir D [--concurrency 1]
//! vuln_bench query --url https://localhost:PORT --ca CA --key KEY --ids FILE
//!                  [--requests 10000] [--concurrency 1] [--seed N]
//! ```
//!
//! `generate` writes deterministic synthetic data (a small xorshift generator, no `rand`):
//! `sboms/NNNN.json` (CycloneDX 1.5) listed in `builds.tsv` (model, version, file),
//! `devices-NN.csv` (at most 100,000 rows each, the import's limit), `advisories/*.json` (OSV),
//! `big-sbom.json` and `ids.txt` (GHSA ids and CVE aliases to query).
//! `put-sboms` uploads every SBOM of `builds.tsv` over keep-alive connections; `query` fires
//! `GET /api/v1/vulnerabilities/{id}/devices` and prints latency percentiles.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "End-to-end vulnerability exposure benchmark through the HTTPS API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes the synthetic fleet, SBOMs and advisories into a directory.
    Generate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        builds: usize,
        #[arg(long, default_value_t = 200)]
        components: usize,
        #[arg(long, default_value_t = 1000)]
        advisories: usize,
        #[arg(long, default_value_t = 1_000_000)]
        devices: usize,
        /// Components of the one big SBOM.
        #[arg(long, default_value_t = 10_000)]
        big: usize,
        /// Packages in the shared pool.
        #[arg(long, default_value_t = 5000)]
        pool: usize,
        #[arg(long, default_value_t = 0x9e37_79b9_7f4a_7c15)]
        seed: u64,
    },
    /// Uploads every SBOM listed in DIR/builds.tsv with PUT /api/v1/firmware/{model}/{version}/sbom.
    PutSboms {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
    /// Fires GET /api/v1/vulnerabilities/{id}/devices and reports latency percentiles.
    Query {
        #[command(flatten)]
        server: ServerArgs,
        /// One vulnerability id or alias per line.
        #[arg(long)]
        ids: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        requests: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Page size asked for (the server's default is 100).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// https://HOST:PORT
    #[arg(long)]
    url: String,
    /// The server's root CA (DATA_DIR/pki/root-ca.pem).
    #[arg(long)]
    ca: PathBuf,
    /// An API key (`palisade apikey create`).
    #[arg(long, env = "PALISADE_API_KEY")]
    key: String,
}

// ---------------------------------------------------------------------------------------------
// Synthetic data

#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Skewed towards small values: popular packages show up in many builds.
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

/// One package of the pool: purl without version, OSV ecosystem and name, versions in order.
#[derive(Debug)]
struct Package {
    purl: String,
    osv_ecosystem: &'static str,
    osv_name: String,
    versions: Vec<String>,
}

fn make_pool(rng: &mut XorShift, size: usize) -> Vec<Package> {
    let mut pool = Vec::with_capacity(size);
    for n in 0..size {
        let major = rng.below(5);
        let mut versions = Vec::new();
        let (purl, osv_ecosystem, osv_name) = match n % 6 {
            0 => {
                for minor in 0..8 {
                    versions.push(format!("{major}.{minor}.{}", rng.below(12)));
                }
                (format!("pkg:npm/lib{n}"), "npm", format!("lib{n}"))
            }
            1 => {
                for minor in 0..8 {
                    let patch = rng.below(10);
                    versions.push(match rng.below(6) {
                        0 => format!("{major}.{minor}.{patch}.Final"),
                        1 => format!("{major}.{minor}-beta{}", patch + 1),
                        _ => format!("{major}.{minor}.{patch}"),
                    });
                }
                let group = format!("org.example.g{}", n % 97);
                (format!("pkg:maven/{group}/artifact{n}"), "Maven", format!("{group}:artifact{n}"))
            }
            2 => {
                for minor in 0..8 {
                    versions.push(match rng.below(5) {
                        0 => format!("{major}.{minor}.0rc{}", rng.below(3) + 1),
                        1 => format!("{major}.{minor}"),
                        _ => format!("{major}.{minor}.{}", rng.below(9)),
                    });
                }
                (format!("pkg:pypi/py-pkg{n}"), "PyPI", format!("py-pkg{n}"))
            }
            3 => {
                for minor in 0..8 {
                    versions.push(format!("v{major}.{minor}.{}", rng.below(20)));
                }
                let module = format!("github.com/org{}/mod{n}", n % 50);
                (format!("pkg:golang/{module}"), "Go", module)
            }
            4 => {
                let epoch = if rng.below(4) == 0 { "1:" } else { "" };
                for minor in 0..8 {
                    versions.push(format!(
                        "{epoch}{major}.{minor}.{}-{}+deb12u{minor}",
                        rng.below(9),
                        rng.below(3) + 1
                    ));
                }
                (format!("pkg:deb/debian/deb{n}"), "Debian:12", format!("deb{n}"))
            }
            _ => {
                for minor in 0..8 {
                    versions.push(format!("0.{}.{}", major * 10 + minor, rng.below(15)));
                }
                (format!("pkg:cargo/crate{n}"), "crates.io", format!("crate{n}"))
            }
        };
        pool.push(Package { purl, osv_ecosystem, osv_name, versions });
    }
    pool
}

fn pick<'a>(rng: &mut XorShift, items: &'a [String]) -> &'a str {
    items.get(rng.below(items.len())).map_or("", String::as_str)
}

/// A purl with its version (percent-encoding the characters a purl version may not hold raw).
fn versioned_purl(package: &Package, version: &str) -> String {
    let version = version.replace('%', "%25").replace('+', "%2B").replace(':', "%3A");
    format!("{}@{version}", package.purl)
}

fn cyclonedx(model: &str, version: &str, components: Vec<Value>) -> Value {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:00000000-0000-4000-8000-{:012x}", fnv(&format!("{model}/{version}"))),
        "version": 1,
        "metadata": {
            "timestamp": "2025-01-01T00:00:00Z",
            "component": {"type": "firmware", "bom-ref": "fw", "name": model, "version": version},
        },
        "components": components,
    })
}

fn component_json(package: &Package, version: &str) -> Value {
    let purl = versioned_purl(package, version);
    json!({"type": "library", "bom-ref": purl, "name": package.osv_name, "version": version, "purl": purl})
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)) & 0xffff_ffff_ffff
}

/// A GHSA-looking id, unique per `n` (its first group encodes `n`).
fn ghsa(rng: &mut XorShift, n: usize) -> String {
    const ALPHABET: &[u8] = b"23456789cfghjmpqrvwx";
    let mut out = String::from("GHSA-");
    let mut rest = n;
    for _ in 0..4 {
        out.push(char::from(ALPHABET.get(rest % 20).copied().unwrap_or(b'x')));
        rest /= 20;
    }
    for _ in 0..2 {
        out.push('-');
        for _ in 0..4 {
            out.push(char::from(ALPHABET.get(rng.below(20)).copied().unwrap_or(b'x')));
        }
    }
    out
}

/// One OSV advisory and the ids it can be queried by (its id and its aliases).
fn advisory(rng: &mut XorShift, pool: &[Package], n: usize) -> (Value, Vec<String>) {
    const VECTORS: [&str; 5] = [
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N",
        "CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:L/A:N",
        "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
        "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:C/C:H/I:L/A:L",
    ];
    let id = ghsa(rng, n);
    let cve = format!("CVE-{}-{:05}", 2020 + n % 6, 10_000 + n);
    let mut aliases = vec![cve.clone()];
    let ids = vec![id.clone(), cve];
    let mut affected = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let Some(package) = pool.get(rng.skewed(pool.len())) else { continue };
        if package.osv_ecosystem == "Go" && aliases.len() == 1 {
            aliases.push(format!("GO-2025-{n:04}"));
        }
        let low = rng.below(package.versions.len());
        let introduced = if rng.below(3) == 0 { "0" } else { package.versions.get(low).map_or("0", String::as_str) };
        let kind = match package.osv_ecosystem {
            "Go" | "npm" | "crates.io" => "SEMVER",
            _ => "ECOSYSTEM",
        };
        let mut events = vec![json!({"introduced": introduced})];
        if let Some(fixed) = package.versions.get(low + 1 + rng.below(4)) {
            events.push(json!({"fixed": fixed}));
        }
        affected.push(json!({
            "package": {"ecosystem": package.osv_ecosystem, "name": package.osv_name},
            "ranges": [{"type": kind, "events": events}],
        }));
    }
    let doc = json!({
        "schema_version": "1.6.0",
        "id": id,
        "aliases": aliases,
        "published": "2025-01-01T00:00:00Z",
        "modified": "2025-01-02T00:00:00Z",
        "summary": format!("synthetic advisory {n}"),
        "details": "Generated by vuln_bench: a remote attacker can do synthetic harm.",
        "severity": [{"type": "CVSS_V3", "score": VECTORS.get(n % VECTORS.len()).copied().unwrap_or_default()}],
        "affected": affected,
        "references": [{"type": "ADVISORY", "url": format!("https://example.com/advisories/{n}")}],
    });
    (doc, ids)
}

#[allow(clippy::too_many_arguments)]
fn generate(
    dir: &Path,
    builds: usize,
    components: usize,
    advisories: usize,
    devices: usize,
    big: usize,
    pool_size: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = XorShift::new(seed);
    let pool = make_pool(&mut rng, pool_size.max(1));
    let components = components.min(pool.len());
    std::fs::create_dir_all(dir.join("sboms"))?;
    std::fs::create_dir_all(dir.join("advisories"))?;

    // Builds: MODELS models, each with a run of versions.
    const MODELS: [&str; 8] =
        ["smart_meter", "asset_tracker", "camera", "gateway", "thermostat", "door_lock", "plc", "infusion_pump"];
    let mut build_list = Vec::with_capacity(builds);
    let mut tsv = String::new();
    for b in 0..builds {
        let model = format!("{}-{}", MODELS.get(b % MODELS.len()).copied().unwrap_or("device"), b / 200);
        let k = b / MODELS.len();
        let version = format!("{}.{}.{}", 1 + k / 25 % 10, k % 25, b % 7);
        let mut chosen = std::collections::BTreeSet::new();
        while chosen.len() < components {
            chosen.insert(rng.skewed(pool.len()));
        }
        let comps: Vec<Value> = chosen
            .into_iter()
            .filter_map(|p| pool.get(p))
            .map(|package| {
                let version = pick(&mut rng, &package.versions).to_owned();
                component_json(package, &version)
            })
            .collect();
        let file = format!("sboms/{b:05}.json");
        std::fs::write(dir.join(&file), cyclonedx(&model, &version, comps).to_string())?;
        let _ = writeln!(tsv, "{model}\t{version}\t{file}");
        build_list.push((model, version));
    }
    std::fs::write(dir.join("builds.tsv"), tsv)?;

    // Devices, in CSV files of at most 100,000 rows (the import's limit).
    const HEADER: &str =
        "serial,model,vendor,owner,owner_contact,purpose,criticality,group,region,tags,lat,lon,firmware_version";
    const CRITICALITY: [&str; 4] = ["critical", "high", "medium", "low"];
    const REGIONS: [&str; 8] =
        ["us-east", "us-west", "us-central", "eu-west", "eu-central", "ap-south", "ap-east", "sa-east"];
    let mut files = 0usize;
    for (chunk, start) in (0..devices).step_by(100_000).enumerate() {
        let end = (start + 100_000).min(devices);
        let path = dir.join(format!("devices-{chunk:02}.csv"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        writeln!(out, "{HEADER}")?;
        for i in start..end {
            let Some((model, version)) = build_list.get(rng.skewed(build_list.len().max(1)) % build_list.len().max(1))
            else {
                bail!("no builds to put devices on");
            };
            // Few critical devices, many low ones.
            let criticality = CRITICALITY.get([0, 1, 1, 2, 2, 2, 3, 3, 3, 3].get(rng.below(10)).copied().unwrap_or(3));
            let criticality = criticality.copied().unwrap_or("low");
            let region = REGIONS.get(rng.below(REGIONS.len())).copied().unwrap_or("us-east");
            writeln!(
                out,
                "VB-{i:08},{model},acme,ops-{o},owner{o}@example.com,monitoring,{criticality},group-{g},{region},bench;outdoor,{lat:.4},{lon:.4},{version}",
                o = i % 100,
                g = rng.below(50),
                lat = 30.0 + (i % 2000) as f64 / 100.0,
                lon = -120.0 + (i % 5000) as f64 / 100.0,
            )?;
        }
        out.flush()?;
        files += 1;
    }

    // Advisories, one OSV file each, and the ids to query.
    let mut ids = Vec::new();
    for n in 0..advisories {
        let (doc, doc_ids) = advisory(&mut rng, &pool, n);
        let name = doc.get("id").and_then(Value::as_str).unwrap_or("advisory").to_owned();
        std::fs::write(dir.join("advisories").join(format!("{name}.json")), serde_json::to_vec_pretty(&doc)?)?;
        ids.extend(doc_ids);
    }
    let mut id_lines = ids.join("\n");
    id_lines.push('\n');
    std::fs::write(dir.join("ids.txt"), id_lines)?;

    // The big SBOM: every package of the pool in turn, versions shifting on each pass.
    let mut comps = Vec::with_capacity(big);
    let mut seen = std::collections::HashSet::new();
    for (n, package) in pool.iter().cycle().take(big.saturating_mul(2)).enumerate() {
        if comps.len() >= big {
            break;
        }
        let pass = n / pool.len();
        let version =
            package.versions.get((pass * 3 + n) % package.versions.len().max(1)).map_or("1.0.0", String::as_str);
        if seen.insert(versioned_purl(package, version)) {
            comps.push(component_json(package, version));
        }
    }
    let big_count = comps.len();
    std::fs::write(dir.join("big-sbom.json"), cyclonedx("gateway-big", "9.9.9", comps).to_string())?;

    println!(
        "generated in {:.1} s: {builds} SBOMs x {components} components from {} packages, {devices} devices in {files} CSV \
         file(s), {advisories} advisories ({} ids to query), big SBOM with {big_count} components",
        started.elapsed().as_secs_f64(),
        pool.len(),
        ids.len()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HTTPS client

#[derive(Clone)]
struct Client {
    host: String,
    port: u16,
    key: String,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

type Sender = SendRequest<Full<Bytes>>;

impl Client {
    fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let rest = args.url.strip_prefix("https://").ok_or_else(|| anyhow!("--url must start with https://"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| anyhow!("--url needs a port"))?;
        let port: u16 = port.parse().context("--url port")?;
        let pem = std::fs::read(&args.ca).with_context(|| format!("reading {}", args.ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(cert?)?;
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Self {
            host: host.to_owned(),
            port,
            key: args.key.trim().to_owned(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// A new keep-alive HTTP/1.1 connection.
    async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())?;
        let tls = self.tls.connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request on `sender` (reconnecting first if the server closed it).
    async fn send(
        &self,
        sender: &mut Sender,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        if sender.ready().await.is_err() {
            *sender = self.connect().await?;
        }
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.key));
        let req = match body {
            Some((content_type, bytes)) => req.header("content-type", content_type).body(Full::new(bytes))?,
            None => req.body(Full::new(Bytes::new()))?,
        };
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round().max(0.0) as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(latencies, 0.50)),
        ms(percentile(latencies, 0.90)),
        ms(percentile(latencies, 0.99)),
        latencies.last().copied().map_or(0.0, ms)
    )
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

async fn put_sboms(server: &ServerArgs, dir: &Path, concurrency: usize) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let tsv = std::fs::read_to_string(dir.join("builds.tsv"))?;
    let mut jobs = Vec::new();
    for line in tsv.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.split('\t');
        let (Some(model), Some(version), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("bad builds.tsv line: {line}");
        };
        let body = Bytes::from(std::fs::read(dir.join(file))?);
        jobs.push((format!("/api/v1/firmware/{}/{}/sbom", segment(model), segment(version)), body));
    }
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, jobs, next) = (client.clone(), jobs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = client.connect().await?;
            let mut latencies = Vec::new();
            let (mut vulnerable_builds, mut devices) = (0usize, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, body)) = jobs.get(i) else { break };
                let t = Instant::now();
                let (status, answer) =
                    client.send(&mut sender, Method::PUT, path, Some(("application/json", body.clone()))).await?;
                latencies.push(t.elapsed());
                if status != StatusCode::OK {
                    bail!("PUT {path}: {status}: {}", String::from_utf8_lossy(&answer));
                }
                let v: Value = serde_json::from_slice(&answer)?;
                if v.get("vulnerabilities").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                    vulnerable_builds += 1;
                }
                devices += v.get("devices").and_then(Value::as_u64).unwrap_or(0);
            }
            anyhow::Ok((latencies, vulnerable_builds, devices))
        }));
    }
    let mut latencies = Vec::new();
    let (mut vulnerable_builds, mut devices) = (0usize, 0u64);
    for task in tasks {
        let (l, v, d) = task.await??;
        latencies.extend(l);
        vulnerable_builds += v;
        devices += d;
    }
    let total = started.elapsed();
    println!(
        "put-sboms: {} SBOMs in {:.2} s ({:.1}/s, concurrency {concurrency}); per PUT {}; {devices} devices on them; \
         {vulnerable_builds} already vulnerable",
        latencies.len(),
        total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64(),
        summary(&mut latencies)
    );
    Ok(())
}

async fn query(
    server: &ServerArgs,
    ids: &Path,
    requests: usize,
    concurrency: usize,
    limit: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let ids: Vec<String> =
        std::fs::read_to_string(ids)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if ids.is_empty() {
        bail!("no ids to query");
    }
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let concurrency = concurrency.max(1);
    // Every connection is open before the clock starts.
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(client.connect().await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut sender) in senders.into_iter().enumerate() {
        let (client, ids, next) = (client.clone(), ids.clone(), next.clone());
        let mut rng = XorShift::new(seed.wrapping_add(w as u64 * 0x9e37_79b9));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut devices, mut bytes, mut listed) = (0u64, 0usize, 0usize);
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let id = pick(&mut rng, &ids);
                let path = format!("/api/v1/vulnerabilities/{}/devices?limit={limit}", segment(id));
                let t = Instant::now();
                let (status, body) = client.send(&mut sender, Method::GET, &path, None).await?;
                latencies.push(t.elapsed());
                if status != StatusCode::OK {
                    bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
                }
                bytes += body.len();
                let v: Value = serde_json::from_slice(&body)?;
                devices += v.get("devices_total").and_then(Value::as_u64).unwrap_or(0);
                listed += v.get("devices").and_then(Value::as_array).map_or(0, Vec::len);
            }
            anyhow::Ok((latencies, devices, bytes, listed))
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let (mut devices, mut bytes, mut listed) = (0u64, 0usize, 0usize);
    for task in tasks {
        let (l, d, b, n) = task.await??;
        latencies.extend(l);
        devices += d;
        bytes += b;
        listed += n;
    }
    let total = started.elapsed();
    let n = latencies.len().max(1);
    println!(
        "query: {} requests, concurrency {concurrency}: {}; {:.0} req/s; all 200; mean {:.0} affected devices, \
         {:.0} ids listed, {:.1} KiB per answer",
        latencies.len(),
        summary(&mut latencies),
        latencies.len() as f64 / total.as_secs_f64(),
        devices as f64 / n as f64,
        listed as f64 / n as f64,
        bytes as f64 / n as f64 / 1024.0
    );
    Ok(())
}

/// The client runs on one thread: the server shares the machine's cores with it.
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate { dir, builds, components, advisories, devices, big, pool, seed } => {
            generate(&dir, builds, components, advisories, devices, big, pool, seed)
        }
        Command::PutSboms { server, dir, concurrency } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(put_sboms(&server, &dir, concurrency)),
        Command::Query { server, ids, requests, concurrency, limit, seed } => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(query(
                &server,
                &ids,
                requests,
                concurrency,
                limit,
                seed,
            ))
        }
    }
}
