//! A mutation fuzzer for everything the device listener parses from a device: EST bodies and
//! PKCS#10 CSRs. It runs on stable Rust (cargo-fuzz needs a nightly toolchain, which this
//! project's machines do not have) with a fixed seed, so every CI run replays the same inputs;
//! set `PALISADE_FUZZ_ITERATIONS` for a longer run. The property: no input panics, and a
//! valid CSR keeps verifying.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use base64::Engine as _;

/// xorshift64*: deterministic, dependency-free.
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

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                v.splice(i..i, junk);
            }
            4 if v.len() > 2 => {
                // Lengths are where DER parsers get hurt: make one huge or tiny.
                let i = rng.below(v.len());
                v[i] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff][rng.below(7)];
            }
            _ => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(v.len() + 1);
                let (a, b) = (i.min(j), i.max(j));
                let chunk = v[a..b].to_vec();
                v.splice(a..a, chunk);
            }
        }
    }
    v
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["device.example".into()]).unwrap();
        out.push(params.serialize_request(&key).unwrap().der().to_vec());
    }
    out
}

#[test]
fn csr_and_est_body_parsing_never_panics() {
    let iterations: usize =
        std::env::var("PALISADE_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seeds = seeds();
    for s in &seeds {
        palisade_pki::csr::verify(s).unwrap();
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..iterations {
        let seed = &seeds[rng.below(seeds.len())];
        let der = mutate(&mut rng, seed);
        if palisade_pki::csr::verify(&der).is_ok() {
            accepted += 1;
        }
        // The same bytes through the EST body decoder, as base64 and mutated base64.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let body = mutate(&mut rng, b64.as_bytes());
        if let Ok(decoded) = palisade_pki::est::decode_body(&body) {
            let _ = palisade_pki::csr::verify(&decoded);
        }
    }
    // A flipped bit almost never leaves a valid signature: the verifier must not be lax.
    assert!(accepted < iterations / 20, "{accepted} of {iterations} mutated CSRs verified");
}
