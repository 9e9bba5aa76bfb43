//! `palisade demo`: a server with a sample fleet, a simulated fleet of devices reporting over
//! MQTT (with a handful of attacks, `examples/scenarios/demo.toml`), and the two things a
//! newcomer needs to reach it (the URL and an admin key).

use std::process::ExitCode;

use anyhow::Context as _;
use palisade_core::device::DeviceAttributes;
use palisade_core::{Criticality, LifecycleState, Location, Role};
use palisade_server::config::Config;
use palisade_server::{bootstrap, new_device_id, now_ms};
use palisade_store::apikeys::KeyAuthority;
use palisade_store::audit::AuditContext;
use palisade_store::devices::{NewDevice, Transition};

/// model, vendor, purpose, group, region, criticality, (lat, lon)
type Sample = (&'static str, &'static str, &'static str, &'static str, &'static str, Criticality, (f64, f64));

const FLEET: &[Sample] = &[
    ("meter-3", "acme", "electricity metering", "meters", "us-central", Criticality::Medium, (41.8781, -87.6298)),
    ("meter-3", "acme", "electricity metering", "meters", "us-central", Criticality::Medium, (41.8819, -87.6278)),
    ("meter-3", "acme", "electricity metering", "meters", "us-east", Criticality::Medium, (40.7128, -74.0060)),
    ("gw-100", "northwind", "substation gateway", "gateways", "us-central", Criticality::Critical, (41.85, -87.65)),
    ("gw-100", "northwind", "substation gateway", "gateways", "eu-west", Criticality::Critical, (53.3498, -6.2603)),
    ("cam-2", "optica", "site surveillance", "cameras", "eu-west", Criticality::High, (53.34, -6.26)),
    ("cam-2", "optica", "site surveillance", "cameras", "us-east", Criticality::High, (40.71, -74.0)),
    ("pump-ctl", "hydrix", "water pumping", "industrial", "us-east", Criticality::Critical, (40.73, -73.99)),
    ("tracker-5", "fleetline", "cold-chain tracking", "trackers", "eu-central", Criticality::Low, (52.52, 13.405)),
    ("tracker-5", "fleetline", "cold-chain tracking", "trackers", "eu-central", Criticality::Low, (48.1351, 11.582)),
    ("thermo-1", "acme", "building climate", "buildings", "us-central", Criticality::Low, (41.88, -87.63)),
    ("thermo-1", "acme", "building climate", "buildings", "eu-west", Criticality::Low, (53.35, -6.25)),
];

/// The attacks the demo's simulated fleet acts out.
const SCENARIO: &str = include_str!("../../../examples/scenarios/demo.toml");
/// The security profiles that watch the simulated fleet.
const PROFILES: &str = include_str!("../../../examples/profiles/fleet.toml");
/// SBOMs of the sample fleet's firmware builds: (model, version, document).
const SBOMS: &[(&str, &str, &str)] = &[
    ("meter-3", "1.4.2", include_str!("../../../examples/vuln/sbom-meter-3-1.4.2.cdx.json")),
    ("meter-3", "1.3.9", include_str!("../../../examples/vuln/sbom-meter-3-1.3.9.cdx.json")),
    ("gw-100", "1.4.2", include_str!("../../../examples/vuln/sbom-gw-100-1.4.2.spdx.json")),
];
/// OSV advisories touching them, imported as one list, then a VEX of the meter's vendor.
const OSV: &[&str] = &[
    include_str!("../../../examples/vuln/advisories/GHSA-jfh8-c2jp-5v3q.json"),
    include_str!("../../../examples/vuln/advisories/DSA-5532-1.json"),
    include_str!("../../../examples/vuln/advisories/GO-2023-1988.json"),
    include_str!("../../../examples/vuln/advisories/GHSA-x84v-xcm2-53pg.json"),
    include_str!("../../../examples/vuln/advisories/GHSA-35jh-r3h4-6jhm.json"),
];
const VEX: &str = include_str!("../../../examples/vuln/advisories/meter-3-lodash.vex.cdx.json");

/// Attaches the sample SBOMs and imports the sample advisories, through the API.
async fn vulnerabilities(url: &str, ca: &std::path::Path, key: &str) -> anyhow::Result<()> {
    let api = crate::firmware::Api::new(url, ca, key)?;
    for (model, version, sbom) in SBOMS {
        let path = format!("/api/v1/firmware/{model}/{version}/sbom");
        api.call("PUT", &path, "application/json", sbom.as_bytes().to_vec()).await?;
    }
    let list = format!("[{}]", OSV.join(","));
    api.call("POST", "/api/v1/advisories?name=examples/vuln/advisories", "application/json", list.into_bytes()).await?;
    let vex = "/api/v1/advisories?name=meter-3-lodash.vex.cdx.json";
    api.call("POST", vex, "application/json", VEX.as_bytes().to_vec()).await?;
    Ok(())
}

pub async fn run(mut config: Config, simulated: usize) -> anyhow::Result<ExitCode> {
    let data_dir = config.data_dir.clone().context("demo needs a data directory")?;
    if config.detection.profiles_file.is_none() {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&data_dir)
            .with_context(|| format!("{}", data_dir.display()))?;
        let path = data_dir.join("profiles.toml");
        std::fs::write(&path, PROFILES).with_context(|| format!("{}", path.display()))?;
        config.detection.profiles_file = Some(path);
    }
    let running = palisade_server::start(config).await.context("cannot start the demo server")?;
    println!("{}", crate::listening_line(&running));
    let ctx = || AuditContext { actor: bootstrap::local_actor("demo"), source_ip: None, at_ms: now_ms() };
    let store = &running.store;
    let fresh = store.count_devices().await? == 0;
    if fresh {
        for (n, (model, vendor, purpose, group, region, criticality, (lat, lon))) in FLEET.iter().enumerate() {
            let attrs = DeviceAttributes {
                serial: format!("{}-{:04}", model.to_uppercase(), 1000 + n),
                model: (*model).into(),
                vendor: (*vendor).into(),
                owner: Some(format!("{group}-team")),
                owner_contact: Some(format!("{group}-oncall@example.com")),
                purpose: Some((*purpose).into()),
                criticality: *criticality,
                group: Some((*group).into()),
                region: Some((*region).into()),
                tags: vec!["demo".into()],
                location: Some(Location::new(*lat, *lon)?),
                firmware_version: Some(if n % 4 == 0 { "1.3.9".into() } else { "1.4.2".into() }),
            };
            let d = store.create_device(NewDevice { id: new_device_id()?, attrs }, ctx()).await?;
            let path: &[LifecycleState] = match n % 6 {
                0 => &[LifecycleState::Provisioned],
                1 => &[LifecycleState::Provisioned, LifecycleState::Active, LifecycleState::Quarantined],
                2 => &[LifecycleState::Provisioned, LifecycleState::Active, LifecycleState::Paused],
                _ => &[LifecycleState::Provisioned, LifecycleState::Active],
            };
            for to in path {
                store.transition_device(d.id.clone(), Transition::To(*to), Some("demo fleet".into()), ctx()).await?;
            }
        }
    }
    let key = store
        .create_api_key("demo".into(), KeyAuthority::Role(Role::Admin), Some(now_ms() + 86_400_000), ctx())
        .await?;
    let url = format!("https://localhost:{}", running.console_addr.port());
    let ca = bootstrap::root_ca_path(&data_dir);
    if fresh {
        vulnerabilities(&url, &ca, key.key.as_str()).await.context("cannot load the sample SBOMs and advisories")?;
    }
    if simulated > 0 {
        // The simulated fleet goes through the public interfaces like any other client.
        let scenario = palisade_agent::fleet::Scenario::parse(SCENARIO)?;
        let scenario = if scenario.check_devices(simulated).is_ok() { scenario } else { Default::default() };
        let opts = palisade_agent::sim::SimOptions {
            server: url.clone(),
            api_key: key.key.as_str().to_owned(),
            ca_pem: std::fs::read(&ca).with_context(|| format!("{}", ca.display()))?,
            devices: simulated,
            duration: std::time::Duration::from_secs(7 * 86_400),
            interval: std::time::Duration::from_secs(10),
            qos: 1,
            ramp: Some(100.0),
            broker: None,
            scenario,
            speed: 1.0,
            group: "sim".into(),
            seed: 1,
        };
        tokio::spawn(async move {
            if let Err(e) = palisade_agent::sim::run(opts).await {
                eprintln!("demo: the simulated fleet stopped: {e}");
            }
        });
    }
    let admin_password = bootstrap::initial_admin_path(&data_dir);
    println!(
        "\nPalisade demo is running.\n\n  Console:   {url}/ui/\n  API:       {url}/api/v1/\n  CA:        {ca}\n  Admin key: {key} (valid 24 h)\n  Sign in:   user admin, one-time password in {pw} \
         (the first sign-in changes it and enrols MFA)\n\n\
         Try:\n  curl --cacert {ca} -H 'Authorization: Bearer {key}' '{url}/api/v1/devices?state=quarantined'\n  \
         curl --cacert {ca} -H 'Authorization: Bearer {key}' '{url}/api/v1/alerts?status=open'\n  \
         curl --cacert {ca} -H 'Authorization: Bearer {key}' '{url}/api/v1/audit?limit=5'\n  \
         curl --cacert {ca} -H 'Authorization: Bearer {key}' '{url}/api/v1/vulnerabilities/CVE-2021-44228/devices'\n\n\
         {simulated} simulated devices (group \"sim\") report every 10 s; from minute 2 a few of them act out \
         attacks (examples/scenarios/demo.toml).\n\
         Ctrl-C stops the demo.",
        ca = ca.display(),
        key = key.key.as_str(),
        pw = admin_password.display(),
    );
    crate::wait_for_signal().await?;
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
