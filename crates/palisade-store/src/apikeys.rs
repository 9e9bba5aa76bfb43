//! API keys: random 256-bit secrets, stored only as SHA-256 hashes, compared in constant time.
//!
//! A key reads `pal_<id>_<secret>`: the id finds the row, the secret is checked against the
//! stored hash. Neither the key nor its secret is ever stored or logged.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::Role;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::audit::{self, AuditContext};
use crate::sealed::random;
use crate::sql::Db;
use crate::{StoreError, args};

const PREFIX: &str = "pal_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A key as presented by a client. Zeroised on drop, never printed.
pub struct PresentedKey(Zeroizing<String>);

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedKey(***)")
    }
}

impl PresentedKey {
    pub fn new(raw: &str) -> Self {
        Self(Zeroizing::new(raw.to_owned()))
    }

    /// `(id, secret)` if the key has the right shape.
    fn parts(&self) -> Option<(&str, &str)> {
        let rest = self.0.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id_ok = id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit());
        (id_ok && secret.len() < 128).then_some((id, secret))
    }
}

/// A newly created key: the only time the full key exists.
pub struct NewApiKey {
    pub id: String,
    pub key: Zeroizing<String>,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewApiKey({}, ***)", self.id)
    }
}

/// What an authenticated key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub expires_ms: Option<i64>,
}

fn hash_secret(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

pub async fn create<D: Db>(
    db: &mut D,
    name: &str,
    role: Role,
    expires_ms: Option<i64>,
    ctx: &AuditContext,
) -> Result<NewApiKey, StoreError> {
    let mut id = [0u8; ID_BYTES];
    random(&mut id)?;
    let id = hex::encode(id);
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    random(secret.as_mut())?;
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_slice()));
    db.exec(
        "INSERT INTO api_keys (id, name, role, secret_hash, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        args![&id, name, role.as_str(), hash_secret(&secret), ctx.at_ms, expires_ms],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "apikey.create",
        &format!("apikey:{id}"),
        None,
        Some(json!({ "name": name, "role": role.as_str(), "expires_ms": expires_ms })),
    )
    .await?;
    let key = Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str()));
    Ok(NewApiKey { id, key })
}

/// Checks a presented key. `None` for every kind of failure (unknown, wrong secret, expired,
/// revoked): callers answer all of them the same way.
pub async fn authenticate<D: Db>(
    db: &mut D,
    presented: &PresentedKey,
    now_ms: i64,
) -> Result<Option<ApiKeyInfo>, StoreError> {
    let Some((id, secret)) = presented.parts() else {
        return Ok(None);
    };
    let row = db
        .query_opt("SELECT name, role, secret_hash, expires_ms, revoked_ms FROM api_keys WHERE id = $1", args![id])
        .await?;
    // Hash even when the id is unknown, so both paths cost the same.
    let presented_hash = hash_secret(secret);
    let Some(row) = row else { return Ok(None) };
    let stored = row.blob(2)?;
    if !bool::from(presented_hash.ct_eq(&stored)) {
        return Ok(None);
    }
    let expires_ms = row.opt_int(3)?;
    if expires_ms.is_some_and(|e| e <= now_ms) || row.opt_int(4)?.is_some() {
        return Ok(None);
    }
    let role = row.text(1)?.parse::<Role>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(ApiKeyInfo { id: id.to_owned(), name: row.text(0)?, role, expires_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        assert!(PresentedKey::new("pal_0123456789abcdef_secret").parts().is_some());
        for bad in ["", "pal_", "pal_xyz_s", "bearer", "pal_0123456789abcdeg_s", "pal_0123456789abcdef"] {
            assert!(PresentedKey::new(bad).parts().is_none(), "{bad}");
        }
        assert_eq!(format!("{:?}", PresentedKey::new("pal_x")), "PresentedKey(***)");
    }
}
