//! The console's pages, rendered on the server from the catalog; the script
//! (`assets/console.js`) calls the JSON API for the actions and the live parts.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::api::ApiError;
use super::charts;
use super::html::{esc, page, table, time};
use super::Console;
use crate::catalog::{Dataflow, Run};
use crate::schedule::Frequency;
use crate::Resource;

type Page = Result<Html<String>, ApiError>;
type Shared = State<Arc<Console>>;

/// Records per second of a finished run (`None` while it has not started or ended).
pub(crate) fn rate_of(r: &Run) -> Option<f64> {
    let (start, end) = (r.started_at?, r.ended_at?);
    Some(r.counts.fetched as f64 / (end - start).max(1) as f64)
}

fn schedule_of(f: &Dataflow) -> String {
    match f.schedule.interval {
        Some(i) => format!("every {i} {}", f.schedule.frequency),
        None => f.schedule.frequency.to_string(),
    }
}

fn options(values: &[String], selected: Option<&str>) -> String {
    values
        .iter()
        .map(|v| {
            let sel = if Some(v.as_str()) == selected {
                " selected"
            } else {
                ""
            };
            format!("<option value=\"{0}\"{sel}>{0}</option>", esc(v))
        })
        .collect()
}

fn runs_table(runs: &[Run]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                esc(&r.dataflow),
                format!("<span class=\"status {0}\">{0}</span>", r.status.as_str()),
                time(r.scheduled_time),
                r.counts.fetched.to_string(),
                r.ingested().to_string(),
                r.counts.rejected.to_string(),
                rate_of(r).map_or("–".into(), |v| format!("{v:.0}/s")),
            ]
        })
        .collect();
    table(
        "runs",
        &[
            "Run",
            "Dataflow",
            "Status",
            "Scheduled",
            "Received",
            "Ingested",
            "Failed",
            "Rate",
        ],
        &rows,
        "No run yet: create a dataflow and run it.",
    )
}

pub(crate) async fn home(State(c): Shared) -> Page {
    let cat = c.catalog()?;
    let accounts = cat.list_accounts()?.len();
    let flows = cat.list_dataflows()?.len();
    let runs = crate::app::runs::list(&cat, None, Some(10))?;
    let body = format!(
        "<section class=\"cards\">\
<a class=\"card\" href=\"/accounts\"><b>{accounts}</b> Stripe account(s)</a>\
<a class=\"card\" href=\"/dataflows\"><b>{flows}</b> dataflow(s)</a>\
<a class=\"card\" href=\"/wizard\"><b>+</b> new dataflow</a></section>\
<h2>Latest runs</h2>{}",
        runs_table(&runs)
    );
    Ok(Html(page("Overview", "/", &body)))
}

pub(crate) async fn accounts(State(c): Shared) -> Page {
    let cat = c.catalog()?;
    let list = cat.list_accounts()?;
    let mut rows = Vec::new();
    for a in &list {
        let used = cat.dataflows_using_account(&a.name)?;
        rows.push(vec![
            esc(&a.name),
            format!("<code>{}</code>", esc(&a.key_masked)),
            esc(a.base_url.as_deref().unwrap_or("Stripe")),
            esc(a.stripe_account.as_deref().unwrap_or("")),
            esc(&used.join(", ")),
            format!(
                "<button data-action=\"test-account\" data-name=\"{0}\">Test</button> \
<button class=\"danger\" data-action=\"remove-account\" data-name=\"{0}\">Remove</button>",
                esc(&a.name)
            ),
        ]);
    }
    let body = format!(
        "{}<h2>Add an account</h2>\
<form id=\"add-account\" class=\"grid\">\
<label>Name <input name=\"name\" required></label>\
<label>Secret or restricted key <input name=\"key\" type=\"password\" autocomplete=\"off\" required></label>\
<label>Description <input name=\"description\"></label>\
<label>API base URL <input name=\"base_url\" placeholder=\"https://api.stripe.com (default)\"></label>\
<label>Connected account <input name=\"stripe_account\" placeholder=\"acct_… (optional)\"></label>\
<button type=\"submit\">Test and add</button></form><p id=\"message\" class=\"message\"></p>",
        table(
            "accounts",
            &["Name", "Key", "API", "Connected account", "Used by", ""],
            &rows,
            "No account yet: add one below.",
        )
    );
    Ok(Html(page("Accounts", "/accounts", &body)))
}

