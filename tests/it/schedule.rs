//! Schedule rules, next-run computation with paused time, catch-up after downtime, windows.

use stripe_xdm::schedule::{
    window_for_run, Frequency, Schedule, ScheduleError, Window, MIN_MINUTE_INTERVAL,
    START_TIME_GRACE_SECS,
};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[test]
fn every_rule_is_refused_with_its_name() {
    let cases: Vec<(Schedule, &str)> = vec![
        (
            Schedule {
                interval: Some(1),
                ..Schedule::once(T0)
            },
            "once takes no interval",
        ),
        (
            Schedule::once(T0).with_backfill(false),
            "once takes no backfill",
        ),
        (
            Schedule::every(14, Frequency::Minute, T0),
            "minute interval ≥ 15",
        ),
        (
            Schedule::every(0, Frequency::Hour, T0),
            "interval is never 0",
        ),
        (
            Schedule::every(0, Frequency::Minute, T0),
            "interval is never 0",
        ),
        (
            Schedule {
                interval: None,
                ..Schedule::every(1, Frequency::Day, T0)
            },
            "day requires an interval",
        ),
        (
            Schedule::every(1, Frequency::Week, T0 - START_TIME_GRACE_SECS - 1),
            "start time not in the past",
        ),
    ];
    for (s, rule) in cases {
        let e = s.validate(T0).expect_err(rule).to_string();
        assert!(e.contains(rule), "{rule}: {e}");
    }
}

#[test]
fn valid_boundaries_pass() {
    for s in [
        Schedule::once(T0),
        Schedule::once(T0 - START_TIME_GRACE_SECS),
        Schedule::every(MIN_MINUTE_INTERVAL, Frequency::Minute, T0),
        Schedule::every(1, Frequency::Hour, T0 + 1),
        Schedule::every(1, Frequency::Day, T0).with_backfill(false),
        Schedule::every(52, Frequency::Week, T0).with_backfill(true),
    ] {
        assert_eq!(s.validate(T0), Ok(()), "{s:?}");
    }
}

#[test]
fn json_follows_the_flow_spec() {
    let s: Schedule =
        serde_json::from_str(r#"{"frequency":"minute","interval":15,"startTime":1767225600}"#)
            .unwrap();
    assert_eq!(s, Schedule::every(15, Frequency::Minute, T0));
    assert!(s.backfill(), "backfill defaults to true");
    let v = serde_json::to_value(Schedule::once(T0)).unwrap();
    assert_eq!(v, serde_json::json!({"frequency": "once", "startTime": T0}));
    assert!(matches!(
        "fortnight".parse::<Frequency>(),
        Err(ScheduleError::UnknownFrequency(_))
    ));
}

#[test]
fn next_runs_with_paused_time() {
    let s = Schedule::every(15, Frequency::Minute, T0);
    let mut t = T0 - 1;
    let mut times = vec![];
    for _ in 0..4 {
        t = s.next_run_after(t).unwrap();
        times.push(t);
    }
    assert_eq!(times, vec![T0, T0 + 900, T0 + 1800, T0 + 2700]);
    assert_eq!(
        Schedule::every(1, Frequency::Week, T0).next_run_after(T0 + 1),
        Some(T0 + 604_800)
    );
    assert_eq!(Schedule::once(T0).next_run_after(T0), None);
}

#[test]
fn catch_up_is_one_run_not_a_storm() {
    let s = Schedule::every(1, Frequency::Hour, T0);
    // A scheduler loop over paused time: poll every 10 minutes for 3 hours.
    let mut last = None;
    let mut runs = vec![];
    for now in (T0 - 600..T0 + 3 * 3600).step_by(600) {
        if let Some(due) = s.due_runs(last, now) {
            runs.push(due);
            last = Some(due);
        }
    }
    assert_eq!(runs, vec![T0, T0 + 3600, T0 + 7200]);
    // Down for a day: one run, at the latest missed time.
    let now = T0 + 7200 + 86_400 + 42;
    assert_eq!(s.due_runs(last, now), Some(T0 + 7200 + 86_400));
    assert_eq!(s.missed_count(last, now), 24);
    // …whose window covers the whole outage.
    let w = window_for_run(&s, Some(T0 + 7200 - 30), T0 + 7200 + 86_400, 30);
    assert_eq!(
        w,
        Window {
            gte: Some(T0 + 7170),
            lt: T0 + 7200 + 86_400 - 30
        }
    );
}

#[test]
fn windows_backfill_on_and_off() {
    let on = Schedule::every(1, Frequency::Day, T0);
    let off = on.with_backfill(false);
    assert_eq!(
        window_for_run(&on, None, T0, 60),
        Window {
            gte: None,
            lt: T0 - 60
        }
    );
    assert_eq!(
        window_for_run(&off, None, T0 + 86_400, 60),
        Window {
            gte: Some(T0),
            lt: T0 + 86_340
        }
    );
    // Consecutive windows tile: each starts where the previous ended.
    let w1 = window_for_run(&on, None, T0, 60);
    let w2 = window_for_run(&on, Some(w1.lt), T0 + 86_400, 60);
    let w3 = window_for_run(&on, Some(w2.lt), T0 + 2 * 86_400, 60);
    assert_eq!((w2.gte, w3.gte), (Some(w1.lt), Some(w2.lt)));
    // Never backwards.
    let w = window_for_run(&on, Some(T0 + 100), T0 + 50, 60);
    assert!(w.is_empty() && w.lt == T0 + 100);
}

#[test]
fn updates_after_start_are_limited() {
    let s = Schedule::every(1, Frequency::Hour, T0);
    let later = T0 + 10;
    assert!(matches!(
        s.check_update(&Schedule::every(1, Frequency::Hour, T0 + 3600), later),
        Err(ScheduleError::StartTimePassed { .. })
    ));
    assert_eq!(
        s.check_update(&Schedule::once(T0), later),
        Err(ScheduleError::OnceAfterStart)
    );
    assert!(s
        .check_update(&Schedule::every(2, Frequency::Day, T0), later)
        .is_ok());
    assert!(s
        .check_update(&Schedule::every(1, Frequency::Hour, T0 + 3600), T0 - 10)
        .is_ok());
}
