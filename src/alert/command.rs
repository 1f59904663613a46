//! The command target: `sh -c <command>` with the payload on stdin, retried on a non-zero exit,
//! a signal, a start failure or the timeout.
//!
//! Each attempt runs on a blocking thread with `std::process` (tokio's `process` feature is not
//! needed): the child gets its own process group, so on timeout the whole group — the shell and
//! anything it started — is killed, not only the shell. Stdin is written and stderr read on
//! helper threads, so neither a command that ignores its input nor one that writes a lot can
//! stall the wait.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{retrying, Attempt, DeliveryOptions, SECRET_ENV_VARS};
use crate::catalog::AlertKind;
use crate::secret::cut as excerpt;

/// The most of stderr kept (its end).
const STDERR_TAIL_BYTES: usize = 2048;
/// The most of stderr shown in the error.
const STDERR_EXCERPT_CHARS: usize = 300;
/// How long to wait for stderr to close once the command has ended (a background process the
/// command left behind may hold it open).
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// Runs `command` until it exits 0 or the attempts are spent.
pub(super) async fn deliver(
    command: &str,
    kind: AlertKind,
    run_id: i64,
    payload: &Value,
    body: &str,
    opts: &DeliveryOptions,
) -> (u32, Result<(), String>) {
    let text = |ptr: &str| -> String {
        match payload.pointer(ptr) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        }
    };
    let env: Arc<Vec<(&'static str, String)>> = Arc::new(vec![
        ("STRIPE_XDM_ALERT_KIND", kind.as_str().to_string()),
        ("STRIPE_XDM_DATAFLOW", text("/event/flowName")),
        ("STRIPE_XDM_RUN_ID", run_id.to_string()),
        (
            "STRIPE_XDM_RUN_STATUS",
            text("/event/metrics/statusSummary/status"),
        ),
    ]);
    let command: Arc<str> = Arc::from(command);
    let input: Arc<[u8]> = Arc::from(body.as_bytes());
    let timeout = opts.timeout;
    retrying(opts, "command", || {
        let (command, env, input) = (command.clone(), env.clone(), input.clone());
        async move {
            let run = tokio::task::spawn_blocking(move || run_once(&command, &env, input, timeout));
            match run.await {
                Ok(Ok(())) => Attempt::Done,
                Ok(Err(error)) => Attempt::Retry { error, after: None },
                Err(e) => Attempt::Retry {
                    error: format!("the command's thread failed: {e}"),
                    after: None,
                },
            }
        }
    })
    .await
}

/// `sh -c command` in its own process group, with the environment minus
/// [`SECRET_ENV_VARS`] plus `env`, the payload to come on stdin.
fn shell(command: &str, env: &[(&'static str, String)]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    for var in SECRET_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// One run of the command, blocking: `Ok` on exit 0, else what went wrong (with the end of
/// stderr).
fn run_once(
    command: &str,
    env: &[(&'static str, String)],
    input: Arc<[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let mut child = shell(command, env)
        .spawn()
        .map_err(|e| format!("cannot start `sh -c`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input gets EPIPE here, which is not a failure. The
        // command line restores SIGPIPE's default action (so `stripe-xdm … | head` ends
        // quietly), which would kill the whole process on this write: the writing thread blocks
        // the signal, so the write fails with EPIPE instead, and the signal left pending on the
        // thread is discarded when it ends.
        std::thread::spawn(move || {
            block_sigpipe();
            let _ = stdin.write_all(&input);
        });
    }
    let tail = Arc::new(Mutex::new(Vec::new()));
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    if let Some(mut stderr) = child.stderr.take() {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&buf[..n]);
                let excess = t.len().saturating_sub(STDERR_TAIL_BYTES);
                t.drain(..excess);
            }
            let _ = closed_tx.send(());
        });
    } else {
        drop(closed_tx);
    }
    let ended = wait_until(&mut child, Instant::now() + timeout);
    let _ = closed_rx.recv_timeout(STDERR_GRACE);
    let stderr = {
        let t = tail.lock().unwrap_or_else(|e| e.into_inner());
        excerpt(&String::from_utf8_lossy(&t), STDERR_EXCERPT_CHARS)
    };
    let with_stderr = |what: String| {
        if stderr.is_empty() {
            what
        } else {
            format!("{what}; stderr: {stderr}")
        }
    };
    match ended {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(with_stderr(describe_exit(status))),
        Ok(None) => Err(with_stderr(format!(
            "timed out after {} ms and was killed",
            timeout.as_millis()
        ))),
        Err(e) => Err(with_stderr(format!("cannot wait for the command: {e}"))),
    }
}

/// Waits for `child` until `deadline`; past it, kills its process group and reaps it
/// (`Ok(None)`).
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) => {}
            Err(e) => {
                kill_group(child);
                return Err(e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kills the child's process group (the shell and what it started), then the child itself in
/// case the group kill could not run, and reaps it. The child is not reaped before this, so its
/// pid (the group id) cannot have been reused.
fn kill_group(child: &mut Child) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -9 -{}", child.id()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("ended abnormally ({status})"),
    }
}

/// Blocks SIGPIPE on the calling thread: a write to a closed pipe then fails with EPIPE.
fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: a zeroed `sigset_t` is initialised by `sigemptyset` before use; the mask change
    // affects only the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_command_does_not_inherit_the_tools_secrets() {
        let cmd = shell("true", &[("STRIPE_XDM_RUN_ID", "7".into())]);
        let envs: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
        for var in [
            "STRIPE_API_KEY",
            "AEP_ACCESS_TOKEN",
            "AEP_API_KEY",
            "AEP_CLIENT_SECRET",
        ] {
            assert!(envs.contains(&(OsStr::new(var), None)), "{var}: {envs:?}");
        }
        assert!(envs.contains(&(OsStr::new("STRIPE_XDM_RUN_ID"), Some(OsStr::new("7")))));
    }

    /// In a forked child with SIGPIPE's default action (as the command line sets it), writes to
    /// a pipe whose reader is gone; returns how the child ended (`Some(code)` or the signal).
    #[cfg(unix)]
    fn write_to_closed_pipe(block: bool) -> Result<i32, i32> {
        // SAFETY: the child only calls async-signal-safe functions (signal, pthread_sigmask,
        // write, _exit) before it exits; the parent waits for it.
        unsafe {
            let mut fds = [0; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                if block {
                    block_sigpipe();
                }
                let n = libc::write(fds[1], b"{}".as_ptr().cast(), 2);
                libc::_exit(if n < 0 { 0 } else { 1 });
            }
            libc::close(fds[1]);
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            if libc::WIFSIGNALED(status) {
                Err(libc::WTERMSIG(status))
            } else {
                Ok(libc::WEXITSTATUS(status))
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_command_that_does_not_read_its_input_cannot_kill_the_process() {
        // Without the mask, SIGPIPE's default action kills the writer (what `serve` died of).
        assert_eq!(write_to_closed_pipe(false), Err(libc::SIGPIPE));
        // With it, the write fails with EPIPE and the process goes on.
        assert_eq!(write_to_closed_pipe(true), Ok(0));
    }
}