pub(crate) async fn wizard(State(c): Shared) -> Page {
    let cat = c.catalog()?;
    let accounts: Vec<String> = cat.list_accounts()?.into_iter().map(|a| a.name).collect();
    let datasets: Vec<String> = cat.list_datasets()?.into_iter().map(|d| d.name).collect();
    let resources: Vec<String> = Resource::ALL.iter().map(|r| r.path().to_string()).collect();
    let frequencies: Vec<String> = Frequency::ALL
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    if accounts.is_empty() {
        let body = "<p class=\"empty\">No Stripe account yet: <a href=\"/accounts\">add one</a> first.</p>";
        return Ok(Html(page("New dataflow", "/wizard", body)));
    }
    let body = format!(
        r#"<ol class="steps" id="steps"><li>Account</li><li>Select data</li><li>Dataset</li><li>Dataflow detail</li><li>Mapping</li><li>Scheduling</li><li>Review</li></ol>
<form id="wizard" autocomplete="off">
<section class="step" data-step="1"><h2>Connect a Stripe account</h2>
<label>Account <select name="account" id="w-account">{accounts}</select></label></section>
<section class="step" data-step="2"><h2>Select data</h2>
<label>Resource path <select name="resource" id="w-resource">{resources}</select></label>
<div id="w-preview" class="preview"></div></section>
<section class="step" data-step="3"><h2>Dataset detail</h2>
<label><input type="radio" name="dataset_mode" value="new" checked> New dataset</label>
<label><input type="radio" name="dataset_mode" value="existing" {existing_disabled}> Existing dataset</label>
<div id="w-new-dataset" class="grid">
<label>Output dataset name <input name="new_name" id="w-new-name"></label>
<label>Description <input name="new_description"></label>
<label><input type="checkbox" name="profile"> Profile dataset</label>
<label><input type="checkbox" name="error_diagnostics"> Error diagnostics</label>
<label><input type="checkbox" name="partial" id="w-partial"> Partial ingestion</label>
<label>Error threshold % <input name="threshold" type="number" min="0" max="100" step="any" value="5"></label></div>
<div id="w-existing-dataset" hidden><label>Dataset <select name="dataset">{datasets}</select></label></div></section>
<section class="step" data-step="4"><h2>Dataflow detail</h2>
<label>Dataflow name <input name="name" id="w-name"></label>
<label>Description <input name="description"></label>
<fieldset><legend>Alerts</legend>
<label><input type="checkbox" name="run_start"> Sources dataflow run start</label>
<label><input type="checkbox" name="run_success"> Sources dataflow run success</label>
<label><input type="checkbox" name="run_failure"> Sources dataflow run failure</label></fieldset>
<label>Alert webhook <input name="alert_webhook" placeholder="https://… (optional)"></label></section>
<section class="step" data-step="5"><h2>Mapping</h2>
<textarea name="sql" id="w-sql" rows="14" spellcheck="false"></textarea>
<div class="row"><button type="button" id="w-check">Check</button> <button type="button" id="w-map-preview">Preview XDM rows</button></div>
<div id="w-mapping-result"></div></section>
<section class="step" data-step="6"><h2>Scheduling</h2>
<label>Frequency <select name="frequency" id="w-frequency">{frequencies}</select></label>
<label>Interval <input name="interval" id="w-interval" type="number" min="1" value="1"></label>
<label>Start time (UTC) <input name="start_time" type="datetime-local"></label>
<label><input type="checkbox" name="backfill" checked> Backfill</label></section>
<section class="step" data-step="7"><h2>Review</h2><dl id="w-review"></dl></section>
<p id="message" class="message"></p>
<div class="row"><button type="button" id="w-back">Back</button> <button type="button" id="w-next">Next</button> <button type="submit" id="w-finish" hidden>Finish</button></div>
</form>"#,
        accounts = options(&accounts, None),
        resources = options(&resources, None),
        datasets = options(&datasets, None),
        frequencies = options(&frequencies, Some("once")),
        existing_disabled = if datasets.is_empty() { "disabled" } else { "" },
    );
    Ok(Html(page("New dataflow", "/wizard", &body)))
}

