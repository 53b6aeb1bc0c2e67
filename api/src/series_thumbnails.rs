//! The series thumbnail worker: renders each series' thumbnail off the request path, when
//! the series arrives.
//!
//! It follows the log (the bus for news, the store to catch up and fill gaps) and, for every
//! `InstanceStored`, (re)arms a per-series quiet period: a 500-instance series that arrives
//! in a burst is rendered once, after its last instance. It then renders exactly what
//! `GET …/series/{se}/thumbnail` would (the same representative instance and frame, the same
//! options, so the same [`RenderRequest::object_key`]) into the
//! [`RenderCache`]: the first request is answered from the cache instead of decoding.
//!
//! - **Never in the way of ingest**: it only reads the log and read models, decodes on the
//!   blocking pool one render at a time, and writes nothing but the render and its own
//!   checkpoint.
//! - **Restarts**: its checkpoint (in `relay_checkpoints`, name [`CHECKPOINT`]) never passes
//!   a series still waiting, so after a restart it reads from there again; rendering is
//!   idempotent (a render already kept in the object store is not decoded again).
//! - **One node renders**: with PostgreSQL the worker runs where it holds an advisory lock
//!   (like the relay); the others wait to take over.
//! - **Lifecycle**: deleted, archived and erased studies are skipped (as the read model says
//!   once it has applied the series' last arrival). Erasure deletes every render of the
//!   patient's instances (`commands::imaging::erase_patient_objects`); should a render be
//!   written while an erasure runs, the worker deletes the study's renders again when it sees
//!   `StudyObjectsErased`, after any render of its own that was in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use medledger_commands::blobs::BlobStore;
use medledger_commands::db::Db;
use medledger_commands::imaging::render_prefix;
use medledger_commands::relay::lead;
use medledger_commands::store::EventStore;
use medledger_dicom_ingest::render_cache::{CacheError, Prerendered, RenderCache, RenderRequest};
use medledger_projections::bus::Bus;
use medledger_projections::read_models::instances::{self, find};
use medledger_projections::Status;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::http::rendering::{default_thumbnail_options, representative};

/// The worker's checkpoint name in `relay_checkpoints`.
pub const CHECKPOINT: &str = "series-thumbnails";
/// Default quiet period after a series' last arrival before it is rendered.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(2);
/// Events read from the store per catch-up step.
const BATCH: u32 = 1000;
/// Series waiting at most; past it the oldest is rendered at once (a long catch-up).
const MAX_PENDING: usize = 256;
/// How long to wait for the instances read model before trying a series again later.
const READ_MODEL_WAIT: Duration = Duration::from_secs(10);
/// Attempts for a series whose object store or read model is unavailable.
const MAX_ATTEMPTS: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often the checkpoint is written at most.
const SAVE_EVERY: Duration = Duration::from_secs(1);
const INSTANCE_LIMIT: u32 = 10_000;

/// What the worker did, for tests and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    rendered: AtomicU64,
    already_kept: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    /// Series thumbnails decoded and kept by the worker.
    pub fn rendered(&self) -> u64 {
        self.rendered.load(Ordering::Relaxed)
    }
    /// Series whose thumbnail was already kept (a restart's catch-up, a request first).
    pub fn already_kept(&self) -> u64 {
        self.already_kept.load(Ordering::Relaxed)
    }
    /// Series not rendered: study deleted, archived or erased, or no instances.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
    /// Series that cannot be rendered (not an image, unsupported transfer syntax) or gave up.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn count(&self, outcome: Outcome) {
        let (counter, label) = match outcome {
            Outcome::Rendered => (&self.rendered, "rendered"),
            Outcome::AlreadyKept => (&self.already_kept, "already_kept"),
            Outcome::Skipped => (&self.skipped, "skipped"),
            Outcome::Failed => (&self.failed, "failed"),
            Outcome::Retry => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("medledger_series_thumbnails_total", "outcome" => label).increment(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Rendered,
    AlreadyKept,
    Skipped,
    Failed,
    /// The read model or the object store is not there yet: try again later.
    Retry,
}

/// One series of one hospital's study.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    hospital: Uuid,
    study: String,
    series: String,
}

/// A series waiting for its quiet period to end.
#[derive(Debug)]
struct Pending {
    due: Instant,
    /// Its earliest arrival not yet rendered: the checkpoint stays below it.
    first_position: u64,
    /// Its latest arrival: the read model must have applied it before rendering.
    last_position: u64,
    attempts: u32,
}

