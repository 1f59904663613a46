//! The embedded catalog: one SQLite file, `<home>/catalog.sqlite`, holding accounts, datasets,
//! dataflows with versioned mappings, runs with their metrics and errors, watermarks and alert
//! deliveries.
//!
//! - **Concurrency.** WAL mode and a `busy_timeout`, so two CLI processes (or the scheduler and a
//!   CLI command) can use the catalog at once; every read-modify-write runs in a
//!   `BEGIN IMMEDIATE` transaction, so the second writer waits instead of losing an update.
//!   Dataflow updates are also guarded by an etag (like Platform's `If-Match`), so a stale
//!   update is refused rather than overwriting a newer one.
//! - **Migrations** are numbered in a `schema_version` table and applied in one transaction.
//! - **Keys.** A Stripe key is never stored in the catalog: it lives in
//!   `<home>/secrets/<account>.key` (mode 0600, in a 0700 directory) and the catalog keeps only the
//!   masked form (`sk_test_…4242`) and the file name. No crypto crate is available to encrypt it
//!   at rest, and an obfuscation whose key sits next to it would only pretend to protect it; a
//!   private file is what `~/.aws/credentials` or `~/.netrc` do, and it keeps the SQLite file
//!   (and its WAL, backups and dumps) free of key material.
//! - **Watermarks** advance only in the transaction that marks a run successful
//!   ([`Catalog::finish_run`]), so a failed run is retried over the same window.
//!
//! SQLite stays inside this module: the public API takes and returns plain Rust types.

mod accounts;
mod alerts;
mod dataflows;
mod datasets;
mod migrations;
mod recovery;
mod runs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub use accounts::{is_account_id, Account};
pub use alerts::{AlertDelivery, AlertKind};
pub use dataflows::{
    mask_url, Alerts, Dataflow, DataflowUpdate, DeletedDataflow, MappingVersion, NewDataflow,
    UploadTarget,
};
pub use datasets::{
    dataset_schema, Dataset, DatasetOptions, NewDataset, DEFAULT_PARTIAL_INGESTION_PERCENT,
};
pub use migrations::SCHEMA_VERSION;
pub use recovery::{process_alive, Checkpoint};
pub use runs::{platform_counts, Run, RunOutcome, RunStatus, RunUpload};

use crate::schedule::ScheduleError;

/// The catalog's file name inside the home folder.
pub const CATALOG_FILE: &str = "catalog.sqlite";
/// The folder (inside the home folder) holding account keys.
pub const SECRETS_DIR: &str = "secrets";
/// How long a connection waits for another process's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a catalog operation failed. Every variant says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The database could not be opened or configured.
    #[error("cannot open the catalog {path}: {source}")]
    Open {
        /// The catalog file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("catalog: {context}: {source}")]
    Sql {
        /// What was being done.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file next to the catalog (home folder, key file) could not be used.
    #[error("catalog: {context} {path}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A migration failed (nothing of it was applied).
    #[error("catalog migration {version} failed: {source}")]
    Migration {
        /// The migration's version.
        version: u32,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The catalog was written by a newer stripe-xdm.
    #[error("the catalog is at schema version {found}, newer than this stripe-xdm supports ({supported}): upgrade stripe-xdm")]
    NewerSchema {
        /// Version in the file.
        found: u32,
        /// Newest version known here.
        supported: u32,
    },
    /// A name is not usable.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// account, dataset or dataflow.
        what: &'static str,
        /// The name.
        name: String,
        /// The rule.
        reason: &'static str,
    },
    /// Something with that name exists already.
    #[error("{what} {name:?} already exists")]
    Exists {
        /// account, dataset or dataflow.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Nothing with that name / id.
    #[error("no {what} named {name:?}")]
    NotFound {
        /// account, dataset, dataflow, run or mapping version.
        what: &'static str,
        /// The name or id.
        name: String,
    },
    /// The account is used by dataflows.
    #[error("account {account:?} is used by dataflow(s) {}: delete them first (a dataflow keeps its account)", dataflows.join(", "))]
    AccountInUse {
        /// The account.
        account: String,
        /// The dataflows using it.
        dataflows: Vec<String>,
    },
    /// The dataset is used by dataflows.
    #[error("dataset {dataset:?} is used by dataflow(s) {}", dataflows.join(", "))]
    DatasetInUse {
        /// The dataset.
        dataset: String,
        /// The dataflows using it.
        dataflows: Vec<String>,
    },
    /// The dataset's XDM schema does not parse.
    #[error("dataset {dataset:?}: invalid XDM schema: {reason}")]
    Schema {
        /// The dataset.
        dataset: String,
        /// The parser's message.
        reason: String,
    },
    /// Profile needs exactly one primary identity.
    #[error("dataset {dataset:?}: a Profile dataset needs a schema with exactly one primary identity, this one has {found}")]
    ProfileIdentity {
        /// The dataset.
        dataset: String,
        /// Primary identities found.
        found: usize,
    },
    /// Partial-ingestion threshold not in (0, 100].
    #[error("dataset {dataset:?}: partial ingestion threshold {percent} must be a percentage above 0 and at most 100{}", if *percent <= 0.0 { " (turn partial ingestion off instead of 0: --no-partial-ingestion)" } else { "" })]
    Threshold {
        /// The dataset.
        dataset: String,
        /// The value given.
        percent: f64,
    },
    /// The schedule breaks a rule.
    #[error("dataflow {dataflow:?}: {source}")]
    Schedule {
        /// The dataflow.
        dataflow: String,
        /// The rule broken.
        #[source]
        source: ScheduleError,
    },
    /// The dataflow changed since it was read (etag mismatch).
    #[error("dataflow {dataflow:?} was changed by someone else (etag {expected} expected, now {actual}): read it again and retry")]
    Conflict {
        /// The dataflow.
        dataflow: String,
        /// The etag the caller read.
        expected: i64,
        /// The current etag.
        actual: i64,
    },
    /// A run is scheduled or running for the dataflow.
    #[error("dataflow {dataflow:?} has run {run_id} {}: {remedy}", if *.interrupted { "interrupted (the process that ran it has ended)".to_string() } else { .status.to_string() })]
    RunInProgress {
        /// The dataflow.
        dataflow: String,
        /// The active run.
        run_id: i64,
        /// Its status.
        status: RunStatus,
        /// Running, with the process that ran it gone: waiting to be resumed.
        interrupted: bool,
        /// What the caller can do about it.
        remedy: String,
    },
    /// A run is not in the state the operation needs.
    #[error("run {run_id} is {status}, expected {expected}")]
    RunState {
        /// The run.
        run_id: i64,
        /// Its status.
        status: RunStatus,
        /// The status needed.
        expected: RunStatus,
    },
    /// A stored value does not decode (hand-edited or corrupt catalog).
    #[error("catalog: corrupt value in {context}: {reason}")]
    Corrupt {
        /// Where.
        context: String,
        /// What is wrong.
        reason: String,
    },
}

/// Attaches context to SQLite errors.
pub(crate) trait SqlContext<T> {
    fn ctx(self, context: impl Into<String>) -> Result<T, CatalogError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: impl Into<String>) -> Result<T, CatalogError> {
        self.map_err(|source| CatalogError::Sql {
            context: context.into(),
            source,
        })
    }
}

/// An open catalog: one SQLite connection. Open one per thread or process; writes take
/// `&mut self` because they run in transactions.
pub struct Catalog {
    conn: Connection,
    home: PathBuf,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("home", &self.home).finish()
    }
}

