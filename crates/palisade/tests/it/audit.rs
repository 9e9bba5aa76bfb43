//! `palisade audit verify` against a log edited, deleted or reordered behind the server's back.

use sqlx::Connection as _;

use crate::common::{Backend, Server, device};

async fn tamper(s: &Server, sql: &str) {
    match &s.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", s.dir.join("palisade.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::Executor::execute(
                &mut c,
                "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
            )
            .await
            .unwrap();
            sqlx::Executor::execute(&mut c, sql).await.unwrap();
        }
        Backend::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::Executor::execute(&mut c, "DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log").await.unwrap();
            sqlx::Executor::execute(&mut c, sql).await.unwrap();
        }
    }
}

fn verify(s: &Server) -> (bool, String) {
    let out = s.cli(&["audit", "verify"]);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn edits_and_deletions_are_caught_and_named(backend: &str) {
    let Some(backend) = Backend::named(backend).await else {
        return;
    };
    let s = Server::start_on(backend).await;
    let key = s.api_key("admin");
    for n in 0..8 {
        assert!(
            s.client.post("/api/v1/devices", &key, device(&format!("A-{n}"), "low", "g")).await.status.is_success()
        );
    }
    let (ok, out) = verify(&s);
    assert!(ok, "{out}");
    // 8 devices, the key, and the initial administrator.
    assert!(out.contains("audit log intact: 10 entries"), "{out}");

    tamper(&s, "UPDATE audit_log SET actor = 'apikey:someone-else' WHERE seq = 4").await;
    let (ok, out) = verify(&s);
    assert!(!ok, "an edited entry must fail verification");
    assert!(out.contains("BROKEN at entry 4") && out.contains("edited"), "{out}");

    tamper(&s, "UPDATE audit_log SET actor = (SELECT actor FROM audit_log WHERE seq = 5) WHERE seq = 4").await;
    let (ok, out) = verify(&s);
    assert!(ok, "restored: {out}");

    // Reordering: entries 6 and 7 trade places.
    let swap = "UPDATE audit_log SET seq = -1 WHERE seq = 6; UPDATE audit_log SET seq = 6 WHERE seq = 7; \
                UPDATE audit_log SET seq = 7 WHERE seq = -1";
    tamper(&s, swap).await;
    let (ok, out) = verify(&s);
    assert!(!ok && out.contains("BROKEN at entry 6"), "{out}");
    tamper(&s, swap).await;
    assert!(verify(&s).0, "swapped back");

    tamper(&s, "DELETE FROM audit_log WHERE seq = 3").await;
    let (ok, out) = verify(&s);
    assert!(!ok);
    assert!(out.contains("BROKEN at entry 3") && out.contains("missing"), "{out}");

    // The API reports the same.
    let v = s.client.get("/api/v1/audit/verify", &key).await.json();
    assert_eq!((v["ok"].as_bool(), v["first_bad_seq"].as_u64()), (Some(false), Some(3)), "{v}");
}

async fn a_truncated_tail_is_caught_by_the_signed_checkpoint(backend: &str) {
    let Some(backend) = Backend::named(backend).await else {
        return;
    };
    let mut s = Server::start_on(backend).await;
    let key = s.api_key("admin");
    for n in 0..3 {
        s.client.post("/api/v1/devices", &key, device(&format!("T-{n}"), "low", "g")).await;
    }
    let dir = s.dir.clone();
    let backend = s.backend.clone();
    // A graceful stop signs the head.
    assert!(s.terminate().await.success());
    let s = Server::start_in(&dir, backend).await;
    let (ok, out) = verify(&s);
    assert!(ok && out.contains("1 signed checkpoints"), "{out}");
    tamper(&s, "DELETE FROM audit_log WHERE seq = 4").await;
    let (ok, out) = verify(&s);
    assert!(!ok && out.contains("entry 4"), "{out}");
}

mod sqlite {
    #[tokio::test]
    async fn edits_and_deletions_are_caught_and_named() {
        super::edits_and_deletions_are_caught_and_named("sqlite").await
    }
    #[tokio::test]
    async fn a_truncated_tail_is_caught_by_the_signed_checkpoint() {
        super::a_truncated_tail_is_caught_by_the_signed_checkpoint("sqlite").await
    }
}

mod postgres {
    #[tokio::test]
    async fn edits_and_deletions_are_caught_and_named() {
        super::edits_and_deletions_are_caught_and_named("postgres").await
    }
    #[tokio::test]
    async fn a_truncated_tail_is_caught_by_the_signed_checkpoint() {
        super::a_truncated_tail_is_caught_by_the_signed_checkpoint("postgres").await
    }
}
