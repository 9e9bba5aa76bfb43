//! `agent.toml`: where the agent finds Palisade, how it proves who it is, and what it reports.
//! One declared schema; unknown keys are refused and every error names the key at fault.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration the agent can run with (checked by [`AgentConfig::parse`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub server: Server,
    pub identity: Identity,
    #[serde(default)]
    pub telemetry: Telemetry,
    #[serde(default)]
    pub facts: Facts,
    #[serde(default)]
    pub commands: Commands,
    #[serde(default)]
    pub diagnostics: Diagnostics,
    /// Signed firmware updates; absent: the agent takes none.
    pub update: Option<Update>,
}

/// Signed firmware updates (TUF): where their state lives, what hardware this is, and the hooks
/// that install, boot and check an image (program and arguments, no shell; run with
/// `PALISADE_SLOT`, `PALISADE_IMAGE`, `PALISADE_VERSION` set).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// The device model images must be built for (a target's `hardware`).
    pub hardware: String,
    /// Trusted metadata, anti-rollback counter, A/B slots (mode 0700); default `identity.dir/update`.
    pub dir: Option<PathBuf>,
    /// The pinned initial root (`1.root.json`); absent: fetched from Palisade on first use.
    pub root: Option<PathBuf>,
    #[serde(default = "Update::default_interval")]
    pub check_interval_secs: u64,
    /// Writes the slot's image to where the device boots from (default: the slot file is enough).
    #[serde(default)]
    pub install: Vec<String>,
    /// Boots the new slot (default: nothing, no real hardware).
    #[serde(default)]
    pub boot: Vec<String>,
    /// Exit 0 = the new image is healthy (default: always healthy).
    #[serde(default)]
    pub health: Vec<String>,
    /// How long a hook may run before it is killed and counted as failed.
    #[serde(default = "Update::default_hook_timeout")]
    pub hook_timeout_secs: u64,
}

impl Update {
    fn default_interval() -> u64 {
        3600
    }

    fn default_hook_timeout() -> u64 {
        300
    }
}

/// What `collect-diagnostics` gathers besides processes and sockets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Diagnostics {
    /// The device's log, whose last lines go into the bundle.
    pub log_file: Option<PathBuf>,
    pub log_lines: usize,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Self { log_file: None, log_lines: 100 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The device listener (EST), e.g. `https://palisade.example.com:8444`.
    pub est_url: String,
    /// The MQTT listener, e.g. `mqtts://palisade.example.com:8883`.
    pub mqtt_url: String,
    /// Palisade's root CA (PEM): the only root the agent trusts.
    pub root_ca: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The id Palisade assigned; needed with a token. With a factory certificate the server
    /// finds the device by its serial and the id is read from the issued certificate.
    pub device_id: Option<String>,
    /// Where the key (mode 0600), the certificate and the spool live.
    pub dir: PathBuf,
    /// A file holding the one-time enrollment token…
    pub token_file: Option<PathBuf>,
    /// …or a factory certificate and key.
    pub factory_cert: Option<PathBuf>,
    pub factory_key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    pub interval_secs: u64,
    /// Disk the offline buffer may use; the oldest reports are dropped (and counted) beyond it.
    pub spool_max_bytes: u64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self { interval_secs: 60, spool_max_bytes: 16 * 1024 * 1024 }
    }
}

/// Facts the device cannot read about itself, or overrides where it can.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub firmware_version: Option<String>,
    /// The firmware image whose SHA-256 is reported.
    pub firmware_image: Option<PathBuf>,
    pub secure_boot: Option<bool>,
    pub debug_enabled: Option<bool>,
    pub cell: Option<palisade_proto::telemetry::Cell>,
    pub location: Option<palisade_proto::telemetry::Loc>,
    /// `"mmcli"`: the cellular identity is asked of ModemManager (`cell` fills what it cannot tell).
    pub modem: Option<String>,
    /// gpsd's `host:port` (e.g. `127.0.0.1:2947`): the location is its fix (else `location`).
    pub gpsd: Option<String>,
    /// The auth log (e.g. `/var/log/auth.log`) whose new failed logins each report counts.
    pub auth_log: Option<PathBuf>,
}

/// Hooks run for commands (program and arguments, no shell).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    #[serde(default)]
    pub reboot: Vec<String>,
    #[serde(default)]
    pub quarantine_mode: Vec<String>,
}

