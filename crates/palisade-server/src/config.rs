//! Configuration: one declared schema, read from TOML, overlaid by `PALISADE_…` variables and
//! then by command-line flags. Unknown keys are refused with their name and line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use palisade_store::StoreLocation;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A secret setting: never printed, zeroised on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `palisade=debug,sqlx=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` without authentication (for a Prometheus scraper). When false, a
    /// bearer key with `system.manage` is required.
    pub public: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { public: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often the audit chain head is signed (seconds). Also signed at shutdown.
    pub checkpoint_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { checkpoint_interval_secs: 60 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session ends after this long without a request.
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, whatever happens.
    pub session_absolute_secs: u64,
    /// Built-in roles whose holders must use MFA.
    pub mfa_required_roles: Vec<String>,
    /// The first delay after repeated failed sign-ins (doubling with each further failure).
    pub throttle_base_delay_ms: u64,
    /// Failed sign-ins that lock an account.
    pub lockout_after: u32,
    /// How long a lock lasts unless an administrator lifts it.
    pub lockout_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 30 * 60,
            session_absolute_secs: 12 * 3600,
            mfa_required_roles: vec!["admin".into(), "security-analyst".into()],
            throttle_base_delay_ms: 250,
            lockout_after: 10,
            lockout_secs: 15 * 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// Validity of device certificates, in days.
    pub validity_days: i64,
}

impl Default for PkiConfig {
    fn default() -> Self {
        Self { validity_days: 90 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Security profiles to load at start (TOML, `[[profile]]` tables in the API's JSON shape;
    /// see examples/profiles/fleet.toml). They replace profiles of the same name.
    pub profiles_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirmwareConfig {
    /// Largest firmware image accepted for upload, in bytes.
    pub max_image_bytes: u64,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        Self { max_image_bytes: 1 << 30 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VulnerabilitiesConfig {
    /// Also match components without a purl by CPE vendor:product:version against VEX/CSAF
    /// statements naming a CPE. Off by default: such matches are lower confidence (labelled `cpe`).
    pub cpe_matching: bool,
}

/// Everything `palisade serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the server keeps its database (SQLite), master key and PKI files.
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite database.
    pub database_url: Option<Secret>,
    /// The master key file (32 bytes, mode 0600). Default: `DATA_DIR/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Console and REST API (HTTPS).
    pub console_addr: SocketAddr,
    /// Device HTTPS: EST enrollment, CRL (and firmware, later).
    pub device_https_addr: SocketAddr,
    /// Device MQTT over TLS (client certificates required).
    pub mqtt_addr: SocketAddr,
    /// Extra names (DNS or IP) for the listener certificate, besides localhost.
    pub tls_names: Vec<String>,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub audit: AuditConfig,
    pub auth: AuthConfig,
    pub pki: PkiConfig,
    pub detection: DetectionConfig,
    pub firmware: FirmwareConfig,
    pub vulnerabilities: VulnerabilitiesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: None,
            database_url: None,
            master_key_file: None,
            console_addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            device_https_addr: SocketAddr::from(([0, 0, 0, 0], 8444)),
            mqtt_addr: SocketAddr::from(([0, 0, 0, 0], 8883)),
            tls_names: Vec::new(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            audit: AuditConfig::default(),
            auth: AuthConfig::default(),
            pki: PkiConfig::default(),
            detection: DetectionConfig::default(),
            firmware: FirmwareConfig::default(),
            vulnerabilities: VulnerabilitiesConfig::default(),
        }
    }
}

/// The environment variables that override the file, by key.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PALISADE_DATA_DIR", "data_dir"),
    ("PALISADE_DATABASE_URL", "database_url"),
    ("PALISADE_MASTER_KEY_FILE", "master_key_file"),
    ("PALISADE_CONSOLE_ADDR", "console_addr"),
    ("PALISADE_DEVICE_HTTPS_ADDR", "device_https_addr"),
    ("PALISADE_MQTT_ADDR", "mqtt_addr"),
    ("PALISADE_TLS_NAMES", "tls_names (comma-separated)"),
    ("PALISADE_LOG_FORMAT", "log.format"),
    ("PALISADE_LOG_LEVEL", "log.level"),
    ("PALISADE_METRICS_PUBLIC", "metrics.public"),
    ("PALISADE_AUDIT_CHECKPOINT_INTERVAL_SECS", "audit.checkpoint_interval_secs"),
    ("PALISADE_AUTH_SESSION_IDLE_SECS", "auth.session_idle_secs"),
    ("PALISADE_AUTH_THROTTLE_BASE_DELAY_MS", "auth.throttle_base_delay_ms"),
    ("PALISADE_DETECTION_PROFILES_FILE", "detection.profiles_file"),
    ("PALISADE_FIRMWARE_MAX_IMAGE_BYTES", "firmware.max_image_bytes"),
    ("PALISADE_VULNERABILITIES_CPE_MATCHING", "vulnerabilities.cpe_matching"),
];

impl Config {
    /// Parses TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, path)
    }

    /// Applies `PALISADE_…` variables from `get` (normally `std::env::var`).
    pub fn overlay_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            v.parse::<T>().map_err(|e| ConfigError::Env { name, message: format!("{v:?}: {e}") })
        }
        if let Some(v) = get("PALISADE_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = get("PALISADE_DATABASE_URL") {
            self.database_url = Some(Secret::new(v));
        }
        if let Some(v) = get("PALISADE_MASTER_KEY_FILE") {
            self.master_key_file = Some(v.into());
        }
        if let Some(v) = get("PALISADE_CONSOLE_ADDR") {
            self.console_addr = parse("PALISADE_CONSOLE_ADDR", &v)?;
        }
        if let Some(v) = get("PALISADE_DEVICE_HTTPS_ADDR") {
            self.device_https_addr = parse("PALISADE_DEVICE_HTTPS_ADDR", &v)?;
        }
        if let Some(v) = get("PALISADE_MQTT_ADDR") {
            self.mqtt_addr = parse("PALISADE_MQTT_ADDR", &v)?;
        }
        if let Some(v) = get("PALISADE_TLS_NAMES") {
            self.tls_names = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = get("PALISADE_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "PALISADE_LOG_FORMAT",
                        message: format!("{v:?}: use text or json"),
                    });
                }
            };
        }
        if let Some(v) = get("PALISADE_LOG_LEVEL") {
            self.log.level = v;
        }
        if let Some(v) = get("PALISADE_METRICS_PUBLIC") {
            self.metrics.public = parse("PALISADE_METRICS_PUBLIC", &v)?;
        }
        if let Some(v) = get("PALISADE_AUDIT_CHECKPOINT_INTERVAL_SECS") {
            self.audit.checkpoint_interval_secs = parse("PALISADE_AUDIT_CHECKPOINT_INTERVAL_SECS", &v)?;
        }
        if let Some(v) = get("PALISADE_AUTH_SESSION_IDLE_SECS") {
            self.auth.session_idle_secs = parse("PALISADE_AUTH_SESSION_IDLE_SECS", &v)?;
        }
        if let Some(v) = get("PALISADE_DETECTION_PROFILES_FILE") {
            self.detection.profiles_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("PALISADE_AUTH_THROTTLE_BASE_DELAY_MS") {
            self.auth.throttle_base_delay_ms = parse("PALISADE_AUTH_THROTTLE_BASE_DELAY_MS", &v)?;
        }
        if let Some(v) = get("PALISADE_FIRMWARE_MAX_IMAGE_BYTES") {
            self.firmware.max_image_bytes = parse("PALISADE_FIRMWARE_MAX_IMAGE_BYTES", &v)?;
        }
        if let Some(v) = get("PALISADE_VULNERABILITIES_CPE_MATCHING") {
            self.vulnerabilities.cpe_matching = parse("PALISADE_VULNERABILITIES_CPE_MATCHING", &v)?;
        }
        Ok(())
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.is_none() {
            return Err(ConfigError::Invalid(
                "data_dir is required (--data-dir, PALISADE_DATA_DIR or data_dir =)".into(),
            ));
        }
        if let Some(url) = &self.database_url
            && !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database_url must be a postgres:// URL (leave it unset for the embedded SQLite database)".into(),
            ));
        }
        if !(1..=825).contains(&self.pki.validity_days) {
            return Err(ConfigError::Invalid("pki.validity_days must be between 1 and 825".into()));
        }
        if self.audit.checkpoint_interval_secs == 0 {
            return Err(ConfigError::Invalid("audit.checkpoint_interval_secs must be at least 1".into()));
        }
        Ok(())
    }

    pub fn data_dir(&self) -> Result<&Path, ConfigError> {
        self.data_dir.as_deref().ok_or_else(|| ConfigError::Invalid("data_dir is required".into()))
    }

    pub fn master_key_path(&self) -> Result<PathBuf, ConfigError> {
        Ok(match &self.master_key_file {
            Some(p) => p.clone(),
            None => self.data_dir()?.join("master.key"),
        })
    }

    pub fn store_location(&self) -> Result<StoreLocation, ConfigError> {
        Ok(match &self.database_url {
            Some(url) => StoreLocation::Postgres(url.expose().to_owned()),
            None => StoreLocation::Sqlite(self.data_dir()?.join("palisade.db")),
        })
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = Config::from_toml(
            "data_dir = \"/var/lib/palisade\"\nconsole_addr = \"127.0.0.1:9443\"\n\n[log]\nformat = \"json\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(c.console_addr.port(), 9443);
        assert_eq!(c.log.format, LogFormat::Json);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e =
            Config::from_toml("data_dir = \"/x\"\n\n[log]\nformat = \"json\"\ncolour = true\n", Path::new("p.toml"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.overlay_env(|k| (k == "PALISADE_DATABASE_URL").then(|| "postgres://u:hunter2@db/p".to_owned())).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.to_masked_toml().contains("hunter2"));
        assert!(format!("{:?}", c.store_location()).contains("***") || c.data_dir.is_none());
    }

    #[test]
    fn env_overlay_and_its_errors() {
        let mut c = Config::default();
        c.overlay_env(|k| match k {
            "PALISADE_CONSOLE_ADDR" => Some("127.0.0.1:0".into()),
            "PALISADE_DATA_DIR" => Some("/tmp/x".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.console_addr.port(), 0);
        let e = c.overlay_env(|k| (k == "PALISADE_CONSOLE_ADDR").then(|| "nope".into())).unwrap_err();
        assert!(e.to_string().contains("PALISADE_CONSOLE_ADDR"), "{e}");
        c.database_url = Some(Secret::new("mysql://x"));
        assert!(c.validate().is_err());
    }
}
