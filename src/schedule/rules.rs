//! The schedule rules of Platform's flow spec (`PeriodicSchedule`, aep-platform.md §6.1), exactly:
//!
//! - `frequency` is one of `once|minute|hour|day|week` (default `once`);
//! - `once` takes no `interval` (Flow Service `1361-400`) and no `backfill` (`1364-400`);
//! - every other frequency requires an `interval`; `minute` needs `interval ≥ 15`, the others `≥ 1`
//!   (`1362-400`); an interval is never 0;
//! - `startTime` is epoch seconds, UTC, and must not be in the past (`1360-400`) — with a small grace
//!   ([`START_TIME_GRACE_SECS`]) for the time a user takes to type the command;
//! - `backfill` defaults to `true`.
//!
//! Scheduled times are `start_time + k × period` (k ≥ 0); `once` has the single time `start_time`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The smallest interval allowed with [`Frequency::Minute`].
pub const MIN_MINUTE_INTERVAL: u32 = 15;

/// How far in the past a new start time may be and still count as "now" (seconds).
pub const START_TIME_GRACE_SECS: i64 = 60;

/// How often a dataflow runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// A single run at the start time (the default).
    #[default]
    Once,
    /// Every `interval` minutes (`interval ≥ 15`).
    Minute,
    /// Every `interval` hours.
    Hour,
    /// Every `interval` days.
    Day,
    /// Every `interval` weeks.
    Week,
}

impl Frequency {
    /// All frequencies, in the spec's order.
    pub const ALL: [Frequency; 5] = [
        Frequency::Once,
        Frequency::Minute,
        Frequency::Hour,
        Frequency::Day,
        Frequency::Week,
    ];

    /// The spec's spelling (`once`, `minute`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Once => "once",
            Frequency::Minute => "minute",
            Frequency::Hour => "hour",
            Frequency::Day => "day",
            Frequency::Week => "week",
        }
    }

    /// Seconds in one unit of the frequency (`None` for `once`).
    pub fn unit_secs(self) -> Option<i64> {
        match self {
            Frequency::Once => None,
            Frequency::Minute => Some(60),
            Frequency::Hour => Some(3_600),
            Frequency::Day => Some(86_400),
            Frequency::Week => Some(604_800),
        }
    }

    /// The smallest interval the spec allows (`None` for `once`, which takes no interval).
    pub fn min_interval(self) -> Option<u32> {
        match self {
            Frequency::Once => None,
            Frequency::Minute => Some(MIN_MINUTE_INTERVAL),
            _ => Some(1),
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frequency {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Frequency::ALL
            .into_iter()
            .find(|f| f.as_str() == t)
            .ok_or_else(|| ScheduleError::UnknownFrequency(s.to_string()))
    }
}

/// The longest period between two runs: ten years. Platform gives no maximum; a larger interval
/// is a typo, and its scheduled times would leave the range of timestamps.
pub const MAX_PERIOD_SECS: i64 = 10 * 365 * 86_400;

/// A violated schedule rule. Each message names the rule (and the Flow Service code it mirrors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Frequency not in the enum (`1397-400`).
    #[error(
        "schedule rule `frequency ∈ once|minute|hour|day|week` (1397-400): unknown frequency {0:?}"
    )]
    UnknownFrequency(String),
    /// `once` with an interval (`1361-400`).
    #[error("schedule rule `once takes no interval` (1361-400): interval is not allowed with one time ingestion (got {0})")]
    IntervalWithOnce(u32),
    /// `once` with a backfill flag (`1364-400`).
    #[error("schedule rule `once takes no backfill` (1364-400): the backfill flag is not allowed when frequency is once")]
    BackfillWithOnce,
    /// A periodic frequency without interval.
    #[error(
        "schedule rule `{frequency} requires an interval` (no Flow Service code: Platform's wizard always sends one): give an interval (minimum {minimum})"
    )]
    IntervalRequired {
        /// The frequency.
        frequency: Frequency,
        /// Its minimum interval.
        minimum: u32,
    },
    /// Interval 0.
    #[error("schedule rule `interval is never 0` (1362-400): an interval of 0 {frequency}s is not allowed")]
    IntervalZero {
        /// The frequency.
        frequency: Frequency,
    },
    /// Interval under the frequency's minimum (`1362-400`).
    #[error("schedule rule `{frequency} interval ≥ {minimum}` (1362-400): interval cannot be less than {minimum} (got {interval})")]
    IntervalTooSmall {
        /// The frequency.
        frequency: Frequency,
        /// The interval given.
        interval: u32,
        /// The minimum.
        minimum: u32,
    },
    /// An interval whose period is longer than [`MAX_PERIOD_SECS`] (`1363-400`).
    #[error("schedule rule `{frequency} interval ≤ {maximum}` (1363-400): interval {interval} is not allowed with frequency {frequency} (at most {maximum}, ten years)")]
    IntervalTooLarge {
        /// The frequency.
        frequency: Frequency,
        /// The interval given.
        interval: u32,
        /// The largest interval of the frequency.
        maximum: u32,
    },
    /// Start time before now (`1360-400`).
    #[error("schedule rule `start time not in the past` (1360-400): the start time {start_time} is before the current UTC time {now}")]
    StartTimeInPast {
        /// The start time given (unix seconds).
        start_time: i64,
        /// Now (unix seconds).
        now: i64,
    },
    /// Changing the start time after it passed (`1366-400`).
    #[error("schedule rule `start time fixed once passed` (1366-400): the start time {start_time} has passed and can no longer be updated")]
    StartTimePassed {
        /// The current start time.
        start_time: i64,
    },
    /// Switching to `once` after the start time passed (`1403-400`).
    #[error("schedule rule `no switch to once after start` (1403-400): the start time has passed and the frequency can no longer be changed to once")]
    OnceAfterStart,
    /// Changing backfill after the start time passed (`1404-400`).
    #[error("schedule rule `backfill fixed once started` (1404-400): the start time has passed and backfill can no longer be updated")]
    BackfillAfterStart,
}

