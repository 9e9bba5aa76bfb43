//! The narrow seam between Palisade's storage logic and the two database backends.
//!
//! Every query is written once, in the SQL that SQLite and PostgreSQL share (`$1` placeholders,
//! `RETURNING`, `ON CONFLICT`), against the [`Db`] trait. The backends implement [`Db`] for their
//! concrete sqlx connection types; the few real dialect differences branch on [`Db::DIALECT`].

use std::future::Future;
use std::pin::Pin;

use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use crate::StoreError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The type a NULL is bound as (PostgreSQL wants to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

/// A bound parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Blob(v.to_vec())
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::Null(Kind::Int), Self::Int)
    }
}
impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Self::Null(Kind::Real), Self::Real)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Self::Null(Kind::Text), Self::Text)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Self::Null(Kind::Text), |s| Self::Text(s.to_owned()))
    }
}
impl From<Option<Vec<u8>>> for Value {
    fn from(v: Option<Vec<u8>>) -> Self {
        v.map_or(Self::Null(Kind::Blob), Self::Blob)
    }
}

/// `args![a, b, c]` builds the parameter list of a query.
#[macro_export]
#[doc(hidden)]
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::sql::Value::from($v)),*] };
}

/// One result row, decoded into [`Value`]s. Getters fail with [`StoreError::Corrupt`] instead of
/// panicking when a column is missing or has another type.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> Result<&Value, StoreError> {
        self.0.get(i).ok_or_else(|| StoreError::Corrupt(format!("column {i} missing")))
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(StoreError::Corrupt(format!("column {i}: expected an integer, found {other:?}"))),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.get(i)? {
            Value::Null(_) => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// A number column as a float (integers widen).
    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.get(i)? {
            Value::Null(_) => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(v) => Ok(Some(*v as f64)),
            other => Err(StoreError::Corrupt(format!("column {i}: expected a number, found {other:?}"))),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.get(i)? {
            Value::Text(v) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {i}: expected text, found {other:?}"))),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.get(i)? {
            Value::Null(_) => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.get(i)? {
            Value::Blob(v) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {i}: expected bytes, found {other:?}"))),
        }
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(i)? {
            Value::Null(_) => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }

    /// A 32-byte hash column.
    pub fn hash32(&self, i: usize) -> Result<[u8; 32], StoreError> {
        self.blob(i)?.try_into().map_err(|_| StoreError::Corrupt(format!("column {i}: expected 32 bytes")))
    }
}

/// A connection (or a transaction on one) that storage logic runs queries on.
pub trait Db: Send {
    const DIALECT: Dialect;

    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, args: Vec<Value>) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Runs a query; every row it returned.
    fn query(&mut self, sql: &str, args: Vec<Value>) -> impl Future<Output = Result<Vec<Row>, StoreError>> + Send;

    /// Runs a script of one or more statements without parameters (DDL, BEGIN, COMMIT).
    fn exec_script(&mut self, sql: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Runs a query that returns at most one row.
    fn query_opt(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, StoreError>> + Send {
        async move { Ok(self.query(sql, args).await?.into_iter().next()) }
    }
}

impl Db for sqlx::SqliteConnection {
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn exec(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        Ok(bind_sqlite(sqlx::query(sql), args).execute(self).await?.rows_affected())
    }

    async fn exec_script(&mut self, sql: &str) -> Result<(), StoreError> {
        sqlx::Executor::execute(&mut *self, sql).await?;
        Ok(())
    }

    async fn query(&mut self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let rows = bind_sqlite(sqlx::query(sql), args).fetch_all(self).await?;
        rows.iter().map(decode_sqlite).collect()
    }
}

/// The SQLite writer's own connection (see `sqlite.rs`): statements run on the calling thread,
/// so the futures complete without waiting on anything.
impl Db for crate::sqlite::Writer {
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn exec(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        bind_rusqlite(&mut stmt, args)?;
        // Stepped to the end, so a statement with RETURNING rows runs whole.
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
        drop(rows);
        Ok(conn.changes())
    }

    async fn exec_script(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.conn().execute_batch(sql)?)
    }

    async fn query(&mut self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        bind_rusqlite(&mut stmt, args)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null(Kind::Text),
                    rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                    rusqlite::types::ValueRef::Real(v) => Value::Real(v),
                    rusqlite::types::ValueRef::Text(t) => Value::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|_| StoreError::Corrupt(format!("column {i}: text is not UTF-8")))?,
                    ),
                    rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

impl Db for sqlx::PgConnection {
    const DIALECT: Dialect = Dialect::Postgres;

    async fn exec(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        Ok(bind_pg(sqlx::query(sql), args).execute(self).await?.rows_affected())
    }

    async fn exec_script(&mut self, sql: &str) -> Result<(), StoreError> {
        sqlx::Executor::execute(&mut *self, sql).await?;
        Ok(())
    }

    async fn query(&mut self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let rows = bind_pg(sqlx::query(sql), args).fetch_all(self).await?;
        rows.iter().map(decode_pg).collect()
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_sqlite(mut q: SqliteQuery<'_>, args: Vec<Value>) -> SqliteQuery<'_> {
    for a in args {
        q = match a {
            Value::Null(_) => q.bind(Option::<i64>::None),
            Value::Int(v) => q.bind(v),
            Value::Real(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Blob(v) => q.bind(v),
        };
    }
    q
}

/// Binds like sqlx does for SQLite: `$N` and `?N` by number, bare `?` in order; parameters
/// beyond the arguments stay NULL.
fn bind_rusqlite(stmt: &mut rusqlite::Statement<'_>, args: Vec<Value>) -> Result<(), StoreError> {
    stmt.clear_bindings();
    let mut next = 0usize;
    for i in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(i) {
            Some(name) => name
                .strip_prefix('$')
                .or_else(|| name.strip_prefix('?'))
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("unsupported SQL parameter {name}")))?,
            None => {
                next += 1;
                next
            }
        };
        let Some(value) = n.checked_sub(1).and_then(|k| args.get(k)) else { break };
        match value {
            Value::Null(_) => stmt.raw_bind_parameter(i, rusqlite::types::Null)?,
            Value::Int(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Real(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Text(v) => stmt.raw_bind_parameter(i, v.as_str())?,
            Value::Blob(v) => stmt.raw_bind_parameter(i, v.as_slice())?,
        }
    }
    Ok(())
}

fn bind_pg(mut q: PgQuery<'_>, args: Vec<Value>) -> PgQuery<'_> {
    for a in args {
        q = match a {
            Value::Null(Kind::Int) => q.bind(Option::<i64>::None),
            Value::Null(Kind::Real) => q.bind(Option::<f64>::None),
            Value::Null(Kind::Text) => q.bind(Option::<String>::None),
            Value::Null(Kind::Blob) => q.bind(Option::<Vec<u8>>::None),
            Value::Int(v) => q.bind(v),
            Value::Real(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Blob(v) => q.bind(v),
        };
    }
    q
}

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Value::Null(Kind::Text));
            continue;
        }
        let kind = raw.type_info().name().to_owned();
        out.push(match kind.as_str() {
            "INTEGER" | "BOOLEAN" => Value::Int(row.try_get(i)?),
            "REAL" => Value::Real(row.try_get(i)?),
            "BLOB" => Value::Blob(row.try_get(i)?),
            _ => Value::Text(row.try_get(i)?),
        });
    }
    Ok(Row(out))
}

fn decode_pg(row: &sqlx::postgres::PgRow) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.push(Value::Null(Kind::Text));
            continue;
        }
        out.push(match col.type_info().name() {
            "INT8" => Value::Int(row.try_get(i)?),
            "INT4" => Value::Int(i64::from(row.try_get::<i32, _>(i)?)),
            "INT2" => Value::Int(i64::from(row.try_get::<i16, _>(i)?)),
            "BOOL" => Value::Int(i64::from(row.try_get::<bool, _>(i)?)),
            "FLOAT8" => Value::Real(row.try_get(i)?),
            "FLOAT4" => Value::Real(f64::from(row.try_get::<f32, _>(i)?)),
            "BYTEA" => Value::Blob(row.try_get(i)?),
            "VOID" => Value::Null(Kind::Text),
            _ => Value::Text(row.try_get(i)?),
        });
    }
    Ok(Row(out))
}
