use std::sync::Arc;

use proptest::prelude::*;

use super::*;

const MIN: i64 = 60_000;

fn rule(id: &str, condition: Condition) -> Rule {
    Rule {
        id: id.into(),
        condition,
        severity: Severity::High,
        response: Response::AlertOnly,
        dry_run: false,
        alarm_after: 1,
        clear_after: 1,
        auto_resolve: true,
    }
}

fn profile(rules: Vec<Rule>) -> Vec<Arc<Profile>> {
    vec![Arc::new(Profile { name: "p".into(), groups: vec![], models: vec![], rules })]
}

fn report(at_ms: i64) -> Report {
    Report { at_ms, received_ms: at_ms, ..Report::default() }
}

fn obs(r: Report) -> Observation {
    Observation::Report(Box::new(r))
}

/// Feeds reports one a minute from `from` (minutes) for `n` minutes; returns every signal.
fn run(e: &mut Engine, p: &[Arc<Profile>], from: i64, n: i64, f: impl Fn(i64) -> Report) -> Vec<Signal> {
    (from..from + n).flat_map(|m| e.observe("d", p, &obs(f(m * MIN)))).collect()
}

fn raised(s: &[Signal]) -> usize {
    s.iter().filter(|s| s.raised).count()
}

#[test]
fn threshold_alarms_after_n_consecutive_and_clears_after_m() {
    let mut r = rule("cpu", Condition::Threshold { metric: Metric::CpuPct, above: true, value: 90.0 });
    r.alarm_after = 3;
    r.clear_after = 2;
    let p = profile(vec![r]);
    let mut e = Engine::default();
    let cpu = |v: f64| move |at| Report { cpu_pct: Some(v), ..report(at) };
    assert!(run(&mut e, &p, 0, 2, cpu(95.0)).is_empty());
    assert!(run(&mut e, &p, 2, 1, cpu(10.0)).is_empty(), "a normal datapoint restarts the count");
    let s = run(&mut e, &p, 3, 5, cpu(95.0));
    assert_eq!(raised(&s), 1, "{s:?}");
    assert!(s[0].detail.contains("cpu_pct = 95.0"), "{s:?}");
    assert!(run(&mut e, &p, 8, 1, cpu(10.0)).is_empty());
    let s = run(&mut e, &p, 9, 1, cpu(10.0));
    assert_eq!((s.len(), s[0].raised), (1, false));
}

#[test]
fn membership_allowlists_and_denylists() {
    let ports = rule(
        "ports",
        Condition::Membership {
            field: SetField::ListeningPort,
            in_set: false,
            set: Set::Ports(vec![(443, 443), (554, 554)]),
        },
    );
    let dests = rule(
        "dst",
        Condition::Membership {
            field: SetField::Destination,
            in_set: false,
            set: Set::Cidrs(vec![Cidr::parse("198.51.100.0/24").unwrap()]),
        },
    );
    let p = profile(vec![ports, dests]);
    let mut e = Engine::default();
    let normal = |at| Report {
        listening: Some(vec![443, 554]),
        destinations: Some(vec![Destination { dst: "198.51.100.10".into(), port: 8883 }]),
        ..report(at)
    };
    assert!(run(&mut e, &p, 0, 5, normal).is_empty());
    let telnet = |at| Report { listening: Some(vec![443, 554, 23]), ..normal(at) };
    let s = run(&mut e, &p, 5, 3, telnet);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].rule, "ports");
    assert!(s[0].detail.contains("23"), "{s:?}");
    let c2 = |at| Report {
        destinations: Some(vec![
            Destination { dst: "198.51.100.10".into(), port: 8883 },
            Destination { dst: "203.0.113.66".into(), port: 4444 },
        ]),
        ..normal(at)
    };
    let s = run(&mut e, &p, 8, 1, c2);
    // Telnet closed (ports clears), the C2 destination alarms.
    assert!(s.iter().any(|s| s.rule == "ports" && !s.raised), "{s:?}");
    assert!(s.iter().any(|s| s.rule == "dst" && s.raised && s.detail.contains("203.0.113.66")), "{s:?}");
    // A report without a net section says nothing either way.
    assert!(run(&mut e, &p, 9, 3, report).is_empty());
}

