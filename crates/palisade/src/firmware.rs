//! `palisade firmware …`: the operator's side of signed updates. Makes and keeps the offline
//! root and targets keys, builds and signs roots and targets metadata (signing needs no server),
//! and uploads images and metadata to Palisade.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use palisade_tuf::{KeyType, PublicKey, Root, Signed, SigningKey, Targets};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Make offline signing keys (PKCS#8 PEM files of mode 0600 in a 0700 directory). New keys
    /// are numbered after the ones already there; no file is ever overwritten.
    Keygen {
        /// The key directory (created if missing).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = KeyKind::Ed25519)]
        key_type: KeyKind,
        /// Root keys to make.
        #[arg(long, default_value_t = 1)]
        root_keys: usize,
        /// Targets keys to make.
        #[arg(long, default_value_t = 1)]
        targets_keys: usize,
    },
    /// Build the next root (every root and targets key in DIR, the server's online keys), sign it
    /// with every root key in DIR (and in --previous-dir) and upload it.
    Root {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        server: Server,
        /// Root signatures required.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// Targets signatures required.
        #[arg(long, default_value_t = 1)]
        targets_threshold: u32,
        #[arg(long, default_value_t = 365)]
        expires_days: u32,
        /// Keys of the current root that sign this one but are not in it (rotating keys out).
        #[arg(long)]
        previous_dir: Option<PathBuf>,
    },
    /// Add (or replace) an image's entry in the targets metadata, raise its version and sign it
    /// with every targets key in DIR. Offline with --targets.
    Sign(SignArgs),
    /// Upload an image, then the signed targets metadata listing it; print its catalogue entry.
    Publish {
        #[arg(long)]
        image: PathBuf,
        #[arg(long)]
        targets: PathBuf,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    Ed25519,
    Ecdsa,
}

/// How to reach Palisade's API.
#[derive(Debug, Args)]
pub struct Server {
    /// The console URL (REST API), e.g. https://palisade.example:8443.
    #[arg(long)]
    server: String,
    /// Palisade's root CA (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// An API key with firmware.publish.
    #[arg(long, env = "PALISADE_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    image: PathBuf,
    /// The image's version (custom.version).
    #[arg(long)]
    version: String,
    /// The device model it is built for (custom.hardware).
    #[arg(long)]
    hardware: String,
    /// The anti-rollback counter (custom.counter): devices refuse a lower one than installed.
    #[arg(long)]
    counter: u64,
    /// A JSON SBOM to carry in the entry (custom.sbom).
    #[arg(long)]
    sbom: Option<PathBuf>,
    /// The target name (default: HARDWARE-VERSION).
    #[arg(long)]
    name: Option<String>,
    /// The current targets metadata, from the server.
    #[arg(long, requires_all = ["ca", "api_key"], conflicts_with = "targets")]
    server: Option<String>,
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long, env = "PALISADE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The current targets metadata, from a file (offline).
    #[arg(long, conflicts_with = "first")]
    targets: Option<PathBuf>,
    /// Start the first targets metadata (version 1), offline.
    #[arg(long, conflicts_with = "server")]
    first: bool,
    /// Where to write the signed targets metadata.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 180)]
    expires_days: u32,
}

pub async fn run(cmd: FirmwareCommand) -> anyhow::Result<()> {
    match cmd {
        FirmwareCommand::Keygen { dir, key_type, root_keys, targets_keys } => {
            keygen(&dir, key_type, root_keys, targets_keys)
        }
        FirmwareCommand::Root { dir, server, threshold, targets_threshold, expires_days, previous_dir } => {
            root(&dir, &server, threshold, targets_threshold, expires_days, previous_dir.as_deref()).await
        }
        FirmwareCommand::Sign(args) => sign(args).await,
        FirmwareCommand::Publish { image, targets, server } => publish(&image, &targets, &server).await,
    }
}

// --- keys -----------------------------------------------------------------------------------

const ROOT: &str = "root";
/// Largest metadata read (what the server and agents accept).
const MAX_METADATA: usize = 4 << 20;
const TARGETS: &str = "targets";

/// `root-3.pem` → ("root", 3).
fn key_file(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".pem")?;
    let (role, n) = stem.rsplit_once('-')?;
    if !matches!(role, ROOT | TARGETS) || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((role, n.parse().ok()?))
}

