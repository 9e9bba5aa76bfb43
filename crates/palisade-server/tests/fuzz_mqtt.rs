//! Mutation fuzzer over the device plane's decoding (MQTT 3.1.1 and 5 frames) and session rules.
//! Stable Rust, fixed seed (cargo-fuzz needs nightly); `PALISADE_FUZZ_ITERATIONS` for longer.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes as v5m;
use rumqttc::v5::mqttbytes::v5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ID: &str = "06h05qdcsfk8ph7e73kt";

fn seeds() -> Vec<Vec<u8>> {
    let topic = format!("devices/{ID}/telemetry");
    let payload = br#"{"v":1,"seq":1,"net":{"tx_bytes":1}}"#.to_vec();
    let mut v4s = BytesMut::new();
    v4::Packet::Connect(v4::Connect::new(ID)).write(&mut v4s, 1 << 20).unwrap();
    let mut p = v4::Publish::new(topic.clone(), QoS::AtLeastOnce, payload.clone());
    p.pkid = 1;
    v4::Packet::Publish(p).write(&mut v4s, 1 << 20).unwrap();
    let mut sub = v4::Subscribe::new(format!("devices/{ID}/commands"), QoS::AtLeastOnce);
    sub.pkid = 2;
    v4::Packet::Subscribe(sub).write(&mut v4s, 1 << 20).unwrap();
    v4::Packet::PingReq.write(&mut v4s, 1 << 20).unwrap();
    let mut v5s = BytesMut::new();
    v5::Packet::Connect(
        v5::Connect { keep_alive: 30, client_id: ID.into(), clean_start: true, properties: None },
        None,
        None,
    )
    .write(&mut v5s, None)
    .unwrap();
    let mut p = v5::Publish::new(topic, v5m::QoS::AtLeastOnce, payload, None);
    p.pkid = 1;
    v5::Packet::Publish(p).write(&mut v5s, None).unwrap();
    v5::Packet::Disconnect(v5::Disconnect::new(v5::DisconnectReasonCode::NormalDisconnection))
        .write(&mut v5s, None)
        .unwrap();
    vec![v4s.to_vec(), v5s.to_vec()]
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0x00, 0x7f, 0x80, 0xff, 0x10, 0x30, 0x82][rng.below(7)];
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                let junk: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
                v.splice(i..i, junk);
            }
            _ => {
                let (i, j) = (rng.below(v.len() + 1), rng.below(v.len() + 1));
                let chunk = v[i.min(j)..i.max(j)].to_vec();
                v.extend(chunk);
            }
        }
    }
    v
}

#[test]
fn mqtt_decoding_and_session_rules_never_panic() {
    let iterations: usize =
        std::env::var("PALISADE_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seeds = seeds();
    assert_eq!(palisade_server::plane::fuzz_decode(&seeds[0]), 4, "the 3.1.1 seed decodes");
    assert_eq!(palisade_server::plane::fuzz_decode(&seeds[1]), 3, "the 5 seed decodes");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..iterations {
        let seed = &seeds[rng.below(seeds.len())];
        palisade_server::plane::fuzz_decode(&mutate(&mut rng, seed));
    }
}
