//! Named server secrets (CA keys, the audit signing key), sealed under the data keys.

use zeroize::Zeroizing;

use crate::sealed::Keyring;
use crate::sql::Db;
use crate::{StoreError, args};

fn aad(name: &str) -> String {
    format!("secret/{name}")
}

pub async fn get<D: Db>(db: &mut D, keys: &Keyring, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    match db.query_opt("SELECT sealed FROM secrets WHERE name = $1", args![name]).await? {
        Some(r) => Ok(Some(keys.open(&r.blob(0)?, &aad(name))?)),
        None => Ok(None),
    }
}

/// Stores a secret unless one of that name exists; returns the one that is stored either way
/// (so that two nodes starting at once agree on one value).
pub async fn put_if_absent<D: Db>(
    db: &mut D,
    keys: &Keyring,
    name: &str,
    value: &[u8],
    now_ms: i64,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let sealed = keys.seal(value, &aad(name))?;
    db.exec(
        "INSERT INTO secrets (name, sealed, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        args![name, sealed, now_ms],
    )
    .await?;
    get(db, keys, name).await?.ok_or_else(|| StoreError::Corrupt(format!("secret {name} vanished")))
}
