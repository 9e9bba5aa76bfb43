//! The exposure index: matching per ecosystem, aliases, VEX, re-imports and device counts.

// Test helpers outside #[test] functions unwrap and panic on purpose: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use palisade_vuln::advisory::{AdvisoryDoc, AdvisoryFormat, VexStatement, VexStatus, parse_advisory};
use palisade_vuln::index::{Build, BuildId, Confidence, DeviceClass, Index};
use palisade_vuln::sbom::{Component, Sbom};
use serde_json::{Value, json};

fn build(model: &str, version: &str) -> Build {
    Build { model: model.to_owned(), version: version.to_owned() }
}

fn component(purl: &str) -> Component {
    let version = purl.rsplit_once('@').map(|(_, version)| version.to_owned());
    Component {
        id: None,
        purl: Some(purl.to_owned()),
        cpes: Vec::new(),
        group: None,
        name: purl.to_owned(),
        version,
        ecosystem: None,
    }
}

fn sbom(purls: &[&str]) -> Sbom {
    Sbom {
        format: "CycloneDX 1.5".into(),
        subject: None,
        components: purls.iter().map(|purl| component(purl)).collect(),
        dependencies: Vec::new(),
    }
}

/// One build per purl, named after the purl.
fn index_of(purls: &[&str]) -> (Index, Vec<BuildId>) {
    let mut index = Index::new();
    let ids = purls.iter().map(|purl| index.add_sbom(build("m", purl), &sbom(&[purl]))).collect();
    (index, ids)
}

fn osv(id: &str, ecosystem: &str, name: &str, kind: &str, events: Value) -> AdvisoryDoc {
    let doc = json!({
        "id": id,
        "affected": [{"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": kind, "events": events}]}],
    });
    parse_advisory(doc.to_string().as_bytes()).unwrap().remove(0)
}

fn affected_versions(index: &Index, id: &str) -> Vec<String> {
    let exposure = index.affected(id).unwrap();
    let mut out: Vec<String> =
        exposure.builds.into_iter().map(|(build, _)| build.version.rsplit_once('@').unwrap().1.to_owned()).collect();
    out.sort();
    out
}

fn class(criticality: &str, region: &str, group: &str) -> DeviceClass {
    DeviceClass { criticality: criticality.into(), region: region.into(), group: group.into() }
}

#[test]
fn log4shell_found_by_cve_and_ghsa() {
    let (mut index, ids) = index_of(&[
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.15.0",
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.0-beta8",
        "pkg:maven/org.apache.logging.log4j/log4j-api@2.14.1",
    ]);
    let doc = json!({
        "id": "GHSA-jfh8-c2jp-5v3q",
        "aliases": ["CVE-2021-44228"],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
        "affected": [{
            "package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}],
        }],
    });
    let doc = parse_advisory(doc.to_string().as_bytes()).unwrap().remove(0);
    let change = index.add_advisory(&doc);
    assert_eq!(change.vulnerability, "CVE-2021-44228");
    assert_eq!(change.became_affected, vec![ids[0]]);

    for id in ["CVE-2021-44228", "cve-2021-44228", "GHSA-jfh8-c2jp-5v3q", "ghsa-JFH8-c2jp-5v3q"] {
        let exposure = index.affected(id).unwrap();
        assert_eq!(exposure.vulnerability, "CVE-2021-44228");
        assert_eq!(exposure.aliases, ["CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"]);
        assert_eq!(exposure.cvss_max, Some(10.0));
        assert_eq!(
            exposure.builds,
            vec![(build("m", "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"), Some("2.15.0".to_owned()))]
        );
        assert_eq!(exposure.confidence, Some(Confidence::Ecosystem));
    }
    assert!(index.affected("CVE-2000-0001").is_none());
}