/// The worker. [`SeriesThumbnails::run`] until the shutdown signal.
pub struct SeriesThumbnails {
    pub store: Arc<dyn EventStore>,
    pub bus: Arc<dyn Bus>,
    /// Where the instances read model stands.
    pub status: Status,
    pub renders: Arc<RenderCache>,
    pub blobs: BlobStore,
    pub quiet: Duration,
    pub stats: Arc<Stats>,
}

/// The parts of an imaging event the worker reads: tenant, study, series. None of them is
/// personal data, so payloads are read as stored, never decrypted.
#[derive(Deserialize)]
struct StudyFacts {
    hospital_id: Uuid,
    study_instance_uid: String,
    #[serde(default)]
    attributes: Option<SeriesFacts>,
}

#[derive(Deserialize)]
struct SeriesFacts {
    series_instance_uid: String,
}

/// The worker's progress through the log.
struct Progress {
    /// Every event up to here has been looked at.
    processed: u64,
    saved: u64,
    saved_at: Instant,
    pending: HashMap<SeriesKey, Pending>,
}

impl Progress {
    /// The highest position below every series still waiting.
    fn safe_checkpoint(&self) -> u64 {
        self.pending
            .values()
            .map(|p| p.first_position - 1)
            .min()
            .unwrap_or(self.processed)
            .min(self.processed)
    }
}