pub(crate) async fn dataflows(State(c): Shared) -> Page {
    let cat = c.catalog()?;
    let list = cat.list_dataflows()?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            let n = esc(&f.name);
            let toggle = if f.enabled { "disable" } else { "enable" };
            vec![
                format!("<a href=\"/monitoring?dataflow={n}\">{n}</a>"),
                f.resource.path().to_string(),
                esc(&f.account),
                esc(&f.dataset),
                esc(&schedule_of(f)),
                if f.enabled { "enabled".into() } else { "disabled".into() },
                format!("v{}", f.mapping_version),
                f.etag.to_string(),
                format!(
                    "<button data-action=\"run\" data-name=\"{n}\">Run now</button> \
<button data-action=\"{toggle}\" data-name=\"{n}\">{}</button> \
<button data-action=\"edit\" data-name=\"{n}\" data-etag=\"{}\" data-description=\"{}\" data-frequency=\"{}\" data-interval=\"{}\">Update</button> \
<button class=\"danger\" data-action=\"delete\" data-name=\"{n}\">Delete</button>",
                    if f.enabled { "Disable" } else { "Enable" },
                    f.etag,
                    esc(f.description.as_deref().unwrap_or("")),
                    f.schedule.frequency,
                    f.schedule.interval.map(|i| i.to_string()).unwrap_or_default(),
                ),
            ]
        })
        .collect();
    let frequencies: Vec<String> = Frequency::ALL
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    let body = format!(
        "{}<form id=\"edit-dataflow\" class=\"grid\" hidden><h2>Update <span id=\"e-name\"></span></h2>\
<input type=\"hidden\" name=\"name\"><label>etag <input name=\"etag\" readonly></label>\
<label>Description <input name=\"description\"></label>\
<label>Frequency <select name=\"frequency\">{}</select></label>\
<label>Interval <input name=\"interval\" type=\"number\" min=\"1\"></label>\
<label>Mapping SQL (empty: keep) <textarea name=\"sql\" rows=\"6\"></textarea></label>\
<button type=\"submit\">Save</button></form><p id=\"message\" class=\"message\"></p>",
        table(
            "dataflows",
            &["Name", "Resource", "Account", "Dataset", "Schedule", "State", "Mapping", "etag", ""],
            &rows,
            "No dataflow yet: create one with the wizard.",
        ),
        options(&frequencies, None)
    );
    Ok(Html(page("Dataflows", "/dataflows", &body)))
}

#[derive(Deserialize)]
pub(crate) struct FlowFilter {
    dataflow: Option<String>,
}

fn flow_picker(flows: &[Dataflow], selected: Option<&str>, all: bool) -> String {
    let names: Vec<String> = flows.iter().map(|f| f.name.clone()).collect();
    let any = if all {
        "<option value=\"\">all dataflows</option>"
    } else {
        ""
    };
    format!(
        "<form class=\"row\" method=\"get\"><label>Dataflow <select name=\"dataflow\" onchange=\"this.form.submit()\">{any}{}</select></label></form>",
        options(&names, selected)
    )
}

