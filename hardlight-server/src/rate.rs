//! A per-connection call rate limit: a token bucket refilled at `per_second`, holding at
//! most `burst` tokens.

use std::time::Instant;

use crate::limits::RateLimit;

/// One connection's bucket.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            refilled: Instant::now(),
        }
    }

    /// The rate it enforces.
    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token for one call at `now`; `false` when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        let capacity = f64::from(self.limit.burst.max(1));
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_second)).min(capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit {
            per_second: 10,
            burst: 3,
        });
        bucket.refilled = start;
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
        // a long pause refills only up to the burst
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }
}
