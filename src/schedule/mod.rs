//! When runs happen: the Platform flow spec's schedule rules, next-run and catch-up
//! computation, and the incremental window of each run.
//!
//! Everything here is pure: time is passed in as unix seconds (UTC), so tests can use
//! "paused" time. The serve loop and alerts are built on top of this module.

pub mod rules;

pub use rules::{
    window_for_run, Frequency, Schedule, ScheduleError, Window, MIN_MINUTE_INTERVAL,
    START_TIME_GRACE_SECS,
};