#[test]
fn baseline_learns_within_an_hour_and_catches_exfiltration_but_not_the_day() {
    let r = rule("exfil", Condition::Baseline { metric: Metric::TxBps, sensitivity: 6.0, warmup: 30, min_value: 0.0 });
    let p = profile(vec![r]);
    let mut e = Engine::default();
    // A meter: ~40 B/s swinging 0.4x..1.6x over the day with ±20 % noise; two days of it.
    let day = |at: i64| 1.0 - 0.6 * ((at % 86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU).cos();
    let noise = |m: i64| 0.8 + 0.4 * ((m * 7919) % 101) as f64 / 100.0;
    let meter = move |at: i64| Report { tx_bps: Some(40.0 * day(at) * noise(at / MIN)), ..report(at) };
    let s = run(&mut e, &p, 0, 2 * 1440, meter);
    assert!(s.is_empty(), "false alarms over two days: {s:?}");
    // An hour in, a 60x upload alarms at once.
    let mut e = Engine::default();
    assert!(run(&mut e, &p, 0, 60, meter).is_empty());
    let s = run(&mut e, &p, 60, 3, move |at| Report { tx_bps: Some(40.0 * 60.0 * day(at)), ..report(at) });
    assert_eq!(raised(&s), 1, "{s:?}");
    // Held out: keeping it up does not make it normal; it clears once uploads are back.
    let s = run(&mut e, &p, 63, 30, move |at| Report { tx_bps: Some(40.0 * 60.0 * day(at)), ..report(at) });
    assert!(s.is_empty(), "{s:?}");
    let s = run(&mut e, &p, 93, 2, meter);
    assert_eq!(s.iter().filter(|s| !s.raised).count(), 1, "{s:?}");
}

#[test]
fn false_positive_feedback_teaches_the_baseline() {
    let r = rule("tx", Condition::Baseline { metric: Metric::TxBps, sensitivity: 6.0, warmup: 10, min_value: 0.0 });
    let p = profile(vec![r]);
    let mut e = Engine::default();
    run(&mut e, &p, 0, 60, |at| Report { tx_bps: Some(100.0), ..report(at) });
    let high = |at| Report { tx_bps: Some(5_000.0), ..report(at) };
    assert_eq!(raised(&run(&mut e, &p, 60, 20, high)), 1);
    e.false_positive("d", "p", "tx");
    // The new level is learned once accepted: after it clears, it no longer alarms.
    run(&mut e, &p, 80, 200, high);
    let s = run(&mut e, &p, 280, 5, high);
    assert_eq!(raised(&s), 0, "{s:?}");
}

#[test]
fn fleet_percentile_flags_the_outlier() {
    let r = rule(
        "fleet",
        Condition::FleetPercentile { metric: Metric::RxBps, percentile: 95.0, factor: 3.0, min_devices: 10 },
    );
    let p = profile(vec![r]);
    let mut e = Engine::default();
    for i in 0..20 {
        let s = e.observe(&format!("d{i}"), &p, &obs(Report { rx_bps: Some(100.0 + f64::from(i)), ..report(0) }));
        assert!(s.is_empty(), "{s:?}");
    }
    let s = e.observe("big", &p, &obs(Report { rx_bps: Some(5_000.0), ..report(120_000) }));
    assert_eq!(raised(&s), 1, "{s:?}");
}

#[test]
fn geofence_around_the_first_fix_and_polygon() {
    let p = profile(vec![
        rule("stay", Condition::Geofence { shape: Shape::Circle { center: None, radius_km: 1.0 } }),
        rule(
            "area",
            Condition::Geofence {
                shape: Shape::Polygon(vec![
                    LatLon { lat: 41.0, lon: -88.5 },
                    LatLon { lat: 41.0, lon: -87.0 },
                    LatLon { lat: 42.5, lon: -87.0 },
                    LatLon { lat: 42.5, lon: -88.5 },
                ]),
            },
        ),
    ]);
    let mut e = Engine::default();
    let at =
        |lat: f64, lon: f64| move |t| Report { fix: Some(Fix { at: LatLon { lat, lon }, acc_m: 20.0 }), ..report(t) };
    assert!(run(&mut e, &p, 0, 10, at(41.8781, -87.6298)).is_empty());
    // 2 km north: outside the 1 km fence, still in the area.
    let s = run(&mut e, &p, 10, 2, at(41.8961, -87.6298));
    assert_eq!((s.len(), s[0].rule.as_str()), (1, "stay"), "{s:?}");
    let s = run(&mut e, &p, 12, 1, at(43.0, -87.6298));
    assert_eq!((s.len(), s[0].rule.as_str()), (1, "area"), "{s:?}");
}

#[test]
fn impossible_travel_between_fixes() {
    let p = profile(vec![rule("travel", Condition::ImpossibleTravel { max_kmh: 900.0, min_km: 5.0 })]);
    let mut e = Engine::default();
    let at =
        |lat: f64, lon: f64| move |t| Report { fix: Some(Fix { at: LatLon { lat, lon }, acc_m: 10.0 }), ..report(t) };
    // Driving at 50 km/h is fine.
    assert!(run(&mut e, &p, 0, 1, at(41.8781, -87.6298)).is_empty());
    assert!(run(&mut e, &p, 1, 1, at(41.8856, -87.6298)).is_empty());
    let s = run(&mut e, &p, 2, 1, at(50.1109, 8.6821));
    assert_eq!(raised(&s), 1, "{s:?}");
    assert!(s[0].detail.contains("km/h"), "{s:?}");
}

#[test]
fn sim_binding_change_fires_once() {
    let p = profile(vec![rule("sim", Condition::SimBinding)]);
    let mut e = Engine::default();
    let cell =
        |imei: &'static str| move |t| Report { iccid: Some("8914".into()), imei: Some(imei.into()), ..report(t) };
    assert!(run(&mut e, &p, 0, 5, cell("35847209")).is_empty());
    let s = run(&mut e, &p, 5, 5, cell("35332811"));
    assert_eq!(raised(&s), 1, "{s:?}");
    assert!(s[0].detail.contains("35332811") && s[0].detail.contains("was 35847209"), "{s:?}");
}

#[test]
fn inactivity_fires_by_deadline_and_clears_on_the_next_report() {
    let p = profile(vec![rule("silent", Condition::Inactivity { factor: 5.0, min_ms: 0 })]);
    let mut e = Engine::default();
    assert_eq!(e.deadline("d", &p), None);
    run(&mut e, &p, 0, 10, report);
    // Last report at minute 9, usual interval a minute: due at minute 14, to the millisecond.
    assert_eq!(e.deadline("d", &p), Some(14 * MIN));
    assert!(e.expire("d", &p, 14 * MIN - 1).is_empty());
    let s = e.expire("d", &p, 14 * MIN);
    assert_eq!(raised(&s), 1, "{s:?}");
    assert!(e.expire("d", &p, 20 * MIN).is_empty(), "fires once");
    assert_eq!(e.deadline("d", &p), None);
    let s = run(&mut e, &p, 30, 1, report);
    assert_eq!((s.len(), s[0].raised), (1, false), "{s:?}");
    // A device that signs off is offline, not silent: no deadline until it is back.
    e.observe("d", &p, &Observation::Disconnected { at_ms: 30 * MIN, duration_ms: 1, by_device: true, graceful: true });
    assert_eq!(e.deadline("d", &p), None);
    run(&mut e, &p, 90, 1, report);
    assert!(e.deadline("d", &p).is_some());
    // After a restart, silence counts from the restart.
    e.resume(200 * MIN);
    assert_eq!(e.deadline("d", &p), Some(205 * MIN));
}

#[test]
fn flapping_and_short_sessions() {
    let mut short = rule("short", Condition::SessionDuration { min_ms: 30_000 });
    short.alarm_after = 3;
    let p = profile(vec![rule("flap", Condition::Flapping { connects: 5, window_ms: 10 * MIN }), short]);
    let mut e = Engine::default();
    let mut all = Vec::new();
    for i in 0..6 {
        let t = i * 20_000;
        all.extend(e.observe("d", &p, &Observation::Connected { at_ms: t, ip: "10.0.0.1".into() }));
        all.extend(e.observe(
            "d",
            &p,
            &Observation::Disconnected { at_ms: t + 5_000, duration_ms: 5_000, by_device: true, graceful: true },
        ));
    }
    assert!(all.iter().any(|s| s.rule == "flap" && s.raised), "{all:?}");
    assert!(all.iter().any(|s| s.rule == "short" && s.raised), "{all:?}");
    assert_eq!(raised(&all), 2, "each alarms once: {all:?}");
    // Sessions we ended (takeover, revocation) do not count.
    let mut e = Engine::default();
    for i in 0..5 {
        let s = e.observe(
            "d",
            &p,
            &Observation::Disconnected { at_ms: i, duration_ms: 1, by_device: false, graceful: false },
        );
        assert!(s.is_empty());
    }
}

#[test]
fn failed_login_burst_over_a_window() {
    let p = profile(vec![rule("logins", Condition::FailedLogins { count: 20, window_ms: 10 * MIN })]);
    let mut e = Engine::default();
    // A mistyped password now and then is not a burst.
    assert!(
        run(&mut e, &p, 0, 60, |t| Report { failed_logins: Some(u64::from(t % (7 * MIN) == 0)), ..report(t) })
            .is_empty()
    );
    let s = run(&mut e, &p, 60, 2, |t| Report { failed_logins: Some(120), ..report(t) });
    assert_eq!(raised(&s), 1, "{s:?}");
}

#[test]
fn firmware_integrity_downgrade_and_posture() {
    let p = profile(vec![
        rule("integrity", Condition::FirmwareIntegrity),
        rule("downgrade", Condition::FirmwareDowngrade),
        rule("posture", Condition::Posture),
    ]);
    let mut e = Engine::default();
    let fw = |v: &'static str, d: &'static str| {
        move |t| Report {
            fw_version: Some(v.into()),
            fw_digest: Some(d.into()),
            secure_boot: Some(true),
            debug_enabled: Some(false),
            ..report(t)
        }
    };
    assert!(run(&mut e, &p, 0, 3, fw("1.9.3", "sha256:aa")).is_empty());
    assert!(run(&mut e, &p, 3, 3, fw("1.10.0", "sha256:bb")).is_empty(), "an upgrade is fine");
    let s = run(&mut e, &p, 6, 1, fw("1.10.0", "sha256:evil"));
    assert_eq!((s.len(), s[0].rule.as_str()), (1, "integrity"), "{s:?}");
    let s = run(&mut e, &p, 7, 1, fw("1.9.3", "sha256:aa"));
    assert_eq!((s.len(), s[0].rule.as_str()), (1, "downgrade"), "{s:?}");
    let s = run(&mut e, &p, 8, 1, |t| Report { debug_enabled: Some(true), ..fw("1.10.0", "sha256:evil")(t) });
    assert!(s.iter().any(|s| s.rule == "posture" && s.raised && s.detail.contains("debug")), "{s:?}");
}

#[test]
fn security_events_raise_every_time() {
    let p = profile(vec![rule("clone", Condition::CertificateTwoPlaces), rule("acl", Condition::UnauthorizedTopic)]);
    let mut e = Engine::default();
    let ev = |event| Observation::Event { at_ms: 5, event, detail: "from 10.0.0.2".into() };
    assert_eq!(raised(&e.observe("d", &p, &ev(Event::CertificateTwoPlaces))), 1);
    assert_eq!(raised(&e.observe("d", &p, &ev(Event::CertificateTwoPlaces))), 1);
    let s = e.observe("d", &p, &ev(Event::UnauthorizedTopic));
    assert_eq!((s.len(), s[0].rule.as_str()), (1, "acl"));
}

fn any_condition() -> impl Strategy<Value = Condition> {
    let metric = prop::sample::select(Metric::ALL.to_vec());
    prop_oneof![
        (metric.clone(), any::<bool>(), -1e6f64..1e6).prop_map(|(metric, above, value)| Condition::Threshold {
            metric,
            above,
            value
        }),
        (metric.clone(), 0.5f64..20.0, 0u64..50).prop_map(|(metric, sensitivity, warmup)| Condition::Baseline {
            metric,
            sensitivity,
            warmup,
            min_value: 0.0
        }),
        (metric, 0.0f64..100.0, 0.1f64..10.0, 0usize..5).prop_map(|(metric, percentile, factor, min_devices)| {
            Condition::FleetPercentile { metric, percentile, factor, min_devices }
        }),
        (0.1f64..1000.0).prop_map(|radius_km| Condition::Geofence { shape: Shape::Circle { center: None, radius_km } }),
        (1.0f64..2000.0, 0.0f64..50.0).prop_map(|(max_kmh, min_km)| Condition::ImpossibleTravel { max_kmh, min_km }),
        Just(Condition::SimBinding),
        (1.0f64..100.0, 0i64..100_000).prop_map(|(factor, min_ms)| Condition::Inactivity { factor, min_ms }),
        (1usize..10, 1i64..1_000_000).prop_map(|(connects, window_ms)| Condition::Flapping { connects, window_ms }),
        (0i64..100_000).prop_map(|min_ms| Condition::SessionDuration { min_ms }),
        (1u64..100, 1i64..1_000_000).prop_map(|(count, window_ms)| Condition::FailedLogins { count, window_ms }),
        Just(Condition::FirmwareIntegrity),
        Just(Condition::FirmwareDowngrade),
        Just(Condition::Posture),
    ]
}

fn any_observation() -> impl Strategy<Value = Observation> {
    let f = prop::option::of(prop_oneof![any::<f64>(), -1e9f64..1e9]);
    let s = prop::option::of("[0-9a-z.]{0,6}");
    prop_oneof![
        (
            (any::<i64>(), any::<i64>(), f.clone(), f.clone(), f, prop::option::of(any::<u64>())),
            (s.clone(), s.clone(), s.clone(), s),
            prop::option::of((any::<f64>(), any::<f64>(), any::<f64>())),
            prop::option::of(prop::collection::vec(any::<u16>(), 0..4)),
        )
            .prop_map(|((at_ms, received_ms, tx, cpu, rx, logins), (v, d, iccid, imei), fix, listening)| {
                Observation::Report(Box::new(Report {
                    at_ms,
                    received_ms,
                    tx_bps: tx,
                    rx_bps: rx,
                    cpu_pct: cpu,
                    failed_logins: logins,
                    fw_version: v,
                    fw_digest: d,
                    iccid,
                    imei,
                    listening,
                    fix: fix.map(|(lat, lon, acc_m)| Fix { at: LatLon { lat, lon }, acc_m }),
                    ..Report::default()
                }))
            }),
        (any::<i64>()).prop_map(|at_ms| Observation::Connected { at_ms, ip: "10.0.0.1".into() }),
        (any::<i64>(), any::<i64>(), any::<bool>(), any::<bool>()).prop_map(
            |(at_ms, duration_ms, by_device, graceful)| {
                Observation::Disconnected { at_ms, duration_ms, by_device, graceful }
            }
        ),
    ]
}

proptest! {
    /// Whatever devices send and whatever valid rules say, the engine neither panics nor grows
    /// without bound, and every signal names a rule of the profile.
    #[test]
    fn no_observation_takes_the_engine_down(
        conditions in prop::collection::vec(any_condition(), 1..6),
        observations in prop::collection::vec(any_observation(), 1..400),
        expire_at in any::<i64>(),
    ) {
        let rules: Vec<Rule> = conditions.into_iter().enumerate().map(|(i, c)| rule(&format!("r{i}"), c)).collect();
        let p = profile(rules);
        let mut e = Engine::default();
        for o in &observations {
            for s in e.observe("d", &p, o) {
                prop_assert!(p[0].rules.iter().any(|r| r.id == s.rule));
            }
        }
        let _ = e.deadline("d", &p);
        let _ = e.expire("d", &p, expire_at);
        let state = e.devices.get("d").unwrap();
        prop_assert!(state.connects.len() <= RECENT_EVENTS && state.logins.len() <= RECENT_EVENTS);
        prop_assert!(state.gaps.len() <= GAPS && state.firmware.len() <= FIRMWARE_VERSIONS);
    }
}
