//! Blob storage: opaque bytes under validated keys (hospital logos, rendered
//! QR codes, DICOM objects, renders), on the local disk, in an S3-compatible object
//! store (`--blob-store s3://bucket/prefix`), or in memory for tests.
//!
//! It owns only the bytes. What a blob *means* (whose logo, which study) is
//! decided by events; this module never decides anything and never reads a
//! read model.
//!
//! # Readers never see half an object
//!
//! [`BlobStore::put`] is all-or-nothing on every backend we use. In the local folder it
//! writes a hidden `#`-suffixed staging file beside the target, fsyncs it and `rename(2)`s
//! it into place, as `object_store`'s `LocalFileSystem` does, but bypasses the page cache
//! while the file system allows (`direct.rs` says why); `InMemory` inserts the whole buffer
//! under a lock; on S3 it is one `PutObject` request (never a multipart upload), and S3
//! makes an object visible only once the whole body has been received and stored, with
//! strong read-after-write consistency. (An earlier version staged every object
//! under `.staging/` and renamed it again: on these backends that added no atomicity, only
//! a second rename and directory fsync per object — measurable on DICOM ingest.) Keys
//! under `.staging/` stay reserved.
//!
//! **Large objects on S3.** A single `PutObject` takes up to 5 GiB; the largest object the
//! platform accepts is 512 MiB (`dicom_ingest::parse::MAX_OBJECT_BYTES`), so every `put` is
//! one request. Should larger objects ever be stored they would need a multipart upload,
//! which is still all-or-nothing for readers (the object appears only at
//! `CompleteMultipartUpload`) but leaves invisible, billed parts behind when interrupted:
//! the bucket then needs an `AbortIncompleteMultipartUpload` lifecycle rule. [`BlobStore::copy`]
//! is one server-side `CopyObject` (also atomic, also 5 GiB at most).
//!
//! The local store fsyncs written files and their directories, so a `put` that
//! returned `Ok` survives a power cut; S3 acknowledges a `PutObject` only once it is
//! durably stored.
//!
//! # Listing and deleting
//!
//! [`BlobStore::delete_prefix`] (erasure) lists every key under `prefix/` — on S3 through
//! `ListObjectsV2`, page by page — and deletes each; deleting a missing key succeeds on every
//! backend, so an interrupted erasure is safe to run again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod direct;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Where [`BlobStore::put`] stages objects before renaming them into place.
const STAGING_PREFIX: &str = ".staging";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    #[error("blob store directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob store configuration: {0}")]
    Config(String),
}

/// Where blobs are kept, as `--blob-store` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A folder on the local disk.
    Local(PathBuf),
    /// A bucket of an S3-compatible object store, optionally under a key prefix.
    S3 { bucket: String, prefix: Option<String> },
}

impl BlobLocation {
    /// `s3://bucket`, `s3://bucket/some/prefix`, `file:///path` or a plain path.
    pub fn parse(spec: &str) -> Result<BlobLocation, BlobError> {
        let bad = |why: &str| BlobError::Config(format!("blob store {spec:?}: {why}"));
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = match rest.split_once('/') {
                Some((b, p)) => (b, p.trim_matches('/')),
                None => (rest, ""),
            };
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'));
            if !bucket_ok {
                return Err(bad("the bucket name is 3 to 63 of a-z, 0-9, '.' and '-'"));
            }
            let prefix = if prefix.is_empty() {
                None
            } else {
                parse_key(prefix)
                    .map_err(|_| bad("the prefix is '/'-separated segments of a-z, 0-9, '_', '.', '-'"))?;
                Some(prefix.to_string())
            };
            return Ok(BlobLocation::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(path) = spec.strip_prefix("file://") {
            return Ok(BlobLocation::Local(PathBuf::from(path)));
        }
        if spec.contains("://") {
            return Err(bad("expected s3://bucket/prefix, file:///path or a folder"));
        }
        if spec.is_empty() {
            return Err(bad("empty"));
        }
        Ok(BlobLocation::Local(PathBuf::from(spec)))
    }
}

/// A place to keep blobs. Cheap to clone; clones share the same store.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The local folder's store again, for its file names, and the writer that puts
    /// objects there without the page cache (`None` on S3 and in memory).
    local: Option<(Arc<LocalFileSystem>, Arc<direct::DirectWriter>)>,
}

