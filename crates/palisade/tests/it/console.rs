//! The web console end to end, in real headless Chromium: sign-in with TOTP, a simulated attack
//! arriving live, acknowledging it, quarantining the device, and seeing both in the API and the
//! audit log; what a technician can see and reach; the Content-Security-Policy and that the
//! browser talks to no other host; bad form input answered next to its field, nothing saved.

use std::time::Duration;

use hyper::{Method, StatusCode};
use palisade_core::totp;
use serde_json::{Value, json};

use crate::browser::{Browser, screenshot_dir};
use crate::common::{Resp, Server};

const STRONG: &str = "violet tractor harbour minute";
const LIVE: Duration = Duration::from_secs(10);

/// The policy every console page must carry.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// RFC 4648 base32 (no padding), as the enrolment page shows the TOTP secret.
pub(crate) fn base32_decode(s: &str) -> Vec<u8> {
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in s.trim().trim_end_matches('=').chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c.to_ascii_uppercase()).expect("base32") as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

pub(crate) fn totp_code(secret: &[u8], step_offset: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!("{:06}", totp::code_at(secret, totp::step_of(now) + step_offset))
}

/// The browser on one server: every page it opens is checked to have fetched nothing from any
/// other host.
struct Ui<'a> {
    b: &'a Browser,
    s: &'a Server,
}

