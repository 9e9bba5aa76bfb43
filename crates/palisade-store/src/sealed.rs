//! Encryption at rest: a master key wraps data keys; data keys seal secrets and personal data.
//!
//! Envelope scheme: the master key (32 random bytes, a file of mode 0600 outside the database)
//! wraps each data key with AES-256-GCM. A sealed value carries the id of its data key and its
//! random nonce, and is bound to where it lives (its AAD, e.g. `device/<id>/owner_contact`) so a
//! sealed value copied into another row does not open. Rotating the master key re-wraps the
//! data keys only; sealed values stay as they are.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use zeroize::{Zeroize as _, Zeroizing};

use crate::StoreError;

const KEY_LEN: usize = 32;
/// First byte of every sealed value: the format version.
const SEALED_V1: u8 = 1;

/// The key-encryption key. Never printed, zeroised on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        random(bytes.as_mut())?;
        Ok(Self { bytes })
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if raw.len() != KEY_LEN {
            return Err(StoreError::MasterKey(format!("a master key is {KEY_LEN} bytes, this one is {}", raw.len())));
        }
        bytes.copy_from_slice(raw);
        Ok(Self { bytes })
    }

    /// A public fingerprint: which master key wrapped a data key.
    pub fn id(&self) -> String {
        let d =
            digest::digest(&digest::SHA256, &[b"palisade-master-key-id\0".as_slice(), self.bytes.as_slice()].concat());
        hex::encode(d.as_ref().get(..8).unwrap_or_default())
    }

    /// Reads a master key file (32 raw bytes). Refuses a file others can read.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| StoreError::MasterKey(format!("cannot read {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(StoreError::MasterKey(format!(
                "{} is readable by group or others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let raw = Zeroizing::new(
            std::fs::read(path).map_err(|e| StoreError::MasterKey(format!("cannot read {}: {e}", path.display())))?,
        );
        Self::from_bytes(&raw)
    }

    /// Writes the key to `path` with mode 0600, durably; fails if the file exists.
    pub fn write_new(&self, path: &Path) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::MasterKey(format!("cannot write {}: {e}", path.display()));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        f.write_all(self.bytes.as_slice()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }

    fn wrap(&self, dek_id: &str, dek: &[u8; KEY_LEN]) -> Result<Vec<u8>, StoreError> {
        seal_with(&self.bytes, dek, &dek_aad(dek_id))
    }

    fn unwrap(&self, dek_id: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        open_with(&self.bytes, wrapped, &dek_aad(dek_id)).map_err(|_| StoreError::WrongMasterKey)
    }
}

/// Where the rotation writes the new key before the database switches over.
pub fn pending_path(master_key_path: &Path) -> PathBuf {
    let mut p = master_key_path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

fn dek_aad(dek_id: &str) -> Vec<u8> {
    format!("palisade-dek/{dek_id}").into_bytes()
}

/// A data key as stored: wrapped under a master key.
#[derive(Debug, Clone)]
pub struct WrappedDataKey {
    pub id: String,
    pub master_key_id: String,
    pub wrapped: Vec<u8>,
}

impl WrappedDataKey {
    pub fn generate(master: &MasterKey, id: String) -> Result<Self, StoreError> {
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        random(dek.as_mut())?;
        Ok(Self { wrapped: master.wrap(&id, &dek)?, master_key_id: master.id(), id })
    }

    /// The same data key, wrapped under `new` instead of `old`.
    pub fn rewrap(&self, old: &MasterKey, new: &MasterKey) -> Result<Self, StoreError> {
        let dek = old.unwrap(&self.id, &self.wrapped)?;
        let dek: &[u8; KEY_LEN] =
            dek.as_slice().try_into().map_err(|_| StoreError::Corrupt("data key has the wrong length".into()))?;
        Ok(Self { id: self.id.clone(), master_key_id: new.id(), wrapped: new.wrap(&self.id, dek)? })
    }
}

/// The unwrapped data keys, held in memory while the server runs.
pub struct Keyring {
    active: String,
    keys: HashMap<String, LessSafeKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).field("keys", &self.keys.len()).finish()
    }
}

impl Keyring {
    /// Unwraps every data key; the first one is the active one.
    pub fn unwrap_all(master: &MasterKey, wrapped: &[WrappedDataKey]) -> Result<Self, StoreError> {
        let first = wrapped.first().ok_or_else(|| StoreError::Corrupt("no data keys".into()))?;
        let mut keys = HashMap::new();
        for w in wrapped {
            if w.master_key_id != master.id() {
                return Err(StoreError::WrongMasterKey);
            }
            let dek = master.unwrap(&w.id, &w.wrapped)?;
            let key = UnboundKey::new(&AES_256_GCM, &dek).map_err(|_| StoreError::Crypto("bad data key"))?;
            keys.insert(w.id.clone(), LessSafeKey::new(key));
        }
        Ok(Self { active: first.id.clone(), keys })
    }

