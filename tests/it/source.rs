//! Tests for source: the Stripe list client against a loopback stub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stripe_xdm::source::{ClientConfig, Page, SourceError, StripeClient, Window};
use stripe_xdm::{Resource, Secret};
use tokio::sync::mpsc;

use crate::support::stub::{paged_list, Action, Reply, Stub};

const KEY: &str = "sk_test_51Hsecretsecretsecret9XyZ";

fn fast_config(base: &str, key: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(base, Secret::new(key));
    cfg.max_retries = 3;
    cfg.backoff_base = Duration::from_millis(5);
    cfg.backoff_max = Duration::from_millis(20);
    cfg.timeout = Duration::from_secs(5);
    cfg.requests_per_sec = Some(10_000.0);
    cfg.endpoint_requests_per_sec = Some(10_000.0);
    cfg.burst = 50;
    cfg
}

fn client(stub: &Stub) -> StripeClient {
    StripeClient::new(fast_config(&stub.url(), KEY)).unwrap()
}

fn list_body(ids: &[&str], has_more: bool) -> String {
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "charge"}))
        .collect();
    serde_json::json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/charges"})
        .to_string()
}

fn ok_page() -> Reply {
    Reply::json(200, list_body(&["ch_1", "ch_2"], false)).header("Request-Id", "req_ok")
}

async fn collect_all(c: &StripeClient, r: Resource, w: Window) -> Result<Vec<Page>, SourceError> {
    let (tx, mut rx) = mpsc::channel(2);
    let c2 = c.clone();
    let task = tokio::spawn(async move { c2.fetch_all(r, w, tx).await });
    let mut pages = Vec::new();
    while let Some(p) = rx.recv().await {
        pages.push(p);
    }
    task.await.unwrap().map(|()| pages)
}

fn assert_no_key(e: &SourceError) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(KEY), "key leaked: {shown}");
    assert!(!shown.contains("51Hsecretsecret"), "key leaked: {shown}");
}

#[tokio::test]
async fn pagination_follows_the_last_id_until_has_more_is_false() {
    let stub = Stub::with_handler(paged_list("ch_", 250)).await;
    let c = client(&stub);
    let pages = collect_all(&c, Resource::Charges, Window::default())
        .await
        .unwrap();
    assert_eq!(
        pages.iter().map(Page::len).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.iter().map(|r| stripe_xdm::source::record_id(r).unwrap()))
        .collect();
    let expected: Vec<String> = (0..250).rev().map(|i| format!("ch_{i:04}")).collect();
    assert_eq!(ids, expected);

    let reqs = stub.requests();
    let cursors: Vec<Option<&str>> = reqs.iter().map(|r| r.param("starting_after")).collect();
    assert_eq!(cursors, [None, Some("ch_0150"), Some("ch_0050")]);
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/v1/charges");
        assert_eq!(r.param("limit"), Some("100"));
        assert_eq!(r.param("created[gte]"), None);
    }
    assert_eq!(pages[1].starting_after.as_deref(), Some("ch_0150"));
    assert_eq!(pages[1].next_cursor.as_deref(), Some("ch_0050"));
    assert_eq!(pages[2].request_id.as_deref(), Some("req_stub2"));
    assert!(!pages[2].has_more);
    let s = c.stats();
    assert_eq!((s.requests, s.pages, s.records, s.retries), (3, 3, 250, 0));
    assert!(s.bytes_in > 0);
}

#[tokio::test]
async fn window_is_sent_as_created_gte_and_lt() {
    let stub = Stub::with_handler(paged_list("ch_", 3)).await;
    let c = client(&stub);
    let w = Window {
        gte: Some(1_700_000_000),
        lt: Some(1_702_592_000),
    };
    let page = c
        .list_page(Resource::Charges, w, Some("ch_0002"))
        .await
        .unwrap();
    assert_eq!(page.window, w);
    let r = &stub.requests()[0];
    assert_eq!(r.param("created[gte]"), Some("1700000000"));
    assert_eq!(r.param("created[lt]"), Some("1702592000"));
    assert_eq!(r.param("starting_after"), Some("ch_0002"));
    assert_eq!(r.param("status"), None);
}

#[tokio::test]
async fn subscriptions_are_listed_with_status_all() {
    let stub = Stub::with_handler(paged_list("sub_", 3)).await;
    let c = client(&stub);
    c.list_page(Resource::Subscriptions, Window::default(), None)
        .await
        .unwrap();
    let r = &stub.requests()[0];
    assert_eq!(r.path, "/v1/subscriptions");
    assert_eq!(r.param("status"), Some("all"));
}