/// The key files of `role` in `dir`, by number.
fn key_files(dir: &Path, role: &str) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}", dir.display()))?;
        let name = entry.file_name();
        if let Some((r, n)) = name.to_str().and_then(key_file)
            && r == role
        {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The keys of `role` in `dir`; each file must be private to its owner.
fn load_keys(dir: &Path, role: &str) -> anyhow::Result<Vec<SigningKey>> {
    let mut keys = Vec::new();
    for (_, path) in key_files(dir, role)? {
        let mode = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!("{}: readable by others (mode {:o}); chmod 600 it", path.display(), mode & 0o777);
        }
        let pem = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        keys.push(SigningKey::from_pkcs8_pem(&pem).with_context(|| format!("{}", path.display()))?);
    }
    Ok(keys)
}

fn keygen(dir: &Path, kind: KeyKind, root_keys: usize, targets_keys: usize) -> anyhow::Result<()> {
    if root_keys + targets_keys == 0 {
        bail!("--root-keys and --targets-keys are both 0: nothing to make");
    }
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!("{}: not a directory", dir.display()),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            bail!("{}: open to others (mode {:o}); chmod 700 it", dir.display(), m.permissions().mode() & 0o777)
        }
        Ok(_) => {}
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("{}", dir.display()))?,
    }
    let kind = match kind {
        KeyKind::Ed25519 => KeyType::Ed25519,
        KeyKind::Ecdsa => KeyType::EcdsaP256,
    };
    for (role, count) in [(ROOT, root_keys), (TARGETS, targets_keys)] {
        let first = key_files(dir, role)?.last().map_or(1, |(n, _)| n + 1);
        for next in (first..).take(count) {
            let key = SigningKey::generate(kind).map_err(|e| anyhow!("cannot make a key: {e}"))?;
            let path = dir.join(format!("{role}-{next}.pem"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("{} (never overwritten)", path.display()))?;
            f.write_all(key.to_pkcs8_pem().as_bytes()).with_context(|| format!("{}", path.display()))?;
            f.sync_all().with_context(|| format!("{}", path.display()))?;
            println!("{role}\t{}\t{}", key.key_id(), path.display());
        }
    }
    Ok(())
}

// --- the API --------------------------------------------------------------------------------

pub(crate) struct Api {
    /// Palisade's root CA (PEM), and the file it came from.
    ca: (Vec<u8>, PathBuf),
    base: String,
    key: String,
}

impl Api {
    pub(crate) fn new(server: &str, ca: &Path, key: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(ca).with_context(|| format!("--ca {}", ca.display()))?;
        palisade_agent::http::client_config(&pem, None).map_err(|e| anyhow!("--ca {}: {e}", ca.display()))?;
        Ok(Self { ca: (pem, ca.to_owned()), base: server.trim_end_matches('/').to_owned(), key: key.to_owned() })
    }

    pub(crate) fn of(s: &Server) -> anyhow::Result<Self> {
        Self::new(&s.server, &s.ca, &s.api_key)
    }

