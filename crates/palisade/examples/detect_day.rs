//! A simulated day of a fleet through the detection engine, offline: what the shipped profiles
//! (examples/profiles/fleet.toml) say about the simulator's devices, clean and attacked.
//!
//! ```text
//! cargo run --release -p palisade --example detect_day -- [DEVICES] [HOURS] [INTERVAL_S]
//! ```
//!
//! Devices 0..11 act out examples/scenarios/attacks.toml; the others are clean. Every report goes
//! through the same code as on the server (telemetry v1 → facts with rates → engine), reconnects
//! and cloned certificates become the connection facts and events the device plane records, and
//! absence timers fire at their exact deadlines. Prints the false-positive rate on the clean
//! devices and which attacks were detected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use palisade_agent::fleet::{Action, AttackKind, Profile as DeviceProfile, Scenario, VirtualDevice};
use palisade_core::detect::{Engine, Event, Observation, Profile};
use palisade_core::telemetry::{CounterSample, rates};
use palisade_store::plane::TelemetryFacts;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A simulated device: its id, behaviour, rules and previous counters.
type Simulated = (String, VirtualDevice, Vec<Arc<Profile>>, Option<CounterSample>);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let hours: i64 = args.next().map_or(Ok(24), |a| a.parse())?;
    let interval_s: i64 = args.next().map_or(Ok(60), |a| a.parse())?;
    let profiles = palisade_server::detect::parse_profiles_toml(&std::fs::read_to_string(format!(
        "{ROOT}/examples/profiles/fleet.toml"
    ))?)
    .map_err(anyhow::Error::msg)?;
    let profiles: Vec<Arc<Profile>> = profiles.into_iter().map(|(_, p)| Arc::new(p.profile)).collect();
    let scenario = Scenario::parse(&std::fs::read_to_string(format!("{ROOT}/examples/scenarios/attacks.toml"))?)?;
    let attacked: BTreeMap<usize, AttackKind> =
        (0..devices).filter_map(|i| scenario.for_device(i).first().map(|a| (i, a.kind))).collect();

    let start_ms: i64 = 1_795_000_000_000;
    let mut fleet: Vec<Simulated> = (0..devices)
        .map(|i| {
            let kind = DeviceProfile::for_index(i);
            let model = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned));
            let rules = profiles.iter().filter(|p| p.applies_to(Some("sim"), model.as_deref())).cloned().collect();
            let mut d = VirtualDevice::new(i, kind, 1, start_ms);
            d.schedule(scenario.for_device(i));
            (format!("dev-{i:05}"), d, rules, None)
        })
        .collect();
    let mut engine = Engine::default();
    let mut alerts: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut raised = 0u64;
    let mut reports = 0u64;
    let started = std::time::Instant::now();
    for (i, (id, _, rules, _)) in fleet.iter().enumerate() {
        let obs = Observation::Connected { at_ms: start_ms - 1000, ip: format!("10.0.{}.{}", i / 250, i % 250) };
        for s in engine.observe(id, rules, &obs) {
            alerts.entry(i).or_default().insert(format!("{}/{}", s.profile, s.rule));
        }
    }
    let ticks = hours * 3600 / interval_s;
    for tick in 0..ticks {
        let now = start_ms + tick * interval_s * 1000;
        for (i, (id, device, rules, counters)) in fleet.iter_mut().enumerate() {
            let t = device.report(now);
            let mut observed = Vec::new();
            for action in &t.actions {
                match action {
                    Action::Reconnect => {
                        observed.push(Observation::Disconnected {
                            at_ms: now,
                            duration_ms: interval_s * 1000,
                            by_device: true,
                            graceful: true,
                        });
                        observed.push(Observation::Connected { at_ms: now, ip: "10.0.0.1".into() });
                    }
                    Action::CloneConnect => observed.push(Observation::Event {
                        at_ms: now,
                        event: Event::CertificateTwoPlaces,
                        detail: "certificate used from two places".into(),
                    }),
                    Action::Silent => {}
                }
            }
            if let Some(r) = &t.report {
                let (net, sys) = (r.net.as_ref(), r.sys.as_ref());
                let sample = CounterSample {
                    at_ms: now,
                    boot_id: sys.and_then(|s| s.boot_id.clone()),
                    uptime_s: sys.and_then(|s| s.uptime_s),
                    tx_bytes: net.and_then(|n| n.tx_bytes),
                    rx_bytes: net.and_then(|n| n.rx_bytes),
                };
                let rate = rates(counters.as_ref(), &sample);
                *counters = Some(sample);
                let facts = TelemetryFacts {
                    tx_bps: rate.tx_bps,
                    rx_bps: rate.rx_bps,
                    cpu_pct: sys.and_then(|s| s.cpu_pct),
                    mem_pct: sys.and_then(|s| s.mem_pct),
                    ..TelemetryFacts::default()
                };
                observed.push(Observation::Report(Box::new(palisade_server::detect::report(r, now, now, &facts))));
                reports += 1;
            }
            let mut signals = engine.expire(id, rules, now);
            for obs in &observed {
                signals.extend(engine.observe(id, rules, obs));
            }
            for s in signals.into_iter().filter(|s| s.raised) {
                raised += 1;
                alerts.entry(i).or_default().insert(format!("{}/{}", s.profile, s.rule));
            }
        }
    }
    let elapsed = started.elapsed();
    let clean = devices.saturating_sub(attacked.len());
    let clean_alerted: Vec<(&usize, &BTreeSet<String>)> =
        alerts.iter().filter(|(i, _)| !attacked.contains_key(i)).collect();
    let clean_alerts: usize = clean_alerted.iter().map(|(_, r)| r.len()).sum();
    println!(
        "{devices} devices, {hours} h at one report per {interval_s} s: {reports} reports, {raised} alarms raised, \
         engine {:.0} reports/s ({elapsed:.1?})",
        reports as f64 / elapsed.as_secs_f64()
    );
    println!(
        "false positives: {} of {clean} clean devices alerted ({:.2} %), {clean_alerts} (device, rule) alerts",
        clean_alerted.len(),
        100.0 * clean_alerted.len() as f64 / clean.max(1) as f64
    );
    for (i, rules) in clean_alerted.iter().take(10) {
        println!("  clean device {i}: {rules:?}");
    }
    for (i, kind) in &attacked {
        let got = alerts.get(i).cloned().unwrap_or_default();
        println!(
            "attack {kind:?} on device {i}: {}",
            if got.is_empty() { "MISSED".into() } else { format!("{got:?}") }
        );
    }
    Ok(())
}
