//! Keeping password checks off the request path, and slowing down guessers.
//!
//! [`CredentialCache`] remembers a successful login for a while: keyed by
//! user, holding a keyed hash (HMAC-SHA256 with a per-process random key) of
//! the password, never the password. [`FailureLimiter`] counts failed
//! logins per user+address and per address, and answers "try again in N s"
//! for a bounded time after too many, so guessing is slow and the real user
//! is never locked out for long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Mac, SimpleHmac};
use rand::RngCore;
use sha2::Sha256;

use super::identity::Identity;
use super::secret::Secret;

type HmacSha256 = SimpleHmac<Sha256>;

/// Entries kept at most; past this, expired ones are dropped first, then all.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    mac: Vec<u8>,
    identity: Identity,
    /// For htpasswd users: the password-hash fingerprint it was checked against.
    version: Option<String>,
    expires: Instant,
}

pub struct CredentialCache {
    /// One SHA-256 block: the key size HMAC uses without hashing it first.
    key: [u8; 64],
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> CredentialCache {
        let mut key = [0u8; 64];
        rand::rng().fill_bytes(&mut key);
        CredentialCache {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, user: &str, password: &Secret) -> HmacSha256 {
        let mut m = <HmacSha256 as hmac::digest::KeyInit>::new(&self.key.into());
        m.update(user.as_bytes());
        m.update(&[0]);
        m.update(password.expose().as_bytes());
        m
    }

    /// The cached identity, if this password was accepted recently for the
    /// name `user` as typed and (for htpasswd users) the user's entry has
    /// not changed since; `current_version` is asked for the identity's.
    pub fn check(
        &self,
        user: &str,
        password: &Secret,
        current_version: impl FnOnce(&Identity) -> Option<String>,
    ) -> Option<Identity> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(user)?;
        if entry.expires <= Instant::now() {
            entries.remove(user);
            return None;
        }
        if self.mac(user, password).verify_slice(&entry.mac).is_err() {
            return None;
        }
        if entry.version.is_some() && entry.version != current_version(&entry.identity) {
            entries.remove(user);
            return None;
        }
        Some(entry.identity.clone())
    }

    /// Remembers that `password` logged in as `identity` under the name
    /// `user` as typed.
    pub fn insert(
        &self,
        user: &str,
        password: &Secret,
        identity: &Identity,
        version: Option<String>,
    ) {
        let mac = self.mac(user, password).finalize().into_bytes().to_vec();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            user.to_string(),
            Entry {
                mac,
                identity: identity.clone(),
                version,
                expires: Instant::now() + self.ttl,
            },
        );
    }

    pub fn forget(&self, user: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }
}

/// Identities looked up without a password (for refresh tokens), kept for
/// the cache TTL: `None` remembers "no such user".
pub struct LookupCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Option<Identity>, Instant)>>,
}

