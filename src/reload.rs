//! When to look for changed files: every few seconds, or at once on SIGHUP.
//! Shared by everything that reloads (certificates, users, access rules).

use std::time::Duration;

/// How often watched files are checked for changes.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Ticks every [`INTERVAL`], and on SIGHUP.
pub struct Trigger {
    tick: tokio::time::Interval,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Trigger {
    /// Must be called inside the runtime; the SIGHUP handler is installed
    /// here, so a signal sent after this is never missed.
    pub fn new() -> Trigger {
        Trigger {
            tick: tokio::time::interval(INTERVAL),
            #[cfg(unix)]
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next check; true when it was asked for by SIGHUP
    /// (reload even if nothing seems changed).
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            let hup = &mut self.hup;
            tokio::select! {
                _ = self.tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
            }
        }
        #[cfg(not(unix))]
        {
            self.tick.tick().await;
            false
        }
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Self::new()
    }
}
