//! Browser sessions for the web UI: a random id in a cookie, the identity
//! it stands for kept here on the server, and a per-session CSRF token.
//!
//! Only a hash of the id is stored, so the table never holds what a cookie
//! holds. A session ends at its expiry (absolute, from sign-in), on
//! sign-out, and when its user changes: an htpasswd user removed or given
//! a new password ends it on the next request; an LDAP user is re-read
//! from the directory as a refresh token is ([`super::revalidate`]), at
//! most `auth.cache_secs` late. The table is bounded, and so is each
//! user's share of it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

use super::identity::Identity;

/// How long a session lives after sign-in, at most.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Sessions kept at most; past this, expired ones go first, then the oldest.
const MAX_SESSIONS: usize = 10_000;

/// Sessions one signed-in user keeps at most; a sign-in past this ends
/// that user's oldest, so no user can push others out of the table.
const MAX_PER_USER: usize = 32;

/// A signed-in browser, as the UI sees it: who, and the token its forms
/// must carry. Only this module makes one, from a live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub(super) identity: Identity,
    csrf: String,
    /// Whether this is the anonymous session of a server without logins.
    pub(super) anonymous: bool,
}

impl Session {
    /// The user's name (`None` without logins).
    pub fn user(&self) -> Option<&str> {
        (!self.anonymous).then_some(self.identity.user.as_str())
    }

    /// The token every state-changing form of this session carries.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// Whether `token` is this session's CSRF token (compared in constant
    /// time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// A new session: the cookie value to hand to the browser (once) and the
/// session itself.
pub struct Started {
    pub cookie_value: String,
    pub session: Session,
    /// How long the cookie should live.
    pub max_age: Duration,
}

struct Entry {
    session: Session,
    expires: Instant,
    created: Instant,
}

/// The server side of every session.
#[derive(Default)]
pub struct SessionStore {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key_of(cookie_value: &str) -> [u8; 32] {
    Sha256::digest(cookie_value.as_bytes()).into()
}

impl SessionStore {
    /// Starts a session for `identity`, living `ttl`.
    pub(super) fn start(&self, identity: Identity, anonymous: bool, ttl: Duration) -> Started {
        let cookie_value = random_token();
        let session = Session {
            identity,
            csrf: random_token(),
            anonymous,
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if !anonymous {
            let user = session.identity.user.as_str();
            let own = |e: &Entry| !e.session.anonymous && e.session.identity.user == user;
            if entries.values().filter(|e| own(e)).count() >= MAX_PER_USER {
                let oldest = (entries.iter())
                    .filter(|(_, e)| own(e))
                    .min_by_key(|(_, e)| e.created)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        if entries.len() >= MAX_SESSIONS {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_SESSIONS {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.created)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            key_of(&cookie_value),
            Entry {
                session: session.clone(),
                expires: now + ttl,
                created: now,
            },
        );
        Started {
            cookie_value,
            session,
            max_age: ttl,
        }
    }

    /// The live session behind a cookie value, if any (an expired one is
    /// dropped).
    pub(super) fn get(&self, cookie_value: &str) -> Option<Session> {
        let key = key_of(cookie_value);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&key)?;
        if entry.expires <= Instant::now() {
            entries.remove(&key);
            return None;
        }
        Some(entry.session.clone())
    }

    /// Replaces the identity of a live session (an LDAP user's groups of
    /// now).
    pub(super) fn update(&self, cookie_value: &str, identity: Identity) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(&key_of(cookie_value)) {
            e.session.identity = identity;
        }
    }

    /// Ends a session; whether there was one.
    pub(super) fn end(&self, cookie_value: &str) -> bool {
        (self.entries.lock().unwrap_or_else(|p| p.into_inner()))
            .remove(&key_of(cookie_value))
            .is_some()
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
    fn a_session_lives_until_it_ends() {
        let store = SessionStore::default();
        let s = store.start(alice(), false, SESSION_TTL);
        assert_eq!(s.cookie_value.len(), 43, "32 random bytes, base64url");
        let got = store.get(&s.cookie_value).expect("live");
        assert_eq!(got.user(), Some("alice"));
        assert!(got.csrf_matches(s.session.csrf_token()));
        assert!(!got.csrf_matches(""));
        assert!(!got.csrf_matches(&s.cookie_value));
        assert!(store.get("forged").is_none());
        assert!(store.end(&s.cookie_value));
        assert!(store.get(&s.cookie_value).is_none());
    }

    #[test]
    fn one_user_signing_in_again_and_again_pushes_out_only_their_own_sessions() {
        let store = SessionStore::default();
        let theirs = store.start(alice(), false, SESSION_TTL);
        let mallory = Identity {
            user: "mallory".into(),
            ..alice()
        };
        let first = store.start(mallory.clone(), false, SESSION_TTL);
        let mut last = None;
        for _ in 0..MAX_SESSIONS {
            last = Some(store.start(mallory.clone(), false, SESSION_TTL));
        }
        assert!(
            store.get(&theirs.cookie_value).is_some(),
            "alice was signed out"
        );
        assert!(
            store.get(&first.cookie_value).is_none(),
            "mallory's oldest went"
        );
        let last = last.expect("started");
        assert!(store.get(&last.cookie_value).is_some());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let store = SessionStore::default();
        let s = store.start(alice(), false, Duration::ZERO);
        assert!(store.get(&s.cookie_value).is_none());
    }
}
