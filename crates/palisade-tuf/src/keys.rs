//! Keys in TUF's JSON form, and signing with them.
//!
//! - ed25519: `{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "<64 hex>"}}`,
//!   signatures the raw 64 bytes, hex.
//! - ECDSA P-256: `{"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public":
//!   "<SPKI PEM>"}}`, signatures DER (ASN.1) over SHA-256, hex.
//!
//! A key id is the hex SHA-256 of the canonical JSON of the public key object, as securesystemslib
//! computes it.

use aws_lc_rs::encoding::{AsDer, Pkcs8V2Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{TufError, canonical_json};

const ED25519: &str = "ed25519";
const ECDSA: &str = "ecdsa";
const ECDSA_P256_SCHEME: &str = "ecdsa-sha2-nistp256";

/// The kinds of signing key we make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    EcdsaP256,
}

/// A private key. The PKCS#8 document is the only copy of the secret and is zeroised on drop.
pub struct SigningKey {
    kind: KeyType,
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kind", &self.kind).field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the system's random source.
    pub fn generate(kind: KeyType) -> Result<Self, TufError> {
        let rng = SystemRandom::new();
        let doc = match kind {
            KeyType::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            KeyType::EcdsaP256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng),
        }
        .map_err(|_| TufError::Crypto("key generation failed".into()))?;
        Self::from_pkcs8_der(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Reads a `-----BEGIN PRIVATE KEY-----` (PKCS#8) ed25519 or P-256 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TufError> {
        let der = pem_decode(pem, "PRIVATE KEY")?;
        Self::from_pkcs8_der(der)
    }

    /// The key as PKCS#8 PEM (the caller stores it with care).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        pem_encode(&self.pkcs8, "PRIVATE KEY")
    }

    /// The public half, in TUF's JSON form.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> String {
        self.public.key_id()
    }

    /// Signs `msg` (the canonical JSON of a `signed` object).
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, TufError> {
        match self.kind {
            KeyType::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                    .map_err(|e| TufError::Crypto(format!("ed25519 key: {e}")))?;
                Ok(pair.sign(msg).as_ref().to_vec())
            }
            KeyType::EcdsaP256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8)
                    .map_err(|e| TufError::Crypto(format!("P-256 key: {e}")))?;
                let sig = pair
                    .sign(&SystemRandom::new(), msg)
                    .map_err(|_| TufError::Crypto("ECDSA signing failed".into()))?;
                Ok(sig.as_ref().to_vec())
            }
        }
    }

    fn from_pkcs8_der(der: Zeroizing<Vec<u8>>) -> Result<Self, TufError> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            // Store the v2 document (with the public key) whatever form we were given.
            let v2: Pkcs8V2Der<'static> =
                pair.as_der().map_err(|_| TufError::Crypto("ed25519 key: cannot encode".into()))?;
            let public = PublicKey::ed25519(pair.public_key().as_ref());
            return Ok(Self { kind: KeyType::Ed25519, pkcs8: Zeroizing::new(v2.as_ref().to_vec()), public });
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der) {
            let spki: PublicKeyX509Der<'static> =
                pair.public_key().as_der().map_err(|_| TufError::Crypto("P-256 key: cannot encode".into()))?;
            let public = PublicKey::ecdsa_p256(spki.as_ref());
            return Ok(Self { kind: KeyType::EcdsaP256, pkcs8: der, public });
        }
        Err(TufError::malformed("private key: not a PKCS#8 ed25519 or P-256 key"))
    }
}

/// The `keyval` of a public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    pub public: String,
}

/// A public key as TUF metadata carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

impl PublicKey {
    /// An ed25519 key from its 32 raw bytes.
    pub fn ed25519(raw: &[u8]) -> Self {
        Self { keytype: ED25519.into(), scheme: ED25519.into(), keyval: KeyVal { public: hex::encode(raw) } }
    }

    /// A P-256 key from its SubjectPublicKeyInfo DER.
    pub fn ecdsa_p256(spki_der: &[u8]) -> Self {
        let pem = pem_encode(spki_der, "PUBLIC KEY");
        Self { keytype: ECDSA.into(), scheme: ECDSA_P256_SCHEME.into(), keyval: KeyVal { public: pem.to_string() } }
    }

    /// Hex SHA-256 of the canonical JSON of this key object (securesystemslib's rule).
    pub fn key_id(&self) -> String {
        let value = serde_json::json!({
            "keytype": self.keytype,
            "scheme": self.scheme,
            "keyval": { "public": self.keyval.public },
        });
        // Only strings inside: the canonical encoding cannot fail.
        let bytes = canonical_json(&value).unwrap_or_default();
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes))
    }

    /// The key material, decoded (raw ed25519 bytes or SPKI DER), so that one key written two
    /// ways is still one key; the text itself when it does not decode.
    pub(crate) fn material(&self) -> Vec<u8> {
        match self.keytype.as_str() {
            ED25519 => hex::decode(&self.keyval.public).ok(),
            ECDSA => pem_decode(&self.keyval.public, "PUBLIC KEY").ok().map(|d| d.to_vec()),
            _ => None,
        }
        .unwrap_or_else(|| self.keyval.public.as_bytes().to_vec())
    }

    /// Whether `sig` is this key's signature of `msg`. Unknown key types or schemes never verify.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            (ED25519, ED25519) => {
                let Ok(raw) = hex::decode(&self.keyval.public) else { return false };
                if raw.len() != 32 {
                    return false;
                }
                UnparsedPublicKey::new(&signature::ED25519, &raw).verify(msg, sig).is_ok()
            }
            (ECDSA, ECDSA_P256_SCHEME) => {
                let Ok(spki) = pem_decode(&self.keyval.public, "PUBLIC KEY") else { return false };
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, spki.as_slice()).verify(msg, sig).is_ok()
            }
            _ => false,
        }
    }
}

/// PEM with 64-column base64 lines and a final newline (what `cryptography` writes).
fn pem_encode(der: &[u8], label: &str) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(b64.len() + 80));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

fn pem_decode(pem: &str, label: &str) -> Result<Zeroizing<Vec<u8>>, TufError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or_else(|| TufError::malformed(format!("PEM: no {begin}")))? + begin.len();
    let rest = pem.get(start..).unwrap_or_default();
    let stop = rest.find(&end).ok_or_else(|| TufError::malformed(format!("PEM: no {end}")))?;
    let body: Zeroizing<String> =
        Zeroizing::new(rest.get(..stop).unwrap_or_default().chars().filter(|c| !c.is_ascii_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| TufError::malformed(format!("PEM: {e}")))
}
