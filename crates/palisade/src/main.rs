//! `palisade`: the one binary. CLI wiring only; the work happens in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use palisade_core::Role;
use palisade_server::config::{Config, LogFormat, Secret};
use palisade_server::{bootstrap, now_ms};
use palisade_store::apikeys::KeyAuthority;
use palisade_store::audit::AuditContext;

mod demo;
mod firmware;
mod rollout;
mod vuln;

#[derive(Debug, Parser)]
#[command(name = "palisade", version, about = "IoT fleet security control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: REST API (and, as they land, console and device plane).
    Serve(ServeArgs),
    /// Run a server with a sample fleet on this machine, and print how to reach it.
    Demo(DemoArgs),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// API keys (local administration: needs the data directory).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The master key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run a simulated fleet against a server: devices registered through the API, each
    /// enrolled over EST with its own key, reporting over MQTT, acting out a scenario's attacks.
    Sim(SimArgs),
    /// Signed firmware updates: offline keys, roots and targets metadata, publishing.
    #[command(subcommand)]
    Firmware(firmware::FirmwareCommand),
    /// Staged firmware rollouts: create, status, pause, resume, approve, abort.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Vulnerabilities: SBOMs of firmware builds, advisory imports, affected devices.
    #[command(subcommand)]
    Vuln(vuln::VulnCommand),
    /// Run the device agent: enroll over EST, report telemetry over MQTT, run commands.
    Agent {
        /// The agent's configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
struct SimArgs {
    /// The console URL (REST API).
    #[arg(long)]
    server: String,
    /// An API key allowed to create devices and enrollment tokens.
    #[arg(long, env = "PALISADE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Palisade's root CA (PEM).
    #[arg(long)]
    ca: PathBuf,
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// How long to run: `90s`, `5m`, `1h`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// How often each device reports.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Reports per second across the whole fleet (sets each device's interval; overrides
    /// --interval).
    #[arg(long)]
    rate: Option<f64>,
    /// MQTT QoS of the reports: 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Connections opened per second at the start (default: all at once).
    #[arg(long)]
    ramp: Option<f64>,
    /// Report to another MQTT broker instead (`mqtts://host:port`), e.g. Mosquitto for a side
    /// by side run; devices are still enrolled through Palisade.
    #[arg(long, requires = "broker_ca")]
    broker: Option<String>,
    /// The CA of that broker's server certificate (PEM).
    #[arg(long)]
    broker_ca: Option<PathBuf>,
    /// Attacks to act out (TOML; see examples/scenarios/attacks.toml).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Write what happened (devices, attacks, load figures) as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Simulated time runs this many times faster than real time (1 to 1000): `--speed 10
    /// --duration 66s` acts out 11 minutes of a scenario. Report times stay in the past.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// The group the simulated devices are registered in.
    #[arg(long, default_value = "sim")]
    group: String,
    /// The same seed gives the same fleet behaviour.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `90s`, `5m`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?} is not a duration like 90s, 5m or 1h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Write the root CA (certificate and private key, PEM) to a new file of mode 0600, for
    /// offline storage.
    ExportRoot {
        #[command(flatten)]
        target: Target,
        /// The file to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Before first start: use an existing root (certificate and private key, PEM) instead of
    /// creating one.
    ImportRoot {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        file: PathBuf,
    },
}

/// Where the server's data is: the same flags for every local command.
#[derive(Debug, Args)]
struct Target {
    /// A TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory (database, master key, PKI).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded database.
    #[arg(long)]
    database_url: Option<String>,
    /// The master key file (default: DATA_DIR/master.key).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
}

impl Target {
    /// Defaults, then the file, then `PALISADE_…` variables, then flags.
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        c.overlay_env(|k| std::env::var(k).ok())?;
        if let Some(d) = &self.data_dir {
            c.data_dir = Some(d.clone());
        }
        if let Some(u) = &self.database_url {
            c.database_url = Some(Secret::new(u.clone()));
        }
        if let Some(m) = &self.master_key_file {
            c.master_key_file = Some(m.clone());
        }
        Ok(c)
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    target: Target,
    /// Console and REST API address (HTTPS); port 0 picks a free port.
    #[arg(long)]
    console_addr: Option<std::net::SocketAddr>,
    /// Device HTTPS address (EST, CRL); port 0 picks a free port.
    #[arg(long)]
    device_https_addr: Option<std::net::SocketAddr>,
    /// Device MQTT over TLS address; port 0 picks a free port.
    #[arg(long)]
    mqtt_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the demo keeps its data (kept between runs).
    #[arg(long, default_value = "palisade-demo")]
    data_dir: PathBuf,
    /// Console and REST API address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    console_addr: std::net::SocketAddr,
    /// Device HTTPS address (EST, CRL).
    #[arg(long, default_value = "127.0.0.1:8444")]
    device_https_addr: std::net::SocketAddr,
    /// Device MQTT address.
    #[arg(long, default_value = "127.0.0.1:8883")]
    mqtt_addr: std::net::SocketAddr,
    /// Simulated devices reporting over MQTT (0: none).
    #[arg(long, default_value_t = 200)]
    devices: usize,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration file (and the PALISADE_… environment); print the effective
    /// configuration with secrets masked.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Create an API key and print it (only the key, on stdout). Works while the server runs.
    Create {
        #[command(flatten)]
        target: Target,
        /// admin, security-analyst, operator, technician or auditor.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the key expires (default: never).
        #[arg(long)]
        expires: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain and signed checkpoints; exit 1 naming the first bad entry.
    Verify {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-wrap every data key under a new master key (safe while the server runs).
    Rotate {
        #[command(flatten)]
        target: Target,
    },
}

fn init_logging(format: LogFormat, level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// mimalloc instead of the system allocator: see BENCHMARKS.md (MQTT QoS 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let mut config = args.target.config()?;
            if let Some(a) = args.console_addr {
                config.console_addr = a;
            }
            if let Some(a) = args.device_https_addr {
                config.device_https_addr = a;
            }
            if let Some(a) = args.mqtt_addr {
                config.mqtt_addr = a;
            }
            init_logging(config.log.format, &config.log.level);
            serve(config).await
        }
        Command::Demo(args) => {
            let mut config = Config::default();
            config.overlay_env(|k| std::env::var(k).ok())?;
            config.data_dir = Some(args.data_dir);
            config.console_addr = args.console_addr;
            config.device_https_addr = args.device_https_addr;
            config.mqtt_addr = args.mqtt_addr;
            init_logging(config.log.format, "warn");
            demo::run(config, args.devices).await
        }
        Command::Sim(args) => {
            init_logging(LogFormat::Text, "warn");
            let scenario = match &args.scenario {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
                    palisade_agent::fleet::Scenario::parse(&text).with_context(|| format!("{}", path.display()))?
                }
                None => palisade_agent::fleet::Scenario::default(),
            };
            let ca_pem = std::fs::read(&args.ca).with_context(|| format!("{}", args.ca.display()))?;
            let opts = palisade_agent::sim::SimOptions {
                server: args.server,
                api_key: args.api_key,
                ca_pem,
                devices: args.devices,
                duration: args.duration,
                #[allow(clippy::cast_precision_loss)]
                interval: match args.rate {
                    Some(rate) if rate > 0.0 => std::time::Duration::from_secs_f64(args.devices as f64 / rate),
                    Some(_) => anyhow::bail!("--rate must be above 0"),
                    None => args.interval,
                },
                qos: args.qos,
                ramp: args.ramp,
                broker: match (args.broker, args.broker_ca) {
                    (Some(url), Some(ca)) => {
                        Some((url, std::fs::read(&ca).with_context(|| format!("{}", ca.display()))?))
                    }
                    _ => None,
                },
                scenario,
                speed: if (1.0..=1000.0).contains(&args.speed) {
                    args.speed
                } else {
                    anyhow::bail!("--speed must be between 1 and 1000")
                },
                group: args.group,
                seed: args.seed,
            };
            let report = palisade_agent::sim::run(opts).await?;
            let l = &report.load;
            println!(
                "devices={} attacks={} enroll_s={:.1} handshakes={} published={} acked={} msgs/s={:.1} \
                 puback_ms p50={:.1} p99={:.1} errors={}",
                report.devices.len(),
                report.attacks.len(),
                l.enroll_seconds,
                l.handshakes,
                l.published,
                l.acked,
                l.msgs_per_s,
                l.puback_p50_ms,
                l.puback_p99_ms,
                l.errors
            );
            if let Some(path) = args.report {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("{}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent { config } => {
            let config = palisade_agent::config::AgentConfig::load(&config)?;
            init_logging(LogFormat::Text, "info");
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                if wait_for_signal().await.is_ok() {
                    let _ = stop.send(true);
                }
            });
            let exit = palisade_agent::run::run(config, stopped).await?;
            eprintln!("agent stopped: {exit:?}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Firmware(cmd) => {
            init_logging(LogFormat::Text, "warn");
            firmware::run(cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollout(cmd) => {
            init_logging(LogFormat::Text, "warn");
            rollout::run(cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Vuln(cmd) => {
            init_logging(LogFormat::Text, "warn");
            vuln::run(cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let mut config = Config::from_file(&file)?;
            config.overlay_env(|k| std::env::var(k).ok())?;
            config.validate()?;
            println!("{}", config.to_masked_toml());
            eprintln!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Apikey(ApikeyCommand::Create { target, role, name, expires }) => {
            let config = target.config()?;
            init_logging(LogFormat::Text, "warn");
            let role: Role = role.parse()?;
            let name = palisade_core::validate::required_text("name", &name, 128)?;
            let store = bootstrap::open_store(&config, false, None).await?;
            let expires_ms = expires.map(|d| now_ms().saturating_add(i64::from(d) * 86_400_000));
            let ctx = AuditContext { actor: bootstrap::local_actor("apikey create"), source_ip: None, at_ms: now_ms() };
            let key = store.create_api_key(name, KeyAuthority::Role(role), expires_ms, ctx).await?;
            store.close().await;
            println!("{}", key.key.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify { target }) => {
            let config = target.config()?;
            init_logging(LogFormat::Text, "warn");
            let store = bootstrap::open_store(&config, false, None).await?;
            let result = store.verify_audit().await?;
            store.close().await;
            match result {
                Ok(v) => {
                    println!("audit log intact: {} entries, {} signed checkpoints", v.entries, v.checkpoints);
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    println!("audit log BROKEN at entry {}: {b}", b.seq());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Ca(CaCommand::ExportRoot { target, out }) => {
            let config = target.config()?;
            init_logging(LogFormat::Text, "warn");
            let store = bootstrap::open_store(&config, false, None).await?;
            bootstrap::export_root(&store, &out).await?;
            let ctx =
                AuditContext { actor: bootstrap::local_actor("ca export-root"), source_ip: None, at_ms: now_ms() };
            store
                .record(
                    ctx,
                    "pki.root_exported",
                    "pki:root".into(),
                    Some(serde_json::json!({"file": out.display().to_string()})),
                )
                .await?;
            store.close().await;
            eprintln!("root CA written to {} (mode 0600): store it offline", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Ca(CaCommand::ImportRoot { target, file }) => {
            let config = target.config()?;
            init_logging(LogFormat::Text, "warn");
            let store = bootstrap::open_store(&config, true, None).await?;
            bootstrap::import_root(&store, &file).await?;
            let ctx =
                AuditContext { actor: bootstrap::local_actor("ca import-root"), source_ip: None, at_ms: now_ms() };
            store.record(ctx, "pki.root_imported", "pki:root".into(), None).await?;
            store.close().await;
            eprintln!("root CA imported; the issuing CAs are created under it at first start");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate { target }) => {
            let config = target.config()?;
            init_logging(LogFormat::Text, "warn");
            let id = bootstrap::rotate_master_key(&config).await?;
            println!("master key rotated; new key id {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints the contract's listening line (the only line on stdout), then serves until SIGTERM
/// or Ctrl-C.
pub(crate) fn listening_line(running: &palisade_server::Running) -> String {
    // Field order as in the contract: `event` first.
    format!(
        r#"{{"event":"listening","console":{},"device_https":{},"mqtt":{}}}"#,
        serde_json::Value::String(running.console_addr.to_string()),
        serde_json::Value::String(running.device_addr.to_string()),
        serde_json::Value::String(running.mqtt_addr.to_string())
    )
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let running = palisade_server::start(config).await.context("cannot start")?;
    println!("{}", listening_line(&running));
    wait_for_signal().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        r = tokio::signal::ctrl_c() => r.context("cannot watch Ctrl-C"),
    }
}
