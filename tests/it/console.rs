//! The web console's API: the token, the wizard's calls, a run with its counts, and the rules
//! it shares with the CLI (schedule, mapping fit, etag).

use std::time::Duration;

use serde_json::{json, Value};
use stripe_xdm::console::{self, ConsoleHandle, ConsoleOptions};
use stripe_xdm::sim::{Faults, SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::Resource;

/// A console over a fresh home, and a simulator serving `charges` charges, 10 % corrupt.
pub async fn setup(charges: u64) -> (tempfile::TempDir, ConsoleHandle, SimHandle) {
    setup_with(
        charges,
        Faults {
            corrupt_rate: 0.1,
            ..Faults::default()
        },
    )
    .await
}

/// A console over a fresh home, and a simulator serving `charges` charges with `faults`.
pub async fn setup_with(
    charges: u64,
    faults: Faults,
) -> (tempfile::TempDir, ConsoleHandle, SimHandle) {
    let home = tempfile::tempdir().unwrap();
    let sim = Simulator::new(
        SimConfig::default()
            .with_count(Resource::Charges, charges)
            .with_faults(faults),
    )
    .start()
    .await
    .unwrap();
    let handle = console::start(ConsoleOptions {
        home: home.path().to_path_buf(),
        port: 0,
        token: None,
    })
    .await
    .unwrap();
    (home, handle, sim)
}

/// Calls the console's API with its token; the status and the JSON body.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(h: &ConsoleHandle) -> Api {
        Api {
            base: h.base_url(),
            token: h.token.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    pub async fn page(&self, path: &str) -> String {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        res.text().await.unwrap()
    }
}

/// Waits for the console's run of `flow` to end; its live entry.
pub async fn wait_done(api: &Api, flow: &str) -> Value {
    for _ in 0..600 {
        let live = api.ok("GET", "/api/live", None).await;
        if let Some(r) = live
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dataflow"] == flow && r["done"] == true)
        {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the run of {flow:?} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_without_the_token_is_refused() {
    let (_home, h, _sim) = setup(10).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = h.base_url();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    for path in [
        "/api/accounts",
        "/api/dataflows",
        "/api/runs",
        "/",
        "/monitoring",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth("0123456789abcdef0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
    }
    let r = http
        .post(format!("{base}/api/accounts"))
        .json(&json!({"name": "x", "key": SIM_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");

    // The printed URL's token becomes a cookie, and leaves the address bar.
    let r = http
        .get(format!("{base}/monitoring?dataflow=a&token={}", h.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/monitoring?dataflow=a");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let r = http
        .get(format!("{base}/api/accounts"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_api_creates_a_dataflow_that_runs_and_shows_its_counts() {
    let (_home, h, sim) = setup(300).await;
    let api = Api::new(&h);

    // Accounts: a wrong key is refused, naming the account; the key never comes back.
    let (status, v) = api
        .call(
            "POST",
            "/api/accounts",
            Some(json!({"name": "acme", "key": "sk_test_wrong", "base_url": sim.base_url()})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("\"acme\""), "{v}");
    let added = api
        .ok(
            "POST",
            "/api/accounts",
            Some(json!({"name": "acme", "key": SIM_KEY, "base_url": sim.base_url()})),
        )
        .await;
    assert!(added["stripe_account"]
        .as_str()
        .unwrap()
        .starts_with("acct_"));
    let listed = api.ok("GET", "/api/accounts", None).await.to_string();
    assert!(
        !listed.contains(SIM_KEY) && listed.contains("4242"),
        "{listed}"
    );
    api.ok("POST", "/api/accounts/acme/test", None).await;

    // Select data: the first page, decoded.
    let p = api
        .ok(
            "GET",
            "/api/preview?account=acme&resource=charges&rows=3",
            None,
        )
        .await;
    assert_eq!(p["rows"].as_array().unwrap().len(), 3);
    assert!(p["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "amount"));

    // Mapping: a misfit is listed inline; the built-in mapping fits; its XDM rows preview.
    let new_dataset =
        json!({"name": "charges", "error_diagnostics": true, "partial_ingestion_percent": 50});
    let bad = api
        .ok(
            "POST",
            "/api/mapping/check",
            Some(json!({"resource": "charges", "new_dataset": new_dataset,
                        "sql": "SELECT id AS \"_id\", amount AS \"nope\" FROM charges"})),
        )
        .await;
    assert_eq!(bad["sound"], false, "{bad}");
    assert!(bad["errors"].to_string().contains("nope"), "{bad}");
    let good = api
        .ok(
            "POST",
            "/api/mapping/check",
            Some(json!({"resource": "charges", "new_dataset": new_dataset})),
        )
        .await;
    assert_eq!(good["sound"], true, "{good}");
    // The built-in SQL as a file holds it, `${tenant}` and all, is replaced as `--tenant` does.
    let templated = api
        .ok(
            "POST",
            "/api/mapping/check",
            Some(json!({"resource": "charges", "new_dataset": new_dataset,
                        "sql": stripe_xdm::defaults::mapping_sql(stripe_xdm::Resource::Charges)})),
        )
        .await;
    assert_eq!(templated["sound"], true, "{templated}");
    let rows = api
        .ok(
            "POST",
            "/api/mapping/preview",
            Some(json!({"account": "acme", "resource": "charges", "new_dataset": new_dataset, "rows": 4})),
        )
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 4, "{rows}");

    // Scheduling: Platform's rules, with their messages.
    let (status, v) = api
        .call(
            "POST",
            "/api/schedule/check",
            Some(json!({"frequency": "minute", "interval": 5})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("15"), "{v}");
    api.ok(
        "POST",
        "/api/schedule/check",
        Some(json!({"frequency": "hour", "interval": 2})),
    )
    .await;

    // Review → create: the new dataset and the dataflow.
    let made = api
        .ok(
            "POST",
            "/api/dataflows",
            Some(
                json!({"name": "Charges", "account": "acme", "resource": "charges",
                        "new_dataset": new_dataset, "frequency": "once",
                        "alerts": {"run_failure": true}}),
            ),
        )
        .await;
    assert_eq!(made[0]["name"], "Charges");
    let (status, v) = api
        .call(
            "POST",
            "/api/dataflows",
            Some(
                json!({"name": "Other", "account": "acme", "resource": "charges",
                        "new_dataset": new_dataset, "frequency": "once"}),
            ),
        )
        .await;
    assert_eq!(status, 409, "a second new dataset of the same name: {v}");

    // Run it; the counts add up on the API and the monitoring page.
    let (status, _) = api.call("POST", "/api/dataflows/Charges/run", None).await;
    assert_eq!(status, 202);
    let done = wait_done(&api, "Charges").await;
    assert_eq!(done["outcome"], "success", "{done}");
    // The finished run shows what it wrote, as `runs show` does.
    assert!(done["files"].as_u64().unwrap() >= 1, "{done}");
    assert!(done["bytes_out"].as_u64().unwrap() > 0, "{done}");
    let runs = api.ok("GET", "/api/runs?dataflow=Charges", None).await;
    let run = &runs[0];
    let (received, ingested, failed) = (
        run["received"].as_u64().unwrap(),
        run["ingested"].as_u64().unwrap(),
        run["failed"].as_u64().unwrap(),
    );
    assert_eq!(received, 300);
    assert!(failed > 0, "10 % of the records are corrupt: {run}");
    assert_eq!(received, ingested + failed, "{run}");
    let page = api.page("/monitoring?dataflow=Charges").await;
    assert!(
        page.contains(&format!("<b>{ingested}</b> ingested")),
        "{page}"
    );
    assert!(page.contains(&format!("<b>{failed}</b> failed")));
    assert!(page.contains("id=\"chart-records\"") && page.contains("id=\"chart-rejected\""));

    // Rejected rows: the summary matches the run; SQL over them and the mirror.
    let summary = api
        .ok("GET", "/api/rejected/summary?dataflow=Charges", None)
        .await;
    assert_eq!(summary["total"].as_u64().unwrap(), failed, "{summary}");
    let q = api
        .ok(
            "POST",
            "/api/rejected/query",
            Some(json!({"dataflow": "Charges",
                        "sql": "SELECT (SELECT count(*) FROM rejected) AS rejected, (SELECT count(*) FROM charges) AS mirrored"})),
        )
        .await;
    assert_eq!(q["rows"][0]["rejected"].as_u64().unwrap(), failed, "{q}");
    let (status, v) = api
        .call(
            "POST",
            "/api/rejected/query",
            Some(json!({"dataflow": "Charges", "sql": "DELETE FROM rejected"})),
        )
        .await;
    assert_eq!(status, 400, "read-only: {v}");
    // Replay of the latest batch's rejected rows with a mapping typed into the page.
    let sql = api
        .ok("GET", "/api/mapping/default?resource=charges", None)
        .await["sql"]
        .clone();
    let replay = api
        .ok(
            "POST",
            "/api/rejected/replay",
            Some(json!({"dataflow": "Charges", "sql": sql})),
        )
        .await;
    assert_eq!(
        replay["rejected_rows"].as_u64().unwrap(),
        failed,
        "{replay}"
    );
    assert_eq!(replay["source_batch"], run["batch_id"], "{replay}");
    assert!(api
        .page("/rejected?dataflow=Charges")
        .await
        .contains(&format!("<b id=\"rejected-total\">{failed}</b>")));

    // Update with the etag seen; a stale etag is a conflict; delete.
    let flow = api.ok("GET", "/api/dataflows/Charges", None).await;
    let etag = flow["etag"].as_i64().unwrap();
    let updated = api
        .ok(
            "PATCH",
            "/api/dataflows/Charges",
            Some(json!({"etag": etag, "description": "from the console"})),
        )
        .await;
    assert_eq!(updated["description"], "from the console");
    let (status, v) = api
        .call(
            "PATCH",
            "/api/dataflows/Charges",
            Some(json!({"etag": etag, "description": "stale"})),
        )
        .await;
    assert_eq!(status, 412, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("changed by someone else"),
        "{v}"
    );
    api.ok("POST", "/api/dataflows/Charges/disable", None).await;
    api.ok("DELETE", "/api/dataflows/Charges", None).await;
    let (status, _) = api.call("GET", "/api/dataflows/Charges", None).await;
    assert_eq!(status, 404);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_another_process_shows_on_the_live_list_until_it_ends() {
    // Slow pages: the run lasts long enough to be seen.
    let (home, h, sim) = setup_with(
        300,
        Faults {
            slow_rate: 1.0,
            slow_ms: 400,
            ..Faults::default()
        },
    )
    .await;
    let api = Api::new(&h);
    api.ok(
        "POST",
        "/api/accounts",
        Some(json!({"name": "acme", "key": SIM_KEY, "base_url": sim.base_url()})),
    )
    .await;
    api.ok(
        "POST",
        "/api/dataflows",
        Some(
            json!({"name": "Slow", "account": "acme", "resource": "charges",
                    "new_dataset": {"name": "charges"}, "frequency": "once"}),
        ),
    )
    .await;
    // The run is made by the runner directly, as `serve` or `dataflows run` would.
    let mut cfg = stripe_xdm::runner::RunnerConfig::new(home.path());
    cfg.concurrency = 1;
    let run = tokio::spawn(async move {
        stripe_xdm::runner::run_dataflow(&cfg, "Slow", stripe_xdm::runner::now(), None).await
    });
    let mut seen = None;
    for _ in 0..200 {
        let live = api.ok("GET", "/api/live", None).await;
        if let Some(r) = live
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dataflow"] == "Slow")
        {
            seen = Some(r.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.expect("the running run is listed");
    assert_eq!(seen["done"], false, "{seen}");
    assert!(seen["as_of"].is_i64() && seen["run_id"].is_i64(), "{seen}");
    let result = run.await.unwrap().unwrap();
    assert_eq!(result.run.counts.fetched, 300);
    let live = api.ok("GET", "/api/live", None).await;
    assert!(
        live.as_array()
            .unwrap()
            .iter()
            .all(|r| r["dataflow"] != "Slow"),
        "an ended run leaves the list: {live}"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataflow_on_a_tenant_dataset_gets_the_datasets_tenant_as_on_the_command_line() {
    let (home, h, sim) = setup(50).await;
    {
        let mut cat = stripe_xdm::catalog::Catalog::open(home.path()).unwrap();
        cat.create_dataset(&stripe_xdm::catalog::NewDataset {
            name: "acme-charges".into(),
            description: None,
            schema_json: stripe_xdm::map::substitute_tenant(
                stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
                "acme",
            ),
            profile_enabled: false,
            error_diagnostics: true,
            partial_ingestion_percent: Some(50.0),
        })
        .unwrap();
    }
    let api = Api::new(&h);
    api.ok(
        "POST",
        "/api/accounts",
        Some(json!({"name": "shop", "key": SIM_KEY, "base_url": sim.base_url()})),
    )
    .await;
    // The schedule rules apply as on the command line: nothing is silently dropped.
    for (body, code) in [
        (json!({"frequency": "once", "interval": 3}), "1361-400"),
        (json!({"frequency": "once", "backfill": false}), "1364-400"),
    ] {
        let (status, v) = api.call("POST", "/api/schedule/check", Some(body)).await;
        assert_eq!(status, 400, "{v}");
        assert!(v.to_string().contains(code), "{v}");
    }
    api.ok(
        "POST",
        "/api/schedule/check",
        Some(json!({"frequency": "hour", "interval": 1, "backfill": false})),
    )
    .await;
    // No `tenant` in the request (the console's page never sends one).
    let check = api
        .ok(
            "POST",
            "/api/mapping/check",
            Some(json!({"resource": "charges", "dataset": "acme-charges"})),
        )
        .await;
    assert_eq!(check["sound"], true, "{check}");
    api.ok(
        "POST",
        "/api/dataflows",
        Some(
            json!({"name": "c", "account": "shop", "resource": "charges",
                    "dataset": "acme-charges", "frequency": "once"}),
        ),
    )
    .await;
    let cat = stripe_xdm::catalog::Catalog::open(home.path()).unwrap();
    let sql = cat.mapping("c", None).unwrap().sql;
    assert!(sql.contains("_acme"), "{sql}");
}
