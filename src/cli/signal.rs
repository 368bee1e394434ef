//! Shutdown on SIGINT (Ctrl-C) or SIGTERM, observable from any number of places.
//!
//! A background task flips a `watch` channel once a signal arrives; `Shutdown::wait` is
//! cancel-safe, so it can sit in a `select!` next to the real work and be polled again later.

use tokio::sync::watch;

/// A handle that resolves once the process was asked to stop.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the SIGINT/SIGTERM handlers (must be called inside the tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        let (tx, rx) = watch::channel(false);
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            #[cfg(unix)]
            let terminate = term.recv();
            #[cfg(not(unix))]
            let terminate = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate => {}
            }
            tracing::info!("shutdown requested");
            let _ = tx.send(true);
            // Keep the sender alive so receivers never see a closed channel as a signal.
            std::future::pending::<()>().await;
        });
        Ok(Self { rx })
    }

    /// Resolves once shutdown was requested.
    pub async fn wait(&mut self) {
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            // Sender dropped without a signal: nothing will ever ask us to stop.
            std::future::pending::<()>().await;
        }
    }

    /// Whether shutdown was already requested.
    pub fn requested(&self) -> bool {
        *self.rx.borrow()
    }
}
