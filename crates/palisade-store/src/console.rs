//! What the web console keeps per user: named filters of the device list.
//!
//! A saved filter is a view preference of one person, not a change to the fleet, so it is not
//! audited.

use palisade_core::InvalidField;

use crate::sql::Db;
use crate::{StoreError, args};

/// Longest name, in characters.
pub const MAX_NAME: usize = 64;
/// Longest query string, in bytes.
pub const MAX_QUERY: usize = 512;
/// Saved filters one person may keep.
pub const MAX_PER_USER: i64 = 50;

/// A named query string of the device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFilter {
    pub name: String,
    /// The list's query string, without `?`.
    pub query: String,
    pub created_ms: i64,
}

/// The name as it is stored (trimmed), or why it cannot be.
fn valid_name(name: &str) -> Result<&str, InvalidField> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(InvalidField::new("name", format!("must be 1 to {MAX_NAME} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidField::new("name", "must not hold control characters"));
    }
    Ok(name)
}

/// Saves (or replaces) a filter under `name`.
pub async fn save<D: Db>(
    db: &mut D,
    user_id: &str,
    name: &str,
    query: &str,
    now_ms: i64,
) -> Result<SavedFilter, StoreError> {
    let name = valid_name(name)?;
    if query.len() > MAX_QUERY {
        return Err(InvalidField::new("query", format!("must be at most {MAX_QUERY} bytes")).into());
    }
    let exists =
        db.query_opt("SELECT 1 FROM console_filters WHERE user_id = $1 AND name = $2", args![user_id, name]).await?;
    if exists.is_none() {
        let n = db
            .query_opt("SELECT count(*) FROM console_filters WHERE user_id = $1", args![user_id])
            .await?
            .map_or(Ok(0), |r| r.int(0))?;
        if n >= MAX_PER_USER {
            return Err(InvalidField::new(
                "name",
                format!("you have {MAX_PER_USER} saved filters already; delete one first"),
            )
            .into());
        }
    }
    db.exec(
        "INSERT INTO console_filters (user_id, name, query, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, name) DO UPDATE SET query = excluded.query, created_ms = excluded.created_ms",
        args![user_id, name, query, now_ms],
    )
    .await?;
    Ok(SavedFilter { name: name.to_owned(), query: query.to_owned(), created_ms: now_ms })
}

/// A person's saved filters, by name.
pub async fn list<D: Db>(db: &mut D, user_id: &str) -> Result<Vec<SavedFilter>, StoreError> {
    let rows = db
        .query(
            "SELECT name, query, created_ms FROM console_filters WHERE user_id = $1 ORDER BY name LIMIT 1000",
            args![user_id],
        )
        .await?;
    rows.iter().map(|r| Ok(SavedFilter { name: r.text(0)?, query: r.text(1)?, created_ms: r.int(2)? })).collect()
}

/// Forgets a saved filter; false when there was none of that name.
pub async fn delete<D: Db>(db: &mut D, user_id: &str, name: &str) -> Result<bool, StoreError> {
    let n =
        db.exec("DELETE FROM console_filters WHERE user_id = $1 AND name = $2", args![user_id, name.trim()]).await?;
    Ok(n > 0)
}
