//! API keys: random 256-bit secrets, stored only as SHA-256 hashes, compared in constant time.
//!
//! A key reads `pal_<id>_<secret>`: the id finds the row, the secret is checked against the
//! stored hash. Neither the key nor its secret is ever stored or logged.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::{Grant, PermissionSet, Role, Scope};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::audit::{self, AuditContext};
use crate::sealed::random;
use crate::sql::Db;
use crate::users::{join, split};
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

/// What an authenticated key may do, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    /// The role of a key made locally (`palisade apikey create`); `None` for a scoped key.
    pub role: Option<Role>,
    /// The permissions the key carries.
    pub scopes: PermissionSet,
    /// Where they apply.
    pub scope: Scope,
    /// The user who made it (scoped keys).
    pub owner: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
    pub last_used_ip: Option<String>,
}

impl ApiKeyInfo {
    pub fn grant(&self) -> Grant {
        Grant { permissions: self.scopes, scope: self.scope.clone() }
    }
}

const KEY_COLUMNS: &str =
    "id, name, role, scopes, groups, regions, owner, created_ms, expires_ms, revoked_ms, last_used_ms, last_used_ip";

fn decode(r: &crate::sql::Row) -> Result<ApiKeyInfo, StoreError> {
    let corrupt = |e: palisade_core::InvalidField| StoreError::Corrupt(e.to_string());
    let role_name = r.text(2)?;
    let role = if role_name.is_empty() { None } else { Some(role_name.parse::<Role>().map_err(corrupt)?) };
    let scopes = match (r.opt_text(3)?, role) {
        (Some(s), _) => PermissionSet::parse(&split(&s)).map_err(corrupt)?,
        (None, Some(role)) => role.permission_set(),
        (None, None) => PermissionSet::default(),
    };
    Ok(ApiKeyInfo {
        id: r.text(0)?,
        name: r.text(1)?,
        role,
        scopes,
        scope: Scope {
            groups: r.opt_text(4)?.map(|g| split(&g)).unwrap_or_default(),
            regions: r.opt_text(5)?.map(|g| split(&g)).unwrap_or_default(),
        },
        owner: r.opt_text(6)?,
        created_ms: r.int(7)?,
        expires_ms: r.opt_int(8)?,
        revoked_ms: r.opt_int(9)?,
        last_used_ms: r.opt_int(10)?,
        last_used_ip: r.opt_text(11)?,
    })
}

fn hash_secret(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// What a new key carries: a built-in role (local administration) or explicit scopes.
#[derive(Debug, Clone)]
pub enum KeyAuthority {
    Role(Role),
    Scoped { owner: String, scopes: PermissionSet, scope: Scope },
}

pub async fn create<D: Db>(
    db: &mut D,
    name: &str,
    authority: &KeyAuthority,
    expires_ms: Option<i64>,
    ctx: &AuditContext,
) -> Result<NewApiKey, StoreError> {
    let mut id = [0u8; ID_BYTES];
    random(&mut id)?;
    let id = hex::encode(id);
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    random(secret.as_mut())?;
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_slice()));
    let (role, owner, scopes, groups, regions) = match authority {
        KeyAuthority::Role(r) => (r.as_str().to_owned(), None, None, None, None),
        KeyAuthority::Scoped { owner, scopes, scope } => (
            String::new(),
            Some(owner.clone()),
            Some(scopes.names().join(",")),
            Some(join(&scope.groups)),
            Some(join(&scope.regions)),
        ),
    };
    db.exec(
        "INSERT INTO api_keys (id, name, role, secret_hash, created_ms, expires_ms, owner, scopes, groups, regions) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        args![
            &id,
            name,
            &role,
            hash_secret(&secret),
            ctx.at_ms,
            expires_ms,
            owner.clone(),
            scopes.clone(),
            groups.clone(),
            regions.clone()
        ],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "apikey.create",
        &format!("apikey:{id}"),
        None,
        Some(json!({ "name": name, "role": role, "owner": owner, "scopes": scopes, "groups": groups,
                     "regions": regions, "expires_ms": expires_ms })),
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
    let Some(info) = get(db, id).await? else { return Ok(None) };
    if info.expires_ms.is_some_and(|e| e <= now_ms) || info.revoked_ms.is_some() {
        return Ok(None);
    }
    Ok(Some(info))
}

pub async fn get<D: Db>(db: &mut D, id: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
    db.query_opt(&sql, args![id]).await?.as_ref().map(decode).transpose()
}

/// Keys (never their secrets), of one owner or all.
pub async fn list<D: Db>(db: &mut D, owner: Option<&str>) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let rows = match owner {
        Some(o) => {
            db.query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE owner = $1 ORDER BY created_ms"), args![o])
                .await?
        }
        None => db.query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_ms"), vec![]).await?,
    };
    rows.iter().map(decode).collect()
}

pub async fn revoke<D: Db>(db: &mut D, id: &str, ctx: &AuditContext) -> Result<(), StoreError> {
    let n = db
        .exec("UPDATE api_keys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL", args![id, ctx.at_ms])
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("active API key {id}")));
    }
    audit::append(db, ctx, "apikey.revoke", &format!("apikey:{id}"), None, None).await?;
    Ok(())
}

/// Records the last use (at most once a minute per key, to keep reads cheap).
pub async fn touch<D: Db>(db: &mut D, id: &str, now_ms: i64, ip: Option<&str>) -> Result<(), StoreError> {
    db.exec(
        "UPDATE api_keys SET last_used_ms = $2, last_used_ip = $3 WHERE id = $1 AND (last_used_ms IS NULL OR last_used_ms < $4)",
        args![id, now_ms, ip, now_ms - 60_000],
    )
    .await?;
    Ok(())
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
