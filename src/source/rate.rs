//! Async request-rate limiters: one global budget and one per endpoint, shared by every clone
//! of the client and every task, and by every client of one Stripe key in the process
//! ([`RateBudget::shared`]).
//!
//! The limiter is a GCRA (a token bucket expressed as a "theoretical arrival time"): each
//! [`RateLimiter::acquire`] reserves the next free slot under a short mutex and then sleeps until
//! that slot. Slots are handed out in call order, so waiters are served first come, first served,
//! and slots are absolute instants, so timer overshoot never accumulates into drift. After an idle
//! period up to `burst` requests go out at once; beyond that, requests are spaced `1/per_sec`
//! apart. A caller dropped while waiting forfeits its slot (the budget errs on the safe side).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// The slowest request budget accepted, in requests per second: one request every 100 s.
pub const MIN_RATE: f64 = 0.01;

/// The largest request budget a user gives (`--rate`, `--endpoint-rate`): far above any limit
/// Stripe grants, high enough for the simulator (a larger number is a typo: `1e308` was stored
/// with an account). A program may ask a client for more, as "no limit".
pub const MAX_RATE: f64 = 100_000.0;

/// Checks a request budget in requests per second: a finite number of at least [`MIN_RATE`].
pub fn check_rate(per_sec: f64) -> Result<f64, String> {
    within_rate(per_sec, f64::INFINITY)
}

/// Checks a request budget a user gives: [`check_rate`], and at most [`MAX_RATE`].
pub fn check_rate_flag(per_sec: f64) -> Result<f64, String> {
    within_rate(per_sec, MAX_RATE)
}

fn within_rate(per_sec: f64, max: f64) -> Result<f64, String> {
    if per_sec.is_finite() && per_sec >= MIN_RATE && per_sec <= max {
        Ok(per_sec)
    } else {
        Err(format!(
            "a request budget is in requests per second, a number from {MIN_RATE} (one request every 100 s) to {MAX_RATE}; got {per_sec:?}"
        ))
    }
}

