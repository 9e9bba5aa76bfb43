//! Certificate signing requests: parse, check the key, verify proof of possession.
//!
//! Everything here reads bytes from devices: every failure is a typed error naming the reason,
//! never a panic.

use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the body is not a DER PKCS#10 certification request")]
    Malformed,
    #[error("the request's signature does not verify (no proof of possession of the key)")]
    BadSignature,
    #[error("{0}")]
    WeakKey(String),
    #[error("key type not allowed: {0}; use ECDSA P-256/P-384, Ed25519 or RSA ≥ 2048")]
    KeyType(String),
    #[error("the request carries an extension Palisade does not accept")]
    UnsupportedExtension,
}

/// The kind of key in a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcP256,
    EcP384,
    Ed25519,
    Rsa(usize),
}

impl KeyKind {
    pub fn describe(self) -> String {
        match self {
            Self::EcP256 => "ECDSA P-256".into(),
            Self::EcP384 => "ECDSA P-384".into(),
            Self::Ed25519 => "Ed25519".into(),
            Self::Rsa(bits) => format!("RSA-{bits}"),
        }
    }
}

/// A CSR whose key is acceptable and whose signature verifies.
#[derive(Debug)]
pub struct VerifiedCsr {
    pub(crate) public_key: rcgen::PublicKey,
    pub key_kind: KeyKind,
    /// SHA-256 of the SubjectPublicKeyInfo, hex: the same key always gives the same value.
    pub spki_sha256: String,
}

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";

fn rsa_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = {
        let start = modulus.iter().position(|b| *b != 0).unwrap_or(modulus.len());
        modulus.get(start..).unwrap_or_default()
    };
    match trimmed.first() {
        None => 0,
        Some(first) => (trimmed.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// Checks a DER CSR: parse, key policy, then signature (proof of possession).
pub fn verify(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let (rest, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der).map_err(|_| CsrError::Malformed)?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed);
    }
    let spki = &csr.certification_request_info.subject_pki;
    let alg = spki.algorithm.algorithm.to_id_string();
    let key_kind = match alg.as_str() {
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 => KeyKind::EcP256,
                OID_P384 => KeyKind::EcP384,
                other => return Err(CsrError::KeyType(format!("elliptic curve {other}"))),
            }
        }
        OID_ED25519 => KeyKind::Ed25519,
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let bits = rsa_bits(rsa.modulus);
                if bits < 2048 {
                    return Err(CsrError::WeakKey(format!(
                        "an RSA key of {bits} bits is too weak: use RSA with at least 2048 bits, or ECDSA P-256"
                    )));
                }
                KeyKind::Rsa(bits)
            }
            _ => return Err(CsrError::Malformed),
        },
        other => return Err(CsrError::KeyType(format!("algorithm {other}"))),
    };
    let spki_sha256 = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.raw).as_ref());
    let params = rcgen::CertificateSigningRequestParams::from_der(&der.into()).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => CsrError::BadSignature,
        rcgen::Error::UnsupportedExtension => CsrError::UnsupportedExtension,
        _ => CsrError::Malformed,
    })?;
    Ok(VerifiedCsr { public_key: params.public_key, key_kind, spki_sha256 })
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_for(key: &rcgen::KeyPair) -> Vec<u8> {
        rcgen::CertificateParams::new(vec![]).unwrap().serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn good_and_bad_requests() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = csr_for(&key);
        let v = verify(&der).unwrap();
        assert_eq!(v.key_kind, KeyKind::EcP256);
        assert_eq!(verify(&der).unwrap().spki_sha256, v.spki_sha256, "stable fingerprint");
        let mut tampered = der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(verify(&tampered).is_err());
        for n in 0..der.len() {
            assert!(verify(&der[..n]).is_err(), "truncated at {n}");
        }
        assert_eq!(verify(b"").unwrap_err(), CsrError::Malformed);
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(verify(&trailing).unwrap_err(), CsrError::Malformed);
    }

    #[test]
    fn rsa_bit_lengths() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(rsa_bits(&[0x01, 0]), 9);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