impl SeriesThumbnails {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let db = self.store.read_models();
        let Some(_leader) = lead(&db, "medledger-series-thumbnails", &mut shutdown).await else {
            return;
        };
        let start = match self.store.checkpoint(CHECKPOINT).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "series thumbnails cannot read their checkpoint");
                return;
            }
        };
        tracing::info!(from = start, "series thumbnail worker is leading");
        let mut progress = Progress {
            processed: start,
            saved: start,
            saved_at: Instant::now(),
            pending: HashMap::new(),
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Subscribe first, then catch up: nothing falls between the two.
            let mut sub = match self.bus.subscribe_ephemeral().await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "series thumbnails cannot subscribe; polling the store");
                    None
                }
            };
            self.catch_up(&mut progress).await;
            let poll = if sub.is_some() {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(200)
            };
            let resubscribe_at = Instant::now() + Duration::from_secs(5);
            loop {
                let next_due = progress.pending.values().map(|p| p.due).min();
                let wake = next_due
                    .unwrap_or_else(|| Instant::now() + poll)
                    .min(Instant::now() + poll);
                let delivery = async {
                    match sub.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    d = delivery => match d {
                        Some(d) if d.gap => self.catch_up(&mut progress).await,
                        Some(d) => {
                            for e in d.events {
                                if e.global_position <= progress.processed {
                                    continue;
                                }
                                if e.global_position != progress.processed + 1 {
                                    // The bus skipped something: the store has it.
                                    self.catch_up(&mut progress).await;
                                    break;
                                }
                                self.look_at(&mut progress, &e.event_type, &e.payload, e.global_position).await;
                            }
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(wake) => {
                        if next_due.is_none_or(|d| d > Instant::now()) {
                            // Nothing due: the safety net (the bus is transport, never truth).
                            self.catch_up(&mut progress).await;
                            if sub.is_none() && Instant::now() >= resubscribe_at {
                                break;
                            }
                        }
                    }
                    _ = shutdown.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
                tokio::select! {
                    _ = self.render_due(&mut progress) => {}
                    _ = shutdown.changed() => break,
                }
                self.save(&mut progress, false).await;
            }
        }
        self.save(&mut progress, true).await;
    }

    /// Reads the store from where the worker stands to its head.
    async fn catch_up(&self, progress: &mut Progress) {
        loop {
            let batch = match self.store.read_all_raw(progress.processed, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "series thumbnails cannot read the store");
                    return;
                }
            };
            let Some(last) = batch.last().map(|e| e.global_position) else {
                return;
            };
            for e in &batch {
                if !matters(&e.event_type) {
                    progress.processed = e.global_position;
                    continue;
                }
                match serde_json::from_str::<serde_json::Value>(&e.payload) {
                    Ok(payload) => self.look_at(progress, &e.event_type, &payload, e.global_position).await,
                    Err(err) => {
                        tracing::warn!(position = e.global_position, error = %err, "unreadable payload; skipped");
                        progress.processed = e.global_position;
                    }
                }
            }
            progress.processed = progress.processed.max(last);
            self.render_due(progress).await;
            self.save(progress, false).await;
            if batch.len() < BATCH as usize {
                return;
            }
        }
    }

    /// Takes one event (at `position`, the next one) into account.
    async fn look_at(&self, progress: &mut Progress, event_type: &str, payload: &serde_json::Value, position: u64) {
        progress.processed = position;
        if !matters(event_type) {
            return;
        }
        let Ok(facts) = StudyFacts::deserialize(payload) else {
            tracing::warn!(position, event_type, "an imaging event without its study; skipped");
            return;
        };
        match event_type {
            "InstanceStored" => {
                let Some(series) = facts.attributes else { return };
                let key = SeriesKey {
                    hospital: facts.hospital_id,
                    study: facts.study_instance_uid,
                    series: series.series_instance_uid,
                };
                let due = Instant::now() + self.quiet;
                let entry = progress.pending.entry(key).or_insert(Pending {
                    due,
                    first_position: position,
                    last_position: position,
                    attempts: 0,
                });
                entry.due = due;
                entry.last_position = position;
                if progress.pending.len() > MAX_PENDING {
                    // A long catch-up: render the oldest now rather than hold the whole log.
                    if let Some(oldest) = progress
                        .pending
                        .iter()
                        .min_by_key(|(_, p)| p.first_position)
                        .map(|(k, _)| k.clone())
                    {
                        if let Some(p) = progress.pending.get_mut(&oldest) {
                            p.due = Instant::now();
                        }
                        self.render_due(progress).await;
                    }
                }
            }
            "StudyDeleted" | "StudyArchived" => {
                // Their series would be skipped anyway; a restore or retrieve brings no new
                // arrivals, so the thumbnail is then rendered on first request.
                progress
                    .pending
                    .retain(|k, _| !(k.hospital == facts.hospital_id && k.study == facts.study_instance_uid));
            }
            "StudyObjectsErased" => {
                progress
                    .pending
                    .retain(|k, _| !(k.hospital == facts.hospital_id && k.study == facts.study_instance_uid));
                self.erase_renders(facts.hospital_id, &facts.study_instance_uid, position)
                    .await;
            }
            _ => {}
        }
        metrics::gauge!("medledger_series_thumbnails_pending").set(progress.pending.len() as f64);
    }

    /// Renders every series whose quiet period is over, oldest first.
    async fn render_due(&self, progress: &mut Progress) {
        let now = Instant::now();
        let mut due: Vec<(SeriesKey, u64)> = progress
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, p)| (k.clone(), p.first_position))
            .collect();
        due.sort_by_key(|(_, first)| *first);
        for (key, _) in due {
            let Some(last_position) = progress.pending.get(&key).map(|p| p.last_position) else {
                continue;
            };
            let outcome = self.render(&key, last_position).await;
            if outcome == Outcome::Retry {
                if let Some(p) = progress.pending.get_mut(&key) {
                    p.attempts += 1;
                    if p.attempts < MAX_ATTEMPTS {
                        p.due = Instant::now() + RETRY_AFTER;
                        continue;
                    }
                }
                tracing::warn!(?key, "series thumbnail given up; it will be rendered on first request");
                self.stats.count(Outcome::Failed);
            } else {
                self.stats.count(outcome);
            }
            progress.pending.remove(&key);
        }
        metrics::gauge!("medledger_series_thumbnails_pending").set(progress.pending.len() as f64);
    }

    /// Renders one series' thumbnail into the cache, as the endpoint would.
    async fn render(&self, key: &SeriesKey, last_position: u64) -> Outcome {
        if !self
            .status
            .wait_for(instances::NAME, last_position, READ_MODEL_WAIT)
            .await
        {
            return Outcome::Retry;
        }
        let db = self.store.read_models();
        let found = match find(&db, key.hospital, &key.study, Some(&key.series), None, INSTANCE_LIMIT).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "series thumbnails cannot read the instances");
                return Outcome::Retry;
            }
        };
        if found
            .iter()
            .any(|i| i.deleted || i.erased || i.storage_tier != "online")
        {
            return Outcome::Skipped;
        }
        let Some((instance, frame)) = representative(&found) else {
            return Outcome::Skipped;
        };
        let request = RenderRequest {
            hospital_id: key.hospital,
            sop_instance_uid: &instance.sop_instance_uid,
            blob_key: &instance.blob_key,
            frame,
            options: default_thumbnail_options(),
        };
        match self.renders.prerender(&request).await {
            Ok(Prerendered::Rendered) => Outcome::Rendered,
            Ok(Prerendered::AlreadyKept) => Outcome::AlreadyKept,
            Err(CacheError::Storage(detail)) => {
                tracing::warn!(detail, ?key, "series thumbnail: object store unavailable");
                Outcome::Retry
            }
            Err(CacheError::Render(e)) => {
                // Not an image (an SR, a presentation state) or a syntax we cannot decode:
                // the endpoint answers the same problem on request.
                tracing::info!(error = %e, ?key, "series thumbnail not rendered");
                Outcome::Failed
            }
        }
    }

    /// Deletes every render of a study's instances (after an erasure).
    async fn erase_renders(&self, hospital: Uuid, study: &str, position: u64) {
        self.status.wait_for(instances::NAME, position, READ_MODEL_WAIT).await;
        let found = match find(&self.store.read_models(), hospital, study, None, None, INSTANCE_LIMIT).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "series thumbnails cannot list an erased study's instances");
                return;
            }
        };
        for instance in found {
            if let Err(e) = self
                .blobs
                .delete_prefix(&render_prefix(hospital, &instance.sop_instance_uid))
                .await
            {
                tracing::warn!(error = %e, "an erased instance's renders could not be deleted");
            }
        }
    }

    async fn save(&self, progress: &mut Progress, now: bool) {
        let safe = progress.safe_checkpoint();
        if safe <= progress.saved || (!now && progress.saved_at.elapsed() < SAVE_EVERY) {
            return;
        }
        match self.store.save_checkpoint(CHECKPOINT, safe).await {
            Ok(()) => {
                progress.saved = safe;
                progress.saved_at = Instant::now();
                metrics::gauge!("medledger_series_thumbnails_position").set(safe as f64);
            }
            Err(e) => tracing::warn!(error = %e, "series thumbnail checkpoint not saved"),
        }
    }
}

