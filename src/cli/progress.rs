//! Progress of a run on stderr: a bar with records/s, pages, windows, retries, 429s and an ETA
//! from the share of the `created` range done when stdout and stderr are terminals; a log line
//! every few seconds when they are not (piped, cron, CI); nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stripe_xdm::pipeline::{Progress, ProgressSink};

/// How often the plain mode prints a line.
const LOG_EVERY: Duration = Duration::from_secs(5);

enum Mode {
    Quiet,
    Bar(ProgressBar),
    Log(Mutex<Option<Instant>>),
}

/// The CLI's [`ProgressSink`].
pub(super) struct Display {
    mode: Mode,
}

impl Display {
    /// A bar on a terminal, log lines otherwise, nothing when `quiet`.
    pub(super) fn new(quiet: bool) -> Arc<Display> {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {percent:>3}% {msg} (ETA {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Bar(bar)
        } else {
            Mode::Log(Mutex::new(None))
        };
        Arc::new(Display { mode })
    }

    /// Clears the bar.
    pub(super) fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

/// One line of progress.
pub(super) fn line(p: &Progress) -> String {
    let rate = p.counts.fetched as f64 / p.elapsed_secs.max(1e-3);
    format!(
        "{} records ({:.0}/s), {} pages, windows {}/{}, {} rejected, {} retries, {} × 429",
        p.counts.fetched,
        rate,
        p.counts.pages,
        p.windows_done,
        p.windows_total,
        p.counts.rejected,
        p.retries,
        p.throttled
    )
}

impl ProgressSink for Display {
    fn update(&self, p: &Progress) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => {
                bar.set_position((p.fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                bar.set_message(line(p));
            }
            Mode::Log(last) => {
                let mut last = last.lock().expect("not poisoned");
                if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    *last = Some(Instant::now());
                    eprintln!(
                        "progress: {:.1}% of the range, {}",
                        p.fraction * 100.0,
                        line(p)
                    );
                }
            }
        }
    }
}
