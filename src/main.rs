//! `portico`: parse the command line, start telemetry, run until SIGTERM or Ctrl-C.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;

use portico::config::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Args::parse().validate()?;
    portico::app::init_tracing(config.log_format, &config.log_level);
    portico::app::run(config, shutdown_signal())
        .await
        .context("portico failed")
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