/// A dataflow's schedule, as the flow spec's `scheduleParams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// How often (default `once`).
    #[serde(default)]
    pub frequency: Frequency,
    /// Units of `frequency` between runs; absent for `once`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// First scheduled time, unix seconds UTC.
    pub start_time: i64,
    /// Whether the first run fetches all history. `None` = not given, which means `true`
    /// ([`Schedule::backfill`]); the spec forbids giving it for `once`, so "given" is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<bool>,
}

impl Schedule {
    /// A one-time schedule at `start_time`.
    pub fn once(start_time: i64) -> Schedule {
        Schedule {
            frequency: Frequency::Once,
            interval: None,
            start_time,
            backfill: None,
        }
    }

    /// A periodic schedule (backfill left at its default, `true`).
    pub fn every(interval: u32, frequency: Frequency, start_time: i64) -> Schedule {
        Schedule {
            frequency,
            interval: Some(interval),
            start_time,
            backfill: None,
        }
    }

    /// The same schedule with `backfill` given explicitly.
    pub fn with_backfill(mut self, backfill: bool) -> Schedule {
        self.backfill = Some(backfill);
        self
    }

    /// The effective backfill flag (default `true`).
    pub fn backfill(&self) -> bool {
        self.backfill.unwrap_or(true)
    }

    /// Seconds between scheduled times (`None` for `once`).
    pub fn period_secs(&self) -> Option<i64> {
        let unit = self.frequency.unit_secs()?;
        Some(unit * i64::from(self.interval.unwrap_or(1).max(1)))
    }