#[tokio::test]
async fn headers_carry_bearer_version_account_and_user_agent() {
    let stub = Stub::with_handler(paged_list("ch_", 1)).await;
    let mut cfg = fast_config(&format!("{}/", stub.url()), KEY);
    cfg.stripe_account = Some("acct_1Abc".into());
    let c = StripeClient::new(cfg).unwrap();
    c.list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap();
    let plain = client(&stub);
    plain
        .list_page(Resource::Refunds, Window::default(), None)
        .await
        .unwrap();
    let reqs = stub.requests();
    let r = &reqs[0];
    assert_eq!(
        r.path, "/v1/charges",
        "trailing slash in base URL is tolerated"
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("stripe-version"), Some("2023-08-16"));
    assert_eq!(r.header("stripe-account"), Some("acct_1Abc"));
    assert!(r.header("user-agent").unwrap().starts_with("stripe-xdm/"));
    assert_eq!(reqs[1].header("stripe-account"), None);
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
    assert_no_key(&e);
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

#[tokio::test]
async fn non_retryable_statuses_fail_once_with_a_full_message() {
    let cases = [
        (
            400,
            "invalid_request_error",
            "parameter_invalid_integer",
            "Invalid integer: abc",
            None,
        ),
        (
            401,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided: sk_test_****XyZ",
            Some("check the API key"),
        ),
        (
            403,
            "invalid_request_error",
            "secret_key_required",
            "The provided key does not have access",
            Some("lacks permission"),
        ),
        (
            404,
            "invalid_request_error",
            "resource_missing",
            "Unrecognized request URL",
            Some("base URL"),
        ),
    ];
    for (status, ty, code, message, hint) in cases {
        let stub = Stub::start().await;
        stub.push(Reply::stripe_error(status, ty, code, message).header("Request-Id", "req_e1"));
        let c = client(&stub);
        let e = c
            .list_page(Resource::Charges, Window::default(), None)
            .await
            .unwrap_err();
        assert_eq!(stub.requests().len(), 1, "{status} must not be retried");
        assert_eq!(e.status(), Some(status));
        let msg = e.to_string();
        for part in [
            "GET /v1/charges",
            ty,
            code,
            message,
            "req_e1",
            &status.to_string(),
        ] {
            assert!(msg.contains(part), "{status}: '{part}' missing from {msg}");
        }
        if let Some(h) = hint {
            assert!(msg.contains(h), "{status}: hint '{h}' missing from {msg}");
        }
        assert_eq!(e.is_auth(), matches!(status, 401 | 403));
        assert_no_key(&e);
    }
}

#[tokio::test]
async fn restricted_key_403_says_read_permission() {
    let key = "rk_live_51Hsecretsecretsecret9XyZ";
    let stub = Stub::start().await;
    stub.push(Reply::stripe_error(
        403,
        "invalid_request_error",
        "",
        "The provided key 'rk_live_****9XyZ' does not have the required permissions",
    ));
    let c = StripeClient::new(fast_config(&stub.url(), key)).unwrap();
    let e = c
        .list_page(Resource::BalanceTransactions, Window::default(), None)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("restricted key"), "{msg}");
    assert!(msg.contains("read permission"), "{msg}");
    assert!(msg.contains("GET /v1/balance_transactions"), "{msg}");
    assert!(!format!("{e} {e:?}").contains(key));
}

#[tokio::test]
async fn a_key_echoed_by_the_server_is_masked() {
    let stub = Stub::start().await;
    stub.push(Reply::stripe_error(
        401,
        "invalid_request_error",
        "api_key_invalid",
        &format!("Invalid API Key provided: {KEY}"),
    ));
    let e = client(&stub)
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap_err();
    assert_no_key(&e);
    assert!(e.to_string().contains("sk_test_…9XyZ"), "{e}");
}

#[tokio::test]
async fn non_json_error_body_is_still_clear() {
    let html = format!("<html><body>{}</body></html>", "Bad gateway ".repeat(50));
    let stub = Stub::start().await;
    stub.push(Reply {
        status: 418,
        headers: vec![("content-type".into(), "text/html".into())],
        body: html.clone().into_bytes(),
        delay: Duration::ZERO,
    });
    let e = client(&stub)
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap_err();
    let SourceError::Stripe {
        status, message, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*status, 418);
    assert!(message.contains("non-JSON"), "{message}");
    assert!(message.contains("<html><body>Bad gateway"), "{message}");
    assert!(message.chars().count() <= 230, "{message}");
}

