//! The catalog commands: `accounts`, `datasets`, `dataflows`, `runs` and `monitor`. Each opens
//! the catalog under `--home` and turns its arguments into [`stripe_xdm::catalog`] calls.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use stripe_xdm::catalog::{Catalog, CatalogError, NewDataset};
use stripe_xdm::Secret;

pub use super::dataflows::{dataflows, DataflowsArgs};
use super::flows_output as out;
pub use super::flows_output::{monitor, runs, MonitorArgs, RunsArgs};
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// Where the catalog lives.
#[derive(Debug, Args, Clone)]
pub struct HomeArgs {
    /// Home folder holding the catalog and account keys (default: $HOME/.stripe-xdm).
    #[arg(long, env = "STRIPE_XDM_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

impl HomeArgs {
    /// The home folder: `--home`, `STRIPE_XDM_HOME`, else `$HOME/.stripe-xdm`.
    pub(super) fn path(&self) -> Result<PathBuf> {
        match &self.home {
            Some(h) => Ok(h.clone()),
            None => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join(".stripe-xdm")),
                _ => Err(CliError::usage(
                    "no home folder: pass --home DIR or set STRIPE_XDM_HOME",
                )),
            },
        }
    }

    /// The home's catalog, created when there is none.
    pub(super) fn open(&self) -> Result<Catalog> {
        Catalog::open(&self.path()?).map_err(cat_err)
    }

    /// The home's catalog, which must exist: commands that only read or change what was
    /// created before never create a home (a mistyped `--home` is an error, not a new empty
    /// folder).
    pub(super) fn open_created(&self) -> Result<Catalog> {
        let home = self.path()?;
        Catalog::open_existing(&home)
            .map_err(cat_err)?
            .ok_or_else(|| {
                CliError::usage(format!(
                    "no catalog in {} (nothing was created there): check --home or \
                     STRIPE_XDM_HOME; `accounts add`, `datasets create` and `dataflows create` \
                     create one",
                    home.display()
                ))
            })
    }

    /// What a command that creates the home would leave behind if it were refused: `None`
    /// when the home already has a catalog.
    pub(super) fn fresh(&self) -> Option<FreshHome> {
        let home = self.path().ok()?;
        if home.join(stripe_xdm::catalog::CATALOG_FILE).exists() {
            return None;
        }
        // The topmost folder the command will create (`a` of a new `a/b/home`), if any.
        let created = home
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
            .last()
            .map(std::path::Path::to_path_buf);
        Some(FreshHome {
            existed: created.is_none(),
            dir: home.clone(),
            top: created.unwrap_or(home),
        })
    }

    /// [`HomeArgs::open`] when `creates`, else [`HomeArgs::open_created`].
    pub(super) fn open_for(&self, creates: bool) -> Result<Catalog> {
        if creates {
            self.open()
        } else {
            self.open_created()
        }
    }
}

/// A home that a command is about to create; [`FreshHome::undo`] removes it again when the
/// command is refused, so a refused `accounts add`, `datasets create` or `dataflows create` (a
/// wrong key, a schema file that does not parse, an unknown dataset) leaves no catalog behind
/// for a later command to take for a real home.
pub(super) struct FreshHome {
    dir: PathBuf,
    existed: bool,
    /// The topmost folder that did not exist (the home itself, or a parent of it).
    top: PathBuf,
}

impl FreshHome {
    /// Removes what the command created: the folder, or only the catalog in a folder that
    /// existed before. Nothing is removed once the catalog holds something: another process
    /// (`console`, `serve`, a second `accounts add`) may have made the same new home meanwhile.
    pub(super) fn undo(self) {
        let catalog = self.dir.join(stripe_xdm::catalog::CATALOG_FILE);
        if catalog.exists() {
            match Catalog::open(&self.dir).and_then(|c| c.is_empty()) {
                Ok(true) => {}
                _ => return,
            }
        }
        if !self.existed {
            let _ = std::fs::remove_dir_all(&self.top);
            return;
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let file = format!("{}{suffix}", stripe_xdm::catalog::CATALOG_FILE);
            let _ = std::fs::remove_file(self.dir.join(file));
        }
    }
}

/// Runs a command that creates the home when it has none, and removes that home again when the
/// command is refused.
pub(super) async fn undone_if_refused<F>(fresh: Option<FreshHome>, command: F) -> Result<u8>
where
    F: std::future::Future<Output = Result<u8>>,
{
    let result = command.await;
    if let (Err(_), Some(fresh)) = (&result, fresh) {
        fresh.undo();
    }
    result
}

/// `s` as one word of a POSIX shell command: as it is when it holds no character the shell
/// treats specially, else single-quoted.
pub(super) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn cat_err(e: CatalogError) -> CliError {
    CliError::chain(&e, super::EXIT_USAGE)
}