#[test]
fn advisory_by_purl_matches_by_purl_key() {
    let (mut index, _) = index_of(&["pkg:npm/%40scope/lib@1.0.0", "pkg:npm/lib@1.0.0"]);
    let doc = json!({
        "id": "GHSA-aaaa-bbbb-cccc",
        "affected": [{
            "package": {"purl": "pkg:npm/%40scope/lib"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}],
        }],
    });
    index.add_advisory(&parse_advisory(doc.to_string().as_bytes()).unwrap()[0]);
    assert_eq!(affected_versions(&index, "GHSA-aaaa-bbbb-cccc"), ["1.0.0"]);
    assert_eq!(index.affected("GHSA-aaaa-bbbb-cccc").unwrap().builds[0].0.version, "pkg:npm/%40scope/lib@1.0.0");
}

#[test]
fn maven_fixed_bound_equal_with_trailing_zeros() {
    let (mut index, _) = index_of(&["pkg:maven/g/a@2.10.0", "pkg:maven/g/a@2.9.9", "pkg:maven/g/a@2.10.1"]);
    index.add_advisory(&osv("X-1", "Maven", "g:a", "ECOSYSTEM", json!([{"introduced": "0"}, {"fixed": "2.10.0.0"}])));
    assert_eq!(affected_versions(&index, "X-1"), ["2.9.9"]);
}

#[test]
fn go_with_and_without_v() {
    let (mut index, _) = index_of(&[
        "pkg:golang/golang.org/x/net@v0.7.0",
        "pkg:golang/golang.org/x/net@0.7.1",
        "pkg:golang/golang.org/x/net@v0.8.0",
        "pkg:golang/golang.org/x/net@0.8.0",
    ]);
    index.add_advisory(&osv(
        "GO-2023-1",
        "Go",
        "golang.org/x/net",
        "SEMVER",
        json!([{"introduced": "0"}, {"fixed": "0.8.0"}]),
    ));
    assert_eq!(affected_versions(&index, "GO-2023-1"), ["0.7.1", "v0.7.0"]);
}

#[test]
fn debian_epoch() {
    let (mut index, _) = index_of(&[
        "pkg:deb/debian/openssl@1:1.1.1n-0+deb11u4",
        "pkg:deb/debian/openssl@1.1.1z-0",
        "pkg:deb/debian/openssl@2:0.1-1",
        "pkg:deb/debian/openssl@1:1.1.1n-0+deb11u5",
    ]);
    let events = json!([{"introduced": "0"}, {"fixed": "1:1.1.1n-0+deb11u5"}]);
    index.add_advisory(&osv("DSA-1", "Debian:11", "openssl", "ECOSYSTEM", events));
    assert_eq!(affected_versions(&index, "DSA-1"), ["1.1.1z-0", "1:1.1.1n-0+deb11u4"]);
}

#[test]
fn pypi_pre_release() {
    let (mut index, _) = index_of(&[
        "pkg:pypi/django@2.0.0rc1",
        "pkg:pypi/django@2.0.0",
        "pkg:pypi/django@1.0a1",
        "pkg:pypi/django@1.0",
    ]);
    index.add_advisory(&osv(
        "PYSEC-1",
        "PyPI",
        "Django",
        "ECOSYSTEM",
        json!([{"introduced": "1.0"}, {"fixed": "2.0.0"}]),
    ));
    assert_eq!(affected_versions(&index, "PYSEC-1"), ["1.0", "2.0.0rc1"]);
}

#[test]
fn last_affected_is_inclusive_and_limit_caps() {
    let (mut index, _) = index_of(&[
        "pkg:npm/a@1.2.3",
        "pkg:npm/a@1.2.4",
        "pkg:npm/b@1.5.0",
        "pkg:npm/b@2.0.0",
        "pkg:npm/b@2.1.0",
        "pkg:npm/b@0.9.0",
    ]);
    index.add_advisory(&osv("X-LAST", "npm", "a", "SEMVER", json!([{"introduced": "0"}, {"last_affected": "1.2.3"}])));
    assert_eq!(affected_versions(&index, "X-LAST"), ["1.2.3"]);
    index.add_advisory(&osv("X-LIMIT", "npm", "b", "SEMVER", json!([{"introduced": "1.0.0"}, {"limit": "2.0.0"}])));
    assert_eq!(affected_versions(&index, "X-LIMIT"), ["1.5.0"]);
}

