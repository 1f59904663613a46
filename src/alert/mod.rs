//! Run alerts: Platform-shaped run notifications ([`notification`]) delivered to a dataflow's
//! targets ([`deliver`]): a webhook (JSON `POST`) and/or a local command (the JSON on stdin).
//!
//! Platform's three source alerts map to [`AlertKind`]: **Sources Flow Run Start** when a run
//! starts, **Sources Flow Run Success** when it "ends without any errors" and **Sources Flow
//! Run Failure** when it "ends with any errors" ([`end_kind`] decides between the last two).
//!
//! - **Secrets.** A notification is built from a [`Dataflow`] and a [`Run`] only, never from
//!   account keys or upload credentials; the dataflow's description, alert targets and upload
//!   target are left out, and the failure reason is scrubbed of anything shaped like a Stripe key
//!   or a bearer token. A command inherits the environment minus the variables holding this
//!   tool's own secrets ([`SECRET_ENV_VARS`]). A webhook target is recorded without its user
//!   info, query or fragment ([`webhook_display`]).
//! - **Delivery** never fails as a call: every outcome, including a target that could not be
//!   tried, comes back as an [`AlertDelivery`] ready for [`crate::catalog::Catalog::record_alert`].
//!   Both targets are tried concurrently, each with bounded, jittered exponential backoff.

mod command;
#[cfg(feature = "test-support")]
pub mod loopback;
mod webhook;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::catalog::{AlertDelivery, AlertKind, Alerts, Dataflow, Run};
use crate::net::retry::RetryPolicy;

/// Environment variables holding this tool's secrets, removed from an alert command's
/// environment.
pub const SECRET_ENV_VARS: [&str; 4] = [
    "STRIPE_API_KEY",
    crate::upload::ENV_ACCESS_TOKEN,
    crate::upload::ENV_API_KEY,
    crate::upload::ENV_CLIENT_SECRET,
];

/// The longest a command target is shown in [`AlertDelivery::target`] (in characters, after
/// `cmd: `).
pub const COMMAND_DISPLAY_CHARS: usize = 200;

/// The notification schema's name and version (as Platform's `run-notification` 1.0).
pub const SCHEMA: (&str, &str) = ("run-notification", "1.0");

/// Where a dataflow's alerts go: a webhook URL (JSON `POST`) and/or a local command, run via
/// `sh -c`, that gets the payload JSON on stdin and the environment variables
/// `STRIPE_XDM_ALERT_KIND`, `STRIPE_XDM_DATAFLOW`, `STRIPE_XDM_RUN_ID` and
/// `STRIPE_XDM_RUN_STATUS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertTargets {
    /// An `http://` or `https://` URL.
    pub webhook: Option<String>,
    /// A shell command line.
    pub command: Option<String>,
}

/// Why alert targets are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// The webhook is not an absolute `http(s)` URL with a host.
    #[error("alert webhook {shown} is not usable: {reason}")]
    Webhook {
        /// The URL as [`webhook_display`] shows it (no user info or query).
        shown: String,
        /// What is wrong.
        reason: String,
    },
    /// The command is empty or cannot be passed to a process.
    #[error("alert command is not usable: {0}")]
    Command(String),
}

impl AlertTargets {
    /// True when neither a webhook nor a command is set.
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.command.is_none()
    }

    /// Checks the targets that are set: the webhook must be an absolute `http://` or `https://`
    /// URL with a host; the command must be non-blank and free of NUL bytes.
    pub fn validate(&self) -> Result<(), AlertError> {
        if let Some(url) = &self.webhook {
            parse_webhook(url)?;
        }
        if let Some(cmd) = &self.command {
            check_command(cmd)?;
        }
        Ok(())
    }
}

fn check_command(cmd: &str) -> Result<(), AlertError> {
    if cmd.trim().is_empty() {
        return Err(AlertError::Command("it is empty".into()));
    }
    if cmd.contains('\0') {
        return Err(AlertError::Command("it contains a NUL byte".into()));
    }
    Ok(())
}