/// What is wrong with a configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: &'static str, message: String },
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    /// Parses and checks `text` (read from `path`, which errors name).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // toml's message names the key and the line (e.g. "unknown field `intervall`").
        let config: Self =
            toml::from_str(text).map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
        let invalid = |key, message: &str| ConfigError::Invalid { path: path.to_owned(), key, message: message.into() };
        if !config.server.est_url.starts_with("https://") {
            return Err(invalid("server.est_url", "must be an https:// URL"));
        }
        if !config.server.mqtt_url.starts_with("mqtts://") {
            return Err(invalid("server.mqtt_url", "must be an mqtts:// URL (TLS only)"));
        }
        let i = &config.identity;
        if let Some(id) = &i.device_id
            && (id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(invalid("identity.device_id", "must be the device id Palisade assigned"));
        }
        if i.token_file.is_some() && i.device_id.is_none() {
            return Err(invalid("identity.device_id", "needed with identity.token_file"));
        }
        match (&i.token_file, &i.factory_cert, &i.factory_key) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                return Err(invalid("identity.token_file", "give a token or a factory certificate and key, not both"));
            }
            (None, Some(_), None) => return Err(invalid("identity.factory_key", "needed with identity.factory_cert")),
            (None, None, Some(_)) => return Err(invalid("identity.factory_cert", "needed with identity.factory_key")),
            (None, None, None) => {
                return Err(invalid("identity.token_file", "needed (or identity.factory_cert and factory_key)"));
            }
        }
        if !(1..=86_400).contains(&config.telemetry.interval_secs) {
            return Err(invalid("telemetry.interval_secs", "must be between 1 and 86400"));
        }
        if config.diagnostics.log_lines > 10_000 {
            return Err(invalid("diagnostics.log_lines", "must be at most 10000"));
        }
        if config.telemetry.spool_max_bytes < 1024 * 1024 {
            return Err(invalid("telemetry.spool_max_bytes", "must be at least 1 MiB"));
        }
        if config.facts.modem.as_ref().is_some_and(|m| m != "mmcli") {
            return Err(invalid("facts.modem", "must be \"mmcli\" (ModemManager)"));
        }
        let host_port =
            |a: &str| a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if config.facts.gpsd.as_deref().is_some_and(|a| !host_port(a)) {
            return Err(invalid("facts.gpsd", "must be host:port, e.g. 127.0.0.1:2947"));
        }
        if let Some(u) = &config.update {
            let model = |m: &str| !m.is_empty() && m.len() <= 64 && !m.chars().any(char::is_control);
            if !model(&u.hardware) {
                return Err(invalid("update.hardware", "must be the device model (1 to 64 characters)"));
            }
            if !(60..=7 * 86_400).contains(&u.check_interval_secs) {
                return Err(invalid("update.check_interval_secs", "must be between 60 and 604800"));
            }
            if !(1..=3600).contains(&u.hook_timeout_secs) {
                return Err(invalid("update.hook_timeout_secs", "must be between 1 and 3600"));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
est_url = "https://palisade.example.com:8444"
mqtt_url = "mqtts://palisade.example.com:8883"
root_ca = "/etc/palisade/root-ca.pem"

[identity]
device_id = "06h05qdcsfk8ph7e73kt"
dir = "/var/lib/palisade-agent"
token_file = "/etc/palisade/token"

[telemetry]
interval_secs = 30

[facts]
firmware_version = "1.4.2"
secure_boot = true
location = { lat = 41.8781, lon = -87.6298 }

[commands]
reboot = ["/sbin/reboot"]
"#;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(Path::new("agent.toml"), text)
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.telemetry.interval_secs, 30);
        assert_eq!(c.telemetry.spool_max_bytes, 16 * 1024 * 1024);
        assert_eq!(c.facts.location.unwrap().lat, 41.8781);
        assert_eq!(c.commands.reboot, ["/sbin/reboot"]);
        assert!(c.commands.quarantine_mode.is_empty());
        let facts = "secure_boot = true\nmodem = \"mmcli\"\ngpsd = \"[::1]:2947\"\nauth_log = \"/var/log/auth.log\"";
        let c = parse(&GOOD.replace("secure_boot = true", facts)).unwrap();
        assert_eq!((c.facts.modem.as_deref(), c.facts.gpsd.as_deref()), (Some("mmcli"), Some("[::1]:2947")));
        assert_eq!(c.facts.auth_log.as_deref(), Some(Path::new("/var/log/auth.log")));
        assert!(c.update.is_none());
        let c = parse(&format!("{GOOD}\n[update]\nhardware = \"meter-x\"\nhealth = [\"/bin/true\"]\n")).unwrap();
        let u = c.update.unwrap();
        assert_eq!((u.hardware.as_str(), u.check_interval_secs, u.hook_timeout_secs), ("meter-x", 3600, 300));
        assert_eq!((u.health, u.install, u.dir, u.root), (vec!["/bin/true".to_owned()], vec![], None, None));
    }

    #[test]
    fn errors_name_the_key() {
        for (edit, key) in [
            (GOOD.replace("interval_secs = 30", "intervall_secs = 30"), "intervall_secs"),
            (GOOD.replace("interval_secs = 30", "interval_secs = 0"), "telemetry.interval_secs"),
            (GOOD.replace("interval_secs = 30", "interval_secs = \"often\""), "interval_secs"),
            (GOOD.replace("https://palisade.example.com:8444", "http://x"), "server.est_url"),
            (GOOD.replace("mqtts://", "mqtt://"), "server.mqtt_url"),
            (GOOD.replace("06h05qdcsfk8ph7e73kt", "../etc"), "identity.device_id"),
            (GOOD.replace("token_file = \"/etc/palisade/token\"", ""), "identity.token_file"),
            (GOOD.replace("token_file = \"/etc/palisade/token\"", "factory_cert = \"/f.pem\""), "identity.factory_key"),
            (GOOD.replace("[server]\n", ""), "server"),
            (GOOD.replace("secure_boot = true", "modem = \"qmicli\""), "facts.modem"),
            (GOOD.replace("secure_boot = true", "gpsd = \"127.0.0.1\""), "facts.gpsd"),
            (GOOD.replace("secure_boot = true", "gpsd = \":2947\""), "facts.gpsd"),
            (format!("{GOOD}\n[update]\nhardware = \"\""), "update.hardware"),
            (format!("{GOOD}\n[update]\ninstall = []"), "hardware"),
            (format!("{GOOD}\n[update]\nhardware = \"m\"\ncheck_interval_secs = 1"), "update.check_interval_secs"),
            (format!("{GOOD}\n[update]\nhardware = \"m\"\nhook_timeout_secs = 0"), "update.hook_timeout_secs"),
            (format!("{GOOD}\n[update]\nhardware = \"m\"\nreboot = []"), "reboot"),
        ] {
            let e = parse(&edit).unwrap_err().to_string();
            assert!(e.starts_with("agent.toml: "), "{e}");
            assert!(e.contains(key), "{key} not in: {e}");
        }
        let e = AgentConfig::load(Path::new("/nonexistent/agent.toml")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/agent.toml") && e.contains("cannot read"), "{e}");
    }
}
