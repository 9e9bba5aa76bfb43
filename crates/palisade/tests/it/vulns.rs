//! Vulnerability exposure end to end, through the API and the CLI: SBOMs attached to firmware
//! builds (CycloneDX and SPDX), advisories imported as a zip (OSV for Maven, Go and npm, a
//! CycloneDX VEX), affected devices by CVE or alias with counts and the fixing firmware of the
//! catalogue, alerts for newly exposed critical devices, refusals that change nothing, device
//! changes followed, and the same answers after a restart.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use hyper::Method;
use serde_json::{Value, json};

use crate::common::{BIN, Backend, Server, device};

const MODEL: &str = "meter-3";

pub(crate) fn zip_of(files: &[(&str, Value)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            zip.start_file(*name, options).unwrap();
            zip.write_all(body.to_string().as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    out.into_inner()
}

/// Firmware 1.4.2 as CycloneDX 1.5, with a nested component.
fn sbom_old() -> Value {
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "firmware", "name": MODEL, "version": "1.4.2"}},
        "components": [
            {"type": "library", "name": "log4j-core", "group": "org.apache.logging.log4j", "version": "2.14.1",
             "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
            {"type": "library", "name": "lodash", "version": "4.17.20", "purl": "pkg:npm/lodash@4.17.20"},
            {"type": "library", "name": "golang.org/x/net", "version": "v0.7.0",
             "purl": "pkg:golang/golang.org/x/net@v0.7.0",
             "components": [
                {"type": "library", "name": "requests", "version": "2.19.0", "purl": "pkg:pypi/requests@2.19.0"}
             ]}
        ]
    })
}

/// Firmware 2.0.0 as SPDX 2.3: every component fixed.
fn sbom_new() -> Value {
    let package = |id: &str, name: &str, version: &str, purl: &str| {
        json!({"SPDXID": id, "name": name, "versionInfo": version, "downloadLocation": "NOASSERTION",
               "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}]})
    };
    json!({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "meter-3-2.0.0", "documentNamespace": "https://example.com/spdx/meter-3-2.0.0",
        "creationInfo": {"created": "2026-11-01T00:00:00Z", "creators": ["Tool: test"]},
        "packages": [
            package("SPDXRef-log4j", "log4j-core", "2.17.1", "pkg:maven/org.apache.logging.log4j/log4j-core@2.17.1"),
            package("SPDXRef-lodash", "lodash", "4.17.21", "pkg:npm/lodash@4.17.21"),
            package("SPDXRef-net", "golang.org/x/net", "v0.17.0", "pkg:golang/golang.org/x/net@v0.17.0"),
            package("SPDXRef-requests", "requests", "2.31.0", "pkg:pypi/requests@2.31.0")
        ]
    })
}

fn advisories() -> Vec<(&'static str, Value)> {
    vec![
        (
            "osv/GHSA-jfh8-c2jp-5v3q.json",
            json!({
                "id": "GHSA-jfh8-c2jp-5v3q", "aliases": ["CVE-2021-44228"], "modified": "2024-01-01T00:00:00Z",
                "summary": "Log4Shell",
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
                "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
                              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}]}]
            }),
        ),
        (
            "osv/GO-2023-1988.json",
            json!({
                "id": "GO-2023-1988", "aliases": ["CVE-2023-3978", "GHSA-2wrh-6pvc-2jm9"], "modified": "2024-01-01T00:00:00Z",
                "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N"}],
                "affected": [{"package": {"ecosystem": "Go", "name": "golang.org/x/net"},
                              "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.13.0"}]}]}]
            }),
        ),
        (
            "osv/GHSA-35jh-r3h4-6jhm.json",
            json!({
                "id": "GHSA-35jh-r3h4-6jhm", "aliases": ["CVE-2021-23337"], "modified": "2024-01-01T00:00:00Z",
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
                "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                              "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]
            }),
        ),
        (
            "csaf/acme-vex-7.json",
            json!({
                "document": {"category": "csaf_vex", "csaf_version": "2.0", "title": "meter-3 and Log4Shell",
                             "tracking": {"id": "ACME-VEX-7", "current_release_date": "2024-01-02T00:00:00Z"}},
                "product_tree": {"full_product_names": [{"product_id": "P1", "name": "log4j-core in meter-3 1.4.2",
                    "product_identification_helper": {"purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}}]},
                "vulnerabilities": [{"cve": "CVE-2021-44228", "product_status": {"under_investigation": ["P1"]}}]
            }),
        ),
        (
            "vex/lodash.cdx.json",
            json!({
                "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
                "vulnerabilities": [{"id": "CVE-2021-23337",
                    "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
                    "affects": [{"ref": "pkg:npm/lodash@4.17.20"}]}]
            }),
        ),
    ]
}

fn requests_advisory() -> Value {
    json!({
        "id": "GHSA-x84v-xcm2-53pg", "aliases": ["CVE-2018-18074"], "modified": "2024-01-01T00:00:00Z",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}]}]
    })
}