    /// Seals `plain`, bound to `aad` (where the value lives).
    pub fn seal(&self, plain: &[u8], aad: &str) -> Result<Vec<u8>, StoreError> {
        let key = self.keys.get(&self.active).ok_or(StoreError::Crypto("active data key missing"))?;
        let id = self.active.as_bytes();
        let id_len = u8::try_from(id.len()).map_err(|_| StoreError::Crypto("data key id too long"))?;
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut body)
            .map_err(|_| StoreError::Crypto("seal failed"))?;
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + body.len());
        out.push(SEALED_V1);
        out.push(id_len);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        body.zeroize();
        Ok(out)
    }

    /// Opens a value sealed by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("sealed value for {aad} is malformed"));
        let (&version, rest) = sealed.split_first().ok_or_else(corrupt)?;
        let (&id_len, rest) = rest.split_first().ok_or_else(corrupt)?;
        if version != SEALED_V1 || rest.len() < usize::from(id_len) + NONCE_LEN {
            return Err(corrupt());
        }
        let (id, rest) = rest.split_at(usize::from(id_len));
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let id = std::str::from_utf8(id).map_err(|_| corrupt())?;
        let key = self.keys.get(id).ok_or_else(|| StoreError::Corrupt(format!("unknown data key {id:?}")))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut buf = Zeroizing::new(body.to_vec());
        let plain_len = key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| StoreError::Crypto("sealed value does not authenticate"))?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }

    /// Seals a UTF-8 text.
    pub fn seal_text(&self, plain: &str, aad: &str) -> Result<Vec<u8>, StoreError> {
        self.seal(plain.as_bytes(), aad)
    }

    /// Opens a sealed UTF-8 text.
    pub fn open_text(&self, sealed: &[u8], aad: &str) -> Result<String, StoreError> {
        let plain = self.open(sealed, aad)?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("sealed value for {aad} is not text")))
    }
}

fn seal_with(key: &[u8; KEY_LEN], plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| StoreError::Crypto("bad key"))?);
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let mut body = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .map_err(|_| StoreError::Crypto("seal failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    body.zeroize();
    Ok(out)
}

fn open_with(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| StoreError::Crypto("bad key"))?);
    if sealed.len() < NONCE_LEN {
        return Err(StoreError::Crypto("sealed value too short"));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| StoreError::Crypto("bad nonce"))?;
    let mut buf = Zeroizing::new(body.to_vec());
    let n = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| StoreError::Crypto("does not authenticate"))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<(), StoreError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| StoreError::Crypto("the random source failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (MasterKey, WrappedDataKey, Keyring) {
        let m = MasterKey::generate().unwrap();
        let w = WrappedDataKey::generate(&m, "k1".into()).unwrap();
        let k = Keyring::unwrap_all(&m, std::slice::from_ref(&w)).unwrap();
        (m, w, k)
    }

    #[test]
    fn seal_and_open() {
        let (_, _, k) = ring();
        let s = k.seal_text("alice@example.com", "device/x/owner_contact").unwrap();
        assert!(!s.windows(5).any(|w| w == b"alice"));
        assert_eq!(k.open_text(&s, "device/x/owner_contact").unwrap(), "alice@example.com");
        // Bound to its place: another row's AAD does not open it.
        assert!(k.open_text(&s, "device/y/owner_contact").is_err());
    }

    #[test]
    fn tampering_and_truncation_are_errors_not_panics() {
        let (_, _, k) = ring();
        let mut s = k.seal_text("secret", "a").unwrap();
        if let Some(last) = s.last_mut() {
            *last ^= 1;
        }
        assert!(k.open(&s, "a").is_err());
        for n in 0..s.len() {
            assert!(k.open(s.get(..n).unwrap(), "a").is_err());
        }
    }

    #[test]
    fn rotation_rewraps_and_the_old_key_stops_working() {
        let (old, w, k) = ring();
        let sealed = k.seal_text("secret", "a").unwrap();
        let new = MasterKey::generate().unwrap();
        let w2 = w.rewrap(&old, &new).unwrap();
        let k2 = Keyring::unwrap_all(&new, std::slice::from_ref(&w2)).unwrap();
        assert_eq!(k2.open_text(&sealed, "a").unwrap(), "secret");
        assert!(matches!(Keyring::unwrap_all(&old, &[w2]), Err(StoreError::WrongMasterKey)));
    }

    #[test]
    fn master_key_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let m = MasterKey::generate().unwrap();
        m.write_new(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(MasterKey::load(&p).unwrap().id(), m.id());
        assert!(m.write_new(&p).is_err(), "never overwrites a key");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(MasterKey::load(&p).is_err());
    }
}