/// A shared async GCRA limiter: `per_sec` requests per second, bursts of at most `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    /// How far ahead of "now" the theoretical arrival time may run before callers must wait.
    tolerance: Duration,
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `per_sec` requests per second with bursts of up to `burst` requests
    /// (`burst` 0 is treated as 1). `per_sec` must be positive and finite; non-positive or
    /// non-finite values are clamped to one request per hour / unlimited respectively.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        let interval = if per_sec.is_finite() && per_sec > 0.0 {
            Duration::from_secs_f64((1.0 / per_sec).min(3600.0))
        } else if per_sec.is_infinite() && per_sec > 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        };
        let tolerance = interval * burst.max(1).saturating_sub(1);
        RateLimiter {
            interval,
            tolerance,
            tat: Mutex::new(None),
        }
    }

    /// The spacing between requests once the burst is used up.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Reserves the next slot and returns the instant at which it may be used.
    fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let t = match *tat {
            Some(t) if t > now => t,
            _ => now,
        };
        *tat = Some(t + self.interval);
        // Allowed once `t - tolerance` has passed.
        t.checked_sub(self.tolerance).map_or(now, |at| at.max(now))
    }

    /// Waits until one request may be sent under this budget.
    pub async fn acquire(&self) {
        let at = self.reserve();
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// One [`RateLimiter`] per key (an endpoint such as `GET /v1/charges`), created on first use,
/// all with the same rate and burst.
#[derive(Debug)]
pub struct KeyedRateLimiter {
    per_sec: f64,
    burst: u32,
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl KeyedRateLimiter {
    /// Per-key budgets of `per_sec` requests per second and bursts of `burst`.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        KeyedRateLimiter {
            per_sec,
            burst,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until one request for `key` may be sent under that key's budget.
    pub async fn acquire(&self, key: &str) {
        let limiter = {
            let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(key) {
                Some(l) => Arc::clone(l),
                None => {
                    let l = Arc::new(RateLimiter::new(self.per_sec, self.burst));
                    map.insert(key.to_string(), Arc::clone(&l));
                    l
                }
            }
        };
        limiter.acquire().await;
    }
}

/// The two budgets every request attempt passes: its endpoint's, then the global one.
///
/// The endpoint budget is awaited first so that a request held back by its endpoint does not sit
/// on a global slot that another endpoint could have used.
#[derive(Debug)]
pub struct RateBudget {
    global: RateLimiter,
    endpoints: KeyedRateLimiter,
}

impl RateBudget {
    /// A global budget of `global_per_sec` and per-endpoint budgets of `endpoint_per_sec`, each
    /// with bursts of `burst`.
    pub fn new(global_per_sec: f64, endpoint_per_sec: f64, burst: u32) -> Self {
        RateBudget {
            global: RateLimiter::new(global_per_sec, burst),
            endpoints: KeyedRateLimiter::new(endpoint_per_sec, burst),
        }
    }

    /// Waits until a request to `endpoint` fits both budgets.
    pub async fn acquire(&self, endpoint: &str) {
        self.endpoints.acquire(endpoint).await;
        self.global.acquire().await;
    }

    /// The budget every client of this process with the same `key` (a Stripe key and API
    /// origin, hashed) and the same rates shares: Stripe limits requests per account, so runs
    /// of several dataflows on one key (as `serve` makes them) take turns in one budget instead
    /// of each spending Stripe's whole limit. Dropped with its last client.
    pub fn shared(key: &str, global_per_sec: f64, endpoint_per_sec: f64, burst: u32) -> Arc<Self> {
        type Registry = Mutex<HashMap<(u64, u64, u64, u32), Weak<RateBudget>>>;
        static BUDGETS: OnceLock<Registry> = OnceLock::new();
        let id = (
            // Hashed: the registry never holds a key in plain text.
            crate::fingerprint(key.bytes()),
            global_per_sec.to_bits(),
            endpoint_per_sec.to_bits(),
            burst,
        );
        let mut map = BUDGETS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(b) = map.get(&id).and_then(Weak::upgrade) {
            return b;
        }
        let b = Arc::new(RateBudget::new(global_per_sec, endpoint_per_sec, burst));
        map.insert(id, Arc::downgrade(&b));
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `tasks` tasks that each acquire in a loop for `run`; returns the grant instants.
    async fn saturate(limiter: Arc<RateLimiter>, tasks: usize, run: Duration) -> Vec<Instant> {
        let start = Instant::now();
        let grants = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (l, g) = (Arc::clone(&limiter), Arc::clone(&grants));
            handles.push(tokio::spawn(async move {
                loop {
                    l.acquire().await;
                    let now = Instant::now();
                    if now - start >= run {
                        break;
                    }
                    g.lock().unwrap().push(now);
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let mut v = grants.lock().unwrap().clone();
        v.sort();
        v
    }

    fn max_in_any_window(grants: &[Instant], window: Duration) -> usize {
        let mut best = 0;
        let mut j = 0;
        for i in 0..grants.len() {
            while grants[i] - grants[j] >= window {
                j += 1;
            }
            best = best.max(i - j + 1);
        }
        best
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturated_rate_is_close_to_budget_and_never_above() {
        let rate = 50.0;
        let burst = 3;
        let run = Duration::from_millis(1200);
        let grants = saturate(Arc::new(RateLimiter::new(rate, burst)), 8, run).await;
        let expected = rate * run.as_secs_f64() + f64::from(burst) - 1.0;
        let got = grants.len() as f64;
        assert!(got >= 0.95 * expected, "got {got}, expected ≈{expected}");
        assert!(got <= expected + 1.0, "got {got}, expected ≈{expected}");
        let peak = max_in_any_window(&grants, Duration::from_secs(1));
        assert!(
            peak as f64 <= rate + f64::from(burst),
            "{peak} grants in one second"
        );
    }

    #[tokio::test]
    async fn burst_goes_out_at_once_then_spacing_applies() {
        let l = RateLimiter::new(20.0, 4);
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(30));
        for _ in 0..4 {
            l.acquire().await;
        }
        // 4 more at 50 ms spacing: ≥ 200 ms minus the first slot's slack.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn keyed_budgets_are_independent() {
        let k = Arc::new(KeyedRateLimiter::new(10.0, 1));
        let start = Instant::now();
        // Two keys, three requests each: each key needs 200 ms, in parallel.
        let a = {
            let k = Arc::clone(&k);
            tokio::spawn(async move {
                for _ in 0..3 {
                    k.acquire("GET /v1/charges").await;
                }
            })
        };
        for _ in 0..3 {
            k.acquire("GET /v1/refunds").await;
        }
        a.await.unwrap();
        let el = start.elapsed();
        assert!(el >= Duration::from_millis(190), "{el:?}");
        assert!(el < Duration::from_millis(380), "{el:?}");
    }

    #[tokio::test]
    async fn degenerate_rates_do_not_panic() {
        assert_eq!(
            RateLimiter::new(0.0, 1).interval(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            RateLimiter::new(-1.0, 1).interval(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            RateLimiter::new(f64::NAN, 1).interval(),
            Duration::from_secs(3600)
        );
        let unlimited = RateLimiter::new(f64::INFINITY, 0);
        assert_eq!(unlimited.interval(), Duration::ZERO);
        unlimited.acquire().await;
    }
}
