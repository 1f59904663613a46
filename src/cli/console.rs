//! `stripe-xdm console`: the web console on 127.0.0.1 until Ctrl-C.

use clap::Args;
use stripe_xdm::console::{self, ConsoleOptions};

use super::flows::HomeArgs;
use super::CliError;

/// Options of `console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8765)]
    port: u16,
}

/// `stripe-xdm console`
pub async fn console(a: ConsoleArgs) -> Result<u8, CliError> {
    let cat = a.home.open()?;
    let home = cat.home().to_path_buf();
    drop(cat);
    let mut handle = console::start(ConsoleOptions {
        home,
        port: a.port,
        token: None,
    })
    .await
    .map_err(|e| {
        CliError::usage(format!(
            "console: cannot listen on 127.0.0.1:{}: {e}",
            a.port
        ))
    })?;
    println!("stripe-xdm console: open {}", handle.login_url());
    println!("(listening on 127.0.0.1 only; the token in the URL is needed; Ctrl-C stops it)");
    tokio::select! {
        r = handle.wait() => r.map_err(|e| CliError::failed(format!("console: {e}")))?,
        () = super::signals::wait_for_shutdown() => {
            eprintln!("stripe-xdm console: stopping");
            handle.shutdown().await.map_err(|e| CliError::failed(format!("console: {e}")))?;
        }
    }
    Ok(0)
}
