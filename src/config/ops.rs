//! The operations settings of `proxy.yaml`: the admin listener, the log
//! format and how long a stop waits for requests in flight.
//!
//! ```yaml
//! admin:
//!   enabled: true             # /healthz, /readyz, /metrics
//!   listen: 127.0.0.1:5001    # port 0 picks a free port
//! log:
//!   format: text              # or json (one JSON object per line)
//! shutdown_timeout_secs: 30   # SIGTERM/Ctrl-C: wait this long for requests in flight
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// The default admin listener: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:5001";
/// How long a stop waits for requests in flight by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) enabled: Option<bool>,
    pub(super) listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<LogFormat>,
}

/// How log lines are written to stderr.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable `key=value` lines.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// The default admin address (a constant that always parses).
pub fn default_admin_listen() -> SocketAddr {
    DEFAULT_ADMIN_LISTEN
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5001)))
}

/// The admin address to use, or `None` when turned off; a problem when it
/// would share the public listener's address.
pub(super) fn admin_listen(
    raw: Option<RawAdmin>,
    public: SocketAddr,
) -> Result<Option<SocketAddr>, String> {
    let raw = raw.unwrap_or_default();
    if !raw.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let addr = raw.listen.unwrap_or_else(default_admin_listen);
    if addr.port() != 0 && addr.port() == public.port() {
        return Err(format!(
            "admin.listen {addr} uses the public port {}; the admin endpoints must be on their own port (e.g. 127.0.0.1:5001)",
            public.port()
        ));
    }
    Ok(Some(addr))
}

/// `shutdown_timeout_secs`, at least 1 s.
pub(super) fn shutdown_timeout(secs: Option<u64>) -> Result<Duration, String> {
    match secs {
        None => Ok(DEFAULT_SHUTDOWN_TIMEOUT),
        Some(0) => Err("shutdown_timeout_secs must be at least 1".into()),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_defaults_to_loopback_and_refuses_the_public_port() {
        let public: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert_eq!(
            admin_listen(None, public).unwrap(),
            Some(default_admin_listen())
        );
        let off = RawAdmin {
            enabled: Some(false),
            listen: None,
        };
        assert_eq!(admin_listen(Some(off), public).unwrap(), None);
        let same = RawAdmin {
            enabled: None,
            listen: Some("127.0.0.1:5000".parse().unwrap()),
        };
        assert!(admin_listen(Some(same), public)
            .unwrap_err()
            .contains("public port"));
        let zero = RawAdmin {
            enabled: None,
            listen: Some("127.0.0.1:0".parse().unwrap()),
        };
        assert_eq!(
            admin_listen(Some(zero), "127.0.0.1:0".parse().unwrap()).unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert!(shutdown_timeout(Some(0)).is_err());
        assert_eq!(shutdown_timeout(None).unwrap(), DEFAULT_SHUTDOWN_TIMEOUT);
    }
}