impl LookupCache {
    pub fn new(ttl: Duration) -> LookupCache {
        LookupCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(answer)` if `user` was looked up less than the TTL ago.
    pub fn get(&self, user: &str) -> Option<Option<Identity>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(user) {
            Some((answer, at)) if at.elapsed() < self.ttl => Some(answer.clone()),
            Some(_) => {
                entries.remove(user);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, user: &str, answer: Option<Identity>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(user.to_string(), (answer, Instant::now()));
    }
}

/// Failures allowed per user+address before a pause, unless configured.
pub const USER_LIMIT: u32 = 5;
/// Failures allowed per address (any user) before a pause, unless configured.
pub const ADDR_LIMIT: u32 = 30;
/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// The first pause; it doubles with each further pause, up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_secs(10);
const MAX_PAUSE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String, IpAddr),
    Addr(IpAddr),
}

#[derive(Debug)]
struct Counter {
    failures: u32,
    window_start: Instant,
    pauses: u32,
    paused_until: Option<Instant>,
}

pub struct FailureLimiter {
    counters: Mutex<HashMap<Key, Counter>>,
    user_limit: u32,
    addr_limit: u32,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new(USER_LIMIT, ADDR_LIMIT)
    }
}

impl FailureLimiter {
    /// Pauses after `user_limit` failures for one user from one address, or
    /// `addr_limit` from one address (each at least 1).
    pub fn new(user_limit: u32, addr_limit: u32) -> FailureLimiter {
        FailureLimiter {
            counters: Mutex::new(HashMap::new()),
            user_limit: user_limit.max(1),
            addr_limit: addr_limit.max(1),
        }
    }

    /// `Err(retry_after)` if logins for this user from this address (or
    /// from this address at all) are paused.
    pub fn check(&self, user: &str, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for key in [Key::User(user.to_string(), addr), Key::Addr(addr)] {
            if let Some(until) = counters.get(&key).and_then(|c| c.paused_until) {
                if until > now {
                    return Err(until - now);
                }
            }
        }
        Ok(())
    }

    /// Records a failed login.
    pub fn failed(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if counters.len() >= MAX_ENTRIES {
            counters.retain(|_, c| {
                now.duration_since(c.window_start) < WINDOW
                    || c.paused_until.is_some_and(|u| u > now)
            });
        }
        for (key, limit) in [
            (Key::User(user.to_string(), addr), self.user_limit),
            (Key::Addr(addr), self.addr_limit),
        ] {
            let c = counters.entry(key).or_insert(Counter {
                failures: 0,
                window_start: now,
                pauses: 0,
                paused_until: None,
            });
            if now.duration_since(c.window_start) >= WINDOW {
                c.failures = 0;
                c.window_start = now;
            }
            c.failures += 1;
            if c.failures >= limit {
                let pause = FIRST_PAUSE
                    .saturating_mul(1 << c.pauses.min(8))
                    .min(MAX_PAUSE);
                c.paused_until = Some(now + pause);
                c.pauses += 1;
                c.failures = 0;
                c.window_start = now;
            }
        }
    }

    /// A successful login clears that user's record from that address.
    pub fn succeeded(&self, user: &str, addr: IpAddr) {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Key::User(user.to_string(), addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::identity::Source;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec![],
            source: Source::Htpasswd,
            version: Some("v1".into()),
        }
    }

    #[test]
    fn cache_accepts_only_the_same_password_and_version() {
        let c = CredentialCache::new(Duration::from_secs(60));
        let pw = Secret::new("pw");
        c.insert("alice", &pw, &alice(), Some("v1".into()));
        assert!(c.check("alice", &pw, |_| Some("v1".into())).is_some());
        assert!(c
            .check("alice", &Secret::new("other"), |_| Some("v1".into()))
            .is_none());
        assert!(c.check("bob", &pw, |_| Some("v1".into())).is_none());
        // The password changed or the user was removed: the entry is gone.
        assert!(c.check("alice", &pw, |_| Some("v2".into())).is_none());
        assert!(c.check("alice", &pw, |_| Some("v1".into())).is_none());
    }

    #[test]
    fn cache_entries_expire() {
        let c = CredentialCache::new(Duration::from_millis(0));
        let pw = Secret::new("pw");
        c.insert("alice", &pw, &alice(), None);
        assert!(c.check("alice", &pw, |_| None).is_none());
    }

    #[test]
    fn limiter_pauses_a_guesser_but_not_others() {
        let l = FailureLimiter::default();
        let attacker: IpAddr = "10.0.0.9".parse().unwrap();
        let real: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..USER_LIMIT {
            assert!(l.check("alice", attacker).is_ok());
            l.failed("alice", attacker);
        }
        let wait = l.check("alice", attacker).unwrap_err();
        assert!(wait <= FIRST_PAUSE && wait > Duration::from_secs(1));
        assert!(
            l.check("alice", real).is_ok(),
            "the real user elsewhere is not locked out"
        );
        assert!(l.check("bob", attacker).is_ok());
    }

    #[test]
    fn pauses_grow_but_are_bounded() {
        let l = FailureLimiter::default();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..(USER_LIMIT * 20) {
            l.failed("alice", a);
        }
        let wait = l.check("alice", a).unwrap_err();
        assert!(wait <= MAX_PAUSE);
    }
}
