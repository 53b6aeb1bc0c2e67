//! Passwords: argon2id hashing and verification (bounded, off the executor),
//! the policy, and secrets.

use super::*;
pub(super) fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// argon2id work runs on the blocking pool, never on the async executor,
/// and at most this many at once (all cores but one), so a burst of logins —
/// or a password-guessing attack — queues behind itself instead of starving
/// every other request of CPU.
pub(super) fn kdf_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

pub(super) async fn kdf<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let _permit = kdf_permits()
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(e.to_string()))
}

/// argon2id with the OWASP parameters (see [`kdf`] for where it runs).
pub async fn hash_password(password: String) -> Result<String, Error> {
    kdf(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(e.to_string()))
    })
    .await?
}

pub async fn verify_password(hash: String, password: String) -> bool {
    kdf(move || verify_blocking(&hash, &password)).await.unwrap_or(false)
}

pub(super) fn verify_blocking(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Does `password` equal any of these previous hashes?
pub(super) async fn reuses_history(history: Vec<String>, password: String) -> bool {
    kdf(move || history.iter().any(|h| verify_blocking(h, &password)))
        .await
        .unwrap_or(true)
}

/// A hash to verify against when the login name is unknown, so that the
/// answer takes as long as for a real account.
pub(super) static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(super) fn dummy_hash() -> String {
    DUMMY_HASH
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(b"not a password of anyone", &salt)
                .expect("hashing works")
                .to_string()
        })
        .clone()
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn token_sha256(token: &str) -> String {
    sha256_hex(token)
}

pub(super) fn random_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

/// A strong random password for bootstrap accounts.
pub fn generate_password() -> String {
    let mut b = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("Ml-{}9", URL_SAFE_NO_PAD.encode(b))
}

/// Parse a password against the policy, as a problem with a stable code.
pub fn password_policy(raw: &str, login: &LoginName) -> Result<Password, Error> {
    Password::parse(raw, login).map_err(|e| Error::rejected(Kind::Invalid, "weak_password", e.to_string()))
}
