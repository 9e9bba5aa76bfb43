//! The updater against a repository built with `palisade-tuf`'s signing helpers and served from
//! memory: the happy path, resumed downloads, the attack suite, health-check roll back and a stop
//! between boot and commit; then the same repository behind a small HTTPS server that requires a
//! client certificate, as the device listener does.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use palisade_agent::update::{Body, Hooks, Outcome, Slot, Source, Staged, Step, UpdateEvent, Updater, run_hook};
use palisade_tuf::{
    Assignment, KeyType, Signed, SigningKey, Snapshot, Targets, Timestamp, expires_at, new_root, target_entry,
};

const DEVICE: &str = "dev1";
const HARDWARE: &str = "meter-x";

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn in_a_year() -> String {
    expires_at(now() + 365 * 86_400)
}

fn signed<T: serde::Serialize>(value: T, key: &SigningKey) -> Vec<u8> {
    let mut s = Signed::new(value);
    s.sign(key).unwrap();
    s.to_json().unwrap()
}

/// An operator's repository and the server's online keys, served from memory.
struct Repo {
    targets_key: SigningKey,
    snapshot_key: SigningKey,
    timestamp_key: SigningKey,
    director_key: SigningKey,
    root_json: Vec<u8>,
    targets: BTreeMap<String, palisade_tuf::TargetFile>,
    targets_version: u64,
    snapshot_version: u64,
    issued: u64,
    source: Memory,
}

impl Repo {
    fn new() -> Self {
        let key = || SigningKey::generate(KeyType::Ed25519).unwrap();
        let (root_key, targets_key, snapshot_key, timestamp_key, director_key) = (key(), key(), key(), key(), key());
        let root = new_root(
            &[root_key.public()],
            1,
            &[targets_key.public()],
            1,
            &snapshot_key.public(),
            &timestamp_key.public(),
            &director_key.public(),
            1,
            &in_a_year(),
        );
        let root_json = signed(root, &root_key);
        let source = Memory::default();
        source.put("/tuf/1.root.json", root_json.clone());
        Self {
            targets_key,
            snapshot_key,
            timestamp_key,
            director_key,
            root_json,
            targets: BTreeMap::new(),
            targets_version: 0,
            snapshot_version: 0,
            issued: 0,
            source,
        }
    }

    /// Adds an image to the catalogue and serves it.
    fn add(&mut self, name: &str, image: &[u8], version: &str, hardware: &str, counter: u64) {
        let entry = target_entry(image, version, hardware, counter, None);
        let sha = entry.sha256().unwrap().to_owned();
        self.source.images.lock().unwrap().insert(sha, image.to_vec());
        self.targets.insert(name.into(), entry);
    }

    /// Signs new targets (with `key`, normally the targets key), snapshot and timestamp.
    fn publish_signed_by(&mut self, key: Option<&SigningKey>) {
        self.targets_version += 1;
        let targets = Targets {
            version: self.targets_version,
            expires: in_a_year(),
            targets: self.targets.clone(),
            ..Targets::default()
        };
        self.source.put("/tuf/targets.json", signed(targets, key.unwrap_or(&self.targets_key)));
        self.snapshot(self.targets_version, &in_a_year());
    }

    fn publish(&mut self) {
        self.publish_signed_by(None);
    }

    /// A snapshot naming targets version `targets_version`, and a timestamp expiring at `expires`.
    fn snapshot(&mut self, targets_version: u64, expires: &str) {
        self.snapshot_version += 1;
        let snapshot =
            signed(Snapshot::for_targets(self.snapshot_version, &in_a_year(), targets_version), &self.snapshot_key);
        let timestamp = Timestamp::for_snapshot(self.snapshot_version, expires, &snapshot, self.snapshot_version);
        self.source.put("/tuf/snapshot.json", snapshot);
        self.source.put("/tuf/timestamp.json", signed(timestamp, &self.timestamp_key));
    }

    /// The director's assignment of `name` to `device` (the entry's own fields, `hardware`
    /// overriding its hardware when given).
    fn assign(&mut self, device: &str, name: &str) {
        let entry = &self.targets[name];
        let info = entry.info().unwrap();
        self.issued += 1;
        let a = Assignment {
            device_id: device.into(),
            target: name.into(),
            length: entry.length,
            sha256: entry.sha256().unwrap().into(),
            version: info.version,
            hardware: info.hardware,
            counter: info.counter,
            issued: self.issued,
            expires: in_a_year(),
        };
        self.source.put("/tuf/assignment", signed(a, &self.director_key));
    }
}

