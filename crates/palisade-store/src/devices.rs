//! The device inventory: create, read, list, update, lifecycle transitions, bulk import.
//!
//! Every mutation appends its audit entry in the same transaction, so a change and its record
//! commit together or not at all.

use palisade_core::device::{Device, DeviceAttributes, DevicePatch};
use palisade_core::{Criticality, DeviceId, LifecycleState, Location};
use serde_json::{Map, Value as Json, json};

use crate::audit::{self, AuditContext};
use crate::sealed::Keyring;
use crate::sql::{Db, Row, Value};
use crate::{StoreError, args};

/// Filters for listing devices. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub state: Option<LifecycleState>,
    pub group: Option<String>,
    pub region: Option<String>,
    pub criticality: Option<Criticality>,
    pub tag: Option<String>,
    pub model: Option<String>,
    pub firmware_version: Option<String>,
    /// Free text, matched case-insensitively against id, serial, model, vendor, owner, purpose.
    pub q: Option<String>,
    /// Only devices inside one of these scopes (`None`: everywhere).
    pub scopes: Option<Vec<palisade_core::Scope>>,
}

/// One page of a listing; `next` is the cursor of the following page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A device to create, with the row it came from when imported.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub id: DeviceId,
    pub attrs: DeviceAttributes,
}

/// Why one row of an import was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based data row number (the header is row 0).
    pub row: usize,
    pub field: String,
    pub message: String,
}

const COLUMNS: &str = "id, serial, model, vendor, owner, owner_contact, purpose, criticality, device_group, \
                       region, location, firmware_version, state, created_ms, updated_ms";

fn contact_aad(id: &DeviceId) -> String {
    format!("device/{id}/owner_contact")
}

fn location_aad(id: &DeviceId) -> String {
    format!("device/{id}/location")
}

/// The audit summary of a device: its attributes minus personal data (whose presence is noted).
fn summary(d: &Device) -> Json {
    let a = &d.attrs;
    json!({
        "serial": a.serial, "model": a.model, "vendor": a.vendor, "owner": a.owner,
        "owner_contact": a.owner_contact.as_ref().map(|_| "(set)"), "purpose": a.purpose,
        "criticality": a.criticality.as_str(), "group": a.group, "region": a.region, "tags": a.tags,
        "location": a.location.map(|_| "(set)"), "firmware_version": a.firmware_version,
        "state": d.state.as_str(),
    })
}

fn pick(summary: &Json, fields: &[&str]) -> Json {
    let mut m = Map::new();
    for f in fields {
        if let Some(v) = summary.get(*f) {
            m.insert((*f).to_owned(), v.clone());
        }
    }
    Json::Object(m)
}

fn decode(row: &Row, keys: &Keyring, tags: Vec<String>) -> Result<Device, StoreError> {
    let id: DeviceId = row.text(0)?.parse().map_err(|e| StoreError::Corrupt(format!("device id: {e}")))?;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("device {id} {what}: {e}"));
    let owner_contact = match row.opt_blob(5)? {
        Some(sealed) => Some(keys.open_text(&sealed, &contact_aad(&id))?),
        None => None,
    };
    let location = match row.opt_blob(10)? {
        Some(sealed) => {
            let text = keys.open_text(&sealed, &location_aad(&id))?;
            let (lat, lon) = text.split_once(',').ok_or_else(|| corrupt("location", &"not lat,lon"))?;
            let lat = lat.parse::<f64>().map_err(|e| corrupt("location", &e))?;
            let lon = lon.parse::<f64>().map_err(|e| corrupt("location", &e))?;
            Some(Location::new(lat, lon).map_err(|e| corrupt("location", &e))?)
        }
        None => None,
    };
    let criticality = row.text(7)?.parse::<Criticality>().map_err(|e| corrupt("criticality", &e))?;
    let state = row.text(12)?.parse::<LifecycleState>().map_err(|e| corrupt("state", &e))?;
    Ok(Device {
        attrs: DeviceAttributes {
            serial: row.text(1)?,
            model: row.text(2)?,
            vendor: row.text(3)?,
            owner: row.opt_text(4)?,
            owner_contact,
            purpose: row.opt_text(6)?,
            criticality,
            group: row.opt_text(8)?,
            region: row.opt_text(9)?,
            tags,
            location,
            firmware_version: row.opt_text(11)?,
        },
        id,
        state,
        created_ms: row.int(13)?,
        updated_ms: row.int(14)?,
    })
}

