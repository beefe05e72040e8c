//! Access tokens already verified, so that a Bearer request costs a hash
//! and a map lookup instead of an ES256 signature check.
//!
//! Keyed by the SHA-256 of the whole token (the signature included), so
//! only the exact bytes that passed verification hit. An entry lives until
//! its token expires (with the same leeway verification allows); the map is
//! bounded, and emptied whenever users or rules are reloaded. What the
//! cache saves is only the signature check: whether the user still exists
//! with the same password is checked on every request, after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;

use super::token::Claims;

/// Tokens remembered at most; past this, expired ones are dropped, and if
/// that is not enough, all of them.
const MAX_ENTRIES: usize = 16_384;

type Key = [u8; 32];

#[derive(Default)]
pub struct VerifiedTokens {
    map: Mutex<HashMap<Key, Arc<Claims>>>,
}

fn key(token: &str) -> Key {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// The claims of `token` if it was verified before and is still within
    /// `exp + leeway` at `now` (seconds since the epoch).
    pub fn get(&self, token: &str, now: u64, leeway: u64) -> Option<Arc<Claims>> {
        let k = key(token);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let claims = map.get(&k)?;
        if now > claims.exp.saturating_add(leeway) {
            map.remove(&k);
            return None;
        }
        Some(claims.clone())
    }

    /// Remembers a token that just passed verification.
    pub fn insert(&self, token: &str, claims: Arc<Claims>, now: u64, leeway: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, c| now <= c.exp.saturating_add(leeway));
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key(token), claims);
    }

    /// Forgets every token (users or rules changed).
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::identity::Source;
    use crate::auth::token::Use;

    fn claims(exp: u64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            sub: "alice".into(),
            aud: "a".into(),
            exp,
            nbf: 0,
            iat: 0,
            jti: "j".into(),
            access: vec![],
            src: Source::Htpasswd,
            pwv: None,
            groups: vec![],
            token_use: Use::Access,
        })
    }

    #[test]
    fn hits_only_the_exact_token_until_it_expires() {
        let cache = VerifiedTokens::default();
        cache.insert("aaa.bbb.ccc", claims(100), 50, 30);
        assert!(cache.get("aaa.bbb.ccc", 60, 30).is_some());
        assert!(cache.get("aaa.bbb.ccd", 60, 30).is_none(), "one byte off");
        assert!(cache.get("aaa.bbb.ccc", 130, 30).is_some(), "within leeway");
        assert!(cache.get("aaa.bbb.ccc", 131, 30).is_none(), "expired");
        assert!(cache.is_empty(), "an expired entry is dropped when seen");
    }

    #[test]
    fn bounded_and_cleared() {
        let cache = VerifiedTokens::default();
        for i in 0..MAX_ENTRIES {
            cache.insert(
                &format!("t{i}"),
                claims(if i % 2 == 0 { 10 } else { 1000 }),
                5,
                0,
            );
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // Full: the expired half goes first.
        cache.insert("new", claims(1000), 20, 0);
        assert_eq!(cache.len(), MAX_ENTRIES / 2 + 1);
        assert!(cache.get("t1", 20, 0).is_some());
        cache.clear();
        assert!(cache.get("t1", 20, 0).is_none());
    }
}
