//! Vulnerability exposure: the in-memory index of `palisade-vuln` (advisory → components →
//! firmware builds → devices) kept equal to the store.
//!
//! - At start the index is rebuilt from the store: every SBOM, every advisory file replayed in
//!   import order (only the documents that still come from it), every device.
//! - Device changes reach it through the store's change hub ([`run`]): the store marks a
//!   device after each committed write; this task re-reads those devices and moves them.
//! - SBOM uploads and advisory imports run one at a time ([`Vulns::writer`]); each is written
//!   to the store first (an import with its report, audit entry and alerts in one transaction)
//!   and applied to the index under its write lock, so a query never sees half an import. If
//!   the store refuses an import after the index took it, the index is rebuilt from the store.
//!
//! A device is counted on the build (model, firmware version) it runs. Builds without an SBOM
//! are kept (empty) so their devices are counted as "not covered" and move into exposure as
//! soon as the SBOM arrives.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use palisade_core::audit::Actor;
use palisade_store::alerts::Raise;
use palisade_store::audit::AuditContext;
use palisade_store::changes::Changed;
use palisade_store::vuln::{DocRow, IndexedDevice, NewImport, SourceFile};
use palisade_store::{Store, StoreError};
use palisade_vuln::advisory::{AdvisoryDoc, parse_advisory};
use palisade_vuln::bundle;
use palisade_vuln::index::{Build, BuildId, DeviceClass, Index, document_key};
use palisade_vuln::sbom::{Sbom, SbomError, parse_sbom};
use palisade_vuln::version::Ecosystem;
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock, watch};

use crate::{AppState, now_ms};

/// Largest SBOM accepted.
pub const MAX_SBOM_BYTES: usize = 64 << 20;
/// Largest advisory upload (a file or a zip).
pub const MAX_ADVISORY_BYTES: usize = 256 << 20;
/// Most alerts one import raises; the rest are counted in its report.
pub const MAX_ALERTS_PER_IMPORT: usize = 1_000;
/// Longest model or version name.
const MAX_NAME: usize = 128;
/// Most file errors listed when an import is refused.
const MAX_LISTED_ERRORS: usize = 20;

/// The exposure index and what is known of the builds' SBOMs.
#[derive(Debug)]
pub struct Vulns {
    state: RwLock<Exposure>,
    /// Serialises writers, so the store and the index take changes in the same order.
    writer: Mutex<()>,
    /// `vulnerabilities.cpe_matching`: how the index is built.
    cpe_matching: bool,
    /// Held while device changes are drained and applied, so that whoever catches up sees
    /// every change committed before it asked (none is in flight elsewhere).
    refreshing: Mutex<()>,
    /// True once [`run`] has loaded the index from the store; until then exposure requests wait.
    ready: watch::Sender<bool>,
}

