//! Crypto-shredding: personal data is encrypted with a key of its own data
//! subject (AES-256-GCM), and that key is stored wrapped by the master key.
//! Forgetting a subject destroys its key; the ciphertext in the log stays (and
//! so do the hashes over it), but nobody can read it again.
//!
//! The store finds personal data by its wire shape (see
//! `medledger_domain::pii`): `{"$pii": {"subject": …, "value": …}}` is sealed
//! to `{"$pii": {"subject": …, "key_id": …, "nonce": …, "ciphertext": …}}` before
//! the append, and opened back on read, or to `{"erased": true}` once forgotten.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use medledger_domain::pii::PII_MARKER;
use rand::RngCore;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::args;
use crate::db::Db;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    #[error("subject {0} has been forgotten: no new personal data can be stored for it")]
    SubjectForgotten(Uuid),
    #[error("personal data could not be decrypted: {0}")]
    Undecryptable(String),
    #[error("key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The key that wraps every subject key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        MasterKey(k)
    }

    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(s.trim()).map_err(|_| CryptoError::BadMasterKey)?;
        let k: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadMasterKey)?;
        Ok(MasterKey(k))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Read the key file, creating it (mode 0600) with a fresh key if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match std::fs::read_to_string(path) {
            Ok(s) => Self::from_base64(&s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let key = Self::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                use std::io::Write;
                opts.open(path)?.write_all(key.to_base64().as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn encrypt(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    (nonce.to_vec(), ct)
}

fn decrypt(key: &[u8; 32], nonce: &[u8], ct: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != 12 {
        return Err(CryptoError::Undecryptable("bad nonce".into()));
    }
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Undecryptable("authentication failed".into()))
}

/// A subject's key as the store may use it.
#[derive(Clone)]
struct SubjectKey {
    key_id: String,
    key: Option<[u8; 32]>,
}

/// How long a key used for sealing is kept in memory.
///
/// Instances of one patient arrive together (a study is hundreds of them, over
/// several associations at once): without this, each looked the key up, and all
/// the first ones, finding none, each wrote one (a durable write apiece, all but
/// one of them for nothing). Within one process, forgetting the subject removes
/// its key from here at once. Another node may go on sealing with it for at most
/// this long; what it seals then is unreadable, as the key is destroyed.
const SEALING_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Per-subject data keys, kept in `subject_keys`, wrapped by the master key.
#[derive(Clone)]
pub struct KeyStore {
    db: Db,
    master: Arc<MasterKey>,
    /// Live keys recently used for sealing (never for opening: a key read for
    /// opening is read afresh, so a forgotten subject's data is never opened).
    sealing: moka::future::Cache<Uuid, SubjectKey>,
}

impl KeyStore {
    pub fn new(db: Db, master: MasterKey) -> Self {
        KeyStore {
            db,
            master: Arc::new(master),
            sealing: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SEALING_KEY_TTL)
                .build(),
        }
    }

    fn unwrap_row(&self, subject: Uuid, key_id: String, wrapped: Option<Vec<u8>>) -> Result<SubjectKey, CryptoError> {
        let key = match wrapped {
            None => None,
            Some(w) if w.len() > 12 => {
                let raw = decrypt(&self.master.0, &w[..12], &w[12..], subject.as_bytes())?;
                Some(
                    raw.try_into()
                        .map_err(|_| CryptoError::Undecryptable("bad key length".into()))?,
                )
            }
            Some(_) => return Err(CryptoError::Undecryptable("bad wrapped key".into())),
        };
        Ok(SubjectKey { key_id, key })
    }

    async fn load(&self, subjects: &[Uuid]) -> Result<HashMap<Uuid, SubjectKey>, CryptoError> {
        let mut out = HashMap::new();
        for chunk in subjects.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT subject_id, key_id, wrapped_key FROM subject_keys WHERE subject_id IN ({})",
                placeholders.join(", ")
            );
            let args: Vec<_> = chunk.iter().map(|s| crate::db::Arg::from(*s)).collect();
            for row in self.db.fetch_all(&sql, &args).await? {
                let id: String = row.get(0)?;
                let subject = Uuid::parse_str(&id).map_err(|e| CryptoError::Undecryptable(e.to_string()))?;
                let k = self.unwrap_row(subject, row.get(1)?, row.get(2)?)?;
                out.insert(subject, k);
            }
        }
        Ok(out)
    }

    /// The subject's key, created on first use. Concurrent callers for one subject
    /// share one lookup (and one creation).
    async fn key_for_sealing(&self, subject: Uuid, now: DateTime<Utc>) -> Result<SubjectKey, CryptoError> {
        self.sealing
            .try_get_with(subject, self.find_or_create(subject, now))
            .await
            .map_err(|e| match &*e {
                CryptoError::SubjectForgotten(s) => CryptoError::SubjectForgotten(*s),
                other => CryptoError::Undecryptable(format!("subject key: {other}")),
            })
    }

    async fn find_or_create(&self, subject: Uuid, now: DateTime<Utc>) -> Result<SubjectKey, CryptoError> {
        if let Some(k) = self.load(&[subject]).await?.remove(&subject) {
            return match k.key {
                Some(_) => Ok(k),
                None => Err(CryptoError::SubjectForgotten(subject)),
            };
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let (nonce, ct) = encrypt(&self.master.0, &raw, subject.as_bytes());
        let wrapped = [nonce, ct].concat();
        let key_id = Uuid::now_v7().to_string();
        // Two writers may race to create the key: the first one wins, both use it.
        self.db
            .execute(
                "INSERT INTO subject_keys (subject_id, key_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subject_id) DO NOTHING",
                &args![subject, key_id, wrapped, now],
            )
            .await?;
        match self.load(&[subject]).await?.remove(&subject) {
            Some(k) if k.key.is_some() => Ok(k),
            _ => Err(CryptoError::SubjectForgotten(subject)),
        }
    }

    /// A stable subject id for a natural key (e.g. a hospital's Patient ID)
    /// that reveals nothing of it: a keyed hash under the master key, so the
    /// same patient always maps to the same subject and nobody without the
    /// key can test guesses against it.
    pub fn pseudonym(&self, namespace: &str, value: &str) -> Uuid {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"medledger-subject-v1");
        h.update(self.master.0);
        h.update((namespace.len() as u64).to_be_bytes());
        h.update(namespace.as_bytes());
        h.update(value.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// Destroy a subject's key. Returns false if it was already destroyed.
    pub async fn destroy(&self, subject: Uuid, now: DateTime<Utc>) -> Result<bool, CryptoError> {
        self.sealing.invalidate(&subject).await;
        let destroyed = self.destroy_stored(subject, now).await;
        // Again, in case a sealer loaded the key while it was being destroyed.
        self.sealing.invalidate(&subject).await;
        destroyed
    }

    async fn destroy_stored(&self, subject: Uuid, now: DateTime<Utc>) -> Result<bool, CryptoError> {
        // A subject that never had a key gets a destroyed one, so no personal
        // data can be stored for it afterwards either.
        let inserted = self
            .db
            .execute(
                "INSERT INTO subject_keys (subject_id, key_id, wrapped_key, created_at, destroyed_at) \
                 VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (subject_id) DO NOTHING",
                &args![subject, "destroyed", now],
            )
            .await?;
        if inserted == 1 {
            return Ok(true);
        }
        let n = self
            .db
            .execute(
                "UPDATE subject_keys SET wrapped_key = NULL, destroyed_at = $2 WHERE subject_id = $1 AND wrapped_key IS NOT NULL",
                &args![subject, now],
            )
            .await?;
        Ok(n == 1)
    }

    /// Encrypt every personal-data value in `payload` in place.
    pub async fn seal(&self, payload: &mut Value, now: DateTime<Utc>) -> Result<(), CryptoError> {
        let mut found = Vec::new();
        collect_pii(payload, &mut |inner| {
            if inner.contains_key("value") {
                if let Some(s) = subject_of(inner) {
                    found.push(s);
                }
            }
        });
        if found.is_empty() {
            return Ok(());
        }
        found.sort();
        found.dedup();
        let mut keys = HashMap::new();
        for s in found {
            keys.insert(s, self.key_for_sealing(s, now).await?);
        }
        rewrite_pii(payload, &mut |inner| {
            let (Some(subject), Some(Value::String(plain))) = (subject_of(inner), inner.get("value")) else {
                return Ok(None);
            };
            let k = &keys[&subject];
            let key = k.key.as_ref().ok_or(CryptoError::SubjectForgotten(subject))?;
            let (nonce, ct) = encrypt(key, plain.as_bytes(), subject.as_bytes());
            Ok(Some(json!({
                "subject": subject,
                "key_id": k.key_id,
                "nonce": B64.encode(nonce),
                "ciphertext": B64.encode(ct),
            })))
        })
    }

    /// Decrypt every sealed value in the payloads in place; values of
    /// forgotten subjects become `{"erased": true}`.
    pub async fn open(&self, payloads: &mut [&mut Value]) -> Result<(), CryptoError> {
        let mut subjects = Vec::new();
        for p in payloads.iter_mut() {
            collect_pii(p, &mut |inner| {
                if inner.contains_key("ciphertext") {
                    if let Some(s) = subject_of(inner) {
                        subjects.push(s);
                    }
                }
            });
        }
        if subjects.is_empty() {
            return Ok(());
        }
        subjects.sort();
        subjects.dedup();
        let keys = self.load(&subjects).await?;
        for p in payloads.iter_mut() {
            rewrite_pii(p, &mut |inner| {
                let Some(subject) = subject_of(inner) else {
                    return Ok(None);
                };
                if !inner.contains_key("ciphertext") {
                    return Ok(None);
                }
                let key = keys.get(&subject).and_then(|k| k.key);
                let Some(key) = key else {
                    return Ok(Some(json!({"subject": subject, "erased": true})));
                };
                let field = |name: &str| {
                    inner
                        .get(name)
                        .and_then(Value::as_str)
                        .and_then(|s| B64.decode(s).ok())
                        .ok_or_else(|| CryptoError::Undecryptable(format!("missing {name}")))
                };
                let plain = decrypt(&key, &field("nonce")?, &field("ciphertext")?, subject.as_bytes())?;
                let text = String::from_utf8(plain).map_err(|e| CryptoError::Undecryptable(e.to_string()))?;
                Ok(Some(json!({"subject": subject, "value": text})))
            })?;
        }
        Ok(())
    }
}

fn subject_of(inner: &Map<String, Value>) -> Option<Uuid> {
    inner
        .get("subject")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn collect_pii(v: &Value, f: &mut impl FnMut(&Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            if let (1, Some(Value::Object(inner))) = (m.len(), m.get(PII_MARKER)) {
                f(inner);
            } else {
                m.values().for_each(|x| collect_pii(x, f));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_pii(x, f)),
        _ => {}
    }
}

type Rewrite<'a> = dyn FnMut(&Map<String, Value>) -> Result<Option<Value>, CryptoError> + 'a;

fn rewrite_pii(v: &mut Value, f: &mut Rewrite<'_>) -> Result<(), CryptoError> {
    match v {
        Value::Object(m) => {
            if let (1, Some(Value::Object(inner))) = (m.len(), m.get(PII_MARKER)) {
                if let Some(new_inner) = f(inner)? {
                    m.insert(PII_MARKER.to_string(), new_inner);
                }
            } else {
                for x in m.values_mut() {
                    rewrite_pii(x, f)?;
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| rewrite_pii(x, f)),
        _ => Ok(()),
    }
}