impl Catalog {
    /// Opens (creating if needed) `<home>/catalog.sqlite`, in WAL mode with a busy timeout, and
    /// applies pending migrations.
    pub fn open(home: &Path) -> Result<Catalog, CatalogError> {
        let io = |context: &str, path: &Path| {
            let (context, path) = (context.to_string(), path.display().to_string());
            move |source| CatalogError::Io {
                context,
                path,
                source,
            }
        };
        let new_home = !home.exists();
        std::fs::create_dir_all(home).map_err(io("cannot create the home folder", home))?;
        let path = home.join(CATALOG_FILE);
        // The catalog holds alert webhooks (whose paths are often their credentials) and
        // commands: only its owner reads it, as the account keys beside it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            if new_home {
                std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
                    .map_err(io("cannot restrict the home folder", home))?;
            }
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match created {
                // Another process made it first: it is the same catalog.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => {
                    other.map_err(io("cannot create the catalog", &path))?;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = new_home;
        let open_err = |source| CatalogError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // journal_mode returns a row; query it rather than execute it.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "catalog: WAL mode unavailable, using {mode}");
        }
        conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")
            .map_err(open_err)?;
        let mut catalog = Catalog {
            conn,
            home: home.to_path_buf(),
        };
        migrations::migrate(&mut catalog.conn)?;
        Ok(catalog)
    }

    /// The catalog of `home` when it has one; `None` (nothing created) when it has none.
    /// Commands that only read or change what was created before open it this way, so a
    /// mistyped home is never turned into a new, empty one.
    pub fn open_existing(home: &Path) -> Result<Option<Catalog>, CatalogError> {
        if !home.join(CATALOG_FILE).is_file() {
            return Ok(None);
        }
        Catalog::open(home).map(Some)
    }

    /// True when the catalog holds no account, dataset or dataflow (as a new home's does).
    pub fn is_empty(&self) -> Result<bool, CatalogError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM datasets)
                      + (SELECT COUNT(*) FROM dataflows)",
                [],
                |r| r.get(0),
            )
            .ctx("count the catalog's entries")?;
        Ok(count == 0)
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The catalog file's path.
    pub fn path(&self) -> PathBuf {
        self.home.join(CATALOG_FILE)
    }

    /// The schema version of the open catalog.
    pub fn schema_version(&self) -> Result<u32, CatalogError> {
        migrations::current_version(&self.conn)
    }

    /// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// read-modify-write cannot interleave with another writer.
    pub(crate) fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>, CatalogError> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin a write transaction")
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks a display name (datasets, dataflows): 1 to 256 characters, no control characters,
/// no surrounding whitespace.
pub(crate) fn check_label(what: &'static str, name: &str) -> Result<(), CatalogError> {
    let bad = |reason| {
        Err(CatalogError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.chars().count() > 256 {
        return bad("it must be 1 to 256 characters");
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return bad("no control characters or surrounding spaces");
    }
    Ok(())
}

/// Checks an account name (it is also the key file's name).
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), CatalogError> {
    let bad = |reason| {
        Err(CatalogError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return bad("it must be 1 to 128 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("it must not start with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return bad("use letters, digits, '_', '-' and '.' only");
    }
    Ok(())
}
