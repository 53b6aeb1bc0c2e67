//! Rendered images kept for reuse: thumbnails and `variant=thumbnail` renders are decoded on
//! first request (or ahead of it, by the series thumbnail worker through
//! [`RenderCache::prerender`]), then served from memory (a byte-weighted moka cache) or, after a
//! restart, from the object store under `renders/<hospital>/<sop>/<param-hash>.<jpg|png>`.
//!
//! Decodes are counted by origin (`medledger_render_decodes_total{origin="request"|"background"}`)
//! so an operator can see how often a client waited for one.
//!
//! The key hashes the stored object's key (which ends in the object's SHA-256, so a different
//! object under the same SOP Instance UID never reuses a render), the frame and the rendering
//! options. Decoding runs on the blocking pool. Concurrent first requests for the same key may
//! each decode once; the results are identical, so the last write wins harmlessly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use medledger_commands::blobs::BlobStore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::render::{Format, Instance, RenderError, RenderOptions, Rendered};

/// Default memory budget of the cache.
pub const DEFAULT_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The object store failed, or the instance's object is missing.
    #[error("storage: {0}")]
    Storage(String),
}

/// What to render: whose instance, which stored object, which frame, how.
#[derive(Debug, Clone)]
pub struct RenderRequest<'a> {
    pub hospital_id: Uuid,
    pub sop_instance_uid: &'a str,
    pub blob_key: &'a str,
    /// 1-based.
    pub frame: u32,
    pub options: RenderOptions,
}

impl RenderRequest<'_> {
    fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.blob_key.as_bytes());
        h.update(b"\n");
        h.update(self.frame.to_string().as_bytes());
        h.update(b"\n");
        h.update(self.options.cache_key().as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// Where the render is kept in the object store.
    pub fn object_key(&self) -> String {
        format!(
            "renders/{}/{}/{}.{}",
            self.hospital_id,
            self.sop_instance_uid,
            self.hash(),
            self.options.format.extension()
        )
    }
}

/// Renders by key, in memory and in the object store. Cheap to share behind an `Arc`.
pub struct RenderCache {
    memory: moka::sync::Cache<String, Arc<Rendered>>,
    blobs: BlobStore,
    decodes: AtomicU64,
    background_decodes: AtomicU64,
    store_hits: AtomicU64,
}

/// What [`RenderCache::prerender`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prerendered {
    /// Decoded now and kept in memory and the object store.
    Rendered,
    /// Already in memory or in the object store: nothing decoded.
    AlreadyKept,
}

impl RenderCache {
    pub fn new(blobs: BlobStore, capacity_bytes: u64) -> RenderCache {
        let memory = moka::sync::Cache::builder()
            .weigher(|_k: &String, v: &Arc<Rendered>| u32::try_from(v.bytes.len()).unwrap_or(u32::MAX))
            .max_capacity(capacity_bytes)
            .build();
        RenderCache {
            memory,
            blobs,
            decodes: AtomicU64::new(0),
            background_decodes: AtomicU64::new(0),
            store_hits: AtomicU64::new(0),
        }
    }

