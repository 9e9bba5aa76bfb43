//! The exposure index: advisory → components → firmware builds → devices, in memory, as lookups.
//!
//! Components are indexed by purl key (the purl without version) with one entry per build that
//! ships them, their versions parsed once under the purl type's ecosystem. Advisories resolve
//! through their aliases (CVE ↔ GHSA ↔ GO-…) to one vulnerability; importing or re-importing an
//! advisory re-evaluates only the packages it names, and adding an SBOM re-evaluates only the
//! vulnerabilities naming its packages. Devices are counted per build by criticality, region
//! and group as they are added and removed, so an exposure query sums per-build counts and never
//! scans devices.
//!
//! Matching follows OSV: range events are sorted in the ecosystem's version order and walked
//! (`introduced` opens, `fixed` closes, `last_affected` closes after the bound, `limit` caps the
//! range); `versions` are exact matches; GIT ranges are ignored. Versions of an ecosystem the
//! crate cannot order use the generic order and are marked [`Confidence::Generic`]. VEX
//! `not_affected` statements suppress a match and keep their justification.
//!
//! Aliases only ever merge: an advisory that drops an alias on update does not split the
//! vulnerability it was merged into.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::advisory::{AdvisoryDoc, AdvisoryFormat, Event, RangeKind, VexStatus, alias_set};
use crate::cvss;
use crate::purl::Purl;
use crate::sbom::Sbom;
use crate::version::{Ecosystem, Version};

/// A firmware build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Build {
    pub model: String,
    pub version: String,
}

/// Where a device stands in the fleet; what exposure is counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceClass {
    /// `critical`, `high`, `medium` or `low` (others count with weight 0 in the ranking).
    pub criticality: String,
    pub region: String,
    pub group: String,
}

/// A build's handle in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId(pub u32);

/// How much a match can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Compared in the package's own ecosystem order.
    Ecosystem,
    /// The ecosystem has no known order; the generic numeric-aware order was used.
    Generic,
    /// A component without a purl, matched by CPE vendor:product:version.
    Cpe,
}

/// Why an operation on the index was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("unknown build {0:?}")]
    UnknownBuild(BuildId),
}

/// A component version that its ecosystem's rules cannot parse: kept, never matched, reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnparsedVersion {
    pub build: BuildId,
    pub purl_key: String,
    /// Empty when the component has no version at all.
    pub version: String,
    pub reason: String,
}

/// What importing an advisory changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdvisoryChange {
    /// The canonical id of the vulnerability the advisory resolved to.
    pub vulnerability: String,
    pub became_affected: Vec<BuildId>,
    pub no_longer_affected: Vec<BuildId>,
    /// Components of the packages the advisory names whose version could not be parsed.
    pub unparsed: Vec<UnparsedVersion>,
    /// Range bounds in the advisory that could not be parsed (skipped).
    pub bad_bounds: Vec<String>,
}

/// A vulnerability's reach across the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// Canonical id: the lowest CVE id when there is one, else the lowest id.
    pub vulnerability: String,
    /// Every id the vulnerability is known by, canonical one included.
    pub aliases: Vec<String>,
    pub cvss_max: Option<f64>,
    /// Affected builds and the first fixed version above the shipped one, when known.
    pub builds: Vec<(Build, Option<String>)>,
    pub devices: usize,
    pub by_criticality: BTreeMap<String, usize>,
    pub by_region: BTreeMap<String, usize>,
    pub by_group: BTreeMap<String, usize>,
    /// Matches suppressed by VEX `not_affected`: component purl key and justification.
    pub suppressed: Vec<(String, Option<String>)>,
    /// Every VEX statement recorded for the vulnerability: product and status.
    pub statements: Vec<(String, VexStatus)>,
    /// The least trustworthy match among the affected builds.
    pub confidence: Option<Confidence>,
}

/// One vulnerability touching one device's build.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub vulnerability: String,
    pub aliases: Vec<String>,
    pub cvss_max: Option<f64>,
    pub components: Vec<FindingComponent>,
}

/// A vulnerable component of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingComponent {
    pub purl_key: String,
    pub version: String,
    pub fixed_in: Option<String>,
    pub confidence: Confidence,
}

/// The key a document is stored and replaced under: its format, the document it came from
/// (CSAF tracking id, CycloneDX serial number) and its normalised id, so an OSV entry and two
/// vendors' VEX about the same CVE all count, and a newer copy of any replaces its older self.
pub fn document_key(doc: &AdvisoryDoc) -> String {
    let format = match doc.format {
        AdvisoryFormat::Osv => "osv",
        AdvisoryFormat::CycloneDxVex => "cyclonedx",
        AdvisoryFormat::Csaf => "csaf",
    };
    match &doc.document {
        Some(document) => format!("{format}:{document}:{}", normalise(&doc.id)),
        None => format!("{format}:{}", normalise(&doc.id)),
    }
}

