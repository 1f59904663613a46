//! Dataflows: account + resource → mapping (versioned) → dataset, on a schedule, with alerts.
//! Updates are guarded by an etag that changes on every write (Platform's `If-Match`).

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, Transaction};
use serde::Serialize;

use super::{check_label, unix_now, Catalog, CatalogError, SqlContext};
use crate::schedule::{Frequency, Schedule};
use crate::Resource;

/// Which run notifications a dataflow sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Alerts {
    /// Sources Flow Run Start.
    pub run_start: bool,
    /// Sources Flow Run Success.
    pub run_success: bool,
    /// Sources Flow Run Failure.
    pub run_failure: bool,
}

/// Where a dataflow's committed batches go after each successful run (Platform's Batch
/// Ingestion API). Credentials come from `credentials_file` or the `AEP_*` environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadTarget {
    /// The Platform dataset id.
    pub dataset_id: String,
    /// The gateway base URL (`None`: Platform's production gateway).
    pub base_url: Option<String>,
    /// A credentials file (JSON or `KEY=value` lines); `None`: the environment.
    pub credentials_file: Option<String>,
}

pub use crate::secret::mask_url;

fn serialize_masked<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(url) => s.serialize_some(&mask_url(url)),
        None => s.serialize_none(),
    }
}

/// A dataflow to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDataflow {
    /// Unique name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// An existing account's name.
    pub account: String,
    /// What it reads.
    pub resource: Resource,
    /// An existing dataset's name.
    pub dataset: String,
    /// The mapping SQL (becomes mapping version 1).
    pub mapping_sql: String,
    /// Alerts.
    pub alerts: Alerts,
    /// The schedule (validated against `now` at creation).
    pub schedule: Schedule,
    /// Webhook receiving the alerts (JSON POST).
    pub alert_webhook: Option<String>,
    /// Local command receiving the alerts (payload on stdin).
    pub alert_command: Option<String>,
    /// Upload each committed batch to Platform.
    pub upload: Option<UploadTarget>,
}

/// A stored dataflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataflow {
    /// Internal id (stable across renames).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Account name.
    pub account: String,
    /// What it reads.
    pub resource: Resource,
    /// Dataset name.
    pub dataset: String,
    /// Alerts.
    pub alerts: Alerts,
    /// Schedule.
    pub schedule: Schedule,
    /// Webhook receiving the alerts (shown masked: its path often carries a token).
    #[serde(serialize_with = "serialize_masked")]
    pub alert_webhook: Option<String>,
    /// Local command receiving the alerts.
    pub alert_command: Option<String>,
    /// Upload each committed batch to Platform.
    pub upload: Option<UploadTarget>,
    /// The Stripe connected account (`acct_…`) it reads through (`Stripe-Account`); `None`:
    /// its account's default, else the key's own account.
    pub stripe_account: Option<String>,
    /// Whether the scheduler runs it.
    pub enabled: bool,
    /// Changes on every write; pass it back to [`Catalog::update_dataflow`].
    pub etag: i64,
    /// The newest mapping version (the one new runs use).
    pub mapping_version: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Changes to a dataflow; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataflowUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New schedule (start time only while it has not passed).
    pub schedule: Option<Schedule>,
    /// New mapping SQL: adds a mapping version.
    pub mapping_sql: Option<String>,
    /// New alerts.
    pub alerts: Option<Alerts>,
    /// New alert webhook (`Some(None)` removes it).
    pub alert_webhook: Option<Option<String>>,
    /// New alert command (`Some(None)` removes it).
    pub alert_command: Option<Option<String>>,
    /// New upload target (`Some(None)` turns uploads off).
    pub upload: Option<Option<UploadTarget>>,
    /// New ingestion options of the dataflow's dataset, changed in the same transaction: a
    /// refused option leaves the dataflow unchanged too.
    pub dataset_options: Option<super::datasets::DatasetOptions>,
}

/// One version of a dataflow's mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingVersion {
    /// 1, 2, …
    pub version: u32,
    /// The SQL.
    pub sql: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a delete removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedDataflow {
    /// The dataflow.
    pub name: String,
    /// Run records removed.
    pub runs_removed: u64,
    /// The active run that was cancelled, if asked to.
    pub cancelled_run: Option<i64>,
}

