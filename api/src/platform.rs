//! Assembling the running platform from configuration: store, keys, codec,
//! bus, blob store, relay, projection runner and the series thumbnail worker, and stopping
//! them in order.

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use medledger_commands::blobs::{BlobLocation, BlobStore};
use medledger_commands::clock::Clock;
use medledger_commands::codec::{EventCodec, Upcasters};
use medledger_commands::crypto::{KeyStore, MasterKey};
use medledger_commands::identity::{AuthCache, Notifier, OutboxNotifier};
use medledger_commands::relay::Relay;
use medledger_commands::store::postgres::PgEventStore;
use medledger_commands::store::sqlite::SqliteEventStore;
use medledger_commands::store::EventStore;
use medledger_commands::App;
use medledger_dicom_ingest::render_cache::{RenderCache, DEFAULT_CAPACITY_BYTES};
use medledger_projections::bus::in_process::InProcessBus;
use medledger_projections::bus::nats::{NatsBus, NatsConfig};
use medledger_projections::bus::Bus;
use medledger_projections::{read_models, Runner};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::series_thumbnails::{self, SeriesThumbnails};

pub struct Platform {
    pub app: App,
    pub runner: Runner,
    pub bus: Arc<dyn Bus>,
    /// Where reset codes and other messages go.
    pub notifier: Arc<dyn Notifier>,
    /// DICOM objects, hospital logos, renders.
    pub blobs: BlobStore,
    /// Thumbnails and small renders (memory, then the object store), shared by the HTTP
    /// handlers and the series thumbnail worker.
    pub renders: Arc<RenderCache>,
    /// What the series thumbnail worker did.
    pub thumbnails: Arc<series_thumbnails::Stats>,
    /// Held so tests can delete their JetStream stream.
    pub nats: Option<NatsBus>,
    series_thumbnails: Option<std::time::Duration>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Open the blob store named by the configuration (default `<data-dir>/blobs`).
pub fn open_blobs(config: &Config) -> anyhow::Result<BlobStore> {
    let location = match &config.blob_store {
        Some(spec) => BlobLocation::parse(spec)?,
        None => BlobLocation::Local(config.data_dir.join("blobs")),
    };
    BlobStore::open(&location, &config.blob_store_options)
        .with_context(|| format!("opening the blob store {location:?}"))
}

/// Open the store named by the configuration (applying migrations).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    Ok(match &config.database_url {
        Some(url) if url.starts_with("postgres") => Arc::new(
            PgEventStore::connect(url, config.database_pool)
                .await
                .context("connecting to PostgreSQL")?,
        ),
        Some(other) => anyhow::bail!("unsupported database URL '{other}' (expected postgres://…)"),
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            Arc::new(
                SqliteEventStore::open(&config.data_dir.join("medledger.db"))
                    .await
                    .context("opening the SQLite store")?,
            )
        }
    })
}

pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    Ok(match &config.master_key {
        Some(k) => MasterKey::from_base64(k)?,
        None => MasterKey::load_or_create(&config.data_dir.join("keys").join("master.key"))?,
    })
}

impl Platform {
    /// Open everything; nothing runs in the background until [`Platform::start`].
    pub async fn open(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = open_store(config).await?;
        let keys = KeyStore::new(store.db(), master_key(config)?);
        let codec = EventCodec::new(keys, Upcasters::platform());
        let (bus, nats): (Arc<dyn Bus>, Option<NatsBus>) = match &config.nats_url {
            Some(url) => {
                let nats = NatsBus::connect(NatsConfig {
                    url: url.clone(),
                    stream: config.nats_stream.clone(),
                    subject_prefix: config.nats_subject_prefix.clone(),
                })
                .await?;
                (Arc::new(nats.clone()), Some(nats))
            }
            None => (Arc::new(InProcessBus::new()), None),
        };
        let runner = Runner::new(store.clone(), codec.clone(), bus.clone(), read_models::all());
        let notifier = Arc::new(OutboxNotifier {
            db: store.db(),
            clock: clock.clone(),
        });
        let blobs = open_blobs(config)?;
        let renders = Arc::new(RenderCache::new(blobs.clone(), DEFAULT_CAPACITY_BYTES));
        let app = App::new(store, codec, clock);
        Ok(Platform {
            app,
            runner,
            bus,
            notifier,
            blobs,
            renders,
            thumbnails: Arc::default(),
            nats,
            series_thumbnails: config
                .series_thumbnails
                .then(|| std::time::Duration::from_millis(config.series_thumbnail_quiet_ms)),
            shutdown: watch::channel(false).0,
            tasks: vec![],
        })
    }

    /// Catch projections up, then run the relay, follow the bus and render series
    /// thumbnails as series arrive.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.runner.prepare().await.context("preparing projections")?;
        self.runner.catch_up_all().await.context("catching projections up")?;
        let relay = Relay {
            store: self.app.store.clone(),
            publisher: self.bus.clone(),
            seal_every: 10_000,
        };
        self.tasks.push(tokio::spawn(relay.run(self.shutdown.subscribe())));
        self.tasks.extend(self.runner.spawn(self.shutdown.subscribe()));
        if let Some(quiet) = self.series_thumbnails {
            let worker = SeriesThumbnails {
                store: self.app.store.clone(),
                bus: self.bus.clone(),
                status: self.runner.status(),
                renders: self.renders.clone(),
                blobs: self.blobs.clone(),
                quiet,
                stats: self.thumbnails.clone(),
            };
            self.tasks.push(tokio::spawn(worker.run(self.shutdown.subscribe())));
        }
        self.tasks.push(tokio::spawn(invalidate_sessions(
            self.bus.clone(),
            self.app.auth.clone(),
            self.shutdown.subscribe(),
        )));
        Ok(())
    }

    /// Stop background work and wait for it.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Keep this node's session cache honest: every event that ends or changes
/// sessions, whichever node wrote it, drops the cached entries it affects.
/// When the bus may have skipped something, the whole cache goes.
async fn invalidate_sessions(bus: Arc<dyn Bus>, cache: AuthCache, mut shutdown: watch::Receiver<bool>) {
    loop {
        match bus.subscribe_ephemeral().await {
            Ok(mut deliveries) => loop {
                tokio::select! {
                    d = deliveries.next() => match d {
                        Some(d) => {
                            if d.gap {
                                cache.clear();
                            }
                            for e in &d.events {
                                cache.invalidate_for(&e.event_type, &e.payload);
                            }
                        }
                        None => break,
                    },
                    _ = shutdown.changed() => return,
                }
            },
            Err(e) => tracing::warn!(error = %e, "session invalidation cannot subscribe; retrying"),
        }
        cache.clear();
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
