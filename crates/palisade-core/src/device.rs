//! Device identity and classification.

use std::fmt;
use std::str::FromStr;

use crate::validate::InvalidField;

/// Alphabet of device ids: Crockford-style base32, lower case, in ascending ASCII order so that
/// ids sort by their creation time.
const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Length of a device id: 20 characters, 100 bits (48 of time, 52 random).
pub const DEVICE_ID_LEN: usize = 20;

/// A server-assigned, URL-safe device id. It is also the certificate CN and the MQTT client id,
/// so it stays short (20 characters, within MQTT 3.1.1's 23) and needs no escaping anywhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    /// Builds an id from the creation time (ms since the Unix epoch) and 7 random bytes. The
    /// caller supplies both: the core reads neither the clock nor a random source.
    pub fn from_parts(unix_ms: u64, random: [u8; 7]) -> Self {
        // 48 bits of time followed by 52 bits of randomness = 100 bits = 20 base32 digits.
        let time = u128::from(unix_ms & 0xFFFF_FFFF_FFFF);
        let mut rand = 0u128;
        for b in random {
            rand = (rand << 8) | u128::from(b);
        }
        let bits = (time << 52) | (rand >> 4);
        let mut s = String::with_capacity(DEVICE_ID_LEN);
        for i in (0..DEVICE_ID_LEN).rev() {
            let digit = ((bits >> (i * 5)) & 0x1F) as usize;
            s.push(char::from(ID_ALPHABET.get(digit).copied().unwrap_or(b'0')));
        }
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeviceId {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == DEVICE_ID_LEN && s.bytes().all(|b| ID_ALPHABET.contains(&b)) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidField::new("id", format!("{s:.40?} is not a device id ({DEVICE_ID_LEN} characters of 0-9 a-z)")))
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How much harm a compromise of the device would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub const ALL: [Criticality; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for Criticality {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            InvalidField::new("criticality", format!("{s:.40?} is not one of low, medium, high, critical"))
        })
    }
}

/// A precise position. Personal data: stored encrypted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    lat: f64,
    lon: f64,
}

impl Location {
    pub fn new(lat: f64, lon: f64) -> Result<Self, InvalidField> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(InvalidField::new("location.lat", "must be between -90 and 90"));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(InvalidField::new("location.lon", "must be between -180 and 180"));
        }
        Ok(Self { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let a = DeviceId::from_parts(1_000, [0xff; 7]);
        let b = DeviceId::from_parts(1_001, [0; 7]);
        assert!(a < b);
        assert_eq!(a.as_str().len(), DEVICE_ID_LEN);
        assert_eq!(a.as_str().parse::<DeviceId>().unwrap(), a);
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in ["", "short", "ABCDEFGHJKMNPQRSTVWX", "0123456789abcdefghjkmnpq", "0123456789abcdefghi!"] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn criticality_and_location() {
        assert_eq!("high".parse::<Criticality>().unwrap(), Criticality::High);
        assert!("HIGH".parse::<Criticality>().is_err());
        assert!(Location::new(91.0, 0.0).is_err());
        assert!(Location::new(0.0, -181.0).is_err());
        assert!(Location::new(f64::NAN, 0.0).is_err());
        assert_eq!(Location::new(41.8, -87.6).unwrap().lat(), 41.8);
    }
}

/// A device's descriptive attributes: everything an operator sets.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceAttributes {
    pub serial: String,
    pub model: String,
    pub vendor: String,
    pub owner: Option<String>,
    /// Personal data: stored encrypted, never in audit summaries.
    pub owner_contact: Option<String>,
    pub purpose: Option<String>,
    pub criticality: Criticality,
    pub group: Option<String>,
    pub region: Option<String>,
    pub tags: Vec<String>,
    /// Personal data: stored encrypted, never in audit summaries.
    pub location: Option<Location>,
    pub firmware_version: Option<String>,
}

/// A device in the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub attrs: DeviceAttributes,
    pub state: crate::LifecycleState,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DevicePatch {
    pub serial: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub owner: Option<Option<String>>,
    pub owner_contact: Option<Option<String>>,
    pub purpose: Option<Option<String>>,
    pub criticality: Option<Criticality>,
    pub group: Option<Option<String>>,
    pub region: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub location: Option<Option<Location>>,
    pub firmware_version: Option<Option<String>>,
}

impl DevicePatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl DeviceAttributes {
    /// Applies a patch and names the fields that actually changed.
    pub fn apply(&mut self, patch: DevicePatch) -> Vec<&'static str> {
        let mut changed = Vec::new();
        fn set<T: PartialEq>(changed: &mut Vec<&'static str>, name: &'static str, field: &mut T, new: Option<T>) {
            if let Some(v) = new
                && *field != v
            {
                *field = v;
                changed.push(name);
            }
        }
        set(&mut changed, "serial", &mut self.serial, patch.serial);
        set(&mut changed, "model", &mut self.model, patch.model);
        set(&mut changed, "vendor", &mut self.vendor, patch.vendor);
        set(&mut changed, "owner", &mut self.owner, patch.owner);
        set(&mut changed, "owner_contact", &mut self.owner_contact, patch.owner_contact);
        set(&mut changed, "purpose", &mut self.purpose, patch.purpose);
        set(&mut changed, "criticality", &mut self.criticality, patch.criticality);
        set(&mut changed, "group", &mut self.group, patch.group);
        set(&mut changed, "region", &mut self.region, patch.region);
        set(&mut changed, "tags", &mut self.tags, patch.tags);
        set(&mut changed, "location", &mut self.location, patch.location);
        set(&mut changed, "firmware_version", &mut self.firmware_version, patch.firmware_version);
        changed
    }

    /// Whether a field holds personal data (kept out of logs and audit summaries).
    pub fn is_personal(field: &str) -> bool {
        matches!(field, "owner_contact" | "location")
    }
}

#[cfg(test)]
mod patch_tests {
    use super::*;

    fn attrs() -> DeviceAttributes {
        DeviceAttributes {
            serial: "S1".into(),
            model: "m".into(),
            vendor: "v".into(),
            owner: Some("ops".into()),
            owner_contact: None,
            purpose: None,
            criticality: Criticality::Low,
            group: None,
            region: None,
            tags: vec![],
            location: None,
            firmware_version: None,
        }
    }

    #[test]
    fn apply_names_only_real_changes() {
        let mut a = attrs();
        let changed = a.apply(DevicePatch {
            owner: Some(None),
            criticality: Some(Criticality::Low),
            region: Some(Some("eu".into())),
            ..DevicePatch::default()
        });
        assert_eq!(changed, vec!["owner", "region"]);
        assert_eq!(a.owner, None);
        assert_eq!(a.region.as_deref(), Some("eu"));
        assert!(DevicePatch::default().is_empty());
    }
}