/// What the index answers from.
#[derive(Debug, Default)]
pub struct Exposure {
    pub index: Index,
    /// Builds with an SBOM: format, components, upload time.
    pub sboms: HashMap<Build, SbomInfo>,
    /// Devices without a firmware version (not placed on any build).
    pub unknown_firmware: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomInfo {
    pub format: String,
    pub components: usize,
    pub uploaded_ms: i64,
}

/// Why a vulnerability operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum VulnError {
    #[error("{field}: {reason}")]
    Refused { field: String, reason: String },
    #[error("the SBOM is unusable: {0}")]
    Sbom(#[from] SbomError),
    #[error("{}", describe_files(.0))]
    Advisories(Vec<(String, String)>),
    #[error("the exposure index is still loading after a restart; try again in a few seconds")]
    Loading,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long an exposure request waits for the index to finish loading before it is refused.
pub const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn describe_files(errors: &[(String, String)]) -> String {
    let listed: Vec<String> =
        errors.iter().take(MAX_LISTED_ERRORS).map(|(file, problem)| format!("{file}: {problem}")).collect();
    let more = errors.len().saturating_sub(MAX_LISTED_ERRORS);
    let tail = if more > 0 { format!("; and {more} more") } else { String::new() };
    format!("nothing was imported; {} file(s) are unusable: {}{tail}", errors.len(), listed.join("; "))
}

fn refused(field: &str, reason: impl Into<String>) -> VulnError {
    VulnError::Refused { field: field.to_owned(), reason: reason.into() }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

fn empty_sbom() -> Sbom {
    Sbom { format: String::new(), subject: None, components: Vec::new(), dependencies: Vec::new() }
}

fn class_of(device: &IndexedDevice) -> DeviceClass {
    DeviceClass {
        criticality: device.criticality.clone(),
        region: device.region.clone().unwrap_or_default(),
        group: device.group.clone().unwrap_or_default(),
    }
}

impl Exposure {
    /// Puts a device where the store says it is (or takes it out).
    fn apply(&mut self, device: &IndexedDevice) {
        let version = device.firmware_version.as_deref().filter(|v| !v.is_empty());
        let (Some(version), false) = (version, device.state == "decommissioned") else {
            self.index.remove_device(&device.id);
            if device.state == "decommissioned" {
                self.unknown_firmware.remove(&device.id);
            } else {
                self.unknown_firmware.insert(device.id.clone());
            }
            return;
        };
        self.unknown_firmware.remove(&device.id);
        let build = Build { model: device.model.clone(), version: version.to_owned() };
        let id = match self.index.build_id(&build) {
            Some(id) => id,
            None => self.index.add_sbom(build, &empty_sbom()),
        };
        if let Err(e) = self.index.add_device(&device.id, id, class_of(device)) {
            tracing::error!(error = %e, device = %device.id, "cannot place a device in the exposure index");
        }
    }

    fn has_sbom(&self, build: BuildId) -> bool {
        self.index.build(build).is_some_and(|b| self.sboms.contains_key(b))
    }
}

/// Loads the whole index from the store; with `cpe_matching`, components without a purl are
/// matched by CPE too (lower confidence).
pub async fn load(store: &Store, cpe_matching: bool) -> Result<Exposure, StoreError> {
    let started = std::time::Instant::now();
    let index = if cpe_matching { Index::with_cpe_matching() } else { Index::new() };
    let mut exposure = Exposure { index, ..Exposure::default() };
    for stored in store.sboms().await? {
        match parse_sbom(&stored.body) {
            Ok(sbom) => {
                let build = Build { model: stored.model.clone(), version: stored.version.clone() };
                exposure.index.add_sbom(build.clone(), &sbom);
                exposure.sboms.insert(
                    build,
                    SbomInfo {
                        format: stored.format,
                        components: sbom.components.len(),
                        uploaded_ms: stored.uploaded_ms,
                    },
                );
            }
            Err(e) => tracing::error!(model = %stored.model, version = %stored.version, error = %e,
                "a stored SBOM no longer parses; its build is left out of exposure"),
        }
    }
    let mut documents = 0usize;
    for source in store.advisory_sources().await? {
        let keys: HashSet<&str> = source.keys.iter().map(String::as_str).collect();
        match parse_advisory(&source.body) {
            Ok(docs) => {
                for doc in docs.iter().filter(|d| keys.contains(document_key(d).as_str())) {
                    exposure.index.add_advisory(doc);
                    documents += 1;
                }
            }
            Err(e) => tracing::error!(file = %source.name, error = %e, "a stored advisory file no longer parses"),
        }
    }
    for_each_device(store, |device| exposure.apply(device)).await?;
    tracing::info!(
        sboms = exposure.sboms.len(),
        documents,
        devices = exposure.index.device_count(),
        ms = started.elapsed().as_millis() as u64,
        "exposure index loaded"
    );
    Ok(exposure)
}

/// Devices read per page when the whole fleet is read.
const FLEET_PAGE: i64 = 20_000;

/// Calls `f` on every device of the store, reading the fleet page by page in id order.
async fn for_each_device(store: &Store, mut f: impl FnMut(&IndexedDevice)) -> Result<(), StoreError> {
    let mut after = String::new();
    loop {
        let page = store.indexed_fleet_page(&after, FLEET_PAGE).await?;
        for device in &page {
            f(device);
        }
        match page.last() {
            Some(last) if page.len() as i64 == FLEET_PAGE => after.clone_from(&last.id),
            _ => return Ok(()),
        }
    }
}

impl Vulns {
    /// An empty index, not ready: [`run`] loads it from the store once the server listens.
    pub fn new(cpe_matching: bool) -> Self {
        Self {
            state: RwLock::new(Exposure::default()),
            writer: Mutex::new(()),
            cpe_matching,
            refreshing: Mutex::new(()),
            ready: watch::Sender::new(false),
        }
    }

    /// Waits (up to [`LOAD_WAIT`]) until the index is loaded.
    async fn loaded(&self) -> Result<(), VulnError> {
        let mut ready = self.ready.subscribe();
        match tokio::time::timeout(LOAD_WAIT, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(VulnError::Loading),
        }
    }

    /// Read access for queries once the index is loaded, after applying the device changes
    /// committed so far (a device changed through the API is where it belongs by the time the
    /// caller asks).
    pub async fn read(&self, store: &Store) -> Result<tokio::sync::RwLockReadGuard<'_, Exposure>, VulnError> {
        self.loaded().await?;
        let _ = self.catch_up(store).await;
        Ok(self.state.read().await)
    }

    /// Applies every device change committed so far. A failure is logged and the whole fleet
    /// re-read later (by [`run`]); the index stays as it was meanwhile.
    pub async fn catch_up(&self, store: &Store) -> bool {
        let _refreshing = self.refreshing.lock().await;
        let hub = store.device_changes();
        while let Some(changed) = hub.drain() {
            if let Err(e) = self.refresh(store, changed).await {
                tracing::error!(error = %e, "cannot refresh the exposure index; re-reading the whole fleet next");
                hub.mark_all();
                return false;
            }
        }
        true
    }

    /// Re-reads devices the store marked as changed.
    async fn refresh(&self, store: &Store, changed: Changed) -> Result<(), StoreError> {
        match changed {
            Changed::Devices(ids) => {
                let found = store.indexed_devices(ids.clone()).await?;
                let present: HashSet<&str> = found.iter().map(|d| d.id.as_str()).collect();
                let mut state = self.state.write().await;
                for device in &found {
                    state.apply(device);
                }
                for id in ids.iter().filter(|id| !present.contains(id.as_str())) {
                    state.index.remove_device(id);
                    state.unknown_firmware.remove(id);
                }
            }
            Changed::All => {
                // Read the fleet first (page by page), then apply it under the lock at once.
                let mut fleet = Vec::new();
                for_each_device(store, |device| fleet.push(device.clone())).await?;
                let present: HashSet<&str> = fleet.iter().map(|d| d.id.as_str()).collect();
                let mut state = self.state.write().await;
                let gone: Vec<String> =
                    state.index.device_ids().filter(|id| !present.contains(id)).map(str::to_owned).collect();
                for id in &gone {
                    state.index.remove_device(id);
                }
                state.unknown_firmware.retain(|id| present.contains(id.as_str()));
                for device in &fleet {
                    state.apply(device);
                }
            }
        }
        Ok(())
    }
}

/// Loads the index from the store (the server already listens meanwhile; exposure requests
/// wait), then keeps its devices equal to the store's until shutdown.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let hub = state.store.device_changes();
    loop {
        match load(&state.store, state.vulns.cpe_matching).await {
            Ok(exposure) => {
                *state.vulns.state.write().await = exposure;
                state.vulns.ready.send_replace(true);
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load the exposure index; trying again in 5 s");
                tokio::select! {
                    _ = shutdown.changed() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            () = hub.wait() => {}
        }
        if !state.vulns.catch_up(&state.store).await {
            // The refresh failed and asked for everything again: give a failing store a moment.
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SBOMs

fn valid_name(field: &str, value: &str) -> Result<(), VulnError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(refused(field, format!("must be 1 to {MAX_NAME} bytes")));
    }
    if value.chars().any(|c| c.is_control() || c == '/') {
        return Err(refused(field, "must not hold control characters or '/'"));
    }
    Ok(())
}

/// What attaching an SBOM did.
#[derive(Debug, Clone)]
pub struct SbomOutcome {
    pub format: String,
    pub components: usize,
    pub replaced: bool,
    /// Components whose version their ecosystem cannot parse (kept, never matched).
    pub unparsed: Vec<(String, String, String)>,
    /// Vulnerabilities now known to touch the build.
    pub vulnerabilities: Vec<String>,
    pub devices: usize,
}

/// Validates, stores and indexes the SBOM of a build.
pub async fn put_sbom(
    state: &AppState,
    model: &str,
    version: &str,
    body: &[u8],
    ctx: AuditContext,
) -> Result<SbomOutcome, VulnError> {
    valid_name("model", model)?;
    valid_name("version", version)?;
    let sbom = parse_sbom(body)?;
    let format = sbom.format.clone();
    let components = sbom.components.len();
    let _writer = state.vulns.writer.lock().await;
    state.vulns.loaded().await?;
    let _ = state.vulns.catch_up(&state.store).await;
    let stored = palisade_store::vuln::Sbom {
        model: model.to_owned(),
        version: version.to_owned(),
        format: format.clone(),
        components: i64::try_from(components).unwrap_or(i64::MAX),
        sha256: sha256_hex(body),
        body: body.to_vec(),
        uploaded_ms: ctx.at_ms,
    };
    let at_ms = ctx.at_ms;
    let replaced = state.store.put_sbom(stored, ctx).await?;
    let build = Build { model: model.to_owned(), version: version.to_owned() };
    let mut exposure = state.vulns.state.write().await;
    let id = exposure.index.add_sbom(build.clone(), &sbom);
    exposure.sboms.insert(build, SbomInfo { format: format.clone(), components, uploaded_ms: at_ms });
    let unparsed =
        exposure.index.unparsed(id).iter().map(|u| (u.purl_key.clone(), u.version.clone(), u.reason.clone())).collect();
    let vulnerabilities = exposure.index.build_findings(id).into_iter().map(|f| f.vulnerability).collect();
    let devices = exposure.index.build_device_count(id);
    Ok(SbomOutcome { format, components, replaced, unparsed, vulnerabilities, devices })
}

// ---------------------------------------------------------------------------------------------
// Advisories

/// One uploaded file: a single advisory document (or list), or a zip of many.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The files of an upload with their documents, and the zip entries skipped.
type Parsed = (Vec<(Upload, Vec<AdvisoryDoc>)>, Vec<String>);

/// Parses every file of an upload; the first failure of each file is kept, and any failure
/// refuses the whole import.
fn parse_upload(uploads: Vec<Upload>) -> Result<Parsed, VulnError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for upload in uploads {
        if bundle::is_zip(&upload.bytes) {
            match bundle::unpack(&upload.bytes) {
                Ok(b) => {
                    skipped.extend(b.skipped.into_iter().map(|s| format!("{}!{s}", upload.name)));
                    for f in b.files {
                        files.push(Upload { name: format!("{}!{}", upload.name, f.name), bytes: f.bytes });
                    }
                }
                Err(e) => errors.push((upload.name.clone(), e.to_string())),
            }
        } else {
            files.push(upload);
        }
    }
    let mut parsed = Vec::with_capacity(files.len());
    for file in files {
        match parse_advisory(&file.bytes) {
            Ok(docs) => parsed.push((file, docs)),
            Err(e) => errors.push((file.name.clone(), e.to_string())),
        }
    }
    if !errors.is_empty() {
        return Err(VulnError::Advisories(errors));
    }
    if parsed.is_empty() {
        return Err(refused("body", "no advisory file found (a zip must hold .json files)"));
    }
    Ok((parsed, skipped))
}

/// Imports advisory files (each a document, a list, or a zip): all or nothing. Returns the
/// import report, which is also stored.
pub async fn import(state: &AppState, uploads: Vec<Upload>, ctx: AuditContext) -> Result<Value, VulnError> {
    let started = std::time::Instant::now();
    let (files, skipped) = parse_upload(uploads)?;
    let mut rand = [0u8; 8];
    palisade_store::sealed::random(&mut rand)?;
    let import_id = format!("imp_{}", hex::encode(rand));

    // Files by content; documents by key (a later copy in the same import wins).
    let mut sources: Vec<SourceFile> = Vec::new();
    let mut seen_sources: HashSet<String> = HashSet::new();
    let mut docs: BTreeMap<String, (usize, DocRow)> = BTreeMap::new();
    let mut ordered: Vec<(String, AdvisoryDoc)> = Vec::new();
    let mut unknown_ecosystems: BTreeSet<String> = BTreeSet::new();
    let mut withdrawn = Vec::new();
    for (upload, parsed) in files {
        let sha = sha256_hex(&upload.bytes);
        for doc in parsed {
            let key = document_key(&doc);
            for affected in &doc.affected {
                if !affected.ecosystem.is_empty()
                    && Ecosystem::from_osv(&affected.ecosystem) == Ecosystem::Generic
                    && !affected.ecosystem.eq_ignore_ascii_case("generic")
                {
                    unknown_ecosystems.insert(affected.ecosystem.clone());
                }
            }
            if doc.withdrawn {
                withdrawn.push(doc.id.clone());
            }
            let position = ordered.len();
            docs.insert(
                key.clone(),
                (position, DocRow { key: key.clone(), source: sha.clone(), modified: doc.modified.clone() }),
            );
            ordered.push((key, doc));
        }
        if seen_sources.insert(sha.clone()) {
            sources.push(SourceFile { sha256: sha, name: upload.name, body: upload.bytes });
        }
    }
    // Only the last copy of each key is applied.
    let applied: Vec<&AdvisoryDoc> = ordered
        .iter()
        .enumerate()
        .filter(|(i, (key, _))| docs.get(key).is_some_and(|(p, _)| p == i))
        .map(|(_, (_, d))| d)
        .collect();
    let rows: Vec<DocRow> = {
        let mut rows: Vec<(usize, DocRow)> = docs.into_values().collect();
        rows.sort_by_key(|(p, _)| *p);
        rows.into_iter().map(|(_, r)| r).collect()
    };

    let _writer = state.vulns.writer.lock().await;
    state.vulns.loaded().await?;
    let _ = state.vulns.catch_up(&state.store).await;
    let mut exposure = state.vulns.state.write().await;
    let mut vulns: BTreeMap<String, VulnReport> = BTreeMap::new();
    let mut bad_bounds = Vec::new();
    let mut unparsed = BTreeSet::new();
    for doc in &applied {
        let change = exposure.index.add_advisory(doc);
        let report = vulns.entry(change.vulnerability.clone()).or_default();
        report.documents += 1;
        report.became.extend(change.became_affected.iter().copied());
        report.left.extend(change.no_longer_affected.iter().copied());
        bad_bounds.extend(change.bad_bounds.iter().map(|b| format!("{}: {b}", doc.id)));
        for u in &change.unparsed {
            unparsed.insert(format!("{} {:?}: {}", u.purl_key, u.version, u.reason));
        }
    }
    // Merges can rename a vulnerability mid-import: report under the final canonical id.
    let mut final_reports: BTreeMap<String, VulnReport> = BTreeMap::new();
    for (id, r) in vulns {
        let canonical = exposure.index.affected(&id).map_or(id, |e| e.vulnerability);
        let into = final_reports.entry(canonical).or_default();
        into.documents += r.documents;
        into.became.extend(r.became);
        into.left.extend(r.left);
    }
    let mut alerts = Vec::new();
    let mut alerts_not_raised = 0usize;
    let mut vuln_json = Vec::new();
    for (id, r) in &final_reports {
        let exposure_now = exposure.index.affected(id);
        let cvss = exposure_now.as_ref().and_then(|e| e.cvss_max);
        let became: Vec<BuildId> = r.became.iter().filter(|b| !r.left.contains(b)).copied().collect();
        let mut newly = 0usize;
        let mut newly_critical = 0usize;
        for build in &became {
            newly += exposure.index.build_device_count(*build);
            let critical = exposure.index.build_criticality_count(*build, "critical");
            newly_critical += critical;
            // One alert per newly exposed critical device, up to the cap; the rest are counted,
            // never walked (a fleet of millions must not be scanned on import).
            let room = MAX_ALERTS_PER_IMPORT.saturating_sub(alerts.len());
            if room == 0 {
                alerts_not_raised += critical;
                continue;
            }
            let label = exposure.index.build(*build).map(|b| format!("{} {}", b.model, b.version)).unwrap_or_default();
            let score = cvss.map_or_else(|| "unscored".to_owned(), |s| format!("CVSS {s:.1}"));
            let mut raised_here = 0usize;
            for (device, class) in
                exposure.index.devices_on(*build).filter(|(_, c)| c.criticality == "critical").take(room)
            {
                raised_here += 1;
                alerts.push(Raise {
                    device_id: device.to_owned(),
                    group: Some(class.group.clone()).filter(|g| !g.is_empty()),
                    profile: "vulnerabilities".to_owned(),
                    rule: id.clone(),
                    severity: if cvss.is_some_and(|s| s >= 9.0) { "critical" } else { "high" }.to_owned(),
                    title: format!("{id} ({score}) affects this critical device"),
                    detail: format!("firmware {label} ships a vulnerable component; import {import_id}"),
                    response: "alert".to_owned(),
                    at_ms: ctx.at_ms,
                });
            }
            alerts_not_raised += critical.saturating_sub(raised_here);
        }
        let mut affected_builds = Vec::new();
        for build in &became {
            if let Some(b) = exposure.index.build(*build) {
                affected_builds.push(json!({ "model": b.model, "version": b.version }));
            }
        }
        vuln_json.push(json!({
            "id": id,
            "aliases": exposure_now.as_ref().map(|e| e.aliases.clone()).unwrap_or_default(),
            "cvss": cvss,
            "documents": r.documents,
            "builds_newly_affected": affected_builds,
            "builds_no_longer_affected": r.left.iter().filter(|b| !r.became.contains(b)).count(),
            "devices_affected": exposure_now.as_ref().map_or(0, |e| e.devices),
            "devices_newly_affected": newly,
            "critical_devices_newly_affected": newly_critical,
        }));
    }
    let mut report = json!({
        "id": import_id,
        "files": sources.len(),
        "documents": rows.len(),
        "vulnerabilities": vuln_json,
        "skipped_entries": skipped,
        "warnings": {
            "unknown_ecosystems": unknown_ecosystems,
            "bad_bounds": bad_bounds.iter().take(200).collect::<Vec<_>>(),
            "bad_bounds_total": bad_bounds.len(),
            "unparsed_component_versions": unparsed.iter().take(200).collect::<Vec<_>>(),
            "withdrawn": withdrawn,
        },
        "alerts_raised": 0,
        "alerts_not_raised": alerts_not_raised,
        "at_ms": ctx.at_ms,
    });
    let imp = NewImport { id: import_id.clone(), files: sources, docs: rows, report: report.clone(), alerts };
    match state.store.import_advisories(imp, ctx).await {
        Ok(opened) => {
            if let Some(obj) = report.as_object_mut() {
                obj.insert("alerts_raised".into(), json!(opened.len()));
                obj.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
            }
            drop(exposure);
            if !opened.is_empty() {
                state.notifier.wake();
                for alert_id in &opened {
                    if let Ok(alert) = state.store.alert(alert_id).await {
                        let event =
                            json!({"event": "alert.opened", "alert": palisade_store::alerts::alert_json(&alert)});
                        let _ = state.detector.live.send(event.to_string());
                    }
                }
            }
            Ok(report)
        }
        Err(e) => {
            // The index took documents the store refused: rebuild it from the store.
            match load(&state.store, state.vulns.cpe_matching).await {
                Ok(fresh) => *exposure = fresh,
                Err(reload) => tracing::error!(error = %reload, "cannot rebuild the exposure index"),
            }
            Err(e.into())
        }
    }
}

#[derive(Debug, Default)]
struct VulnReport {
    documents: usize,
    became: BTreeSet<BuildId>,
    left: BTreeSet<BuildId>,
}

/// The system's audit context (start-up work, workers).
pub fn system_ctx() -> AuditContext {
    AuditContext { actor: Actor::System, source_ip: None, at_ms: now_ms() }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// The newest catalogue image of `model` that has an SBOM and that the vulnerability does not
/// affect, when the catalogue has one: (target name, version).
pub fn fixing_firmware(
    exposure: &Exposure,
    catalogue: &[palisade_store::firmware::CatalogueEntry],
    model: &str,
    vulnerability: &str,
) -> Option<(String, String)> {
    catalogue
        .iter()
        .filter(|e| e.hardware == model)
        .filter_map(|e| {
            let build = Build { model: model.to_owned(), version: e.version.clone() };
            let id = exposure.index.build_id(&build)?;
            (exposure.has_sbom(id) && !exposure.index.affects(vulnerability, id)).then_some(e)
        })
        .max_by(|a, b| {
            palisade_vuln::version::compare(Ecosystem::Generic, &a.version, &b.version)
                .unwrap_or_else(|_| a.version.cmp(&b.version))
                .then(a.counter.cmp(&b.counter))
        })
        .map(|e| (e.name.clone(), e.version.clone()))
}

/// Devices counted per build without an SBOM, and devices with no firmware version.
pub fn coverage(exposure: &Exposure) -> (usize, usize, usize) {
    let mut covered = 0usize;
    let mut uncovered = 0usize;
    for (id, _) in exposure.index.builds() {
        let n = exposure.index.build_device_count(id);
        if exposure.has_sbom(id) {
            covered += n;
        } else {
            uncovered += n;
        }
    }
    (covered, uncovered, exposure.unknown_firmware.len())
}

/// Whether the build behind a handle has an SBOM.
pub fn has_sbom(exposure: &Exposure, build: BuildId) -> bool {
    exposure.has_sbom(build)
}
