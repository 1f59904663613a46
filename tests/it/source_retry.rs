//! Tests for source: retries (statuses, connection errors, `Retry-After`, `Stripe-Should-Retry`)
//! and rate budgets, against a loopback stub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stripe_xdm::source::{SourceError, StripeClient, Window};
use stripe_xdm::Resource;

use crate::support::stub::{Action, Reply, Stub};

use super::source::{assert_no_key, client, fast_config, list_body, KEY};

fn ok_page() -> Reply {
    Reply::json(200, list_body(&["ch_1", "ch_2"], false)).header("Request-Id", "req_ok")
}
#[tokio::test]
async fn each_retryable_status_recovers() {
    for status in [429u16, 409, 500, 502, 503, 504] {
        let stub = Stub::start().await;
        stub.push(
            Reply::stripe_error(status, "api_error", "x", "try again")
                .header("Request-Id", "req_bad"),
        );
        stub.push(ok_page());
        let c = client(&stub);
        let page = c
            .list_page(Resource::Charges, Window::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(page.len(), 2);
        assert_eq!(page.request_id.as_deref(), Some("req_ok"));
        let s = c.stats();
        assert_eq!((s.requests, s.retries), (2, 1), "{status}");
        assert_eq!(s.throttled, u64::from(status == 429), "{status}");
        assert_eq!(s.server_errors, u64::from(status >= 500), "{status}");
    }
}

#[tokio::test]
async fn connection_reset_recovers() {
    let stub = Stub::start().await;
    stub.push(Action::Reset);
    stub.push(Action::Reset);
    stub.push(ok_page());
    let c = client(&stub);
    let page = c
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(c.stats().retries, 2);
}

#[tokio::test]
async fn connection_refused_recovers_once_the_server_is_up() {
    let stub = Stub::start_after(Duration::from_millis(300), |_| ok_page().into()).await;
    let mut cfg = fast_config(&stub.url(), KEY);
    cfg.max_retries = 10;
    cfg.backoff_base = Duration::from_millis(40);
    cfg.backoff_max = Duration::from_millis(150);
    let c = StripeClient::new(cfg).unwrap();
    let page = c
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert!(c.stats().retries >= 1);
}

#[tokio::test]
async fn connection_refused_exhausts_retries_with_a_network_error() {
    let stub = Stub::start_after(Duration::from_secs(3600), |_| ok_page().into()).await;
    let c = client(&stub);
    let e = c
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap_err();
    match &e {
        SourceError::RetriesExhausted {
            attempts,
            last_status,
            ..
        } => {
            assert_eq!(*attempts, 4);
            assert_eq!(*last_status, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("GET /v1/charges"), "{e}");
    // Where the request went (a wrong port is the usual cause), without path or query.
    assert!(
        e.to_string().contains(&format!("(at {})", stub.url())),
        "{e}"
    );
    assert_no_key(&e);
    // A server that does not answer is an outage to retry later (exit 1), not a usage error.
    assert!(!stripe_xdm::pipeline::PipelineError::from(e).is_usage());
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let stub = Stub::start().await;
    stub.push(
        Reply::stripe_error(429, "invalid_request_error", "rate_limit", "slow down")
            .header("Retry-After", "1"),
    );
    stub.push(ok_page());
    let c = client(&stub);
    let t = Instant::now();
    c.list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap();
    let reqs = stub.requests();
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(990));
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn should_retry_false_is_not_retried_and_true_forces_a_retry() {
    let stub = Stub::start().await;
    stub.push(
        Reply::stripe_error(503, "api_error", "", "do not retry")
            .header("Stripe-Should-Retry", "false")
            .header("Request-Id", "req_nr"),
    );
    let c = client(&stub);
    let e = c
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SourceError::Stripe { status: 503, .. }),
        "{e:?}"
    );
    assert_eq!(stub.requests().len(), 1);
    assert_eq!(e.request_id(), Some("req_nr"));

    let stub = Stub::start().await;
    stub.push(
        Reply::stripe_error(400, "invalid_request_error", "lock_timeout", "retry me")
            .header("Stripe-Should-Retry", "true"),
    );
    stub.push(ok_page());
    let c = client(&stub);
    c.list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap();
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn retries_exhausted_names_status_endpoint_and_request_id() {
    let stub = Stub::with_handler(|_| {
        Reply::stripe_error(503, "api_error", "", "backend down")
            .header("Request-Id", "req_down")
            .into()
    })
    .await;
    let c = client(&stub);
    let e = c
        .list_page(Resource::Refunds, Window::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            SourceError::RetriesExhausted {
                attempts: 4,
                last_status: Some(503),
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    for part in [
        "GET /v1/refunds",
        "503",
        "req_down",
        "backend down",
        "4 attempts",
    ] {
        assert!(msg.contains(part), "{part} missing from {msg}");
    }
    assert_eq!(stub.requests().len(), 4);
    assert_eq!(c.stats().retries, 3);
    assert_eq!(c.stats().server_errors, 4);
    assert!(!e.is_auth());
}

/// Max requests in any window of `w` among sorted instants.
fn peak(times: &[Instant], w: Duration) -> usize {
    let (mut best, mut j) = (0, 0);
    for i in 0..times.len() {
        while times[i] - times[j] >= w {
            j += 1;
        }
        best = best.max(i - j + 1);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_budget_holds_under_concurrency() {
    let rate = 25.0;
    let stub = Stub::with_handler(|_| ok_page().into()).await;
    let mut cfg = fast_config(&stub.url(), KEY);
    cfg.requests_per_sec = Some(rate);
    cfg.endpoint_requests_per_sec = Some(1000.0);
    cfg.burst = 2;
    let c = StripeClient::new(cfg).unwrap();
    let run = Duration::from_millis(1600);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        let r = [Resource::Charges, Resource::Refunds, Resource::Customers][i % 3];
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < run {
                c.list_page(r, Window::default(), None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut times: Vec<Instant> = stub
        .requests()
        .iter()
        .map(|r| r.at)
        .filter(|t| *t - start < run)
        .collect();
    times.sort();
    let expected = rate * run.as_secs_f64() + 1.0;
    let got = times.len() as f64;
    assert!(got >= 0.95 * expected, "got {got}, expected ≈{expected}");
    assert!(got <= expected + 2.0, "got {got}, expected ≈{expected}");
    let p = peak(&times, Duration::from_secs(1));
    // One second's budget plus the burst, with a request of slack for timer jitter.
    assert!(p as f64 <= rate + 2.0 + 1.0, "{p} requests in one second");
    assert_eq!(c.stats().requests as usize, stub.requests().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_budget_applies_per_resource() {
    let stub = Stub::with_handler(|_| ok_page().into()).await;
    let mut cfg = fast_config(&stub.url(), KEY);
    cfg.requests_per_sec = Some(1000.0);
    cfg.endpoint_requests_per_sec = Some(20.0);
    cfg.burst = 1;
    let c = Arc::new(StripeClient::new(cfg).unwrap());
    let run = Duration::from_millis(1000);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = Arc::clone(&c);
        let r = [Resource::Charges, Resource::Prices][i % 2];
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < run {
                c.list_page(r, Window::default(), None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for path in ["/v1/charges", "/v1/prices"] {
        let n = stub
            .requests()
            .iter()
            .filter(|r| r.path == path && r.at - start < run)
            .count() as f64;
        // 20/s for 1 s, first slot at t=0.
        assert!((19.0..=22.0).contains(&n), "{path}: {n}");
    }
}
