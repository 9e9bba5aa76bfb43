//! What the exposure index is rebuilt from: the SBOM of each firmware build, every advisory
//! file imported with the file each advisory document currently comes from, and import reports.
//!
//! An import is one transaction: its files, its documents, its report, its audit entry and the
//! alerts it raises commit together or not at all.

use serde_json::json;

use crate::alerts::{self, Raise};
use crate::audit::{self, AuditContext};
use crate::sql::{Db, Dialect};
use crate::{StoreError, args};

/// An SBOM as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    pub model: String,
    pub version: String,
    /// e.g. `CycloneDX 1.5`, `SPDX-2.3`.
    pub format: String,
    pub components: i64,
    pub sha256: String,
    pub body: Vec<u8>,
    pub uploaded_ms: i64,
}

/// An advisory file of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub sha256: String,
    pub name: String,
    pub body: Vec<u8>,
}

/// An advisory document of an import and the file it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRow {
    /// Format and normalised id (`osv:GHSA-…`).
    pub key: String,
    pub source: String,
    pub modified: Option<String>,
}

/// Everything one import writes.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub id: String,
    pub files: Vec<SourceFile>,
    pub docs: Vec<DocRow>,
    pub report: serde_json::Value,
    /// Alerts for critical devices the import newly exposed.
    pub alerts: Vec<Raise>,
}

/// A stored import report.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub id: String,
    pub actor: String,
    pub files: i64,
    pub documents: i64,
    pub report: serde_json::Value,
    pub at_ms: i64,
}

/// An advisory file and the documents that still come from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSource {
    pub sha256: String,
    pub name: String,
    pub body: Vec<u8>,
    pub keys: Vec<String>,
}

/// What the index needs of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedDevice {
    pub id: String,
    pub model: String,
    pub firmware_version: Option<String>,
    pub criticality: String,
    pub group: Option<String>,
    pub region: Option<String>,
    pub state: String,
}

/// Stores (or replaces) the SBOM of a build; true when it replaced one.
pub async fn put_sbom<D: Db>(db: &mut D, sbom: &Sbom, ctx: &AuditContext) -> Result<bool, StoreError> {
    let old = db
        .query_opt(
            "SELECT sha256, components FROM firmware_sboms WHERE model = $1 AND version = $2",
            args![&sbom.model, &sbom.version],
        )
        .await?;
    let before = match &old {
        Some(r) => Some(json!({ "sha256": r.text(0)?, "components": r.int(1)? })),
        None => None,
    };
    db.exec(
        "INSERT INTO firmware_sboms (model, version, format, components, sha256, body, uploaded_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model, version) DO UPDATE SET format = excluded.format, \
         components = excluded.components, sha256 = excluded.sha256, body = excluded.body, \
         uploaded_ms = excluded.uploaded_ms",
        args![
            &sbom.model,
            &sbom.version,
            &sbom.format,
            sbom.components,
            &sbom.sha256,
            sbom.body.clone(),
            sbom.uploaded_ms
        ],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "firmware.sbom",
        &format!("firmware:{}/{}", sbom.model, sbom.version),
        before,
        Some(json!({ "format": sbom.format, "components": sbom.components, "sha256": sbom.sha256 })),
    )
    .await?;
    Ok(old.is_some())
}

fn sbom_row(r: &crate::sql::Row) -> Result<Sbom, StoreError> {
    Ok(Sbom {
        model: r.text(0)?,
        version: r.text(1)?,
        format: r.text(2)?,
        components: r.int(3)?,
        sha256: r.text(4)?,
        body: r.blob(5)?,
        uploaded_ms: r.int(6)?,
    })
}

/// Every SBOM with its body (start-up).
pub async fn sboms<D: Db>(db: &mut D) -> Result<Vec<Sbom>, StoreError> {
    let rows = db
        .query(
            "SELECT model, version, format, components, sha256, body, uploaded_ms FROM firmware_sboms \
             ORDER BY model, version",
            vec![],
        )
        .await?;
    rows.iter().map(sbom_row).collect()
}

/// One build's SBOM.
pub async fn sbom<D: Db>(db: &mut D, model: &str, version: &str) -> Result<Option<Sbom>, StoreError> {
    let row = db
        .query_opt(
            "SELECT model, version, format, components, sha256, body, uploaded_ms FROM firmware_sboms \
             WHERE model = $1 AND version = $2",
            args![model, version],
        )
        .await?;
    row.as_ref().map(sbom_row).transpose()
}

