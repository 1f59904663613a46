//! The retry policy: which failures are retried, and how long to wait before the next attempt.
//!
//! Retried: connection errors and timeouts, 409, 429 and 5xx, each with exponential backoff
//! `min(base·2^(n-1), max)` jittered to 50–100 % and never below `base`. Stripe's
//! `Stripe-Should-Retry` header overrides the status (`false` never retries, `true` always does,
//! even a 4xx), and a `Retry-After` header (seconds) makes the wait at least that long. 400, 401,
//! 403, 404 and every other 4xx are final.

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` honoured; a server asking for more gets this much.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Bounded, jittered exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// The first backoff, and the floor of every backoff.
    pub base: Duration,
    /// The cap of the exponential backoff (before `Retry-After`).
    pub max: Duration,
}

/// Whether a response with this status (and optional `Stripe-Should-Retry` value) is retried.
///
/// `should_retry` is the header's value: `Some(true)` or `Some(false)` override the status.
pub fn status_is_retryable(status: u16, should_retry: Option<bool>) -> bool {
    match should_retry {
        Some(v) => v,
        None => matches!(status, 409 | 429 | 500..=599),
    }
}

/// Parses a `Stripe-Should-Retry` header value (`true` / `false`, case-insensitive).
pub fn parse_should_retry(value: &str) -> Option<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Parses a `Retry-After` header given in (possibly fractional) seconds. HTTP dates are ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

impl RetryPolicy {
    /// The un-jittered backoff before retry number `retry` (1-based): `min(base·2^(retry-1), max)`,
    /// never below `base`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let d = self.base.saturating_mul(1u32 << exp);
        d.min(self.max).max(self.base)
    }

    /// The jittered backoff before retry number `retry` (1-based): uniformly 50–100 % of
    /// [`RetryPolicy::ceiling`], never below `base`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceil = self.ceiling(retry);
        let factor = rand::rng().random_range(0.5..=1.0);
        ceil.mul_f64(factor).max(self.base)
    }

    /// The wait before retry number `retry`: the backoff, or `retry_after` if that is longer.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let b = self.backoff(retry);
        retry_after.map_or(b, |ra| ra.max(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_retries: 8,
        base: Duration::from_millis(500),
        max: Duration::from_secs(20),
    };

    #[test]
    fn retryable_statuses() {
        for s in [409, 429, 500, 502, 503, 504, 599] {
            assert!(status_is_retryable(s, None), "{s}");
        }
        for s in [400, 401, 402, 403, 404, 424] {
            assert!(!status_is_retryable(s, None), "{s}");
        }
        assert!(!status_is_retryable(503, Some(false)));
        assert!(status_is_retryable(400, Some(true)));
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_should_retry("true"), Some(true));
        assert_eq!(parse_should_retry(" FALSE "), Some(false));
        assert_eq!(parse_should_retry("maybe"), None);
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("99999"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn exponential_capped_and_floored() {
        let ceilings: Vec<u64> = (1..=8).map(|n| P.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
        assert_eq!(P.ceiling(0), P.base);
        assert_eq!(P.ceiling(u32::MAX), P.max);
        for n in 1..=10 {
            for _ in 0..50 {
                let d = P.backoff(n);
                assert!(d >= P.base, "{d:?} below base");
                assert!(
                    d >= P.ceiling(n) / 2 && d <= P.ceiling(n),
                    "{d:?} for retry {n}"
                );
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let d = P.delay(1, Some(Duration::from_secs(3)));
        assert_eq!(d, Duration::from_secs(3));
        let d = P.delay(6, Some(Duration::from_millis(1)));
        assert!(d >= Duration::from_secs(8));
    }
}
