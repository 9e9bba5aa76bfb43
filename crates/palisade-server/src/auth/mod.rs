//! Authentication of people: password hashing and policy, sessions, TOTP enrolment, recovery
//! codes, brute-force throttling, and turning role bindings into an [`Authority`].

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::throttle::{ThrottlePolicy, ThrottleState};
use palisade_core::{Authority, Grant, InvalidField, PermissionSet, Role};
use palisade_store::StoreError;
use palisade_store::users::{CustomRole, User};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::AuthConfig;

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted (bounds hashing and strength-estimation work).
pub const MAX_PASSWORD: usize = 128;
/// The session cookie.
pub const SESSION_COOKIE: &str = "palisade_session";
/// Recovery codes issued at MFA enrolment.
pub const RECOVERY_CODES: usize = 10;

/// Process-wide authentication state.
pub struct Auth {
    /// Argon2id runs at most this many at once: logins cannot exhaust the CPU or memory.
    hashing: Semaphore,
    /// Verified against when the username is unknown, so both paths cost the same.
    dummy_hash: String,
    accounts: Mutex<Throttles>,
    sources: Mutex<Throttles>,
    pub account_policy: ThrottlePolicy,
    pub source_policy: ThrottlePolicy,
    pub config: AuthConfig,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// Throttle states by key, bounded in size.
#[derive(Default)]
struct Throttles {
    map: HashMap<String, ThrottleState>,
}

/// Keys tracked at most (per kind); beyond it, entries past their window are dropped first.
const MAX_TRACKED: usize = 100_000;

impl Throttles {
    fn get(&self, key: &str) -> ThrottleState {
        self.map.get(key).copied().unwrap_or_default()
    }

    fn set(&mut self, key: String, state: ThrottleState, policy: &ThrottlePolicy, now_ms: i64) {
        if self.map.len() >= MAX_TRACKED && !self.map.contains_key(&key) {
            self.map.retain(|_, s| policy.is_locked(s, now_ms) || now_ms - s.last_failure_ms < policy.window_ms);
        }
        if self.map.len() < MAX_TRACKED || self.map.contains_key(&key) {
            self.map.insert(key, state);
        }
    }

    fn clear(&mut self, key: &str) {
        self.map.remove(key);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn argon2() -> Argon2<'static> {
    // argon2id, m = 19 MiB, t = 2, p = 1: the OWASP recommendation.
    Argon2::default()
}

impl Auth {
    pub fn new(config: AuthConfig) -> Result<Self, AuthError> {
        let mut random = Zeroizing::new([0u8; 32]);
        palisade_store::sealed::random(random.as_mut())?;
        let dummy_hash = hash_blocking(&URL_SAFE_NO_PAD.encode(random.as_slice()))?;
        let account_policy = ThrottlePolicy {
            base_delay_ms: config.throttle_base_delay_ms,
            lockout_after: config.lockout_after,
            lockout_ms: i64::try_from(config.lockout_secs).unwrap_or(i64::MAX / 2).saturating_mul(1000),
            ..ThrottlePolicy::ACCOUNT
        };
        let source_policy = ThrottlePolicy { base_delay_ms: config.throttle_base_delay_ms, ..ThrottlePolicy::SOURCE };
        Ok(Self {
            hashing: Semaphore::new(2),
            dummy_hash,
            accounts: Mutex::default(),
            sources: Mutex::default(),
            account_policy,
            source_policy,
            config,
        })
    }

    /// Hashes a password with argon2id off the async threads.
    pub async fn hash_password(&self, password: Zeroizing<String>) -> Result<Zeroizing<String>, AuthError> {
        let _permit = self.hashing.acquire().await.map_err(|_| AuthError::Hash)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password).map(Zeroizing::new))
            .await
            .map_err(|_| AuthError::Hash)?
    }

    /// Verifies `password` against `phc`, or against a dummy hash when there is no user, so
    /// that the answer takes the same time either way.
    pub async fn verify_password(&self, password: Zeroizing<String>, phc: Option<Zeroizing<String>>) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else { return false };
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| Zeroizing::new(self.dummy_hash.clone()));
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        ok && real
    }

    fn lock<'a>(&self, m: &'a Mutex<Throttles>) -> std::sync::MutexGuard<'a, Throttles> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the account or the source is locked now.
    pub fn is_locked(&self, account: &str, source: &str, now_ms: i64) -> bool {
        let a = self.lock(&self.accounts).get(account);
        let s = self.lock(&self.sources).get(source);
        self.account_policy.is_locked(&a, now_ms) || self.source_policy.is_locked(&s, now_ms)
    }

    /// Records a failure; returns how long to hold the answer and the account's lock, if any.
    pub fn record_failure(&self, account: &str, source: &str, now_ms: i64) -> (u64, Option<i64>) {
        let mut accounts = self.lock(&self.accounts);
        let a = self.account_policy.after_failure(&accounts.get(account), now_ms);
        accounts.set(account.to_owned(), a, &self.account_policy, now_ms);
        drop(accounts);
        let mut sources = self.lock(&self.sources);
        let s = self.source_policy.after_failure(&sources.get(source), now_ms);
        sources.set(source.to_owned(), s, &self.source_policy, now_ms);
        drop(sources);
        (self.account_policy.delay_ms(&a).max(self.source_policy.delay_ms(&s)), a.locked_until_ms)
    }

    /// Records a refused attempt against a locked account: it still counts against the source.
    pub fn record_source_failure(&self, source: &str, now_ms: i64) {
        let mut sources = self.lock(&self.sources);
        let s = self.source_policy.after_failure(&sources.get(source), now_ms);
        sources.set(source.to_owned(), s, &self.source_policy, now_ms);
    }

    pub fn record_success(&self, account: &str) {
        self.lock(&self.accounts).clear(account);
    }

    /// An administrator lifted the lock.
    pub fn unlock(&self, account: &str) {
        self.lock(&self.accounts).clear(account);
    }

    /// Whether a user with these bindings must use MFA.
    pub fn mfa_required(&self, user: &User, custom: &[CustomRole]) -> bool {
        user.bindings.iter().any(|b| match b.role.parse::<Role>() {
            Ok(_) => self.config.mfa_required_roles.contains(&b.role),
            Err(_) => custom.iter().any(|c| c.name == b.role && c.mfa_required),
        })
    }
}

