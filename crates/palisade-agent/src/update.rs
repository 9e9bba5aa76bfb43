//! Signed firmware updates, the device's side: the per-device assignment and the TUF metadata are
//! fetched over the device channel and verified with `palisade-tuf`; the image is downloaded
//! (resuming where an interrupted download stopped, never past its signed length), installed into
//! the inactive A/B slot, booted and checked, then committed or rolled back. Each step is reported
//! as an [`UpdateEvent`] (`update.checking` … `update.committed`).
//!
//! State in the update directory (mode 0700), every file replaced atomically (temp, fsync, rename):
//! `trusted.json` (the trusted metadata), `counter` (the anti-rollback floor: the counter of the
//! running image), `slots/{a,b}/image.bin`, `active` (`a` or `b`), `pending.json` (an image booted
//! but not committed yet), `running.json` (version, counter, target of the running image),
//! `rejected` (the assignment last rolled back, not tried again), `download/<sha256>.part`.
//!
//! Writing `active` is the commit point: `pending.json` without `active` naming its slot means the
//! agent stopped between boot and commit, and the next start rolls back (the old slot stays
//! active). Hooks must therefore return: a boot hook that restarts the device ends in a roll back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use palisade_tuf::{Assignment, ImageCheck, TargetFile, Trusted, TufError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Root versions taken in one check at most (a server cannot keep the device walking forever).
const MAX_ROOT_STEPS: u64 = 32;
/// How long a download may go without a byte before it counts as interrupted.
const IDLE: Duration = Duration::from_secs(60);
/// The largest metadata document (or assignment) fetched, in bytes.
const MAX_METADATA: usize = 4 * 1024 * 1024;
/// How long one request may take to answer (and a metadata document to arrive).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// What a hook may print that is kept (the rest is read and dropped).
const HOOK_OUTPUT: usize = 4096;

/// Where the updater gets metadata and images: the device listener, or memory in tests.
pub trait Source: Send + Sync {
    type Body: Body;
    /// The resource at `path` (at most 4 MiB); `None` when there is none (404).
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<Bytes>, String>> + Send;
    /// The resource at `path` from byte `from` on: the offset its body starts at, and the body;
    /// `None` when there is none (404).
    fn get_range(
        &self,
        path: &str,
        from: u64,
    ) -> impl Future<Output = Result<Option<(u64, Self::Body)>, String>> + Send;
}

/// A body arriving chunk by chunk.
pub trait Body: Send {
    /// The next chunk; `None` at the end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, String>> + Send;
}

/// The device HTTPS listener, authenticated both ways: Palisade's root is the only trust anchor
/// and the device presents its client certificate.
#[derive(Debug, Clone)]
pub struct HttpSource {
    origin: String,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpSource {
    /// `url` is the device listener (`https://host:8444`, any path is ignored).
    pub fn new(url: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        let origin = match url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or_default()),
            None => url.to_owned(),
        };
        Self { origin, tls }
    }
}

impl Source for HttpSource {
    type Body = crate::http::Streamed;

    async fn get(&self, path: &str) -> Result<Option<Bytes>, String> {
        let Some((_, mut body)) = self.get_range(path, 0).await? else { return Ok(None) };
        let mut whole = bytes::BytesMut::new();
        let read = async {
            while let Some(chunk) = body.chunk().await? {
                if whole.len().saturating_add(chunk.len()) > MAX_METADATA {
                    return Err(format!("GET {path}: more than {MAX_METADATA} bytes"));
                }
                whole.extend_from_slice(&chunk);
            }
            Ok(())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, read).await.map_err(|_| format!("GET {path}: too slow"))??;
        Ok(Some(whole.freeze()))
    }

    async fn get_range(&self, path: &str, from: u64) -> Result<Option<(u64, Self::Body)>, String> {
        let url = format!("{}{path}", self.origin);
        let streamed = tokio::time::timeout(REQUEST_TIMEOUT, crate::http::get_from(self.tls.clone(), &url, from))
            .await
            .map_err(|_| format!("GET {path}: no answer"))?
            .map_err(|e| format!("GET {path}: {e}"))?;
        match streamed.status {
            200 | 206 => Ok(Some((streamed.start, streamed))),
            404 => Ok(None),
            other => Err(format!("GET {path}: HTTP {other}")),
        }
    }
}

impl Body for crate::http::Streamed {
    async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        crate::http::Streamed::chunk(self).await
    }
}

/// One of the two slots an image is installed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "a" => Some(Self::A),
            "b" => Some(Self::B),
            _ => None,
        }
    }
}