    /// How many frames this cache has decoded for a request (each cache miss in memory and in
    /// the store while a client waited).
    pub fn decodes(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// How many frames [`RenderCache::prerender`] decoded (off the request path).
    pub fn background_decodes(&self) -> u64 {
        self.background_decodes.load(Ordering::Relaxed)
    }

    /// How many renders were read back from the object store.
    pub fn store_hits(&self) -> u64 {
        self.store_hits.load(Ordering::Relaxed)
    }

    /// The render for `request`: from memory, else from the object store, else decoded from
    /// the stored instance (and then kept in both).
    pub async fn get_or_render(&self, request: &RenderRequest<'_>) -> Result<Arc<Rendered>, CacheError> {
        let key = request.object_key();
        if let Some(hit) = self.memory.get(&key) {
            return Ok(hit);
        }
        if let Some(bytes) = self.blobs.get(&key).await.map_err(storage)? {
            if let Some(rendered) = from_stored(bytes.to_vec(), request.options.format) {
                self.store_hits.fetch_add(1, Ordering::Relaxed);
                let rendered = Arc::new(rendered);
                self.memory.insert(key, rendered.clone());
                return Ok(rendered);
            }
            tracing::warn!(key, "a stored render could not be read; rendering again");
        }
        self.decodes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("medledger_render_decodes_total", "origin" => "request").increment(1);
        self.render_and_keep(request, key, false).await
    }

    /// Makes sure the render for `request` is kept, decoding it only when neither memory nor
    /// the object store has it (the stored render is not read back: its presence is enough).
    pub async fn prerender(&self, request: &RenderRequest<'_>) -> Result<Prerendered, CacheError> {
        let key = request.object_key();
        if self.memory.contains_key(&key) {
            return Ok(Prerendered::AlreadyKept);
        }
        let kept = self.blobs.exists(&key).await.map_err(storage)?;
        if kept {
            return Ok(Prerendered::AlreadyKept);
        }
        self.background_decodes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("medledger_render_decodes_total", "origin" => "background").increment(1);
        self.render_and_keep(request, key, true).await?;
        Ok(Prerendered::Rendered)
    }

    /// Decodes, then keeps the render in the object store and in memory. A failed store write
    /// is an error only when `must_store` (a prerender exists for its stored copy); a request
    /// still gets its image.
    async fn render_and_keep(
        &self,
        request: &RenderRequest<'_>,
        key: String,
        must_store: bool,
    ) -> Result<Arc<Rendered>, CacheError> {
        let object = self
            .blobs
            .get(request.blob_key)
            .await
            .map_err(storage)?
            .ok_or_else(|| CacheError::Storage(format!("blob {} is missing", request.blob_key)))?;
        let rendered = Arc::new(render_blocking(object, request.frame, request.options.clone()).await?);
        let stored = self.blobs.put(&key, Bytes::from(rendered.bytes.clone())).await;
        self.memory.insert(key.clone(), rendered.clone());
        match stored {
            Err(e) if must_store => Err(storage(e)),
            Err(e) => {
                tracing::warn!(key, error = %e, "a render could not be kept in the object store");
                Ok(rendered)
            }
            Ok(()) => Ok(rendered),
        }
    }
}

fn storage(e: medledger_commands::blobs::BlobError) -> CacheError {
    CacheError::Storage(e.to_string())
}

/// Decodes and renders on the blocking pool (CPU-bound work off the async workers).
pub async fn render_blocking(object: Bytes, frame: u32, options: RenderOptions) -> Result<Rendered, RenderError> {
    tokio::task::spawn_blocking(move || Instance::open(&object)?.render(frame, &options))
        .await
        .map_err(|e| RenderError::DecodeFailed(format!("rendering task failed: {e}")))?
}

fn from_stored(bytes: Vec<u8>, format: Format) -> Option<Rendered> {
    let kind = match format {
        Format::Jpeg => image::ImageFormat::Jpeg,
        Format::Png => image::ImageFormat::Png,
    };
    let (width, height) = image::ImageReader::with_format(std::io::Cursor::new(&bytes), kind)
        .into_dimensions()
        .ok()?;
    Some(Rendered {
        format,
        width,
        height,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{synthetic_ct, CtSpec};

    #[tokio::test]
    async fn second_request_is_served_without_decoding_and_survives_a_restart() {
        let blobs = BlobStore::memory();
        let bytes = synthetic_ct(&CtSpec {
            rows: 64,
            columns: 128,
            ..CtSpec::default()
        });
        let blob_key = "hospitals/h/instances/1.2.3/abc.dcm";
        blobs.put(blob_key, Bytes::from(bytes)).await.unwrap();
        let hospital_id = Uuid::nil();
        let request = RenderRequest {
            hospital_id,
            sop_instance_uid: "1.2.3",
            blob_key,
            frame: 1,
            options: RenderOptions {
                viewport: Some((64, 64)),
                ..RenderOptions::default()
            },
        };
        let cache = RenderCache::new(blobs.clone(), DEFAULT_CAPACITY_BYTES);
        let first = cache.get_or_render(&request).await.unwrap();
        assert_eq!((first.width, first.height), (64, 32));
        let second = cache.get_or_render(&request).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(cache.decodes(), 1, "served from memory");
        let key = request.object_key();
        assert!(key.starts_with("renders/00000000-0000-0000-0000-000000000000/1.2.3/") && key.ends_with(".jpg"));
        assert_eq!(blobs.get(&key).await.unwrap().unwrap().to_vec(), first.bytes);

        // A new process (empty memory) reads the stored render back.
        let restarted = RenderCache::new(blobs.clone(), DEFAULT_CAPACITY_BYTES);
        let third = restarted.get_or_render(&request).await.unwrap();
        assert_eq!((restarted.decodes(), restarted.store_hits()), (0, 1));
        assert_eq!(*third, *first);

        // Other options are another render.
        let png = RenderRequest {
            options: RenderOptions {
                format: Format::Png,
                ..request.options.clone()
            },
            ..request.clone()
        };
        assert_ne!(png.object_key(), key);
        restarted.get_or_render(&png).await.unwrap();
        assert_eq!(restarted.decodes(), 1);

        // Errors are typed and not cached.
        let beyond = RenderRequest {
            frame: 2,
            ..request.clone()
        };
        let e = restarted.get_or_render(&beyond).await.unwrap_err();
        assert!(matches!(
            e,
            CacheError::Render(RenderError::FrameOutOfRange { frame: 2, frames: 1 })
        ));
    }

    #[tokio::test]
    async fn prerendering_keeps_the_render_so_requests_never_decode_it() {
        let blobs = BlobStore::memory();
        let blob_key = "hospitals/h/instances/1.2.4/abc.dcm";
        let bytes = synthetic_ct(&CtSpec {
            rows: 32,
            columns: 32,
            ..CtSpec::default()
        });
        blobs.put(blob_key, Bytes::from(bytes)).await.unwrap();
        let request = RenderRequest {
            hospital_id: Uuid::nil(),
            sop_instance_uid: "1.2.4",
            blob_key,
            frame: 1,
            options: RenderOptions {
                viewport: Some((16, 16)),
                ..RenderOptions::default()
            },
        };
        let cache = RenderCache::new(blobs.clone(), DEFAULT_CAPACITY_BYTES);
        assert_eq!(cache.prerender(&request).await.unwrap(), Prerendered::Rendered);
        assert_eq!(cache.prerender(&request).await.unwrap(), Prerendered::AlreadyKept);
        assert!(blobs.exists(&request.object_key()).await.unwrap());
        cache.get_or_render(&request).await.unwrap();
        assert_eq!((cache.decodes(), cache.background_decodes()), (0, 1));

        // Another process finds it in the object store without decoding or reading it back.
        let other = RenderCache::new(blobs.clone(), DEFAULT_CAPACITY_BYTES);
        assert_eq!(other.prerender(&request).await.unwrap(), Prerendered::AlreadyKept);
        assert_eq!((other.background_decodes(), other.store_hits()), (0, 0));

        // A missing object is a storage error, not a render.
        let missing = RenderRequest {
            sop_instance_uid: "1.2.5",
            blob_key: "hospitals/h/instances/1.2.5/gone.dcm",
            ..request.clone()
        };
        assert!(matches!(
            other.prerender(&missing).await.unwrap_err(),
            CacheError::Storage(_)
        ));
    }
}
