//! Datasets: a name, an XDM schema and the ingestion toggles (Profile, error diagnostics,
//! partial ingestion with its threshold).

use rusqlite::{OptionalExtension, Row, Transaction};
use serde::Serialize;

use super::accounts::names_where;
use super::{check_label, unix_now, Catalog, CatalogError, SqlContext};
use crate::xdm::XdmSchema;

/// Platform's default partial-ingestion threshold (percent of failed records).
pub const DEFAULT_PARTIAL_INGESTION_PERCENT: f64 = 5.0;

/// A dataset to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDataset {
    /// Unique name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The XDM schema (compatibility-mode JSON), stored verbatim.
    pub schema_json: String,
    /// Profile dataset (needs exactly one primary identity).
    pub profile_enabled: bool,
    /// Error diagnostics (forced on by partial ingestion).
    pub error_diagnostics: bool,
    /// Partial ingestion threshold in percent (`None` = off).
    pub partial_ingestion_percent: Option<f64>,
}

/// The schema a dataset named `name` validates against: `schema_json` parsed, with its
/// primary identity required when the dataset is Profile-enabled ([`XdmSchema::for_profile`]).
pub fn dataset_schema(
    name: &str,
    schema_json: &str,
    profile: bool,
) -> Result<XdmSchema, CatalogError> {
    let err = |e: crate::xdm::XdmError| CatalogError::Schema {
        dataset: name.to_string(),
        reason: e.to_string(),
    };
    let schema = XdmSchema::from_json_str(schema_json).map_err(err)?;
    // Profile rejects records without their primary identity: so do this dataset's runs.
    if profile {
        return schema.for_profile().map_err(err);
    }
    Ok(schema)
}