const SELECT: &str = "SELECT d.id, d.name, d.description, d.account, d.resource, d.dataset,
       d.alert_run_start, d.alert_run_success, d.alert_run_failure,
       d.frequency, d.interval, d.start_time, d.backfill, d.enabled,
       d.alert_webhook, d.alert_command, d.upload_dataset_id, d.upload_base_url, d.upload_credentials_file, d.stripe_account, d.etag, d.created_at, d.updated_at,
       (SELECT MAX(version) FROM mapping_versions m WHERE m.dataflow_id = d.id) AS mapping_version
  FROM dataflows d";

impl Dataflow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Dataflow> {
        let freq: String = r.get("frequency")?;
        let frequency = freq
            .parse::<Frequency>()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(9, Type::Text, Box::new(e)))?;
        Ok(Dataflow {
            id: r.get("id")?,
            name: r.get("name")?,
            description: r.get("description")?,
            account: r.get("account")?,
            resource: r
                .get::<_, String>("resource")?
                .parse::<Resource>()
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(4, Type::Text, Box::new(e))
                })?,
            dataset: r.get("dataset")?,
            alerts: Alerts {
                run_start: r.get("alert_run_start")?,
                run_success: r.get("alert_run_success")?,
                run_failure: r.get("alert_run_failure")?,
            },
            schedule: Schedule {
                frequency,
                interval: r.get("interval")?,
                start_time: r.get("start_time")?,
                backfill: r.get("backfill")?,
            },
            alert_webhook: r.get("alert_webhook")?,
            alert_command: r.get("alert_command")?,
            upload: r
                .get::<_, Option<String>>("upload_dataset_id")?
                .map(|dataset_id| -> rusqlite::Result<UploadTarget> {
                    Ok(UploadTarget {
                        dataset_id,
                        base_url: r.get("upload_base_url")?,
                        credentials_file: r.get("upload_credentials_file")?,
                    })
                })
                .transpose()?,
            stripe_account: r.get("stripe_account")?,
            enabled: r.get("enabled")?,
            etag: r.get("etag")?,
            mapping_version: r.get::<_, Option<u32>>("mapping_version")?.unwrap_or(0),
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

/// Reads a dataflow by name inside a connection or transaction.
pub(super) fn find(conn: &rusqlite::Connection, name: &str) -> Result<Dataflow, CatalogError> {
    conn.query_row(
        &format!("{SELECT} WHERE d.name = ?1"),
        [name],
        Dataflow::from_row,
    )
    .optional()
    .ctx(format!("read dataflow {name:?}"))?
    .ok_or_else(|| CatalogError::NotFound {
        what: "dataflow",
        name: name.to_string(),
    })
}

fn insert_mapping(tx: &Transaction<'_>, id: i64, sql: &str, now: i64) -> Result<u32, CatalogError> {
    let next: u32 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM mapping_versions WHERE dataflow_id = ?1",
            [id],
            |r| r.get(0),
        )
        .ctx("read the mapping version")?;
    tx.execute(
        "INSERT INTO mapping_versions (dataflow_id, version, sql, created_at) VALUES (?1, ?2, ?3, ?4)",
        (id, next, sql, now),
    )
    .ctx("insert a mapping version")?;
    Ok(next)
}

fn bump(tx: &Transaction<'_>, id: i64, now: i64) -> Result<(), CatalogError> {
    tx.execute(
        "UPDATE dataflows SET etag = etag + 1, updated_at = ?2 WHERE id = ?1",
        (id, now),
    )
    .ctx("update the dataflow's etag")
    .map(|_| ())
}