/// The event types the worker acts on.
fn matters(event_type: &str) -> bool {
    matches!(
        event_type,
        "InstanceStored" | "StudyDeleted" | "StudyArchived" | "StudyObjectsErased"
    )
}

/// Whether the series thumbnail of this hospital's series is already kept in the object
/// store (what the worker produced, or a request), and under which key.
pub async fn kept_series_thumbnail(
    db: &Db,
    blobs: &BlobStore,
    hospital: Uuid,
    study: &str,
    series: &str,
) -> anyhow::Result<Option<(String, bool)>> {
    let found = find(db, hospital, study, Some(series), None, INSTANCE_LIMIT).await?;
    let Some((instance, frame)) = representative(&found) else {
        return Ok(None);
    };
    let key = RenderRequest {
        hospital_id: hospital,
        sop_instance_uid: &instance.sop_instance_uid,
        blob_key: &instance.blob_key,
        frame,
        options: default_thumbnail_options(),
    }
    .object_key();
    let kept = blobs.exists(&key).await?;
    Ok(Some((key, kept)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(first: u64) -> Pending {
        Pending {
            due: Instant::now(),
            first_position: first,
            last_position: first + 10,
            attempts: 0,
        }
    }

    fn key(series: &str) -> SeriesKey {
        SeriesKey {
            hospital: Uuid::nil(),
            study: "1.2".into(),
            series: series.into(),
        }
    }

    #[test]
    fn the_checkpoint_never_passes_a_series_still_waiting() {
        let mut p = Progress {
            processed: 100,
            saved: 0,
            saved_at: Instant::now(),
            pending: HashMap::new(),
        };
        assert_eq!(p.safe_checkpoint(), 100);
        p.pending.insert(key("a"), pending(40));
        p.pending.insert(key("b"), pending(70));
        assert_eq!(p.safe_checkpoint(), 39);
        p.pending.remove(&key("a"));
        assert_eq!(p.safe_checkpoint(), 69);
    }

    #[test]
    fn only_imaging_arrivals_and_lifecycle_events_matter() {
        for t in ["InstanceStored", "StudyDeleted", "StudyArchived", "StudyObjectsErased"] {
            assert!(matters(t), "{t}");
        }
        for t in [
            "LoginFailed",
            "InstanceDuplicateIgnored",
            "StudyRestored",
            "StudyShared",
        ] {
            assert!(!matters(t), "{t}");
        }
    }

    #[test]
    fn an_arrival_is_read_without_its_personal_data() {
        let payload = serde_json::json!({
            "type": "InstanceStored",
            "hospital_id": Uuid::nil(),
            "study_instance_uid": "1.2.3",
            "sop_instance_uid": "1.2.3.4",
            "patient": {"patient_id": {"$pii": {
                "subject": Uuid::nil(), "key_id": "k", "nonce": "n", "ciphertext": "c"
            }}},
            "attributes": {
                "series_instance_uid": "1.2.3.9", "sop_class_uid": "x", "transfer_syntax_uid": "y",
                "number_of_frames": 1
            },
        });
        let facts = StudyFacts::deserialize(&payload).unwrap();
        assert_eq!(facts.study_instance_uid, "1.2.3");
        assert_eq!(facts.attributes.unwrap().series_instance_uid, "1.2.3.9");
    }
}
