//! Benchmark: enrollments per second — CSR check (parse, key policy, proof of possession),
//! signing by the device CA, and the enrollment transaction (token spent, key-reuse check,
//! certificate stored, device provisioned, audit entries). CSRs are made beforehand: that is
//! the devices' work, not the server's.
//!
//! `cargo run --release -p palisade-server --example bench_enroll -- [N]`; also on PostgreSQL
//! when PALISADE_TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;

use palisade_core::audit::Actor;
use palisade_core::device::DeviceAttributes;
use palisade_core::{Criticality, DeviceId};
use palisade_pki::Ca;
use palisade_store::audit::AuditContext;
use palisade_store::devices::NewDevice;
use palisade_store::identity::{CertRecord, EnrollAuth, EnrollOutcome};
use palisade_store::sealed::MasterKey;
use palisade_store::{Store, StoreLocation};

fn now_ms() -> i64 {
    palisade_server::now_ms()
}

fn ctx() -> AuditContext {
    AuditContext { actor: Actor::System, source_ip: None, at_ms: now_ms() }
}

async fn run(label: &str, location: StoreLocation, n: usize) {
    let store = Store::open(&location, &MasterKey::generate().unwrap(), now_ms(), None).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let root = Ca::generate("bench", now).unwrap();
    let device_ca = Arc::new(root.issue_intermediate("Palisade Device CA", now).unwrap());
    let mut work = Vec::with_capacity(n);
    for i in 0..n {
        let id = palisade_server::new_device_id().unwrap();
        let attrs = DeviceAttributes {
            serial: format!("B-{i}"),
            model: "m".into(),
            vendor: "v".into(),
            owner: None,
            owner_contact: None,
            purpose: None,
            criticality: Criticality::Low,
            group: None,
            region: None,
            tags: vec![],
            location: None,
            firmware_version: None,
        };
        store.create_device(NewDevice { id: id.clone(), attrs }, ctx()).await.unwrap();
        let token = format!("token-{i}");
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref().to_vec();
        store.add_enrollment_token(id.to_string(), hash.clone(), now_ms() + 3_600_000, ctx()).await.unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![]).unwrap().serialize_request(&key).unwrap().der().to_vec();
        work.push((id, hash, csr));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (id, hash, csr) in work {
        let (store, ca) = (store.clone(), device_ca.clone());
        tasks.push(tokio::spawn(async move { enroll(&store, &ca, &id, hash, &csr).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), EnrollOutcome::Enrolled);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{label}: {n} enrollments in {secs:.2} s = {:.0} enrollments/s", n as f64 / secs);
    store.close().await;
}

async fn enroll(store: &Store, ca: &Ca, id: &DeviceId, hash: Vec<u8>, csr: &[u8]) -> EnrollOutcome {
    let verified = palisade_pki::csr::verify(csr).unwrap();
    let serial = palisade_pki::random_serial().unwrap();
    let cert = ca.issue_device(&verified, id.as_str(), &serial, 90, time::OffsetDateTime::now_utc()).unwrap();
    let record = CertRecord {
        serial: cert.serial,
        device_id: id.to_string(),
        fingerprint: cert.fingerprint,
        spki_sha256: verified.spki_sha256,
        key_kind: verified.key_kind.describe(),
        not_before_ms: 0,
        not_after_ms: i64::MAX / 2,
        status: "valid".into(),
        revoked_ms: None,
        revocation_reason: None,
        method: "token".into(),
        pem: cert.pem,
    };
    store.enroll(EnrollAuth::Token(hash), record, ctx()).await.unwrap()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    run("sqlite", StoreLocation::Sqlite(dir.path().join("bench.db")), n).await;
    if let Ok(url) = std::env::var("PALISADE_TEST_POSTGRES_URL") {
        let schema = format!("bench_{}", palisade_server::now_ms());
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
        sqlx::Executor::execute(&mut c, format!("CREATE SCHEMA {schema}").as_str()).await.unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        run("postgres", StoreLocation::Postgres(format!("{url}{sep}options=-c%20search_path%3D{schema}")), n).await;
    }
}
