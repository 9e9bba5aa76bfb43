//! SBOM, advisory and CVSS readers against real-shaped fixtures, malformed input, and fuzzed input.

// Test helpers outside #[test] functions unwrap and panic on purpose: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use palisade_vuln::advisory::{
    AdvisoryError, AdvisoryFormat, Event, RangeKind, VexStatement, VexStatus, alias_set, parse_advisory,
};
use palisade_vuln::cvss;
use palisade_vuln::sbom::{Component, MAX_COMPONENTS, SbomError, parse_sbom};
use palisade_vuln::version::Ecosystem;
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn edge(from: &str, to: &str) -> (String, String) {
    (from.to_owned(), to.to_owned())
}

fn names(components: &[Component]) -> Vec<&str> {
    components.iter().map(|component| component.name.as_str()).collect()
}

fn sbom_error(value: &Value) -> String {
    parse_sbom(value.to_string().as_bytes()).unwrap_err().to_string()
}

fn advisory_error(value: &Value) -> String {
    parse_advisory(value.to_string().as_bytes()).unwrap_err().to_string()
}

// ---------------------------------------------------------------------------------------------
// SBOMs

#[test]
fn cyclonedx_1_2_nested_components_and_dependencies() {
    let sbom = parse_sbom(&fixture("cyclonedx-1.2.json")).unwrap();
    assert_eq!(sbom.format, "CycloneDX 1.2");
    let subject = sbom.subject.unwrap();
    assert_eq!((subject.name.as_str(), subject.version.as_deref()), ("gateway-firmware", Some("4.2.0")));
    assert_eq!(names(&sbom.components), ["linux", "openssl", "busybox", "palisade-agent"]);
    let linux = &sbom.components[0];
    assert_eq!(linux.purl, None);
    assert_eq!(linux.cpes, ["cpe:2.3:o:linux:linux_kernel:5.10.110:*:*:*:*:*:*:*"]);
    assert_eq!(linux.ecosystem, None);
    let openssl = &sbom.components[1];
    assert_eq!(openssl.purl.as_deref(), Some("pkg:generic/openssl@1.1.1k"));
    assert_eq!(openssl.ecosystem, Some(Ecosystem::Generic));
    assert_eq!(sbom.components[3].ecosystem, Some(Ecosystem::Cargo));
    assert_eq!(
        sbom.dependencies,
        [edge("gateway-fw", "linux"), edge("gateway-fw", "agent"), edge("agent", "pkg:generic/openssl@1.1.1k")]
    );
}

#[test]
fn cyclonedx_1_4_deduplicates_and_keeps_components_without_purl() {
    let sbom = parse_sbom(&fixture("cyclonedx-1.4.json")).unwrap();
    assert_eq!(sbom.format, "CycloneDX 1.4");
    assert_eq!(sbom.subject, None);
    assert_eq!(names(&sbom.components), ["client", "lodash", "wifi-calibration.bin", "zlib"]);
    let client = &sbom.components[0];
    assert_eq!(client.group.as_deref(), Some("@mqtt"));
    assert_eq!(client.ecosystem, Some(Ecosystem::Npm));
    // The two lodash entries share a purl: one component, the CPE of the second merged in.
    let lodash = &sbom.components[1];
    assert_eq!(lodash.id.as_deref(), Some("lodash-a"));
    assert_eq!(lodash.cpes, ["cpe:2.3:a:lodash:lodash:4.17.20:*:*:*:*:node.js:*:*"]);
    let blob = &sbom.components[2];
    assert_eq!((blob.purl.as_deref(), blob.version.as_deref()), (None, Some("2023.07")));
    let zlib = &sbom.components[3];
    assert_eq!((zlib.id.as_deref(), zlib.purl.as_deref()), (None, None));
    assert_eq!(zlib.cpes, ["cpe:/a:zlib:zlib:1.2.13"]);
    // The edge to the duplicate `lodash-b` lands on the kept component.
    assert_eq!(
        sbom.dependencies,
        [edge("pkg:npm/%40mqtt/client@4.3.7", "lodash-a"), edge("pkg:npm/%40mqtt/client@4.3.7", "vendor-blob")]
    );
}

