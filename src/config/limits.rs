//! The `limits:` section of `proxy.yaml`: how long a client may take and how
//! many connections it may hold, so slow, idle or greedy clients cannot take
//! the server down.
//!
//! ```yaml
//! limits:
//!   handshake_timeout_secs: 10        # TLS handshake
//!   header_read_timeout_secs: 30      # a request's headers (HTTP/1)
//!   idle_timeout_secs: 120            # a connection with no request and no traffic
//!   http2_keepalive_interval_secs: 30 # HTTP/2 PING when the peer is quiet
//!   http2_keepalive_timeout_secs: 20  # ... and how long its answer may take
//!   max_connections: 10000            # open connections in total
//!   max_connections_per_address: 1024 # ... from one client address
//! ```

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    handshake_timeout_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    http2_keepalive_interval_secs: Option<u64>,
    http2_keepalive_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
}

/// Validated limits; every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(20),
            max_connections: 10_000,
            max_connections_per_address: 1024,
        }
    }
}

impl RawLimits {
    /// The limits, or one message per value out of range.
    pub(super) fn validate(self) -> Result<Limits, Vec<String>> {
        let mut problems = Vec::new();
        let mut l = Limits::default();
        let mut secs = |key: &str, v: Option<u64>, slot: &mut Duration| {
            if let Some(v) = v {
                if v == 0 || v > 86_400 {
                    problems.push(format!(
                        "limits.{key} must be between 1 and 86400 seconds, not {v}"
                    ));
                } else {
                    *slot = Duration::from_secs(v);
                }
            }
        };
        secs(
            "handshake_timeout_secs",
            self.handshake_timeout_secs,
            &mut l.handshake_timeout,
        );
        secs(
            "header_read_timeout_secs",
            self.header_read_timeout_secs,
            &mut l.header_read_timeout,
        );
        secs(
            "idle_timeout_secs",
            self.idle_timeout_secs,
            &mut l.idle_timeout,
        );
        secs(
            "http2_keepalive_interval_secs",
            self.http2_keepalive_interval_secs,
            &mut l.http2_keepalive_interval,
        );
        secs(
            "http2_keepalive_timeout_secs",
            self.http2_keepalive_timeout_secs,
            &mut l.http2_keepalive_timeout,
        );
        let mut count = |key: &str, v: Option<usize>, slot: &mut usize| {
            if let Some(v) = v {
                if v == 0 {
                    problems.push(format!("limits.{key} must be at least 1"));
                } else {
                    *slot = v;
                }
            }
        };
        count(
            "max_connections",
            self.max_connections,
            &mut l.max_connections,
        );
        count(
            "max_connections_per_address",
            self.max_connections_per_address,
            &mut l.max_connections_per_address,
        );
        if problems.is_empty() {
            Ok(l)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let raw: RawLimits =
            serde_yaml::from_str("idle_timeout_secs: 5\nmax_connections_per_address: 3\n").unwrap();
        let l = raw.validate().unwrap();
        assert_eq!(l.idle_timeout, Duration::from_secs(5));
        assert_eq!(l.max_connections_per_address, 3);
        assert_eq!(l.header_read_timeout, Limits::default().header_read_timeout);
        let raw: RawLimits =
            serde_yaml::from_str("handshake_timeout_secs: 0\nmax_connections: 0\n").unwrap();
        assert_eq!(raw.validate().unwrap_err().len(), 2);
    }
}
