//! Device identity over EST, driven with the real `openssl` and `curl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hyper::StatusCode;
use serde_json::json;

use crate::common::{Server, device};

/// Runs openssl in `dir`; panics with its stderr on failure.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn openssl_status(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A self-signed P-256 certificate `<name>.pem` with key `<name>.key`, valid a day, with the
/// given `-addext` extensions.
pub(crate) fn self_signed(dir: &Path, name: &str, subject: &str, extensions: &[&str]) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    args.extend(["-keyout", &key, "-subj", subject, "-days", "1", "-out", &pem]);
    for e in extensions {
        args.extend(["-addext", e]);
    }
    openssl(dir, &args);
}

/// A fresh P-256 key `<name>.key` and a certificate `<name>.pem` for `subject`, issued by the CA
/// `<ca>.pem`/`<ca>.key` with the extensions in the file `ext`.
pub(crate) fn issue_with_openssl(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) {
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let new = ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(dir, &[&new[..], &["-keyout", &key, "-subj", subject, "-out", &csr]].concat());
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let sign = ["x509", "-req", "-in", &csr, "-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial", "-days", "30"];
    openssl(dir, &[&sign[..], &["-extfile", ext, "-out", &pem]].concat());
}

/// A fresh P-256 key and a base64 DER CSR for it: `(key file, csr file)`.
pub(crate) fn p256_csr(dir: &Path, name: &str) -> (String, String) {
    let key = format!("{name}.key");
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    csr_for_key(dir, name, &key)
}

pub(crate) fn csr_for_key(dir: &Path, name: &str, key: &str) -> (String, String) {
    let der = format!("{name}.csr.der");
    openssl(
        dir,
        &["req", "-new", "-key", key, "-subj", "/CN=whatever-the-device-says", "-outform", "DER", "-out", &der],
    );
    let b64 = format!("{name}.csr.b64");
    openssl(dir, &["base64", "-in", &der, "-out", &b64]);
    (key.to_owned(), b64)
}

pub(crate) struct Est<'a> {
    pub(crate) s: &'a Server,
    pub(crate) dir: PathBuf,
}

impl Est<'_> {
    pub(crate) fn url(&self, op: &str) -> String {
        format!("https://127.0.0.1:{}/.well-known/est/{op}", self.s.device_addr.port())
    }

    /// curl; returns (HTTP status, body file).
    pub(crate) fn curl(&self, op: &str, extra: &[&str], out: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.current_dir(&self.dir).args(["-sS", "--tlsv1.3", "--cacert"]).arg(self.s.dir.join("pki/root-ca.pem"));
        cmd.args(extra).args(["-o", out, "-w", "%{http_code}"]).arg(self.url(op));
        let o = cmd.output().unwrap();
        let code = String::from_utf8_lossy(&o.stdout).parse().unwrap_or(0);
        let body = std::fs::read_to_string(self.dir.join(out)).unwrap_or_default();
        // No HTTP status: say what curl said.
        if code == 0 { (code, format!("{body}{}", String::from_utf8_lossy(&o.stderr))) } else { (code, body) }
    }

    pub(crate) fn enroll(&self, op: &str, csr_b64: &str, auth: &[&str], out: &str) -> (u16, String) {
        let mut args = vec!["-H", "Content-Type: application/pkcs10", "--data-binary"];
        let data = format!("@{csr_b64}");
        args.push(&data);
        args.extend_from_slice(auth);
        self.curl(op, &args, out)
    }

    /// Turns an EST certs-only response into PEM.
    pub(crate) fn certs_pem(&self, b64: &str, pem: &str) {
        let der = format!("{b64}.der");
        openssl(&self.dir, &["base64", "-d", "-in", b64, "-out", &der]);
        openssl(&self.dir, &["pkcs7", "-inform", "DER", "-in", &der, "-print_certs", "-out", pem]);
    }
}