/// Writes an import: new files, the documents' current sources, the report, the alerts and
/// one audit entry. All or nothing (the caller's transaction).
pub async fn import<D: Db>(db: &mut D, imp: &NewImport, ctx: &AuditContext) -> Result<Vec<String>, StoreError> {
    let conflict = if D::DIALECT == Dialect::Sqlite { "OR IGNORE" } else { "" };
    let tail = if D::DIALECT == Dialect::Postgres { " ON CONFLICT (sha256) DO NOTHING" } else { "" };
    for (position, file) in imp.files.iter().enumerate() {
        db.exec(
            &format!(
                "INSERT {conflict} INTO advisory_sources (sha256, name, body, import_id, position, imported_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6){tail}"
            ),
            args![
                &file.sha256,
                &file.name,
                file.body.clone(),
                &imp.id,
                i64::try_from(position).unwrap_or(i64::MAX),
                ctx.at_ms
            ],
        )
        .await?;
    }
    for doc in &imp.docs {
        db.exec(
            "INSERT INTO advisories (doc_key, source, modified, import_id, imported_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (doc_key) DO UPDATE SET source = excluded.source, modified = excluded.modified, \
             import_id = excluded.import_id, imported_ms = excluded.imported_ms",
            args![&doc.key, &doc.source, doc.modified.as_deref(), &imp.id, ctx.at_ms],
        )
        .await?;
    }
    let mut alert_ids = Vec::new();
    for raise in &imp.alerts {
        let raised = alerts::raise(db, raise).await?;
        if raised.opened {
            alert_ids.push(raised.alert.id);
        }
    }
    // The report says how many alerts opened (a repeat of an alert still open is only counted there).
    let mut report = imp.report.clone();
    if let Some(obj) = report.as_object_mut() {
        obj.insert("alerts_raised".into(), json!(alert_ids.len()));
    }
    let actor = ctx.actor.id();
    db.exec(
        "INSERT INTO advisory_imports (id, actor, files, documents, report, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            &imp.id,
            &actor,
            i64::try_from(imp.files.len()).unwrap_or(i64::MAX),
            i64::try_from(imp.docs.len()).unwrap_or(i64::MAX),
            report.to_string(),
            ctx.at_ms
        ],
    )
    .await?;
    let sample: Vec<&str> = imp.docs.iter().map(|d| d.key.as_str()).take(50).collect();
    audit::append(
        db,
        ctx,
        "advisories.import",
        &format!("import:{}", imp.id),
        None,
        Some(json!({
            "files": imp.files.len(),
            "documents": imp.docs.len(),
            "sample": sample,
            "alerts": alert_ids.len(),
        })),
    )
    .await?;
    Ok(alert_ids)
}

/// Every advisory file that some document still comes from, in import order, with those
/// documents' keys (start-up replay).
pub async fn live_sources<D: Db>(db: &mut D) -> Result<Vec<LiveSource>, StoreError> {
    let rows = db
        .query(
            "SELECT s.sha256, s.name, s.body FROM advisory_sources s \
             WHERE EXISTS (SELECT 1 FROM advisories a WHERE a.source = s.sha256) \
             ORDER BY s.imported_ms, s.import_id, s.position",
            vec![],
        )
        .await?;
    let mut sources: Vec<LiveSource> = rows
        .iter()
        .map(|r| Ok(LiveSource { sha256: r.text(0)?, name: r.text(1)?, body: r.blob(2)?, keys: Vec::new() }))
        .collect::<Result<_, StoreError>>()?;
    let keys = db.query("SELECT doc_key, source FROM advisories", vec![]).await?;
    let mut by_source: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for r in &keys {
        by_source.entry(r.text(1)?).or_default().push(r.text(0)?);
    }
    for s in &mut sources {
        s.keys = by_source.remove(&s.sha256).unwrap_or_default();
    }
    Ok(sources)
}

fn import_record(r: &crate::sql::Row) -> Result<ImportRecord, StoreError> {
    let report = r.text(4)?;
    Ok(ImportRecord {
        id: r.text(0)?,
        actor: r.text(1)?,
        files: r.int(2)?,
        documents: r.int(3)?,
        report: serde_json::from_str(&report).unwrap_or(serde_json::Value::Null),
        at_ms: r.int(5)?,
    })
}

/// The newest imports first.
pub async fn imports<D: Db>(db: &mut D, limit: i64) -> Result<Vec<ImportRecord>, StoreError> {
    let rows = db
        .query(
            "SELECT id, actor, files, documents, report, at_ms FROM advisory_imports ORDER BY at_ms DESC, id LIMIT $1",
            args![limit],
        )
        .await?;
    rows.iter().map(import_record).collect()
}

pub async fn import_record_of<D: Db>(db: &mut D, id: &str) -> Result<Option<ImportRecord>, StoreError> {
    let row = db
        .query_opt("SELECT id, actor, files, documents, report, at_ms FROM advisory_imports WHERE id = $1", args![id])
        .await?;
    row.as_ref().map(import_record).transpose()
}

const INDEXED: &str = "SELECT id, model, firmware_version, criticality, device_group, region, state FROM devices";

fn indexed(r: &crate::sql::Row) -> Result<IndexedDevice, StoreError> {
    Ok(IndexedDevice {
        id: r.text(0)?,
        model: r.text(1)?,
        firmware_version: r.opt_text(2)?,
        criticality: r.text(3)?,
        group: r.opt_text(4)?,
        region: r.opt_text(5)?,
        state: r.text(6)?,
    })
}

/// A page of the fleet as the index sees it, in id order after `after` (start-up reads the
/// fleet page by page, so a million devices never sit in memory as rows at once).
pub async fn fleet_page<D: Db>(db: &mut D, after: &str, limit: i64) -> Result<Vec<IndexedDevice>, StoreError> {
    let rows = db.query(&format!("{INDEXED} WHERE id > $1 ORDER BY id LIMIT $2"), args![after, limit]).await?;
    rows.iter().map(indexed).collect()
}

/// The given devices as the index sees them; ids not found are left out.
pub async fn devices<D: Db>(db: &mut D, ids: &[String]) -> Result<Vec<IndexedDevice>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let params: Vec<crate::sql::Value> = chunk.iter().map(|id| id.as_str().into()).collect();
        let rows = db.query(&format!("{INDEXED} WHERE id IN ({})", marks.join(", ")), params).await?;
        for r in &rows {
            out.push(indexed(r)?);
        }
    }
    Ok(out)
}
