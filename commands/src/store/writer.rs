//! Group commit: one task per store takes append requests from a queue,
//! commits whatever has gathered in one transaction and answers each caller.
//! Under concurrency this turns many small commits (and fsyncs) into few
//! large ones without weakening any request's all-or-nothing outcome.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, Notify};

use super::{AppendRequest, AppendResult, StoreError};

/// A backend's way of committing a batch of requests in one transaction.
#[async_trait]
pub trait BatchCommitter: Send + Sync + 'static {
    /// Commit what the plan accepts; each request gets its own outcome. An
    /// `Err` means nothing of the batch was committed.
    async fn commit(&self, requests: &[AppendRequest]) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError>;
}

type Job = (AppendRequest, oneshot::Sender<Result<AppendResult, StoreError>>);

const MAX_REQUESTS: usize = 512;
const MAX_EVENTS: usize = 20_000;

#[derive(Clone)]
pub struct GroupCommitWriter {
    queue: mpsc::Sender<Job>,
}

impl GroupCommitWriter {
    pub fn spawn<C: BatchCommitter>(committer: C, appended: Arc<Notify>) -> Self {
        let (queue, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(run(committer, rx, appended));
        GroupCommitWriter { queue }
    }

    pub async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((request, tx))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run<C: BatchCommitter>(committer: C, mut rx: mpsc::Receiver<Job>, appended: Arc<Notify>) {
    while let Some(first) = rx.recv().await {
        let mut events = first.0.event_count();
        let mut jobs = vec![first];
        while jobs.len() < MAX_REQUESTS && events < MAX_EVENTS {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.0.event_count();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        metrics::histogram!("medledger_append_batch_requests").record(requests.len() as f64);
        let started = std::time::Instant::now();
        let committed_batch = committer.commit(&requests).await;
        metrics::histogram!("medledger_append_commit_seconds").record(started.elapsed().as_secs_f64());
        match committed_batch {
            Ok(outcomes) => {
                let mut committed = 0u64;
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    if let Ok(r) = &outcome {
                        committed += r.last_position + 1 - r.first_position;
                    }
                    let _ = reply.send(outcome);
                }
                metrics::counter!("medledger_events_appended_total").increment(committed);
                appended.notify_waiters();
            }
            Err(batch_error) if requests.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(batch_error)));
            }
            Err(batch_error) => {
                // One bad request must not sink the others: retry each alone.
                tracing::warn!(error = %batch_error, n = requests.len(), "batch failed, committing requests one by one");
                for (request, reply) in requests.into_iter().zip(replies) {
                    let outcome = match committer.commit(std::slice::from_ref(&request)).await {
                        Ok(mut o) => o.pop().unwrap_or(Err(StoreError::WriterStopped)),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(outcome);
                }
                appended.notify_waiters();
            }
        }
    }
}
