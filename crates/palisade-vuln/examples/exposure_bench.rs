//! Exposure index benchmark: a synthetic fleet of 1,000,000 devices over 1,000 firmware builds of
//! 200 components each (drawn from ~5,000 packages across npm, Maven, PyPI, Go, Debian and Cargo),
//! 1,000 OSV advisories imported as a batch (JSON generated, then parsed), 10,000 affected-devices
//! queries by id or alias, and the ingest of a 10,000-component CycloneDX SBOM.
//!
//! `cargo run --release -p palisade-vuln --example exposure_bench`
//!
//! Deterministic: a small xorshift generator with a fixed seed, no `rand`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use palisade_vuln::advisory::parse_advisory;
use palisade_vuln::index::{Build, BuildId, DeviceClass, Index};
use palisade_vuln::sbom::{Component, Sbom, parse_sbom};
use serde_json::{Value, json};

const DEVICES: usize = 1_000_000;
const BUILDS: usize = 1_000;
const COMPONENTS_PER_BUILD: usize = 200;
const POOL: usize = 5_000;
const ADVISORIES: usize = 1_000;
const QUERIES: usize = 10_000;
const BIG_SBOM: usize = 10_000;

struct XorShift(u64);

impl XorShift {
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
struct Package {
    key: String,
    osv_ecosystem: &'static str,
    osv_name: String,
    versions: Vec<String>,
}

fn make_pool(rng: &mut XorShift) -> Vec<Package> {
    let mut pool = Vec::with_capacity(POOL);
    for n in 0..POOL {
        let major = rng.below(5);
        let mut versions = Vec::new();
        let (key, osv_ecosystem, osv_name) = match n % 6 {
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
                (
                    format!("pkg:maven/org.example.g{}/artifact{n}", n % 97),
                    "Maven",
                    format!("org.example.g{}:artifact{n}", n % 97),
                )
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
                (
                    format!("pkg:golang/github.com/org{}/mod{n}", n % 50),
                    "Go",
                    format!("github.com/org{}/mod{n}", n % 50),
                )
            }
            4 => {
                let epoch = if rng.below(4) == 0 { "1:" } else { "" };
                for minor in 0..8 {
                    versions.push(format!(
                        "{epoch}{major}.{minor}.{}-{}+deb12u{}",
                        rng.below(9),
                        rng.below(3) + 1,
                        minor
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
        pool.push(Package { key, osv_ecosystem, osv_name, versions });
    }
    pool
}

fn pick<'a>(rng: &mut XorShift, items: &'a [String]) -> &'a str {
    items.get(rng.below(items.len())).map_or("", String::as_str)
}

fn component(package: &Package, version: &str) -> Component {
    Component {
        id: None,
        purl: Some(format!("{}@{version}", package.key)),
        cpes: Vec::new(),
        group: None,
        name: package.osv_name.clone(),
        version: Some(version.to_owned()),
        ecosystem: None,
    }
}

fn advisory_json(rng: &mut XorShift, pool: &[Package], n: usize) -> (Vec<u8>, Vec<String>) {
    const VECTORS: [&str; 4] = [
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N",
        "CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:L/A:N",
        "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
    ];
    let ghsa = format!("GHSA-{:04x}-{:04x}-bench", n, rng.below(0xffff));
    let cve = format!("CVE-2025-{:05}", 10_000 + n);
    let mut aliases = vec![cve.clone()];
    let mut ids = vec![ghsa.clone(), cve];
    let mut affected = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let Some(package) = pool.get(rng.skewed(pool.len())) else { continue };
        if package.osv_ecosystem == "Go" && aliases.len() == 1 {
            let go = format!("GO-2025-{n:04}");
            aliases.push(go.clone());
            ids.push(go);
        }
        let low = rng.below(package.versions.len());
        let introduced = if rng.below(3) == 0 { "0" } else { package.versions.get(low).map_or("0", String::as_str) };
        let kind = if package.osv_ecosystem == "Go" { "SEMVER" } else { "ECOSYSTEM" };
        let mut events = vec![json!({"introduced": introduced})];
        if let Some(fixed) = package.versions.get(low + 1 + rng.below(4)) {
            events.push(json!({"fixed": fixed}));
        }
        affected.push(json!({
            "package": {"ecosystem": package.osv_ecosystem, "name": package.osv_name},
            "ranges": [{"type": kind, "events": events}],
        }));
    }
    let doc: Value = json!({
        "schema_version": "1.6.0",
        "id": ghsa,
        "aliases": aliases,
        "modified": "2025-01-01T00:00:00Z",
        "summary": format!("synthetic advisory {n}"),
        "severity": [{"type": "CVSS_V3", "score": VECTORS.get(n % VECTORS.len()).copied().unwrap_or_default()}],
        "affected": affected,
    });
    (doc.to_string().into_bytes(), ids)
}

fn big_sbom_json(pool: &[Package]) -> Vec<u8> {
    let mut components = Vec::with_capacity(BIG_SBOM);
    for (n, package) in pool.iter().cycle().take(BIG_SBOM).enumerate() {
        let version = package.versions.get(n / pool.len() * 3 % package.versions.len()).map_or("1.0.0", String::as_str);
        let purl = format!("{}@{version}", package.key);
        components.push(
            json!({"type": "library", "bom-ref": purl, "name": package.osv_name, "version": version, "purl": purl}),
        );
    }
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"component": {"type": "firmware", "bom-ref": "fw", "name": "gateway", "version": "9.9.9"}},
        "components": components,
    });
    doc.to_string().into_bytes()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let pool = make_pool(&mut rng);

    // Fleet setup (not a goal, printed for reference).
    let started = Instant::now();
    let mut index = Index::new();
    let mut build_ids = Vec::with_capacity(BUILDS);
    for b in 0..BUILDS {
        let mut chosen = std::collections::BTreeSet::new();
        while chosen.len() < COMPONENTS_PER_BUILD {
            chosen.insert(rng.skewed(pool.len()));
        }
        let components = chosen
            .into_iter()
            .filter_map(|p| pool.get(p))
            .map(|package| component(package, pick(&mut rng, &package.versions)))
            .collect();
        let sbom = Sbom { format: "CycloneDX 1.5".into(), subject: None, components, dependencies: Vec::new() };
        let build = Build { model: format!("model-{}", b % 40), version: format!("{}.{}.{}", b / 100, b % 100, b % 7) };
        build_ids.push(index.add_sbom(build, &sbom));
    }
    let sboms = started.elapsed();
    let started = Instant::now();
    let criticalities = ["critical", "high", "medium", "low"];
    for d in 0..DEVICES {
        let build = build_ids.get(rng.below(BUILDS)).copied().unwrap_or(BuildId(0));
        let class = DeviceClass {
            criticality: criticalities.get(rng.below(4)).copied().unwrap_or("low").to_owned(),
            region: format!("region-{}", rng.below(8)),
            group: format!("group-{}", rng.below(50)),
        };
        index.add_device(&format!("dev-{d:07}"), build, class)?;
    }
    let devices = started.elapsed();

    // Advisories: JSON generated up front; parsing and indexing timed.
    let mut documents = Vec::with_capacity(ADVISORIES);
    let mut ids = Vec::new();
    for n in 0..ADVISORIES {
        let (bytes, doc_ids) = advisory_json(&mut rng, &pool, n);
        documents.push(bytes);
        ids.extend(doc_ids);
    }
    let started = Instant::now();
    let mut affected_pairs = 0usize;
    for bytes in &documents {
        for doc in parse_advisory(bytes)? {
            affected_pairs += index.add_advisory(&doc).became_affected.len();
        }
    }
    let import = started.elapsed();

    // Affected-devices queries by id or alias (exposure with counts, plus the first page of ids).
    let mut latencies = Vec::with_capacity(QUERIES);
    let mut reached = 0usize;
    let mut paged = 0usize;
    for _ in 0..QUERIES {
        let id = pick(&mut rng, &ids);
        let id = if rng.below(4) == 0 { id.to_ascii_lowercase() } else { id.to_owned() };
        let started = Instant::now();
        let exposure = index.affected(&id);
        let page = index.affected_devices(&id, 0, 100);
        latencies.push(started.elapsed());
        reached += exposure.map_or(0, |exposure| exposure.devices);
        paged += page.len();
    }
    latencies.sort_unstable();

    // A 10,000-component CycloneDX SBOM: parse, index and evaluate against every advisory.
    let bytes = big_sbom_json(&pool);
    let started = Instant::now();
    let sbom = parse_sbom(&bytes)?;
    let parsed = started.elapsed();
    let build = Build { model: "gateway".into(), version: "9.9.9".into() };
    let id = index.add_sbom(build, &sbom);
    let ingest = started.elapsed();
    let findings_vulns = index.fleet_exposure(usize::MAX).len();

    let mut out = String::new();
    let _ = writeln!(out, "exposure_bench on {cores} cores (std::thread::available_parallelism)");
    let _ = writeln!(
        out,
        "fleet: {DEVICES} devices, {BUILDS} builds x {COMPONENTS_PER_BUILD} components from {POOL} packages; \
         {ADVISORIES} advisories, {affected_pairs} (vulnerability, build) pairs; {reached} devices reached over \
         the queries ({paged} ids paged); big SBOM build {id:?} with {} components; {findings_vulns} vulnerabilities with exposure",
        sbom.components.len()
    );
    let _ = writeln!(out, "| setup: index 1,000 SBOMs (200 components each) | {:.0} ms | - |", ms(sboms));
    let _ = writeln!(out, "| setup: add 1,000,000 devices | {:.0} ms | - |", ms(devices));
    let _ = writeln!(out, "| import 1,000 OSV advisories (parse + match) | {:.0} ms | <= 5 s |", ms(import));
    let _ = writeln!(
        out,
        "| affected-devices query x{QUERIES} (exposure + first page) | p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms | p99 <= 20 ms |",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        latencies.last().copied().map_or(0.0, ms)
    );
    let _ = writeln!(
        out,
        "| ingest 10,000-component CycloneDX SBOM (parse + index + re-evaluate) | {:.0} ms (parse {:.0} ms) | <= 1 s |",
        ms(ingest),
        ms(parsed)
    );
    print!("{out}");
    Ok(())
}