/// A step of an update, as published: `update.<step>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Step {
    #[serde(rename = "update.checking")]
    Checking,
    #[serde(rename = "update.downloading")]
    Downloading,
    #[serde(rename = "update.downloaded")]
    Downloaded,
    #[serde(rename = "update.refused")]
    Refused,
    #[serde(rename = "update.installing")]
    Installing,
    #[serde(rename = "update.rebooting")]
    Rebooting,
    #[serde(rename = "update.health_failed")]
    HealthFailed,
    #[serde(rename = "update.rolled_back")]
    RolledBack,
    #[serde(rename = "update.committed")]
    Committed,
}

/// What the agent publishes on `devices/<id>/events` for each step:
/// `{"event": "update.<step>", "target": ..., "version": ..., "detail": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateEvent {
    pub event: Step,
    pub target: Option<String>,
    pub version: Option<String>,
    pub detail: Option<String>,
}

impl UpdateEvent {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How a check ended (a failure to reach the server or to write state is an [`UpdateError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No assignment for this device.
    NothingAssigned,
    /// The assigned image is the one running.
    UpToDate,
    /// The assignment was installed before and rolled back; it is not tried again.
    RejectedBefore,
    /// Refused by verification; nothing was installed.
    Refused(TufError),
    /// Installed, then rolled back (health check or hook failed); the old slot is active.
    RolledBack { version: String, detail: String },
    /// The new image is running and committed.
    Committed { version: String },
}

impl Outcome {
    /// (success, summary) for a command result.
    pub fn summary(&self) -> (bool, String) {
        match self {
            Self::NothingAssigned => (true, "no firmware assigned".into()),
            Self::UpToDate => (true, "the assigned firmware is running".into()),
            Self::RejectedBefore => (false, "the assigned firmware was rolled back before".into()),
            Self::Refused(e) => (false, format!("refused: {e}")),
            Self::RolledBack { version, detail } => (false, format!("{version} rolled back: {detail}")),
            Self::Committed { version } => (true, format!("{version} committed")),
        }
    }
}

/// Why a check could not run to an outcome (nothing unverified is ever installed).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The server could not be reached or broke off; a partial download is kept for the next try.
    #[error("{0}")]
    Source(String),
    /// The update directory holds something unreadable.
    #[error("{0}")]
    State(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError + '_ {
    move |source| UpdateError::Io { path: path.to_owned(), source }
}

/// The image being installed, as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub slot: Slot,
    /// The verified image, in its slot.
    pub image: PathBuf,
    pub version: String,
    pub target: String,
}

/// What the device does to install, boot and check an image. Each returns why it failed.
pub trait Hooks: Send + Sync {
    fn install(&self, staged: &Staged) -> impl Future<Output = Result<(), String>> + Send;
    fn boot(&self, staged: &Staged) -> impl Future<Output = Result<(), String>> + Send;
    /// `Ok` when the new image is healthy.
    fn health(&self, staged: &Staged) -> impl Future<Output = Result<(), String>> + Send;
}

/// Hooks that are commands from `[update]` (none configured: the slot file is the install,
/// booting does nothing, the image is healthy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHooks {
    pub install: Vec<String>,
    pub boot: Vec<String>,
    pub health: Vec<String>,
    pub timeout: Duration,
}

impl CommandHooks {
    pub fn from_config(u: &crate::config::Update) -> Self {
        Self {
            install: u.install.clone(),
            boot: u.boot.clone(),
            health: u.health.clone(),
            timeout: Duration::from_secs(u.hook_timeout_secs),
        }
    }
}

impl Hooks for CommandHooks {
    async fn install(&self, staged: &Staged) -> Result<(), String> {
        run_hook(&self.install, staged, self.timeout).await
    }

    async fn boot(&self, staged: &Staged) -> Result<(), String> {
        run_hook(&self.boot, staged, self.timeout).await
    }

    async fn health(&self, staged: &Staged) -> Result<(), String> {
        run_hook(&self.health, staged, self.timeout).await
    }
}

/// Runs `program` (and arguments; none: nothing to do) with `PALISADE_SLOT`, `PALISADE_IMAGE`
/// and `PALISADE_VERSION` set, killed after `timeout`. Exit 0 is success; otherwise the error
/// names the exit status and the end of what it printed.
pub async fn run_hook(program: &[String], staged: &Staged, timeout: Duration) -> Result<(), String> {
    let Some((cmd, args)) = program.split_first() else { return Ok(()) };
    let mut child = tokio::process::Command::new(cmd)
        .args(args)
        .env("PALISADE_SLOT", staged.slot.as_str())
        .env("PALISADE_IMAGE", &staged.image)
        .env("PALISADE_VERSION", &staged.version)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let ran = tokio::time::timeout(timeout, async {
        tokio::join!(bounded_output(stdout), bounded_output(stderr), child.wait())
    })
    .await;
    let Ok((out, err, status)) = ran else {
        let _ = child.kill().await;
        return Err(format!("{cmd}: killed after {} s", timeout.as_secs()));
    };
    let status = status.map_err(|e| format!("{cmd}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let said = if err.trim().is_empty() { out } else { err };
    let last = said.trim().lines().last().unwrap_or_default().chars().take(300).collect::<String>();
    Err(if last.is_empty() {
        format!("{cmd} exited with {status}")
    } else {
        format!("{cmd} exited with {status}: {last}")
    })
}

/// The first [`HOOK_OUTPUT`] bytes of a pipe; the rest is read and dropped so the child never
/// blocks on a full pipe.
async fn bounded_output(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let Some(pipe) = pipe else { return String::new() };
    let mut kept = Vec::new();
    let mut limited = pipe.take(HOOK_OUTPUT as u64);
    let _ = limited.read_to_end(&mut kept).await;
    let _ = tokio::io::copy(&mut limited.into_inner(), &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&kept).into_owned()
}

/// The image a slot holds and where it came from (`running.json`, `pending.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub slot: Slot,
    pub version: String,
    pub counter: u64,
    pub target: String,
    pub sha256: String,
    /// The SHA-256 of the signed assignment it was installed for.
    pub assignment: String,
}

/// Why an attempt stopped: a refusal (reported as `update.refused`) or an error.
enum Fail {
    Refused(TufError),
    Error(UpdateError),
}

impl From<TufError> for Fail {
    fn from(e: TufError) -> Self {
        Self::Refused(e)
    }
}

impl From<UpdateError> for Fail {
    fn from(e: UpdateError) -> Self {
        Self::Error(e)
    }
}

/// What the events of the attempt under way name.
#[derive(Default)]
struct Naming {
    target: Option<String>,
    version: Option<String>,
}

impl Naming {
    fn event(&self, event: Step, detail: Option<String>) -> UpdateEvent {
        UpdateEvent { event, target: self.target.clone(), version: self.version.clone(), detail }
    }
}

/// The reporting callback: each step as it happens.
pub type Report<'a> = &'a mut (dyn FnMut(UpdateEvent) + Send);

/// The updater of one device: its update directory, identity, hardware and hooks.
#[derive(Debug)]
pub struct Updater<H> {
    dir: PathBuf,
    device_id: String,
    hardware: String,
    initial_root: Option<Vec<u8>>,
    hooks: H,
}

impl<H: Hooks> Updater<H> {
    /// The updater keeping its state in `dir` (made with mode 0700) for device `device_id`, whose
    /// model is `hardware`.
    pub fn open(dir: &Path, device_id: &str, hardware: &str, hooks: H) -> Result<Self, UpdateError> {
        private_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            device_id: device_id.to_owned(),
            hardware: hardware.to_owned(),
            initial_root: None,
            hooks,
        })
    }