pub(crate) async fn new_device(s: &Server, key: &str, serial: &str) -> String {
    let r = s.client.post("/api/v1/devices", key, device(serial, "high", "g")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn token(s: &Server, key: &str, id: &str) -> String {
    let r = s.client.post(&format!("/api/v1/devices/{id}/enrollment-tokens"), key, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_enrollment_renewal_revocation_and_crl_with_openssl() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let est = Est { s: &s, dir: tmp.path().to_owned() };
    let dir = tmp.path();

    // cacerts: the device CA and the root.
    let (code, _) = est.curl("cacerts", &[], "cacerts.b64");
    assert_eq!(code, 200);
    est.certs_pem("cacerts.b64", "chain.pem");
    std::fs::copy(s.dir.join("pki/root-ca.pem"), dir.join("root.pem")).unwrap();

    let id = new_device(&s, &admin, "EST-1").await;
    let tok = token(&s, &admin, &id).await;
    let (key, csr) = p256_csr(dir, "dev");
    let basic = format!("{id}:{tok}");
    let (code, body) = est.enroll("simpleenroll", &csr, &["-u", &basic], "cert.b64");
    assert_eq!(code, 200, "{body}");
    est.certs_pem("cert.b64", "cert.pem");
    let verify = openssl(dir, &["verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "cert.pem"]);
    assert!(verify.contains("cert.pem: OK"), "{verify}");
    let subject =
        openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-subject", "-ext", "subjectAltName,extendedKeyUsage"]);
    assert!(subject.contains(&format!("CN = {id}")) || subject.contains(&format!("CN={id}")), "{subject}");
    assert!(subject.contains(&format!("URI:urn:palisade:device:{id}")), "{subject}");
    assert!(!subject.contains("whatever-the-device-says"), "the subject is the server's, never the CSR's");
    assert!(subject.contains("TLS Web Client Authentication"), "{subject}");
    let d = s.client.get(&format!("/api/v1/devices/{id}"), &admin).await.json();
    assert_eq!(d["state"], "provisioned", "enrollment provisions the device");

    // The same token again: refused.
    let (_, csr2) = p256_csr(dir, "again");
    let (code, body) = est.enroll("simpleenroll", &csr2, &["-u", &basic], "again.out");
    assert_eq!(code, 403, "{body}");
    // A token for another device: refused.
    let other = new_device(&s, &admin, "EST-2").await;
    let other_tok = token(&s, &admin, &other).await;
    let (code, _) = est.enroll("simpleenroll", &csr2, &["-u", &format!("{id}:{other_tok}")], "x.out");
    assert_eq!(code, 403);
    // An expired token: refused.
    let third = new_device(&s, &admin, "EST-3").await;
    let expired = token(&s, &admin, &third).await;
    let url = format!("sqlite://{}", s.dir.join("palisade.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::Executor::execute(
        &mut db,
        format!("UPDATE enrollment_tokens SET expires_ms = 1 WHERE device_id = '{third}'").as_str(),
    )
    .await
    .unwrap();
    let (code, body) = est.enroll("simpleenroll", &csr2, &["-u", &format!("{third}:{expired}")], "expired.out");
    assert_eq!(code, 403, "{body}");
    let refused =
        s.client.get(&format!("/api/v1/audit?action=device.enroll_refused&target=device:{third}"), &admin).await.json();
    assert_eq!(refused["items"][0]["after"]["reason"], "token expired");
    // An RSA-1024 CSR: refused, with the reason.
    openssl(dir, &["genrsa", "-out", "weak.key", "1024"]);
    let (_, weak) = csr_for_key(dir, "weak", "weak.key");
    let (code, body) = est.enroll("simpleenroll", &weak, &["-u", &format!("{other}:{other_tok}")], "weak.out");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("1024 bits is too weak"), "{body}");
    // The first device's key offered for another device: refused, and a finding appears.
    let (_, reuse) = csr_for_key(dir, "reuse", &key);
    let (code, body) = est.enroll("simpleenroll", &reuse, &["-u", &format!("{other}:{other_tok}")], "reuse.out");
    assert_eq!(code, 409, "{body}");
    let findings = s.client.get("/api/v1/findings", &admin).await.json();
    assert!(
        findings.as_array().unwrap().iter().any(|f| f["kind"] == "shared_key" && f["device_id"] == other.as_str()),
        "{findings}"
    );
    // The token was not spent by the refused attempts: the device enrolls with a key of its own.
    let (_, fresh) = p256_csr(dir, "other");
    assert_eq!(est.enroll("simpleenroll", &fresh, &["-u", &format!("{other}:{other_tok}")], "other.b64").0, 200);

    // Renewal with the current certificate.
    let (new_key, renew_csr) = p256_csr(dir, "renew");
    let (code, body) = est.enroll("simplereenroll", &renew_csr, &["--cert", "cert.pem", "--key", &key], "renewed.b64");
    assert_eq!(code, 200, "{body}");
    est.certs_pem("renewed.b64", "renewed.pem");
    assert!(openssl(dir, &["verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "renewed.pem"]).contains("OK"));

    // Revoke the renewed certificate: the CRL lists it, openssl rejects it, renewal with it fails.
    let certs = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json();
    assert_eq!(certs.as_array().unwrap().len(), 2);
    let serial = certs[1]["serial"].as_str().unwrap().to_owned();
    let r = s
        .client
        .post(&format!("/api/v1/certificates/{serial}/revoke"), &admin, json!({"reason": "key_compromise"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let crl_url = format!("https://127.0.0.1:{}/pki/crl", s.device_addr.port());
    let out = Command::new("curl")
        .current_dir(dir)
        .args(["-sS", "--fail", "--cacert"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .args(["-o", "crl.pem", &crl_url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let crl_text = openssl(dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(crl_text.to_lowercase().contains(&serial), "{crl_text}");
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");
    let (ok, why) = openssl_status(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "renewed.pem",
        ],
    );
    assert!(!ok && why.contains("revoked"), "{why}");
    let (ok, why) = openssl_status(
        dir,
        &["verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "root.pem", "-untrusted", "chain.pem", "cert.pem"],
    );
    assert!(ok, "the first certificate is still good: {why}");
    let (_, csr3) = p256_csr(dir, "third");
    let (code, _) = est.enroll("simplereenroll", &csr3, &["--cert", "renewed.pem", "--key", &new_key], "third.out");
    assert_eq!(code, 403, "a revoked certificate cannot renew");
    // The CRL in DER from the console listener too.
    let out = Command::new("curl")
        .current_dir(dir)
        .args(["-sS", "--fail", "-H", "Accept: application/pkix-crl", "--cacert"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .args(["-o", "crl.der", &format!("https://127.0.0.1:{}/pki/crl", s.addr.port())])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        openssl(dir, &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]).to_lowercase().contains(&serial)
    );

    // Decommission revokes everything the device holds and queues a wipe; it cannot enroll again.
    let r =
        s.client.post(&format!("/api/v1/devices/{id}/decommission"), &admin, json!({"reason": "end of life"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let certs = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json();
    assert!(certs.as_array().unwrap().iter().all(|c| c["status"] == "revoked"), "{certs}");
    let r = s.client.post(&format!("/api/v1/devices/{id}/enrollment-tokens"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn zero_touch_enrollment_with_a_factory_certificate() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let est = Est { s: &s, dir: dir.to_owned() };
    std::fs::write(dir.join("ext.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    let factory_ca = |name: &str| {
        self_signed(
            dir,
            name,
            &format!("/CN={name}"),
            &["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"],
        );
    };
    let factory_cert = |ca: &str, name: &str, serial: &str| {
        issue_with_openssl(dir, ca, name, &format!("/CN=meter/serialNumber={serial}"), "ext.cnf");
    };
    factory_ca("acme-factory-ca");
    factory_ca("rogue-ca");
    factory_cert("acme-factory-ca", "good", "FAC-001");
    factory_cert("acme-factory-ca", "unlisted", "FAC-999");
    factory_cert("rogue-ca", "rogue", "FAC-001");

    let ca_pem = std::fs::read_to_string(dir.join("acme-factory-ca.pem")).unwrap();
    let r = s
        .client
        .post("/api/v1/manufacturers", &admin, json!({"vendor": "acme", "model": "meter-3", "ca_pem": ca_pem}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let serials = "vendor,model,serial\nacme,meter-3,FAC-001\n";
    let r = s
        .client
        .send(
            hyper::Method::POST,
            "/api/v1/manufacturers/serials",
            Some(&admin),
            Some(("text/csv", serials.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = new_device(&s, &admin, "FAC-001").await;
    new_device(&s, &admin, "FAC-999").await;

    let (_, csr) = p256_csr(dir, "operational");
    let (code, body) = est.enroll("simpleenroll", &csr, &["--cert", "good.pem", "--key", "good.key"], "zt.b64");
    assert_eq!(code, 200, "zero-touch: {body}");
    est.certs_pem("zt.b64", "zt.pem");
    assert!(
        openssl(dir, &["x509", "-in", "zt.pem", "-noout", "-ext", "subjectAltName"])
            .contains(&format!("urn:palisade:device:{id}"))
    );
    let certs = s.client.get(&format!("/api/v1/devices/{id}/certificates"), &admin).await.json();
    assert_eq!(certs[0]["method"], "factory");

    let (_, csr2) = p256_csr(dir, "op2");
    let (code, body) =
        est.enroll("simpleenroll", &csr2, &["--cert", "unlisted.pem", "--key", "unlisted.key"], "unlisted.out");
    assert_eq!(code, 403, "an unlisted serial: {body}");
    assert!(body.contains("not allowlisted"), "{body}");
    let (code, _) = est.enroll("simpleenroll", &csr2, &["--cert", "rogue.pem", "--key", "rogue.key"], "rogue.out");
    assert_ne!(code, 200, "a factory certificate from an unregistered CA never enrolls");
}

#[tokio::test]
async fn est_refuses_bad_input_with_reasons() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let est = Est { s: &s, dir: dir.to_owned() };
    std::fs::write(dir.join("junk.b64"), "bm90IGEgQ1NS\n").unwrap();
    std::fs::write(dir.join("notb64"), "%%%% not base64 %%%%").unwrap();
    std::fs::write(dir.join("big"), "A".repeat(200_000)).unwrap();
    let basic = ["-u", "0000000000000000000z:whatever"];
    let cases: &[(&[&str], u16, &str)] = &[
        (
            &["-H", "Content-Type: text/plain", "--data-binary", "@junk.b64", "-u", "0000000000000000000z:x"],
            415,
            "application/pkcs10",
        ),
        (
            &["-H", "Content-Type: application/pkcs10", "--data-binary", "@notb64", basic[0], basic[1]],
            400,
            "not base64",
        ),
        (
            &["-H", "Content-Type: application/pkcs10", "--data-binary", "@junk.b64", basic[0], basic[1]],
            400,
            "CSR refused",
        ),
        (&["-H", "Content-Type: application/pkcs10", "--data-binary", "@big", basic[0], basic[1]], 413, "exceeds"),
        (&["-H", "Content-Type: application/pkcs10", "--data-binary", "@junk.b64"], 401, "authenticate"),
        (
            &["-H", "Content-Type: application/pkcs10", "--data-binary", "@junk.b64", "-u", "not-a-device:x"],
            401,
            "device id",
        ),
    ];
    for (i, (args, status, needle)) in cases.iter().enumerate() {
        let (code, body) = est.curl("simpleenroll", args, &format!("out{i}"));
        assert_eq!(code, *status, "case {i}: {body}");
        assert!(body.contains(needle), "case {i}: {body:?} lacks {needle:?}");
    }
    let (code, _) =
        est.curl("simplereenroll", &["-H", "Content-Type: application/pkcs10", "--data-binary", "@junk.b64"], "re");
    assert_eq!(code, 401);
    let (code, body) = est.curl("csrattrs", &[], "attrs");
    assert_eq!(code, 200);
    assert!(!body.trim().is_empty());
    assert!(!s.log().contains("panicked"));
}

#[tokio::test]
async fn the_root_exports_for_offline_storage_and_imports_into_a_new_installation() {
    let mut s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("root-backup.pem");
    let o = s.cli(&["ca", "export-root", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(exported.contains("BEGIN CERTIFICATE") && exported.contains("BEGIN PRIVATE KEY"));
    assert!(!s.cli(&["ca", "export-root", "--out", out.to_str().unwrap()]).status.success(), "never overwrites");
    let root = std::fs::read_to_string(s.dir.join("pki/root-ca.pem")).unwrap();
    assert!(s.terminate().await.success());

    let fresh = tmp.path().join("new-install");
    let o = Command::new(crate::common::BIN)
        .args(["ca", "import-root", "--data-dir", fresh.to_str().unwrap(), "--file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s2 = Server::start_in(&fresh, crate::common::Backend::Sqlite).await;
    assert_eq!(
        std::fs::read_to_string(s2.dir.join("pki/root-ca.pem")).unwrap(),
        root,
        "the new installation trusts the same root"
    );
    let o = Command::new(crate::common::BIN)
        .args(["ca", "import-root", "--data-dir", fresh.to_str().unwrap(), "--file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success(), "a second root is refused");
}
