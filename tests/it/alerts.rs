//! Run alerts: webhook delivery with retries against the loopback receiver, command targets
//! (stdin, environment, retries, timeout that kills the process group), the notification's
//! shape and secrecy, the end-of-run rule and how targets are shown.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use stripe_xdm::alert::loopback::WebhookReceiver;
use stripe_xdm::alert::{
    self, command_display, deliver, end_kind, notification, webhook_display, AlertTargets,
    DeliveryOptions,
};
use stripe_xdm::catalog::{AlertKind, Alerts, Dataflow, Run, RunStatus};
use stripe_xdm::metrics::RecordCounts;
use stripe_xdm::schedule::{Frequency, Schedule, Window};

/// Three tries, millisecond backoffs: tests never wait on real backoff.
fn opts() -> DeliveryOptions {
    DeliveryOptions {
        attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

fn flow() -> Dataflow {
    Dataflow {
        id: 2,
        name: "charges-hourly".into(),
        description: Some("owner: ops (password hunter2)".into()),
        account: "acme".into(),
        resource: stripe_xdm::Resource::Charges,
        dataset: "payments".into(),
        alerts: Alerts {
            run_start: true,
            run_success: true,
            run_failure: true,
        },
        schedule: Schedule {
            frequency: Frequency::Hour,
            interval: Some(1),
            start_time: 1_767_218_400,
            backfill: Some(false),
        },
        alert_webhook: Some("https://hooks.example.com/services/T0/B0/xoxb-SECRET".into()),
        alert_command: Some("notify --token SECRET-CMD".into()),
        upload: None,
        stripe_account: None,
        enabled: true,
        etag: 5,
        mapping_version: 3,
        created_at: 1_767_200_000,
        updated_at: 1_767_200_000,
    }
}

/// A run of [`flow`] that ended with `status` after receiving 100 records, `failed` of them
/// rejected with `XDM-1001-400`.
fn ended(status: RunStatus, failed: u64) -> Run {
    let errors: BTreeMap<String, u64> = if failed > 0 {
        [("XDM-1001-400".to_string(), failed)].into()
    } else {
        BTreeMap::new()
    };
    Run {
        id: 7,
        dataflow: "charges-hourly".into(),
        status,
        scheduled_time: 1_767_222_000,
        created_at: 1_767_222_000,
        started_at: Some(1_767_222_001),
        ended_at: Some(1_767_222_009),
        window: Some(Window {
            gte: Some(1_767_218_400),
            lt: 1_767_222_000,
        }),
        counts: RecordCounts {
            fetched: 100,
            ingested: 100 - failed,
            rejected: failed,
            rejected_by_code: errors,
            bytes_in: 20_480,
            bytes_out: 8_192,
            files: 1,
            ..Default::default()
        },
        batch_id: Some("batch-01".into()),
        mapping_version: 3,
        failure_reason: None,
        owner_pid: None,
        upload: None,
        progress_as_of: None,
    }
}

fn running() -> Run {
    Run {
        status: RunStatus::Running,
        ended_at: None,
        counts: RecordCounts::default(),
        batch_id: None,
        ..ended(RunStatus::Running, 0)
    }
}

fn webhook(url: &str) -> AlertTargets {
    AlertTargets {
        webhook: Some(url.into()),
        command: None,
    }
}

fn command(cmd: &str) -> AlertTargets {
    AlertTargets {
        webhook: None,
        command: Some(cmd.into()),
    }
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[tokio::test]
async fn webhook_is_delivered_on_the_first_try_with_its_headers() {
    let hook = WebhookReceiver::start(vec![]).await.unwrap();
    let payload = notification(
        AlertKind::RunSuccess,
        &flow(),
        &ended(RunStatus::Success, 0),
    );
    let got = deliver(
        &webhook(&hook.url()),
        AlertKind::RunSuccess,
        &payload,
        7,
        &opts(),
    )
    .await;
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert!(d.ok, "{d:?}");
    assert_eq!(
        (d.id, d.run_id, d.kind, d.attempts),
        (0, 7, AlertKind::RunSuccess, 1)
    );
    assert_eq!(d.target, stripe_xdm::alert::webhook_display(&hook.url()));
    assert!(
        d.target.ends_with("/…"),
        "the path (often a token) is masked"
    );
    assert_eq!(d.error, None);
    assert!(d.delivered_at > 1_700_000_000);
    assert_eq!(serde_json::from_str::<Value>(&d.payload).unwrap(), payload);
    assert_eq!(hook.received(), vec![payload.clone()]);
    let req = &hook.seen()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert_eq!(req.headers["content-type"], "application/json");
    assert!(req.headers["user-agent"].starts_with("stripe-xdm/"));
    assert_eq!(req.headers["x-stripe-xdm-event"], "run_success");
    assert_eq!(
        req.headers["x-stripe-xdm-event-id"],
        payload["event_id"].as_str().unwrap()
    );
    hook.shutdown().await;
}

#[tokio::test]
async fn webhook_5xx_is_retried_until_it_is_accepted() {
    let hook = WebhookReceiver::start(vec![500, 503]).await.unwrap();
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let got = deliver(
        &webhook(&hook.url()),
        AlertKind::RunStart,
        &payload,
        7,
        &opts(),
    )
    .await;
    assert!(got[0].ok, "{:?}", got[0]);
    assert_eq!(got[0].attempts, 3);
    assert_eq!(got[0].error, None);
    assert_eq!(hook.requests(), 3);
    let statuses: Vec<u16> = hook.seen().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 503, 200]);
    // Every retry carries the same body and event id, so a receiver can drop duplicates.
    assert!(hook.seen().iter().all(|r| r.body == payload));
    assert_eq!(hook.received(), vec![payload], "only the accepted body");
}

#[tokio::test]
async fn webhook_408_and_429_are_retried_and_other_4xx_are_final() {
    let hook = WebhookReceiver::start(vec![429, 408]).await.unwrap();
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let got = deliver(
        &webhook(&hook.url()),
        AlertKind::RunStart,
        &payload,
        7,
        &opts(),
    )
    .await;
    assert!(got[0].ok && got[0].attempts == 3, "{:?}", got[0]);

    for status in [400, 401, 404, 410] {
        let hook = WebhookReceiver::start(vec![status]).await.unwrap();
        let got = deliver(
            &webhook(&hook.url()),
            AlertKind::RunStart,
            &payload,
            7,
            &opts(),
        )
        .await;
        let d = &got[0];
        assert!(!d.ok, "{d:?}");
        assert_eq!(d.attempts, 1, "{status} is final");
        let err = d.error.as_deref().unwrap();
        assert!(err.contains(&status.to_string()), "{err}");
        assert!(err.contains("scripted status"), "the body's excerpt: {err}");
        assert_eq!(hook.requests(), 1);
    }
}

#[tokio::test]
async fn unreachable_webhook_fails_after_every_attempt() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let started = Instant::now();
    let got = deliver(&webhook(&url), AlertKind::RunStart, &payload, 7, &opts()).await;
    let d = &got[0];
    assert!(!d.ok);
    assert_eq!(d.attempts, 3);
    assert_eq!(d.target, format!("http://127.0.0.1:{port}/…"));
    let err = d.error.as_deref().unwrap();
    assert!(err.contains("connection"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "backoffs stay short"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_backoff_max() {
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    // Asked to wait 30 s, capped at backoff_max (20 ms).
    let hook = WebhookReceiver::start(vec![503]).await.unwrap();
    hook.set_retry_after(Some(30));
    let started = Instant::now();
    let got = deliver(
        &webhook(&hook.url()),
        AlertKind::RunStart,
        &payload,
        7,
        &opts(),
    )
    .await;
    assert!(got[0].ok && got[0].attempts == 2, "{:?}", got[0]);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Asked to wait 1 s with room under backoff_max: the wait is at least that.
    let hook = WebhookReceiver::start(vec![429]).await.unwrap();
    hook.set_retry_after(Some(1));
    let o = DeliveryOptions {
        backoff_max: Duration::from_secs(5),
        ..opts()
    };
    let started = Instant::now();
    let got = deliver(&webhook(&hook.url()), AlertKind::RunStart, &payload, 7, &o).await;
    assert!(got[0].ok && got[0].attempts == 2, "{:?}", got[0]);
    assert!(started.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn slow_webhook_times_out_per_attempt() {
    let hook = WebhookReceiver::start(vec![]).await.unwrap();
    hook.set_delay(Duration::from_secs(3));
    let o = DeliveryOptions {
        attempts: 2,
        timeout: Duration::from_millis(200),
        ..opts()
    };
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let started = Instant::now();
    let got = deliver(&webhook(&hook.url()), AlertKind::RunStart, &payload, 7, &o).await;
    assert!(!got[0].ok);
    assert_eq!(got[0].attempts, 2);
    assert!(
        got[0].error.as_deref().unwrap().contains("timeout"),
        "{:?}",
        got[0].error
    );
    assert_eq!(hook.requests(), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn command_gets_the_payload_on_stdin_and_the_run_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (body, env) = (dir.path().join("body.json"), dir.path().join("env.txt"));
    let cmd = format!(
        "cat > {}; echo \"$STRIPE_XDM_ALERT_KIND|$STRIPE_XDM_DATAFLOW|$STRIPE_XDM_RUN_ID|$STRIPE_XDM_RUN_STATUS\" >> {}",
        sh_quote(&body),
        sh_quote(&env)
    );
    let run = ended(RunStatus::Success, 2);
    let payload = notification(end_kind(&run), &flow(), &run);
    let got = deliver(&command(&cmd), AlertKind::RunFailure, &payload, 7, &opts()).await;
    let d = &got[0];
    assert!(d.ok, "{d:?}");
    assert_eq!(d.attempts, 1);
    assert_eq!(d.target, format!("cmd: {cmd}"));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&body).unwrap()).unwrap();
    assert_eq!(written, payload);
    assert_eq!(
        std::fs::read_to_string(&env).unwrap().trim(),
        "run_failure|charges-hourly|7|success"
    );
}

#[tokio::test]
async fn failing_command_is_retried_then_reported_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let tries = dir.path().join("tries");
    let cmd = format!("echo try >> {}; echo boom >&2; exit 3", sh_quote(&tries));
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let got = deliver(&command(&cmd), AlertKind::RunStart, &payload, 7, &opts()).await;
    let d = &got[0];
    assert!(!d.ok);
    assert_eq!(d.attempts, 3);
    let err = d.error.as_deref().unwrap();
    assert!(err.contains("status 3") && err.contains("boom"), "{err}");
    assert_eq!(std::fs::read_to_string(&tries).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn command_past_its_timeout_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let survivor = dir.path().join("survived");
    // A background child that would write a file after 1 s, and a long sleep.
    let cmd = format!("(sleep 1; echo yes > {}) & sleep 10", sh_quote(&survivor));
    let o = DeliveryOptions {
        attempts: 1,
        timeout: Duration::from_millis(300),
        ..opts()
    };
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let started = Instant::now();
    let got = deliver(&command(&cmd), AlertKind::RunStart, &payload, 7, &o).await;
    let elapsed = started.elapsed();
    assert!(!got[0].ok);
    assert_eq!(got[0].attempts, 1);
    let err = got[0].error.as_deref().unwrap();
    assert!(err.contains("timed out"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!survivor.exists(), "the process group was killed");
}

#[tokio::test]
async fn both_targets_get_one_delivery_each() {
    let hook = WebhookReceiver::start(vec![]).await.unwrap();
    let targets = AlertTargets {
        webhook: Some(hook.url()),
        command: Some("cat > /dev/null".into()),
    };
    let run = ended(RunStatus::Success, 0);
    let payload = notification(AlertKind::RunSuccess, &flow(), &run);
    let got = deliver(&targets, AlertKind::RunSuccess, &payload, run.id, &opts()).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].target,
        stripe_xdm::alert::webhook_display(&hook.url())
    );
    assert_eq!(got[1].target, "cmd: cat > /dev/null");
    assert!(got.iter().all(|d| d.ok && d.attempts == 1 && d.run_id == 7));
    assert_eq!(got[0].payload, got[1].payload);

    assert!(deliver(
        &AlertTargets::default(),
        AlertKind::RunSuccess,
        &payload,
        7,
        &opts()
    )
    .await
    .is_empty());
}

#[tokio::test]
async fn unusable_targets_are_reported_without_an_attempt() {
    let targets = AlertTargets {
        webhook: Some("ftp://user:pw@example.com/x?k=v".into()),
        command: Some("   ".into()),
    };
    assert!(targets.validate().is_err());
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let got = deliver(&targets, AlertKind::RunStart, &payload, 7, &opts()).await;
    assert_eq!(got.len(), 2);
    for d in &got {
        assert!(!d.ok && d.attempts == 0 && d.error.is_some(), "{d:?}");
        assert!(!d.target.contains("pw") && !d.error.as_deref().unwrap().contains("pw"));
    }
    assert_eq!(got[0].target, "ftp://example.com/…");
}

#[tokio::test]
async fn webhook_target_is_shown_without_user_info_or_query() {
    let hook = WebhookReceiver::start(vec![]).await.unwrap();
    let port = hook.addr().port();
    let url = format!("http://alice:s3cret@127.0.0.1:{port}/hook?token=abc#x");
    let payload = notification(AlertKind::RunStart, &flow(), &running());
    let got = deliver(&webhook(&url), AlertKind::RunStart, &payload, 7, &opts()).await;
    assert!(got[0].ok, "{:?}", got[0]);
    assert_eq!(got[0].target, format!("http://127.0.0.1:{port}/…"));
    // The receiver still got the query and the user info (as basic auth).
    let req = &hook.seen()[0];
    assert_eq!(req.query.as_deref(), Some("token=abc"));
    assert!(req.headers["authorization"].starts_with("Basic "));

    assert_eq!(
        webhook_display("https://u:p@hooks.example.com:8443/services/T/B?sig=1"),
        "https://hooks.example.com:8443/…"
    );
    assert_eq!(command_display("notify-send done"), "cmd: notify-send done");
    assert_eq!(command_display(&"y".repeat(300)).chars().count(), 205);
}

#[test]
fn notification_has_platform_run_fields_for_each_kind() {
    let f = flow();

    let start = notification(AlertKind::RunStart, &f, &running());
    assert_eq!(start["event_code"], "sources_flow_run_start");
    assert_eq!(start["kind"], "run_start");
    assert_eq!(start["schema"]["name"], "run-notification");
    assert_eq!(
        start["event"]["metrics"]["statusSummary"]["status"],
        "running"
    );
    assert!(start["event"]["metrics"]["durationSummary"]["completedAtUTC"].is_null());
    assert_eq!(
        start["event"]["metrics"]["durationSummary"]["startedAtUTC"],
        1_767_222_001
    );

    let ok = notification(AlertKind::RunSuccess, &f, &ended(RunStatus::Success, 0));
    assert_eq!(ok["event_code"], "sources_flow_run_success");
    let e = &ok["event"];
    assert_eq!((e["id"].as_i64(), e["flowId"].as_i64()), (Some(7), Some(2)));
    assert_eq!(e["flowName"], "charges-hourly");
    assert_eq!(
        (&e["account"], &e["resource"], &e["dataset"]),
        (
            &Value::from("acme"),
            &Value::from("charges"),
            &Value::from("payments")
        )
    );
    assert_eq!(e["window"]["gte"], 1_767_218_400);
    assert_eq!(e["window"]["lt"], 1_767_222_000);
    assert_eq!(e["batchId"], "batch-01");
    assert_eq!(e["mappingVersion"], 3);
    let m = &e["metrics"];
    assert_eq!(m["durationSummary"]["durationSeconds"], 8);
    assert_eq!(m["sizeSummary"]["inputBytes"], 20_480);
    assert_eq!(m["sizeSummary"]["outputBytes"], 8_192);
    assert_eq!(m["recordSummary"]["inputRecordCount"], 100);
    assert_eq!(m["recordSummary"]["outputRecordCount"], 100);
    assert_eq!(m["recordSummary"]["failedRecordCount"], 0);
    assert_eq!(m["fileSummary"]["outputFileCount"], 1);
    assert_eq!(m["statusSummary"]["errors"], serde_json::json!([]));

    let mut failed = ended(RunStatus::Success, 2);
    failed.failure_reason = Some("Stripe refused key sk_live_51AbCdEf0123456789 (401)".into());
    let bad = notification(end_kind(&failed), &f, &failed);
    assert_eq!(bad["event_code"], "sources_flow_run_failure");
    assert_eq!(bad["kind"], "run_failure");
    let m = &bad["event"]["metrics"];
    assert_eq!(m["recordSummary"]["failedRecordCount"], 2);
    assert_eq!(m["recordSummary"]["ingestedRatePercent"], 98.0);
    assert_eq!(
        m["statusSummary"]["errors"],
        serde_json::json!([{"code": "XDM-1001-400", "count": 2}])
    );
    let reason = m["statusSummary"]["failureReason"].as_str().unwrap();
    assert!(reason.starts_with("Stripe refused key") && !reason.contains("sk_live_51"));

    // Nothing secret-bearing of the dataflow travels: not its description, targets or keys.
    let text = bad.to_string();
    for secret in [
        "hunter2",
        "xoxb-SECRET",
        "SECRET-CMD",
        "hooks.example.com",
        "sk_live",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_ne!(
        ok["event_id"], bad["event_id"],
        "each notification has its own id"
    );
}

#[test]
fn end_kind_is_success_only_without_errors() {
    assert_eq!(
        end_kind(&ended(RunStatus::Success, 0)),
        AlertKind::RunSuccess
    );
    // Committed under partial ingestion with rejected rows: ended with errors.
    assert_eq!(
        end_kind(&ended(RunStatus::Success, 2)),
        AlertKind::RunFailure
    );
    let mut counted = ended(RunStatus::Success, 0);
    counted
        .counts
        .rejected_by_code
        .insert("XDM-1001-400".into(), 1);
    assert_eq!(end_kind(&counted), AlertKind::RunFailure);
    assert_eq!(
        end_kind(&ended(RunStatus::Failed, 0)),
        AlertKind::RunFailure
    );
    assert_eq!(
        end_kind(&ended(RunStatus::Failed, 5)),
        AlertKind::RunFailure
    );
    // Not ended: not "ended without errors".
    assert_eq!(end_kind(&running()), AlertKind::RunFailure);
    for run in [ended(RunStatus::Success, 0), ended(RunStatus::Success, 3)] {
        assert_eq!(
            Some(end_kind(&run)),
            run.end_alert(),
            "agrees with the catalog"
        );
    }
}

#[test]
fn alert_settings_select_kinds() {
    let a = Alerts {
        run_start: false,
        run_success: true,
        run_failure: false,
    };
    assert!(!alert::enabled(&a, AlertKind::RunStart));
    assert!(alert::enabled(&a, AlertKind::RunSuccess));
    assert!(!alert::enabled(&a, AlertKind::RunFailure));
}