fn parse_webhook(url: &str) -> Result<reqwest::Url, AlertError> {
    let bad = |reason: &str| AlertError::Webhook {
        shown: webhook_display(url),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("it must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    Ok(parsed)
}

/// How hard [`deliver`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Tries per target in all (0 counts as 1). Default 4.
    pub attempts: u32,
    /// The first backoff; it doubles per retry (jittered to 50–100 %, never below this).
    /// Default 1 s.
    pub backoff_base: Duration,
    /// The cap of the backoff and of a webhook's `Retry-After`. Default 30 s.
    pub backoff_max: Duration,
    /// Per attempt: the whole HTTP exchange, or the command's run time (a command still running
    /// is killed with its process group). Default 10 s.
    pub timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            attempts: 4,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Whether a dataflow's alert settings ask for `kind`.
pub fn enabled(alerts: &Alerts, kind: AlertKind) -> bool {
    match kind {
        AlertKind::RunStart => alerts.run_start,
        AlertKind::RunSuccess => alerts.run_success,
        AlertKind::RunFailure => alerts.run_failure,
    }
}

/// The alert a run's end sends (the rule of [`Run::end_alert`]):
///
/// - [`AlertKind::RunSuccess`] only when the run's status is `success` (its batch committed)
///   **and** no record failed (`failed == 0` and no error counts): Platform's "ends without any
///   errors".
/// - [`AlertKind::RunFailure`] otherwise: a `failed` run (no batch committed), and also a
///   `success` run whose batch committed with rejected rows under partial ingestion — it "ended
///   with errors". (Platform's notifications doc would still class such a run
///   `sources_flow_run_success` while under the error threshold; the UI's alert wording, which
///   this follows, does not.) A run that has not ended (`scheduled`, `running`) has not ended
///   without errors either, so it also gets `RunFailure`; callers send [`AlertKind::RunStart`]
///   for a start.
pub fn end_kind(run: &Run) -> AlertKind {
    run.end_alert().unwrap_or(AlertKind::RunFailure)
}

/// Platform's I/O event code for `kind`: `sources_flow_run_start`, `sources_flow_run_success`,
/// `sources_flow_run_failure`.
pub fn event_code(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::RunStart => "sources_flow_run_start",
        AlertKind::RunSuccess => "sources_flow_run_success",
        AlertKind::RunFailure => "sources_flow_run_failure",
    }
}

/// The run notification, shaped like Platform's (`event_id`, an event code, and the run object
/// with `metrics.{durationSummary, sizeSummary, recordSummary, fileSummary, statusSummary}`).
/// Times are unix seconds; `kind` (not the run's status) chooses the event code.
///
/// ```json
/// { "event_id": "<uuid v4>", "event_code": "sources_flow_run_failure", "kind": "run_failure",
///   "provider": "stripe-xdm", "schema": {"name": "run-notification", "version": "1.0"},
///   "timestamp": 1767225600,
///   "event": { "id": 7, "flowId": 2, "flowName": "charges-hourly", "account": "acme",
///     "resource": "charges", "dataset": "payments", "scheduledTime": 1767222000,
///     "createdAt": 1767222000, "mappingVersion": 3, "window": {"gte": 1767218400, "lt": 1767222000},
///     "batchId": "…",
///     "metrics": {
///       "durationSummary": {"startedAtUTC": 1767222001, "completedAtUTC": 1767222009, "durationSeconds": 8},
///       "sizeSummary": {"inputBytes": 20480, "outputBytes": 8192},
///       "recordSummary": {"inputRecordCount": 100, "outputRecordCount": 98, "failedRecordCount": 2,
///                         "ingestedRatePercent": 98.0},
///       "fileSummary": {"outputFileCount": 1},
///       "statusSummary": {"status": "success", "errors": [{"code": "XDM-1001-400", "count": 2}],
///                         "failureReason": null} } } }
/// ```
///
/// It never contains a secret: it sees only `flow` and `run`, leaves out the dataflow's
/// description and targets, and masks key- or token-shaped text in the failure reason.
pub fn notification(kind: AlertKind, flow: &Dataflow, run: &Run) -> Value {
    let errors: Vec<Value> = run
        .counts
        .rejected_by_code
        .iter()
        .map(|(code, count)| json!({"code": code, "count": count}))
        .collect();
    let duration = match (run.started_at, run.ended_at) {
        (Some(s), Some(e)) => Some((e - s).max(0)),
        _ => None,
    };
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_code": event_code(kind),
        "kind": kind.as_str(),
        "provider": "stripe-xdm",
        "schema": {"name": SCHEMA.0, "version": SCHEMA.1},
        "timestamp": unix_now(),
        "event": {
            "id": run.id,
            "flowId": flow.id,
            "flowName": flow.name,
            "account": flow.account,
            "resource": flow.resource,
            "dataset": flow.dataset,
            "scheduledTime": run.scheduled_time,
            "createdAt": run.created_at,
            "mappingVersion": run.mapping_version,
            "window": run.window.map(|w| json!({"gte": w.gte, "lt": w.lt})),
            "batchId": run.batch_id,
            "metrics": {
                "durationSummary": {
                    "startedAtUTC": run.started_at,
                    "completedAtUTC": run.ended_at,
                    "durationSeconds": duration,
                },
                "sizeSummary": {"inputBytes": run.counts.bytes_in, "outputBytes": run.counts.bytes_out},
                "recordSummary": {
                    "inputRecordCount": run.counts.fetched,
                    "outputRecordCount": run.ingested(),
                    "failedRecordCount": run.counts.rejected,
                    "ingestedRatePercent": run.ingested_rate(),
                },
                "fileSummary": {"outputFileCount": run.counts.files},
                "statusSummary": {
                    "status": run.status.as_str(),
                    "errors": errors,
                    "failureReason": run.failure_reason.as_deref().map(scrub),
                },
            },
        },
    })
}