async fn tags_of<D: Db>(db: &mut D, id: &DeviceId) -> Result<Vec<String>, StoreError> {
    let rows = db.query("SELECT tag FROM device_tags WHERE device_id = $1 ORDER BY tag", args![id.as_str()]).await?;
    rows.iter().map(|r| r.text(0)).collect()
}

async fn set_tags<D: Db>(db: &mut D, id: &DeviceId, tags: &[String]) -> Result<(), StoreError> {
    db.exec("DELETE FROM device_tags WHERE device_id = $1", args![id.as_str()]).await?;
    for t in tags {
        db.exec("INSERT INTO device_tags (device_id, tag) VALUES ($1, $2)", args![id.as_str(), t]).await?;
    }
    Ok(())
}

pub async fn get<D: Db>(db: &mut D, keys: &Keyring, id: &DeviceId) -> Result<Device, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
    let row =
        db.query_opt(&sql, args![id.as_str()]).await?.ok_or_else(|| StoreError::NotFound(format!("device {id}")))?;
    let tags = tags_of(db, id).await?;
    decode(&row, keys, tags)
}

async fn serial_taken<D: Db>(db: &mut D, a: &DeviceAttributes, except: Option<&DeviceId>) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "SELECT id FROM devices WHERE vendor = $1 AND model = $2 AND serial = $3",
            args![&a.vendor, &a.model, &a.serial],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.text(0)?.as_str()) != except.map(DeviceId::as_str),
        None => false,
    })
}

fn serial_conflict(a: &DeviceAttributes) -> String {
    format!("a device with vendor {:?}, model {:?} and serial {:?} already exists", a.vendor, a.model, a.serial)
}

/// The values of the attribute columns, `serial` through `firmware_version` in [`COLUMNS`] order,
/// with personal data sealed to this device.
fn attribute_values(keys: &Keyring, id: &DeviceId, a: &DeviceAttributes) -> Result<Vec<Value>, StoreError> {
    let contact = a.owner_contact.as_deref().map(|c| keys.seal_text(c, &contact_aad(id))).transpose()?;
    let location =
        a.location.map(|l| keys.seal_text(&format!("{},{}", l.lat(), l.lon()), &location_aad(id))).transpose()?;
    Ok(args![
        &a.serial,
        &a.model,
        &a.vendor,
        a.owner.clone(),
        contact,
        a.purpose.clone(),
        a.criticality.as_str(),
        a.group.clone(),
        a.region.clone(),
        location,
        a.firmware_version.clone()
    ])
}

async fn insert<D: Db>(db: &mut D, keys: &Keyring, new: &NewDevice, now_ms: i64) -> Result<Device, StoreError> {
    let state = LifecycleState::Registered;
    let mut values = args![new.id.as_str()];
    values.extend(attribute_values(keys, &new.id, &new.attrs)?);
    values.extend(args![state.as_str(), now_ms, now_ms]);
    let marks: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    db.exec(&format!("INSERT INTO devices ({COLUMNS}) VALUES ({})", marks.join(", ")), values).await?;
    set_tags(db, &new.id, &new.attrs.tags).await?;
    Ok(Device { id: new.id.clone(), attrs: new.attrs.clone(), state, created_ms: now_ms, updated_ms: now_ms })
}

pub async fn create<D: Db>(
    db: &mut D,
    keys: &Keyring,
    new: &NewDevice,
    ctx: &AuditContext,
) -> Result<Device, StoreError> {
    if serial_taken(db, &new.attrs, None).await? {
        return Err(StoreError::Conflict(serial_conflict(&new.attrs)));
    }
    let device = insert(db, keys, new, ctx.at_ms).await?;
    audit::append(db, ctx, "device.create", &format!("device:{}", device.id), None, Some(summary(&device))).await?;
    Ok(device)
}