/// How the in-memory server serves images.
#[derive(Default, Clone, Copy)]
struct Serving {
    /// Break off after this many bytes of a response.
    cut_after: Option<usize>,
    /// Bytes appended past the image (endless data).
    extra: usize,
    /// Flip the last byte (a tampered image of the right length).
    tamper: bool,
}

#[derive(Default)]
struct Memory {
    files: Mutex<HashMap<String, Bytes>>,
    images: Mutex<HashMap<String, Vec<u8>>>,
    serving: Mutex<Serving>,
    /// The `from` of every ranged request, in order.
    ranges: Mutex<Vec<u64>>,
}

impl Memory {
    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.into(), Bytes::from(bytes));
    }

    fn serve(&self, serving: Serving) {
        *self.serving.lock().unwrap() = serving;
    }
}

struct Chunks(VecDeque<Result<Bytes, String>>);

impl Body for Chunks {
    async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        self.0.pop_front().transpose()
    }
}

impl Source for Memory {
    type Body = Chunks;

    async fn get(&self, path: &str) -> Result<Option<Bytes>, String> {
        Ok(self.files.lock().unwrap().get(path).cloned())
    }

    async fn get_range(&self, path: &str, from: u64) -> Result<Option<(u64, Chunks)>, String> {
        self.ranges.lock().unwrap().push(from);
        let sha = path.strip_prefix("/firmware/").unwrap();
        let Some(mut image) = self.images.lock().unwrap().get(sha).cloned() else { return Ok(None) };
        let serving = *self.serving.lock().unwrap();
        if serving.tamper {
            *image.last_mut().unwrap() ^= 0xff;
        }
        image.extend(std::iter::repeat_n(0x5a, serving.extra));
        let mut body: Vec<u8> = image.get(usize::try_from(from).unwrap()..).unwrap().to_vec();
        let cut = serving.cut_after.is_some_and(|n| n < body.len());
        body.truncate(serving.cut_after.unwrap_or(usize::MAX));
        let mut chunks: VecDeque<_> = body.chunks(1000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        if cut {
            chunks.push_back(Err("connection reset by peer".into()));
        }
        Ok(Some((from, Chunks(chunks))))
    }
}

/// Hooks that record what ran; the health check fails with `unhealthy`, or hangs after saying so
/// on `hang` (a stop between boot and commit).
#[derive(Default)]
struct TestHooks {
    ran: Mutex<Vec<(&'static str, Staged)>>,
    unhealthy: Option<String>,
    hang: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Hooks for TestHooks {
    async fn install(&self, staged: &Staged) -> Result<(), String> {
        self.ran.lock().unwrap().push(("install", staged.clone()));
        Ok(())
    }

    async fn boot(&self, staged: &Staged) -> Result<(), String> {
        self.ran.lock().unwrap().push(("boot", staged.clone()));
        Ok(())
    }

    async fn health(&self, staged: &Staged) -> Result<(), String> {
        self.ran.lock().unwrap().push(("health", staged.clone()));
        let hang = self.hang.lock().unwrap().take();
        if let Some(started) = hang {
            let _ = started.send(());
            std::future::pending::<()>().await;
        }
        self.unhealthy.clone().map_or(Ok(()), Err)
    }
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn updater(dir: &Path, repo: &Repo, hooks: TestHooks) -> Updater<TestHooks> {
    Updater::open(dir, DEVICE, HARDWARE, hooks).unwrap().with_root(repo.root_json.clone())
}

async fn check(u: &Updater<TestHooks>, source: &Memory) -> (Result<Outcome, String>, Vec<UpdateEvent>) {
    let mut events = Vec::new();
    let outcome = u.check_and_install(source, now(), &mut |e| events.push(e)).await.map_err(|e| e.to_string());
    (outcome, events)
}

fn steps(events: &[UpdateEvent]) -> Vec<Step> {
    events.iter().map(|e| e.event).collect()
}

fn slot_image(dir: &Path, slot: Slot) -> Option<Vec<u8>> {
    std::fs::read(dir.join("slots").join(slot.as_str()).join("image.bin")).ok()
}

const HAPPY: [Step; 6] =
    [Step::Checking, Step::Downloading, Step::Downloaded, Step::Installing, Step::Rebooting, Step::Committed];

#[tokio::test]
async fn an_update_installs_into_the_inactive_slot_and_commits_then_the_next_goes_to_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("update");
    let mut repo = Repo::new();
    let v2 = image(50_000, 2);
    repo.add("fw-2", &v2, "2.0.0", HARDWARE, 2);
    repo.publish();
    // No assignment yet: nothing to do, nothing said.
    let u = Updater::open(&dir, DEVICE, HARDWARE, TestHooks::default()).unwrap(); // root fetched on first use
    let (outcome, events) = check(&u, &repo.source).await;
    assert_eq!((outcome, events), (Ok(Outcome::NothingAssigned), vec![]));

    repo.assign(DEVICE, "fw-2");
    let (outcome, events) = check(&u, &repo.source).await;
    assert_eq!(outcome, Ok(Outcome::Committed { version: "2.0.0".into() }), "{events:?}");
    assert_eq!(steps(&events), HAPPY);
    // The check starts before the assignment is verified; every step after it names the target.
    assert_eq!(events[0].target, None);
    assert!(events[1..].iter().all(|e| e.target.as_deref() == Some("fw-2")), "{events:?}");
    assert_eq!(events.last().unwrap().version.as_deref(), Some("2.0.0"));
    let json: serde_json::Value = serde_json::from_slice(&events[5].to_json()).unwrap();
    assert_eq!(json["event"], "update.committed");
    assert_eq!(json["version"], "2.0.0");

    assert_eq!(u.active().unwrap(), Slot::B, "A was active: B was the inactive slot");
    assert_eq!(slot_image(&dir, Slot::B), Some(v2));
    let running = u.running().unwrap().unwrap();
    assert_eq!((running.version.as_str(), running.counter, running.slot), ("2.0.0", 2, Slot::B));
    assert_eq!(std::fs::read_to_string(dir.join("counter")).unwrap(), "2");
    assert_eq!(std::fs::read_to_string(dir.join("active")).unwrap(), "b");
    assert!(!dir.join("pending.json").exists());
    assert!(dir.join("trusted.json").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let ran = u.hooks().ran.lock().unwrap().clone();
    assert_eq!(ran.iter().map(|(hook, _)| *hook).collect::<Vec<_>>(), ["install", "boot", "health"]);
    let staged = &ran[0].1;
    assert_eq!((staged.slot, staged.version.as_str(), staged.target.as_str()), (Slot::B, "2.0.0", "fw-2"));
    assert_eq!(staged.image, dir.join("slots/b/image.bin"));

    // Asked again: up to date, and quiet; so is an assignment re-issued for the same image.
    let (outcome, events) = check(&u, &repo.source).await;
    assert_eq!((outcome, events), (Ok(Outcome::UpToDate), vec![]));
    repo.assign(DEVICE, "fw-2");
    let (outcome, events) = check(&u, &repo.source).await;
    assert_eq!((outcome, events), (Ok(Outcome::UpToDate), vec![]));
    assert_eq!(repo.source.ranges.lock().unwrap().len(), 1, "not downloaded again");

    // The next version goes to A.
    let v3 = image(20_000, 3);
    repo.add("fw-3", &v3, "3.0.0", HARDWARE, 3);
    repo.publish();
    repo.assign(DEVICE, "fw-3");
    let (outcome, events) = check(&u, &repo.source).await;
    assert_eq!(outcome, Ok(Outcome::Committed { version: "3.0.0".into() }), "{events:?}");
    assert_eq!((u.active().unwrap(), slot_image(&dir, Slot::A)), (Slot::A, Some(v3)));
    assert_eq!(std::fs::read_to_string(dir.join("counter")).unwrap(), "3");
}

#[tokio::test]
async fn an_interrupted_download_resumes_from_the_last_byte_received() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new();
    let v2 = image(50_000, 7);
    repo.add("fw-2", &v2, "2.0.0", HARDWARE, 2);
    repo.publish();
    repo.assign(DEVICE, "fw-2");
    let u = updater(tmp.path(), &repo, TestHooks::default());
    repo.source.serve(Serving { cut_after: Some(12_345), ..Serving::default() });
    let (outcome, events) = check(&u, &repo.source).await;
    let error = outcome.unwrap_err();
    assert!(error.contains("interrupted at byte 12345") && error.contains("connection reset"), "{error}");
    assert_eq!(steps(&events), [Step::Checking, Step::Downloading]);
    let sha = repo.targets["fw-2"].sha256().unwrap().to_owned();
    let part = tmp.path().join(format!("download/{sha}.part"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 12_345, "the bytes received are kept");
    assert_eq!(slot_image(tmp.path(), Slot::B), None);

    repo.source.serve(Serving::default());
    let (outcome, events) = check(&u, &repo.source).await;
    assert_eq!(outcome, Ok(Outcome::Committed { version: "2.0.0".into() }), "{events:?}");
    assert_eq!(*repo.source.ranges.lock().unwrap(), [0, 12_345], "the second request starts where the first broke");
    assert_eq!(events[1].detail.as_deref(), Some("resuming at byte 12345 of 50000"));
    assert_eq!(slot_image(tmp.path(), Slot::B), Some(v2), "the resumed image verifies");
    assert!(!part.exists());
}

/// Checks once more and asserts the check was refused with `message`, reported as
/// `update.refused`, and nothing was installed (`active` still the slot it was).
async fn assert_refused(u: &Updater<TestHooks>, repo: &Repo, message: &str, active: Slot) -> Vec<UpdateEvent> {
    let (outcome, events) = check(u, &repo.source).await;
    let Ok(Outcome::Refused(e)) = &outcome else { panic!("{outcome:?} {events:?}") };
    assert!(e.to_string().contains(message), "{e} does not say {message:?}");
    assert_eq!(steps(&events).first(), Some(&Step::Checking), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last.event, Step::Refused, "{events:?}");
    assert_eq!(last.detail.as_deref(), Some(e.to_string().as_str()));
    assert!(!steps(&events).contains(&Step::Installing), "{events:?}");
    let dir = u.dir();
    assert_eq!(u.active().unwrap(), active);
    assert_eq!(slot_image(dir, active.other()), None, "nothing in the inactive slot");
    assert!(std::fs::read_dir(dir.join("download")).map_or(true, |mut d| d.next().is_none()), "no download kept");
    assert!(!dir.join("pending.json").exists());
    assert!(u.hooks().ran.lock().unwrap().iter().all(|(_, s)| s.version != "2.0.0"), "no hook ran for it");
    events
}

/// A repository with `fw-2` (2.0.0, counter 2, for this hardware, 50 000 bytes) and a device with
/// nothing installed yet.
fn setup() -> (tempfile::TempDir, Repo, Updater<TestHooks>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new();
    repo.add("fw-2", &image(50_000, 2), "2.0.0", HARDWARE, 2);
    repo.publish();
    let u = updater(tmp.path(), &repo, TestHooks::default());
    (tmp, repo, u)
}

#[tokio::test]
async fn a_tampered_image_is_refused() {
    let (_tmp, mut repo, u) = setup();
    repo.assign(DEVICE, "fw-2");
    repo.source.serve(Serving { tamper: true, ..Serving::default() });
    let events = assert_refused(&u, &repo, "SHA-256 does not match", Slot::A).await;
    let refused = events.last().unwrap();
    assert_eq!((refused.target.as_deref(), refused.version.as_deref()), (Some("fw-2"), Some("2.0.0")));
}

#[tokio::test]
async fn targets_signed_by_a_key_outside_the_root_are_refused() {
    let (_tmp, mut repo, u) = setup();
    let intruder = SigningKey::generate(KeyType::Ed25519).unwrap();
    repo.add("evil", &image(1000, 66), "9.9.9", HARDWARE, 99);
    repo.publish_signed_by(Some(&intruder));
    repo.assign(DEVICE, "evil");
    assert_refused(&u, &repo, "targets: 0 valid signature(s)", Slot::A).await;
}

#[tokio::test]
async fn a_validly_signed_older_version_is_refused() {
    let (_tmp, mut repo, u) = setup();
    repo.add("fw-5", &image(3000, 5), "5.0.0", HARDWARE, 5);
    repo.add("fw-3", &image(3000, 3), "3.0.0", HARDWARE, 3);
    repo.publish();
    repo.assign(DEVICE, "fw-5");
    assert_eq!(check(&u, &repo.source).await.0, Ok(Outcome::Committed { version: "5.0.0".into() }));
    repo.assign(DEVICE, "fw-3");
    assert_refused(&u, &repo, "image: version 3 is older than 5", Slot::B).await;
    assert_eq!(u.running().unwrap().unwrap().version, "5.0.0");

    // The persisted floor holds even with nothing recorded as running.
    let (tmp, mut repo, u) = setup();
    std::fs::write(tmp.path().join("counter"), "9").unwrap();
    repo.assign(DEVICE, "fw-2");
    assert_refused(&u, &repo, "image: version 2 is older than 9", Slot::A).await;
}

#[tokio::test]
async fn expired_metadata_is_refused() {
    let (_tmp, mut repo, u) = setup();
    repo.assign(DEVICE, "fw-2");
    let version = repo.targets_version;
    repo.snapshot(version, &expires_at(now() - 60));
    assert_refused(&u, &repo, "timestamp: expired", Slot::A).await;
}

#[tokio::test]
async fn an_assignment_for_another_device_is_refused() {
    let (_tmp, mut repo, u) = setup();
    repo.assign("dev2", "fw-2");
    assert_refused(&u, &repo, "assignment for device dev2, this device is dev1", Slot::A).await;
}

#[tokio::test]
async fn an_image_for_other_hardware_is_refused() {
    let (_tmp, mut repo, u) = setup();
    repo.add("cam", &image(2000, 9), "4.0.0", "camera-z", 4);
    repo.publish();
    repo.assign(DEVICE, "cam");
    assert_refused(&u, &repo, "wrong hardware: this device is meter-x, the image is for camera-z", Slot::A).await;
}

#[tokio::test]
async fn endless_data_is_refused_at_the_signed_length() {
    let (_tmp, mut repo, u) = setup();
    repo.assign(DEVICE, "fw-2");
    repo.source.serve(Serving { extra: 10_000_000, ..Serving::default() });
    assert_refused(&u, &repo, "more than 50000 bytes", Slot::A).await;
}

#[tokio::test]
async fn mixed_metadata_versions_are_refused() {
    let (_tmp, mut repo, u) = setup();
    repo.assign(DEVICE, "fw-2");
    // The snapshot names a targets version other than the one served.
    let version = repo.targets_version;
    repo.snapshot(version + 1, &in_a_year());
    assert_refused(&u, &repo, "does not match what the trusted metadata says", Slot::A).await;
}

#[tokio::test]
async fn a_failed_health_check_rolls_back_to_the_old_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new();
    repo.add("fw-2", &image(5000, 2), "2.0.0", HARDWARE, 2);
    repo.publish();
    repo.assign(DEVICE, "fw-2");
    let hooks = TestHooks { unhealthy: Some("service did not start".into()), ..TestHooks::default() };
    let u = updater(tmp.path(), &repo, hooks);
    let (outcome, events) = check(&u, &repo.source).await;
    let detail = "health check failed: service did not start".to_owned();
    assert_eq!(outcome, Ok(Outcome::RolledBack { version: "2.0.0".into(), detail: detail.clone() }));
    let mut expected = HAPPY[..5].to_vec();
    expected.extend([Step::HealthFailed, Step::RolledBack]);
    assert_eq!(steps(&events), expected);
    assert_eq!(events[5].detail.as_deref(), Some(detail.as_str()));
    assert_eq!(u.active().unwrap(), Slot::A);
    assert_eq!(slot_image(tmp.path(), Slot::B), None);
    assert_eq!(u.running().unwrap(), None);
    assert!(!tmp.path().join("counter").exists(), "the floor did not move");
    assert!(!tmp.path().join("pending.json").exists());
    // The same assignment is not tried again.
    assert_eq!(check(&u, &repo.source).await, (Ok(Outcome::RejectedBefore), vec![]));
}

#[tokio::test]
async fn a_stop_between_boot_and_commit_rolls_back_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new();
    repo.add("fw-2", &image(5000, 2), "2.0.0", HARDWARE, 2);
    repo.publish();
    repo.assign(DEVICE, "fw-2");
    let (started, health_started) = tokio::sync::oneshot::channel();
    let hooks = TestHooks { hang: Mutex::new(Some(started)), ..TestHooks::default() };
    let u = updater(tmp.path(), &repo, hooks);
    {
        let mut events = Vec::new();
        let mut report = |e| events.push(e);
        let run = u.check_and_install(&repo.source, now(), &mut report);
        tokio::select! {
            outcome = run => panic!("the health check hangs, yet: {outcome:?}"),
            _ = health_started => {}
        }
        // The agent stops here: booted, not committed.
        assert_eq!(steps(&events), HAPPY[..5]);
    }
    assert!(tmp.path().join("pending.json").exists());
    drop(u);

    let u = updater(tmp.path(), &repo, TestHooks::default());
    let event = u.recover().unwrap().unwrap();
    assert_eq!(event.event, Step::RolledBack);
    assert_eq!(event.detail.as_deref(), Some("the agent stopped before 2.0.0 was committed"));
    assert_eq!(u.active().unwrap(), Slot::A);
    assert_eq!((u.running().unwrap(), slot_image(tmp.path(), Slot::B)), (None, None));
    assert!(!tmp.path().join("pending.json").exists());
    assert_eq!(u.recover().unwrap(), None, "settled");
}

#[tokio::test]
async fn a_stop_after_the_commit_point_finishes_the_commit_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new();
    let u = updater(tmp.path(), &repo, TestHooks::default());
    let record = palisade_agent::update::Installed {
        slot: Slot::B,
        version: "2.0.0".into(),
        counter: 2,
        target: "fw-2".into(),
        sha256: "00".repeat(32),
        assignment: "11".repeat(32),
    };
    std::fs::write(tmp.path().join("pending.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::write(tmp.path().join("active"), "b").unwrap();
    let event = u.recover().unwrap().unwrap();
    assert_eq!((event.event, event.version.as_deref()), (Step::Committed, Some("2.0.0")));
    assert_eq!(u.running().unwrap(), Some(record));
    assert_eq!(std::fs::read_to_string(tmp.path().join("counter")).unwrap(), "2");
}

#[tokio::test]
async fn hooks_get_the_slot_image_and_version_and_fail_with_what_they_said() {
    let tmp = tempfile::tempdir().unwrap();
    let staged =
        Staged { slot: Slot::B, image: tmp.path().join("image.bin"), version: "2.0.0".into(), target: "fw-2".into() };
    let sh = |script: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let timeout = std::time::Duration::from_secs(10);
    let env = r#"test "$PALISADE_SLOT:$PALISADE_VERSION:$PALISADE_IMAGE" = "b:2.0.0:$0""#;
    let check_env = vec!["/bin/sh".into(), "-c".into(), env.into(), staged.image.display().to_string()];
    assert_eq!(run_hook(&check_env, &staged, timeout).await, Ok(()));
    assert_eq!(run_hook(&[], &staged, timeout).await, Ok(()), "no hook: nothing to do");
    let e = run_hook(&sh("echo starting; echo no such partition >&2; exit 3"), &staged, timeout).await.unwrap_err();
    assert!(e.contains("exit status: 3") && e.ends_with("no such partition"), "{e}");
    let e = run_hook(&sh("yes | head -c 1000000; exit 1"), &staged, timeout).await.unwrap_err();
    assert!(e.len() < 400, "output is bounded: {e}");
    let e = run_hook(&sh("sleep 30"), &staged, std::time::Duration::from_millis(200)).await.unwrap_err();
    assert!(e.contains("killed after"), "{e}");
    let e = run_hook(&["/nonexistent/hook".to_owned()], &staged, timeout).await.unwrap_err();
    assert!(e.starts_with("/nonexistent/hook: "), "{e}");
}

/// A device listener stand-in: HTTPS (TLS 1.3) requiring a client certificate from `ca`, serving
/// `files` and `/firmware/<sha256>` (with `Range: bytes=N-` unless `ignore_range`); every Range
/// header it was sent is recorded.
struct Listener {
    port: u16,
    ca_pem: Vec<u8>,
    ranges: std::sync::Arc<Mutex<Vec<Option<String>>>>,
    client: (Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>),
}

async fn listener(files: HashMap<String, Bytes>, ignore_range: bool) -> Listener {
    use http_body_util::Full;
    use std::sync::Arc;
    let now = time::OffsetDateTime::now_utc();
    let ca = palisade_pki::Ca::generate("test", now).unwrap();
    let server = ca.issue_server(&["localhost".into()], &[], now).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain, server.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap();
    let csr = palisade_pki::csr::verify(csr.der()).unwrap();
    let device = ca.issue_device(&csr, DEVICE, &[1, 2, 3], 30, now).unwrap();
    let client = (
        vec![rustls::pki_types::CertificateDer::from(device.der)],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    );

    let ranges: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let (files, seen) = (Arc::new(files), ranges.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let (acceptor, files, seen) = (acceptor.clone(), files.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let range = request.headers().get("range").map(|v| v.to_str().unwrap().to_owned());
                    seen.lock().unwrap().push(range.clone());
                    let body = files.get(request.uri().path()).cloned();
                    async move {
                        let response = hyper::Response::builder();
                        let Some(body) = body else {
                            return response.status(404).body(Full::new(Bytes::from_static(b"{}")));
                        };
                        let from = range
                            .filter(|_| !ignore_range)
                            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
                        match from {
                            Some(from) => response
                                .status(206)
                                .header("content-range", format!("bytes {from}-{}/{}", body.len() - 1, body.len()))
                                .body(Full::new(body.slice(from..))),
                            None => response.status(200).body(Full::new(body)),
                        }
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    Listener { port, ca_pem: ca.cert_pem().as_bytes().to_vec(), ranges, client }
}

impl Listener {
    fn source(&self) -> palisade_agent::update::HttpSource {
        let tls =
            palisade_agent::http::client_config(&self.ca_pem, Some((self.client.0.clone(), self.client.1.clone_key())))
                .unwrap();
        palisade_agent::update::HttpSource::new(&format!("https://localhost:{}/.well-known/est", self.port), tls)
    }
}

/// The repository's metadata and images as the device listener serves them.
fn served(repo: &Repo) -> HashMap<String, Bytes> {
    let mut files = repo.source.files.lock().unwrap().clone();
    for (sha, image) in repo.source.images.lock().unwrap().iter() {
        files.insert(format!("/firmware/{sha}"), Bytes::from(image.clone()));
    }
    files
}

#[tokio::test]
async fn over_the_device_listener_an_update_resumes_with_a_range_and_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new();
    let v2 = image(300_000, 2);
    repo.add("fw-2", &v2, "2.0.0", HARDWARE, 2);
    repo.publish();
    repo.assign(DEVICE, "fw-2");
    let server = listener(served(&repo), false).await;
    let source = server.source();

    // What an interrupted download left behind.
    let sha = repo.targets["fw-2"].sha256().unwrap().to_owned();
    std::fs::create_dir_all(tmp.path().join("download")).unwrap();
    std::fs::write(tmp.path().join(format!("download/{sha}.part")), &v2[..100_000]).unwrap();

    let u = Updater::open(tmp.path(), DEVICE, HARDWARE, TestHooks::default()).unwrap(); // root fetched: TOFU
    let mut events = Vec::new();
    let outcome = u.check_and_install(&source, now(), &mut |e| events.push(e)).await.unwrap();
    assert_eq!(outcome, Outcome::Committed { version: "2.0.0".into() }, "{events:?}");
    assert_eq!(slot_image(tmp.path(), Slot::B), Some(v2));
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges.iter().flatten().collect::<Vec<_>>(), ["bytes=100000-"], "only the image is asked for a range");
    assert_eq!(ranges.len(), 7, "assignment, 1.root, 2.root (404), timestamp, snapshot, targets, image: {ranges:?}");

    // Nothing assigned: a 404 is no error.
    let mut files = served(&repo);
    files.remove("/tuf/assignment");
    let server = listener(files, false).await;
    let u = Updater::open(&tmp.path().join("other"), DEVICE, HARDWARE, TestHooks::default()).unwrap();
    assert_eq!(u.check_and_install(&server.source(), now(), &mut |_| {}).await.unwrap(), Outcome::NothingAssigned);
}

#[tokio::test]
async fn a_listener_that_ignores_the_range_is_not_taken_at_its_word() {
    let mut repo = Repo::new();
    let v2 = image(10_000, 2);
    repo.add("fw-2", &v2, "2.0.0", HARDWARE, 2);
    let server = listener(served(&repo), true).await;
    let path = format!("/firmware/{}", repo.targets["fw-2"].sha256().unwrap());
    let e = server.source().get_range(&path, 500).await.err().unwrap();
    assert!(e.contains("ignored the range"), "{e}");
    let (start, mut body) = server.source().get_range(&path, 0).await.unwrap().unwrap();
    let mut whole = Vec::new();
    while let Some(chunk) = body.chunk().await.unwrap() {
        whole.extend_from_slice(&chunk);
    }
    assert_eq!((start, whole), (0, v2));
    assert_eq!(server.source().get("/tuf/nothing").await, Ok(None));
}
