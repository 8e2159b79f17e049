//! A bounded cache of validated tokens, so each API call does not cost a Keystone round trip.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is never stored as a key) and
//! live for the configured TTL, never past the token's own expiry. When full, expired entries go
//! first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Identity, Token};

/// Most tokens remembered at once.
pub const MAX_ENTRIES: usize = 10_000;

/// Validated identities by token hash.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Instant, Identity)>>,
}

impl TokenCache {
    /// A cache keeping entries for `ttl` (zero disables it).
    pub fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(token: &Token) -> [u8; 32] {
        Sha256::digest(token.expose().as_bytes()).into()
    }

    /// The identity of `token`, if validated recently and not expired since.
    pub fn get(&self, token: &Token) -> Option<Identity> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(token);
        match entries.get(&key) {
            Some((until, identity)) if *until > Instant::now() => Some(identity.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers a validated identity.
    pub fn insert(&self, token: &Token, identity: &Identity) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut life = self.ttl;
        if let Some(expires) = identity.expires_at {
            let left = expires - OffsetDateTime::now_utc();
            let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
            life = life.min(left);
        }
        if life.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (until, _)| *until > now);
        }
        if entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (until, _))| *until)
                .map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(Self::key(token), (now + life, identity.clone()));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires_in: i64) -> Identity {
        Identity {
            user_id: "u".into(),
            project_id: "p".into(),
            roles: vec![],
            expires_at: Some(OffsetDateTime::now_utc() + time::Duration::seconds(expires_in)),
            catalog: Default::default(),
        }
    }

    #[test]
    fn entries_expire_with_the_token_and_the_ttl() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let a = Token::parse(b"token-a").unwrap();
        let b = Token::parse(b"token-b").unwrap();
        cache.insert(&a, &identity(3600));
        cache.insert(&b, &identity(-1)); // already expired: not cached
        assert!(cache.get(&a).is_some());
        assert!(cache.get(&b).is_none());
        assert_eq!(cache.len(), 1);

        let off = TokenCache::new(Duration::ZERO);
        off.insert(&a, &identity(3600));
        assert!(off.get(&a).is_none());
    }

    #[test]
    fn stays_bounded() {
        let cache = TokenCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES + 10 {
            let token = Token::parse(format!("t{i}").as_bytes()).unwrap();
            cache.insert(&token, &identity(3600));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
    }
}
