//! People: accounts, role bindings, custom roles, MFA secrets and recovery codes, sessions.
//!
//! Password hashes are computed at the edge (argon2id); this module stores and returns them.
//! TOTP secrets and email addresses are sealed. Session ids and recovery codes are stored only
//! as SHA-256 hashes.

use palisade_core::{PermissionSet, Scope};
use serde_json::json;
use zeroize::Zeroizing;

use crate::audit::{self, AuditContext};
use crate::sealed::Keyring;
use crate::sql::{Db, Row};
use crate::{StoreError, args};

/// A role given to a user, limited to a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    /// A built-in role name or a custom role's name.
    pub role: String,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

/// A user as stored.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub status: UserStatus,
    pub password_hash: Zeroizing<String>,
    pub must_change_password: bool,
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
    pub totp_pending: Option<Zeroizing<Vec<u8>>>,
    pub totp_last_step: Option<u64>,
    pub locked_until_ms: Option<i64>,
    pub bindings: Vec<RoleBinding>,
    pub created_ms: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

impl User {
    pub fn mfa_enabled(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Zeroizing<String>,
    pub must_change_password: bool,
    pub bindings: Vec<RoleBinding>,
}

/// A custom role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub name: String,
    pub permissions: PermissionSet,
    pub mfa_required: bool,
}

fn email_aad(id: &str) -> String {
    format!("user/{id}/email")
}
fn totp_aad(id: &str) -> String {
    format!("user/{id}/totp")
}
fn pending_aad(id: &str) -> String {
    format!("user/{id}/totp-pending")
}

pub fn join(list: &[String]) -> String {
    list.join(",")
}

pub fn split(s: &str) -> Vec<String> {
    s.split(',').filter(|x| !x.is_empty()).map(String::from).collect()
}

const USER_COLUMNS: &str = "id, username, display_name, email, status, password_hash, must_change_password, \
                            totp_secret, totp_pending, totp_last_step, locked_until_ms, created_ms";

async fn bindings_of<D: Db>(db: &mut D, id: &str) -> Result<Vec<RoleBinding>, StoreError> {
    let rows = db
        .query(
            "SELECT role, groups, regions FROM role_bindings WHERE user_id = $1 ORDER BY role, groups, regions",
            args![id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RoleBinding {
                role: r.text(0)?,
                scope: Scope { groups: split(&r.text(1)?), regions: split(&r.text(2)?) },
            })
        })
        .collect()
}

async fn decode<D: Db>(db: &mut D, keys: &Keyring, r: &Row) -> Result<User, StoreError> {
    let id = r.text(0)?;
    let open = |i: usize, aad: String| -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        r.opt_blob(i)?.map(|b| keys.open(&b, &aad)).transpose()
    };
    let email = match r.opt_blob(3)? {
        Some(b) => Some(keys.open_text(&b, &email_aad(&id))?),
        None => None,
    };
    let status = match r.text(4)?.as_str() {
        "active" => UserStatus::Active,
        "disabled" => UserStatus::Disabled,
        other => return Err(StoreError::Corrupt(format!("user status {other:?}"))),
    };
    let totp_secret = open(7, totp_aad(&id))?;
    let totp_pending = open(8, pending_aad(&id))?;
    Ok(User {
        username: r.text(1)?,
        display_name: r.opt_text(2)?,
        email,
        status,
        password_hash: Zeroizing::new(r.text(5)?),
        must_change_password: r.int(6)? != 0,
        totp_secret,
        totp_pending,
        totp_last_step: r.opt_int(9)?.and_then(|s| u64::try_from(s).ok()),
        locked_until_ms: r.opt_int(10)?,
        created_ms: r.int(11)?,
        bindings: bindings_of(db, &id).await?,
        id,
    })
}

pub async fn get<D: Db>(db: &mut D, keys: &Keyring, id: &str) -> Result<User, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = db.query_opt(&sql, args![id]).await?.ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    decode(db, keys, &row).await
}