pub(crate) struct Fleet {
    pub critical: String,
    high: String,
    low: String,
    new: String,
    uncovered: String,
}

async fn create(s: &Server, key: &str, serial: &str, criticality: &str, region: &str, fw: &str, model: &str) -> String {
    let mut body = device(serial, criticality, "north");
    body["region"] = json!(region);
    body["firmware_version"] = json!(fw);
    body["model"] = json!(model);
    let r = s.client.post("/api/v1/devices", key, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn fleet(s: &Server, key: &str) -> Fleet {
    Fleet {
        critical: create(s, key, "v-crit", "critical", "eu-west", "1.4.2", MODEL).await,
        high: create(s, key, "v-high", "high", "us-central", "1.4.2", MODEL).await,
        low: create(s, key, "v-low", "low", "us-central", "1.4.2", MODEL).await,
        new: create(s, key, "v-new", "critical", "us-central", "2.0.0", MODEL).await,
        uncovered: create(s, key, "v-cam", "high", "us-central", "1.0", "cam-1").await,
    }
}

async fn put_raw(s: &Server, path: &str, key: &str, ct: &str, body: Vec<u8>) -> crate::common::Resp {
    s.client.send(Method::PUT, path, Some(key), Some((ct, body))).await
}

async fn post_raw(s: &Server, path: &str, key: &str, ct: &str, body: Vec<u8>) -> crate::common::Resp {
    s.client.send(Method::POST, path, Some(key), Some((ct, body))).await
}

/// Publishes firmware 2.0.0 of the model in the signed catalogue (offline keys, the CLI).
fn publish_fixed_firmware(s: &Server, key: &str, tmp: &Path) {
    let url = format!("https://localhost:{}", s.addr.port());
    let ca = s.dir.join("pki/root-ca.pem").display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).current_dir(tmp).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["firmware", "keygen", "--dir", "keys", "--root-keys", "1", "--targets-keys", "1"]);
    run(&["firmware", "root", "--dir", "keys", "--server", &url, "--ca", &ca, "--api-key", key]);
    std::fs::write(tmp.join("image.bin"), vec![7u8; 4096]).unwrap();
    run(&[
        "firmware",
        "sign",
        "--dir",
        "keys",
        "--image",
        "image.bin",
        "--version",
        "2.0.0",
        "--hardware",
        MODEL,
        "--counter",
        "2",
        "--name",
        "meter-3-2.0.0",
        "--server",
        &url,
        "--ca",
        &ca,
        "--api-key",
        key,
        "--out",
        "t.json",
    ]);
    run(&[
        "firmware",
        "publish",
        "--image",
        "image.bin",
        "--targets",
        "t.json",
        "--server",
        &url,
        "--ca",
        &ca,
        "--api-key",
        key,
    ]);
}