    /// The rules that do not depend on the clock (for a stored schedule whose start has passed).
    pub fn validate_rules(&self) -> Result<(), ScheduleError> {
        match (self.frequency, self.frequency.min_interval()) {
            (Frequency::Once, _) | (_, None) => {
                if let Some(i) = self.interval {
                    return Err(ScheduleError::IntervalWithOnce(i));
                }
                if self.backfill.is_some() {
                    return Err(ScheduleError::BackfillWithOnce);
                }
            }
            (frequency, Some(minimum)) => match self.interval {
                None => return Err(ScheduleError::IntervalRequired { frequency, minimum }),
                Some(0) => return Err(ScheduleError::IntervalZero { frequency }),
                Some(interval) if interval < minimum => {
                    return Err(ScheduleError::IntervalTooSmall {
                        frequency,
                        interval,
                        minimum,
                    })
                }
                Some(interval) => {
                    let unit = frequency.unit_secs().unwrap_or(1).max(1);
                    let maximum = u32::try_from(MAX_PERIOD_SECS / unit).unwrap_or(u32::MAX);
                    if interval > maximum {
                        return Err(ScheduleError::IntervalTooLarge {
                            frequency,
                            interval,
                            maximum,
                        });
                    }
                }
            },
        }
        Ok(())
    }

    /// Every rule, for a new schedule: [`Schedule::validate_rules`] and a start time not before
    /// `now − START_TIME_GRACE_SECS`.
    pub fn validate(&self, now: i64) -> Result<(), ScheduleError> {
        self.validate_rules()?;
        if self.start_time < now - START_TIME_GRACE_SECS {
            return Err(ScheduleError::StartTimeInPast {
                start_time: self.start_time,
                now,
            });
        }
        Ok(())
    }

    /// Checks replacing `self` (stored) by `new` at `now`: the new schedule's rules; once the
    /// stored start time has passed, the start time and backfill are fixed and the frequency
    /// cannot become `once`; a changed start time must not be in the past.
    pub fn check_update(&self, new: &Schedule, now: i64) -> Result<(), ScheduleError> {
        new.validate_rules()?;
        let started = self.start_time <= now;
        if new.start_time != self.start_time {
            if started {
                return Err(ScheduleError::StartTimePassed {
                    start_time: self.start_time,
                });
            }
            new.validate(now)?;
        }
        if started {
            if new.frequency == Frequency::Once && self.frequency != Frequency::Once {
                return Err(ScheduleError::OnceAfterStart);
            }
            if new.backfill() != self.backfill() {
                return Err(ScheduleError::BackfillAfterStart);
            }
        }
        Ok(())
    }

    /// The first scheduled time strictly after `t`, or `None` when there is none (`once` whose
    /// time is not after `t`).
    pub fn next_run_after(&self, t: i64) -> Option<i64> {
        if t < self.start_time {
            return Some(self.start_time);
        }
        let period = self.period_secs()?;
        let k = (t - self.start_time) / period + 1;
        self.start_time.checked_add(k.checked_mul(period)?)
    }

    /// The latest scheduled time `s` with `s ≤ now`, if any.
    pub fn latest_at_or_before(&self, now: i64) -> Option<i64> {
        if now < self.start_time {
            return None;
        }
        match self.period_secs() {
            None => Some(self.start_time),
            Some(period) => Some(self.start_time + (now - self.start_time) / period * period),
        }
    }

    /// The scheduled time of the run due at `now`, given the scheduled time of the last run
    /// made (`None` = never ran). After downtime this is the **latest** missed time only — one
    /// run whose window covers everything missed, not one run per missed time.
    pub fn due_runs(&self, last_scheduled: Option<i64>, now: i64) -> Option<i64> {
        let latest = self.latest_at_or_before(now)?;
        match last_scheduled {
            Some(last) if last >= latest => None,
            _ => Some(latest),
        }
    }