pub async fn by_username<D: Db>(db: &mut D, keys: &Keyring, username: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
    match db.query_opt(&sql, args![username]).await? {
        Some(row) => Ok(Some(decode(db, keys, &row).await?)),
        None => Ok(None),
    }
}

pub async fn list<D: Db>(db: &mut D, keys: &Keyring) -> Result<Vec<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
    let rows = db.query(&sql, vec![]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(decode(db, keys, r).await?);
    }
    Ok(out)
}

pub async fn count<D: Db>(db: &mut D) -> Result<i64, StoreError> {
    db.query_opt("SELECT count(*) FROM users", vec![]).await?.map_or(Ok(0), |r| r.int(0))
}

async fn set_bindings<D: Db>(db: &mut D, id: &str, bindings: &[RoleBinding]) -> Result<(), StoreError> {
    db.exec("DELETE FROM role_bindings WHERE user_id = $1", args![id]).await?;
    for b in bindings {
        db.exec(
            "INSERT INTO role_bindings (user_id, role, groups, regions) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            args![id, &b.role, join(&b.scope.groups), join(&b.scope.regions)],
        )
        .await?;
    }
    Ok(())
}

fn bindings_json(bindings: &[RoleBinding]) -> serde_json::Value {
    json!(
        bindings
            .iter()
            .map(|b| json!({"role": b.role, "groups": b.scope.groups, "regions": b.scope.regions}))
            .collect::<Vec<_>>()
    )
}

pub async fn create<D: Db>(db: &mut D, keys: &Keyring, new: &NewUser, ctx: &AuditContext) -> Result<(), StoreError> {
    if db.query_opt("SELECT id FROM users WHERE username = $1", args![&new.username]).await?.is_some() {
        return Err(StoreError::Conflict(format!("username {:?} is taken", new.username)));
    }
    let email = new.email.as_deref().map(|e| keys.seal_text(e, &email_aad(&new.id))).transpose()?;
    db.exec(
        &format!("INSERT INTO users ({USER_COLUMNS}, updated_ms) VALUES ($1, $2, $3, $4, 'active', $5, $6, NULL, NULL, NULL, NULL, $7, $7)"),
        args![
            &new.id,
            &new.username,
            new.display_name.clone(),
            email,
            new.password_hash.as_str(),
            i64::from(new.must_change_password),
            ctx.at_ms
        ],
    )
    .await?;
    set_bindings(db, &new.id, &new.bindings).await?;
    audit::append(
        db,
        ctx,
        "user.create",
        &format!("user:{}", new.id),
        None,
        Some(json!({"username": new.username, "roles": bindings_json(&new.bindings)})),
    )
    .await?;
    Ok(())
}

/// What an administrator may change about a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub display_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub status: Option<UserStatus>,
    pub bindings: Option<Vec<RoleBinding>>,
}

pub async fn update<D: Db>(
    db: &mut D,
    keys: &Keyring,
    id: &str,
    patch: UserPatch,
    ctx: &AuditContext,
) -> Result<User, StoreError> {
    let user = get(db, keys, id).await?;
    let mut before = serde_json::Map::new();
    let mut after = serde_json::Map::new();
    if let Some(d) = patch.display_name {
        db.exec("UPDATE users SET display_name = $2, updated_ms = $3 WHERE id = $1", args![id, d.clone(), ctx.at_ms])
            .await?;
        before.insert("display_name".into(), json!(user.display_name));
        after.insert("display_name".into(), json!(d));
    }
    if let Some(e) = patch.email {
        let sealed = e.as_deref().map(|e| keys.seal_text(e, &email_aad(id))).transpose()?;
        db.exec("UPDATE users SET email = $2, updated_ms = $3 WHERE id = $1", args![id, sealed, ctx.at_ms]).await?;
        after.insert("email".into(), json!("(changed)"));
    }
    if let Some(s) = patch.status {
        db.exec("UPDATE users SET status = $2, updated_ms = $3 WHERE id = $1", args![id, s.as_str(), ctx.at_ms])
            .await?;
        if s == UserStatus::Disabled {
            db.exec("DELETE FROM sessions WHERE user_id = $1", args![id]).await?;
        }
        before.insert("status".into(), json!(user.status.as_str()));
        after.insert("status".into(), json!(s.as_str()));
    }
    if let Some(b) = &patch.bindings {
        set_bindings(db, id, b).await?;
        before.insert("roles".into(), bindings_json(&user.bindings));
        after.insert("roles".into(), bindings_json(b));
    }
    audit::append(db, ctx, "user.update", &format!("user:{id}"), Some(before.into()), Some(after.into())).await?;
    get(db, keys, id).await
}

