//! The console in a real browser: headless Chromium walks the wizard to a created dataflow,
//! runs it against the simulator and sees its counts on the monitoring page. Screenshots of
//! each page go to `target/tmp/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test says so and passes, unless `STRIPE_XDM_REQUIRE_BROWSER` is set (as `.ci/run` does).

use std::path::PathBuf;

use crate::console::{setup, wait_done, Api};
use crate::support::webdriver::{browser_paths, Browser};
use stripe_xdm::sim::SIM_KEY;

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_walks_the_wizard_runs_the_dataflow_and_sees_its_counts() {
    let Some((chromium, driver)) = browser_paths() else {
        assert!(
            std::env::var_os("STRIPE_XDM_REQUIRE_BROWSER").is_none(),
            "STRIPE_XDM_REQUIRE_BROWSER is set but /usr/bin/chromium or /usr/bin/chromedriver is missing: apt-get install chromium chromium-driver"
        );
        eprintln!("skipped: no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    let (_home, h, sim) = setup(400).await;
    let api = Api::new(&h);
    let b = Browser::start(chromium, driver).await;
    let dir = shots();

    // The printed URL logs in (token → cookie) and lands on the overview.
    b.goto(&h.login_url()).await;
    b.wait_text("h1", "Overview", 10).await;
    assert!(
        !b.url().await.contains("token="),
        "the token leaves the address bar"
    );
    b.screenshot(&dir.join("1-overview.png")).await;

    // Accounts: the key goes into a password field; the account is tested and listed.
    b.goto(&format!("{}/accounts", h.base_url())).await;
    let kind = b
        .script(
            "return document.querySelector('input[name=key]').type",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(kind, "password");
    b.fill("input[name=name]", "acme").await;
    b.fill("input[name=key]", SIM_KEY).await;
    b.fill("input[name=base_url]", &sim.base_url()).await;
    b.click("#add-account button[type=submit]").await;
    b.wait_text("#accounts", "acme", 20).await;
    b.screenshot(&dir.join("2-accounts.png")).await;

    // The wizard, step by step.
    b.goto(&format!("{}/wizard", h.base_url())).await;
    b.click("#w-next").await;
    b.wait_text("#w-preview", "records on the first page", 20)
        .await;
    b.find("#preview-table").await;
    b.screenshot(&dir.join("3-wizard-select-data.png")).await;
    b.click("#w-next").await; // → dataset: a new one, partial ingestion on
    b.click("input[name=partial]").await;
    // 10 % of the simulator's records are corrupt: above Platform's default 5 %.
    b.fill("input[name=threshold]", "50").await;
    b.screenshot(&dir.join("4-wizard-dataset.png")).await;
    b.click("#w-next").await; // → dataflow detail
    b.fill("#w-name", "Console charges").await;
    b.click("input[name=run_failure]").await;
    b.click("#w-next").await; // → mapping
    b.wait_text("#w-sql", "", 10).await;
    b.click("#w-check").await;
    b.wait_text("#w-mapping-result", "fits the dataset's schema", 20)
        .await;
    b.click("#w-map-preview").await;
    b.find("#mapping-preview").await;
    b.screenshot(&dir.join("5-wizard-mapping.png")).await;
    b.click("#w-next").await; // → scheduling (after the mapping's check): Platform's rule shown
    b.wait_shown(r#"section[data-step="6"]"#).await;
    b.select("#w-frequency", "minute").await;
    b.fill("#w-interval", "5").await;
    b.click("#w-next").await;
    b.wait_text("#message", "interval cannot be less than 15", 10)
        .await;
    b.screenshot(&dir.join("6-wizard-schedule-rule.png")).await;
    b.select("#w-frequency", "once").await;
    b.click("#w-next").await; // → review
    let review = b.wait_text("#w-review", "Console charges", 10).await;
    assert!(
        review.contains("charges (new, partial ingestion 50%)"),
        "{review}"
    );
    assert!(review.contains("run_failure"), "{review}");
    b.screenshot(&dir.join("7-wizard-review.png")).await;
    b.click("#w-finish").await;
    b.wait_text("#w-created", "Console charges", 20).await;

    // Run it from the wizard; the monitoring page shows the run when it ends.
    b.click("#w-run").await;
    let runs = b.wait_text("#runs", "success", 120).await;
    assert!(b.url().await.contains("/monitoring"));
    let done = wait_done(&api, "Console charges").await;
    assert_eq!(done["outcome"], "success");
    let run = &api.ok("GET", "/api/runs", None).await[0];
    let (received, ingested, failed) = (
        run["received"].as_u64().unwrap(),
        run["ingested"].as_u64().unwrap(),
        run["failed"].as_u64().unwrap(),
    );
    assert_eq!(received, 400);
    assert_eq!(received, ingested + failed);
    assert!(failed > 0);
    let totals = b.text("#totals").await;
    for want in [
        format!("{received}\nreceived"),
        format!("{ingested}\ningested"),
        format!("{failed}\nfailed"),
    ] {
        assert!(totals.contains(&want), "{want:?} not in {totals:?}");
    }
    assert!(runs.contains("Console charges"), "{runs}");
    b.find("#chart-records svg").await;
    b.screenshot(&dir.join("8-monitoring.png")).await;

    // Rejected rows: the summary, and a query in the SQL box.
    b.goto(&format!(
        "{}/rejected?dataflow=Console%20charges",
        h.base_url()
    ))
    .await;
    assert_eq!(b.text("#rejected-total").await, failed.to_string());
    b.click("#sql button[type=submit]").await;
    b.find("#sql-table").await;
    b.screenshot(&dir.join("9-rejected.png")).await;

    b.goto(&format!("{}/dataflows", h.base_url())).await;
    b.wait_text("#dataflows", "Console charges", 10).await;
    b.screenshot(&dir.join("10-dataflows.png")).await;
    b.quit().await;
    h.shutdown().await.unwrap();
}