impl BlobStore {
    /// Blobs as files under `root`, which is created if missing.
    pub fn local(root: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root)?;
        let store = Arc::new(LocalFileSystem::new_with_prefix(root)?.with_fsync(true));
        Ok(BlobStore {
            store: store.clone(),
            local: Some((store, Arc::new(direct::DirectWriter::new()))),
        })
    }

    /// Blobs where `location` says. For S3, the endpoint, region and credentials come from
    /// the standard `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …), overridden by
    /// `options` (the same names, lower case: `aws_endpoint`, …).
    pub fn open(location: &BlobLocation, options: &[(String, String)]) -> Result<Self, BlobError> {
        match location {
            BlobLocation::Local(root) => Self::local(root),
            BlobLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in options {
                    let key: AmazonS3ConfigKey = key
                        .to_ascii_lowercase()
                        .parse()
                        .map_err(|e| BlobError::Config(format!("{key}: {e}")))?;
                    builder = builder.with_config(key, value);
                }
                let s3 = builder.build()?;
                let store: Arc<dyn ObjectStore> = match prefix {
                    Some(p) => Arc::new(PrefixStore::new(s3, parse_key(p)?)),
                    None => Arc::new(s3),
                };
                Ok(BlobStore { store, local: None })
            }
        }
    }

    /// Blobs in memory, gone when the last clone is dropped (for tests).
    pub fn memory() -> Self {
        BlobStore {
            store: Arc::new(InMemory::new()),
            local: None,
        }
    }

    /// Stores `bytes` under `key`, replacing what was there. A concurrent
    /// reader sees either the old object or the whole new one.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let target = parse_key(key)?;
        match &self.local {
            Some((files, writer)) => {
                let (path, writer) = (files.path_to_filesystem(&target)?, writer.clone());
                tokio::task::spawn_blocking(move || writer.write(&path, &bytes))
                    .await
                    .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
            }
            None => {
                self.store.put(&target, bytes.into()).await?;
            }
        }
        Ok(())
    }

    /// Whether local writes bypass the page cache: `Some(false)` once the folder's file
    /// system has refused `O_DIRECT`, `None` when the store is not local.
    pub fn writes_directly(&self) -> Option<bool> {
        self.local.as_ref().map(|(_, writer)| writer.is_direct())
    }

    /// The bytes under `key`, or `None` if there is no such blob.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let path = parse_key(key)?;
        match self.store.get(&path).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the blob under `key`; removing a missing blob succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = parse_key(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies the blob under `from` to `to` (replacing what was there).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        let (from, to) = (parse_key(from)?, parse_key(to)?);
        self.store.copy(&from, &to).await?;
        Ok(())
    }

    /// Removes every blob whose key starts with `prefix/`; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        use futures::TryStreamExt;
        let path = parse_key(prefix)?;
        let found: Vec<_> = self
            .store
            .list(Some(&path))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        let mut removed = 0;
        for location in found {
            match self.store.delete(&location).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    /// Whether a blob is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let path = parse_key(key)?;
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Checks a key and turns it into an object path.
///
/// Keys are `/`-separated segments of `[a-z0-9_.-]`, at most
/// [`MAX_KEY_LEN`] bytes, with no leading or trailing `/`, no empty, `.` or
/// `..` segments, no `..` anywhere, and nothing under the reserved staging
/// prefix. The narrow alphabet keeps keys identical on every file system
/// (no case folding, no escaping) and in URLs.
fn parse_key(key: &str) -> Result<ObjectPath, BlobError> {
    let invalid = |reason| BlobError::InvalidKey {
        key: key.chars().take(MAX_KEY_LEN).collect(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid("longer than 512 bytes"));
    }
    if !key
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'/' | b'_' | b'.' | b'-'))
    {
        return Err(invalid("only a-z, 0-9, '/', '_', '.' and '-' are allowed"));
    }
    if key.starts_with('/') {
        return Err(invalid("starts with '/'"));
    }
    if key.ends_with('/') {
        return Err(invalid("ends with '/'"));
    }
    if key.contains("..") {
        return Err(invalid("contains '..'"));
    }
    if key.split('/').any(|segment| segment.is_empty()) {
        return Err(invalid("has an empty segment"));
    }
    if key.split('/').any(|segment| segment == ".") {
        return Err(invalid("has a '.' segment"));
    }
    if key.split('/').next() == Some(STAGING_PREFIX) {
        return Err(invalid("'.staging/' is reserved"));
    }
    ObjectPath::parse(key).map_err(|_| invalid("not a valid object path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_invalid_key(result: Result<ObjectPath, BlobError>) -> bool {
        matches!(result, Err(BlobError::InvalidKey { .. }))
    }

    #[test]
    fn keys_of_the_narrow_alphabet_are_accepted() {
        for key in [
            "logo",
            "hospitals/0190a1b2-c3d4/logo.png",
            "qr/abc_def-1.svg",
            "a/b/c/d.e.f",
            ".well-known/x",
        ] {
            assert_eq!(parse_key(key).unwrap().as_ref(), key, "{key}");
        }
        assert!(parse_key(&"a".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn keys_outside_the_rules_are_rejected() {
        for key in [
            "",
            "/logo.png",
            "logo.png/",
            "a//b",
            "Logo.png",
            "logo png",
            "logo\\png",
            "logo#1",
            "lögo",
            "../etc/passwd",
            "a/../b",
            "a..b",
            "./a",
            "a/./b",
            ".staging/x",
        ] {
            assert!(is_invalid_key(parse_key(key)), "{key:?} was accepted");
        }
        assert!(is_invalid_key(parse_key(&"a".repeat(MAX_KEY_LEN + 1))));
    }

    #[test]
    fn blob_locations_are_parsed() {
        assert_eq!(
            BlobLocation::parse("s3://medical-images/medledger/prod").unwrap(),
            BlobLocation::S3 {
                bucket: "medical-images".into(),
                prefix: Some("medledger/prod".into())
            }
        );
        assert_eq!(
            BlobLocation::parse("s3://medical-images/").unwrap(),
            BlobLocation::S3 {
                bucket: "medical-images".into(),
                prefix: None
            }
        );
        assert_eq!(
            BlobLocation::parse("file:///var/lib/medledger").unwrap(),
            BlobLocation::Local("/var/lib/medledger".into())
        );
        assert_eq!(
            BlobLocation::parse("./blobs").unwrap(),
            BlobLocation::Local("./blobs".into())
        );
        for bad in [
            "",
            "s3://",
            "s3://Bad_Bucket/x",
            "s3://ok-bucket/a//b",
            "s3://ok-bucket/../x",
            "gs://b/x",
        ] {
            assert!(matches!(BlobLocation::parse(bad), Err(BlobError::Config(_))), "{bad:?}");
        }
    }

    async fn round_trip(store: &BlobStore) {
        let key = "hospitals/h1/logo.png";
        assert!(!store.exists(key).await.unwrap());
        assert_eq!(store.get(key).await.unwrap(), None);

        store.put(key, Bytes::from_static(b"first")).await.unwrap();
        assert!(store.exists(key).await.unwrap());
        assert_eq!(store.get(key).await.unwrap(), Some(Bytes::from_static(b"first")));

        store.put(key, Bytes::from_static(b"second")).await.unwrap();
        assert_eq!(store.get(key).await.unwrap(), Some(Bytes::from_static(b"second")));

        store.delete(key).await.unwrap();
        assert!(!store.exists(key).await.unwrap());
        assert_eq!(store.get(key).await.unwrap(), None);
        // Deleting what is already gone is fine.
        store.delete(key).await.unwrap();
        store.delete("never/was").await.unwrap();
    }

    #[tokio::test]
    async fn memory_store_puts_gets_overwrites_and_deletes() {
        round_trip(&BlobStore::memory()).await;
    }

    #[tokio::test]
    async fn local_store_puts_gets_overwrites_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(&BlobStore::local(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn local_store_creates_its_root_and_keeps_blobs_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs/nested");
        let store = BlobStore::local(&root).unwrap();
        store.put("qr/link.svg", Bytes::from_static(b"<svg/>")).await.unwrap();
        assert_eq!(std::fs::read(root.join("qr/link.svg")).unwrap(), b"<svg/>");
        // Only a local store has a writer of its own (which says whether it bypasses the cache).
        assert!(store.writes_directly().is_some());
        assert_eq!(BlobStore::memory().writes_directly(), None);

        // A second store over the same directory sees the same blobs.
        let again = BlobStore::local(&root).unwrap();
        assert_eq!(
            again.get("qr/link.svg").await.unwrap(),
            Some(Bytes::from_static(b"<svg/>"))
        );
    }

    #[tokio::test]
    async fn put_leaves_nothing_behind_in_staging() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        for i in 0..3 {
            store.put(&format!("x/{i}"), Bytes::from(vec![i; 1000])).await.unwrap();
        }
        let staging = dir.path().join(STAGING_PREFIX);
        let leftovers = std::fs::read_dir(&staging).map(|entries| entries.count()).unwrap_or(0);
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn readers_see_the_old_or_the_whole_new_object_never_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let key = "big/object";
        let old = Bytes::from(vec![1u8; 256 * 1024]);
        let new = Bytes::from(vec![2u8; 256 * 1024]);
        store.put(key, old.clone()).await.unwrap();

        let reader = {
            let store = store.clone();
            let (old, new) = (old.clone(), new.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    let seen = store.get(key).await.unwrap().expect("never missing");
                    assert!(seen == old || seen == new, "saw a partial object");
                }
            })
        };
        for _ in 0..20 {
            store.put(key, new.clone()).await.unwrap();
            store.put(key, old.clone()).await.unwrap();
        }
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn operations_with_bad_keys_touch_nothing() {
        let store = BlobStore::memory();
        let bad = "../outside";
        assert!(matches!(
            store.put(bad, Bytes::from_static(b"x")).await,
            Err(BlobError::InvalidKey { .. })
        ));
        assert!(matches!(store.get(bad).await, Err(BlobError::InvalidKey { .. })));
        assert!(matches!(store.delete(bad).await, Err(BlobError::InvalidKey { .. })));
        assert!(matches!(store.exists(bad).await, Err(BlobError::InvalidKey { .. })));
    }
}