async fn affected(s: &Server, key: &str, id: &str) -> Value {
    let r = s.client.get(&format!("/api/v1/vulnerabilities/{id}/devices"), key).await;
    assert_eq!(r.status, 200, "{id}: {}", r.text());
    r.json()
}

/// The exposure of `id` counts `n` devices right away: a device changed through the API is
/// where it belongs by the time anyone asks (the index catches up before answering).
async fn expect_total(s: &Server, key: &str, id: &str, n: u64) -> Value {
    let v = affected(s, key, id).await;
    assert_eq!(v["devices_total"], n, "{id}: {v}");
    v
}

/// A fleet on two builds of the meter (and a camera without SBOM), both SBOMs, fixed firmware
/// in the catalogue and the advisories imported: for pages that show the result.
pub(crate) async fn seeded(s: &Server, admin: &str, tmp: &Path) -> Fleet {
    let f = fleet(s, admin).await;
    publish_fixed_firmware(s, admin, tmp);
    for (version, sbom) in [("1.4.2", sbom_old()), ("2.0.0", sbom_new())] {
        let path = format!("/api/v1/firmware/{MODEL}/{version}/sbom");
        let r = put_raw(s, &path, admin, "application/json", sbom.to_string().into()).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = post_raw(s, "/api/v1/advisories", admin, "application/zip", zip_of(&advisories())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    f
}

async fn exposure_end_to_end(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = Server::start_in(&dir, backend.clone()).await;
    let admin = s.api_key("admin");
    let technician = s.api_key("technician");
    let f = fleet(&s, &admin).await;
    publish_fixed_firmware(&s, &admin, tmp.path());

    // SBOMs: CycloneDX for the old build, SPDX for the new one.
    let r =
        put_raw(&s, "/api/v1/firmware/meter-3/1.4.2/sbom", &admin, "application/json", sbom_old().to_string().into())
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["format"].as_str(), v["components"].as_u64(), v["devices"].as_u64()),
        (Some("CycloneDX 1.5"), Some(4), Some(3))
    );
    let r =
        put_raw(&s, "/api/v1/firmware/meter-3/2.0.0/sbom", &admin, "application/json", sbom_new().to_string().into())
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["format"].as_str().map(|f| f.starts_with("SPDX")), Some(true), "{}", r.text());

    // A malformed SBOM: a precise reason, nothing stored.
    let bad = json!({"bomFormat": "CycloneDX", "specVersion": "9.9", "components": []});
    let r =
        put_raw(&s, "/api/v1/firmware/meter-3/9.9.9/sbom", &admin, "application/json", bad.to_string().into()).await;
    assert_eq!((r.status.as_u16(), r.error_code().as_str()), (422, "invalid_sbom"), "{}", r.text());
    assert!(r.text().contains("specVersion") && r.text().contains("9.9"), "{}", r.text());
    let r =
        put_raw(&s, "/api/v1/firmware/meter-3/9.9.9/sbom", &admin, "application/json", b"{\"bomFormat\": ".to_vec())
            .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("line 1"), "{}", r.text());
    assert_eq!(s.client.get("/api/v1/firmware/meter-3/9.9.9/sbom", &admin).await.status, 404);

    // Least privilege: a technician can neither import nor rank the fleet.
    let zip = zip_of(&advisories());
    assert_eq!(post_raw(&s, "/api/v1/advisories", &technician, "application/zip", zip.clone()).await.status, 403);

    // The advisories, as one zip.
    let r = post_raw(&s, "/api/v1/advisories?name=feed.zip", &admin, "application/zip", zip.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let report = r.json();
    assert_eq!((report["files"].as_u64(), report["documents"].as_u64()), (Some(5), Some(5)), "{report}");
    // The critical device on 1.4.2 is newly exposed to Log4Shell and to the x/net flaw.
    assert_eq!(report["alerts_raised"], 2, "{report}");
    let stored = s.client.get(&format!("/api/v1/advisories/imports/{}", report["id"].as_str().unwrap()), &admin).await;
    assert_eq!(stored.json()["report"]["alerts_raised"], 2, "{}", stored.text());
    let log4j = report["vulnerabilities"].as_array().unwrap().iter().find(|v| v["id"] == "CVE-2021-44228").unwrap();
    assert_eq!(
        (log4j["devices_newly_affected"].as_u64(), log4j["critical_devices_newly_affected"].as_u64()),
        (Some(3), Some(1))
    );

    // Which devices does Log4Shell touch? By CVE and by GHSA alike.
    let v = affected(&s, &admin, "CVE-2021-44228").await;
    assert_eq!(v["vulnerability"], "CVE-2021-44228");
    assert_eq!(v["cvss"], 10.0);
    assert_eq!(v["devices_total"], 3, "{v}");
    assert_eq!(v["by_criticality"], json!({"critical": 1, "high": 1, "low": 1}));
    assert_eq!(v["by_region"], json!({"eu-west": 1, "us-central": 2}));
    let build = &v["builds"][0];
    assert_eq!((build["model"].as_str(), build["version"].as_str()), (Some(MODEL), Some("1.4.2")));
    assert_eq!(build["fixed_in"], "2.15.0");
    assert_eq!(build["fixing_firmware"], json!({"target": "meter-3-2.0.0", "version": "2.0.0"}), "{v}");
    let mut ids: Vec<&str> = v["devices"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = vec![f.critical.as_str(), f.high.as_str(), f.low.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert_eq!(affected(&s, &admin, "ghsa-jfh8-c2jp-5v3q").await["vulnerability"], "CVE-2021-44228");
    // The vendor's CSAF VEX is tracked: still under investigation, so still counted.
    assert_eq!(
        v["statements"],
        json!([{"product": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "status": "under_investigation", "justification": null}]),
        "{v}"
    );
    // An operator whose role is limited to one region sees that region's devices only, counts included.
    let eu =
        crate::access::user_session(&s, &admin, "eu-operator", json!([{"role": "operator", "regions": ["eu-west"]}]))
            .await;
    let r = eu.get(&s.client, "/api/v1/vulnerabilities/CVE-2021-44228/devices").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let scoped = r.json();
    assert_eq!(
        (scoped["devices_total"].as_u64(), scoped["by_region"].clone()),
        (Some(1), json!({"eu-west": 1})),
        "{scoped}"
    );
    assert_eq!(scoped["devices"], json!([f.critical]));
    assert_eq!(scoped["builds"][0]["devices"], 1);
    assert_eq!(eu.get(&s.client, "/api/v1/vulnerabilities").await.status, 403, "the ranking is fleet-wide");
    let page = s.client.get("/api/v1/vulnerabilities/CVE-2021-44228/devices?offset=1&limit=1", &admin).await.json();
    assert_eq!((page["devices"].as_array().map(Vec::len), page["next_offset"].as_u64()), (Some(1), Some(2)));

    // Go versions with a `v`, a CVSS v4.0 vector scored; lodash suppressed by the VEX.
    let go = affected(&s, &admin, "GO-2023-1988").await;
    assert_eq!((go["vulnerability"].as_str(), go["devices_total"].as_u64()), (Some("CVE-2023-3978"), Some(3)));
    assert!(go["cvss"].as_f64().is_some_and(|c| c > 0.0 && c < 10.0), "{go}");
    let lodash = affected(&s, &admin, "CVE-2021-23337").await;
    assert_eq!(lodash["devices_total"], 0, "{lodash}");
    assert_eq!(lodash["suppressed"][0]["justification"], "code_not_reachable", "{lodash}");
    let r = s.client.get("/api/v1/vulnerabilities/CVE-1999-0001/devices", &admin).await;
    assert_eq!(r.status, 404);

    // The alerts: one per vulnerability on the critical device, none on the others.
    let alerts = s.client.get(&format!("/api/v1/alerts?device={}", f.critical), &admin).await.json();
    let mut rules: Vec<(String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_owned(), a["severity"].as_str().unwrap().to_owned()))
        .collect();
    rules.sort();
    assert_eq!(rules, vec![("CVE-2021-44228".into(), "critical".into()), ("CVE-2023-3978".into(), "high".into())]);
    assert_eq!(s.client.get(&format!("/api/v1/alerts?device={}", f.high), &admin).await.json(), json!([]));

    // A device's findings; a device on a build without SBOM says so.
    let d = s.client.get(&format!("/api/v1/devices/{}/vulnerabilities", f.critical), &admin).await.json();
    assert_eq!((d["sbom"].as_bool(), d["findings"][0]["vulnerability"].as_str()), (Some(true), Some("CVE-2021-44228")));
    assert_eq!(d["findings"][0]["fixing_firmware"]["target"], "meter-3-2.0.0");
    let clean = s.client.get(&format!("/api/v1/devices/{}/vulnerabilities", f.new), &admin).await.json();
    assert_eq!((clean["sbom"].as_bool(), clean["findings"].as_array().map(Vec::len)), (Some(true), Some(0)));
    let unknown = s.client.get(&format!("/api/v1/devices/{}/vulnerabilities", f.uncovered), &admin).await.json();
    assert_eq!(unknown["sbom"], false, "{unknown}");

    // Fleet exposure: Log4Shell first; the camera is not covered by any SBOM.
    assert_eq!(s.client.get("/api/v1/vulnerabilities", &technician).await.status, 403);
    let fleet_view = s.client.get("/api/v1/vulnerabilities?top=10", &admin).await.json();
    assert_eq!(fleet_view["vulnerabilities"][0]["vulnerability"], "CVE-2021-44228", "{fleet_view}");
    assert_eq!(
        (fleet_view["devices_covered"].as_u64(), fleet_view["devices_without_sbom"].as_u64()),
        (Some(4), Some(1))
    );

    // Re-importing the same feed changes nothing and alerts nobody again.
    let again = post_raw(&s, "/api/v1/advisories", &admin, "application/zip", zip.clone()).await;
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.json()["alerts_raised"], 0);

    // A bundle with one broken file: refused whole, naming the file; nothing of it applied.
    let broken = zip_of(&[("ok/requests.json", requests_advisory()), ("bad/broken.json", json!({"id": 5}))]);
    let r = post_raw(&s, "/api/v1/advisories", &admin, "application/zip", broken).await;
    assert_eq!((r.status.as_u16(), r.error_code().as_str()), (422, "invalid_advisory"), "{}", r.text());
    assert!(r.text().contains("bad/broken.json") && r.text().contains("nothing was imported"), "{}", r.text());
    assert_eq!(s.client.get("/api/v1/vulnerabilities/CVE-2018-18074/devices", &admin).await.status, 404);
    let imports = s.client.get("/api/v1/advisories/imports", &admin).await.json();
    assert_eq!(imports.as_array().map(Vec::len), Some(2), "{imports}");
    let r = post_raw(&s, "/api/v1/advisories", &admin, "text/plain", b"hello".to_vec()).await;
    assert_eq!(r.status, 415);

    // Device changes reach the index: an update to fixed firmware, a decommission.
    let r =
        s.client.patch(&format!("/api/v1/devices/{}", f.critical), &admin, json!({"firmware_version": "2.0.0"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    expect_total(&s, &admin, "CVE-2021-44228", 2).await;
    let r =
        s.client.post(&format!("/api/v1/devices/{}/decommission", f.low), &admin, json!({"reason": "scrapped"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = expect_total(&s, &admin, "CVE-2021-44228", 1).await;
    assert_eq!(v["by_criticality"], json!({"high": 1}));

    // The CLI: a directory of advisories as one import, then the question.
    let feed = tmp.path().join("feed");
    std::fs::create_dir_all(feed.join("pypi")).unwrap();
    std::fs::write(feed.join("pypi/requests.json"), requests_advisory().to_string()).unwrap();
    std::fs::write(feed.join("README.txt"), "not an advisory").unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("PALISADE_URL", format!("https://localhost:{}", s.addr.port()))
            .env("PALISADE_CA", s.dir.join("pki/root-ca.pem"))
            .env("PALISADE_API_KEY", &admin)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let report = cli(&["vuln", "import", feed.to_str().unwrap()]);
    assert_eq!((report["files"].as_u64(), report["documents"].as_u64()), (Some(1), Some(1)), "{report}");
    let v = cli(&["vuln", "devices", "CVE-2018-18074"]);
    assert_eq!(v["devices_total"], 1, "nested component of 1.4.2, one device left on it: {v}");

    // A restart rebuilds the same index from the store.
    let before = (
        affected(&s, &admin, "CVE-2021-44228").await,
        affected(&s, &admin, "CVE-2021-23337").await,
        affected(&s, &admin, "CVE-2018-18074").await,
    );
    assert!(s.terminate().await.success());
    let s = Server::start_in(&dir, backend).await;
    let after = (
        affected(&s, &admin, "GHSA-jfh8-c2jp-5v3q").await,
        affected(&s, &admin, "CVE-2021-23337").await,
        affected(&s, &admin, "GHSA-x84v-xcm2-53pg").await,
    );
    assert_eq!(before, after);
    let audit = s.client.get("/api/v1/audit?action=advisories.import", &admin).await.json();
    assert!(audit.to_string().contains("advisories.import"), "{audit}");
}

#[tokio::test]
async fn sboms_advisories_and_exposure_on_sqlite() {
    exposure_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn sboms_advisories_and_exposure_on_postgres() {
    let Some(backend) = Backend::named("postgres").await else {
        eprintln!("PALISADE_TEST_POSTGRES_URL is not set; skipping");
        return;
    };
    exposure_end_to_end(backend).await;
}

/// A mass exposure opens at most 1,000 alerts per import and counts the rest; the fleet is
/// never walked device by device to count them.
#[tokio::test]
async fn a_mass_exposure_caps_its_alerts_and_counts_the_rest() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let mut csv = String::from(
        "serial,model,vendor,owner,owner_contact,purpose,criticality,group,region,tags,lat,lon,firmware_version\n",
    );
    for i in 0..1_005 {
        csv.push_str(&format!("mass-{i},{MODEL},acme,ops,,meter,critical,north,eu-west,,,,1.4.2\n"));
    }
    for i in 0..20 {
        csv.push_str(&format!("mass-low-{i},{MODEL},acme,ops,,meter,low,north,eu-west,,,,1.4.2\n"));
    }
    let r = post_raw(&s, "/api/v1/devices/import", &admin, "text/csv", csv.into_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let path = format!("/api/v1/firmware/{MODEL}/1.4.2/sbom");
    let r = put_raw(&s, &path, &admin, "application/json", sbom_old().to_string().into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let log4j = advisories().into_iter().take(1).collect::<Vec<_>>();
    let r = post_raw(&s, "/api/v1/advisories", &admin, "application/zip", zip_of(&log4j)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let report = r.json();
    assert_eq!(
        (report["alerts_raised"].as_u64(), report["alerts_not_raised"].as_u64()),
        (Some(1_000), Some(5)),
        "{report}"
    );
    let v = &report["vulnerabilities"][0];
    assert_eq!(
        (v["devices_newly_affected"].as_u64(), v["critical_devices_newly_affected"].as_u64()),
        (Some(1_025), Some(1_005))
    );
    assert_eq!(affected(&s, &admin, "CVE-2021-44228").await["by_criticality"], json!({"critical": 1_005, "low": 20}));
}
