//! The REST API as an operator's script uses it: inventory, lifecycle, audit, RBAC, CSV, and
//! what bad input gets back.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Server, device};

#[tokio::test]
async fn fresh_start_serves_https_health_and_refuses_anonymous_api_calls() {
    let s = Server::start().await;
    // Real curl, trusting only DATA_DIR/pki/root-ca.pem, as the contract says clients do.
    // The exact address of the listening line (the certificate names 127.0.0.1 as well).
    let url = format!("https://{}/healthz", s.addr);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--tlsv1.3", "--cacert"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"status":"ok"}"#);
    // TLS 1.2 is refused.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--tls-max", "1.2", "--cacert"])
        .arg(s.dir.join("pki/root-ca.pem"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(!out.status.success(), "TLS 1.2 must not connect");

    let r = s.client.send(Method::GET, "/api/v1/devices", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "unauthenticated");
    let r = s.client.get("/api/v1/devices", "pal_0123456789abcdef_notakey").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(s.client.send(Method::GET, open, None, None).await.status, StatusCode::OK, "{open}");
    }
    // The data directory is private.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&s.dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(s.dir.join("master.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(s.dir.join("palisade.db")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn an_admin_manages_devices_and_every_change_is_audited() {
    let s = Server::start().await;
    let key = s.api_key("admin");
    let c = &s.client;
    let mut ids = Vec::new();
    for (n, (crit, group)) in
        [("high", "north"), ("high", "south"), ("low", "north"), ("high", "north")].iter().enumerate()
    {
        let r = c.post("/api/v1/devices", &key, device(&format!("SN-{n}"), crit, group)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let d = r.json();
        assert_eq!(d["state"], "registered");
        assert_eq!(d["owner_contact"], format!("SN-{n}-owner@example.com"));
        ids.push(d["id"].as_str().unwrap().to_owned());
    }
    // Same vendor, model and serial: 409.
    let r = c.post("/api/v1/devices", &key, device("SN-0", "low", "x")).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::CONFLICT, "conflict"));

    let r = c.get("/api/v1/devices?criticality=high&group=north", &key).await.json();
    let got: Vec<&str> = r["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[0].as_str(), ids[3].as_str()]);
    // Cursor pagination walks everything once.
    let p1 = c.get("/api/v1/devices?limit=3", &key).await.json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = c.get(&format!("/api/v1/devices?limit=3&cursor={cursor}"), &key).await.json();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2.get("next_cursor").is_none());

    let r =
        c.patch(&format!("/api/v1/devices/{}", ids[1]), &key, json!({"owner": null, "criticality": "critical"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["owner"], Value::Null);
    assert_eq!(r.json()["criticality"], "critical");

    let lc = format!("/api/v1/devices/{}/lifecycle", ids[1]);
    let r = c.post(&lc, &key, json!({"to": "active", "reason": "skip provisioning"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "illegal_transition");
    assert_eq!(r.json()["error"]["allowed"], json!(["provisioned", "decommissioned"]));
    let r = c.post(&lc, &key, json!({"to": "provisioned", "reason": "factory test passed"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    c.post(&lc, &key, json!({"to": "active"})).await;
    let r = c.send(Method::POST, &format!("/api/v1/devices/{}/quarantine", ids[1]), Some(&key), None).await;
    assert_eq!(r.json()["state"], "quarantined", "{}", r.text());
    let r = c.post(&format!("/api/v1/devices/{}/release", ids[1]), &key, json!({"reason": "false alarm"})).await;
    assert_eq!(r.json()["state"], "active");

    let audit = c.get(&format!("/api/v1/audit?target=device:{}", ids[1]), &key).await.json();
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        vec![
            "device.lifecycle",
            "device.lifecycle",
            "device.lifecycle",
            "device.lifecycle",
            "device.update",
            "device.create"
        ]
    );
    let latest = &audit["items"][0];
    assert!(latest["actor"].as_str().unwrap().starts_with("apikey:"));
    assert_eq!(latest["source_ip"], "127.0.0.1");
    assert_eq!(latest["before"], json!({"state": "quarantined"}));
    assert_eq!(latest["after"], json!({"state": "active", "reason": "false alarm"}));
    let update = &audit["items"][4];
    assert_eq!(update["before"], json!({"owner": "metering", "criticality": "high"}));
    assert_eq!(update["after"], json!({"owner": null, "criticality": "critical"}));
    // Personal data never enters the audit trail.
    let all = c.get("/api/v1/audit?limit=1000", &key).await.text();
    assert!(!all.contains("owner@example.com") && !all.contains("41.8781"), "{all}");
    let v = c.get("/api/v1/audit/verify", &key).await.json();
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn roles_limit_what_a_key_can_do_and_see() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let tech = s.api_key("technician");
    let auditor = s.api_key("auditor");
    let c = &s.client;
    let id =
        c.post("/api/v1/devices", &admin, device("R-1", "high", "g")).await.json()["id"].as_str().unwrap().to_owned();
    let d = c.get(&format!("/api/v1/devices/{id}"), &tech).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(
        d.json().get("owner_contact").is_none() && d.json().get("location").is_none(),
        "technicians see no personal data"
    );
    let r = c.post("/api/v1/devices", &tech, device("R-2", "low", "g")).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = c.send(Method::POST, &format!("/api/v1/devices/{id}/decommission"), Some(&tech), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/api/v1/audit", &tech).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/api/v1/audit", &auditor).await.status, StatusCode::OK);
    assert_eq!(
        c.patch(&format!("/api/v1/devices/{id}"), &auditor, json!({"owner": "x"})).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn bad_input_gets_a_named_4xx_never_a_500() {
    let s = Server::start().await;
    let key = s.api_key("admin");
    let c = &s.client;
    let id = c.post("/api/v1/devices", &key, device("B-1", "low", "g")).await.json()["id"].as_str().unwrap().to_owned();
    let json_body = |b: &str| Some(("application/json", b.as_bytes().to_vec()));
    // method, path, body, expected status, expected code, a word the message must contain
    type Case<'a> = (Method, String, Option<(&'a str, Vec<u8>)>, StatusCode, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body("{\"serial\": "),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "EOF",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body("[1,2]"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "expected",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body(r#"{"serial":"1","model":"m","vendor":"v","colour":"red"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body(r#"{"serial":"1","model":"m","vendor":"v","criticality":"extreme"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "unknown variant `extreme`",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body(r#"{"serial":"","model":"m","vendor":"v"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "serial",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body(r#"{"serial":"1","model":"m","vendor":"v","location":{"lat":99,"lon":0}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "location.lat",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json_body(r#"{"serial":"1","model":"m","vendor":"v","tags":["no spaces"]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "tags",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            Some(("text/plain", b"{}".to_vec())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            Some(("application/json", vec![b' '; 2 << 20])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "exceeds",
        ),
        (
            Method::GET,
            "/api/v1/devices/not-a-device".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "not a device id",
        ),
        (
            Method::GET,
            "/api/v1/devices/0000000000000000000z".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "not found",
        ),
        (Method::GET, "/api/v1/devices?state=hacked".into(), None, StatusCode::BAD_REQUEST, "invalid_query", "hacked"),
        (Method::GET, "/api/v1/devices?colour=red".into(), None, StatusCode::BAD_REQUEST, "invalid_query", "colour"),
        (Method::GET, "/api/v1/devices?limit=0".into(), None, StatusCode::BAD_REQUEST, "invalid_query", "limit"),
        (
            Method::GET,
            "/api/v1/devices?cursor=%27%20OR%201%3D1".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "not a device id",
        ),
        (
            Method::GET,
            "/api/v1/audit?from=yesterday".into(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "from",
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{id}/lifecycle"),
            json_body(r#"{"to":"pwned"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "unknown variant `pwned`",
        ),
        (
            Method::PATCH,
            format!("/api/v1/devices/{id}"),
            json_body(r#"{"criticality":7}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "line 1 column 16",
        ),
        (
            Method::DELETE,
            "/api/v1/devices".into(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method",
        ),
        (Method::GET, "/api/v1/nothing-here".into(), None, StatusCode::NOT_FOUND, "not_found", "route"),
    ];
    for (method, path, body, status, code, needle) in cases {
        let r = c.send(method.clone(), &path, Some(&key), body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert_eq!(r.error_code(), code, "{method} {path}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(needle), "{method} {path}: {msg:?} lacks {needle:?}");
    }
    // Nothing above changed anything, and the server is still healthy.
    assert_eq!(c.get("/api/v1/devices", &key).await.json()["items"].as_array().unwrap().len(), 1);
    assert!(!s.log().contains("panicked"));
    assert_eq!(s.client.send(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn csv_import_is_all_or_nothing_and_export_round_trips() {
    let s = Server::start().await;
    let key = s.api_key("admin");
    let c = &s.client;
    let csv = |body: &str| Some(("text/csv", body.as_bytes().to_vec()));
    let bad = "serial,model,vendor,criticality,group,tags,lat,lon\n\
               C-1,meter-3,acme,high,north,a;b,41.1,-87.2\n\
               C-2,meter-3,acme,severe,north,,,\n\
               C-1,meter-3,acme,low,north,,,\n\
               ,meter-3,acme,low,north,,,\n";
    let r = c.send(Method::POST, "/api/v1/devices/import", Some(&key), csv(bad)).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "import_rejected"));
    let rows: Vec<(u64, String)> = r.json()["error"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rows, vec![(2, "criticality".to_owned()), (4, "serial".to_owned())]);
    assert_eq!(c.get("/api/v1/devices", &key).await.json()["items"].as_array().unwrap().len(), 0);

    // Duplicates are found when storing: still nothing lands.
    let dup = "serial,model,vendor\nD-1,m,v\nD-1,m,v\n";
    let r = c.send(Method::POST, "/api/v1/devices/import", Some(&key), csv(dup)).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::CONFLICT, "import_rejected"));
    assert_eq!(r.json()["error"]["rows"][0]["row"], 2);

    let good = "serial,model,vendor,criticality,group,tags,lat,lon,owner_contact\n\
                C-1,meter-3,acme,high,north,a;b,41.1,-87.2,ann@example.com\n\
                C-2,meter-3,acme,low,\"south, east\",,,,\n";
    let r = c.send(Method::POST, "/api/v1/devices/import", Some(&key), csv(good)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["imported"], 2);

    let out = c.get("/api/v1/devices/export", &key).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = out.text();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("id,serial,model,vendor,"));
    assert!(text.contains(",C-1,meter-3,acme,") && text.contains("a;b") && text.contains("\"south, east\""));
    assert_eq!(text.lines().count(), 3);
    let jl = c.get("/api/v1/devices/export?format=json&criticality=high", &key).await.text();
    let lines: Vec<Value> = jl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["serial"], "C-1");
    assert_eq!(lines[0]["owner_contact"], "ann@example.com");
}