#[test]
fn cyclonedx_1_6_deep_nesting_and_metadata_subcomponents() {
    let sbom = parse_sbom(&fixture("cyclonedx-1.6.json")).unwrap();
    assert_eq!(sbom.format, "CycloneDX 1.6");
    assert_eq!(sbom.subject.unwrap().id.as_deref(), Some("cam-fw"));
    assert_eq!(names(&sbom.components), ["u-boot", "rootfs", "github.com/acme/streamer", "golang.org/x/net", "musl"]);
    assert_eq!(sbom.components[3].ecosystem, Some(Ecosystem::Go));
    assert_eq!(sbom.components[4].ecosystem, Some(Ecosystem::Alpine));
    assert_eq!(sbom.dependencies.len(), 6);
    assert!(sbom.dependencies.contains(&edge("go-app", "golang.org/x/net")));
}

#[test]
fn spdx_2_2_with_cpe_refs_and_described_package() {
    let sbom = parse_sbom(&fixture("spdx-2.2.json")).unwrap();
    assert_eq!(sbom.format, "SPDX 2.2");
    assert_eq!(sbom.subject.unwrap().name, "router-fw");
    assert_eq!(names(&sbom.components), ["dropbear", "dnsmasq", "radio-firmware"]);
    let dropbear = &sbom.components[0];
    assert_eq!(dropbear.purl, None);
    assert_eq!(dropbear.cpes, ["cpe:2.3:a:dropbear_ssh_project:dropbear_ssh:2020.81:*:*:*:*:*:*:*"]);
    let dnsmasq = &sbom.components[1];
    assert_eq!(dnsmasq.purl.as_deref(), Some("pkg:deb/debian/dnsmasq@2.85-1?arch=arm64"));
    assert_eq!(dnsmasq.ecosystem, Some(Ecosystem::Debian));
    assert_eq!(dnsmasq.cpes, ["cpe:/a:thekelleys:dnsmasq:2.85"]);
    assert_eq!(sbom.components[2].version, None, "NOASSERTION is no version");
    assert_eq!(
        sbom.dependencies,
        [
            edge("SPDXRef-Package-router-fw", "SPDXRef-Package-dropbear"),
            edge("SPDXRef-Package-router-fw", "SPDXRef-Package-dnsmasq"),
            edge("SPDXRef-Package-router-fw", "SPDXRef-Package-blob"),
        ]
    );
}

#[test]
fn spdx_2_3_with_purl_refs_and_duplicates() {
    let sbom = parse_sbom(&fixture("spdx-2.3.json")).unwrap();
    assert_eq!(sbom.format, "SPDX 2.3");
    assert_eq!(sbom.subject.unwrap().id.as_deref(), Some("SPDXRef-sensor-hub"));
    assert_eq!(names(&sbom.components), ["requests", "urllib3"]);
    let urllib3 = &sbom.components[1];
    assert_eq!(urllib3.purl.as_deref(), Some("pkg:pypi/urllib3@1.26.5"));
    assert_eq!(urllib3.cpes, ["cpe:2.3:a:python:urllib3:1.26.5:*:*:*:*:python:*:*"]);
    assert_eq!(
        sbom.dependencies,
        [
            edge("SPDXRef-sensor-hub", "SPDXRef-Package-pypi-requests"),
            edge("SPDXRef-Package-pypi-requests", "SPDXRef-Package-pypi-urllib3"),
        ]
    );
}