#[test]
fn several_introduced_fixed_pairs_and_versions_list() {
    let (mut index, _) = index_of(&[
        "pkg:cargo/c@1.0.5",
        "pkg:cargo/c@1.1.0",
        "pkg:cargo/c@2.0.1",
        "pkg:cargo/c@2.1.0",
        "pkg:cargo/c@3.3.3",
    ]);
    let events = json!([{"introduced": "2.0.0"}, {"fixed": "2.1.0"}, {"introduced": "1.0.0"}, {"fixed": "1.1.0"}]);
    let mut doc = osv("RUSTSEC-1", "crates.io", "c", "SEMVER", events);
    doc.affected[0].versions = vec!["3.3.3".into()];
    index.add_advisory(&doc);
    assert_eq!(affected_versions(&index, "RUSTSEC-1"), ["1.0.5", "2.0.1", "3.3.3"]);
    let exposure = index.affected("RUSTSEC-1").unwrap();
    let fixed: Vec<Option<String>> = exposure.builds.into_iter().map(|(_, fixed)| fixed).collect();
    assert_eq!(fixed, [Some("1.1.0".to_owned()), Some("2.1.0".to_owned()), None]);
}

#[test]
fn git_ranges_are_ignored_and_generic_is_lower_confidence() {
    let (mut index, _) = index_of(&["pkg:npm/g@1.0.0", "pkg:generic/fw@1.2"]);
    let events = json!([{"introduced": "0"}, {"fixed": "abcdef"}]);
    let mut doc = osv("X-GIT", "npm", "g", "GIT", events);
    doc.affected[0].ranges[0].repo = Some("https://example.com/g".into());
    index.add_advisory(&doc);
    assert!(index.affected("X-GIT").unwrap().builds.is_empty());

    let doc = json!({
        "id": "X-GEN",
        "affected": [{
            "package": {"purl": "pkg:generic/fw"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.10"}]}],
        }],
    });
    index.add_advisory(&parse_advisory(doc.to_string().as_bytes()).unwrap()[0]);
    let exposure = index.affected("X-GEN").unwrap();
    assert_eq!(exposure.builds.len(), 1);
    assert_eq!(exposure.confidence, Some(Confidence::Generic));
}

#[test]
fn unparseable_versions_are_reported_not_fatal() {
    let (mut index, ids) = index_of(&["pkg:npm/u@not.a.version", "pkg:npm/u@1.0.0"]);
    assert_eq!(index.unparsed(ids[0]).len(), 1);
    let change = index.add_advisory(&osv("X-U", "npm", "u", "SEMVER", json!([{"introduced": "0"}])));
    assert_eq!(change.became_affected, vec![ids[1]]);
    assert_eq!(change.unparsed.len(), 1);
    assert_eq!(change.unparsed[0].version, "not.a.version");
    assert_eq!(change.unparsed[0].purl_key, "pkg:npm/u");
}

fn vex(id: &str, product: &str, status: VexStatus) -> AdvisoryDoc {
    AdvisoryDoc {
        format: AdvisoryFormat::CycloneDxVex,
        id: id.to_owned(),
        aliases: Vec::new(),
        summary: None,
        cvss: Vec::new(),
        affected: Vec::new(),
        statements: vec![VexStatement { product: product.to_owned(), status }],
        withdrawn: false,
        published: None,
        modified: None,
        document: None,
    }
}

#[test]
fn vex_not_affected_suppresses_with_justification() {
    let (mut index, ids) = index_of(&["pkg:npm/v@1.0.0", "pkg:npm/v@1.1.0", "pkg:npm/w@1.0.0"]);
    let mut doc = osv("GHSA-vvvv-vvvv-vvvv", "npm", "v", "SEMVER", json!([{"introduced": "0"}, {"fixed": "2.0.0"}]));
    doc.aliases = vec!["CVE-2024-0001".into()];
    index.add_advisory(&doc);
    assert_eq!(affected_versions(&index, "CVE-2024-0001"), ["1.0.0", "1.1.0"]);

    let justification = Some("code_not_reachable".to_owned());
    let statement =
        vex("CVE-2024-0001", "pkg:npm/v@1.0.0", VexStatus::NotAffected { justification: justification.clone() });
    let change = index.add_advisory(&statement);
    assert_eq!(change.no_longer_affected, vec![ids[0]]);
    let exposure = index.affected("GHSA-vvvv-vvvv-vvvv").unwrap();
    assert_eq!(exposure.builds.len(), 1);
    assert_eq!(exposure.suppressed, vec![("pkg:npm/v".to_owned(), justification.clone())]);

    // Without a version the statement covers every version of the package.
    let statement = vex("CVE-2024-0001", "pkg:npm/v", VexStatus::NotAffected { justification: justification.clone() });
    let change = index.add_advisory(&statement);
    assert_eq!(change.no_longer_affected, vec![ids[1]]);
    assert!(index.affected("CVE-2024-0001").unwrap().builds.is_empty());

    // Other statuses are recorded.
    index.add_advisory(&vex("CVE-2024-0002", "pkg:npm/w@1.0.0", VexStatus::UnderInvestigation));
    let exposure = index.affected("CVE-2024-0002").unwrap();
    assert_eq!(exposure.statements, vec![("pkg:npm/w@1.0.0".to_owned(), VexStatus::UnderInvestigation)]);
}

#[test]
fn reimport_with_changed_range_updates_exactly_the_affected_builds() {
    let (mut index, ids) = index_of(&["pkg:npm/r@1.0.0", "pkg:npm/r@1.5.0", "pkg:npm/r@2.0.0", "pkg:npm/s@1.0.0"]);
    let change =
        index.add_advisory(&osv("X-R", "npm", "r", "SEMVER", json!([{"introduced": "0"}, {"fixed": "1.5.0"}])));
    assert_eq!(change.became_affected, vec![ids[0]]);
    let change =
        index.add_advisory(&osv("X-R", "npm", "r", "SEMVER", json!([{"introduced": "0"}, {"fixed": "2.1.0"}])));
    assert_eq!(change.became_affected, vec![ids[1], ids[2]]);
    assert!(change.no_longer_affected.is_empty());
    let change =
        index.add_advisory(&osv("X-R", "npm", "r", "SEMVER", json!([{"introduced": "1.2.0"}, {"fixed": "1.6.0"}])));
    assert!(change.became_affected.is_empty());
    assert_eq!(change.no_longer_affected, vec![ids[0], ids[2]]);
    // Moving the advisory to another package drops the old one.
    let change = index.add_advisory(&osv("X-R", "npm", "s", "SEMVER", json!([{"introduced": "0"}])));
    assert_eq!(change.became_affected, vec![ids[3]]);
    assert_eq!(change.no_longer_affected, vec![ids[1]]);
}

#[test]
fn withdrawn_matches_nothing() {
    let (mut index, ids) = index_of(&["pkg:npm/x@1.0.0"]);
    let mut doc = osv("X-W", "npm", "x", "SEMVER", json!([{"introduced": "0"}]));
    assert_eq!(index.add_advisory(&doc).became_affected, vec![ids[0]]);
    doc.withdrawn = true;
    assert_eq!(index.add_advisory(&doc).no_longer_affected, vec![ids[0]]);
    assert!(index.affected("X-W").unwrap().builds.is_empty());

    let mut fresh = osv("X-W2", "npm", "x", "SEMVER", json!([{"introduced": "0"}]));
    fresh.withdrawn = true;
    assert!(index.add_advisory(&fresh).became_affected.is_empty());
}

#[test]
fn aliases_merge_advisories_into_one_vulnerability() {
    let (mut index, ids) = index_of(&["pkg:golang/example.com/m@v1.0.0", "pkg:npm/y@1.0.0"]);
    let mut go = osv("GO-2024-0001", "Go", "example.com/m", "SEMVER", json!([{"introduced": "0"}]));
    go.aliases = vec!["CVE-2024-1111".into()];
    let mut ghsa = osv("GHSA-zzzz-zzzz-zzzz", "npm", "y", "SEMVER", json!([{"introduced": "0"}]));
    ghsa.aliases = vec!["GO-2024-0001".into()];
    index.add_advisory(&go);
    let change = index.add_advisory(&ghsa);
    assert_eq!(change.vulnerability, "CVE-2024-1111");
    for id in ["CVE-2024-1111", "GO-2024-0001", "GHSA-zzzz-zzzz-zzzz"] {
        let exposure = index.affected(id).unwrap();
        assert_eq!(exposure.aliases, ["CVE-2024-1111", "GHSA-zzzz-zzzz-zzzz", "GO-2024-0001"]);
        assert_eq!(exposure.builds.len(), 2, "{id}");
    }
    assert_eq!(index.fleet_exposure(10).len(), 1);
    let _ = ids;
}

#[test]
fn device_counts_follow_adds_moves_and_removes() {
    let (mut index, ids) = index_of(&["pkg:npm/d@1.0.0", "pkg:npm/d@3.0.0"]);
    let change =
        index.add_advisory(&osv("X-D", "npm", "d", "SEMVER", json!([{"introduced": "0"}, {"fixed": "2.0.0"}])));
    assert_eq!(change.became_affected, vec![ids[0]]);
    index.add_device("dev-1", ids[0], class("critical", "eu", "plant-a")).unwrap();
    index.add_device("dev-2", ids[0], class("low", "eu", "plant-b")).unwrap();
    index.add_device("dev-3", ids[0], class("low", "us", "plant-b")).unwrap();
    index.add_device("dev-4", ids[1], class("high", "us", "plant-b")).unwrap();
    assert!(index.add_device("dev-5", BuildId(99), class("low", "us", "x")).is_err());

    let exposure = index.affected("X-D").unwrap();
    assert_eq!(exposure.devices, 3);
    assert_eq!(exposure.by_criticality, [("critical".to_owned(), 1), ("low".to_owned(), 2)].into());
    assert_eq!(exposure.by_region, [("eu".to_owned(), 2), ("us".to_owned(), 1)].into());
    assert_eq!(exposure.by_group, [("plant-a".to_owned(), 1), ("plant-b".to_owned(), 2)].into());

    // Moving dev-3 to the fixed build, removing dev-1.
    index.add_device("dev-3", ids[1], class("low", "us", "plant-b")).unwrap();
    assert!(index.remove_device("dev-1"));
    assert!(!index.remove_device("dev-1"));
    let exposure = index.affected("X-D").unwrap();
    assert_eq!(exposure.devices, 1);
    assert_eq!(exposure.by_criticality, [("low".to_owned(), 1)].into());
    assert_eq!(exposure.by_region, [("eu".to_owned(), 1)].into());
    assert_eq!(exposure.by_group, [("plant-b".to_owned(), 1)].into());
    assert_eq!(index.affected_devices("X-D", 0, 10), ["dev-2"]);
    assert_eq!(index.device_count(), 3);
}

#[test]
fn paging_findings_and_ranking() {
    let (mut index, ids) = index_of(&["pkg:npm/p@1.0.0", "pkg:npm/p@1.1.0", "pkg:npm/q@1.0.0"]);
    for n in 0..5 {
        index.add_device(&format!("a{n}"), ids[0], class("medium", "eu", "g")).unwrap();
        index.add_device(&format!("b{n}"), ids[1], class("critical", "eu", "g")).unwrap();
    }
    index.add_device("c0", ids[2], class("low", "eu", "g")).unwrap();
    let mut low = osv("X-LOW", "npm", "p", "SEMVER", json!([{"introduced": "0"}]));
    low.cvss = vec!["CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N".into()];
    let mut high = osv("X-HIGH", "npm", "q", "SEMVER", json!([{"introduced": "0"}]));
    high.cvss = vec!["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H".into()];
    index.add_advisory(&low);
    index.add_advisory(&high);

    let all: Vec<String> = (0..5).map(|n| format!("a{n}")).chain((0..5).map(|n| format!("b{n}"))).collect();
    assert_eq!(index.affected_devices("X-LOW", 0, 100), all);
    assert_eq!(index.affected_devices("X-LOW", 3, 4), all[3..7]);
    assert_eq!(index.affected_devices("X-LOW", 9, 4), all[9..]);
    assert!(index.affected_devices("X-LOW", 10, 4).is_empty());

    let findings = index.device_findings("b1");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].vulnerability, "X-LOW");
    assert_eq!(findings[0].components[0].purl_key, "pkg:npm/p");
    assert_eq!(findings[0].components[0].version, "1.1.0");
    assert!(index.device_findings("nobody").is_empty());

    // X-LOW: 2.0 (AV:N/AC:H/PR:H/UI:R/C:L) × (5×2 + 5×4); X-HIGH: 10.0 × 1.
    let ranked = index.fleet_exposure(1);
    assert_eq!(ranked.len(), 1);
    let (top, score) = &ranked[0];
    let low_score = index.affected("X-LOW").unwrap().cvss_max.unwrap();
    assert_eq!(top, "X-LOW");
    assert!((score - low_score * 30.0).abs() < 1e-9);
    assert_eq!(index.fleet_exposure(5)[1], ("X-HIGH".to_owned(), 10.0));
}

