//! Wire types → validated domain types (every failure names its field), and back.

use palisade_core::device::{Device, DeviceAttributes, DevicePatch as CorePatch};
use palisade_core::validate::{self, MAX_TEXT};
use palisade_core::{Criticality, InvalidField, Location};
use palisade_proto::{DeviceCreate, DevicePatch, DeviceView, LocationView};

/// Longest serial number.
const MAX_SERIAL: usize = 128;
/// Longest firmware version string.
const MAX_VERSION: usize = 64;

fn opt(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, InvalidField> {
    match v {
        None => Ok(None),
        Some(s) => {
            let s = validate::optional_text(field, &s, max)?;
            Ok((!s.is_empty()).then_some(s))
        }
    }
}

fn location(v: Option<LocationView>) -> Result<Option<Location>, InvalidField> {
    v.map(|l| Location::new(l.lat, l.lon)).transpose()
}

pub fn attributes(c: DeviceCreate) -> Result<DeviceAttributes, InvalidField> {
    Ok(DeviceAttributes {
        serial: validate::required_text("serial", &c.serial, MAX_SERIAL)?,
        model: validate::required_text("model", &c.model, MAX_TEXT)?,
        vendor: validate::required_text("vendor", &c.vendor, MAX_TEXT)?,
        owner: opt("owner", c.owner, MAX_TEXT)?,
        owner_contact: opt("owner_contact", c.owner_contact, MAX_TEXT)?,
        purpose: opt("purpose", c.purpose, MAX_TEXT)?,
        criticality: c.criticality.map_or(Criticality::Medium, Into::into),
        group: opt("group", c.group, MAX_TEXT)?,
        region: opt("region", c.region, MAX_TEXT)?,
        tags: validate::tags(&c.tags)?,
        location: location(c.location)?,
        firmware_version: opt("firmware_version", c.firmware_version, MAX_VERSION)?,
    })
}

pub fn patch(p: DevicePatch) -> Result<CorePatch, InvalidField> {
    let nullable =
        |field: &str, v: Option<Option<String>>, max: usize| -> Result<Option<Option<String>>, InvalidField> {
            v.map(|inner| opt(field, inner, max)).transpose()
        };
    Ok(CorePatch {
        serial: p.serial.map(|s| validate::required_text("serial", &s, MAX_SERIAL)).transpose()?,
        model: p.model.map(|s| validate::required_text("model", &s, MAX_TEXT)).transpose()?,
        vendor: p.vendor.map(|s| validate::required_text("vendor", &s, MAX_TEXT)).transpose()?,
        owner: nullable("owner", p.owner, MAX_TEXT)?,
        owner_contact: nullable("owner_contact", p.owner_contact, MAX_TEXT)?,
        purpose: nullable("purpose", p.purpose, MAX_TEXT)?,
        criticality: p.criticality.map(Into::into),
        group: nullable("group", p.group, MAX_TEXT)?,
        region: nullable("region", p.region, MAX_TEXT)?,
        tags: p.tags.map(|t| validate::tags(&t)).transpose()?,
        location: p.location.map(location).transpose()?,
        firmware_version: nullable("firmware_version", p.firmware_version, MAX_VERSION)?,
    })
}

pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn parse_rfc3339(field: &str, s: &str) -> Result<i64, InvalidField> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| InvalidField::new(field, format!("{s:.40?} is not an RFC 3339 time: {e}")))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| InvalidField::new(field, "out of range"))
}

/// The API view; personal data only when `personal` (the caller may edit devices).
pub fn view(d: &Device, personal: bool) -> DeviceView {
    let a = &d.attrs;
    DeviceView {
        id: d.id.to_string(),
        serial: a.serial.clone(),
        model: a.model.clone(),
        vendor: a.vendor.clone(),
        owner: a.owner.clone(),
        owner_contact: if personal { a.owner_contact.clone() } else { None },
        purpose: a.purpose.clone(),
        criticality: a.criticality.into(),
        group: a.group.clone(),
        region: a.region.clone(),
        tags: a.tags.clone(),
        location: if personal { a.location.map(|l| LocationView { lat: l.lat(), lon: l.lon() }) } else { None },
        firmware_version: a.firmware_version.clone(),
        state: d.state.into(),
        created_at: rfc3339(d.created_ms),
        updated_at: rfc3339(d.updated_ms),
    }
}