impl Catalog {
    /// Creates a dataflow (enabled, mapping version 1). The account and dataset must exist and the
    /// schedule must pass every rule at `now`.
    pub fn create_dataflow(
        &mut self,
        new: &NewDataflow,
        now: i64,
    ) -> Result<Dataflow, CatalogError> {
        check_label("dataflow", &new.name)?;
        new.schedule
            .validate(now)
            .map_err(|source| CatalogError::Schedule {
                dataflow: new.name.clone(),
                source,
            })?;
        let tx = self.write_tx()?;
        let exists = |table: &str, name: &str| -> Result<bool, CatalogError> {
            tx.query_row(
                &format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE name = ?1)"),
                [name],
                |r| r.get(0),
            )
            .ctx(format!("look up {table} {name:?}"))
        };
        if exists("dataflows", &new.name)? {
            return Err(CatalogError::Exists {
                what: "dataflow",
                name: new.name.clone(),
            });
        }
        if !exists("accounts", &new.account)? {
            return Err(CatalogError::NotFound {
                what: "account",
                name: new.account.clone(),
            });
        }
        if !exists("datasets", &new.dataset)? {
            return Err(CatalogError::NotFound {
                what: "dataset",
                name: new.dataset.clone(),
            });
        }
        let s = &new.schedule;
        tx.execute(
            "INSERT INTO dataflows (name, description, account, resource, dataset,
                 alert_run_start, alert_run_success, alert_run_failure,
                 frequency, interval, start_time, backfill, enabled, etag, created_at, updated_at,
                 alert_webhook, alert_command, upload_dataset_id, upload_base_url, upload_credentials_file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, 1, ?13, ?13, ?14, ?15, ?16, ?17, ?18)",
            rusqlite::params![
                new.name,
                new.description,
                new.account,
                new.resource.path(),
                new.dataset,
                new.alerts.run_start,
                new.alerts.run_success,
                new.alerts.run_failure,
                s.frequency.as_str(),
                s.interval,
                s.start_time,
                s.backfill,
                unix_now(),
                new.alert_webhook,
                new.alert_command,
                new.upload.as_ref().map(|u| &u.dataset_id),
                new.upload.as_ref().and_then(|u| u.base_url.as_ref()),
                new.upload.as_ref().and_then(|u| u.credentials_file.as_ref()),
            ],
        )
        .ctx(format!("insert dataflow {:?}", new.name))?;
        let id = tx.last_insert_rowid();
        insert_mapping(&tx, id, &new.mapping_sql, unix_now())?;
        tx.commit().ctx(format!("commit dataflow {:?}", new.name))?;
        self.dataflow(&new.name)
    }

    /// One dataflow.
    pub fn dataflow(&self, name: &str) -> Result<Dataflow, CatalogError> {
        find(&self.conn, name)
    }

    /// All dataflows, by name.
    pub fn list_dataflows(&self) -> Result<Vec<Dataflow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT} ORDER BY d.name"))
            .ctx("list dataflows")?;
        let rows = stmt
            .query_map([], Dataflow::from_row)
            .ctx("list dataflows")?;
        rows.collect::<Result<_, _>>().ctx("list dataflows")
    }

    /// Updates a dataflow if its etag is still `expected_etag` (else [`CatalogError::Conflict`]).
    /// A new mapping SQL adds a mapping version; a schedule change follows
    /// [`Schedule::check_update`] at `now`. Returns the dataflow with its new etag.
    pub fn update_dataflow(
        &mut self,
        name: &str,
        expected_etag: i64,
        update: &DataflowUpdate,
        now: i64,
    ) -> Result<Dataflow, CatalogError> {
        let tx = self.write_tx()?;
        let current = find(&tx, name)?;
        if current.etag != expected_etag {
            return Err(CatalogError::Conflict {
                dataflow: name.to_string(),
                expected: expected_etag,
                actual: current.etag,
            });
        }
        let id = current.id;
        let ts = unix_now();
        if let Some(new_name) = &update.name {
            check_label("dataflow", new_name)?;
            if new_name != name {
                let taken: bool = tx
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM dataflows WHERE name = ?1)",
                        [new_name],
                        |r| r.get(0),
                    )
                    .ctx("look up the new dataflow name")?;
                if taken {
                    return Err(CatalogError::Exists {
                        what: "dataflow",
                        name: new_name.clone(),
                    });
                }
                tx.execute(
                    "UPDATE dataflows SET name = ?2 WHERE id = ?1",
                    (id, new_name),
                )
                .ctx(format!("rename dataflow {name:?}"))?;
            }
        }
        if let Some(description) = &update.description {
            tx.execute(
                "UPDATE dataflows SET description = ?2 WHERE id = ?1",
                (id, description),
            )
            .ctx(format!("update dataflow {name:?}"))?;
        }
        if let Some(s) = &update.schedule {
            current
                .schedule
                .check_update(s, now)
                .map_err(|source| CatalogError::Schedule {
                    dataflow: name.to_string(),
                    source,
                })?;
            tx.execute(
                "UPDATE dataflows SET frequency = ?2, interval = ?3, start_time = ?4, backfill = ?5 WHERE id = ?1",
                (id, s.frequency.as_str(), s.interval, s.start_time, s.backfill),
            )
            .ctx(format!("update the schedule of dataflow {name:?}"))?;
        }
        if let Some(a) = &update.alerts {
            tx.execute(
                "UPDATE dataflows SET alert_run_start = ?2, alert_run_success = ?3, alert_run_failure = ?4
                 WHERE id = ?1",
                (id, a.run_start, a.run_success, a.run_failure),
            )
            .ctx(format!("update the alerts of dataflow {name:?}"))?;
        }
        if let Some(webhook) = &update.alert_webhook {
            tx.execute(
                "UPDATE dataflows SET alert_webhook = ?2 WHERE id = ?1",
                (id, webhook),
            )
            .ctx(format!("update the alert webhook of dataflow {name:?}"))?;
        }
        if let Some(command) = &update.alert_command {
            tx.execute(
                "UPDATE dataflows SET alert_command = ?2 WHERE id = ?1",
                (id, command),
            )
            .ctx(format!("update the alert command of dataflow {name:?}"))?;
        }
        if let Some(upload) = &update.upload {
            tx.execute(
                "UPDATE dataflows SET upload_dataset_id = ?2, upload_base_url = ?3,
                                      upload_credentials_file = ?4 WHERE id = ?1",
                (
                    id,
                    upload.as_ref().map(|u| &u.dataset_id),
                    upload.as_ref().and_then(|u| u.base_url.as_ref()),
                    upload.as_ref().and_then(|u| u.credentials_file.as_ref()),
                ),
            )
            .ctx(format!("update the upload target of dataflow {name:?}"))?;
        }
        if let Some(sql) = &update.mapping_sql {
            insert_mapping(&tx, id, sql, ts)?;
        }
        if let Some(options) = &update.dataset_options {
            super::datasets::set_options(&tx, &current.dataset, options)?;
        }
        bump(&tx, id, ts)?;
        let new_name = update.name.clone().unwrap_or_else(|| name.to_string());
        let updated = find(&tx, &new_name)?;
        tx.commit()
            .ctx(format!("commit the update of dataflow {name:?}"))?;
        Ok(updated)
    }

    /// Enables or disables a dataflow (changes its etag).
    pub fn set_dataflow_enabled(
        &mut self,
        name: &str,
        enabled: bool,
    ) -> Result<Dataflow, CatalogError> {
        let tx = self.write_tx()?;
        let current = find(&tx, name)?;
        tx.execute(
            "UPDATE dataflows SET enabled = ?2 WHERE id = ?1",
            (current.id, enabled),
        )
        .ctx(format!("enable/disable dataflow {name:?}"))?;
        bump(&tx, current.id, unix_now())?;
        let updated = find(&tx, name)?;
        tx.commit().ctx(format!("commit dataflow {name:?}"))?;
        Ok(updated)
    }

    /// Adds a mapping version (read-modify-write under the write lock; changes the etag).
    pub fn add_mapping_version(
        &mut self,
        name: &str,
        sql: &str,
    ) -> Result<MappingVersion, CatalogError> {
        let tx = self.write_tx()?;
        let current = find(&tx, name)?;
        let now = unix_now();
        let version = insert_mapping(&tx, current.id, sql, now)?;
        bump(&tx, current.id, now)?;
        tx.commit()
            .ctx(format!("commit the mapping of dataflow {name:?}"))?;
        Ok(MappingVersion {
            version,
            sql: sql.to_string(),
            created_at: now,
        })
    }

    /// A mapping version of a dataflow (`None` = the newest).
    pub fn mapping(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<MappingVersion, CatalogError> {
        let flow = self.dataflow(name)?;
        let v = version.unwrap_or(flow.mapping_version);
        self.conn
            .query_row(
                "SELECT version, sql, created_at FROM mapping_versions WHERE dataflow_id = ?1 AND version = ?2",
                (flow.id, v),
                |r| Ok(MappingVersion { version: r.get(0)?, sql: r.get(1)?, created_at: r.get(2)? }),
            )
            .optional()
            .ctx(format!("read mapping version {v} of dataflow {name:?}"))?
            .ok_or_else(|| CatalogError::NotFound { what: "mapping version", name: format!("{name} v{v}") })
    }

    /// Every mapping version of a dataflow, oldest first.
    pub fn mapping_versions(&self, name: &str) -> Result<Vec<MappingVersion>, CatalogError> {
        let flow = self.dataflow(name)?;
        let ctx = format!("list mapping versions of dataflow {name:?}");
        let mut stmt = self
            .conn
            .prepare("SELECT version, sql, created_at FROM mapping_versions WHERE dataflow_id = ?1 ORDER BY version")
            .ctx(ctx.clone())?;
        let rows = stmt
            .query_map([flow.id], |r| {
                Ok(MappingVersion {
                    version: r.get(0)?,
                    sql: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .ctx(ctx.clone())?;
        rows.collect::<Result<_, _>>().ctx(ctx)
    }

    /// Deletes a dataflow with its schedule, mappings, runs, watermark and alert records. The
    /// dataset and its committed batches stay. Refused while a run is scheduled or running
    /// unless `cancel_active` (then that run is dropped with the rest; the process running it
    /// will find its run gone when it tries to commit, and commits nothing).
    pub fn delete_dataflow(
        &mut self,
        name: &str,
        cancel_active: bool,
    ) -> Result<DeletedDataflow, CatalogError> {
        let tx = self.write_tx()?;
        let flow = find(&tx, name)?;
        let active: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, status FROM runs WHERE dataflow_id = ?1 AND status IN ('scheduled','running')",
                [flow.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx(format!("look up the active run of dataflow {name:?}"))?;
        let cancelled_run = match active {
            Some((run_id, _)) if !cancel_active => {
                return Err(super::runs::in_progress(&tx, name, run_id, |interrupted| {
                    if interrupted {
                        format!(
                            "`stripe-xdm dataflows run {name}` resumes it, or delete with --cancel"
                        )
                    } else {
                        "wait for it to end, or delete with --cancel (the run then commits nothing)"
                            .into()
                    }
                }));
            }
            Some((run_id, _)) => Some(run_id),
            None => None,
        };
        let runs_removed: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE dataflow_id = ?1",
                [flow.id],
                |r| r.get(0),
            )
            .ctx(format!("count the runs of dataflow {name:?}"))?;
        // Children go by ON DELETE CASCADE (foreign_keys is on for every connection).
        tx.execute("DELETE FROM dataflows WHERE id = ?1", [flow.id])
            .ctx(format!("delete dataflow {name:?}"))?;
        tx.commit()
            .ctx(format!("commit the deletion of dataflow {name:?}"))?;
        Ok(DeletedDataflow {
            name: name.to_string(),
            runs_removed: runs_removed as u64,
            cancelled_run,
        })
    }
}

impl Catalog {
    /// Sets the connected account dataflow `name` reads through (`None`: its account's).
    pub fn set_dataflow_stripe_account(
        &mut self,
        name: &str,
        stripe_account: Option<&str>,
    ) -> Result<Dataflow, CatalogError> {
        if let Some(a) = stripe_account {
            super::accounts::check_connected_account(a)?;
        }
        let n = self
            .conn
            .execute(
                "UPDATE dataflows SET stripe_account = ?2, etag = etag + 1, updated_at = ?3 WHERE name = ?1",
                (name, stripe_account, unix_now()),
            )
            .ctx(format!("update dataflow {name:?}"))?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                what: "dataflow",
                name: name.to_string(),
            });
        }
        self.dataflow(name)
    }

    /// The dataflows of a fan-out over connected accounts: `<name>.acct_…`, by name.
    pub fn fan_out(&self, name: &str) -> Result<Vec<Dataflow>, CatalogError> {
        let prefix = format!("{name}.acct_");
        Ok(self
            .list_dataflows()?
            .into_iter()
            .filter(|f| f.name.starts_with(&prefix) && f.stripe_account.is_some())
            .collect())
    }
}