/// Masks text shaped like a Stripe key (`sk_live_…`, `rk_test_…`, `whsec_…`) or a bearer token.
fn scrub(text: &str) -> String {
    use std::sync::OnceLock;
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"(?i)\b(?:(?:sk|rk|pk)_(?:live|test)_|whsec_)[A-Za-z0-9]+|\bbearer\s+[A-Za-z0-9._~+/=-]+",
        )
        .expect("the scrub pattern compiles")
    });
    re.replace_all(text, "[redacted]").into_owned()
}

/// How a webhook target is recorded and shown: `scheme://host[:port]/…` (see
/// [`crate::secret::mask_url`]: webhook paths often carry a token).
pub fn webhook_display(url: &str) -> String {
    crate::secret::mask_url(url)
}

/// How a command target is recorded and shown: `cmd: <command>`, the command cut to
/// [`COMMAND_DISPLAY_CHARS`] characters (ending in `…` when cut).
pub fn command_display(command: &str) -> String {
    let command = command.trim();
    if command.chars().count() <= COMMAND_DISPLAY_CHARS {
        format!("cmd: {command}")
    } else {
        let cut: String = command.chars().take(COMMAND_DISPLAY_CHARS - 1).collect();
        format!("cmd: {cut}…")
    }
}

/// Delivers one alert to each configured target (webhook first, then command; tried
/// concurrently) and returns one [`AlertDelivery`] per target (`id` 0, not yet recorded).
///
/// - **Webhook**: `POST` of the JSON with `Content-Type: application/json`,
///   `User-Agent: stripe-xdm/<version>`, `X-Stripe-Xdm-Event: <kind>` and, when the payload has
///   one, `X-Stripe-Xdm-Event-Id: <event_id>` (the same on every retry, for de-duplication).
///   2xx is delivered. Network errors, timeouts, 408, 429 and 5xx are retried (a
///   `Retry-After` in seconds lengthens the wait, up to `backoff_max`); any other status
///   (3xx — redirects are not followed — and 4xx) is final.
/// - **Command**: `sh -c <command>` with the JSON on stdin and `STRIPE_XDM_ALERT_KIND`
///   (`run_start`, …), `STRIPE_XDM_RUN_ID` (`run_id`), `STRIPE_XDM_DATAFLOW` and
///   `STRIPE_XDM_RUN_STATUS` (the payload's `event.flowName` and
///   `event.metrics.statusSummary.status`, empty when absent), and without
///   [`SECRET_ENV_VARS`]. Exit 0 is delivered; a non-zero
///   exit, a signal, a start failure or the timeout (the process group is killed) is retried.
///   Stdout is discarded; the end of stderr goes into the error.
///
/// `delivered_at` is when the last attempt ended; `error` the last attempt's error. A target
/// that cannot be tried at all (an invalid URL, a blank command) is reported with 0 attempts.
/// Never panics and never fails: failures are data.
pub async fn deliver(
    targets: &AlertTargets,
    kind: AlertKind,
    payload: &Value,
    run_id: i64,
    opts: &DeliveryOptions,
) -> Vec<AlertDelivery> {
    let body = payload.to_string();
    let record = |target: String, (attempts, result): (u32, Result<(), String>)| AlertDelivery {
        id: 0,
        run_id,
        kind,
        target,
        attempts,
        ok: result.is_ok(),
        delivered_at: unix_now(),
        payload: body.clone(),
        error: result.err(),
    };
    let web = async {
        let url = targets.webhook.as_ref()?;
        let outcome = match parse_webhook(url) {
            Ok(u) => webhook::deliver(u, kind, payload, &body, opts).await,
            Err(e) => (0, Err(e.to_string())),
        };
        Some(record(webhook_display(url), outcome))
    };
    let cmd = async {
        let line = targets.command.as_ref()?;
        let outcome = match check_command(line) {
            Ok(()) => command::deliver(line, kind, run_id, payload, &body, opts).await,
            Err(e) => (0, Err(e.to_string())),
        };
        Some(record(command_display(line), outcome))
    };
    let (web, cmd) = futures::join!(web, cmd);
    web.into_iter().chain(cmd).collect()
}

