//! Tests for source: the Stripe list client against a loopback stub. Retries and rate budgets
//! are tested in `source_retry`, with the shared helpers below.

use std::time::Duration;

use stripe_xdm::source::{ClientConfig, Page, SourceError, StripeClient, Window};
use stripe_xdm::{Resource, Secret};
use tokio::sync::mpsc;

use crate::support::stub::{paged_list, Reply, Stub};

pub(crate) const KEY: &str = "sk_test_51Hsecretsecretsecret9XyZ";

pub(crate) fn fast_config(base: &str, key: &str) -> ClientConfig {
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

pub(crate) fn client(stub: &Stub) -> StripeClient {
    StripeClient::new(fast_config(&stub.url(), KEY)).unwrap()
}

pub(crate) fn list_body(ids: &[&str], has_more: bool) -> String {
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "charge"}))
        .collect();
    serde_json::json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/charges"})
        .to_string()
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

pub(crate) fn assert_no_key(e: &SourceError) {
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
