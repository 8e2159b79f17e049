//! A bounded cache of validated tokens, so each API call does not cost a Keystone round trip.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is never stored as a key) and
//! live for the configured TTL, never past the token's own expiry. The cache is bounded in entries
//! and in bytes (each entry's size estimated with its catalog); when full, expired entries go
//! first, then the oldest. A catalog too large for one entry is cut down to its `image` services
//! (the only ones the sidecar reads), and an entry still too large is not cached at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Catalog, Identity, Token};

/// Most tokens remembered at once.
pub(super) const MAX_ENTRIES: usize = 10_000;

/// Most bytes (estimated) the cached identities may take in all.
pub(super) const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes (estimated) one cached identity may take.
pub(super) const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// Validated identities by token hash.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<[u8; 32], Entry>,
    /// Sum of the entries' estimated sizes.
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    until: Instant,
    identity: Identity,
    bytes: usize,
}

impl Entries {
    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(entry) = self.map.remove(key) {
            self.bytes -= entry.bytes;
        }
    }

    fn remove_expired(&mut self, now: Instant) {
        let mut freed = 0;
        self.map.retain(|_, e| {
            let keep = e.until > now;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }

    fn remove_oldest(&mut self) {
        if let Some(oldest) = self
            .map
            .iter()
            .min_by_key(|(_, e)| e.until)
            .map(|(k, _)| *k)
        {
            self.remove(&oldest);
        }
    }
}

/// Estimated heap and inline bytes held by a cached identity.
pub(super) fn estimate(identity: &Identity) -> usize {
    const ENTRY: usize = 32 + std::mem::size_of::<Entry>();
    const STRING: usize = std::mem::size_of::<String>();
    let strings = identity.user_id.len()
        + identity.project_id.len()
        + identity
            .roles
            .iter()
            .map(|r| r.len() + STRING)
            .sum::<usize>();
    ENTRY + strings + estimate_catalog(&identity.catalog)
}

fn estimate_catalog(catalog: &Catalog) -> usize {
    const SERVICE: usize = std::mem::size_of::<super::CatalogService>();
    const ENDPOINT: usize = std::mem::size_of::<super::CatalogEndpoint>();
    catalog
        .0
        .iter()
        .map(|service| {
            SERVICE
                + service.kind.len()
                + service
                    .endpoints
                    .iter()
                    .map(|e| {
                        ENDPOINT
                            + e.interface.len()
                            + e.url.len()
                            + e.region.as_ref().map_or(0, String::len)
                            + e.region_id.as_ref().map_or(0, String::len)
                    })
                    .sum::<usize>()
        })
        .sum()
}

/// The identity as cached: within [`MAX_ENTRY_BYTES`], its catalog cut down to the `image`
/// services when needed; `None` when even that is too large.
fn fit(identity: &Identity) -> Option<(Identity, usize)> {
    let bytes = estimate(identity);
    if bytes <= MAX_ENTRY_BYTES {
        return Some((identity.clone(), bytes));
    }
    let mut trimmed = Identity {
        catalog: Catalog(Vec::new()),
        ..identity.clone()
    };
    trimmed.catalog.0 = identity
        .catalog
        .0
        .iter()
        .filter(|s| s.kind == "image")
        .cloned()
        .collect();
    let bytes = estimate(&trimmed);
    (bytes <= MAX_ENTRY_BYTES).then_some((trimmed, bytes))
}

impl TokenCache {
    /// A cache keeping entries for `ttl` (zero disables it).
    pub fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl,
            entries: Mutex::new(Entries::default()),
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
        match entries.map.get(&key) {
            Some(entry) if entry.until > Instant::now() => Some(entry.identity.clone()),
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
        let Some((identity, bytes)) = fit(identity) else {
            return;
        };
        let key = Self::key(token);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&key);
        let full = |e: &Entries| e.map.len() >= MAX_ENTRIES || e.bytes + bytes > MAX_BYTES;
        if full(&entries) {
            entries.remove_expired(now);
        }
        while full(&entries) && !entries.map.is_empty() {
            entries.remove_oldest();
        }
        entries.bytes += bytes;
        entries.map.insert(
            key,
            Entry {
                until: now + life,
                identity,
                bytes,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Estimated bytes held by the cached identities.
    pub fn bytes(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).bytes
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

    fn service(kind: &str, endpoints: usize) -> super::super::CatalogService {
        super::super::CatalogService {
            kind: kind.into(),
            endpoints: (0..endpoints)
                .map(|i| super::super::CatalogEndpoint {
                    interface: "public".into(),
                    region: Some(format!("REGION{i}")),
                    region_id: Some(format!("REGION{i}")),
                    url: format!(
                        "https://{kind}.region{i}.example.org:9292/{}",
                        "x".repeat(200)
                    ),
                })
                .collect(),
        }
    }

    #[test]
    fn many_tokens_with_big_catalogs_stay_within_the_byte_bound() {
        let cache = TokenCache::new(Duration::from_secs(60));
        // A catalog just under the per-entry bound: the byte bound, not the count, must hold.
        let mut big = identity(3600);
        big.catalog = Catalog((0..20).map(|i| service(&format!("svc{i}"), 8)).collect());
        let size = estimate(&big);
        assert!(
            size <= MAX_ENTRY_BYTES && size > MAX_ENTRY_BYTES / 2,
            "{size}"
        );
        let tokens = 2 * MAX_BYTES / size;
        assert!(tokens < MAX_ENTRIES);
        for i in 0..tokens {
            let token = Token::parse(format!("t{i}").as_bytes()).unwrap();
            cache.insert(&token, &big);
            assert!(cache.bytes() <= MAX_BYTES, "{} bytes", cache.bytes());
        }
        assert!(cache.len() < tokens && cache.len() >= MAX_BYTES / size / 2);
        // The newest is kept, the oldest went first.
        let last = Token::parse(format!("t{}", tokens - 1).as_bytes()).unwrap();
        assert!(cache.get(&last).is_some());
        assert!(cache.get(&Token::parse(b"t0").unwrap()).is_none());
    }

    #[test]
    fn an_oversized_catalog_is_cut_to_its_image_services_or_not_cached() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let mut huge = identity(3600);
        huge.catalog = Catalog(
            (0..200)
                .map(|i| service(&format!("svc{i}"), 4))
                .chain([service("image", 3)])
                .collect(),
        );
        assert!(estimate(&huge) > MAX_ENTRY_BYTES);
        let a = Token::parse(b"a").unwrap();
        cache.insert(&a, &huge);
        let cached = cache.get(&a).unwrap();
        assert_eq!(cached.catalog.0.len(), 1);
        assert_eq!(cached.catalog.0[0].kind, "image");
        assert!(cached.catalog.image_endpoint("REGION2", "public").is_ok());
        assert!(cache.bytes() <= MAX_ENTRY_BYTES);

        // An image service alone over the bound: not cached at all.
        let mut images = identity(3600);
        images.catalog = Catalog(vec![service("image", 1000)]);
        let b = Token::parse(b"b").unwrap();
        cache.insert(&b, &images);
        assert!(cache.get(&b).is_none());
        assert_eq!(cache.len(), 1);
    }
}