#[test]
fn replacing_a_builds_sbom_reevaluates_it() {
    let mut index = Index::new();
    let id = index.add_sbom(build("gw", "1"), &sbom(&["pkg:npm/k@1.0.0"]));
    index.add_advisory(&osv("X-K", "npm", "k", "SEMVER", json!([{"introduced": "0"}, {"fixed": "1.0.1"}])));
    index.add_device("d", id, class("high", "eu", "g")).unwrap();
    assert_eq!(index.device_findings("d").len(), 1);
    assert_eq!(index.add_sbom(build("gw", "1"), &sbom(&["pkg:npm/k@1.0.1"])), id);
    assert!(index.affected("X-K").unwrap().builds.is_empty());
    assert!(index.device_findings("d").is_empty());
    // An SBOM added after the advisory is evaluated against it.
    let later = index.add_sbom(build("gw", "2"), &sbom(&["pkg:npm/k@0.9.0"]));
    assert_eq!(index.affected("X-K").unwrap().builds, vec![(build("gw", "2"), Some("1.0.1".to_owned()))]);
    assert_ne!(later, id);
}

#[test]
fn cpe_matching_is_opt_in_and_lower_confidence() {
    let cpe_component = Component {
        id: None,
        purl: None,
        cpes: vec!["cpe:2.3:a:busybox:busybox:1.36.0:*:*:*:*:*:*:*".into()],
        group: None,
        name: "busybox".into(),
        version: Some("1.36.0".into()),
        ecosystem: None,
    };
    let bom =
        Sbom { format: "CycloneDX 1.5".into(), subject: None, components: vec![cpe_component], dependencies: vec![] };
    let statement = vex("CVE-2024-2222", "cpe:2.3:a:busybox:busybox:1.36.0:*:*:*:*:*:*:*", VexStatus::Affected);

    let mut plain = Index::new();
    plain.add_sbom(build("gw", "1"), &bom);
    plain.add_advisory(&statement);
    assert!(plain.affected("CVE-2024-2222").unwrap().builds.is_empty());

    let mut index = Index::with_cpe_matching();
    index.add_sbom(build("gw", "1"), &bom);
    index.add_sbom(build("gw", "2"), &Sbom { components: vec![], ..bom.clone() });
    index.add_advisory(&statement);
    let exposure = index.affected("CVE-2024-2222").unwrap();
    assert_eq!(exposure.builds, vec![(build("gw", "1"), None)]);
    assert_eq!(exposure.confidence, Some(Confidence::Cpe));
}

