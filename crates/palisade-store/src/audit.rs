//! The audit log: append (inside the caller's transaction), query, signed checkpoints, verify.

use std::collections::BTreeMap;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use palisade_core::audit::{Actor, AuditEntry, ChainBreak, ChainVerifier, GENESIS, checkpoint_message};
use serde_json::Value as Json;

use crate::sql::{Db, Dialect, Row};
use crate::{StoreError, args};

/// Who is acting, from where, and when: passed with every mutation.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: Actor,
    pub source_ip: Option<String>,
    pub at_ms: i64,
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// An entry as read back, with its stored hash.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub entry: AuditEntry,
    pub hash: [u8; 32],
}

/// Arbitrary key so that PostgreSQL serialises appends to the chain.
const PG_CHAIN_LOCK: i64 = 0x7061_6c69_7361_6465; // "palisade"

async fn head<D: Db>(db: &mut D) -> Result<(u64, [u8; 32]), StoreError> {
    match db.query_opt("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", vec![]).await? {
        Some(r) => {
            Ok((u64::try_from(r.int(0)?).map_err(|_| StoreError::Corrupt("negative seq".into()))?, r.hash32(1)?))
        }
        None => Ok((0, GENESIS)),
    }
}

/// Appends one entry to the chain. Runs inside the caller's transaction; on PostgreSQL it takes
/// a transaction-scoped lock so that concurrent writers extend the chain one at a time. (SQLite
/// has a single writer already.) Call it last in a transaction to hold that lock briefly.
pub async fn append<D: Db>(
    db: &mut D,
    ctx: &AuditContext,
    action: &str,
    target: &str,
    before: Option<Json>,
    after: Option<Json>,
) -> Result<u64, StoreError> {
    if D::DIALECT == Dialect::Postgres {
        db.exec("SELECT pg_advisory_xact_lock($1)", args![PG_CHAIN_LOCK]).await?;
    }
    let (seq, prev_hash) = head(db).await?;
    let entry = AuditEntry {
        seq: seq + 1,
        at_ms: ctx.at_ms,
        actor: ctx.actor.id(),
        action: action.to_owned(),
        target: target.to_owned(),
        source_ip: ctx.source_ip.clone(),
        before: before.map(|j| j.to_string()),
        after: after.map(|j| j.to_string()),
        prev_hash,
    };
    let hash = entry.hash();
    db.exec(
        "INSERT INTO audit_log (seq, at_ms, actor, action, target, source_ip, before_summary, after_summary, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        args![
            seq_i64(entry.seq)?,
            entry.at_ms,
            entry.actor,
            entry.action,
            entry.target,
            entry.source_ip,
            entry.before,
            entry.after,
            prev_hash.to_vec(),
            hash.to_vec()
        ],
    )
    .await?;
    Ok(entry.seq)
}

fn seq_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt("audit sequence overflow".into()))
}

const ENTRY_COLUMNS: &str =
    "seq, at_ms, actor, action, target, source_ip, before_summary, after_summary, prev_hash, hash";

fn decode(r: &Row) -> Result<StoredEntry, StoreError> {
    Ok(StoredEntry {
        entry: AuditEntry {
            seq: u64::try_from(r.int(0)?).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
            at_ms: r.int(1)?,
            actor: r.text(2)?,
            action: r.text(3)?,
            target: r.text(4)?,
            source_ip: r.opt_text(5)?,
            before: r.opt_text(6)?,
            after: r.opt_text(7)?,
            prev_hash: r.hash32(8)?,
        },
        hash: r.hash32(9)?,
    })
}