/// Ranking weight of a criticality: critical 4, high 3, medium 2, low 1, anything else 0.
pub fn criticality_weight(criticality: &str) -> u64 {
    match criticality.to_ascii_lowercase().as_str() {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Internal state

type NameKey = (Ecosystem, String);

#[derive(Debug)]
struct Instance {
    build: BuildId,
    raw: String,
    version: Option<Version>,
    /// The distribution release of an OS package (`distro` qualifier), normalised.
    release: Option<Vec<u32>>,
}

#[derive(Debug)]
struct Package {
    name: Option<NameKey>,
    ecosystem: Ecosystem,
    cpe: bool,
    instances: Vec<Instance>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    weight: u64,
    by_criticality: BTreeMap<String, usize>,
    by_region: BTreeMap<String, usize>,
    by_group: BTreeMap<String, usize>,
}

#[derive(Debug)]
struct BuildEntry {
    build: Build,
    keys: Vec<String>,
    unparsed: Vec<UnparsedVersion>,
    counts: Counts,
    devices: BTreeSet<String>,
    vulns: BTreeSet<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Key(String),
    Name(NameKey),
}

#[derive(Debug)]
enum Bound {
    Introduced(Option<Version>),
    Fixed(Version),
    LastAffected(Version),
}

#[derive(Debug)]
struct ParsedRange {
    events: Vec<Bound>,
    limits: Vec<Version>,
}

#[derive(Debug)]
struct Rule {
    target: Target,
    ranges: Vec<ParsedRange>,
    versions: Vec<Version>,
    /// Every version matches (a CPE statement with `*` or `-` as version).
    any_version: bool,
    cpe: bool,
    /// The distribution release an OS advisory is scoped to (`Debian:12`, `Alpine:v3.18`).
    release: Option<Vec<u32>>,
}

#[derive(Debug)]
struct Statement {
    product: String,
    key: Option<String>,
    version: Option<String>,
    status: VexStatus,
}

#[derive(Debug)]
struct Doc {
    rules: Vec<Rule>,
    statements: Vec<Statement>,
    cvss_max: Option<f64>,
    withdrawn: bool,
}

impl Doc {
    fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        let rules = self.rules.iter().map(|rule| rule.target.clone());
        rules.chain(self.statements.iter().filter_map(|statement| statement.key.clone().map(Target::Key)))
    }
}

#[derive(Debug, Clone)]
struct Hit {
    build: BuildId,
    version: String,
    fixed_in: Option<String>,
    confidence: Confidence,
}

#[derive(Debug, Default)]
struct KeyEval {
    hits: Vec<Hit>,
    suppressed: Vec<(BuildId, Option<String>)>,
}

#[derive(Debug, Default)]
struct Vuln {
    canonical: String,
    ids: BTreeSet<String>,
    docs: BTreeMap<String, Doc>,
    evals: HashMap<String, KeyEval>,
    builds: BTreeMap<BuildId, Option<String>>,
    cvss_max: Option<f64>,
    merged: bool,
}

/// The in-memory exposure index. See the module documentation.
#[derive(Debug, Default)]
pub struct Index {
    cpe_matching: bool,
    builds: Vec<BuildEntry>,
    build_ids: HashMap<Build, BuildId>,
    packages: HashMap<String, Package>,
    names: HashMap<NameKey, BTreeSet<String>>,
    key_vulns: HashMap<String, BTreeSet<usize>>,
    name_vulns: HashMap<NameKey, BTreeSet<usize>>,
    vulns: Vec<Vuln>,
    ids: HashMap<String, usize>,
    devices: HashMap<String, (BuildId, u32)>,
    classes: Vec<DeviceClass>,
    class_ids: HashMap<DeviceClass, u32>,
}

impl Index {
    /// An empty index; components without a purl are ignored.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index that also keeps components without a purl and matches them by CPE
    /// vendor:product:version against VEX/CSAF statements naming a CPE
    /// ([`Confidence::Cpe`], lower confidence).
    pub fn with_cpe_matching() -> Self {
        Self { cpe_matching: true, ..Self::default() }
    }

    /// The handle of a build added before.
    pub fn build_id(&self, build: &Build) -> Option<BuildId> {
        self.build_ids.get(build).copied()
    }

    /// The build behind a handle.
    pub fn build(&self, id: BuildId) -> Option<&Build> {
        self.entry(id).map(|entry| &entry.build)
    }

    /// Component versions of a build that could not be parsed (never matched).
    pub fn unparsed(&self, id: BuildId) -> &[UnparsedVersion] {
        self.entry(id).map_or(&[], |entry| entry.unparsed.as_slice())
    }

    fn entry(&self, id: BuildId) -> Option<&BuildEntry> {
        self.builds.get(id.0 as usize)
    }

    fn entry_mut(&mut self, id: BuildId) -> Option<&mut BuildEntry> {
        self.builds.get_mut(id.0 as usize)
    }

    /// Adds a build's components, replacing them if the build was added before, and
    /// re-evaluates the vulnerabilities naming the packages that came or went.
    pub fn add_sbom(&mut self, build: Build, sbom: &Sbom) -> BuildId {
        let id = match self.build_ids.get(&build) {
            Some(id) => *id,
            None => {
                let id = BuildId(u32::try_from(self.builds.len()).unwrap_or(u32::MAX));
                self.build_ids.insert(build.clone(), id);
                self.builds.push(BuildEntry {
                    build,
                    keys: Vec::new(),
                    unparsed: Vec::new(),
                    counts: Counts::default(),
                    devices: BTreeSet::new(),
                    vulns: BTreeSet::new(),
                });
                id
            }
        };
        let old_keys = match self.entry_mut(id) {
            Some(entry) => {
                entry.unparsed.clear();
                std::mem::take(&mut entry.keys)
            }
            None => Vec::new(),
        };
        for key in &old_keys {
            if let Some(package) = self.packages.get_mut(key) {
                package.instances.retain(|instance| instance.build != id);
            }
        }

        let mut keys = Vec::new();
        let mut unparsed = Vec::new();
        for component in &sbom.components {
            let purl = component.purl.as_deref().and_then(|purl| Purl::parse(purl).ok());
            let release = purl.as_ref().and_then(|p| p.qualifiers.get("distro")).and_then(|d| release(d));
            let (key, ecosystem, name, raw, cpe) = match purl {
                Some(purl) => {
                    let ecosystem = purl.ecosystem();
                    let name = name_key(ecosystem, &purl);
                    let raw = component.version.clone().or(purl.version.clone()).unwrap_or_default();
                    (purl.key(), ecosystem, Some(name), raw, false)
                }
                None if self.cpe_matching => match component.cpes.iter().find_map(|cpe| split_cpe(cpe)) {
                    Some((key, version)) => {
                        let raw = match version {
                            Some(version) => version,
                            None => component.version.clone().unwrap_or_default(),
                        };
                        (key, Ecosystem::Generic, None, raw, true)
                    }
                    None => continue,
                },
                None => continue,
            };
            let version = match Version::parse(ecosystem, &raw) {
                Ok(version) => Some(version),
                Err(error) => {
                    unparsed.push(UnparsedVersion {
                        build: id,
                        purl_key: key.clone(),
                        version: raw.clone(),
                        reason: error.to_string(),
                    });
                    None
                }
            };
            let package = self.packages.entry(key.clone()).or_insert_with(|| Package {
                name: name.clone(),
                ecosystem,
                cpe,
                instances: Vec::new(),
            });
            package.instances.push(Instance { build: id, raw, version, release });
            if let Some(name) = name {
                self.names.entry(name).or_default().insert(key.clone());
            }
            keys.push(key);
        }
        keys.sort_unstable();
        keys.dedup();
        if let Some(entry) = self.entry_mut(id) {
            entry.unparsed = unparsed;
            entry.keys = keys.clone();
        }

        let mut touched: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for key in old_keys.into_iter().chain(keys) {
            for vuln in self.vulns_of_key(&key) {
                touched.entry(vuln).or_default().insert(key.clone());
            }
        }
        for (vuln, keys) in touched {
            self.reevaluate(vuln, keys.into_iter());
        }
        id
    }

    /// Vulnerabilities whose advisories name the package `key`, by purl key or by name.
    fn vulns_of_key(&self, key: &str) -> BTreeSet<usize> {
        let mut out: BTreeSet<usize> = self.key_vulns.get(key).cloned().unwrap_or_default();
        if let Some(name) = self.packages.get(key).and_then(|package| package.name.as_ref())
            && let Some(vulns) = self.name_vulns.get(name)
        {
            out.extend(vulns);
        }
        out.into_iter().map(|vuln| self.resolve(vuln)).collect()
    }

    /// Follows merges to the surviving vulnerability.
    fn resolve(&self, mut vuln: usize) -> usize {
        while let Some(v) = self.vulns.get(vuln) {
            if !v.merged {
                break;
            }
            match v.ids.first().and_then(|id| self.ids.get(id)) {
                Some(next) if *next != vuln => vuln = *next,
                _ => break,
            }
        }
        vuln
    }

    /// Puts a device on a build (moving it if it was on another one).
    pub fn add_device(&mut self, device_id: &str, build: BuildId, class: DeviceClass) -> Result<(), IndexError> {
        if self.entry(build).is_none() {
            return Err(IndexError::UnknownBuild(build));
        }
        self.remove_device(device_id);
        let class_id = match self.class_ids.get(&class) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.classes.len()).unwrap_or(u32::MAX);
                self.classes.push(class.clone());
                self.class_ids.insert(class.clone(), id);
                id
            }
        };
        self.devices.insert(device_id.to_owned(), (build, class_id));
        if let Some(entry) = self.builds.get_mut(build.0 as usize) {
            entry.devices.insert(device_id.to_owned());
            let counts = &mut entry.counts;
            counts.total += 1;
            counts.weight += criticality_weight(&class.criticality);
            *counts.by_criticality.entry(class.criticality).or_default() += 1;
            *counts.by_region.entry(class.region).or_default() += 1;
            *counts.by_group.entry(class.group).or_default() += 1;
        }
        Ok(())
    }

    /// Takes a device out of the fleet; false if it was not there.
    pub fn remove_device(&mut self, device_id: &str) -> bool {
        let Some((build, class_id)) = self.devices.remove(device_id) else {
            return false;
        };
        let Some(class) = self.classes.get(class_id as usize) else {
            return true;
        };
        if let Some(entry) = self.builds.get_mut(build.0 as usize) {
            entry.devices.remove(device_id);
            let counts = &mut entry.counts;
            counts.total = counts.total.saturating_sub(1);
            counts.weight = counts.weight.saturating_sub(criticality_weight(&class.criticality));
            decrement(&mut counts.by_criticality, &class.criticality);
            decrement(&mut counts.by_region, &class.region);
            decrement(&mut counts.by_group, &class.group);
        }
        true
    }

    /// The number of devices in the fleet.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Imports (or re-imports) one advisory, re-evaluating only the packages it names, and
    /// reports which builds became or stopped being affected by its vulnerability.
    pub fn add_advisory(&mut self, doc: &AdvisoryDoc) -> AdvisoryChange {
        let ids = alias_set(doc);
        let doc_id = document_key(doc);
        let mut bad_bounds = Vec::new();
        let parsed = self.parse_doc(doc, &mut bad_bounds);

        // The vulnerabilities the ids already belong to; merge them into the oldest.
        let mut found: BTreeSet<usize> = ids.iter().filter_map(|id| self.ids.get(id)).copied().collect();
        let survivor = match found.pop_first() {
            Some(vuln) => vuln,
            None => {
                self.vulns.push(Vuln::default());
                self.vulns.len().saturating_sub(1)
            }
        };
        let mut before: BTreeSet<BuildId> =
            self.vulns.get(survivor).map(|v| v.builds.keys().copied().collect()).unwrap_or_default();
        let mut keys: BTreeSet<String> = BTreeSet::new();
        let merged_away = !found.is_empty();
        for other in found {
            let Some(taken) = self.vulns.get_mut(other).map(std::mem::take) else {
                continue;
            };
            for build in taken.builds.keys() {
                before.insert(*build);
                if let Some(entry) = self.builds.get_mut(build.0 as usize) {
                    entry.vulns.remove(&other);
                }
            }
            for id in &taken.ids {
                self.ids.insert(id.clone(), survivor);
            }
            if let Some(stub) = self.vulns.get_mut(other) {
                stub.merged = true;
                stub.ids = taken.ids.iter().take(1).cloned().collect();
            }
            if let Some(vuln) = self.vulns.get_mut(survivor) {
                vuln.ids.extend(taken.ids);
                vuln.docs.extend(taken.docs);
            }
        }
        for id in &ids {
            self.ids.insert(id.clone(), survivor);
        }

        for target in parsed.targets() {
            match target {
                Target::Key(key) => {
                    self.key_vulns.entry(key).or_default().insert(survivor);
                }
                Target::Name(name) => {
                    self.name_vulns.entry(name).or_default().insert(survivor);
                }
            }
        }
        let Some(vuln) = self.vulns.get_mut(survivor) else {
            return AdvisoryChange::default();
        };
        if merged_away {
            vuln.evals.clear();
            for doc in vuln.docs.values() {
                collect_keys(doc, &self.names, &mut keys);
            }
        }
        if let Some(old) = vuln.docs.get(&doc_id) {
            collect_keys(old, &self.names, &mut keys);
        }
        collect_keys(&parsed, &self.names, &mut keys);
        vuln.docs.insert(doc_id, parsed);
        vuln.ids.extend(ids);
        vuln.canonical = canonical(&vuln.ids);
        vuln.cvss_max = vuln.docs.values().filter_map(|doc| doc.cvss_max).reduce(f64::max);
        let vulnerability = vuln.canonical.clone();

        let mut unparsed = Vec::new();
        for key in &keys {
            if let Some(package) = self.packages.get(key) {
                for instance in package.instances.iter().filter(|instance| instance.version.is_none()) {
                    if let Some(found) = self.entry(instance.build).and_then(|entry| {
                        entry.unparsed.iter().find(|u| &u.purl_key == key && u.version == instance.raw)
                    }) {
                        unparsed.push(found.clone());
                    }
                }
            }
        }
        self.reevaluate(survivor, keys.into_iter());
        let after: BTreeSet<BuildId> =
            self.vulns.get(survivor).map(|v| v.builds.keys().copied().collect()).unwrap_or_default();
        AdvisoryChange {
            vulnerability,
            became_affected: after.difference(&before).copied().collect(),
            no_longer_affected: before.difference(&after).copied().collect(),
            unparsed,
            bad_bounds,
        }
    }

    fn parse_doc(&self, doc: &AdvisoryDoc, bad_bounds: &mut Vec<String>) -> Doc {
        let cvss_max = doc.cvss.iter().filter_map(|vector| cvss::score(vector).ok()).map(|c| c.base).reduce(f64::max);
        let mut rules = Vec::new();
        for affected in &doc.affected {
            let purl = affected.purl.as_deref().and_then(|purl| Purl::parse(purl).ok());
            let (target, ecosystem) = match &purl {
                Some(purl) => (Target::Key(purl.key()), purl.ecosystem()),
                None if !affected.name.is_empty() => {
                    let ecosystem = Ecosystem::from_osv(&affected.ecosystem);
                    (Target::Name((ecosystem, normalise_name(ecosystem, &affected.name))), ecosystem)
                }
                None => continue,
            };
            let mut parse = |raw: &str| match Version::parse(ecosystem, raw) {
                Ok(version) => Some(version),
                Err(error) => {
                    bad_bounds.push(format!("{}: {error}", doc.id));
                    None
                }
            };
            let mut ranges = Vec::new();
            for range in affected.ranges.iter().filter(|range| range.kind != RangeKind::Git) {
                let mut events = Vec::new();
                let mut limits = Vec::new();
                for event in &range.events {
                    match event {
                        Event::Introduced(raw) if raw == "0" => events.push(Bound::Introduced(None)),
                        Event::Introduced(raw) => events.extend(parse(raw).map(|v| Bound::Introduced(Some(v)))),
                        Event::Fixed(raw) => events.extend(parse(raw).map(Bound::Fixed)),
                        Event::LastAffected(raw) => events.extend(parse(raw).map(Bound::LastAffected)),
                        Event::Limit(raw) if raw == "*" => {}
                        Event::Limit(raw) => limits.extend(parse(raw)),
                    }
                }
                events.sort_by(|a, b| bound_version(a).cmp(&bound_version(b)));
                ranges.push(ParsedRange { events, limits });
            }
            let versions = affected.versions.iter().filter_map(|raw| parse(raw)).collect();
            let release = match ecosystem {
                Ecosystem::Debian | Ecosystem::Alpine => osv_release(&affected.ecosystem),
                _ => None,
            };
            rules.push(Rule { target, ranges, versions, any_version: false, cpe: false, release });
        }

        let mut statements = Vec::new();
        for statement in &doc.statements {
            let purl = Purl::parse(&statement.product).ok();
            let mut key = purl.as_ref().map(Purl::key);
            let mut version = purl.and_then(|purl| purl.version);
            if self.cpe_matching
                && let Some((cpe_key, cpe_version)) = split_cpe(&statement.product)
            {
                key = Some(cpe_key.clone());
                version = cpe_version.clone();
                if statement.status == VexStatus::Affected {
                    let versions = cpe_version.iter().filter_map(|raw| Version::parse(Ecosystem::Generic, raw).ok());
                    rules.push(Rule {
                        target: Target::Key(cpe_key),
                        ranges: Vec::new(),
                        versions: versions.collect(),
                        any_version: cpe_version.is_none(),
                        cpe: true,
                        release: None,
                    });
                }
            }
            statements.push(Statement {
                product: statement.product.clone(),
                key,
                version,
                status: statement.status.clone(),
            });
        }
        Doc { rules, statements, cvss_max, withdrawn: doc.withdrawn }
    }

    /// Re-evaluates `vuln` against the packages `keys`, then its affected builds.
    fn reevaluate(&mut self, vuln: usize, keys: impl Iterator<Item = String>) {
        for key in keys {
            let eval = self.evaluate(vuln, &key);
            if let Some(v) = self.vulns.get_mut(vuln) {
                if eval.hits.is_empty() && eval.suppressed.is_empty() {
                    v.evals.remove(&key);
                } else {
                    v.evals.insert(key, eval);
                }
            }
        }
        let Some(v) = self.vulns.get_mut(vuln) else {
            return;
        };
        let mut builds: BTreeMap<BuildId, Option<String>> = BTreeMap::new();
        for eval in v.evals.values() {
            for hit in &eval.hits {
                let fixed = builds.entry(hit.build).or_default();
                if fixed.is_none() {
                    fixed.clone_from(&hit.fixed_in);
                }
            }
        }
        let old = std::mem::replace(&mut v.builds, builds);
        for build in old.keys().filter(|build| !v.builds.contains_key(build)) {
            if let Some(entry) = self.builds.get_mut(build.0 as usize) {
                entry.vulns.remove(&vuln);
            }
        }
        for build in v.builds.keys() {
            if let Some(entry) = self.builds.get_mut(build.0 as usize) {
                entry.vulns.insert(vuln);
            }
        }
    }

    fn evaluate(&self, vuln: usize, key: &str) -> KeyEval {
        let mut eval = KeyEval::default();
        let (Some(v), Some(package)) = (self.vulns.get(vuln), self.packages.get(key)) else {
            return eval;
        };
        let targets = |target: &Target| match target {
            Target::Key(k) => k == key,
            Target::Name(name) => package.name.as_ref() == Some(name),
        };
        let docs: Vec<&Doc> = v.docs.values().filter(|doc| !doc.withdrawn).collect();
        let rules: Vec<&Rule> = docs.iter().flat_map(|doc| &doc.rules).filter(|rule| targets(&rule.target)).collect();
        if rules.is_empty() {
            return eval;
        }
        let statements: Vec<&Statement> =
            docs.iter().flat_map(|doc| &doc.statements).filter(|s| s.key.as_deref() == Some(key)).collect();
        for instance in &package.instances {
            let Some(version) = &instance.version else {
                continue;
            };
            let Some((rule, fixed_in)) = rules
                .iter()
                .filter(|rule| same_release(rule.release.as_deref(), instance.release.as_deref()))
                .find_map(|rule| rule.matches(version).map(|fixed| (rule, fixed)))
            else {
                continue;
            };
            let not_affected = statements.iter().find_map(|statement| match &statement.status {
                VexStatus::NotAffected { justification }
                    if statement.version.as_ref().is_none_or(|raw| {
                        raw == &instance.raw
                            || Version::parse(package.ecosystem, raw).is_ok_and(|other| &other == version)
                    }) =>
                {
                    Some(justification.clone())
                }
                _ => None,
            });
            match not_affected {
                Some(justification) => eval.suppressed.push((instance.build, justification)),
                None => eval.hits.push(Hit {
                    build: instance.build,
                    version: instance.raw.clone(),
                    fixed_in,
                    confidence: if rule.cpe || package.cpe {
                        Confidence::Cpe
                    } else if package.ecosystem == Ecosystem::Generic {
                        Confidence::Generic
                    } else {
                        Confidence::Ecosystem
                    },
                }),
            }
        }
        eval
    }

    fn lookup(&self, id_or_alias: &str) -> Option<(usize, &Vuln)> {
        let vuln = self.resolve(*self.ids.get(&normalise(id_or_alias))?);
        self.vulns.get(vuln).filter(|v| !v.merged).map(|v| (vuln, v))
    }

    /// The reach of a vulnerability, by any of its ids: affected builds and device counts.
    pub fn affected(&self, id_or_alias: &str) -> Option<Exposure> {
        let (_, vuln) = self.lookup(id_or_alias)?;
        let mut exposure = Exposure {
            vulnerability: vuln.canonical.clone(),
            aliases: vuln.ids.iter().cloned().collect(),
            cvss_max: vuln.cvss_max,
            builds: Vec::with_capacity(vuln.builds.len()),
            devices: 0,
            by_criticality: BTreeMap::new(),
            by_region: BTreeMap::new(),
            by_group: BTreeMap::new(),
            suppressed: Vec::new(),
            statements: Vec::new(),
            confidence: None,
        };
        for (build, fixed_in) in &vuln.builds {
            let Some(entry) = self.entry(*build) else {
                continue;
            };
            exposure.builds.push((entry.build.clone(), fixed_in.clone()));
            let counts = &entry.counts;
            exposure.devices += counts.total;
            add_counts(&mut exposure.by_criticality, &counts.by_criticality);
            add_counts(&mut exposure.by_region, &counts.by_region);
            add_counts(&mut exposure.by_group, &counts.by_group);
        }
        let mut suppressed = BTreeSet::new();
        for (key, eval) in &vuln.evals {
            for (_, justification) in &eval.suppressed {
                suppressed.insert((key.clone(), justification.clone()));
            }
            for hit in &eval.hits {
                exposure.confidence = exposure.confidence.max(Some(hit.confidence));
            }
        }
        exposure.suppressed = suppressed.into_iter().collect();
        for doc in vuln.docs.values() {
            for statement in &doc.statements {
                exposure.statements.push((statement.product.clone(), statement.status.clone()));
            }
        }
        Some(exposure)
    }

    /// A page of the ids of devices affected by a vulnerability, in build then id order.
    pub fn affected_devices(&self, id_or_alias: &str, offset: usize, limit: usize) -> Vec<String> {
        let Some((_, vuln)) = self.lookup(id_or_alias) else {
            return Vec::new();
        };
        let mut skip = offset;
        let mut out = Vec::new();
        for build in vuln.builds.keys() {
            if out.len() >= limit {
                break;
            }
            let Some(entry) = self.entry(*build) else {
                continue;
            };
            if skip >= entry.devices.len() {
                skip -= entry.devices.len();
                continue;
            }
            let wanted = limit - out.len();
            out.extend(entry.devices.iter().skip(skip).take(wanted).cloned());
            skip = 0;
        }
        out
    }

    /// The vulnerabilities touching a device's build, with the vulnerable components.
    pub fn device_findings(&self, device_id: &str) -> Vec<Finding> {
        match self.devices.get(device_id) {
            Some((build, _)) => self.build_findings(*build),
            None => Vec::new(),
        }
    }

    /// The build a device is on and its class.
    pub fn device(&self, device_id: &str) -> Option<(BuildId, &DeviceClass)> {
        let (build, class) = self.devices.get(device_id)?;
        Some((*build, self.classes.get(*class as usize)?))
    }

    /// Every device id in the index.
    pub fn device_ids(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    /// The devices on a build, in id order, with their class.
    pub fn devices_on(&self, build: BuildId) -> impl Iterator<Item = (&str, &DeviceClass)> {
        self.entry(build).into_iter().flat_map(move |entry| {
            entry.devices.iter().filter_map(move |id| {
                let (_, class) = self.devices.get(id)?;
                Some((id.as_str(), self.classes.get(*class as usize)?))
            })
        })
    }

    /// How many devices are on a build.
    pub fn build_device_count(&self, build: BuildId) -> usize {
        self.entry(build).map_or(0, |entry| entry.counts.total)
    }

    /// How many devices of a criticality are on a build.
    pub fn build_criticality_count(&self, build: BuildId, criticality: &str) -> usize {
        self.entry(build).and_then(|entry| entry.counts.by_criticality.get(criticality)).copied().unwrap_or(0)
    }

    /// Every build with its handle.
    pub fn builds(&self) -> impl Iterator<Item = (BuildId, &Build)> {
        self.builds.iter().enumerate().map(|(i, entry)| (BuildId(u32::try_from(i).unwrap_or(u32::MAX)), &entry.build))
    }

    /// Whether a vulnerability (by any id) affects a build.
    pub fn affects(&self, id_or_alias: &str, build: BuildId) -> bool {
        self.lookup(id_or_alias).is_some_and(|(_, vuln)| vuln.builds.contains_key(&build))
    }

    /// The vulnerabilities touching a build, with the vulnerable components, highest CVSS first.
    pub fn build_findings(&self, build: BuildId) -> Vec<Finding> {
        let build = &build;
        let Some(entry) = self.entry(*build) else {
            return Vec::new();
        };
        let mut findings = Vec::new();
        for vuln in entry.vulns.iter().filter_map(|vuln| self.vulns.get(*vuln)) {
            let mut components: Vec<FindingComponent> = vuln
                .evals
                .iter()
                .flat_map(|(key, eval)| eval.hits.iter().map(move |hit| (key, hit)))
                .filter(|(_, hit)| hit.build == *build)
                .map(|(key, hit)| FindingComponent {
                    purl_key: key.clone(),
                    version: hit.version.clone(),
                    fixed_in: hit.fixed_in.clone(),
                    confidence: hit.confidence,
                })
                .collect();
            components.sort_by(|a, b| (&a.purl_key, &a.version).cmp(&(&b.purl_key, &b.version)));
            findings.push(Finding {
                vulnerability: vuln.canonical.clone(),
                aliases: vuln.ids.iter().cloned().collect(),
                cvss_max: vuln.cvss_max,
                components,
            });
        }
        findings.sort_by(|a, b| b.cvss_max.unwrap_or(0.0).total_cmp(&a.cvss_max.unwrap_or(0.0)));
        findings
    }

    /// The `top` vulnerabilities by CVSS (0 when unscored) × Σ criticality weight of the
    /// affected devices, highest first.
    pub fn fleet_exposure(&self, top: usize) -> Vec<(String, f64)> {
        let mut ranked: Vec<(String, f64)> = self
            .vulns
            .iter()
            .filter(|vuln| !vuln.merged && !vuln.builds.is_empty())
            .map(|vuln| {
                let weight: u64 =
                    vuln.builds.keys().filter_map(|build| self.entry(*build)).map(|entry| entry.counts.weight).sum();
                (vuln.canonical.clone(), vuln.cvss_max.unwrap_or(0.0) * weight as f64)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(top);
        ranked
    }
}

impl Rule {
    /// `Some(fixed_in)` when `version` is affected.
    fn matches(&self, version: &Version) -> Option<Option<String>> {
        if self.any_version || self.versions.iter().any(|listed| listed == version) {
            return Some(None);
        }
        self.ranges.iter().find_map(|range| range.matches(version))
    }
}

impl ParsedRange {
    fn matches(&self, version: &Version) -> Option<Option<String>> {
        if !self.limits.is_empty() && !self.limits.iter().any(|limit| version < limit) {
            return None;
        }
        let mut affected = false;
        for event in &self.events {
            match event {
                Bound::Introduced(None) => affected = true,
                Bound::Introduced(Some(introduced)) => affected |= version >= introduced,
                Bound::Fixed(fixed) if version >= fixed => affected = false,
                Bound::LastAffected(last) if version > last => affected = false,
                Bound::Fixed(_) | Bound::LastAffected(_) => {}
            }
        }
        affected.then(|| {
            self.events.iter().find_map(|event| match event {
                Bound::Fixed(fixed) if fixed > version => Some(fixed.as_str().to_owned()),
                _ => None,
            })
        })
    }
}

/// The version of an event for sorting; `introduced: 0` sorts first.
fn bound_version(bound: &Bound) -> Option<&Version> {
    match bound {
        Bound::Introduced(version) => version.as_ref(),
        Bound::Fixed(version) | Bound::LastAffected(version) => Some(version),
    }
}

fn collect_keys(doc: &Doc, names: &HashMap<NameKey, BTreeSet<String>>, keys: &mut BTreeSet<String>) {
    for target in doc.targets() {
        match target {
            Target::Key(key) => {
                keys.insert(key);
            }
            Target::Name(name) => keys.extend(names.get(&name).into_iter().flatten().cloned()),
        }
    }
}

/// The package name an OSV advisory would use for a purl: `group:artifact` for Maven, the full
/// module path for Go, `@scope/name` for npm, the bare name otherwise.
fn name_key(ecosystem: Ecosystem, purl: &Purl) -> NameKey {
    let name = match (&purl.namespace, purl.ty.as_str()) {
        (Some(ns), "maven") => format!("{ns}:{}", purl.name),
        (Some(ns), "golang" | "npm" | "composer") => format!("{ns}/{}", purl.name),
        _ => purl.name.clone(),
    };
    (ecosystem, normalise_name(ecosystem, &name))
}

fn normalise_name(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::PyPI => name.to_lowercase().replace(['_', '.'], "-"),
        _ => name.to_owned(),
    }
}

/// `cpe:2.3:a:vendor:product:version:…` → (`cpe:vendor:product`, version unless `*` or `-`).
fn split_cpe(cpe: &str) -> Option<(String, Option<String>)> {
    let rest = cpe.strip_prefix("cpe:2.3:")?;
    let mut parts = rest.split(':');
    let _part = parts.next()?;
    let vendor = parts.next()?.to_ascii_lowercase();
    let product = parts.next()?.to_ascii_lowercase();
    let version = parts.next().filter(|version| !matches!(*version, "*" | "-" | "")).map(str::to_owned);
    Some((format!("cpe:{vendor}:{product}"), version))
}

/// An id normalised the way [`alias_set`] normalises them.
/// A distribution release as numbers: `debian-12`, `bookworm`, `12.4` → [12] / [12, 4];
/// `alpine-3.18.4`, `v3.18` → [3, 18, 4] / [3, 18]; `ubuntu-22.04` → [22, 4].
fn release(text: &str) -> Option<Vec<u32>> {
    let text = text.trim().to_ascii_lowercase();
    let text = match text.rsplit_once('-') {
        Some((prefix, rest)) if prefix.chars().all(|c| c.is_ascii_alphabetic()) => rest.to_owned(),
        _ => text,
    };
    let text = match text.as_str() {
        "stretch" => "9",
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        other => other,
    };
    let text = text.strip_prefix('v').unwrap_or(text);
    let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// The release of an OSV ecosystem with a suffix: `Debian:12` → [12], `Alpine:v3.18` → [3, 18],
/// `Ubuntu:Pro:22.04:LTS` → [22, 4]; none without one.
fn osv_release(ecosystem: &str) -> Option<Vec<u32>> {
    ecosystem.split(':').skip(1).find(|part| part.chars().any(|c| c.is_ascii_digit())).and_then(release)
}

/// Whether an advisory scoped to one release applies to a package of another: only when
/// both are known and differ in their first one or two numbers is the answer no.
fn same_release(rule: Option<&[u32]>, instance: Option<&[u32]>) -> bool {
    match (rule, instance) {
        (Some(a), Some(b)) => {
            let n = a.len().min(b.len()).min(2);
            a.get(..n) == b.get(..n)
        }
        _ => true,
    }
}

fn normalise(id: &str) -> String {
    let doc = AdvisoryDoc {
        format: AdvisoryFormat::Osv,
        id: id.to_owned(),
        aliases: Vec::new(),
        summary: None,
        cvss: Vec::new(),
        affected: Vec::new(),
        statements: Vec::new(),
        withdrawn: false,
        published: None,
        modified: None,
        document: None,
    };
    alias_set(&doc).pop().unwrap_or_default()
}

/// The lowest CVE id, else the lowest id.
fn canonical(ids: &BTreeSet<String>) -> String {
    ids.iter().find(|id| id.starts_with("CVE-")).or(ids.first()).cloned().unwrap_or_default()
}

fn decrement(map: &mut BTreeMap<String, usize>, key: &str) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

fn add_counts(into: &mut BTreeMap<String, usize>, from: &BTreeMap<String, usize>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}
