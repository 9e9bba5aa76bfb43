//! People and API access: the authorization matrix, MFA, brute force, key scoping, secrecy.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use palisade_core::totp;
use serde_json::{Value, json};

use crate::common::{Backend, Client, Resp, Server, device};

const STRONG: &str = "violet tractor harbour minute";
const BOGUS_DEVICE: &str = "0000000000000000000z";

/// A signed-in browser-like client: the session cookie and its CSRF token.
#[derive(Clone)]
pub(crate) struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("cookie", format!("palisade_session={}", self.cookie)), ("x-csrf-token", self.csrf.clone())]
    }

    pub(crate) async fn get(&self, c: &Client, path: &str) -> Resp {
        c.send_with(Method::GET, path, &self.headers(), None).await
    }

    async fn post(&self, c: &Client, path: &str, body: Value) -> Resp {
        c.send_with(Method::POST, path, &self.headers(), Some(("application/json", body.to_string().into_bytes())))
            .await
    }
}

async fn login(c: &Client, username: &str, password: &str, extra: Value) -> Resp {
    let mut body = json!({"username": username, "password": password});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    c.send(Method::POST, "/api/v1/auth/login", None, Some(("application/json", body.to_string().into_bytes()))).await
}

fn session_of(r: &Resp) -> Session {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().strip_prefix("palisade_session=").unwrap().to_owned();
    Session { cookie, csrf: r.json()["csrf_token"].as_str().unwrap().to_owned() }
}

