//! Versioned schema migrations, recorded in `schema_version` and applied in one
//! `BEGIN IMMEDIATE` transaction (two processes opening a new catalog at once apply them once).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{unix_now, CatalogError, SqlContext};

/// The migrations, in order. Never edit a released one: append a new version.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (5, V5),
    (6, V6),
    (7, V7),
    (8, V8),
    (9, V9),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = 9;

const V1: &str = r#"
CREATE TABLE accounts (
    name        TEXT PRIMARY KEY,
    description TEXT,
    key_masked  TEXT NOT NULL,
    key_file    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE datasets (
    name                      TEXT PRIMARY KEY,
    description               TEXT,
    schema_json               TEXT NOT NULL,
    profile_enabled           INTEGER NOT NULL DEFAULT 0,
    error_diagnostics         INTEGER NOT NULL DEFAULT 0,
    partial_ingestion_percent REAL,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);
CREATE TABLE dataflows (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL UNIQUE,
    description       TEXT,
    account           TEXT NOT NULL REFERENCES accounts(name) ON DELETE RESTRICT ON UPDATE CASCADE,
    resource          TEXT NOT NULL,
    dataset           TEXT NOT NULL REFERENCES datasets(name) ON DELETE RESTRICT ON UPDATE CASCADE,
    alert_run_start   INTEGER NOT NULL DEFAULT 0,
    alert_run_success INTEGER NOT NULL DEFAULT 0,
    alert_run_failure INTEGER NOT NULL DEFAULT 0,
    frequency         TEXT NOT NULL CHECK (frequency IN ('once','minute','hour','day','week')),
    interval          INTEGER,
    start_time        INTEGER NOT NULL,
    backfill          INTEGER,
    enabled           INTEGER NOT NULL DEFAULT 1,
    etag              INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX dataflows_account ON dataflows(account);
CREATE INDEX dataflows_dataset ON dataflows(dataset);
CREATE TABLE mapping_versions (
    dataflow_id INTEGER NOT NULL REFERENCES dataflows(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    sql         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (dataflow_id, version)
);
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dataflow_id     INTEGER NOT NULL REFERENCES dataflows(id) ON DELETE CASCADE,
    status          TEXT NOT NULL CHECK (status IN ('scheduled','running','success','failed')),
    scheduled_time  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER,
    window_gte      INTEGER,
    window_lt       INTEGER,
    fetched         INTEGER NOT NULL DEFAULT 0,
    ingested        INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    bytes_in        INTEGER NOT NULL DEFAULT 0,
    bytes_out       INTEGER NOT NULL DEFAULT 0,
    files           INTEGER NOT NULL DEFAULT 0,
    batch_id        TEXT,
    mapping_version INTEGER NOT NULL,
    errors          TEXT NOT NULL DEFAULT '{}',
    failure_reason  TEXT
);
CREATE INDEX runs_dataflow ON runs(dataflow_id, scheduled_time);
-- At most one scheduled-or-running run per dataflow, whatever process asks.
CREATE UNIQUE INDEX runs_one_active ON runs(dataflow_id) WHERE status IN ('scheduled','running');
CREATE TABLE watermarks (
    dataflow_id INTEGER PRIMARY KEY REFERENCES dataflows(id) ON DELETE CASCADE,
    window_end  INTEGER NOT NULL,
    run_id      INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE alert_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('run_start','run_success','run_failure')),
    target       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX alert_deliveries_run ON alert_deliveries(run_id);
"#;

/// Version 2: alert targets and the Platform upload target of a dataflow; per run the process
/// that owns it, its Platform batch and status; per-page checkpoints of running runs.
const V2: &str = r#"
ALTER TABLE dataflows ADD COLUMN alert_webhook TEXT;
ALTER TABLE dataflows ADD COLUMN alert_command TEXT;
ALTER TABLE dataflows ADD COLUMN upload_dataset_id TEXT;
ALTER TABLE dataflows ADD COLUMN upload_base_url TEXT;
ALTER TABLE dataflows ADD COLUMN upload_credentials_file TEXT;
ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER;
ALTER TABLE runs ADD COLUMN platform_batch_id TEXT;
ALTER TABLE runs ADD COLUMN platform_status TEXT;
ALTER TABLE runs ADD COLUMN platform_errors TEXT;
ALTER TABLE runs ADD COLUMN uploaded_at INTEGER;
CREATE TABLE checkpoints (
    run_id     INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    batch_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"#;

/// Version 3: the ids a dataflow's last committed run saw in the re-read span at the end of its
/// window, so the next run can re-read that span for late-visible objects without duplicates.
const V3: &str = r#"
CREATE TABLE trailing_ids (
    dataflow_id INTEGER NOT NULL REFERENCES dataflows(id) ON DELETE CASCADE,
    object_id   TEXT NOT NULL,
    created     INTEGER NOT NULL,
    PRIMARY KEY (dataflow_id, object_id)
);
"#;

/// Version 4: the API base URL an account was added with (Stripe's by default; the simulator
/// or a proxy otherwise), so later commands need not repeat it.
const V4: &str = "ALTER TABLE accounts ADD COLUMN base_url TEXT;";

/// Version 5: change capture. Runs count the objects they read through events (`updated`),
/// the deletions they recorded (`deleted`) and the events read.
const V5: &str = "
ALTER TABLE runs ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events_read INTEGER NOT NULL DEFAULT 0;
";

/// Version 6: the request budgets an account was added with (`accounts add --rate
/// --endpoint-rate`), applied to every later command with the account.
const V6: &str = "
ALTER TABLE accounts ADD COLUMN rate REAL;
ALTER TABLE accounts ADD COLUMN endpoint_rate REAL;
";

/// Version 7: the Platform schema and dataset a `datasets push` made.
const V7: &str = "
ALTER TABLE datasets ADD COLUMN platform_schema_id TEXT;
ALTER TABLE datasets ADD COLUMN platform_dataset_id TEXT;
";

/// Version 8: Stripe connected accounts (`Stripe-Account`): an account's default, and the one a
/// dataflow reads through.
const V8: &str = "
ALTER TABLE accounts ADD COLUMN stripe_account TEXT;
ALTER TABLE dataflows ADD COLUMN stripe_account TEXT;
";

/// A run's record counts in full (`crate::metrics::RecordCounts`): staged, warnings, pages.
const V9: &str = "
ALTER TABLE runs ADD COLUMN staged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN warnings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN pages INTEGER NOT NULL DEFAULT 0;
";

/// Creates `schema_version` and applies every migration newer than the recorded version.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), CatalogError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("begin the migration transaction")?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );",
    )
    .ctx("create schema_version")?;
    let current = current_version(&tx)?;
    if current > SCHEMA_VERSION {
        return Err(CatalogError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)
            .map_err(|source| CatalogError::Migration {
                version: *version,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            (version, unix_now()),
        )
        .map_err(|source| CatalogError::Migration {
            version: *version,
            source,
        })?;
    }
    tx.commit().ctx("commit the migrations")
}

/// The highest applied version (0 for a new catalog).
pub(super) fn current_version(conn: &Connection) -> Result<u32, CatalogError> {
    conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| {
        r.get::<_, Option<u32>>(0)
    })
    .optional()
    .ctx("read schema_version")
    .map(|v| v.flatten().unwrap_or(0))
}