/// A stored dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    /// Unique name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The XDM schema JSON.
    pub schema_json: String,
    /// Profile dataset.
    pub profile_enabled: bool,
    /// Error diagnostics.
    pub error_diagnostics: bool,
    /// Partial ingestion threshold in percent (`None` = off).
    pub partial_ingestion_percent: Option<f64>,
    /// The Platform schema `$id` made by `datasets push` (`None` before a push).
    pub platform_schema_id: Option<String>,
    /// The Platform dataset id made by `datasets push`.
    pub platform_dataset_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Dataset {
    /// Parses the stored schema; for a Profile-enabled dataset, with its primary identity required
    /// ([`XdmSchema::for_profile`]).
    pub fn schema(&self) -> Result<XdmSchema, CatalogError> {
        dataset_schema(&self.name, &self.schema_json, self.profile_enabled)
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Dataset> {
        Ok(Dataset {
            name: r.get("name")?,
            description: r.get("description")?,
            schema_json: r.get("schema_json")?,
            profile_enabled: r.get("profile_enabled")?,
            error_diagnostics: r.get("error_diagnostics")?,
            partial_ingestion_percent: r.get("partial_ingestion_percent")?,
            platform_schema_id: r.get("platform_schema_id")?,
            platform_dataset_id: r.get("platform_dataset_id")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

const COLUMNS: &str = "name, description, schema_json, profile_enabled, error_diagnostics, \
                       partial_ingestion_percent, platform_schema_id, platform_dataset_id, \
                       created_at, updated_at";

/// New ingestion options of a dataset; `None` keeps the current one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetOptions {
    /// Error diagnostics.
    pub error_diagnostics: Option<bool>,
    /// Partial ingestion's threshold in percent (`Some(None)` turns it off).
    pub partial_ingestion_percent: Option<Option<f64>>,
}

/// Dataset `name`, read through `conn` (a transaction derefs to one).
fn find(conn: &rusqlite::Connection, name: &str) -> Result<Dataset, CatalogError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM datasets WHERE name = ?1"),
        [name],
        Dataset::from_row,
    )
    .optional()
    .ctx(format!("read dataset {name:?}"))?
    .ok_or_else(|| CatalogError::NotFound {
        what: "dataset",
        name: name.to_string(),
    })
}

/// Sets dataset `name`'s ingestion options inside `tx`, checked as at creation (partial
/// ingestion forces diagnostics on); nothing is written when they are refused.
pub(super) fn set_options(
    tx: &Transaction<'_>,
    name: &str,
    options: &DatasetOptions,
) -> Result<(), CatalogError> {
    let current = find(tx, name)?;
    let partial = options
        .partial_ingestion_percent
        .unwrap_or(current.partial_ingestion_percent);
    let diagnostics = check_options(
        name,
        &current.schema_json,
        current.profile_enabled,
        options
            .error_diagnostics
            .unwrap_or(current.error_diagnostics),
        partial,
    )?;
    tx.execute(
        "UPDATE datasets SET error_diagnostics = ?2, partial_ingestion_percent = ?3, updated_at = ?4
         WHERE name = ?1",
        (name, diagnostics, partial, unix_now()),
    )
    .ctx(format!("update dataset {name:?}"))?;
    Ok(())
}

/// Checks the toggles against the schema; returns the effective error-diagnostics flag.
fn check_options(
    name: &str,
    schema_json: &str,
    profile: bool,
    diagnostics: bool,
    partial: Option<f64>,
) -> Result<bool, CatalogError> {
    let schema = XdmSchema::from_json_str(schema_json).map_err(|e| CatalogError::Schema {
        dataset: name.to_string(),
        reason: e.to_string(),
    })?;
    if profile {
        let found = schema.identities().iter().filter(|i| i.primary).count();
        if found != 1 || schema.primary_identity().is_none() {
            return Err(CatalogError::ProfileIdentity {
                dataset: name.to_string(),
                found,
            });
        }
    }
    if let Some(p) = partial {
        // Platform's flow spec: a number with exclusiveMinimum 0 (and a percentage).
        if !p.is_finite() || p <= 0.0 || p > 100.0 {
            return Err(CatalogError::Threshold {
                dataset: name.to_string(),
                percent: p,
            });
        }
    }
    Ok(diagnostics || partial.is_some())
}

impl Catalog {
    /// Creates a dataset. The schema must parse; Profile is refused unless the schema has
    /// exactly one primary identity; partial ingestion forces error diagnostics on.
    pub fn create_dataset(&mut self, new: &NewDataset) -> Result<Dataset, CatalogError> {
        check_label("dataset", &new.name)?;
        crate::sink::check_dataset_name(&new.name).map_err(|reason| CatalogError::InvalidName {
            what: "dataset",
            name: new.name.clone(),
            reason,
        })?;
        let diagnostics = check_options(
            &new.name,
            &new.schema_json,
            new.profile_enabled,
            new.error_diagnostics,
            new.partial_ingestion_percent,
        )?;
        let now = unix_now();
        let tx = self.write_tx()?;
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM datasets WHERE name = ?1)",
                [&new.name],
                |r| r.get(0),
            )
            .ctx(format!("look up dataset {:?}", new.name))?;
        if exists {
            return Err(CatalogError::Exists {
                what: "dataset",
                name: new.name.clone(),
            });
        }
        tx.execute(
            "INSERT INTO datasets (name, description, schema_json, profile_enabled, error_diagnostics,
                                   partial_ingestion_percent, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            (
                &new.name,
                &new.description,
                &new.schema_json,
                new.profile_enabled,
                diagnostics,
                new.partial_ingestion_percent,
                now,
            ),
        )
        .ctx(format!("insert dataset {:?}", new.name))?;
        tx.commit().ctx(format!("commit dataset {:?}", new.name))?;
        self.dataset(&new.name)
    }

    /// One dataset.
    pub fn dataset(&self, name: &str) -> Result<Dataset, CatalogError> {
        find(&self.conn, name)
    }

    /// All datasets, by name.
    pub fn list_datasets(&self) -> Result<Vec<Dataset>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM datasets ORDER BY name"))
            .ctx("list datasets")?;
        let rows = stmt.query_map([], Dataset::from_row).ctx("list datasets")?;
        rows.collect::<Result<_, _>>().ctx("list datasets")
    }

    /// Changes the ingestion options (error diagnostics, partial ingestion) with the same rules as
    /// creation: partial ingestion forces diagnostics on.
    pub fn update_dataset_options(
        &mut self,
        name: &str,
        error_diagnostics: bool,
        partial_ingestion_percent: Option<f64>,
    ) -> Result<Dataset, CatalogError> {
        let tx = self.write_tx()?;
        set_options(
            &tx,
            name,
            &DatasetOptions {
                error_diagnostics: Some(error_diagnostics),
                partial_ingestion_percent: Some(partial_ingestion_percent),
            },
        )?;
        tx.commit().ctx(format!("commit dataset {name:?}"))?;
        self.dataset(name)
    }

    /// Removes a dataset's catalog entry (its committed batches on disk are left alone); refused
    /// while dataflows use it.
    pub fn remove_dataset(&mut self, name: &str) -> Result<(), CatalogError> {
        let tx = self.write_tx()?;
        let users = names_where(&tx, "dataset", name)?;
        if !users.is_empty() {
            return Err(CatalogError::DatasetInUse {
                dataset: name.to_string(),
                dataflows: users,
            });
        }
        let n = tx
            .execute("DELETE FROM datasets WHERE name = ?1", [name])
            .ctx(format!("delete dataset {name:?}"))?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                what: "dataset",
                name: name.to_string(),
            });
        }
        tx.commit()
            .ctx(format!("commit removal of dataset {name:?}"))
    }
}

impl Catalog {
    /// Records the Platform schema and dataset a `datasets push` made for dataset `name`.
    pub fn set_dataset_platform(
        &mut self,
        name: &str,
        schema_id: &str,
        dataset_id: &str,
    ) -> Result<Dataset, CatalogError> {
        let n = self
            .conn
            .execute(
                "UPDATE datasets SET platform_schema_id = ?2, platform_dataset_id = ?3, updated_at = ?4 WHERE name = ?1",
                (name, schema_id, dataset_id, unix_now()),
            )
            .ctx(format!("record the Platform ids of dataset {name:?}"))?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                what: "dataset",
                name: name.to_string(),
            });
        }
        self.dataset(name)
    }
}
