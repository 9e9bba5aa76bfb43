//! First start and every start: the data directory, the master key, the store, the root CA.
//!
//! Shared by `serve` and the local administration commands (`apikey create`, `audit verify`,
//! `keys rotate`), which open the same store the same way.

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use palisade_core::audit::Actor;
use palisade_pki::Ca;
use palisade_store::audit::AuditContext;
use palisade_store::sealed::{MasterKey, pending_path};
use palisade_store::{Store, StoreError, StoreLocation, StoreObserver};

use crate::config::Config;
use crate::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] palisade_pki::PkiError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Refused(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BootstrapError + 'a {
    move |source| BootstrapError::Io { what, path: path.to_owned(), source }
}

/// `DATA_DIR/pki/root-ca.pem`: the trust anchor for every Palisade listener (contract).
pub fn root_ca_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki").join("root-ca.pem")
}

const ROOT_CA_SECRET: &str = "pki/root-ca";

/// Opens the store, creating the data directory and master key on first start. With
/// `create = false` (local tools), a missing master key is an error instead.
pub async fn open_store(
    config: &Config,
    create: bool,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<Store, BootstrapError> {
    let data_dir = config.data_dir()?;
    if !data_dir.exists() {
        if !create {
            return Err(BootstrapError::Refused(format!("{} does not exist", data_dir.display())));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(io("cannot create", data_dir))?;
    }
    let location = config.store_location()?;
    if let StoreLocation::Sqlite(db) = &location
        && create
        && !db.exists()
    {
        // SQLite creates its -wal and -shm files with the database file's mode: make it 0600.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .map_err(io("cannot create", db))?;
    }
    let key_path = config.master_key_path()?;
    let mut created_key = false;
    let master = if key_path.exists() {
        MasterKey::load(&key_path)?
    } else {
        // An empty file is what we create above; a database with content has its own key.
        let fresh_db = match &location {
            StoreLocation::Sqlite(p) => std::fs::metadata(p).map_or(true, |m| m.len() == 0),
            StoreLocation::Postgres(_) => true,
        };
        if !create || !fresh_db {
            return Err(BootstrapError::Refused(format!(
                "master key {} is missing; the database cannot be opened without it",
                key_path.display()
            )));
        }
        let key = MasterKey::generate()?;
        key.write_new(&key_path)?;
        created_key = true;
        tracing::info!(path = %key_path.display(), "created the master key (keep a copy offline)");
        key
    };
    match Store::open(&location, &master, now_ms(), observer.clone()).await {
        Ok(store) => Ok(store),
        Err(StoreError::WrongMasterKey) => {
            if created_key {
                // We made a key for a database that already had one (PostgreSQL): take it back.
                let _ = std::fs::remove_file(&key_path);
                return Err(BootstrapError::Refused(
                    "the database was created with another master key; give it with master_key_file".into(),
                ));
            }
            // A rotation may have committed before the new key file was moved into place.
            let pending = pending_path(&key_path);
            if pending.exists() {
                let new = MasterKey::load(&pending)?;
                let store = Store::open(&location, &new, now_ms(), observer).await?;
                std::fs::rename(&pending, &key_path).map_err(io("cannot install", &pending))?;
                tracing::warn!("finished an interrupted master key rotation");
                return Ok(store);
            }
            Err(StoreError::WrongMasterKey.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The CA hierarchy: a root, an issuing CA for devices, an issuing CA for listeners.
#[derive(Debug)]
pub struct Pki {
    pub root: Ca,
    pub device: Ca,
    pub server: Ca,
}

const DEVICE_CA_SECRET: &str = "pki/device-ca";
const SERVER_CA_SECRET: &str = "pki/server-ca";

async fn load_or_create(
    store: &Store,
    name: &str,
    create: impl FnOnce() -> Result<Ca, palisade_pki::PkiError>,
) -> Result<Ca, BootstrapError> {
    let stored = match store.secret(name).await? {
        Some(s) => s,
        None => store.secret_or_insert(name.into(), create()?.to_stored(), now_ms()).await?,
    };
    Ok(Ca::from_stored(&stored)?)
}

/// Loads the CA hierarchy, creating it on first start, and writes `pki/root-ca.pem`.
pub async fn pki(store: &Store, data_dir: &Path) -> Result<Pki, BootstrapError> {
    let now = time::OffsetDateTime::now_utc();
    let root = load_or_create(store, ROOT_CA_SECRET, || {
        let mut id = [0u8; 4];
        palisade_store::sealed::random(&mut id).map_err(|e| palisade_pki::PkiError::Malformed(e.to_string()))?;
        Ca::generate(&hex(&id), now)
    })
    .await?;
    let device = load_or_create(store, DEVICE_CA_SECRET, || root.issue_intermediate("Palisade Device CA", now)).await?;
    let server = load_or_create(store, SERVER_CA_SECRET, || root.issue_intermediate("Palisade Server CA", now)).await?;
    let pki = data_dir.join("pki");
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&pki).map_err(io("cannot create", &pki))?;
    let path = root_ca_path(data_dir);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(root.cert_pem()) {
        let tmp = pki.join(".root-ca.pem.tmp");
        std::fs::write(&tmp, root.cert_pem()).map_err(io("cannot write", &tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io("cannot chmod", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot write", &path))?;
    }
    Ok(Pki { root, device, server })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `palisade keys rotate`: a new master key re-wraps every data key, and replaces the old key
/// file. Safe while the server runs (it keeps its unwrapped data keys in memory) and safe to
/// interrupt: the new key is written before the database switches, and moved into place after.
pub async fn rotate_master_key(config: &Config) -> Result<String, BootstrapError> {
    let key_path = config.master_key_path()?;
    let store = open_store(config, false, None).await?;
    let old = MasterKey::load(&key_path)?;
    let new = Arc::new(MasterKey::generate()?);
    let pending = pending_path(&key_path);
    if pending.exists() {
        return Err(BootstrapError::Refused(format!(
            "{} exists: an earlier rotation was interrupted; start the server once to finish it",
            pending.display()
        )));
    }
    new.write_new(&pending)?;
    let ctx = AuditContext { actor: local_actor("keys rotate"), source_ip: None, at_ms: now_ms() };
    if let Err(e) = store.rotate_master_key(old, new.clone(), ctx).await {
        let _ = std::fs::remove_file(&pending);
        return Err(e.into());
    }
    store.close().await;
    std::fs::rename(&pending, &key_path).map_err(io("cannot install", &pending))?;
    if let Some(dir) = key_path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(new.id())
}

/// The actor of a local administration command: the OS user running it.
pub fn local_actor(command: &str) -> Actor {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    Actor::Local { what: format!("{command} ({user})") }
}

/// The id of the first administrator.
pub const INITIAL_ADMIN_ID: &str = "uadmin";

/// Where the first administrator's one-time password is left (mode 0600) until it is changed.
pub fn initial_admin_path(data_dir: &Path) -> PathBuf {
    data_dir.join("initial-admin-password")
}

/// On first start (no users at all), creates `admin` with a random one-time password, written
/// to `DATA_DIR/initial-admin-password` (never to the log). The account must change it and
/// enrol MFA at first sign-in.
pub async fn initial_admin(store: &Store, data_dir: &Path) -> Result<(), BootstrapError> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let password = crate::auth::random_token(18)?;
    let hash = crate::auth::hash_password_blocking(&password).map_err(|e| BootstrapError::Refused(e.to_string()))?;
    let path = initial_admin_path(data_dir);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("cannot write", &path))?;
    std::io::Write::write_all(&mut f, format!("{}\n", password.as_str()).as_bytes())
        .map_err(io("cannot write", &path))?;
    let user = palisade_store::users::NewUser {
        id: INITIAL_ADMIN_ID.into(),
        username: "admin".into(),
        display_name: Some("Initial administrator".into()),
        email: None,
        password_hash: hash,
        must_change_password: true,
        bindings: vec![palisade_store::users::RoleBinding {
            role: "admin".into(),
            scope: palisade_core::Scope::everywhere(),
        }],
    };
    let ctx = AuditContext { actor: Actor::System, source_ip: None, at_ms: now_ms() };
    match store.create_user(user, ctx).await {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "created the initial administrator 'admin'; its one-time password is in this file");
            Ok(())
        }
        // Another node created it first.
        Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes the root CA (certificate and key, PEM) to a new file of mode 0600.
pub async fn export_root(store: &Store, out: &Path) -> Result<(), BootstrapError> {
    let stored = store
        .secret(ROOT_CA_SECRET)
        .await?
        .ok_or_else(|| BootstrapError::Refused("there is no root CA yet: start the server once".into()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io("cannot create", out))?;
    std::io::Write::write_all(&mut f, &stored).map_err(io("cannot write", out))?;
    f.sync_all().map_err(io("cannot write", out))?;
    Ok(())
}

/// Installs an existing root CA; refused once a root exists (the hierarchy hangs off it).
pub async fn import_root(store: &Store, file: &Path) -> Result<(), BootstrapError> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(file).map_err(io("cannot read", file))?);
    let ca = Ca::from_stored(&bytes)?;
    if store.secret(ROOT_CA_SECRET).await?.is_some() {
        return Err(BootstrapError::Refused("this installation has a root CA already".into()));
    }
    store.secret_or_insert(ROOT_CA_SECRET.into(), ca.to_stored(), now_ms()).await?;
    Ok(())
}
