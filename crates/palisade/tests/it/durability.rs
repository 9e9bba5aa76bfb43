//! Acknowledged writes survive `kill -9`, and SIGTERM lets in-flight writes finish.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::{Backend, Client, Server, device};

/// Writers that create devices until told to stop; returns every id the server acknowledged.
fn burst(
    client: &Client,
    key: &str,
    writers: usize,
    per_writer: usize,
) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..writers)
        .map(|w| {
            let (client, key, acked) = (client.clone(), key.to_owned(), acked.clone());
            tokio::spawn(async move {
                for n in 0..per_writer {
                    let body = device(&format!("K-{w}-{n}"), "medium", "burst");
                    // Connection errors are expected once the server is killed.
                    let Ok(r) = tokio::spawn({
                        let (client, key) = (client.clone(), key.clone());
                        async move { client.post("/api/v1/devices", &key, body).await }
                    })
                    .await
                    else {
                        return;
                    };
                    if r.status.is_success() {
                        acked.lock().unwrap().push(r.json()["id"].as_str().unwrap().to_owned());
                    }
                }
            })
        })
        .collect();
    (acked, tasks)
}

async fn all_ids(s: &Server, key: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor = String::new();
    loop {
        let r = s.client.get(&format!("/api/v1/devices?limit=1000{cursor}"), key).await.json();
        ids.extend(r["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        match r.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return ids,
        }
    }
}

async fn acknowledged_writes_survive_kill_9(backend: &str) {
    let Some(backend) = Backend::named(backend).await else {
        return;
    };
    let mut s = Server::start_on(backend).await;
    let key = s.api_key("admin");
    let (acked, tasks) = burst(&s.client, &key, 8, 10_000);
    // Kill in the middle of the burst: once plenty of writes were acknowledged.
    loop {
        if acked.lock().unwrap().len() >= 300 {
            break;
        }
        assert!(!tasks.iter().all(|t| t.is_finished()), "burst ended before the kill");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.kill9();
    s.child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let dir = s.dir.clone();
    let backend = s.backend.clone();
    let s = Server::start_in(&dir, backend).await;
    let stored = all_ids(&s, &key).await;
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // The audit chain is whole too: every device has its entry, in one unbroken chain.
    let out = s.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

async fn sigterm_finishes_in_flight_writes(backend: &str) {
    let Some(backend) = Backend::named(backend).await else {
        return;
    };
    let mut s = Server::start_on(backend).await;
    let key = s.api_key("admin");
    let (acked, tasks) = burst(&s.client, &key, 4, 10_000);
    while acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = s.dir.clone();
    let backend = s.backend.clone();
    let status = s.terminate().await;
    assert!(status.success(), "graceful exit: {status:?}");
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let s = Server::start_in(&dir, backend).await;
    let stored = all_ids(&s, &key).await;
    assert!(acked.iter().all(|id| stored.contains(id)), "an acknowledged write was lost");
    let out = String::from_utf8(s.cli(&["audit", "verify"]).stdout).unwrap();
    assert!(out.contains("audit log intact") && !out.contains(" 0 signed checkpoints"), "{out}");
}

mod sqlite {
    #[tokio::test]
    async fn acknowledged_writes_survive_kill_9() {
        super::acknowledged_writes_survive_kill_9("sqlite").await
    }
    #[tokio::test]
    async fn sigterm_finishes_in_flight_writes() {
        super::sigterm_finishes_in_flight_writes("sqlite").await
    }
}

mod postgres {
    #[tokio::test]
    async fn acknowledged_writes_survive_kill_9() {
        super::acknowledged_writes_survive_kill_9("postgres").await
    }
    #[tokio::test]
    async fn sigterm_finishes_in_flight_writes() {
        super::sigterm_finishes_in_flight_writes("postgres").await
    }
}