/// Where a command sends its Stripe requests.
#[derive(Debug, Args, Clone, Default)]
pub struct ApiArgs {
    /// API base URL (Stripe, the simulator, or a stub); default: the one the account was added
    /// with, else Stripe's.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Request budget per second (default: 25 for test keys, 100 for live keys).
    #[arg(long, value_parser = super::parse_rate)]
    pub rate: Option<f64>,
    /// Request budget per second and endpoint (default: Stripe's 25; raise it only if Stripe
    /// raised your limits).
    #[arg(long, value_parser = super::parse_rate)]
    pub endpoint_rate: Option<f64>,
    /// Read through this connected account (`Stripe-Account: acct_…`); default: the one the
    /// account was added with, else the key's own account.
    #[arg(long, value_name = "ACCT", value_parser = super::parse_account_id)]
    pub stripe_account: Option<String>,
}

impl ApiArgs {
    /// The flags given, as they would be typed again (` --base-url http://…`), for a command
    /// the output suggests.
    pub(super) fn as_flags(&self) -> String {
        let mut out = String::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push_str(&format!(" --{name} {}", shell_word(&v)));
            }
        };
        flag("base-url", self.base_url.clone());
        flag("rate", self.rate.map(|r| r.to_string()));
        flag("endpoint-rate", self.endpoint_rate.map(|r| r.to_string()));
        flag("stripe-account", self.stripe_account.clone());
        out
    }

    /// The flags as overrides of an account's stored settings.
    pub(super) fn overrides(&self) -> stripe_xdm::app::ApiOverrides {
        stripe_xdm::app::ApiOverrides {
            base_url: self.base_url.clone(),
            rate: self.rate,
            endpoint_rate: self.endpoint_rate,
            stripe_account: self.stripe_account.clone(),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------------- accounts

/// `accounts …`
#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    command: AccountsCommand,
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Add an account: the key is tested against Stripe, then stored privately (never printed).
    Add(AccountAddArgs),
    /// List accounts (keys masked).
    List(JsonArgs),
    /// Show one account (key masked).
    Show(NameJsonArgs),
    /// Test an account's key against Stripe.
    Test(AccountTestArgs),
    /// Remove an account (refused while dataflows use it).
    Remove(NameArgs),
}

/// Where the key comes from: at most one of the three; with none, a terminal is asked for it.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct KeySource {
    /// Environment variable holding the Stripe secret key.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// File holding the Stripe secret key (first line).
    #[arg(long, value_name = "PATH")]
    api_key_file: Option<PathBuf>,
    /// Read the Stripe secret key from the first line of stdin (when stdin is not a terminal;
    /// in a terminal the key is asked for with echo off).
    #[arg(long)]
    api_key_stdin: bool,
}

impl KeySource {
    /// The key: from the file or variable given; else typed at a prompt with echo off when
    /// stdin is a terminal; else stdin's first line with --api-key-stdin. Never printed.
    fn read(&self, account: &str) -> Result<Secret> {
        use std::io::{BufRead, IsTerminal};
        if let Some(p) = &self.api_key_file {
            return Secret::from_file(p).map_err(CliError::usage);
        }
        if let Some(v) = &self.api_key_env {
            return Secret::from_env(v).map_err(CliError::usage);
        }
        let key = if std::io::stdin().is_terminal() {
            let prompt = format!("Stripe secret key for account {account}: ");
            let typed = rpassword::prompt_password(prompt).map_err(|e| {
                CliError::usage(format!("cannot read the key from the terminal: {e}"))
            })?;
            Secret::new(typed)
        } else if self.api_key_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::usage(format!("cannot read the key from stdin: {e}")))?;
            Secret::new(line)
        } else {
            return Err(CliError::usage(
                "no Stripe key: give it with --api-key-env VAR, --api-key-file PATH or \
                 --api-key-stdin (its first line), or run in a terminal to type it",
            ));
        };
        if key.expose().is_empty() {
            return Err(CliError::usage("no Stripe key was given: the key is empty"));
        }
        Ok(key)
    }
}