impl Ui<'_> {
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.s.addr)
    }

    async fn open(&self, path: &str) {
        self.b.goto(&self.url(path)).await;
        self.own_host_only().await;
    }

    /// Every request of the current page went to this server.
    async fn own_host_only(&self) {
        let hosts = self.b.request_hosts().await;
        let own = self.s.addr.to_string();
        assert!(!hosts.is_empty(), "no request recorded on {}", self.b.current_url().await);
        assert!(hosts.iter().all(|h| *h == own), "requests to other hosts than {own}: {hosts:?}");
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.b.find(css).await;
        e.clear().await;
        e.send_keys(text).await;
    }

    /// Signs in through the form (the code field left empty when `code` is `None`).
    async fn sign_in(&self, username: &str, password: &str, code: Option<&str>) {
        self.open("/ui/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        if let Some(c) = code {
            self.fill("#code", c).await;
        }
        self.b.find("#sign-in").await.click().await;
    }

    async fn shot(&self, name: &str) {
        let path = screenshot_dir().join(name);
        self.b.screenshot(&path).await;
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"), "{}", path.display());
    }

    async fn wait_path(&self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + LIVE;
        loop {
            let url = self.b.current_url().await;
            if url.starts_with(&self.url(prefix)) {
                return url;
            }
            assert!(tokio::time::Instant::now() < deadline, "never reached {prefix}; at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A user of `role` with a one-time password, through the API.
async fn user(s: &Server, admin: &str, username: &str, role: &str) -> (String, String) {
    let r = s.client.post("/api/v1/users", admin, json!({"username": username, "roles": [{"role": role}]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    (v["user"]["id"].as_str().or(v["id"].as_str()).unwrap().to_owned(), v["initial_password"].as_str().unwrap().into())
}

/// The first sign-in: the one-time password, a refused weak password, then a good one.
async fn first_sign_in(ui: &Ui<'_>, username: &str, initial: &str) {
    ui.sign_in(username, initial, None).await;
    ui.wait_path("/ui/account").await;
    ui.b.find("#must-change").await;
    // A weak password is refused next to its field, and nothing changes.
    ui.fill("#current_password", initial).await;
    ui.fill("#new_password", "password12345").await;
    ui.b.find("#password-submit").await.click().await;
    let err = ui.b.wait_for("p.field-error[data-field=new_password]", LIVE).await.text().await;
    assert!(err.contains("guess"), "{err}");
    // The one-time password still works: the refused change saved nothing.
    ui.fill("#current_password", initial).await;
    ui.fill("#new_password", STRONG).await;
    ui.b.find("#password-submit").await.click().await;
}

#[tokio::test]
async fn an_analyst_signs_in_with_totp_sees_an_attack_live_acknowledges_it_and_quarantines_the_device() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let (ana_id, initial) = user(&s, &admin, "ana", "security-analyst").await;
    let profile = json!({"groups": ["g"], "rules": [{
        "id": "exfil", "kind": "baseline", "metric": "tx_bps", "warmup": 8, "severity": "critical", "response": "alert"
    }]});
    let r = s.client.put("/api/v1/profiles/meters", &admin, profile).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tmp = tempfile::tempdir().unwrap();
    let (device, cert, key) = crate::mqtt::enrolled(&s, &admin, tmp.path(), "console-meter").await;

    let b = Browser::start().await;
    let ui = Ui { b: &b, s: &s };
    // Not signed in: the console sends you to the sign-in page, and back after.
    ui.open("/ui/").await;
    assert!(ui.wait_path("/ui/login").await.ends_with("?next=/ui/"));

    // First sign-in: change the one-time password, then enrol TOTP from the QR page.
    first_sign_in(&ui, "ana", &initial).await;
    ui.wait_path("/ui/account").await;
    b.find("#must-enrol").await;
    b.find("#mfa-start").await.click().await;
    let secret = base32_decode(&b.find("#totp-secret").await.text().await);
    assert!(b.find("#totp-qr svg").await.is_displayed().await, "the QR code is shown");
    ui.own_host_only().await;
    ui.shot("mfa-enrolment.png").await;
    ui.fill("#mfa-code", &totp_code(&secret, 0)).await;
    b.find("#mfa-confirm-submit").await.click().await;
    assert_eq!(b.wait_for("#recovery-codes", LIVE).await.find_all("li").await.len(), 10);
    b.find("#sign-out").await.click().await;
    ui.wait_path("/ui/login").await;

    // Signing in now needs the code: without it the field says so; with it, the overview.
    ui.sign_in("ana", STRONG, None).await;
    let err = b.wait_for("p.field-error[data-field=code]", LIVE).await.text().await;
    assert!(err.contains("two-factor"), "{err}");
    ui.sign_in("ana", STRONG, Some(&totp_code(&secret, 1))).await;
    ui.wait_path("/ui/").await;
    b.find("#overview").await;
    ui.own_host_only().await;
    b.wait_for_text("#live-status", "live", LIVE).await;

    // The attack: a quiet meter, then 200 KB/s; the alert appears on the open overview.
    let (client, mut events) = crate::detect::device_session(&s, tmp.path(), &device, &cert, &key);
    let topic = format!("devices/{device}/telemetry");
    let mut tx = 1_000_000u64;
    for i in 0..12u64 {
        tx += 380 + (i * 37) % 50;
        let report = crate::detect::report(i * 10, tx);
        assert!(crate::detect::publish_acked(&client, &mut events, &topic, report).await, "report {i}");
    }
    tx += 2_000_000;
    assert!(crate::detect::publish_acked(&client, &mut events, &topic, crate::detect::report(120, tx)).await);
    let row = b.wait_for("#live-alerts tr[data-alert-id]", LIVE).await;
    let alert_id = row.attr("data-alert-id").await.unwrap();
    let alerts = s.client.get(&format!("/api/v1/alerts?device={device}"), &admin).await.json();
    assert_eq!(alerts[0]["id"].as_str(), Some(alert_id.as_str()), "{alerts}");
    let text = row.text().await;
    assert!(text.contains("critical") && text.contains(" UTC"), "{text}");
    // Reloaded, the overview counts it and ranks the device first.
    ui.open("/ui/").await;
    b.find(&format!("#top-risky tr[data-device-id='{device}']")).await;
    assert!(b.find("#alerts-by-severity").await.text().await.contains("critical 1"));
    ui.shot("overview.png").await;
    let row = b.find(&format!("#live-alerts tr[data-alert-id='{alert_id}']")).await;

    // Acknowledge it from its page.
    row.find("a").await.click().await;
    ui.wait_path(&format!("/ui/alerts/{alert_id}")).await;
    ui.own_host_only().await;
    b.wait_for_text("#alert-status", "open", LIVE).await;
    b.find("#ack-submit").await.click().await;
    b.wait_for_text("#alert-status", "acknowledged", LIVE).await;
    let a = s.client.get(&format!("/api/v1/alerts/{alert_id}"), &admin).await.json();
    assert_eq!(a["alert"]["status"], "acknowledged", "{a}");
    assert_eq!(a["alert"]["acknowledged_by"], format!("user:{ana_id}"), "{a}");
    ui.open("/ui/alerts?status=all").await;
    b.find(&format!("table#alerts tr[data-alert-id='{alert_id}']")).await;
    ui.shot("alerts.png").await;

    // Quarantine the device from its page, behind a confirmation.
    ui.open(&format!("/ui/devices/{device}")).await;
    b.wait_for_text("#device-state", "provisioned", LIVE).await;
    for plot in ["svg#plot-data", "svg#plot-connections", "svg#plot-cpu", "svg#map"] {
        b.find(plot).await;
    }
    ui.shot("device.png").await;
    b.execute("document.getElementById('plots').scrollIntoView(); return true;", vec![]).await;
    ui.shot("device-plots.png").await;
    b.execute("window.scrollTo(0, 0); return true;", vec![]).await;
    assert!(!b.find("#quarantine-confirm").await.is_displayed().await, "the action waits for confirmation");
    b.find("details:has(#quarantine) > summary").await.click().await;
    ui.fill("#quarantine [name=reason]", "exfiltration spike, investigating").await;
    b.find("#quarantine-confirm").await.click().await;
    b.wait_for_text("#device-state", "quarantined", LIVE).await;

    // The API and the audit log agree, with ana as the actor of both changes.
    let d = s.client.get(&format!("/api/v1/devices/{device}"), &admin).await.json();
    assert_eq!(d["state"], "quarantined", "{d}");
    let audit = s.client.get("/api/v1/audit?limit=1000", &admin).await.json();
    let by_ana: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"].as_str().is_some_and(|a| a.contains(&ana_id)))
        .collect();
    let quarantine = by_ana.iter().find(|e| {
        e["target"] == format!("device:{device}") && e.to_string().contains("quarantined") && e["source_ip"].is_string()
    });
    assert!(quarantine.is_some(), "no quarantine by ana in the audit log: {by_ana:?}");
    assert!(
        by_ana.iter().any(|e| e["action"].as_str().is_some_and(|a| a.starts_with("alert.")) && e.to_string().contains(&alert_id)),
        "no acknowledgement by ana in the audit log: {by_ana:?}"
    );
    // The audit viewer shows it, and the chain verifies.
    ui.open(&format!("/ui/audit?target=device:{device}")).await;
    b.wait_for_text("#chain-status", "verified", LIVE).await;
    assert!(b.find("table#audit").await.text().await.contains("quarantined"));

    // A bad security profile from the editor: the message is next to the field, nothing saved.
    ui.open("/ui/profiles/new").await;
    ui.fill("#profile-name", "broken").await;
    let bad = json!({"groups": ["g"], "rules": [{"id": "r", "kind": "destinations", "op": "not_in", "set": ["nope"]}]});
    ui.fill("#profile-json", &serde_json::to_string_pretty(&bad).unwrap()).await;
    b.find("#profile-save").await.click().await;
    let err = b.wait_for("p.field-error[data-field=profile]", LIVE).await.text().await;
    assert!(err.contains("rules[0]"), "{err}");
    assert!(b.find("#profile-json").await.prop("value").await.as_str().unwrap().contains("nope"), "input kept");
    let profiles = s.client.get("/api/v1/profiles", &admin).await.json();
    assert!(!profiles.to_string().contains("broken"), "a refused profile was saved: {profiles}");
    b.quit().await;
}

#[tokio::test]
async fn a_technician_neither_sees_nor_reaches_pki_firmware_network_or_user_pages() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let (_, initial) = user(&s, &admin, "tom", "technician").await;
    let b = Browser::start().await;
    let ui = Ui { b: &b, s: &s };
    first_sign_in(&ui, "tom", &initial).await;
    ui.wait_path("/ui/").await;
    b.find("#overview").await;
    let mut pages = Vec::new();
    for a in b.find_all("#nav a").await {
        pages.push(a.attr("data-page").await.unwrap());
    }
    pages.sort();
    assert_eq!(pages, ["devices", "keys", "overview"], "the technician's navigation");
    for hidden in ["pki", "firmware", "network", "users", "audit", "alerts", "profiles", "vulnerabilities"] {
        assert!(b.try_find(&format!("a[href='/ui/{hidden}']")).await.is_none(), "a link to {hidden}");
        ui.open(&format!("/ui/{hidden}")).await;
        let text = b.find("#error-page").await.text().await;
        assert!(text.contains("403"), "{hidden}: {text}");
    }
    ui.shot("technician-refused.png").await;
    // No lifecycle controls on a device page either.
    let id = crate::identity::new_device(&s, &admin, "tech-visible").await;
    ui.open(&format!("/ui/devices/{id}")).await;
    b.find("#device-state").await;
    assert!(b.try_find("#quarantine").await.is_none(), "a technician was offered quarantine");
    b.quit().await;
}

#[tokio::test]
async fn an_operator_finds_which_devices_a_cve_touches_and_the_firmware_that_fixes_them() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tmp = tempfile::tempdir().unwrap();
    let fleet = crate::vulns::seeded(&s, &admin, tmp.path()).await;
    let (_, initial) = user(&s, &admin, "olga", "operator").await;
    let b = Browser::start().await;
    let ui = Ui { b: &b, s: &s };
    first_sign_in(&ui, "olga", &initial).await;
    ui.wait_path("/ui/").await;
    b.find("#nav a[data-page=vulnerabilities]").await.click().await;
    ui.wait_path("/ui/vulnerabilities").await;
    ui.own_host_only().await;
    let first = b.find("#ranked tbody tr").await;
    assert_eq!(first.attr("data-vulnerability").await.as_deref(), Some("CVE-2021-44228"));
    assert_eq!(b.find("#devices-covered").await.text().await, "4");
    assert_eq!(b.find("#devices-uncovered").await.text().await, "1");
    assert_eq!(b.find_all("#imports tbody tr").await.len(), 1);
    assert_eq!(b.find("#imports tbody tr td:last-child").await.text().await, "2", "alerts raised by the import");
    ui.shot("vulnerabilities.png").await;

    // Looked up by its GHSA alias: the CVE's page, counts, the firmware that fixes it.
    ui.fill("#vuln-id", "GHSA-jfh8-c2jp-5v3q").await;
    b.find("#vuln-search-submit").await.click().await;
    ui.wait_path("/ui/vulnerabilities/GHSA").await;
    assert!(b.find("#vulnerability-id").await.text().await.starts_with("CVE-2021-44228"));
    assert_eq!(b.find("#devices-total").await.text().await, "3");
    let critical = b.find("#by-criticality tr[data-criticality=critical] td.num").await.text().await;
    assert_eq!(critical, "1");
    assert_eq!(b.find("#builds .fixing-firmware").await.text().await, "meter-3-2.0.0");
    let devices = b.find_all("#affected-devices a").await;
    assert_eq!(devices.len(), 3);
    ui.shot("vulnerability.png").await;
    b.find(&format!("#affected-devices a[href='/ui/devices/{}']", fleet.critical)).await.click().await;
    ui.wait_path(&format!("/ui/devices/{}", fleet.critical)).await;
    b.find("#device-state").await;
    // The device page lists what its firmware carries, with links back.
    let rows = b.find_all("#device-vulnerabilities tr[data-vulnerability]").await;
    let mut ids = Vec::new();
    for r in &rows {
        ids.push(r.attr("data-vulnerability").await.unwrap());
    }
    assert_eq!(ids, ["CVE-2021-44228", "CVE-2023-3978"], "highest CVSS first");
    b.execute("document.getElementById('device-vulnerabilities').scrollIntoView()", vec![]).await;
    ui.shot("device-vulnerabilities.png").await;

    ui.open("/ui/vulnerabilities/CVE-1999-0001").await;
    assert!(b.find("#error-page").await.text().await.contains("404"));
    b.quit().await;
}

/// Signs in through the API: (cookie header, CSRF token).
pub(crate) async fn api_session(s: &Server, username: &str, password: &str) -> (String, String) {
    let body = json!({"username": username, "password": password}).to_string().into_bytes();
    let r = s.client.send(Method::POST, "/api/v1/auth/login", None, Some(("application/json", body))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cookie = r.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    (cookie, r.json()["csrf_token"].as_str().unwrap().to_owned())
}

async fn form(s: &Server, path: &str, cookie: &str, body: &str) -> Resp {
    let headers = [("cookie", cookie.to_owned())];
    s.client
        .send_with(Method::POST, path, &headers, Some(("application/x-www-form-urlencoded", body.as_bytes().to_vec())))
        .await
}

#[tokio::test]
async fn console_pages_carry_a_strict_csp_and_refuse_forged_or_unpermitted_forms() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    for path in ["/ui/login", "/ui/static/console.css", "/ui/static/console.js"] {
        let r = s.client.send(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers["content-security-policy"], CSP, "{path}");
        assert_eq!(r.headers["x-frame-options"], "DENY", "{path}");
    }
    let r = s.client.send(Method::GET, "/ui/devices", None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/ui/login?next=/ui/devices");

    // A technician's session: its own pages work; a form it may not post is refused.
    let (_, initial) = user(&s, &admin, "tina", "technician").await;
    let (cookie, csrf) = api_session(&s, "tina", &initial).await;
    let headers = [("cookie", cookie.clone()), ("x-csrf-token", csrf.clone())];
    let body = json!({"current_password": initial, "new_password": STRONG}).to_string().into_bytes();
    let r = s.client.send_with(Method::POST, "/api/v1/auth/password", &headers, Some(("application/json", body))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = s.client.send_with(Method::GET, "/ui/devices", &[("cookie", cookie.clone())], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-security-policy"], CSP);
    let r = form(&s, "/ui/users", &cookie, &format!("csrf={csrf}&username=sneaky&role=admin")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());

    // A form without its CSRF token is refused before any handler runs.
    let id = crate::identity::new_device(&s, &admin, "csrf-target").await;
    let (a_cookie, _) = {
        let (_, pw) = user(&s, &admin, "olga", "operator").await;
        let (c, t) = api_session(&s, "olga", &pw).await;
        let h = [("cookie", c.clone()), ("x-csrf-token", t.clone())];
        let body = json!({"current_password": pw, "new_password": STRONG}).to_string().into_bytes();
        let r = s.client.send_with(Method::POST, "/api/v1/auth/password", &h, Some(("application/json", body))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
        (c, t)
    };
    let r = form(&s, &format!("/ui/devices/{id}/quarantine"), &a_cookie, "reason=forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("CSRF"), "{}", r.text());
    let r = form(&s, &format!("/ui/devices/{id}/quarantine"), &a_cookie, "csrf=wrong&reason=forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let d = s.client.get(&format!("/api/v1/devices/{id}"), &admin).await.json();
    assert_ne!(d["state"], "quarantined", "a forged form changed the device");
    let users = s.client.get("/api/v1/users", &admin).await.json();
    assert!(!users.to_string().contains("sneaky"), "a technician's form created a user: {users}");
}