/// One attempt's outcome, for [`retrying`].
enum Attempt {
    /// Delivered.
    Done,
    /// Worth another try (after at least `after`, when given).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Not worth another try.
    Final(String),
}

/// Runs `attempt` until it is done, fails for good, or `opts.attempts` are spent; returns the
/// attempts made and the last error.
async fn retrying<F, Fut>(
    opts: &DeliveryOptions,
    what: &str,
    mut attempt: F,
) -> (u32, Result<(), String>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let total = opts.attempts.max(1);
    let policy = RetryPolicy {
        max_retries: total - 1,
        base: opts.backoff_base,
        max: opts.backoff_max,
    };
    let mut made = 0;
    loop {
        made += 1;
        let (error, after) = match attempt().await {
            Attempt::Done => return (made, Ok(())),
            Attempt::Final(e) => return (made, Err(e)),
            Attempt::Retry { error, after } => (error, after),
        };
        if made >= total {
            return (made, Err(error));
        }
        let wait = policy.delay(made, after.map(|a| a.min(opts.backoff_max)));
        tracing::warn!(target_kind = what, attempt = made, wait_ms = wait.as_millis() as u64, error = %error, "retrying an alert delivery");
        tokio::time::sleep(wait).await;
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_display_is_cut_at_200_chars() {
        assert_eq!(command_display("  notify-send hi "), "cmd: notify-send hi");
        let long = "x".repeat(500);
        let shown = command_display(&long);
        assert_eq!(shown.chars().count(), "cmd: ".len() + COMMAND_DISPLAY_CHARS);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn validation() {
        let ok = AlertTargets {
            webhook: Some("https://example.com/hook".into()),
            command: Some("true".into()),
        };
        assert!(ok.validate().is_ok());
        assert!(AlertTargets::default().validate().is_ok());
        assert!(AlertTargets::default().is_empty());
        for bad in [
            "ftp://example.com/x",
            "example.com/hook",
            "http://",
            "https://u:p@/x",
        ] {
            let t = AlertTargets {
                webhook: Some(bad.into()),
                command: None,
            };
            let e = t.validate().unwrap_err();
            assert!(matches!(e, AlertError::Webhook { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains(":p@"), "{e}");
        }
        for bad in ["", "   ", "a\0b"] {
            let t = AlertTargets {
                webhook: None,
                command: Some(bad.into()),
            };
            assert!(
                matches!(t.validate(), Err(AlertError::Command(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scrub_masks_keys_and_tokens() {
        let s = scrub("Stripe said no to sk_live_51AbC0123 and Bearer eyJ.abc-def; rk_test_9 ok");
        assert!(!s.contains("sk_live_51"), "{s}");
        assert!(!s.contains("eyJ"), "{s}");
        assert!(!s.contains("rk_test_9"), "{s}");
        assert!(s.contains("Stripe said no"), "{s}");
    }

    #[test]
    fn event_codes() {
        assert_eq!(event_code(AlertKind::RunStart), "sources_flow_run_start");
        assert_eq!(
            event_code(AlertKind::RunSuccess),
            "sources_flow_run_success"
        );
        assert_eq!(
            event_code(AlertKind::RunFailure),
            "sources_flow_run_failure"
        );
    }
}