#[derive(Debug, Args)]
struct AccountAddArgs {
    /// Account name (letters, digits, '_', '-', '.').
    name: String,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    key: KeySource,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
struct AccountTestArgs {
    /// Account name.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// `--json` alone.
#[derive(Debug, Args)]
pub(super) struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A name alone.
#[derive(Debug, Args)]
pub(super) struct NameArgs {
    /// Name.
    pub name: String,
}

/// A name and `--json`.
#[derive(Debug, Args)]
pub(super) struct NameJsonArgs {
    /// Name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `stripe-xdm accounts …`
pub async fn accounts(a: AccountsArgs) -> Result<u8> {
    let creates = matches!(a.command, AccountsCommand::Add(_));
    let fresh = a.home.fresh().filter(|_| creates);
    undone_if_refused(fresh, accounts_in(a, creates)).await
}

async fn accounts_in(a: AccountsArgs, creates: bool) -> Result<u8> {
    let mut cat = a.home.open_for(creates)?;
    match a.command {
        AccountsCommand::Add(x) => {
            // Checked first, so nobody types a key for nothing.
            if cat.account(&x.name).is_ok() {
                return Err(CliError::usage(format!(
                    "account {:?} already exists",
                    x.name
                )));
            }
            let key = x.key.read(&x.name)?;
            let new = stripe_xdm::app::NewAccount {
                name: x.name.clone(),
                description: x.description.clone(),
                key,
                api: x.api.overrides(),
            };
            let (acct, stripe_id) = stripe_xdm::app::add_account(&mut cat, new)
                .await
                .map_err(super::dataflows::app_err)?;
            println!(
                "account {:?} added (Stripe account {stripe_id}, key {})",
                acct.name, acct.key_masked
            );
        }
        AccountsCommand::List(j) => {
            let list = cat.list_accounts().map_err(cat_err)?;
            out::accounts(&list, j.json);
        }
        AccountsCommand::Show(x) => {
            let acct = cat.account(&x.name).map_err(cat_err)?;
            let used = cat.dataflows_using_account(&x.name).map_err(cat_err)?;
            out::account(&acct, &used, x.json);
        }
        AccountsCommand::Test(x) => {
            let stripe_id = stripe_xdm::app::test_account(&cat, &x.name, &x.api.overrides())
                .await
                .map_err(super::dataflows::app_err)?;
            println!(
                "account {:?}: connection OK (Stripe account {stripe_id})",
                x.name
            );
        }
        AccountsCommand::Remove(x) => {
            cat.remove_account(&x.name).map_err(cat_err)?;
            println!("account {:?} removed", x.name);
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------- datasets

/// `datasets …`
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    command: DatasetsCommand,
}

#[derive(Debug, Subcommand)]
enum DatasetsCommand {
    /// Create a dataset from an XDM schema file.
    Create(DatasetCreateArgs),
    /// List datasets.
    List(JsonArgs),
    /// Show one dataset.
    Show(NameJsonArgs),
    /// Create the dataset in Platform: its schema in the Schema Registry (class where needed,
    /// field group, schema, identity descriptors) and a Catalog dataset on it; once (a second
    /// push finds what exists). Records the Platform ids.
    Push(super::platform::DatasetPushArgs),
}

#[derive(Debug, Args)]
struct DatasetCreateArgs {
    /// Dataset name.
    name: String,
    /// XDM schema file (JSON).
    #[arg(long)]
    schema: PathBuf,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Enable the dataset for Profile (needs exactly one primary identity in the schema).
    #[arg(long)]
    profile: bool,
    /// Error diagnostics (forced on by partial ingestion).
    #[arg(long)]
    error_diagnostics: bool,
    /// Partial ingestion, with its error threshold in percent (default 5).
    #[arg(long, num_args = 0..=1, default_missing_value = "5", value_name = "PCT")]
    partial_ingestion: Option<f64>,
    /// Tenant id substituted for ${tenant} in the schema.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    tenant: String,
}

/// `stripe-xdm datasets …`
pub async fn datasets(a: DatasetsArgs) -> Result<u8> {
    let creates = matches!(a.command, DatasetsCommand::Create(_));
    let fresh = a.home.fresh().filter(|_| creates);
    undone_if_refused(fresh, datasets_in(a, creates)).await
}

async fn datasets_in(a: DatasetsArgs, creates: bool) -> Result<u8> {
    let mut cat = a.home.open_for(creates)?;
    match a.command {
        DatasetsCommand::Create(x) => {
            // Parsed here so errors name the file (the catalog only sees the text).
            let (_, schema_json) = stripe_xdm::app::oneoff::schema_file(&x.schema, &x.tenant)
                .map_err(super::dataflows::app_err)?;
            let ds = cat
                .create_dataset(&NewDataset {
                    name: x.name,
                    description: x.description,
                    schema_json,
                    profile_enabled: x.profile,
                    error_diagnostics: x.error_diagnostics,
                    partial_ingestion_percent: x.partial_ingestion,
                })
                .map_err(cat_err)?;
            println!("dataset {:?} created", ds.name);
            out::dataset(&ds, false);
        }
        DatasetsCommand::List(j) => {
            let list = cat.list_datasets().map_err(cat_err)?;
            out::datasets(&list, j.json);
        }
        DatasetsCommand::Show(x) => {
            let ds = cat.dataset(&x.name).map_err(cat_err)?;
            out::dataset(&ds, x.json);
        }
        DatasetsCommand::Push(x) => return super::platform::dataset_push(&mut cat, x).await,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_flags_are_typed_as_given_and_quoted_for_the_shell() {
        let api = ApiArgs {
            base_url: Some("http://127.0.0.1:12112".into()),
            rate: Some(40.0),
            endpoint_rate: None,
            stripe_account: Some("acct_1 x'y".into()),
        };
        assert_eq!(
            api.as_flags(),
            r" --base-url http://127.0.0.1:12112 --rate 40 --stripe-account 'acct_1 x'\''y'"
        );
        assert_eq!(ApiArgs::default().as_flags(), "");
    }
}
