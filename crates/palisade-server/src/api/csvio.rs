//! CSV import and export of the inventory.
//!
//! Columns: `serial,model,vendor,owner,owner_contact,purpose,criticality,group,region,tags,lat,
//! lon,firmware_version` (tags separated by `;`). Only `serial`, `model` and `vendor` are
//! required; unknown columns are refused. Every row is checked before anything is stored, and
//! every bad row is reported.

use palisade_core::device::{Device, DeviceAttributes};
use palisade_proto::{DeviceCreate, LocationView};
use palisade_store::devices::RowError;
use serde::Deserialize;

use super::convert;

pub const COLUMNS: &[&str] = &[
    "serial",
    "model",
    "vendor",
    "owner",
    "owner_contact",
    "purpose",
    "criticality",
    "group",
    "region",
    "tags",
    "lat",
    "lon",
    "firmware_version",
];
/// Most rows in one import.
pub const MAX_ROWS: usize = 100_000;
/// Most row errors reported.
const MAX_ERRORS: usize = 1000;

#[derive(Debug, Deserialize)]
struct CsvDevice {
    serial: String,
    model: String,
    vendor: String,
    owner: Option<String>,
    owner_contact: Option<String>,
    purpose: Option<String>,
    criticality: Option<String>,
    group: Option<String>,
    region: Option<String>,
    tags: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    firmware_version: Option<String>,
}

fn row_error(row: usize, field: &str, message: impl Into<String>) -> RowError {
    RowError { row, field: field.to_owned(), message: message.into() }
}

/// Parses and validates a whole CSV document: every row, or the list of what is wrong.
pub fn parse(body: &[u8]) -> Result<Vec<(usize, DeviceAttributes)>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(body);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![row_error(0, "header", format!("cannot read the header: {e}"))]);
        }
    };
    let mut errors = Vec::new();
    for h in &headers {
        if !COLUMNS.contains(&h) {
            errors.push(row_error(0, h, format!("unknown column; known columns: {}", COLUMNS.join(","))));
        }
    }
    for required in ["serial", "model", "vendor"] {
        if !headers.iter().any(|h| h == required) {
            errors.push(row_error(0, required, "required column missing"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for (i, record) in reader.deserialize::<CsvDevice>().enumerate() {
        let row = i + 1;
        if row > MAX_ROWS {
            return Err(vec![row_error(row, "row", format!("more than {MAX_ROWS} rows; split the file"))]);
        }
        let parsed = record.map_err(|e| {
            let field = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    err.field().and_then(|f| headers.get(usize::try_from(f).unwrap_or(usize::MAX))).unwrap_or("row")
                }
                _ => "row",
            };
            let message = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err.kind().to_string(),
                _ => e.to_string(),
            };
            row_error(row, field, message)
        });
        let result = parsed.and_then(|d| {
            let criticality = match d.criticality.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(
                    c.parse::<palisade_core::Criticality>().map_err(|e| row_error(row, &e.field, e.reason))?.into(),
                ),
            };
            let location = match (d.lat, d.lon) {
                (Some(lat), Some(lon)) => Some(LocationView { lat, lon }),
                (None, None) => None,
                _ => return Err(row_error(row, "lat", "lat and lon go together")),
            };
            let tags =
                d.tags.map(|t| t.split(';').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect());
            convert::attributes(DeviceCreate {
                serial: d.serial,
                model: d.model,
                vendor: d.vendor,
                owner: d.owner,
                owner_contact: d.owner_contact,
                purpose: d.purpose,
                criticality,
                group: d.group,
                region: d.region,
                tags: tags.unwrap_or_default(),
                location,
                firmware_version: d.firmware_version,
            })
            .map_err(|e| row_error(row, &e.field, e.reason))
        });
        match result {
            Ok(attrs) => rows.push((row, attrs)),
            Err(e) if errors.len() < MAX_ERRORS => errors.push(e),
            Err(_) => {}
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// The export header: the import columns plus what the server assigns.
pub fn export_header() -> Vec<&'static str> {
    let mut h = vec!["id"];
    h.extend_from_slice(COLUMNS);
    h.extend_from_slice(&["state", "created_at", "updated_at"]);
    h
}

/// One device as an export row; personal fields only when `personal`.
pub fn export_row(d: &Device, personal: bool) -> Vec<String> {
    let a = &d.attrs;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let loc = if personal { a.location } else { None };
    vec![
        d.id.to_string(),
        a.serial.clone(),
        a.model.clone(),
        a.vendor.clone(),
        o(&a.owner),
        if personal { o(&a.owner_contact) } else { String::new() },
        o(&a.purpose),
        a.criticality.as_str().to_owned(),
        o(&a.group),
        o(&a.region),
        a.tags.join(";"),
        loc.map(|l| l.lat().to_string()).unwrap_or_default(),
        loc.map(|l| l.lon().to_string()).unwrap_or_default(),
        o(&a.firmware_version),
        d.state.as_str().to_owned(),
        convert::rfc3339(d.created_ms),
        convert::rfc3339(d.updated_ms),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_parse() {
        let rows =
            parse(b"serial,model,vendor,criticality,tags,lat,lon\nA1,m,v,high,a;b,1.5,2.5\nA2,m,v,,,,\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.tags, vec!["a", "b"]);
        assert_eq!(rows[1].1.criticality, palisade_core::Criticality::Medium);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_field() {
        let errs = parse(
            b"serial,model,vendor,criticality,lat,lon\nA1,m,v,severe,,\n,m,v,low,,\nA3,m,v,low,95,0\nA4,m,v,low,x,1\n",
        )
        .unwrap_err();
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.row, e.field.as_str())).collect();
        assert_eq!(got, vec![(1, "criticality"), (2, "serial"), (3, "location.lat"), (4, "lat")]);
    }

    #[test]
    fn unknown_and_missing_columns_are_refused() {
        let errs = parse(b"serial,model,colour\n1,2,3\n").unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["colour", "vendor"]);
    }
}