/// Sets a new password hash; other sessions of the user end.
pub async fn set_password<D: Db>(
    db: &mut D,
    id: &str,
    hash: &str,
    must_change: bool,
    keep_session: Option<&[u8]>,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let n = db
        .exec(
            "UPDATE users SET password_hash = $2, must_change_password = $3, updated_ms = $4 WHERE id = $1",
            args![id, hash, i64::from(must_change), ctx.at_ms],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("user {id}")));
    }
    match keep_session {
        Some(keep) => db.exec("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", args![id, keep]).await?,
        None => db.exec("DELETE FROM sessions WHERE user_id = $1", args![id]).await?,
    };
    audit::append(db, ctx, "user.password", &format!("user:{id}"), None, Some(json!({"must_change": must_change})))
        .await?;
    Ok(())
}

pub async fn set_totp_pending<D: Db>(
    db: &mut D,
    keys: &Keyring,
    id: &str,
    secret: &[u8],
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let sealed = keys.seal(secret, &pending_aad(id))?;
    db.exec("UPDATE users SET totp_pending = $2, updated_ms = $3 WHERE id = $1", args![id, sealed, ctx.at_ms]).await?;
    audit::append(db, ctx, "user.mfa.enroll_started", &format!("user:{id}"), None, None).await?;
    Ok(())
}

/// Makes the pending secret the active one, records the step used, stores recovery codes.
pub async fn confirm_totp<D: Db>(
    db: &mut D,
    keys: &Keyring,
    id: &str,
    secret: &[u8],
    step: u64,
    recovery_hashes: &[Vec<u8>],
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let sealed = keys.seal(secret, &totp_aad(id))?;
    let step = i64::try_from(step).map_err(|_| StoreError::Corrupt("step".into()))?;
    db.exec(
        "UPDATE users SET totp_secret = $2, totp_pending = NULL, totp_last_step = $3, updated_ms = $4 WHERE id = $1",
        args![id, sealed, step, ctx.at_ms],
    )
    .await?;
    db.exec("DELETE FROM recovery_codes WHERE user_id = $1", args![id]).await?;
    for h in recovery_hashes {
        db.exec("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)", args![id, h.clone()]).await?;
    }
    audit::append(
        db,
        ctx,
        "user.mfa.enabled",
        &format!("user:{id}"),
        None,
        Some(json!({"recovery_codes": recovery_hashes.len()})),
    )
    .await?;
    Ok(())
}

pub async fn disable_totp<D: Db>(db: &mut D, id: &str, ctx: &AuditContext) -> Result<(), StoreError> {
    let n = db
        .exec(
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL, updated_ms = $2 WHERE id = $1",
            args![id, ctx.at_ms],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("user {id}")));
    }
    db.exec("DELETE FROM recovery_codes WHERE user_id = $1", args![id]).await?;
    audit::append(
        db,
        ctx,
        "user.mfa.disabled",
        &format!("user:{id}"),
        Some(json!({"mfa": true})),
        Some(json!({"mfa": false})),
    )
    .await?;
    Ok(())
}

/// Records that `step` was used; false if it (or a later one) was used already (a replay,
/// possibly by a concurrent request).
pub async fn use_totp_step<D: Db>(db: &mut D, id: &str, step: u64) -> Result<bool, StoreError> {
    let step = i64::try_from(step).map_err(|_| StoreError::Corrupt("step".into()))?;
    let n = db
        .exec(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            args![id, step],
        )
        .await?;
    Ok(n == 1)
}

