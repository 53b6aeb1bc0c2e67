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
    };
    let app = platform.app.clone();
    let status = platform.runner.status();
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