#[test]
fn malformed_sboms_say_what_and_where() {
    let error = parse_sbom(b"{\"bomFormat\": \"CycloneDX\",\n  \"specVersion\": \"1.4\",,}").unwrap_err();
    assert_eq!(error.to_string(), "invalid JSON at line 2, column 24: key must be a string");
    assert_eq!(sbom_error(&json!({"name": "x"})), "not CycloneDX or SPDX JSON: no bomFormat or spdxVersion");
    assert_eq!(sbom_error(&json!([1, 2])), "not CycloneDX or SPDX JSON: the document is not a JSON object");
    assert_eq!(
        sbom_error(&json!({"bomFormat": "SWID", "specVersion": "1.4"})),
        "not CycloneDX or SPDX JSON: bomFormat is \"SWID\", not \"CycloneDX\""
    );
    assert_eq!(
        sbom_error(&json!({"bomFormat": "CycloneDX", "specVersion": "0.9"})),
        "specVersion \"0.9\" is not supported (1.2–1.6)"
    );
    assert_eq!(sbom_error(&json!({"bomFormat": "CycloneDX", "specVersion": 1.4})), "specVersion: not a string");
    assert_eq!(sbom_error(&json!({"bomFormat": "CycloneDX"})), "specVersion: missing");
    let nested = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
        {"name": "a"}, {"name": "b"}, {"name": "c"},
        {"name": "d", "components": [{"name": "e", "purl": 42}]}
    ]});
    assert_eq!(sbom_error(&nested), "components[3].components[0].purl: not a string");
    let not_object = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "a"}, "b"]});
    assert_eq!(sbom_error(&not_object), "components[1]: not an object");
    let not_array = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": {"name": "a"}});
    assert_eq!(sbom_error(&not_array), "components: not an array");
    let bad_purl =
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "a", "purl": "npm/a"}]});
    assert_eq!(sbom_error(&bad_purl), "components[0].purl: \"npm/a\" is not a package URL: must start with pkg:");
    let bad_cpe = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "a", "cpe": "a:b"}]});
    assert_eq!(sbom_error(&bad_cpe), "components[0].cpe: \"a:b\" is not a CPE");
    let nameless = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"version": "1"}]});
    assert_eq!(sbom_error(&nameless), "components[0].name: missing, and no purl to take it from");
    let bad_edge =
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "dependencies": [{"ref": "a", "dependsOn": ["b", 3]}]});
    assert_eq!(sbom_error(&bad_edge), "dependencies[0].dependsOn[1]: not a string");
    assert_eq!(
        sbom_error(&json!({"spdxVersion": "SPDX-2.1"})),
        "spdxVersion \"SPDX-2.1\" is not supported (SPDX-2.2, SPDX-2.3)"
    );
    let bad_ref = json!({"spdxVersion": "SPDX-2.3", "packages": [{"SPDXID": "SPDXRef-a", "name": "a",
        "externalRefs": [{"referenceType": "purl", "referenceLocator": "a@1"}]}]});
    assert_eq!(
        sbom_error(&bad_ref),
        "packages[0].externalRefs[0].referenceLocator: \"a@1\" is not a package URL: must start with pkg:"
    );
    let bad_relationship =
        json!({"spdxVersion": "SPDX-2.3", "relationships": [{"spdxElementId": "a", "relationshipType": "CONTAINS"}]});
    assert_eq!(sbom_error(&bad_relationship), "relationships[0].relatedSpdxElement: missing");
}

#[test]
fn a_purl_stands_in_for_a_missing_name() {
    let sbom =
        json!({"bomFormat": "CycloneDX", "specVersion": "1.3", "components": [{"purl": "pkg:npm/left-pad@1.3.0"}]});
    let sbom = parse_sbom(sbom.to_string().as_bytes()).unwrap();
    assert_eq!(sbom.components[0].name, "left-pad");
}

fn nested_components(depth: usize) -> Value {
    let mut component = json!({"name": "leaf"});
    for level in 1..depth {
        component = json!({"name": format!("level-{level}"), "components": [component]});
    }
    json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [component]})
}

#[test]
fn nesting_is_capped_at_32() {
    assert_eq!(parse_sbom(nested_components(32).to_string().as_bytes()).unwrap().components.len(), 32);
    let error = parse_sbom(nested_components(33).to_string().as_bytes()).unwrap_err();
    assert!(matches!(&error, SbomError::TooDeep { path } if path.ends_with(".components")), "{error}");
}