/// Spends a recovery code; false if unknown or used.
pub async fn use_recovery_code<D: Db>(db: &mut D, id: &str, hash: &[u8], now_ms: i64) -> Result<bool, StoreError> {
    let n = db
        .exec(
            "UPDATE recovery_codes SET used_ms = $3 WHERE user_id = $1 AND code_hash = $2 AND used_ms IS NULL",
            args![id, hash, now_ms],
        )
        .await?;
    Ok(n == 1)
}

pub async fn set_locked<D: Db>(
    db: &mut D,
    id: &str,
    until_ms: Option<i64>,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    db.exec("UPDATE users SET locked_until_ms = $2 WHERE id = $1", args![id, until_ms]).await?;
    let action = if until_ms.is_some() { "user.locked" } else { "user.unlocked" };
    audit::append(db, ctx, action, &format!("user:{id}"), None, Some(json!({"until_ms": until_ms}))).await?;
    Ok(())
}

// --- sessions -------------------------------------------------------------------------------

/// A session as stored (looked up by the hash of its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

pub async fn create_session<D: Db>(
    db: &mut D,
    id_hash: &[u8],
    user_id: &str,
    now_ms: i64,
    ip: Option<&str>,
) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO sessions (id_hash, user_id, created_ms, last_seen_ms, source_ip) VALUES ($1, $2, $3, $3, $4)",
        args![id_hash, user_id, now_ms, ip],
    )
    .await?;
    Ok(())
}

pub async fn get_session<D: Db>(db: &mut D, id_hash: &[u8]) -> Result<Option<Session>, StoreError> {
    let r = db
        .query_opt("SELECT user_id, created_ms, last_seen_ms FROM sessions WHERE id_hash = $1", args![id_hash])
        .await?;
    r.map(|r| Ok(Session { user_id: r.text(0)?, created_ms: r.int(1)?, last_seen_ms: r.int(2)? })).transpose()
}

pub async fn touch_session<D: Db>(db: &mut D, id_hash: &[u8], now_ms: i64) -> Result<(), StoreError> {
    db.exec("UPDATE sessions SET last_seen_ms = $2 WHERE id_hash = $1", args![id_hash, now_ms]).await?;
    Ok(())
}

pub async fn delete_session<D: Db>(db: &mut D, id_hash: &[u8]) -> Result<(), StoreError> {
    db.exec("DELETE FROM sessions WHERE id_hash = $1", args![id_hash]).await?;
    Ok(())
}

// --- custom roles -----------------------------------------------------------------------------

pub async fn create_role<D: Db>(db: &mut D, role: &CustomRole, ctx: &AuditContext) -> Result<(), StoreError> {
    if db.query_opt("SELECT name FROM custom_roles WHERE name = $1", args![&role.name]).await?.is_some() {
        return Err(StoreError::Conflict(format!("role {:?} exists", role.name)));
    }
    db.exec(
        "INSERT INTO custom_roles (name, permissions, mfa_required, created_ms) VALUES ($1, $2, $3, $4)",
        args![&role.name, role.permissions.names().join(","), i64::from(role.mfa_required), ctx.at_ms],
    )
    .await?;
    audit::append(
        db,
        ctx,
        "role.create",
        &format!("role:{}", role.name),
        None,
        Some(json!({"permissions": role.permissions.names(), "mfa_required": role.mfa_required})),
    )
    .await?;
    Ok(())
}

pub async fn roles<D: Db>(db: &mut D) -> Result<Vec<CustomRole>, StoreError> {
    let rows = db.query("SELECT name, permissions, mfa_required FROM custom_roles ORDER BY name", vec![]).await?;
    rows.iter()
        .map(|r| {
            Ok(CustomRole {
                name: r.text(0)?,
                permissions: PermissionSet::parse(&split(&r.text(1)?))?,
                mfa_required: r.int(2)? != 0,
            })
        })
        .collect()
}