    /// How many scheduled times in `(last_scheduled, now]` are folded into the due run (for logs).
    pub fn missed_count(&self, last_scheduled: Option<i64>, now: i64) -> u64 {
        let Some(latest) = self.due_runs(last_scheduled, now) else {
            return 0;
        };
        let Some(period) = self.period_secs() else {
            return 1;
        };
        let first = match last_scheduled {
            Some(last) => self.next_run_after(last).unwrap_or(latest),
            None => self.start_time,
        };
        ((latest - first) / period + 1).max(1) as u64
    }
}

/// The `created` window of one run: `gte ≤ created < lt` (`gte: None` = all history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive lower bound (unix seconds); `None` = unbounded (backfill).
    pub gte: Option<i64>,
    /// Exclusive upper bound (unix seconds); the watermark after the run commits.
    pub lt: i64,
}

impl Window {
    /// True when the window cannot contain anything.
    pub fn is_empty(&self) -> bool {
        matches!(self.gte, Some(g) if g >= self.lt)
    }
}

/// The window of a run scheduled at `scheduled_time`:
///
/// - later runs: from the previous committed window end to `scheduled_time − safety_lag_secs`;
/// - the first run with backfill: all history up to that bound (`gte: None`);
/// - the first run without backfill: from `start_time` on.
///
/// The bound never goes below the lower end (an empty window then), so a watermark never moves
/// backwards and nothing is fetched twice.
pub fn window_for_run(
    schedule: &Schedule,
    previous_window_end: Option<i64>,
    scheduled_time: i64,
    safety_lag_secs: i64,
) -> Window {
    let gte = match previous_window_end {
        Some(end) => Some(end),
        None if schedule.backfill() => None,
        None => Some(schedule.start_time),
    };
    let mut lt = scheduled_time - safety_lag_secs.max(0);
    if let Some(g) = gte {
        lt = lt.max(g);
    }
    Window { gte, lt }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_710_000_000;

    #[test]
    fn frequency_parses_and_defaults() {
        assert_eq!(Frequency::default(), Frequency::Once);
        assert_eq!("Week".parse::<Frequency>().unwrap(), Frequency::Week);
        assert!(matches!(
            "monthly".parse::<Frequency>(),
            Err(ScheduleError::UnknownFrequency(_))
        ));
        let s: Schedule = serde_json::from_str(r#"{"startTime": 5}"#).unwrap();
        assert_eq!(s, Schedule::once(5));
        assert!(s.backfill());
    }

    #[test]
    fn once_rules() {
        assert!(Schedule::once(NOW).validate(NOW).is_ok());
        let mut s = Schedule::once(NOW);
        s.interval = Some(1);
        assert_eq!(s.validate(NOW), Err(ScheduleError::IntervalWithOnce(1)));
        assert_eq!(
            Schedule::once(NOW).with_backfill(true).validate(NOW),
            Err(ScheduleError::BackfillWithOnce)
        );
    }

    #[test]
    fn interval_rules_and_boundaries() {
        let m = |i| Schedule::every(i, Frequency::Minute, NOW).validate(NOW);
        assert!(matches!(
            m(14),
            Err(ScheduleError::IntervalTooSmall {
                minimum: 15,
                interval: 14,
                ..
            })
        ));
        assert!(m(15).is_ok());
        assert!(matches!(m(0), Err(ScheduleError::IntervalZero { .. })));
        let w = |i| Schedule::every(i, Frequency::Week, NOW).validate(NOW);
        assert!(w(521).is_ok());
        assert!(matches!(
            w(u32::MAX),
            Err(ScheduleError::IntervalTooLarge { maximum: 521, .. })
        ));
        assert!(w(522).unwrap_err().to_string().contains("1363-400"));
        for f in [Frequency::Hour, Frequency::Day, Frequency::Week] {
            assert!(Schedule::every(1, f, NOW).validate(NOW).is_ok());
            assert!(matches!(
                Schedule::every(0, f, NOW).validate(NOW),
                Err(ScheduleError::IntervalZero { .. })
            ));
            let mut s = Schedule::every(1, f, NOW);
            s.interval = None;
            assert!(matches!(
                s.validate(NOW),
                Err(ScheduleError::IntervalRequired { minimum: 1, .. })
            ));
        }
    }

    #[test]
    fn start_time_rule_with_grace() {
        let at = |t| Schedule::every(1, Frequency::Hour, t).validate(NOW);
        assert!(at(NOW - START_TIME_GRACE_SECS).is_ok());
        assert!(matches!(
            at(NOW - START_TIME_GRACE_SECS - 1),
            Err(ScheduleError::StartTimeInPast { .. })
        ));
        assert!(Schedule::every(1, Frequency::Hour, 0)
            .validate_rules()
            .is_ok());
    }

    #[test]
    fn messages_name_the_rule() {
        let e = Schedule::every(5, Frequency::Minute, NOW)
            .validate(NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("minute interval ≥ 15"), "{e}");
        let e = Schedule::once(NOW - 3600)
            .validate(NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("start time not in the past"), "{e}");
    }

    #[test]
    fn next_run_and_due() {
        let s = Schedule::every(2, Frequency::Hour, NOW);
        assert_eq!(s.next_run_after(NOW - 1), Some(NOW));
        assert_eq!(s.next_run_after(NOW), Some(NOW + 7200));
        assert_eq!(s.next_run_after(NOW + 7199), Some(NOW + 7200));
        assert_eq!(s.due_runs(None, NOW - 1), None);
        assert_eq!(s.due_runs(None, NOW), Some(NOW));
        assert_eq!(s.due_runs(Some(NOW), NOW + 7199), None);
        // Down for 10 hours: one run at the latest missed time.
        assert_eq!(s.due_runs(Some(NOW), NOW + 36_000 + 5), Some(NOW + 36_000));
        assert_eq!(s.missed_count(Some(NOW), NOW + 36_000 + 5), 5);
        let o = Schedule::once(NOW);
        assert_eq!(o.next_run_after(NOW), None);
        assert_eq!(o.due_runs(None, NOW + 99), Some(NOW));
        assert_eq!(o.due_runs(Some(NOW), NOW + 99), None);
    }

    #[test]
    fn windows() {
        let s = Schedule::every(1, Frequency::Hour, NOW);
        assert_eq!(
            window_for_run(&s, None, NOW, 30),
            Window {
                gte: None,
                lt: NOW - 30
            }
        );
        let nb = s.with_backfill(false);
        assert_eq!(
            window_for_run(&nb, None, NOW + 3600, 30),
            Window {
                gte: Some(NOW),
                lt: NOW + 3570
            }
        );
        let w = window_for_run(&nb, None, NOW, 30);
        assert!(w.is_empty() && w.lt == NOW);
        assert_eq!(
            window_for_run(&s, Some(NOW - 30), NOW + 3600, 30),
            Window {
                gte: Some(NOW - 30),
                lt: NOW + 3570
            }
        );
    }

    #[test]
    fn update_rules() {
        let s = Schedule::every(1, Frequency::Hour, NOW + 100);
        assert!(s
            .check_update(&Schedule::every(1, Frequency::Hour, NOW + 200), NOW)
            .is_ok());
        let started = NOW + 100;
        assert!(matches!(
            s.check_update(&Schedule::every(1, Frequency::Hour, NOW + 9999), started),
            Err(ScheduleError::StartTimePassed { .. })
        ));
        assert!(s
            .check_update(&Schedule::every(3, Frequency::Day, NOW + 100), started)
            .is_ok());
        assert_eq!(
            s.check_update(&Schedule::once(NOW + 100), started),
            Err(ScheduleError::OnceAfterStart)
        );
        assert_eq!(
            s.check_update(&s.with_backfill(false), started),
            Err(ScheduleError::BackfillAfterStart)
        );
    }
}