/// OS advisories are per distribution release (`Debian:12`, `Alpine:v3.18`): a package whose purl
/// names another release (`distro=debian-11`, `bullseye`, `alpine-3.19.1`) is not matched; one
/// without a `distro` qualifier still is.
#[test]
fn os_advisories_apply_to_their_release_only() {
    let mut index = Index::new();
    for (name, purl, version) in [
        ("deb12", "pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=armhf&distro=debian-12", "3.0.11-1~deb12u1"),
        ("bookworm", "pkg:deb/debian/openssl@3.0.9-1?distro=bookworm", "3.0.9-1"),
        ("deb11", "pkg:deb/debian/openssl@1.1.1n-0+deb11u5?distro=debian-11", "1.1.1n-0+deb11u5"),
        ("bullseye", "pkg:deb/debian/openssl@1.1.1n-0?distro=bullseye", "1.1.1n-0"),
        ("unknown", "pkg:deb/debian/openssl@1.1.1n-0", "1.1.1n-0"),
        ("alpine318", "pkg:apk/alpine/busybox@1.36.1-r2?distro=alpine-3.18.4", "1.36.1-r2"),
        ("alpine319", "pkg:apk/alpine/busybox@1.36.1-r2?distro=alpine-3.19.1", "1.36.1-r2"),
    ] {
        let mut c = component(purl);
        c.version = Some(version.to_owned());
        let sbom = Sbom { components: vec![c], ..sbom(&[]) };
        index.add_sbom(build("m", name), &sbom);
    }
    let events = json!([{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]);
    index.add_advisory(&osv("DSA-5532-1", "Debian:12", "openssl", "ECOSYSTEM", events));
    let events = json!([{"introduced": "0"}, {"fixed": "1.36.1-r3"}]);
    index.add_advisory(&osv("ALPINE-1", "Alpine:v3.18", "busybox", "ECOSYSTEM", events));
    let names = |id: &str| {
        let mut names: Vec<String> = index.affected(id).unwrap().builds.into_iter().map(|(b, _)| b.version).collect();
        names.sort();
        names
    };
    assert_eq!(names("DSA-5532-1"), ["bookworm", "deb12", "unknown"]);
    assert_eq!(names("ALPINE-1"), ["alpine318"]);
}

/// Two vendors' CSAF VEX about one CVE are two documents: both suppressions hold; a re-issue of
/// one (same tracking id) replaces only that one.
#[test]
fn two_vendors_vex_about_one_cve_both_count() {
    let (mut index, _) = index_of(&["pkg:npm/a@1.0.0", "pkg:npm/b@1.0.0"]);
    let advisory = json!({"id": "GHSA-dddd-eeee-ffff", "aliases": ["CVE-2024-1"],
        "affected": [{"package": {"ecosystem": "npm", "name": "a"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]},
                     {"package": {"ecosystem": "npm", "name": "b"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]});
    index.add_advisory(&parse_advisory(advisory.to_string().as_bytes()).unwrap().remove(0));
    let csaf = |vendor: &str, purl: &str, status: &str| {
        let doc = json!({
            "document": {"category": "csaf_vex", "csaf_version": "2.0", "tracking": {"id": vendor}},
            "product_tree": {"full_product_names": [{"product_id": "P", "name": "p",
                "product_identification_helper": {"purl": purl}}]},
            "vulnerabilities": [{"cve": "CVE-2024-1", "product_status": {status: ["P"]},
                "flags": [{"label": "vulnerable_code_not_present", "product_ids": ["P"]}]}]
        });
        parse_advisory(doc.to_string().as_bytes()).unwrap().remove(0)
    };
    index.add_advisory(&csaf("VENDOR-A-1", "pkg:npm/a@1.0.0", "known_not_affected"));
    index.add_advisory(&csaf("VENDOR-B-7", "pkg:npm/b@1.0.0", "known_not_affected"));
    let e = index.affected("CVE-2024-1").unwrap();
    assert_eq!(e.devices, 0);
    assert!(e.builds.is_empty(), "both vendors' not_affected hold: {:?}", e.builds);
    assert_eq!(e.suppressed.len(), 2, "{:?}", e.suppressed);
    // Vendor B re-issues its document: the product turns out affected after all.
    index.add_advisory(&csaf("VENDOR-B-7", "pkg:npm/b@1.0.0", "known_affected"));
    let e = index.affected("CVE-2024-1").unwrap();
    let builds: Vec<String> = e.builds.into_iter().map(|(b, _)| b.version).collect();
    assert_eq!(builds, ["pkg:npm/b@1.0.0"]);
    assert_eq!(e.suppressed.len(), 1);
}