/// Hashes a password on the calling thread (startup and tools; request paths use
/// [`Auth::hash_password`]).
pub fn hash_password_blocking(password: &str) -> Result<Zeroizing<String>, AuthError> {
    hash_blocking(password).map(Zeroizing::new)
}

fn hash_blocking(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    palisade_store::sealed::random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| AuthError::Hash)?;
    argon2().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|_| AuthError::Hash)
}

/// The password policy: 12–128 characters, not guessable (zxcvbn score ≥ 3, which rejects the
/// common passwords of its bundled lists and variations on the username).
pub fn check_password(password: &str, username: &str) -> Result<(), InvalidField> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(InvalidField::new("password", format!("must be at least {MIN_PASSWORD} characters")));
    }
    if n > MAX_PASSWORD {
        return Err(InvalidField::new("password", format!("must be at most {MAX_PASSWORD} characters")));
    }
    let estimate = zxcvbn::zxcvbn(password, &[username, "palisade"]);
    if u8::from(estimate.score()) < 3 {
        return Err(InvalidField::new(
            "password",
            "is too easy to guess (a common password, a pattern, or close to the username); use a longer passphrase",
        ));
    }
    Ok(())
}

/// Random text for passwords, session ids and recovery codes.
pub fn random_token(bytes: usize) -> Result<Zeroizing<String>, StoreError> {
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    palisade_store::sealed::random(&mut b)?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(b.as_slice())))
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// The CSRF token of a session: derived from its id, so nothing more is stored.
pub fn csrf_token(session_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(format!("palisade-csrf\0{session_id}").as_bytes()))
}

pub fn csrf_matches(session_id: &str, presented: &str) -> bool {
    csrf_token(session_id).as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Recovery codes: shown once, stored as hashes.
pub fn recovery_codes() -> Result<(Vec<String>, Vec<Vec<u8>>), StoreError> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut b = [0u8; 5];
        palisade_store::sealed::random(&mut b)?;
        let t = palisade_core::totp::base32(&b).to_lowercase();
        codes.push(format!("{}-{}", t.get(..4).unwrap_or_default(), t.get(4..).unwrap_or_default()));
    }
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    Ok((codes, hashes))
}

pub fn recovery_hash(code: &str) -> Vec<u8> {
    let normalised: String = code.trim().to_lowercase().chars().filter(|c| *c != '-' && *c != ' ').collect();
    sha256(format!("palisade-recovery\0{normalised}").as_bytes())
}

/// A QR code of `text`, as an SVG document (rendered here: no third-party service sees it).
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a QR code");
            String::new()
        }
    }
}

/// What a user may do: one grant per role binding.
pub fn user_authority(user: &User, custom: &[CustomRole]) -> Authority {
    let grants = user
        .bindings
        .iter()
        .map(|b| {
            let permissions = match b.role.parse::<Role>() {
                Ok(r) => r.permission_set(),
                Err(_) => custom.iter().find(|c| c.name == b.role).map_or(PermissionSet::default(), |c| c.permissions),
            };
            Grant { permissions, scope: b.scope.clone() }
        })
        .collect();
    Authority::new(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        assert!(check_password("short", "u").is_err());
        assert!(check_password("password1234", "u").is_err(), "common");
        assert!(check_password("qwertyuiop123", "u").is_err(), "keyboard pattern");
        assert!(check_password("alice.smith2024", "alice.smith").is_err(), "username-based");
        assert!(check_password("correct horse battery staple", "u").is_ok());
        assert!(check_password(&"x".repeat(129), "u").is_err());
    }

    #[test]
    fn recovery_codes_normalise() {
        let (codes, hashes) = recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(recovery_hash(&codes[0].to_uppercase().replace('-', " ")), hashes[0]);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        assert!(csrf_matches("a", &csrf_token("a")));
        assert!(!csrf_matches("b", &csrf_token("a")));
    }
}