/// Imports many devices in one transaction: all of them, or (on any conflict) none.
pub async fn import<D: Db>(
    db: &mut D,
    keys: &Keyring,
    rows: &[(usize, NewDevice)],
    ctx: &AuditContext,
) -> Result<usize, StoreError> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (row, new) in rows {
        let a = &new.attrs;
        let key = (a.vendor.clone(), a.model.clone(), a.serial.clone());
        if let Some(first) = seen.insert(key, *row) {
            errors.push(RowError {
                row: *row,
                field: "serial".into(),
                message: format!("duplicates row {first} (same vendor, model and serial)"),
            });
        } else if serial_taken(db, a, None).await? {
            errors.push(RowError { row: *row, field: "serial".into(), message: serial_conflict(a) });
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::ImportRejected(errors));
    }
    for (_, new) in rows {
        let device = insert(db, keys, new, ctx.at_ms).await?;
        audit::append(db, ctx, "device.create", &format!("device:{}", device.id), None, Some(summary(&device))).await?;
    }
    audit::append(db, ctx, "device.import", "devices", None, Some(json!({ "imported": rows.len() }))).await?;
    Ok(rows.len())
}

pub async fn update<D: Db>(
    db: &mut D,
    keys: &Keyring,
    id: &DeviceId,
    patch: DevicePatch,
    ctx: &AuditContext,
) -> Result<Device, StoreError> {
    let mut device = get(db, keys, id).await?;
    if device.state.is_terminal() {
        return Err(StoreError::Conflict(format!("device {id} is decommissioned and can no longer change")));
    }
    let before = summary(&device);
    let changed = device.attrs.apply(patch);
    if changed.is_empty() {
        return Ok(device);
    }
    if changed.iter().any(|f| matches!(*f, "serial" | "model" | "vendor"))
        && serial_taken(db, &device.attrs, Some(id)).await?
    {
        return Err(StoreError::Conflict(serial_conflict(&device.attrs)));
    }
    device.updated_ms = ctx.at_ms;
    let mut values = args![id.as_str()];
    values.extend(attribute_values(keys, id, &device.attrs)?);
    values.push(device.updated_ms.into());
    db.exec(
        "UPDATE devices SET serial = $2, model = $3, vendor = $4, owner = $5, owner_contact = $6, purpose = $7, \
         criticality = $8, device_group = $9, region = $10, location = $11, firmware_version = $12, updated_ms = $13 \
         WHERE id = $1",
        values,
    )
    .await?;
    if changed.contains(&"tags") {
        set_tags(db, id, &device.attrs.tags).await?;
    }
    let after = summary(&device);
    audit::append(
        db,
        ctx,
        "device.update",
        &format!("device:{id}"),
        Some(pick(&before, &changed)),
        Some(pick(&after, &changed)),
    )
    .await?;
    Ok(device)
}

/// What a lifecycle request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    To(LifecycleState),
    /// Back to active from quarantined or paused.
    Release,
}

pub async fn transition<D: Db>(
    db: &mut D,
    keys: &Keyring,
    id: &DeviceId,
    transition: Transition,
    reason: Option<&str>,
    ctx: &AuditContext,
) -> Result<Device, StoreError> {
    let mut device = get(db, keys, id).await?;
    let from = device.state;
    let to = match transition {
        Transition::To(to) => from.transition(to)?,
        Transition::Release => from.release()?,
    };
    device.state = to;
    device.updated_ms = ctx.at_ms;
    db.exec("UPDATE devices SET state = $2, updated_ms = $3 WHERE id = $1", args![id.as_str(), to.as_str(), ctx.at_ms])
        .await?;
    if to == LifecycleState::Decommissioned {
        // One action: the identity is revoked and the device told to wipe itself.
        crate::identity::revoke_device(db, id.as_str(), "cessation_of_operation", ctx).await?;
        crate::identity::queue_command(db, id.as_str(), "wipe", ctx).await?;
    }
    audit::append(
        db,
        ctx,
        "device.lifecycle",
        &format!("device:{id}"),
        Some(json!({ "state": from.as_str() })),
        Some(json!({ "state": to.as_str(), "reason": reason })),
    )
    .await?;
    Ok(device)
}

fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The WHERE conditions of a filter, their parameters appended to `params`.
fn filter_clauses(filter: &DeviceFilter, params: &mut Vec<crate::sql::Value>) -> Vec<String> {
    let mut clauses: Vec<String> = Vec::new();
    let eq = |col: &str, v: Option<String>, clauses: &mut Vec<String>, params: &mut Vec<crate::sql::Value>| {
        if let Some(v) = v {
            params.push(crate::sql::Value::from(v));
            clauses.push(format!("{col} = ${}", params.len()));
        }
    };
    eq("state", filter.state.map(|s| s.as_str().to_owned()), &mut clauses, params);
    eq("device_group", filter.group.clone(), &mut clauses, params);
    eq("region", filter.region.clone(), &mut clauses, params);
    eq("criticality", filter.criticality.map(|c| c.as_str().to_owned()), &mut clauses, params);
    eq("model", filter.model.clone(), &mut clauses, params);
    eq("firmware_version", filter.firmware_version.clone(), &mut clauses, params);
    if let Some(tag) = &filter.tag {
        params.push(tag.into());
        clauses.push(format!("id IN (SELECT device_id FROM device_tags WHERE tag = ${})", params.len()));
    }
    if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
        params.push(like_pattern(q).into());
        let n = params.len();
        let cols = ["id", "serial", "model", "vendor", "owner", "purpose"];
        let ors: Vec<String> = cols.iter().map(|c| format!("lower(coalesce({c}, '')) LIKE ${n} ESCAPE '\\'")).collect();
        clauses.push(format!("({})", ors.join(" OR ")));
    }
    if let Some(scopes) = &filter.scopes {
        let mut ors = Vec::new();
        for scope in scopes {
            let mut ands = Vec::new();
            for (col, values) in [("device_group", &scope.groups), ("region", &scope.regions)] {
                if values.is_empty() {
                    continue;
                }
                let mut marks = Vec::new();
                for v in values {
                    params.push(v.into());
                    marks.push(format!("${}", params.len()));
                }
                ands.push(format!("{col} IN ({})", marks.join(", ")));
            }
            ors.push(if ands.is_empty() { "1 = 1".to_owned() } else { format!("({})", ands.join(" AND ")) });
        }
        clauses.push(if ors.is_empty() { "1 = 0".to_owned() } else { format!("({})", ors.join(" OR ")) });
    }
    clauses
}

pub async fn list<D: Db>(
    db: &mut D,
    keys: &Keyring,
    filter: &DeviceFilter,
    cursor: Option<&DeviceId>,
    limit: usize,
) -> Result<Page<Device>, StoreError> {
    let mut params = Vec::new();
    let mut clauses = filter_clauses(filter, &mut params);
    if let Some(c) = cursor {
        params.push(c.as_str().into());
        clauses.push(format!("id > ${}", params.len()));
    }
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    params.push(fetch.into());
    let sql = format!("SELECT {COLUMNS} FROM devices {where_} ORDER BY id LIMIT ${}", params.len());
    let mut rows = db.query(&sql, params).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let items = decode_page(db, keys, &rows).await?;
    let next = if more { items.last().map(|d| d.id.to_string()) } else { None };
    Ok(Page { items, next })
}

/// Decodes a page of device rows, with the tags of the whole page read in one query.
async fn decode_page<D: Db>(db: &mut D, keys: &Keyring, rows: &[Row]) -> Result<Vec<Device>, StoreError> {
    let mut tags: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    if !rows.is_empty() {
        let ids: Vec<String> = rows.iter().map(|r| r.text(0)).collect::<Result<_, _>>()?;
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql =
            format!("SELECT device_id, tag FROM device_tags WHERE device_id IN ({}) ORDER BY tag", marks.join(", "));
        for r in db.query(&sql, ids.into_iter().map(Into::into).collect()).await? {
            tags.entry(r.text(0)?).or_default().push(r.text(1)?);
        }
    }
    rows.iter()
        .map(|r| {
            let t = tags.remove(&r.text(0)?).unwrap_or_default();
            decode(r, keys, t)
        })
        .collect()
}

/// Devices counted by one attribute (`state`, `criticality`, `region`, `device_group`, or
/// `model` and `firmware_version` together), within a filter; most numerous first.
#[derive(Debug, Clone, Default)]
pub struct FleetSummary {
    pub by_state: Vec<(String, i64)>,
    pub by_criticality: Vec<(String, i64)>,
    pub by_region: Vec<(String, i64)>,
    /// (model, firmware version, devices), by model then version.
    pub firmware: Vec<(String, String, i64)>,
}

