//! Running the HTTP server on a platform: bootstrap, bind, serve, stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use medledger_commands::clock::Clock;
use medledger_commands::identity::bootstrap_operator;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{metrics_handle, router, AppState};
use crate::platform::Platform;

pub struct RunningServer {
    pub addr: SocketAddr,
    /// Set when this start created the operator with a generated password.
    pub operator_password: Option<String>,
    pub app: medledger_commands::App,
    pub status: medledger_projections::Status,
    pub blobs: medledger_commands::blobs::BlobStore,
    /// The render cache the thumbnail endpoints and the series thumbnail worker share.
    pub renders: Arc<medledger_dicom_ingest::render_cache::RenderCache>,
    /// What the series thumbnail worker did.
    pub thumbnails: Arc<crate::series_thumbnails::Stats>,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Stop accepting requests, finish those in flight, stop background work.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.handle.await.context("server task")?
    }

    /// Wait until the server stops by itself (signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.handle.await.context("server task")?
    }
}

/// How to run the HTTP side.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    pub public_url: String,
    pub bootstrap_password: Option<String>,
    /// Stop on SIGINT/SIGTERM (the binary) or only when told (tests).
    pub stop_on_signal: bool,
}

/// The DICOM SCP: where it listens, its AE title, who may send.
#[derive(Clone, Debug)]
pub struct DicomOptions {
    pub addr: SocketAddr,
    pub ae_title: String,
    /// `CALLING_AE=HOSPITAL_ID` entries.
    pub calling_aes: Vec<String>,
}

/// Resolve `CALLING_AE=HOSPITAL_ID` entries to tenants (the hospital must exist).
async fn calling_ae_registry(
    app: &medledger_commands::App,
    entries: &[String],
) -> anyhow::Result<std::collections::HashMap<String, medledger_domain::identity::Tenant>> {
    let mut out = std::collections::HashMap::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (ae, hospital) = entry
            .split_once('=')
            .with_context(|| format!("'{entry}': expected CALLING_AE=HOSPITAL_ID"))?;
        let hospital: uuid::Uuid = hospital
            .trim()
            .parse()
            .with_context(|| format!("'{entry}': bad hospital id"))?;
        let (state, _) = app
            .load::<medledger_domain::organization::hospital::Hospital>(&format!("hospital-{hospital}"))
            .await?;
        let h = state.hospital.with_context(|| format!("'{entry}': no such hospital"))?;
        out.insert(
            ae.trim().to_string(),
            medledger_domain::identity::Tenant {
                alliance_id: Some(h.alliance_id),
                hospital_id: Some(h.id),
            },
        );
    }
    Ok(out)
}

/// The hospitals' registered DICOM peers, read from their read model before each association.
pub fn peer_registry(db: medledger_commands::db::Db) -> medledger_dicom_ingest::scp::PeerRegistry {
    Arc::new(move || {
        let db = db.clone();
        Box::pin(async move {
            match medledger_projections::read_models::imaging_settings::dicom_peers(&db, None).await {
                Ok(peers) => peers
                    .into_iter()
                    .map(|p| {
                        (
                            p.ae_title,
                            medledger_domain::identity::Tenant {
                                alliance_id: p.alliance_id,
                                hospital_id: Some(p.hospital_id),
                            },
                        )
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the registered DICOM peers");
                    Default::default()
                }
            }
        })
    })
}

/// Start the C-STORE/C-ECHO SCP on the platform's store and blobs.
pub async fn start_dicom(
    app: &medledger_commands::App,
    blobs: &medledger_commands::blobs::BlobStore,
    options: &DicomOptions,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let config = medledger_dicom_ingest::scp::ScpConfig {
        ae_title: options.ae_title.clone(),
        calling_aes: calling_ae_registry(app, &options.calling_aes).await?,
        max_pdu_length: 64 * 1024,
        peers: Some(peer_registry(app.store.read_models())),
    };
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("binding the DICOM port {}", options.addr))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(medledger_dicom_ingest::scp::serve(
        listener,
        Arc::new(config),
        app.clone(),
        blobs.clone(),
        shutdown,
    ));
    Ok((addr, task))
}

pub async fn start(config: &Config, options: HttpOptions, clock: Arc<dyn Clock>) -> anyhow::Result<RunningServer> {
    let HttpOptions {
        addr: http_addr,
        public_url,
        bootstrap_password,
        stop_on_signal,
    } = options;
    let mut platform = Platform::open(config, clock).await?;
    platform.start().await?;
    let operator_password = bootstrap_operator(&platform.app, bootstrap_password)
        .await
        .context("creating the operator account")?;
    let state = AppState {
        app: platform.app.clone(),
        status: platform.runner.status(),
        bus: platform.bus.clone(),
        metrics: metrics_handle(),
        notifier: platform.notifier.clone(),
        blobs: platform.blobs.clone(),
        public_url,
        renders: platform.renders.clone(),
    };
    let app = platform.app.clone();
    let status = platform.runner.status();
    let blobs = platform.blobs.clone();
    let renders = platform.renders.clone();
    let thumbnails = platform.thumbnails.clone();
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("binding {http_addr}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let shutdown = async move {
            if stop_on_signal {
                tokio::select! {
                    _ = stopped => {}
                    _ = signal() => {}
                }
            } else {
                let _ = stopped.await;
            }
        };
        let result = axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        platform.shutdown().await;
        result.context("HTTP server")
    });
    Ok(RunningServer {
        addr,
        operator_password,
        app,
        status,
        blobs,
        renders,
        thumbnails,
        stop,
        handle,
    })
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