#[test]
fn component_count_is_capped() {
    let components = |count: usize| -> Value {
        let list: Vec<Value> = (0..count).map(|n| json!({"name": "c", "version": n.to_string()})).collect();
        json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": list})
    };
    assert_eq!(parse_sbom(components(MAX_COMPONENTS).to_string().as_bytes()).unwrap().components.len(), MAX_COMPONENTS);
    assert_eq!(parse_sbom(components(MAX_COMPONENTS + 1).to_string().as_bytes()), Err(SbomError::TooManyComponents));
}

// ---------------------------------------------------------------------------------------------
// Advisories

#[test]
fn osv_go_with_cve_and_ghsa_aliases() {
    let docs = parse_advisory(&fixture("osv-go.json")).unwrap();
    let [doc] = docs.as_slice() else { panic!("{docs:?}") };
    assert_eq!(doc.format, AdvisoryFormat::Osv);
    assert_eq!(doc.id, "GO-2024-2687");
    assert_eq!(alias_set(doc), ["CVE-2023-45288", "GHSA-4v7x-pqxf-cx7m", "GO-2024-2687"]);
    assert_eq!(doc.summary.as_deref(), Some("HTTP/2 CONTINUATION flood in net/http"));
    assert_eq!(doc.modified.as_deref(), Some("2024-04-05T17:21:10Z"));
    assert!(!doc.withdrawn);
    let stdlib = &doc.affected[0];
    assert_eq!((stdlib.ecosystem.as_str(), stdlib.name.as_str(), stdlib.purl.as_deref()), ("Go", "stdlib", None));
    assert_eq!(stdlib.ranges[0].kind, RangeKind::Semver);
    assert_eq!(
        stdlib.ranges[0].events,
        [
            Event::Introduced("0".into()),
            Event::Fixed("1.21.9".into()),
            Event::Introduced("1.22.0-0".into()),
            Event::Fixed("1.22.2".into()),
        ]
    );
    assert_eq!(doc.affected[1].purl.as_deref(), Some("pkg:golang/golang.org/x/net"));
}

#[test]
fn osv_maven_with_last_affected() {
    let docs = parse_advisory(&fixture("osv-maven.json")).unwrap();
    let doc = &docs[0];
    assert_eq!(alias_set(doc), ["CVE-2021-45046", "GHSA-7rjr-3q55-vv33"]);
    assert_eq!(doc.cvss, ["CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:H/A:H"]);
    assert_eq!(cvss::score(&doc.cvss[0]).unwrap().base, 9.0);
    let log4j = &doc.affected[0];
    assert_eq!((log4j.ecosystem.as_str(), log4j.name.as_str()), ("Maven", "org.apache.logging.log4j:log4j-core"));
    assert_eq!(log4j.ranges[1].events, [Event::Introduced("2.0-beta9".into()), Event::LastAffected("2.12.1".into())]);
}

#[test]
fn osv_pypi_with_versions_list_and_git_range() {
    let docs = parse_advisory(&fixture("osv-pypi.json")).unwrap();
    let doc = &docs[0];
    assert_eq!(doc.summary.as_deref(), Some("urllib3 does not strip the Cookie header on cross-origin redirects."));
    assert!(!doc.withdrawn, "a null withdrawn is not withdrawn");
    assert_eq!(doc.cvss, ["CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N"], "non-CVSS severities are skipped");
    let urllib3 = &doc.affected[0];
    assert_eq!(urllib3.versions, ["1.26.14", "1.26.15", "1.26.16", "1.26.5", "2.0.0"]);
    assert_eq!(urllib3.ranges[0].kind, RangeKind::Git);
    assert_eq!(urllib3.ranges[0].repo.as_deref(), Some("https://github.com/urllib3/urllib3"));
    assert_eq!(urllib3.ranges[1].kind, RangeKind::Ecosystem);
}