pub async fn fleet_summary<D: Db>(db: &mut D, filter: &DeviceFilter) -> Result<FleetSummary, StoreError> {
    let mut params = Vec::new();
    let clauses = filter_clauses(filter, &mut params);
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let mut by = async |col: &str| -> Result<Vec<(String, i64)>, StoreError> {
        let sql = format!(
            "SELECT coalesce({col}, ''), count(*) FROM devices {where_} GROUP BY coalesce({col}, '') ORDER BY 2 DESC, 1"
        );
        db.query(&sql, params.clone()).await?.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
    };
    let by_state = by("state").await?;
    let by_criticality = by("criticality").await?;
    let by_region = by("region").await?;
    let sql = format!(
        "SELECT model, coalesce(firmware_version, ''), count(*) FROM devices {where_} \
         GROUP BY model, coalesce(firmware_version, '') ORDER BY 1, 2"
    );
    let firmware = db
        .query(&sql, params.clone())
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(FleetSummary { by_state, by_criticality, by_region, firmware })
}

pub async fn count<D: Db>(db: &mut D) -> Result<i64, StoreError> {
    db.query_opt("SELECT count(*) FROM devices", vec![]).await?.map_or(Ok(0), |r| r.int(0))
}

/// A column a listing can be ordered by (the console's sortable table; the API pages by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Serial,
    Model,
    /// In lifecycle order (registered … decommissioned), not alphabetically.
    State,
    /// Low to critical.
    Criticality,
    Region,
    Updated,
}

impl SortKey {
    /// The ORDER BY expression. Text columns compare byte-wise on both backends (PostgreSQL's
    /// default collation would otherwise ignore case and punctuation where SQLite does not);
    /// a missing region sorts as the empty text.
    fn expression(self, dialect: crate::sql::Dialect) -> String {
        let text = |col: &str| match dialect {
            crate::sql::Dialect::Sqlite => format!("coalesce({col}, '')"),
            crate::sql::Dialect::Postgres => format!("coalesce({col}, '') COLLATE \"C\""),
        };
        match self {
            Self::Serial => text("serial"),
            Self::Model => text("model"),
            Self::Region => text("region"),
            Self::Updated => "updated_ms".to_owned(),
            Self::State => {
                let arms: Vec<String> = LifecycleState::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("WHEN '{}' THEN {i}", s.as_str()))
                    .collect();
                format!("CASE state {} ELSE 99 END", arms.join(" "))
            }
            Self::Criticality => {
                let arms: Vec<String> = Criticality::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("WHEN '{}' THEN {i}", c.as_str()))
                    .collect();
                format!("CASE criticality {} ELSE 99 END", arms.join(" "))
            }
        }
    }
}

/// How a sorted listing is ordered: by one column, then by id (so the order is total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceOrder {
    pub key: SortKey,
    pub descending: bool,
}

/// One page of a filtered listing in `order`, `offset` rows in; `next` is the offset of the
/// following page.
pub async fn list_sorted<D: Db>(
    db: &mut D,
    keys: &Keyring,
    filter: &DeviceFilter,
    order: DeviceOrder,
    offset: usize,
    limit: usize,
) -> Result<Page<Device>, StoreError> {
    let mut params = Vec::new();
    let clauses = filter_clauses(filter, &mut params);
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let dir = if order.descending { "DESC" } else { "ASC" };
    params.push(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX).into());
    params.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    let sql = format!(
        "SELECT {COLUMNS} FROM devices {where_} ORDER BY {} {dir}, id {dir} LIMIT ${} OFFSET ${}",
        order.key.expression(D::DIALECT),
        params.len() - 1,
        params.len()
    );
    let mut rows = db.query(&sql, params).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let items = decode_page(db, keys, &rows).await?;
    let next = if more { Some(offset.saturating_add(limit).to_string()) } else { None };
    Ok(Page { items, next })
}

/// How many devices match a filter.
pub async fn count_matching<D: Db>(db: &mut D, filter: &DeviceFilter) -> Result<i64, StoreError> {
    let mut params = Vec::new();
    let clauses = filter_clauses(filter, &mut params);
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    db.query_opt(&format!("SELECT count(*) FROM devices {where_}"), params).await?.map_or(Ok(0), |r| r.int(0))
}
