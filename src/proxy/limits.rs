//! Keeping greedy or broken clients from taking the server down: caps on
//! open connections (in total and per client address), the soft
//! open-file limit raised to the hard one at start, and a growing, bounded
//! pause after failed accepts instead of a busy loop.
//!
//! Refusals and accept failures are logged rate-limited (a burst, then one
//! line with the count of suppressed ones).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::tls::HandshakeLog;

/// File descriptors kept free for storage, logs and the listener itself
/// (at most a quarter of the limit).
const RESERVED_FDS: u64 = 64;

/// Open-connection caps, shared by the accept loop.
pub struct Caps {
    total: Arc<Semaphore>,
    max_total: usize,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
    log: HandshakeLog,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    addr: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

impl Caps {
    /// Caps from the config, the total lowered to what the open-file limit
    /// allows.
    pub fn new(limits: &Limits, fd_limit: Option<u64>) -> Caps {
        let mut max_total = limits.max_connections;
        if let Some(fds) = fd_limit {
            // Each connection holds one descriptor; uploads briefly a second.
            let reserved = RESERVED_FDS.min(fds / 4);
            let fits = (fds.saturating_sub(reserved) / 2).max(1) as usize;
            if fits < max_total {
                tracing::info!(
                    max_connections = fits,
                    configured = max_total,
                    open_files = fds,
                    "fewer connections than limits.max_connections fit in the open-file limit (ulimit -n)"
                );
                max_total = fits;
            }
        }
        Caps {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            per_address: Arc::default(),
            max_per_address: limits.max_connections_per_address,
            log: HandshakeLog::new(),
        }
    }

    /// Admits a connection from `addr`, or logs (rate-limited) why not.
    pub fn admit(&self, addr: IpAddr) -> Option<Admitted> {
        let Ok(permit) = self.total.clone().try_acquire_owned() else {
            if let (true, suppressed) = self.log.admit() {
                tracing::warn!(
                    peer = %addr,
                    max = self.max_total,
                    suppressed,
                    "connection refused: limits.max_connections reached (raise it, or the open-file limit)"
                );
            }
            return None;
        };
        let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(addr).or_insert(0);
        if *n >= self.max_per_address {
            drop(map);
            if let (true, suppressed) = self.log.admit() {
                tracing::warn!(
                    peer = %addr,
                    max = self.max_per_address,
                    suppressed,
                    "connection refused: this address holds limits.max_connections_per_address connections"
                );
            }
            return None;
        }
        *n += 1;
        Some(Admitted {
            _permit: permit,
            addr,
            per_address: self.per_address.clone(),
        })
    }
}

/// Raises the soft open-file limit to the hard limit; returns the soft
/// limit in force afterwards (`None` if it cannot be read).
// `rlim_t` is not `u64` on every target.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(
                from = lim.rlim_cur,
                to = lim.rlim_max,
                "raised the open-file limit"
            );
            return Some(lim.rlim_max as u64);
        }
        tracing::warn!(
            soft = lim.rlim_cur,
            hard = lim.rlim_max,
            "could not raise the open-file limit"
        );
    }
    Some(lim.rlim_cur as u64)
}

/// The pause after failed accepts: 10 ms, doubling up to 1 s, back to the
/// start after a success.
pub struct AcceptBackoff {
    next: Duration,
    log: HandshakeLog,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> AcceptBackoff {
        AcceptBackoff {
            next: Self::FIRST,
            log: HandshakeLog::new(),
        }
    }

    pub fn succeeded(&mut self) {
        self.next = Self::FIRST;
    }

    /// Logs (rate-limited) and waits before the next accept.
    pub async fn failed(&mut self, error: &std::io::Error) {
        if let (true, suppressed) = self.log.admit() {
            tracing::warn!(%error, suppressed, pause_ms = self.next.as_millis() as u64, "accept failed; pausing");
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Self::MAX);
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_total_caps() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_address: 2,
            ..Limits::default()
        };
        let caps = Caps::new(&limits, None);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "third from one address");
        let _b1 = caps.admit(b).unwrap();
        assert!(caps.admit(b).is_none(), "total reached");
        drop(a1);
        assert!(caps.admit(a).is_some(), "a place was freed");
    }

    #[test]
    fn fd_limit_lowers_the_total() {
        let caps = Caps::new(&Limits::default(), Some(256));
        assert_eq!(caps.max_total, 96);
        let caps = Caps::new(&Limits::default(), Some(40));
        assert_eq!(caps.max_total, 15);
    }
}