    /// Pins the initial root (`1.root.json`) instead of fetching it on first use.
    #[must_use]
    pub fn with_root(mut self, root_json: Vec<u8>) -> Self {
        self.initial_root = Some(root_json);
        self
    }

    /// The update directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hooks this updater runs.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The slot the device runs from.
    pub fn active(&self) -> Result<Slot, UpdateError> {
        let path = self.dir.join("active");
        match std::fs::read_to_string(&path) {
            Ok(s) => Slot::parse(&s).ok_or_else(|| UpdateError::State(format!("{}: not a slot", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Slot::A),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The image committed last, if any update was.
    pub fn running(&self) -> Result<Option<Installed>, UpdateError> {
        read_json(&self.dir.join("running.json"))
    }

    /// The file of the image committed last.
    pub fn running_image(&self) -> Result<Option<PathBuf>, UpdateError> {
        Ok(self.running()?.map(|r| self.slot_dir(r.slot).join("image.bin")))
    }

    /// Settles what a stop left behind: an image booted but not committed is rolled back (the
    /// old slot stays active), a commit interrupted after its commit point is finished.
    pub fn recover(&self) -> Result<Option<UpdateEvent>, UpdateError> {
        let path = self.dir.join("pending.json");
        let pending: Installed = match read_json(&path) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(UpdateError::State(detail)) => {
                remove(&path)?;
                let detail = Some(format!("unreadable pending update dropped: {detail}"));
                return Ok(Some(UpdateEvent { event: Step::RolledBack, target: None, version: None, detail }));
            }
            Err(e) => return Err(e),
        };
        let naming = Naming { target: Some(pending.target.clone()), version: Some(pending.version.clone()) };
        if self.active()? == pending.slot {
            self.finish_commit(&pending)?;
            return Ok(Some(naming.event(Step::Committed, Some("commit finished after a restart".into()))));
        }
        self.roll_back(&pending)?;
        let detail = format!("the agent stopped before {} was committed", pending.version);
        Ok(Some(naming.event(Step::RolledBack, Some(detail))))
    }

    /// One check: the assignment, the metadata, and when there is something new for this device,
    /// download, install, boot, health check, commit or roll back. Each step goes to `report`.
    pub async fn check_and_install<S: Source>(
        &self,
        source: &S,
        now_unix: i64,
        report: Report<'_>,
    ) -> Result<Outcome, UpdateError> {
        if let Some(event) = self.recover()? {
            report(event);
        }
        let Some(raw) = source.get("/tuf/assignment").await.map_err(UpdateError::Source)? else {
            return Ok(Outcome::NothingAssigned);
        };
        let fingerprint = hex_sha256(&raw);
        let running = self.running()?;
        if running.as_ref().is_some_and(|r| r.assignment == fingerprint) {
            return Ok(Outcome::UpToDate);
        }
        if read_text(&self.dir.join("rejected"))?.is_some_and(|r| r == fingerprint) {
            return Ok(Outcome::RejectedBefore);
        }
        // An assignment re-issued for the running image is verified all the same, but quietly
        // (read unverified here only to decide whether to announce the check).
        let reissued = running.is_some_and(|r| {
            palisade_tuf::parse::<Assignment>(&raw, MAX_METADATA)
                .is_ok_and(|a| a.signed.sha256.eq_ignore_ascii_case(&r.sha256))
        });
        let mut naming = Naming::default();
        if !reissued {
            report(naming.event(Step::Checking, None));
        }
        match self.attempt(source, &raw, &fingerprint, now_unix, &mut naming, report).await {
            Ok(outcome) => Ok(outcome),
            Err(Fail::Refused(e)) => {
                report(naming.event(Step::Refused, Some(e.to_string())));
                Ok(Outcome::Refused(e))
            }
            Err(Fail::Error(e)) => Err(e),
        }
    }

    async fn attempt<S: Source>(
        &self,
        source: &S,
        raw: &[u8],
        fingerprint: &str,
        now: i64,
        naming: &mut Naming,
        report: Report<'_>,
    ) -> Result<Outcome, Fail> {
        let mut trusted = self.trusted(source).await?;
        for _ in 0..MAX_ROOT_STEPS {
            let next = trusted.root().version.saturating_add(1);
            let Some(json) = source.get(&format!("/tuf/{next}.root.json")).await.map_err(UpdateError::Source)? else {
                break;
            };
            trusted.update_root(&json, now)?;
            self.save_trusted(&trusted)?;
        }
        trusted.check_root_fresh(now)?;
        trusted.update_timestamp(&required(source, "/tuf/timestamp.json").await?, now)?;
        trusted.update_snapshot(&required(source, "/tuf/snapshot.json").await?, now)?;
        trusted.update_targets(&required(source, "/tuf/targets.json").await?, now)?;
        self.save_trusted(&trusted)?;
        let assignment = trusted.verify_assignment(raw, &self.device_id, now)?;
        naming.target = Some(assignment.target.clone());
        naming.version = Some(assignment.version.clone());
        let running = self.running()?;
        if let Some(r) = running.as_ref().filter(|r| r.sha256.eq_ignore_ascii_case(&assignment.sha256)) {
            // Re-issued for the image already running: nothing to install.
            write_atomic(
                &self.dir.join("running.json"),
                &json(&Installed { assignment: fingerprint.into(), ..r.clone() }),
            )?;
            return Ok(Outcome::UpToDate);
        }
        let installed = running.map_or(0, |r| r.counter);
        let target = trusted.approve(&assignment, &self.hardware, installed, self.floor()?)?;
        // Acted on: no older assignment is accepted from now on.
        trusted.record_assignment(&assignment);
        self.save_trusted(&trusted)?;
        let part = self.download(source, &target, naming, report).await?;
        report(naming.event(Step::Downloaded, Some(format!("{} bytes, SHA-256 verified", target.length))));
        Ok(self.install(part, &assignment, &target, fingerprint, naming, report).await?)
    }

    /// The trusted metadata: as kept, or on first use from the pinned root, else from the server.
    async fn trusted<S: Source>(&self, source: &S) -> Result<Trusted, Fail> {
        let path = self.dir.join("trusted.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                return Trusted::load(&bytes)
                    .map_err(|e| Fail::Error(UpdateError::State(format!("{}: {e}", path.display()))));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Fail::Error(io(&path)(e))),
        }
        let root = match &self.initial_root {
            Some(root) => Bytes::from(root.clone()),
            // Trust on first use, over an authenticated channel: the device listener proved it
            // holds a certificate from Palisade's CA (the only root the agent trusts) and the
            // device its own certificate. From here on, every root must be signed by the last.
            None => required(source, "/tuf/1.root.json").await?,
        };
        let trusted = Trusted::new(&root)?;
        self.save_trusted(&trusted)?;
        Ok(trusted)
    }

    fn save_trusted(&self, trusted: &Trusted) -> Result<(), Fail> {
        write_atomic(&self.dir.join("trusted.json"), &trusted.save()?)?;
        Ok(())
    }

    /// The anti-rollback floor.
    fn floor(&self) -> Result<u64, UpdateError> {
        let path = self.dir.join("counter");
        match read_text(&path)? {
            None => Ok(0),
            Some(s) => s.parse().map_err(|_| UpdateError::State(format!("{}: not a counter", path.display()))),
        }
    }

    fn slot_dir(&self, slot: Slot) -> PathBuf {
        self.dir.join("slots").join(slot.as_str())
    }

    /// Downloads the image into `download/<sha256>.part`, first feeding what an earlier attempt
    /// left there to the check, then asking for the rest only. More than the signed length is
    /// refused as it arrives; the SHA-256 is checked at the end. A refused download is deleted;
    /// an interrupted one is kept for the next attempt.
    async fn download<S: Source>(
        &self,
        source: &S,
        target: &TargetFile,
        naming: &Naming,
        report: Report<'_>,
    ) -> Result<PathBuf, Fail> {
        let sha = target.sha256().filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        let sha = sha.ok_or_else(|| TufError::Malformed("target: no SHA-256".into()))?.to_ascii_lowercase();
        let dir = self.dir.join("download");
        private_dir(&dir)?;
        let part = dir.join(format!("{sha}.part"));
        // Only the image being fetched is kept: leftovers of other images go.
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if entry.path() != part {
                remove(&entry.path())?;
            }
        }
        if std::fs::metadata(&part).is_ok_and(|m| m.len() > target.length) {
            remove(&part)?;
        }
        let mut check = ImageCheck::new(target)?;
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut options = std::fs::OpenOptions::new();
            options.read(true).append(true).create(true).mode(0o600);
            tokio::fs::File::from_std(options.open(&part).map_err(io(&part))?)
        };
        let mut block = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut block).await.map_err(io(&part))?;
            if n == 0 {
                break;
            }
            check.update(block.get(..n).unwrap_or_default())?;
        }
        let have = check.received();
        let detail = match have {
            0 => format!("{} bytes", target.length),
            _ => format!("resuming at byte {have} of {}", target.length),
        };
        report(naming.event(Step::Downloading, Some(detail)));
        if have < target.length {
            let path = format!("/firmware/{sha}");
            let Some((start, mut body)) = source.get_range(&path, have).await.map_err(UpdateError::Source)? else {
                return Err(UpdateError::Source(format!("{path}: not found")).into());
            };
            if start != have {
                return Err(UpdateError::Source(format!("{path}: asked from byte {have}, got from {start}")).into());
            }
            let broke = loop {
                let chunk = match tokio::time::timeout(IDLE, body.chunk()).await {
                    Err(_) => break Some(format!("no data for {} s", IDLE.as_secs())),
                    Ok(Err(e)) => break Some(e),
                    Ok(Ok(None)) => break None,
                    Ok(Ok(Some(chunk))) => chunk,
                };
                if let Err(e) = check.update(&chunk) {
                    drop(file);
                    remove(&part)?;
                    return Err(e.into());
                }
                file.write_all(&chunk).await.map_err(io(&part))?;
            };
            file.sync_all().await.map_err(io(&part))?;
            if let Some(why) = broke {
                let got = check.received();
                return Err(UpdateError::Source(format!("{path}: interrupted at byte {got}: {why}")).into());
            }
        }
        file.sync_all().await.map_err(io(&part))?;
        if check.received() < target.length {
            let (got, want) = (check.received(), target.length);
            return Err(UpdateError::Source(format!("the download ended at byte {got} of {want}")).into());
        }
        if let Err(e) = check.finish() {
            remove(&part)?;
            return Err(e.into());
        }
        Ok(part)
    }

    /// Installs the verified image into the inactive slot, boots it, checks it, and commits or
    /// rolls back.
    async fn install(
        &self,
        part: PathBuf,
        assignment: &Assignment,
        target: &TargetFile,
        fingerprint: &str,
        naming: &Naming,
        report: Report<'_>,
    ) -> Result<Outcome, UpdateError> {
        let slot = self.active()?.other();
        let dir = self.slot_dir(slot);
        private_dir(&dir)?;
        let image = dir.join("image.bin");
        std::fs::rename(&part, &image).map_err(io(&image))?;
        sync_dir(&dir)?;
        let record = Installed {
            slot,
            version: assignment.version.clone(),
            counter: assignment.counter,
            target: assignment.target.clone(),
            sha256: target.sha256().unwrap_or_default().to_ascii_lowercase(),
            assignment: fingerprint.to_owned(),
        };
        let staged = Staged { slot, image, version: record.version.clone(), target: record.target.clone() };
        let version = record.version.clone();
        report(naming.event(Step::Installing, Some(format!("slot {}", slot.as_str()))));
        if let Err(detail) = self.hooks.install(&staged).await {
            self.roll_back(&record)?;
            let detail = format!("install failed: {detail}");
            report(naming.event(Step::RolledBack, Some(detail.clone())));
            return Ok(Outcome::RolledBack { version, detail });
        }
        write_atomic(&self.dir.join("pending.json"), &json(&record))?;
        report(naming.event(Step::Rebooting, Some(format!("slot {}", slot.as_str()))));
        let checked = match self.hooks.boot(&staged).await {
            Ok(()) => self.hooks.health(&staged).await.map_err(|d| format!("health check failed: {d}")),
            Err(detail) => Err(format!("boot failed: {detail}")),
        };
        if let Err(detail) = checked {
            report(naming.event(Step::HealthFailed, Some(detail.clone())));
            self.roll_back(&record)?;
            let back = self.active()?;
            report(naming.event(Step::RolledBack, Some(format!("slot {} stays active", back.as_str()))));
            return Ok(Outcome::RolledBack { version, detail });
        }
        // The commit point: from here the new slot is the one the device runs.
        write_atomic(&self.dir.join("active"), slot.as_str().as_bytes())?;
        self.finish_commit(&record)?;
        report(naming.event(Step::Committed, Some(format!("slot {}", slot.as_str()))));
        Ok(Outcome::Committed { version })
    }

    /// After the commit point: the floor rises to the new counter, `running.json` names the image.
    fn finish_commit(&self, record: &Installed) -> Result<(), UpdateError> {
        let floor = self.floor()?.max(record.counter);
        write_atomic(&self.dir.join("counter"), floor.to_string().as_bytes())?;
        write_atomic(&self.dir.join("running.json"), &json(record))?;
        remove(&self.dir.join("pending.json"))
    }

    /// The old slot stays active; the new image goes and its assignment is not tried again.
    fn roll_back(&self, record: &Installed) -> Result<(), UpdateError> {
        write_atomic(&self.dir.join("rejected"), record.assignment.as_bytes())?;
        remove(&self.dir.join("pending.json"))?;
        remove(&self.slot_dir(record.slot).join("image.bin"))
    }
}

/// A resource the workflow cannot go on without.
async fn required<S: Source>(source: &S, path: &str) -> Result<Bytes, Fail> {
    match source.get(path).await.map_err(UpdateError::Source)? {
        Some(bytes) => Ok(bytes),
        None => Err(UpdateError::Source(format!("{path}: not found")).into()),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// A directory of mode 0700 (made if missing).
fn private_dir(dir: &Path) -> Result<(), UpdateError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

fn sync_dir(dir: &Path) -> Result<(), UpdateError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Replaces `path` atomically: a temporary file (0600) written and flushed, renamed over it, and
/// the directory flushed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn remove(path: &Path) -> Result<(), UpdateError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

fn read_text(path: &Path) -> Result<Option<String>, UpdateError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, UpdateError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| UpdateError::State(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}