/// Entries matching `filter`, newest first, after the cursor (a sequence number).
pub async fn list<D: Db>(
    db: &mut D,
    filter: &AuditFilter,
    before_seq: Option<u64>,
    limit: usize,
) -> Result<crate::devices::Page<StoredEntry>, StoreError> {
    let mut clauses = Vec::new();
    let mut params: Vec<crate::sql::Value> = Vec::new();
    for (col, v) in [("actor", &filter.actor), ("target", &filter.target), ("action", &filter.action)] {
        if let Some(v) = v {
            params.push(v.into());
            clauses.push(format!("{col} = ${}", params.len()));
        }
    }
    if let Some(from) = filter.from_ms {
        params.push(from.into());
        clauses.push(format!("at_ms >= ${}", params.len()));
    }
    if let Some(to) = filter.to_ms {
        params.push(to.into());
        clauses.push(format!("at_ms < ${}", params.len()));
    }
    if let Some(s) = before_seq {
        params.push(seq_i64(s)?.into());
        clauses.push(format!("seq < ${}", params.len()));
    }
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    params.push(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX).into());
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM audit_log {where_} ORDER BY seq DESC LIMIT ${}", params.len());
    let rows = db.query(&sql, params).await?;
    let more = rows.len() > limit;
    let items = rows.iter().take(limit).map(decode).collect::<Result<Vec<_>, _>>()?;
    let next = if more { items.last().map(|e| e.entry.seq.to_string()) } else { None };
    Ok(crate::devices::Page { items, next })
}

/// Entries in chain order starting after `after_seq`, for export and verification.
pub async fn range<D: Db>(db: &mut D, after_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    let rows = db.query(&sql, args![seq_i64(after_seq)?, i64::try_from(limit).unwrap_or(i64::MAX)]).await?;
    rows.iter().map(decode).collect()
}

/// Signs the current head if it moved since the last checkpoint. Returns the sequence signed.
pub async fn checkpoint<D: Db>(db: &mut D, key: &Ed25519KeyPair, at_ms: i64) -> Result<Option<u64>, StoreError> {
    if D::DIALECT == Dialect::Postgres {
        db.exec("SELECT pg_advisory_xact_lock($1)", args![PG_CHAIN_LOCK]).await?;
    }
    let (seq, hash) = head(db).await?;
    let last =
        db.query_opt("SELECT max(seq) FROM audit_checkpoints", vec![]).await?.map(|r| r.opt_int(0)).transpose()?;
    if seq == 0 || last.flatten() == Some(seq_i64(seq)?) {
        return Ok(None);
    }
    let sig = key.sign(&checkpoint_message(seq, &hash, at_ms));
    db.exec(
        "INSERT INTO audit_checkpoints (seq, hash, at_ms, signature) VALUES ($1, $2, $3, $4)",
        args![seq_i64(seq)?, hash.to_vec(), at_ms, sig.as_ref().to_vec()],
    )
    .await?;
    Ok(Some(seq))
}

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub checkpoints: u64,
}

/// Walks the whole chain and every signed checkpoint. `Ok(Err(break))` names the first bad entry.
pub async fn verify<D: Db>(db: &mut D, key: &Ed25519KeyPair) -> Result<Result<Verified, ChainBreak>, StoreError> {
    let public = UnparsedPublicKey::new(&ED25519, key.public_key().as_ref().to_vec());
    let mut checkpoints = BTreeMap::new();
    for r in db.query("SELECT seq, hash, at_ms, signature FROM audit_checkpoints ORDER BY seq", vec![]).await? {
        let seq = u64::try_from(r.int(0)?).map_err(|_| StoreError::Corrupt("negative seq".into()))?;
        let hash = r.hash32(1)?;
        if public.verify(&checkpoint_message(seq, &hash, r.int(2)?), &r.blob(3)?).is_err() {
            return Ok(Err(ChainBreak::BadCheckpointSignature { seq }));
        }
        checkpoints.insert(seq, hash);
    }
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let batch = range(db, after, 1000).await?;
        let Some(last) = batch.last() else { break };
        after = last.entry.seq;
        for e in &batch {
            if let Err(b) = verifier.push(&e.entry, &e.hash) {
                return Ok(Err(b));
            }
            if checkpoints.get(&e.entry.seq).is_some_and(|h| *h != e.hash) {
                return Ok(Err(ChainBreak::CheckpointMismatch { seq: e.entry.seq }));
            }
        }
    }
    // A checkpoint beyond the end of the log: its tail was deleted.
    if let Some((&seq, _)) = checkpoints.range(verifier.len() + 1..).next() {
        return Ok(Err(if verifier.len() < seq {
            ChainBreak::Missing { seq: verifier.len() + 1 }
        } else {
            ChainBreak::CheckpointMismatch { seq }
        }));
    }
    Ok(Ok(Verified { entries: verifier.len(), checkpoints: checkpoints.len() as u64 }))
}