    /// One request; the status and body of a 2xx or 404 answer, else an error with the
    /// server's message.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let url = format!("{}{path}", self.base);
        let mut headers = vec![("Authorization", format!("Bearer {}", self.key))];
        if !body.is_empty() {
            headers.push(("Content-Type", content_type.to_owned()));
        }
        let method = method.parse().map_err(|_| anyhow!("bad method {method}"))?;
        let tls = palisade_agent::http::client_config(&self.ca.0, None)
            .map_err(|e| anyhow!("--ca {}: {e}", self.ca.1.display()))?;
        let (status, resp) =
            palisade_agent::http::send(tls, method, &url, &headers, body).await.map_err(|e| anyhow!("{url}: {e}"))?;
        if (200..300).contains(&status) || status == 404 {
            return Ok((status, resp.to_vec()));
        }
        let message = serde_json::from_slice::<Value>(&resp)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&resp).chars().take(300).collect());
        bail!("{path}: refused ({status}): {message}")
    }

    /// A GET of JSON; `None` on 404.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.call("GET", path, "", Vec::new()).await? {
            (404, _) => Ok(None),
            (_, body) => Ok(Some(body)),
        }
    }

    async fn put_json(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        match self.call("PUT", path, "application/json", body).await? {
            (404, _) => bail!("{path}: not found (is this a Palisade server with firmware updates?)"),
            (_, body) => serde_json::from_slice(&body).with_context(|| format!("{path}: the answer is not JSON")),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn expires(days: u32) -> anyhow::Result<String> {
    if days == 0 {
        bail!("--expires-days must be at least 1");
    }
    Ok(palisade_tuf::expires_at(unix_now() + i64::from(days) * 86_400))
}

// --- root -----------------------------------------------------------------------------------

async fn root(
    dir: &Path,
    server: &Server,
    threshold: u32,
    targets_threshold: u32,
    expires_days: u32,
    previous_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let root_keys = load_keys(dir, ROOT)?;
    let targets_keys = load_keys(dir, TARGETS)?;
    if root_keys.is_empty() || targets_keys.is_empty() {
        bail!("{}: needs root-N.pem and targets-N.pem keys (palisade firmware keygen)", dir.display());
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    if threshold == 0 || threshold > count(root_keys.len()) {
        bail!(
            "--threshold {threshold}: must be between 1 and the {} root key(s) in {}",
            root_keys.len(),
            dir.display()
        );
    }
    if targets_threshold == 0 || targets_threshold > count(targets_keys.len()) {
        bail!(
            "--targets-threshold {targets_threshold}: must be between 1 and the {} targets key(s)",
            targets_keys.len()
        );
    }
    let previous = match previous_dir {
        Some(d) => load_keys(d, ROOT)?,
        None => Vec::new(),
    };
    let expires = expires(expires_days)?;
    let api = Api::of(server)?;
    let online: Value = match api.get("/api/v1/firmware/keys").await? {
        Some(body) => serde_json::from_slice(&body).context("/api/v1/firmware/keys: not JSON")?,
        None => bail!("/api/v1/firmware/keys: not found (is this a Palisade server with firmware updates?)"),
    };
    let online_key = |role: &str| -> anyhow::Result<PublicKey> {
        let v = online.get(role).cloned().ok_or_else(|| anyhow!("/api/v1/firmware/keys: no {role} key"))?;
        serde_json::from_value(v).with_context(|| format!("/api/v1/firmware/keys: {role}"))
    };
    let current = match api.get("/api/v1/firmware/root").await? {
        Some(body) => {
            Some(palisade_tuf::parse::<Root>(&body, MAX_METADATA).context("/api/v1/firmware/root: not a root")?.signed)
        }
        None => None,
    };
    let version = current.as_ref().map_or(1, |r| r.version + 1);
    let publics = |keys: &[SigningKey]| keys.iter().map(SigningKey::public).collect::<Vec<_>>();
    let new = palisade_tuf::new_root(
        &publics(&root_keys),
        threshold,
        &publics(&targets_keys),
        targets_threshold,
        &online_key("snapshot")?,
        &online_key("timestamp")?,
        &online_key("director")?,
        version,
        &expires,
    );
    let mut signed = Signed::new(new);
    for key in root_keys.iter().chain(&previous) {
        signed.sign(key).map_err(|e| anyhow!("signing with {}: {e}", key.key_id()))?;
    }
    let body = signed.to_json().map_err(|e| anyhow!("encoding the root: {e}"))?;
    let answer = api.put_json("/api/v1/firmware/root", body).await?;
    println!(
        "root version {} published (expires {expires}; {} root key(s), threshold {threshold}; {} targets key(s), threshold {targets_threshold})",
        answer.get("version").and_then(Value::as_u64).unwrap_or(version),
        root_keys.len(),
        targets_keys.len()
    );
    Ok(())
}

// --- sign -----------------------------------------------------------------------------------

/// Length and hex SHA-256 of a file, read in chunks.
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("--image {}", path.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut len: u64 = 0;
    loop {
        let n = f.read(&mut buf).with_context(|| format!("--image {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(buf.get(..n).unwrap_or_default());
        len += u64::try_from(n).unwrap_or(0);
    }
    Ok((len, ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()))
}

async fn sign(a: SignArgs) -> anyhow::Result<()> {
    let keys = load_keys(&a.dir, TARGETS)?;
    if keys.is_empty() {
        bail!("{}: no targets-N.pem keys (palisade firmware keygen)", a.dir.display());
    }
    for (field, v) in [("--version", &a.version), ("--hardware", &a.hardware)] {
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            bail!("{field}: must be printable and not empty");
        }
    }
    let name = a.name.clone().unwrap_or_else(|| format!("{}-{}", a.hardware, a.version));
    if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        bail!("--name: must be 1 to 256 printable characters");
    }
    let sbom = match &a.sbom {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("--sbom {}", p.display()))?;
            Some(serde_json::from_slice::<Value>(&text).with_context(|| format!("--sbom {}: not JSON", p.display()))?)
        }
        None => None,
    };
    let expires = expires(a.expires_days)?;
    let current: Option<Signed<Targets>> = match (&a.targets, &a.server) {
        _ if a.first => None,
        (Some(path), _) => {
            let bytes = std::fs::read(path).with_context(|| format!("--targets {}", path.display()))?;
            Some(palisade_tuf::parse(&bytes, MAX_METADATA).with_context(|| format!("--targets {}", path.display()))?)
        }
        (None, Some(server)) => {
            let (Some(ca), Some(key)) = (&a.ca, &a.api_key) else { bail!("--server needs --ca and --api-key") };
            let api = Api::new(server, ca, key)?;
            match api.get("/api/v1/firmware/targets").await? {
                Some(body) => Some(
                    palisade_tuf::parse(&body, MAX_METADATA)
                        .context("/api/v1/firmware/targets: not a targets metadata")?,
                ),
                None => None,
            }
        }
        (None, None) => {
            bail!("give the current targets metadata: --targets FILE (offline), --server URL, or --first")
        }
    };
    let (length, sha256) = hash_file(&a.image)?;
    let entry = palisade_tuf::target_entry_for(length, &sha256, &a.version, &a.hardware, a.counter, sbom);
    let mut targets = current.map(|s| s.signed).unwrap_or_else(|| Targets { version: 0, ..Targets::default() });
    targets.version += 1;
    targets.expires = expires;
    targets.targets.insert(name.clone(), entry);
    let version = targets.version;
    let count = targets.targets.len();
    let mut signed = Signed::new(targets);
    for key in &keys {
        signed.sign(key).map_err(|e| anyhow!("signing with {}: {e}", key.key_id()))?;
    }
    let body = signed.to_json().map_err(|e| anyhow!("encoding the targets: {e}"))?;
    write_new(&a.out, &body)?;
    println!(
        "targets version {version} ({count} target(s)) signed by {} key(s), written to {}: {name} = {sha256} ({length} bytes)",
        keys.len(),
        a.out.display()
    );
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("--out {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("--out {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("--out {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("--out {}", path.display()))
}

// --- publish --------------------------------------------------------------------------------

async fn publish(image: &Path, targets_path: &Path, server: &Server) -> anyhow::Result<()> {
    let body = std::fs::read(targets_path).with_context(|| format!("--targets {}", targets_path.display()))?;
    let targets: Signed<Targets> =
        palisade_tuf::parse(&body, MAX_METADATA).with_context(|| format!("--targets {}", targets_path.display()))?;
    let (length, sha256) = hash_file(image)?;
    let listed = targets.signed.targets.iter().any(|(_, t)| t.sha256() == Some(sha256.as_str()) && t.length == length);
    if !listed {
        bail!(
            "--image {} ({sha256}, {length} bytes) is not listed in --targets {}",
            image.display(),
            targets_path.display()
        );
    }
    let api = Api::of(server)?;
    let bytes = std::fs::read(image).with_context(|| format!("--image {}", image.display()))?;
    let (_, answer) = api.call("POST", "/api/v1/firmware/images", "application/octet-stream", bytes).await?;
    let uploaded: Value = serde_json::from_slice(&answer).context("/api/v1/firmware/images: not JSON")?;
    if uploaded.get("sha256").and_then(Value::as_str) != Some(sha256.as_str()) {
        bail!("/api/v1/firmware/images: the server stored {uploaded}, not {sha256}");
    }
    let published = api.put_json("/api/v1/firmware/targets", body).await?;
    let catalogue: Value = match api.get("/api/v1/firmware").await? {
        Some(b) => serde_json::from_slice(&b).context("/api/v1/firmware: not JSON")?,
        None => bail!("/api/v1/firmware: not found"),
    };
    eprintln!("targets version {} published", published.get("version").and_then(Value::as_u64).unwrap_or(0));
    for entry in catalogue.as_array().into_iter().flatten() {
        if entry.get("sha256").and_then(Value::as_str) == Some(sha256.as_str()) {
            println!("{entry}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names() {
        assert_eq!(key_file("root-1.pem"), Some(("root", 1)));
        assert_eq!(key_file("targets-12.pem"), Some(("targets", 12)));
        assert_eq!(key_file("root-.pem"), None);
        assert_eq!(key_file("snapshot-1.pem"), None);
        assert_eq!(key_file("root-1.pem.bak"), None);
    }
}
