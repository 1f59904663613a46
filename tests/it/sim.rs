//! The built-in Stripe simulator over loopback HTTP: list semantics, errors, auth,
//! determinism, corrupt records and injected faults.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use stripe_xdm::sim::{
    Corruption, Faults, ListParams, ScriptedFault, SimConfig, SimHandle, Simulator, SIM_KEY,
};
use stripe_xdm::Resource;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn small() -> SimConfig {
    SimConfig::default().with_counts(120).with_per_second(4)
}

async fn start(config: SimConfig) -> SimHandle {
    Simulator::new(config)
        .start()
        .await
        .expect("simulator starts")
}

/// GET with the default key; returns status, headers and body.
async fn get(h: &SimHandle, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    get_with(h, path, Some(SIM_KEY)).await
}

async fn get_with(
    h: &SimHandle,
    path: &str,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client().get(format!("{}{path}", h.base_url()));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON body")
}

/// Pages through `path` (which already has its query) with `starting_after`.
async fn walk(h: &SimHandle, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(id) => format!("{path}&starting_after={id}"),
            None => path.to_string(),
        };
        let (status, _, body) = get(h, &url).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page = json(&body);
        assert_eq!(page["object"], "list");
        let data = page["data"].as_array().expect("data").clone();
        after = data
            .last()
            .map(|o| o["id"].as_str().expect("id").to_string());
        out.extend(data);
        if page["has_more"] == false {
            return out;
        }
    }
}

