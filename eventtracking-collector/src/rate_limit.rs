//! Token buckets, one per write key and one per client address.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use eventtracking_core::sync::lock;

use crate::config::RateLimit;

/// At most this many buckets are kept per limiter; past it, buckets that
/// have refilled (idle clients) are forgotten first.
const MAX_BUCKETS: usize = 100_000;

/// Why a request was refused by a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not enough tokens now: try again after this long.
    RetryAfter(Duration),
    /// More events than the bucket ever holds.
    LargerThanBurst(u32),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key, all with the same rate and size.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    limit: RateLimit,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens from `key`'s bucket, or says when there will be enough.
    pub(crate) fn take(&self, key: &K, n: u32, now: Instant) -> Result<(), Refusal> {
        let burst = f64::from(self.limit.burst.get());
        if n > self.limit.burst.get() {
            return Err(Refusal::LargerThanBurst(self.limit.burst.get()));
        }
        let rate = self.limit.per_second;
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_BUCKETS {
                // Every bucket is in use: forget them all rather than grow
                // without bound (the limit restarts for everyone).
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        let wanted = f64::from(n);
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            let wait = (wanted - bucket.tokens) / rate;
            Err(Refusal::RetryAfter(Duration::from_secs_f64(
                wait.min(86_400.0),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn a_bucket_empties_and_refills() {
        let limit = RateLimit::new(2.0, NonZeroU32::new(4).unwrap()).unwrap();
        let limiter = Limiter::new(limit);
        let start = Instant::now();
        assert_eq!(limiter.take(&"a", 3, start), Ok(()));
        let Err(Refusal::RetryAfter(wait)) = limiter.take(&"a", 2, start) else {
            panic!("expected a refusal");
        };
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(limiter.take(&"b", 4, start), Ok(()), "buckets are per key");
        assert_eq!(
            limiter.take(&"a", 2, start + Duration::from_millis(500)),
            Ok(())
        );
        assert_eq!(
            limiter.take(&"a", 5, start),
            Err(Refusal::LargerThanBurst(4))
        );
    }
}