#[tokio::test]
async fn a_broken_envelope_is_an_envelope_error_with_request_id() {
    let stub = Stub::start().await;
    stub.push(
        Reply::json(200, r#"{"object":"list","data":[{"id":"ch_1"}"#)
            .header("Request-Id", "req_trunc"),
    );
    let e = client(&stub)
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Envelope { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("GET /v1/charges") && msg.contains("req_trunc"),
        "{msg}"
    );
}

#[tokio::test]
async fn broken_records_still_page() {
    let body = r#"{"object":"list","data":[{"id":"ch_1","amount": ,"x":usd},{"id":"ch_2","amount":1}],"has_more":false}"#;
    let stub = Stub::start().await;
    stub.push(Reply::json(200, body));
    let page = client(&stub)
        .list_page(Resource::Charges, Window::default(), None)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page.record(0), br#"{"id":"ch_1","amount": ,"x":usd}"#);
    assert_eq!(page.next_cursor.as_deref(), Some("ch_2"));
}

#[tokio::test]
async fn stuck_cursors_are_detected() {
    // has_more with no records.
    let stub = Stub::with_handler(|_| Reply::json(200, list_body(&[], true)).into()).await;
    let e = client(&stub)
        .list_page(
            Resource::Charges,
            Window {
                gte: Some(1),
                lt: Some(2),
            },
            Some("ch_9"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::StuckCursor { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("GET /v1/charges") && msg.contains("ch_9") && msg.contains("created [1, 2)"),
        "{msg}"
    );

    // The last id equals the cursor.
    let stub = Stub::with_handler(|_| Reply::json(200, list_body(&["ch_5"], true)).into()).await;
    let e = client(&stub)
        .list_page(Resource::Charges, Window::default(), Some("ch_5"))
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::StuckCursor { .. }), "{e:?}");

    // A cycle across pages: a → b → a.
    let stub = Stub::with_handler(|r| {
        let next = if r.param("starting_after") == Some("ch_a") {
            "ch_b"
        } else {
            "ch_a"
        };
        Reply::json(200, list_body(&[next], true)).into()
    })
    .await;
    let c = client(&stub);
    let e = collect_all(&c, Resource::Charges, Window::default())
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::StuckCursor { .. }), "{e:?}");
    assert!(stub.requests().len() <= 4);
}

#[tokio::test]
async fn fetch_all_stops_quietly_when_the_receiver_is_dropped() {
    let stub = Stub::with_handler(paged_list("ch_", 10_000)).await;
    let c = client(&stub);
    let (tx, mut rx) = mpsc::channel(1);
    let c2 = c.clone();
    let task =
        tokio::spawn(async move { c2.fetch_all(Resource::Charges, Window::default(), tx).await });
    let first = rx.recv().await.unwrap();
    assert_eq!(first.len(), 100);
    drop(rx);
    task.await.unwrap().unwrap();
    // Backpressure: at most the received page, one buffered and one in flight.
    assert!(stub.requests().len() <= 4, "{}", stub.requests().len());
}

#[tokio::test]
async fn get_account_returns_the_object() {
    let stub = Stub::with_handler(|r| {
        if r.path == "/v1/account" {
            Reply::json(200, r#"{"id":"acct_1","object":"account"}"#).into()
        } else {
            Reply::json(404, "{}").into()
        }
    })
    .await;
    let v = client(&stub).get_account().await.unwrap();
    assert_eq!(v["id"], "acct_1");
}

#[test]
fn bad_configurations_are_refused() {
    let err = |cfg: ClientConfig| StripeClient::new(cfg).unwrap_err();
    let e = err(ClientConfig::new(
        "https://api.stripe.com",
        Secret::new("pk_test_51Habcdefghijkl"),
    ));
    let msg = e.to_string();
    assert!(msg.contains("publishable"), "{msg}");
    assert!(!msg.contains("pk_test_51Habcdefghijkl"), "{msg}");
    assert!(e.is_auth());
    assert!(matches!(
        err(ClientConfig::new("not a url", Secret::new(KEY))),
        SourceError::Config(_)
    ));
    assert!(matches!(
        err(ClientConfig::new("ftp://x", Secret::new(KEY))),
        SourceError::Config(_)
    ));
    assert!(matches!(
        err(ClientConfig::new("https://x", Secret::new(""))),
        SourceError::Config(_)
    ));
    let mut cfg = ClientConfig::new("https://x", Secret::new(KEY));
    cfg.page_limit = 101;
    assert!(matches!(err(cfg), SourceError::Config(_)));
    let mut cfg = ClientConfig::new("https://x", Secret::new(KEY));
    cfg.requests_per_sec = Some(0.0);
    assert!(matches!(err(cfg), SourceError::Config(_)));
    let cfg = ClientConfig::new("https://x", Secret::new(KEY));
    assert_eq!(cfg.effective_requests_per_sec(), 25.0);
    let cfg = ClientConfig::new("https://x", Secret::new("sk_live_51Habcdefghijkl"));
    assert_eq!(cfg.effective_requests_per_sec(), 100.0);
    assert_eq!(cfg.effective_endpoint_requests_per_sec(), 25.0);
    assert!(!format!("{cfg:?}").contains("sk_live_51Habcdefghijkl"));
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