fn ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn pagination_returns_every_id_once_newest_first() {
    let h = start(small().with_count(Resource::Charges, 250)).await;
    let got = walk(&h, "/v1/charges?limit=37").await;
    let sim = h.simulator();
    assert_eq!(ids(&got), sim.ids(Resource::Charges, None, None));
    assert_eq!(got.len(), 250);
    assert_eq!(ids(&got).into_iter().collect::<HashSet<_>>().len(), 250);
    let created: Vec<i64> = got.iter().map(|o| o["created"].as_i64().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(
        created.windows(2).any(|w| w[0] == w[1]),
        "seconds are shared"
    );

    // Backwards from the oldest object with ending_before: same objects, pages newest first.
    let oldest = got.last().unwrap()["id"].as_str().unwrap().to_string();
    let mut before = oldest.clone();
    let mut back = vec![oldest];
    loop {
        let (_, _, body) = get(&h, &format!("/v1/charges?limit=50&ending_before={before}")).await;
        let page = json(&body);
        let data = ids(page["data"].as_array().unwrap());
        if data.is_empty() {
            break;
        }
        before = data[0].clone();
        back.extend(data.into_iter().rev());
        if page["has_more"] == false {
            break;
        }
    }
    back.reverse();
    assert_eq!(back, ids(&got));
    h.shutdown().await;
}

#[tokio::test]
async fn created_filters_select_windows() {
    let h = start(small().with_count(Resource::Customers, 300)).await;
    let sim = h.simulator();
    let (gte, lt) = (
        sim.created(Resource::Customers, 40),
        sim.created(Resource::Customers, 200),
    );
    let want = sim.ids(Resource::Customers, Some(gte), Some(lt));
    assert_eq!(
        want.len() as u64,
        sim.count(Resource::Customers, Some(gte), Some(lt))
    );
    assert!(want.len() >= 150);

    let got = walk(
        &h,
        &format!("/v1/customers?limit=100&created[gte]={gte}&created[lt]={lt}"),
    )
    .await;
    assert_eq!(ids(&got), want);
    assert!(got
        .iter()
        .all(|o| (gte..lt).contains(&o["created"].as_i64().unwrap())));

    // gt/lte and URL-encoded brackets mean the same window.
    let got = walk(
        &h,
        &format!(
            "/v1/customers?limit=100&created%5Bgt%5D={}&created%5Blte%5D={}",
            gte - 1,
            lt - 1
        ),
    )
    .await;
    assert_eq!(ids(&got), want);

    // An exact second.
    let t = sim.created(Resource::Customers, 41);
    let got = walk(&h, &format!("/v1/customers?created={t}")).await;
    assert_eq!(
        ids(&got),
        sim.ids(Resource::Customers, Some(t), Some(t + 1))
    );
    assert!(!got.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn invalid_parameters_get_stripes_400() {
    let h = start(small()).await;
    for (query, message, param) in [
        (
            "limit=0",
            "This value must be greater than or equal to 1.",
            "limit",
        ),
        (
            "limit=101",
            "This value must be less than or equal to 100.",
            "limit",
        ),
        ("limit=ten", "Invalid integer: ten", "limit"),
        ("created[gte]=soon", "Invalid integer: soon", "created[gte]"),
        ("colour=red", "Received unknown parameter: colour", "colour"),
    ] {
        let (status, headers, body) = get(&h, &format!("/v1/charges?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let err = &json(&body)["error"];
        assert_eq!(err["type"], "invalid_request_error");
        assert_eq!(err["message"], message);
        assert_eq!(err["param"], param);
        assert!(headers["request-id"].to_str().unwrap().starts_with("req_"));
    }
    let (status, _, body) = get(&h, "/v1/charges?starting_after=ch_x").await;
    assert_eq!(status, 400);
    let err = &json(&body)["error"];
    assert_eq!(err["code"], "resource_missing");
    assert_eq!(err["message"], "No such charge: 'ch_x'");
    assert_eq!(err["param"], "starting_after");
    // A customer id is no charge cursor.
    let cus = h.simulator().id(Resource::Customers, 3);
    let (status, _, _) = get(&h, &format!("/v1/charges?ending_before={cus}")).await;
    assert_eq!(status, 400);
    h.shutdown().await;
}

#[tokio::test]
async fn auth_errors_and_headers_look_like_stripe() {
    let h = start(small()).await;
    let (status, headers, body) = get_with(&h, "/v1/charges", None).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("request-id"));
    let msg = json(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.starts_with("You did not provide an API key."), "{msg}");

    let (status, _, body) = get_with(&h, "/v1/charges", Some("sk_test_wrongkey4242")).await;
    assert_eq!(status, 401);
    let err = &json(&body)["error"];
    assert_eq!(err["message"], "Invalid API Key provided: sk_test_****4242");
    assert_eq!(err["type"], "invalid_request_error");

    // HTTP Basic with the key as username, and echoed headers.
    let resp = client()
        .get(format!("{}/v1/account", h.base_url()))
        .basic_auth(SIM_KEY, Some(""))
        .header("Stripe-Version", "2024-06-20")
        .header("Stripe-Account", "acct_123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["stripe-version"], "2024-06-20");
    assert_eq!(resp.headers()["stripe-account"], "acct_123");
    let account: Value = resp.json().await.unwrap();
    assert_eq!(account["object"], "account");

    let (status, _, body) = get(&h, "/v1/foo").await;
    assert_eq!(status, 404);
    let msg = json(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("Unrecognized request URL (GET: /v1/foo)."),
        "{msg}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn restricted_keys_read_only_their_resources() {
    let key = "rk_test_restricted_abcd";
    let h = start(small().with_restricted_key(key, &[Resource::Charges])).await;
    let (status, _, _) = get_with(&h, "/v1/charges?limit=3", Some(key)).await;
    assert_eq!(status, 200);
    let (status, _, body) = get_with(&h, "/v1/customers", Some(key)).await;
    assert_eq!(status, 403);
    let err = &json(&body)["error"];
    assert_eq!(err["type"], "invalid_request_error");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.starts_with("The provided key 'rk_test_****abcd' does not have the required permissions for this endpoint"),
        "{msg}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn subscriptions_omit_canceled_unless_status_all() {
    let h = start(small().with_count(Resource::Subscriptions, 200)).await;
    let sim = h.simulator();
    let all = walk(&h, "/v1/subscriptions?limit=100&status=all").await;
    assert_eq!(ids(&all), sim.ids(Resource::Subscriptions, None, None));
    let canceled = all.iter().filter(|s| s["status"] == "canceled").count();
    assert!(canceled > 10, "some subscriptions are canceled");

    let default = walk(&h, "/v1/subscriptions?limit=100").await;
    assert_eq!(default.len(), all.len() - canceled);
    assert!(default.iter().all(|s| s["status"] != "canceled"));

    let only = walk(&h, "/v1/subscriptions?limit=100&status=canceled").await;
    assert_eq!(only.len(), canceled);
    let expected: Vec<String> = (0..200)
        .rev()
        .filter(|&i| sim.subscription_status(i) == "canceled")
        .map(|i| sim.id(Resource::Subscriptions, i))
        .collect();
    assert_eq!(ids(&only), expected);

    let (status, _, _) = get(&h, "/v1/subscriptions?status=sleeping").await;
    assert_eq!(status, 400);
    h.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_bytes() {
    let a = start(small()).await;
    let b = start(small()).await;
    for r in Resource::ALL {
        let path = format!(
            "/v1/{}?limit=25{}",
            r.path(),
            if r == Resource::Subscriptions {
                "&status=all"
            } else {
                ""
            }
        );
        let (_, _, x) = get(&a, &path).await;
        let (_, _, y) = get(&b, &path).await;
        assert_eq!(x, y, "{r}");
        let page = json(&x);
        assert_eq!(page["data"].as_array().unwrap().len(), 25);
        assert_eq!(page["url"], format!("/v1/{}", r.path()));
        assert_eq!(page["data"][0]["object"], r.object_name());
        assert_ne!(page["data"][0]["livemode"], true, "test keys see test data");
    }
    let other = Simulator::new(small().with_seed(7));
    assert_ne!(
        other.object_json(Resource::Charges, 5),
        a.simulator().object_json(Resource::Charges, 5)
    );
    // The in-process page is the served page.
    let (_, _, served) = get(&a, "/v1/charges?limit=10").await;
    let page = a
        .simulator()
        .page_json(Resource::Charges, &ListParams::default())
        .unwrap();
    assert_eq!(served, page);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn objects_are_shaped_like_stripes() {
    let sim = Simulator::new(SimConfig::default());
    let charge: Value = serde_json::from_str(&sim.object_json(Resource::Charges, 11)).unwrap();
    assert!(charge["id"].as_str().unwrap().starts_with("ch_"));
    assert_eq!(charge["livemode"], false);
    assert!(
        charge["billing_details"]["address"].is_object()
            || charge["billing_details"]["address"].is_null()
    );
    assert_eq!(charge["refunds"]["object"], "list");
    assert!(charge["payment_method_details"]["type"].is_string());
    let sub: Value = serde_json::from_str(&sim.object_json(Resource::Subscriptions, 3)).unwrap();
    let item = &sub["items"]["data"][0];
    assert_eq!(item["object"], "subscription_item");
    assert_eq!(item["price"]["object"], "price");
    assert!(sim
        .index_of(Resource::Prices, item["price"]["id"].as_str().unwrap())
        .is_some());
    assert!(sim
        .index_of(Resource::Customers, sub["customer"].as_str().unwrap())
        .is_some());
    for i in 0..200 {
        let bt: Value =
            serde_json::from_str(&sim.object_json(Resource::BalanceTransactions, i)).unwrap();
        let (amount, fee, net) = (
            bt["amount"].as_i64().unwrap(),
            bt["fee"].as_i64().unwrap(),
            bt["net"].as_i64().unwrap(),
        );
        assert_eq!(net, amount - fee);
        let price: Value = serde_json::from_str(&sim.object_json(Resource::Prices, i)).unwrap();
        assert_eq!(price["recurring"].is_null(), price["type"] == "one_time");
    }
    let currencies: HashSet<String> = (0..300)
        .map(|i| {
            serde_json::from_str::<Value>(&sim.object_json(Resource::Charges, i)).unwrap()
                ["currency"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(currencies.contains("usd") && currencies.contains("jpy"));
    // Ids round-trip to their index.
    for i in [0, 1, 999] {
        assert_eq!(
            sim.index_of(Resource::Charges, &sim.id(Resource::Charges, i)),
            Some(i)
        );
    }
}

#[tokio::test]
async fn corrupt_records_are_deterministic_and_isolatable() {
    let faults = Faults {
        corrupt_rate: 0.1,
        ..Faults::default()
    };
    let sim = Simulator::new(
        small()
            .with_count(Resource::Charges, 600)
            .with_faults(faults),
    );
    let (mut wrong_type, mut broken) = (0, 0);
    for i in 0..600 {
        let text = sim.object_json(Resource::Charges, i);
        assert_eq!(
            text.matches('{').count(),
            text.matches('}').count(),
            "balanced"
        );
        assert!(text.starts_with(&format!("{{\"id\":\"{}\"", sim.id(Resource::Charges, i))));
        let parsed = serde_json::from_str::<Value>(&text);
        match sim.corruption(Resource::Charges, i) {
            None => {
                let v = parsed.expect("clean record parses");
                assert!(v["amount"].is_i64() && v["created"].is_i64());
            }
            Some(Corruption::WrongType) => {
                wrong_type += 1;
                let v = parsed.expect("wrong-type record is valid JSON");
                assert!(!v["amount"].is_i64() || !v["created"].is_i64());
            }
            Some(Corruption::BrokenJson) => {
                broken += 1;
                assert!(parsed.is_err(), "{text}");
            }
        }
    }
    let total = sim.corrupt_count(Resource::Charges, None, None);
    assert_eq!(total, wrong_type + broken);
    assert!((30..=90).contains(&total), "{total} of 600 at 10%");
    assert!(wrong_type > 5 && broken > 5);

    // Served pages carry exactly these records.
    let h = sim.clone().start().await.unwrap();
    let (_, _, body) = get(&h, "/v1/charges?limit=100").await;
    let text = String::from_utf8(body).unwrap();
    for i in 500..600 {
        assert!(text.contains(&sim.object_json(Resource::Charges, i)));
    }
    h.shutdown().await;
}

#[tokio::test]
async fn scripted_faults_then_normal_service() {
    let h = start(small()).await;
    h.inject(ScriptedFault::rate_limit(Some(1)).times(2));
    h.inject(ScriptedFault::server_error(503, Some(false)));
    h.inject(ScriptedFault::status(409));
    h.inject(
        ScriptedFault::status(400).with_body("{\"error\":{\"type\":\"invalid_request_error\"}}"),
    );
    h.inject(ScriptedFault::disconnect());

    for _ in 0..2 {
        let (status, headers, body) = get(&h, "/v1/charges").await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(json(&body)["error"]["code"], "rate_limit");
    }
    let (status, headers, body) = get(&h, "/v1/charges").await;
    assert_eq!(status, 503);
    assert_eq!(headers["stripe-should-retry"], "false");
    assert_eq!(json(&body)["error"]["type"], "api_error");
    let (status, _, body) = get(&h, "/v1/charges").await;
    assert_eq!(status, 409);
    assert_eq!(json(&body)["error"]["code"], "lock_timeout");
    let (status, _, body) = get(&h, "/v1/charges").await;
    assert_eq!(
        (status, body),
        (
            400,
            b"{\"error\":{\"type\":\"invalid_request_error\"}}".to_vec()
        )
    );
    let dropped = client()
        .get(format!("{}/v1/charges", h.base_url()))
        .bearer_auth(SIM_KEY)
        .send()
        .await;
    assert!(dropped.is_err(), "the connection is dropped");
    let (status, _, _) = get(&h, "/v1/charges").await;
    assert_eq!(status, 200);

    let stats = h.stats();
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.status(429), 2);
    assert_eq!(stats.injected_429, 2);
    assert_eq!(stats.injected_5xx, 1);
    assert_eq!(stats.disconnects, 1);
    assert_eq!(stats.status(200), 1);
    assert_eq!(stats.objects, 10);
    h.shutdown().await;
}

#[tokio::test]
async fn random_faults_hit_their_fraction_and_are_counted() {
    let faults = Faults {
        rate_429: 0.2,
        rate_5xx: 0.1,
        retry_after_secs: Some(2),
        should_retry: Some(true),
        ..Faults::default()
    };
    let h = start(small().with_faults(faults)).await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let url = format!("{}/v1/prices?limit=1", h.base_url());
            tokio::spawn(async move {
                let resp = client().get(url).bearer_auth(SIM_KEY).send().await.unwrap();
                (resp.status().as_u16(), resp.headers().clone())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let n429 = results.iter().filter(|(s, _)| *s == 429).count() as u64;
    let n5xx = results.iter().filter(|(s, _)| *s >= 500).count() as u64;
    assert!((20..=70).contains(&n429), "{n429}");
    assert!((5..=40).contains(&n5xx), "{n5xx}");
    assert!(results
        .iter()
        .filter(|(s, _)| *s == 429)
        .all(|(_, h)| h["retry-after"] == "2"));
    assert!(results
        .iter()
        .filter(|(s, _)| *s >= 500)
        .all(|(_, h)| h["stripe-should-retry"] == "true"));
    let stats = h.stats();
    assert_eq!(stats.requests, 200);
    assert_eq!(stats.injected_429, n429);
    assert_eq!(stats.injected_5xx, n5xx);
    assert!(stats.peak_rps >= 1);
    h.shutdown().await;
}

#[tokio::test]
async fn retrieve_by_id() {
    let h = start(small()).await;
    let id = h.simulator().id(Resource::Refunds, 17);
    let (status, _, body) = get(&h, &format!("/v1/refunds/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["id"], id.as_str());
    let (status, _, body) = get(&h, "/v1/refunds/re_nope").await;
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"]["code"], "resource_missing");
    h.shutdown().await;
}

#[tokio::test]
async fn slow_responses_are_delayed() {
    let faults = Faults {
        slow_rate: 1.0,
        slow_ms: 150,
        ..Faults::default()
    };
    let h = start(small().with_faults(faults)).await;
    let t = std::time::Instant::now();
    let (status, _, _) = get(&h, "/v1/customers?limit=1").await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    h.inject(ScriptedFault::delay(Duration::from_millis(100)));
    let (status, _, _) = get(&h, "/v1/customers?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(h.stats().delayed, 2);
    h.shutdown().await;
}