#[test]
fn osv_list_with_unknown_ecosystem_withdrawn_entry_and_no_package() {
    let docs = parse_advisory(&fixture("osv-unknown-ecosystem.json")).unwrap();
    assert_eq!(docs.len(), 2);
    assert!(docs[0].withdrawn);
    assert_eq!(docs[0].affected[0].ecosystem, "AcmeRTOS");
    assert_eq!(docs[0].affected[0].ranges[0].events[1], Event::Limit("7.4".into()));
    assert!(!docs[1].withdrawn);
    assert_eq!(docs[1].affected[0].ecosystem, "");
    assert_eq!(docs[1].affected[0].ranges[0].repo.as_deref(), Some("https://git.example.com/acme/netstack.git"));
    // The OSV API answer shape holds the same entries.
    let api = json!({"vulns": serde_json::from_slice::<Value>(&fixture("osv-unknown-ecosystem.json")).unwrap()});
    assert_eq!(parse_advisory(api.to_string().as_bytes()).unwrap(), docs);
}

#[test]
fn cyclonedx_vex_statements() {
    let docs = parse_advisory(&fixture("cyclonedx-vex.json")).unwrap();
    assert_eq!(docs.len(), 3);
    let http2 = &docs[0];
    assert_eq!(http2.format, AdvisoryFormat::CycloneDxVex);
    assert_eq!(http2.id, "CVE-2023-45288");
    assert_eq!(http2.aliases, ["GO-2024-2687"]);
    assert_eq!(http2.cvss, ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"], "prefix restored from the method");
    assert_eq!(
        http2.statements,
        [VexStatement {
            product: "pkg:golang/golang.org/x/net@v0.17.0".into(),
            status: VexStatus::NotAffected { justification: Some("code_not_reachable".into()) },
        }]
    );
    assert_eq!(http2.modified.as_deref(), Some("2024-05-01T09:30:00Z"));
    // The VEX statement and the OSV entry name the same vulnerability.
    let osv = parse_advisory(&fixture("osv-go.json")).unwrap();
    let osv_aliases = alias_set(&osv[0]);
    assert!(alias_set(http2).iter().all(|alias| osv_aliases.contains(alias)));
    assert_eq!(
        docs[1].statements,
        [VexStatement { product: "pkg:apk/alpine/musl@1.2.4-r2".into(), status: VexStatus::Affected }],
        "a BOM-Link resolves through its bom-ref"
    );
    assert_eq!(
        docs[2].statements,
        [VexStatement { product: "pkg:generic/vendor-blob@1.0".into(), status: VexStatus::UnderInvestigation }]
    );
}

#[test]
fn csaf_vex_statements_with_justification_flags() {
    let docs = parse_advisory(&fixture("csaf-vex.json")).unwrap();
    let [doc] = docs.as_slice() else { panic!("{docs:?}") };
    assert_eq!(doc.format, AdvisoryFormat::Csaf);
    assert_eq!(doc.id, "CVE-2023-0286");
    assert_eq!(doc.aliases, ["ACME-SA-2023-0002"]);
    assert_eq!(doc.summary.as_deref(), Some("X.400 address type confusion in X.509 GeneralName"));
    assert_eq!(doc.cvss, ["CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H"]);
    assert_eq!(doc.modified.as_deref(), Some("2023-02-10T00:00:00Z"));
    assert_eq!(
        doc.statements,
        [
            VexStatement { product: "pkg:generic/openssl@3.0.7".into(), status: VexStatus::Affected },
            VexStatement { product: "GW-5.0.0-beta".into(), status: VexStatus::UnderInvestigation },
            VexStatement {
                product: "pkg:generic/acme/gateway-firmware@4.2.0".into(),
                status: VexStatus::NotAffected { justification: Some("vulnerable_code_not_in_execute_path".into()) },
            },
        ]
    );
}

#[test]
fn csaf_security_advisory_and_threat_justification() {
    let doc = json!({
        "document": {"category": "csaf_security_advisory", "csaf_version": "2.0", "tracking": {"id": "ACME-SA-1"}},
        "product_tree": {"full_product_names": [{"product_id": "P1", "product_identification_helper":
            {"cpe": "cpe:2.3:o:acme:os:1.0:*:*:*:*:*:*:*"}}]},
        "vulnerabilities": [
            {"product_status": {"known_not_affected": ["P1"], "fixed": ["P2"]},
             "threats": [{"category": "impact", "details": "No network stack.", "product_ids": ["P1"]}]}
        ]
    });
    let docs = parse_advisory(doc.to_string().as_bytes()).unwrap();
    assert_eq!(docs[0].id, "ACME-SA-1#0");
    assert_eq!(
        docs[0].statements,
        [
            VexStatement { product: "P2".into(), status: VexStatus::Fixed },
            VexStatement {
                product: "cpe:2.3:o:acme:os:1.0:*:*:*:*:*:*:*".into(),
                status: VexStatus::NotAffected { justification: Some("No network stack.".into()) },
            },
        ]
    );
}

#[test]
fn malformed_advisories_say_what_and_where() {
    let error = parse_advisory(b"{\n\"id\": \"GO-1\",\n\"aliases\": [\"x\" \"y\"]}").unwrap_err();
    assert!(matches!(error, AdvisoryError::InvalidJson { line: 3, .. }), "{error}");
    assert_eq!(
        advisory_error(&json!({"name": "x"})),
        "not OSV, CycloneDX VEX or CSAF JSON: no id (OSV), bomFormat (CycloneDX) or document (CSAF)"
    );
    assert_eq!(
        advisory_error(&json!("GO-1")),
        "not OSV, CycloneDX VEX or CSAF JSON: the document is not a JSON object or array"
    );
    assert_eq!(advisory_error(&json!({"id": "GO-1", "aliases": "CVE-1"})), "aliases: not an array");
    assert_eq!(advisory_error(&json!({"id": ""})), "id: empty");
    assert_eq!(advisory_error(&json!([{"id": "A-1"}, {"summary": "no id"}])), "[1].id: missing");
    let two_events = json!({"id": "GO-1", "affected": [{"package": {"ecosystem": "Go", "name": "m"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1", "limit": "2"}]}]}]});
    assert_eq!(
        advisory_error(&two_events),
        "affected[0].ranges[0].events[1]: more than one of introduced, fixed, last_affected, limit"
    );
    let no_event = json!({"id": "GO-1", "affected": [{"package": {"ecosystem": "Go", "name": "m"},
        "ranges": [{"type": "SEMVER", "events": [{"introduce": "0"}]}]}]});
    assert_eq!(
        advisory_error(&no_event),
        "affected[0].ranges[0].events[0]: none of introduced, fixed, last_affected, limit"
    );
    let no_events = json!({"id": "GO-1", "affected": [{"package": {"ecosystem": "Go", "name": "m"},
        "ranges": [{"type": "SEMVER", "events": []}]}]});
    assert_eq!(advisory_error(&no_events), "affected[0].ranges[0].events: no events");
    let bad_type = json!({"id": "GO-1", "affected": [{"package": {"ecosystem": "Go", "name": "m"},
        "ranges": [{"type": "CALVER", "events": [{"introduced": "0"}]}]}]});
    assert_eq!(advisory_error(&bad_type), "affected[0].ranges[0].type: \"CALVER\" is not SEMVER, ECOSYSTEM or GIT");
    let no_name = json!({"id": "GO-1", "affected": [{"package": {"ecosystem": "Go"}}]});
    assert_eq!(advisory_error(&no_name), "affected[0].package.name: missing");
    let bad_state = json!({"bomFormat": "CycloneDX", "specVersion": "1.5",
        "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "maybe"}}]});
    assert_eq!(advisory_error(&bad_state), "vulnerabilities[0].analysis.state: unknown state \"maybe\"");
    let old_cdx = json!({"bomFormat": "CycloneDX", "specVersion": "1.1"});
    assert_eq!(advisory_error(&old_cdx), "specVersion \"1.1\" is not supported (1.2–1.6)");
    let csaf_base = json!({"document": {"category": "csaf_base", "csaf_version": "2.0"}});
    assert_eq!(
        advisory_error(&csaf_base),
        "document.category: \"csaf_base\" is not csaf_vex or csaf_security_advisory"
    );
    let csaf_21 = json!({"document": {"category": "csaf_vex", "csaf_version": "2.1"}});
    assert_eq!(advisory_error(&csaf_21), "csaf_version \"2.1\" is not supported (2.0)");
    let bad_status = json!({"document": {"category": "csaf_vex", "csaf_version": "2.0"},
        "vulnerabilities": [{"cve": "CVE-1", "product_status": {"known_affected": ["P1", 2]}}]});
    assert_eq!(advisory_error(&bad_status), "vulnerabilities[0].product_status.known_affected[1]: not a string");
    let unnamed = json!({"document": {"category": "csaf_vex", "csaf_version": "2.0"}, "vulnerabilities": [{}]});
    assert_eq!(
        advisory_error(&unnamed),
        "vulnerabilities[0]: no cve, no ids and no document.tracking.id to name it by"
    );
}

#[test]
fn alias_set_normalises_prefixes() {
    let mut doc = parse_advisory(&fixture("osv-go.json")).unwrap().remove(0);
    doc.aliases.push("CVE-2023-45288".into());
    doc.aliases.push(" Ghsa-4v7x-pqxf-cx7m ".into());
    assert_eq!(alias_set(&doc), ["CVE-2023-45288", "GHSA-4v7x-pqxf-cx7m", "GO-2024-2687"]);
}

// ---------------------------------------------------------------------------------------------
// Fuzzed input: errors, never panics.

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("CycloneDX".to_owned()),
            Just("1.5".to_owned()),
            Just("SPDX-2.3".to_owned()),
            Just("pkg:npm/a@1".to_owned()),
            Just("csaf_vex".to_owned()),
            Just("2.0".to_owned()),
            ".{0,8}",
        ]
        .prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("bomFormat"),
        Just("specVersion"),
        Just("components"),
        Just("name"),
        Just("purl"),
        Just("cpe"),
        Just("bom-ref"),
        Just("dependencies"),
        Just("ref"),
        Just("dependsOn"),
        Just("spdxVersion"),
        Just("packages"),
        Just("externalRefs"),
        Just("referenceType"),
        Just("referenceLocator"),
        Just("relationships"),
        Just("id"),
        Just("affected"),
        Just("ranges"),
        Just("events"),
        Just("type"),
        Just("introduced"),
        Just("vulnerabilities"),
        Just("affects"),
        Just("analysis"),
        Just("state"),
        Just("document"),
        Just("category"),
        Just("csaf_version"),
        Just("product_tree"),
        Just("branches"),
        Just("product"),
        Just("product_id"),
        Just("product_status"),
        Just("flags"),
        Just("product_ids"),
        Just("vulns"),
        Just("metadata"),
        Just("component"),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_sbom(&bytes);
        let _ = parse_advisory(&bytes);
        let _ = cvss::score(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsers_never_panic_on_json(value in arbitrary_json()) {
        let bytes = value.to_string().into_bytes();
        let _ = parse_sbom(&bytes);
        let _ = parse_advisory(&bytes);
    }

    #[test]
    fn parsers_never_panic_inside_known_shapes(value in arbitrary_json(), field in 0usize..6) {
        let documents = [
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [value.clone()]}),
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [value.clone()]}),
            json!({"spdxVersion": "SPDX-2.3", "packages": [value.clone()], "relationships": [value.clone()]}),
            json!({"id": "GO-1", "affected": [value.clone()]}),
            json!({"document": {"category": "csaf_vex", "csaf_version": "2.0"}, "product_tree": value.clone()}),
            json!({"document": {"category": "csaf_vex", "csaf_version": "2.0"}, "vulnerabilities": [value]}),
        ];
        let bytes = documents[field].to_string().into_bytes();
        let _ = parse_sbom(&bytes);
        let _ = parse_advisory(&bytes);
    }

    #[test]
    fn cvss_never_panics_on_metric_soup(parts in prop::collection::vec("(AV|AC|PR|UI|S|C|I|A|Au|E|AT|VC|X):[NLHPRUCAX]{0,2}", 0..14),
                                         prefix in prop_oneof![Just(""), Just("CVSS:3.1/"), Just("CVSS:3.0/"), Just("CVSS:4.0/")]) {
        let vector = format!("{prefix}{}", parts.join("/"));
        if let Ok(cvss) = cvss::score(&vector) {
            prop_assert!((0.0..=10.0).contains(&cvss.base));
        }
    }
}