/// Creates a user through the API, signs in, and replaces the one-time password.
pub(crate) async fn user_session(s: &Server, admin_key: &str, username: &str, roles: Value) -> Session {
    let r = s.client.post("/api/v1/users", admin_key, json!({"username": username, "roles": roles})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let initial = r.json()["initial_password"].as_str().unwrap().to_owned();
    let r = login(&s.client, username, &initial, json!({})).await;
    assert_eq!(r.json()["must_change_password"], true);
    let sess = session_of(&r);
    let r = sess
        .post(&s.client, "/api/v1/auth/password", json!({"current_password": initial, "new_password": STRONG}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    sess
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn code(secret: &[u8], step_offset: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!("{:06}", totp::code_at(secret, totp::step_of(now) + step_offset))
}

/// Every documented operation: (method, path with ids filled in, policy).
async fn operations(s: &Server, key: &str, device_id: &str) -> Vec<(Method, String, String)> {
    let doc = s.client.get("/api/v1/openapi.json", key).await.json();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(m) {
                let policy = op["x-palisade-policy"].as_str().unwrap_or("none").to_owned();
                assert_ne!(policy, "none", "{m} {path}: a route without an access policy");
                let concrete =
                    path.replace("{id}", if path.starts_with("/api/v1/devices/") { device_id } else { "nobody" });
                ops.push((m.to_uppercase().parse().unwrap(), concrete, policy));
            }
        }
    }
    assert!(ops.len() >= 30, "{} operations", ops.len());
    ops
}

fn body_for(method: &Method) -> Option<(&'static str, Vec<u8>)> {
    matches!(*method, Method::POST | Method::PATCH | Method::PUT).then(|| ("application/json", b"{}".to_vec()))
}

#[tokio::test]
async fn authorization_matrix_every_route_every_role() {
    let s = Server::start_with(Backend::Sqlite, &[("PALISADE_AUTH_SESSION_IDLE_SECS", "1")]).await;
    let admin = s.api_key("admin");
    let south = s.client.post("/api/v1/devices", &admin, device("SOUTH-1", "high", "south")).await.json();
    let south_id = south["id"].as_str().unwrap().to_owned();
    let ops = operations(&s, &admin, BOGUS_DEVICE).await;

    // 1. No credentials: only public routes answer.
    for (m, path, policy) in &ops {
        let r = s.client.send(m.clone(), path, None, body_for(m)).await;
        if policy == "public" {
            assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{m} {path}");
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {path}: {}", r.text());
        }
    }

    // 2. Every built-in role, as a key: 403 exactly when the role lacks the route's permission.
    for role in palisade_core::Role::ALL {
        let key = s.api_key(role.as_str());
        for (m, path, policy) in &ops {
            if policy == "public" {
                continue;
            }
            let r = s.client.send(m.clone(), path, Some(&key), body_for(m)).await;
            let allowed = match policy.strip_prefix("permission:") {
                Some(p) => role.allows(p.parse().unwrap()),
                None => true,
            };
            if allowed {
                assert!(
                    r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                    "{role} {m} {path}: {}",
                    r.text()
                );
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{role} {m} {path}: {}", r.text());
                assert_eq!(r.error_code(), "forbidden");
            }
            assert!(r.status.as_u16() < 500, "{role} {m} {path}: {}", r.text());
        }
    }

    // 3. A key lacking the scope: only devices.read, so every other permission is refused.
    let op_sess = user_session(&s, &admin, "olivia", json!([{"role": "operator"}])).await;
    let r = op_sess.post(&s.client, "/api/v1/apikeys", json!({"name": "reader", "scopes": ["devices.read"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let reader = r.json()["key"].as_str().unwrap().to_owned();
    for (m, path, policy) in &ops {
        if let Some(p) = policy.strip_prefix("permission:") {
            let r = s.client.send(m.clone(), path, Some(&reader), body_for(m)).await;
            if p == "devices.read" {
                assert_ne!(r.status, StatusCode::FORBIDDEN, "{m} {path}");
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "reader {m} {path}: {}", r.text());
            }
        }
    }

    // 4. A group-scoped binding: the north team cannot see or touch a south device.
    let north = user_session(&s, &admin, "nora", json!([{"role": "operator", "groups": ["north"]}])).await;
    let device_ops = operations(&s, &admin, &south_id).await;
    for (m, path, policy) in device_ops.iter().filter(|(_, p, _)| p.contains(&south_id)) {
        // Valid bodies, so that only the scope can refuse.
        let body = if path.ends_with("/lifecycle") {
            json!({"to": "provisioned"})
        } else if path.ends_with("/commands") {
            json!({"command": "ping"})
        } else if *m == Method::PATCH {
            json!({"owner": "someone"})
        } else {
            json!({})
        };
        let r = s
            .client
            .send_with(m.clone(), path, &north.headers(), Some(("application/json", body.to_string().into_bytes())))
            .await;
        let allowed = policy
            .strip_prefix("permission:")
            .is_some_and(|p| palisade_core::Role::Operator.allows(p.parse().unwrap()));
        let expected = if allowed { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
        assert_eq!(r.status, expected, "nora {m} {path}: {}", r.text());
    }
    let listed = north.get(&s.client, "/api/v1/devices").await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "{listed}");
    let r = north.post(&s.client, "/api/v1/devices", device("N-1", "low", "north")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = north.post(&s.client, "/api/v1/devices", device("S-2", "low", "south")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(north.get(&s.client, "/api/v1/devices").await.json()["items"].as_array().unwrap().len(), 1);
    // Without the CSRF header a cookie-authenticated change is refused.
    let no_csrf = vec![("cookie", format!("palisade_session={}", north.cookie))];
    let r = s
        .client
        .send_with(
            Method::POST,
            "/api/v1/devices",
            &no_csrf,
            Some(("application/json", device("N-2", "low", "north").to_string().into_bytes())),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // 5. An expired session (idle timeout of 1 s here) answers 401 on every non-public route.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for (m, path, policy) in &ops {
        if policy == "public" {
            continue;
        }
        let r = s.client.send_with(m.clone(), path, &op_sess.headers(), body_for(m)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired session {m} {path}: {}", r.text());
    }
    // Denials are counted.
    let metrics = s.client.send(Method::GET, "/metrics", None, None).await.text();
    assert!(metrics.contains("palisade_access_denials_total{reason=\"users.manage\"}"), "{metrics}");
}

#[tokio::test]
async fn mfa_is_enforced_codes_are_single_use_and_recovery_codes_work_once() {
    let s = Server::start().await;
    let c = &s.client;
    // The initial administrator: one-time password in the data directory, must change it,
    // then must enrol MFA before anything else.
    let initial = std::fs::read_to_string(s.dir.join("initial-admin-password")).unwrap().trim().to_owned();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(s.dir.join("initial-admin-password")).unwrap().permissions().mode() & 0o777, 0o600);
    let sess = session_of(&login(c, "admin", &initial, json!({})).await);
    let r = sess.get(c, "/api/v1/devices").await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::FORBIDDEN, "password_change_required"));
    let r = sess
        .post(c, "/api/v1/auth/password", json!({"current_password": initial, "new_password": "password12345"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a common password is refused: {}", r.text());
    let r = sess.post(c, "/api/v1/auth/password", json!({"current_password": initial, "new_password": STRONG})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(!s.dir.join("initial-admin-password").exists(), "the spent one-time password is removed");
    let r = sess.get(c, "/api/v1/devices").await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::FORBIDDEN, "mfa_enrollment_required"));
    let coverage = s.client.get("/api/v1/reports/mfa-coverage", &s.api_key("auditor")).await.json();
    assert_eq!(coverage["required_without_mfa"], json!(["admin"]));

    let e = sess.post(c, "/api/v1/auth/mfa/enroll", json!({})).await.json();
    assert!(e["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Palisade:admin?secret="));
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = base32_decode(e["secret"].as_str().unwrap());
    let r = sess.post(c, "/api/v1/auth/mfa/confirm", json!({"code": "000000"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = sess.post(c, "/api/v1/auth/mfa/confirm", json!({"code": code(&secret, 0)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let recovery: Vec<String> = serde_json::from_value(r.json()["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);
    assert_eq!(sess.get(c, "/api/v1/devices").await.status, StatusCode::OK, "fully set up");

    // Without a code: refused. With the next code: in. The same code again: refused.
    let r = login(c, "admin", STRONG, json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::UNAUTHORIZED, "mfa_required"));
    let next = code(&secret, 1);
    assert_eq!(login(c, "admin", STRONG, json!({"totp_code": next})).await.status, StatusCode::OK);
    let r = login(c, "admin", STRONG, json!({"totp_code": next})).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::UNAUTHORIZED, "invalid_mfa_code"), "replay");
    // A recovery code works once.
    assert_eq!(login(c, "admin", STRONG, json!({"recovery_code": recovery[3]})).await.status, StatusCode::OK);
    assert_eq!(login(c, "admin", STRONG, json!({"recovery_code": recovery[3]})).await.status, StatusCode::UNAUTHORIZED);
    // Logout ends the session server-side.
    let r = c.send_with(Method::POST, "/api/v1/auth/logout", &sess.headers(), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(sess.get(c, "/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    // Disabling someone's MFA is audited.
    let admin_key = s.api_key("admin");
    let r = c.send(Method::POST, "/api/v1/users/uadmin/mfa/reset", Some(&admin_key), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let a = c.get("/api/v1/audit?action=user.mfa.disabled", &admin_key).await.json();
    assert_eq!(a["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn fifty_wrong_passwords_slow_down_then_lock_and_every_attempt_is_audited() {
    let s = Server::start_with(Backend::Sqlite, &[("PALISADE_AUTH_THROTTLE_BASE_DELAY_MS", "20")]).await;
    let admin = s.api_key("admin");
    let c = &s.client;
    user_session(&s, &admin, "victim", json!([{"role": "technician"}])).await;
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let r = login(c, "victim", "not the password at all", json!({})).await;
        outcomes.push((r.status, r.error_code(), started.elapsed()));
    }
    // 3 free failures, then growing delays (20, 40, 80… ms), locked after 10.
    for (i, (status, code, _)) in outcomes.iter().enumerate() {
        if i < 10 {
            assert_eq!((*status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthenticated"), "attempt {}", i + 1);
        } else {
            assert_eq!((*status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "locked"), "attempt {}", i + 1);
        }
    }
    assert!(outcomes[9].2 >= Duration::from_millis(640), "10th failure held {:?}", outcomes[9].2);
    assert!(outcomes[9].2 > outcomes[5].2 && outcomes[5].2 > outcomes[1].2, "delays grow: {outcomes:?}");
    // The right password during the lock is refused.
    let r = login(c, "victim", STRONG, json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::TOO_MANY_REQUESTS, "locked"));
    // Unknown usernames get the same answer, and are audited too.
    let unknown = login(c, "nobody-here", "not the password at all", json!({})).await;
    // 50 failures from one address lock the address as well: unknown usernames included.
    assert_eq!((unknown.status, unknown.error_code().as_str()), (StatusCode::TOO_MANY_REQUESTS, "locked"));
    let audit = c.get("/api/v1/audit?action=auth.login&target=login:victim&limit=1000", &admin).await.json();
    let items = audit["items"].as_array().unwrap();
    // 50 wrong + 1 right-but-locked, plus the successful first sign-in of user_session.
    let attempts: Vec<&str> = items.iter().map(|e| e["after"]["outcome"].as_str().unwrap()).collect();
    assert_eq!(attempts.iter().filter(|o| **o != "success").count(), 51, "{attempts:?}");
    assert!(items.iter().all(|e| e["source_ip"] == "127.0.0.1"));
    let a = c.get("/api/v1/audit?action=auth.login&target=login:nobody-here", &admin).await.json();
    assert_eq!(a["items"].as_array().unwrap().len(), 1);
    // The lock is recorded on the account; an administrator lifts it.
    let users = c.get("/api/v1/users", &admin).await.json();
    let victim = users.as_array().unwrap().iter().find(|u| u["username"] == "victim").unwrap().clone();
    assert!(victim["locked_until"].is_string(), "{victim}");
    let id = victim["id"].as_str().unwrap();
    assert_eq!(
        c.send(Method::POST, &format!("/api/v1/users/{id}/unlock"), Some(&admin), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_look_the_same() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    user_session(&s, &admin, "real-user", json!([{"role": "technician"}])).await;
    let a = login(&s.client, "real-user", "wrong wrong wrong", json!({})).await;
    let b = login(&s.client, "ghost-user", "wrong wrong wrong", json!({})).await;
    assert_eq!((a.status, a.text()), (b.status, b.text()));
}

#[tokio::test]
async fn keys_never_exceed_their_creator_and_die_with_them() {
    let s = Server::start().await;
    let admin = s.api_key("admin");
    let c = &s.client;
    let op = user_session(&s, &admin, "oscar", json!([{"role": "operator", "groups": ["north"]}])).await;
    for (scopes, groups) in [
        (json!(["users.manage"]), json!(["north"])),
        (json!(["devices.read", "system.manage"]), json!(["north"])),
        (json!(["devices.read"]), json!([])),
    ] {
        let r = op.post(c, "/api/v1/apikeys", json!({"name": "x", "scopes": scopes, "groups": groups})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{scopes} {groups}: {}", r.text());
    }
    let r = op.post(c, "/api/v1/apikeys", json!({"name": "ci", "scopes": ["devices.read", "devices.write"], "groups": ["north"], "expires_in_days": 30})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_owned();
    let id = r.json()["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(c.post("/api/v1/devices", &key, device("K-1", "low", "north")).await.status, StatusCode::CREATED);
    assert_eq!(c.post("/api/v1/devices", &key, device("K-2", "low", "south")).await.status, StatusCode::FORBIDDEN);
    // Listing shows use, never the secret.
    let list = op.get(c, "/api/v1/apikeys").await;
    assert!(!list.text().contains(&key[20..]));
    assert_eq!(list.json()[0]["last_used_ip"], "127.0.0.1");
    // The owner disabled: the key stops working.
    let users = c.get("/api/v1/users", &admin).await.json();
    let oscar =
        users.as_array().unwrap().iter().find(|u| u["username"] == "oscar").unwrap()["id"].as_str().unwrap().to_owned();
    c.patch(&format!("/api/v1/users/{oscar}"), &admin, json!({"status": "disabled"})).await;
    assert_eq!(c.get("/api/v1/devices", &key).await.status, StatusCode::UNAUTHORIZED);
    c.patch(&format!("/api/v1/users/{oscar}"), &admin, json!({"status": "active"})).await;
    assert_eq!(c.get("/api/v1/devices", &key).await.status, StatusCode::OK);
    // Revoked: gone.
    assert_eq!(
        c.send(Method::POST, &format!("/api/v1/apikeys/{id}/revoke"), Some(&admin), None).await.status,
        StatusCode::OK
    );
    assert_eq!(c.get("/api/v1/devices", &key).await.status, StatusCode::UNAUTHORIZED);
    let denied = c.get("/api/v1/audit?action=apikey.create_denied", &admin).await.json();
    assert_eq!(denied["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn no_secret_appears_in_logs_or_api_responses() {
    let s = Server::start_with(Backend::Sqlite, &[("PALISADE_LOG_LEVEL", "debug")]).await;
    let admin = s.api_key("admin");
    let c = &s.client;
    let initial = std::fs::read_to_string(s.dir.join("initial-admin-password")).unwrap().trim().to_owned();
    let r = c.post("/api/v1/users", &admin, json!({"username": "sam", "roles": [{"role": "security-analyst"}]})).await;
    let sam_initial = r.json()["initial_password"].as_str().unwrap().to_owned();
    let r = login(c, "sam", &sam_initial, json!({})).await;
    let sess = session_of(&r);
    sess.post(c, "/api/v1/auth/password", json!({"current_password": sam_initial, "new_password": STRONG})).await;
    let e = sess.post(c, "/api/v1/auth/mfa/enroll", json!({})).await.json();
    let seed = e["secret"].as_str().unwrap().to_owned();
    let secret = base32_decode(&seed);
    sess.post(c, "/api/v1/auth/mfa/confirm", json!({"code": code(&secret, 0)})).await;
    let r = sess.post(c, "/api/v1/apikeys", json!({"name": "k", "scopes": ["devices.read"]})).await;
    let minted = r.json()["key"].as_str().unwrap().to_owned();
    login(c, "sam", "wrong password here", json!({})).await;
    login(c, "sam", STRONG, json!({"totp_code": "123456"})).await;

    let secrets = [
        initial.as_str(),
        sam_initial.as_str(),
        STRONG,
        seed.as_str(),
        sess.cookie.as_str(),
        minted.as_str(),
        admin.as_str(),
    ];
    let mut seen = String::new();
    for path in
        ["/api/v1/users", "/api/v1/apikeys", "/api/v1/audit?limit=1000", "/api/v1/audit/export", "/api/v1/roles"]
    {
        seen.push_str(&c.get(path, &admin).await.text());
    }
    seen.push_str(&sess.get(c, "/api/v1/auth/me").await.text());
    seen.push_str(&sess.get(c, "/api/v1/apikeys").await.text());
    seen.push_str(&c.send(Method::GET, "/metrics", None, None).await.text());
    let log = s.log();
    assert!(log.contains("DEBUG"), "debug logging is on");
    for secret in secrets {
        assert!(!log.contains(secret), "a secret is in the server log");
        assert!(!seen.contains(secret), "a secret is in an API response");
    }
}
