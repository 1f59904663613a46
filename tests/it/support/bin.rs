//! Running the `stripe-xdm` binary from tests.

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stripe-xdm");

/// `stripe-xdm ARGS [--home HOME]` with no key or home from the test's own environment, plus
/// `env`.
pub fn command(home: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("STRIPE_API_KEY")
        .env_remove("STRIPE_XDM_HOME")
        .env_remove("AEP_ACCESS_TOKEN");
    if let Some(h) = home {
        cmd.arg("--home").arg(h);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `cmd` to completion off the async runtime's threads.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
