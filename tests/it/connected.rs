//! Stripe connected accounts: an account or a dataflow reads through `Stripe-Account`; the
//! records carry `connectedAccountId`, and each connected account has its own mirror.

use std::path::Path;

use arrow::array::RecordBatch;
use stripe_xdm::catalog::Catalog;
use stripe_xdm::sim::{SimConfig, Simulator, SIM_KEY};
use stripe_xdm::Resource;

use crate::support::bin::{command, output, text};

async fn ok(home: &Path, args: &[&str]) -> String {
    let o = output(command(Some(home), args, &[("SIM_KEY_VAR", SIM_KEY)])).await;
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    text(&o)
}

/// Account `platform` on the simulator at `base` (with `account_args`) and dataset `charges`.
async fn setup(h: &Path, base: &str, account_args: &[&str]) {
    let mut args = vec![
        "accounts",
        "add",
        "platform",
        "--api-key-env",
        "SIM_KEY_VAR",
        "--base-url",
        base,
    ];
    args.extend_from_slice(account_args);
    ok(h, &args).await;
    let schema = h.join("charges.xdm.json");
    std::fs::write(
        &schema,
        stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
    )
    .unwrap();
    ok(
        h,
        &[
            "datasets",
            "create",
            "charges",
            "--schema",
            schema.to_str().unwrap(),
        ],
    )
    .await;
}

fn connected_ids(batches: &[RecordBatch]) -> Vec<Option<String>> {
    crate::support::json_rows(batches)
        .iter()
        .map(|r| {
            r["_tenant"]["charges"]["connectedAccountId"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_dataflows_read_through_their_connected_account() {
    let sim = Simulator::new(SimConfig::default().with_count(Resource::Charges, 150))
        .start()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let base = sim.base_url();
    setup(h, &base, &["--stripe-account", "acct_1Connected"]).await;
    ok(
        h,
        &[
            "dataflows",
            "create",
            "inherits",
            "--account",
            "platform",
            "--resource",
            "charges",
            "--dataset",
            "charges",
        ],
    )
    .await;
    ok(
        h,
        &[
            "dataflows",
            "create",
            "other",
            "--account",
            "platform",
            "--resource",
            "charges",
            "--dataset",
            "charges",
            "--stripe-account",
            "acct_2Other",
        ],
    )
    .await;
    // A bad id is refused and leaves nothing behind.
    let o = output(command(
        Some(h),
        &[
            "dataflows",
            "create",
            "bad",
            "--account",
            "platform",
            "--resource",
            "charges",
            "--dataset",
            "charges",
            "--stripe-account",
            "bogus",
        ],
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("acct_"), "{}", text(&o));
    assert!(Catalog::open(h).unwrap().dataflow("bad").is_err());

    let run = |name: &'static str| {
        [
            "dataflows",
            "run",
            name,
            "--rate",
            "10000",
            "--endpoint-rate",
            "10000",
            "--quiet",
        ]
    };
    ok(h, &run("inherits")).await;
    ok(h, &run("other")).await;
    let stats = sim.stats();
    assert!(stats.by_stripe_account["acct_1Connected"] >= 1, "{stats:?}");
    assert!(stats.by_stripe_account["acct_2Other"] >= 1, "{stats:?}");
    let cat = Catalog::open(h).unwrap();
    for (flow, acct) in [("inherits", "acct_1Connected"), ("other", "acct_2Other")] {
        let runs = cat.list_runs(Some(flow), None).unwrap();
        let dir = h
            .join("data/charges/batches")
            .join(runs[0].batch_id.as_deref().unwrap());
        let ids = connected_ids(&stripe_xdm::sink::read_batch_dir(&dir).unwrap());
        assert_eq!(ids.len(), 150, "{flow}");
        assert!(
            ids.iter().all(|i| i.as_deref() == Some(acct)),
            "{flow}: {ids:?}"
        );
        assert!(
            h.join("mirror/platform")
                .join(acct)
                .join("charges/_delta_log")
                .is_dir(),
            "{flow}: its own mirror"
        );
    }
    // A run cannot switch a dataflow to another account.
    let o = output(command(
        Some(h),
        &[
            "dataflows",
            "run",
            "other",
            "--stripe-account",
            "acct_1Connected",
        ],
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("reads through acct_2Other"),
        "{}",
        text(&o)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataflow_fans_out_over_connected_accounts_each_with_its_own_watermark() {
    let accounts = ["acct_A1", "acct_B2", "acct_C3"];
    let sim = Simulator::new(
        SimConfig::default()
            .with_count(Resource::Charges, 120)
            .with_connected_accounts(&accounts),
    )
    .start()
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let base = sim.base_url();
    setup(h, &base, &[]).await;
    let t = ok(
        h,
        &[
            "dataflows",
            "create",
            "fan",
            "--account",
            "platform",
            "--resource",
            "charges",
            "--dataset",
            "charges",
            "--all-connected-accounts",
        ],
    )
    .await;
    for a in accounts {
        assert!(t.contains(&format!("fan.{a}")), "{t}");
    }
    // A connected account given twice is said so, not taken for a dataflow that exists.
    let twice = output(command(
        Some(h),
        &[
            "dataflows",
            "create",
            "dup",
            "--account",
            "platform",
            "--resource",
            "charges",
            "--dataset",
            "charges",
            "--stripe-account",
            "acct_A1",
            "--stripe-account",
            "acct_A1",
        ],
        &[],
    ))
    .await;
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice));
    assert!(
        text(&twice).contains("acct_A1 is given twice"),
        "{}",
        text(&twice)
    );
    ok(
        h,
        &[
            "dataflows",
            "create",
            "pair",
            "--account",
            "platform",
            "--resource",
            "charges",
            "--dataset",
            "charges",
            "--stripe-account",
            "acct_X9",
            "--stripe-account",
            "acct_Y8",
        ],
    )
    .await;
    // `dataflows run fan` runs each connected account's dataflow.
    ok(
        h,
        &[
            "dataflows",
            "run",
            "fan",
            "--rate",
            "10000",
            "--endpoint-rate",
            "10000",
            "--quiet",
        ],
    )
    .await;
    let cat = Catalog::open(h).unwrap();
    let stats = sim.stats();
    for a in accounts {
        let name = format!("fan.{a}");
        let flow = cat.dataflow(&name).unwrap();
        assert_eq!(flow.stripe_account.as_deref(), Some(a));
        assert!(
            cat.watermark(&name).unwrap().is_some(),
            "{name}: its own watermark"
        );
        let runs = cat.list_runs(Some(&name), None).unwrap();
        assert_eq!(runs[0].counts.fetched, 120, "{name}");
        assert!(stats.by_stripe_account[a] >= 1, "{stats:?}");
    }
    assert_eq!(
        cat.dataflow("pair.acct_Y8")
            .unwrap()
            .stripe_account
            .as_deref(),
        Some("acct_Y8")
    );
    assert!(
        cat.watermark("pair.acct_X9").unwrap().is_none(),
        "not run yet"
    );
    sim.shutdown().await;
}