pub(crate) async fn monitoring(State(c): Shared, Query(q): Query<FlowFilter>) -> Page {
    let cat = c.catalog()?;
    let flows = cat.list_dataflows()?;
    let selected = q.dataflow.filter(|d| !d.is_empty());
    let runs = crate::app::runs::list(&cat, selected.as_deref(), Some(50))?;
    // Oldest first for the charts, the last 20 runs.
    let charted: Vec<&Run> = runs.iter().take(20).rev().collect();
    let labels: Vec<String> = charted.iter().map(|r| format!("#{}", r.id)).collect();
    let records = charts::stacked_bars(
        "chart-records",
        "Records per run",
        &labels,
        &[
            (
                "ingested".into(),
                charted.iter().map(|r| r.ingested()).collect(),
            ),
            (
                "failed".into(),
                charted.iter().map(|r| r.counts.rejected).collect(),
            ),
        ],
    );
    let errors: Vec<_> = charted
        .iter()
        .map(|r| r.counts.rejected_by_code.clone())
        .collect();
    let rejected = charts::stacked_bars(
        "chart-rejected",
        "Rejected rows by code",
        &labels,
        &charts::by_code(&errors),
    );
    let received: u64 = runs.iter().map(|r| r.counts.fetched).sum();
    let ingested: u64 = runs.iter().map(|r| r.ingested()).sum();
    let failed: u64 = runs.iter().map(|r| r.counts.rejected).sum();
    let body = format!(
        "{}<section class=\"cards\" id=\"totals\"><div class=\"card\"><b>{received}</b> received</div>\
<div class=\"card\"><b>{ingested}</b> ingested</div><div class=\"card\"><b>{failed}</b> failed</div></section>\
<h2>Running now</h2><div id=\"live\" class=\"live\"><p class=\"empty\">No run in progress.</p></div>\
<div class=\"charts\">{records}{rejected}</div><h2>Runs</h2>{}",
        flow_picker(&flows, selected.as_deref(), true),
        runs_table(&runs)
    );
    Ok(Html(page("Monitoring", "/monitoring", &body)))
}

pub(crate) async fn rejected(State(c): Shared, Query(q): Query<FlowFilter>) -> Page {
    let cat = c.catalog()?;
    let flows = cat.list_dataflows()?;
    let selected = q
        .dataflow
        .filter(|d| !d.is_empty())
        .or_else(|| flows.first().map(|f| f.name.clone()));
    let Some(name) = selected else {
        let body = "<p class=\"empty\">No dataflow yet.</p>";
        return Ok(Html(page("Rejected rows", "/rejected", body)));
    };
    let summary = crate::app::rejected::summary(&cat, &c.runner.out_dir, &name, 3)?;
    let rows: Vec<Vec<String>> = summary
        .by_code
        .iter()
        .map(|g| {
            let sample = g.samples.first().map_or(String::new(), |s| {
                format!(
                    "{}: {}",
                    esc(s.object_id.as_deref().unwrap_or("(no id)")),
                    esc(&s.message)
                )
            });
            vec![
                esc(&g.code),
                esc(g.column.as_deref().unwrap_or("(whole row)")),
                g.count.to_string(),
                sample,
            ]
        })
        .collect();
    let flow = cat.dataflow(&name)?;
    let mapping = cat.mapping(&name, None).map(|m| m.sql).unwrap_or_default();
    let body = format!(
        "{}<p><b id=\"rejected-total\">{}</b> rejected rows in the runs of {}.</p>{}\
<h2>SQL</h2><p class=\"hint\">Tables: <code>rejected</code> (this dataflow's rejected rows) and the mirror's <code>{}</code>.</p>\
<form id=\"sql\" data-dataflow=\"{}\"><textarea name=\"sql\" rows=\"4\" spellcheck=\"false\">SELECT code, \"column\", count(*) AS n FROM rejected GROUP BY code, \"column\" ORDER BY n DESC</textarea>\
<button type=\"submit\">Run query</button></form><div id=\"sql-result\"></div>\
<h2>Replay with a new mapping</h2><form id=\"replay\" data-dataflow=\"{}\"><textarea name=\"sql\" rows=\"10\" spellcheck=\"false\">{}</textarea>\
<button type=\"submit\">Replay the latest batch's rejected rows</button></form><div id=\"replay-result\"></div>\
<p id=\"message\" class=\"message\"></p>",
        flow_picker(&flows, Some(&name), false),
        summary.total,
        esc(&name),
        table(
            "rejected-summary",
            &["Code", "Field", "Rows", "Example"],
            &rows,
            "No rejected row.",
        ),
        flow.resource.path(),
        esc(&name),
        esc(&name),
        esc(&mapping)
    );
    Ok(Html(page("Rejected rows", "/rejected", &body)))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

pub(crate) async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}
