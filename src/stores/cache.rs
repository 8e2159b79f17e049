//! The fronted Glance's store list, remembered for a short while.
//!
//! `GET /v2/info/stores` answers the same list to every caller and changes only when Glance is
//! reconfigured (and restarted). Yet each read of it with a new token costs one more validation
//! of that token: by the Glance process that answers, since keystonemiddleware caches tokens per
//! process unless the cloud shares a cache (memcached). Before the `202` of an import, the token
//! is already validated by the sidecar and by Glance for the target image read; reading the list
//! once per [`TTL`] instead of once per import saves a third validation on a new token's path.
//!
//! One entry for the one fronted Glance: nothing a caller sends makes it grow. Only an answer is
//! remembered (a list, or "single store" from a 404); a failed read is tried again next time.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::StoreInfo;

/// How long a read list is used. A store added to or removed from Glance's configuration is seen
/// by imports at most this late (the import then fails as a task if a store went away).
pub const TTL: Duration = Duration::from_secs(30);

/// What `GET /v2/info/stores` answered: the stores, or `None` on a single-store Glance.
pub type Known = Option<Vec<StoreInfo>>;

/// The last list read, and when.
#[derive(Debug)]
pub struct StoresCache {
    ttl: Duration,
    last: Mutex<Option<(Instant, Known)>>,
}

impl Default for StoresCache {
    fn default() -> Self {
        StoresCache::with_ttl(TTL)
    }
}

impl StoresCache {
    /// A cache whose lists are used for `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        StoresCache {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The list read less than the TTL ago, or else what `read` answers (remembered when it is
    /// an answer, not an error).
    pub async fn get_or_read<E, F>(&self, read: F) -> Result<Known, E>
    where
        F: Future<Output = Result<Known, E>>,
    {
        if let Some(known) = self.fresh() {
            return Ok(known);
        }
        let known = read.await?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), known.clone()));
        }
        Ok(known)
    }

    fn fresh(&self) -> Option<Known> {
        let last = self.last.lock().ok()?;
        match &*last {
            Some((at, known)) if at.elapsed() < self.ttl => Some(known.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(id: &str) -> Known {
        Some(vec![StoreInfo {
            id: id.into(),
            default: true,
            read_only: false,
        }])
    }

    #[tokio::test]
    async fn a_list_is_read_once_per_ttl() {
        let cache = StoresCache::with_ttl(Duration::from_secs(3600));
        let first = cache.get_or_read(async { Ok::<_, ()>(list("a")) }).await;
        assert_eq!(first, Ok(list("a")));
        let cached = cache.get_or_read(async { Ok::<_, ()>(list("b")) }).await;
        assert_eq!(cached, Ok(list("a")), "read again within the TTL");

        let cache = StoresCache::with_ttl(Duration::from_millis(20));
        let first = cache.get_or_read(async { Ok::<_, ()>(list("a")) }).await;
        assert_eq!(first, Ok(list("a")));
        tokio::time::sleep(Duration::from_millis(25)).await;
        let again = cache.get_or_read(async { Ok::<_, ()>(list("b")) }).await;
        assert_eq!(again, Ok(list("b")), "not read again after the TTL");
    }

    #[tokio::test]
    async fn a_single_store_answer_is_remembered_and_an_error_is_not() {
        let cache = StoresCache::default();
        assert_eq!(
            cache.get_or_read(async { Err::<Known, _>(5) }).await,
            Err(5)
        );
        assert_eq!(
            cache.get_or_read(async { Ok::<_, u8>(None) }).await,
            Ok(None)
        );
        let cached = cache.get_or_read(async { Ok::<_, u8>(list("a")) }).await;
        assert_eq!(
            cached,
            Ok(None),
            "the 404 (single store) was not remembered"
        );
    }
}
