//! Inspect: reading back what the stages left on disk, after the fact (it sits after the sink
//! and the stage, and nothing of the data path calls it).
//!
//! - [`sql`]: SQL over the mirror's resources (tables `charges`, `customers`, …: the current
//!   objects; `customers_all` also holds the tombstones of deleted ones, `_deleted_at` set) and
//!   the rejected rows of every batch (`rejected`).
//! - [`summarize`] and [`query`] (the `errors` commands): a batch's rejected rows by code and
//!   column, and SQL over the accepted and rejected rows of batches (each dataset has its own
//!   XDM schema, so accepted rows are queried per dataset).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

mod errors;
pub mod output;
use crate::stage::{Mirror, StageError};
use crate::Resource;
pub use errors::{
    batch_ids, query, register_batches, summarize, BatchIds, CodeCount, ErrorSummary, QueryError,
    StageCount,
};

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A mirror could not be opened.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The batches could not be read, or the SQL failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A path is neither a batch folder nor a dataset folder with batches.
    #[error("{} is neither a batch directory (with manifest.json) nor a dataset directory with batches", .0.display())]
    NotBatches(PathBuf),
    /// There is nothing to query.
    #[error("nothing to query under {0}: no mirror and no batches (run a dataflow or `stripe-xdm run` first)")]
    Empty(PathBuf),
}

/// The resources mirrored under `root` (`<root>/<resource>/_delta_log` exists).
pub fn mirrors_under(root: &Path) -> Vec<(Resource, PathBuf)> {
    Resource::ALL
        .iter()
        .map(|r| (*r, root.join(r.path())))
        .filter(|(_, p)| p.join("_delta_log").is_dir())
        .collect()
}

/// Every committed or failed batch folder of every dataset under `out`
/// (`<out>/<dataset>/{batches,failed}/<batch>`), sorted.
pub fn batch_dirs_under(out: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let Ok(datasets) = std::fs::read_dir(out) else {
        return dirs;
    };
    for ds in datasets.flatten() {
        for sub in ["batches", "failed"] {
            if let Ok(entries) = std::fs::read_dir(ds.path().join(sub)) {
                for e in entries.flatten() {
                    if e.path().join(crate::sink::MANIFEST_FILE).exists() {
                        dirs.push(e.path());
                    }
                }
            }
        }
    }
    dirs.sort();
    dirs
}

/// The batch folders `target` names: itself when it is a batch (it has a manifest), else every
/// batch of the dataset folder it is (`target/{batches,failed}/<batch>`), sorted.
pub fn batch_dirs_of(target: &Path) -> Result<Vec<PathBuf>, InspectError> {
    if target.join(crate::sink::MANIFEST_FILE).exists() {
        return Ok(vec![target.to_path_buf()]);
    }
    let mut dirs = Vec::new();
    for sub in ["batches", "failed"] {
        if let Ok(entries) = std::fs::read_dir(target.join(sub)) {
            for e in entries.flatten() {
                if e.path().join(crate::sink::MANIFEST_FILE).exists() {
                    dirs.push(e.path());
                }
            }
        }
    }
    dirs.sort();
    if dirs.is_empty() {
        return Err(InspectError::NotBatches(target.to_path_buf()));
    }
    Ok(dirs)
}

/// A session with the mirrors under `mirror_root` registered by resource name, the rejected
/// rows of `batch_dirs` as `rejected`, and each dataset's accepted rows as `accepted_<dataset>`
/// (and `accepted` when the batches are of one dataset); the mapping functions (Data Prep,
/// JSON) are available.
pub async fn session(
    mirror_root: &Path,
    batch_dirs: &[PathBuf],
) -> Result<SessionContext, InspectError> {
    let ctx = crate::map::new_session();
    let mirrors = mirrors_under(mirror_root);
    if mirrors.is_empty() && batch_dirs.is_empty() {
        return Err(InspectError::Empty(mirror_root.to_path_buf()));
    }
    for (resource, path) in mirrors {
        let mirror = Mirror::open_existing(&path, resource).await?;
        mirror.register_current(&ctx, resource.path()).await?;
    }
    register_batches(&ctx, batch_dirs)?;
    let datasets = by_dataset(batch_dirs);
    if datasets.is_empty() {
        ctx.register_table("accepted", errors::accepted_table(&[])?)
            .map_err(QueryError::Sql)?;
    }
    for (dataset, dirs) in &datasets {
        // A dataset whose files cannot be read as one table loses its table, not the query.
        let table = match errors::accepted_files(dirs).and_then(|f| errors::accepted_table(&f)) {
            Ok(table) => table,
            Err(e) => {
                tracing::warn!(dataset, error = %e, "its accepted rows are not queryable");
                continue;
            }
        };
        let name = accepted_table(dataset);
        if ctx.table_exist(name.as_str()).unwrap_or(false) {
            tracing::warn!(
                dataset,
                table = name,
                "another dataset's accepted rows have this table name; not registered"
            );
            continue;
        }
        if datasets.len() == 1 {
            ctx.register_table("accepted", table.clone())
                .map_err(QueryError::Sql)?;
        }
        ctx.register_table(name, table).map_err(QueryError::Sql)?;
    }
    Ok(ctx)
}

/// `batch_dirs` (`<dataset>/{batches,failed}/<batch>`) grouped by their dataset's folder name.
fn by_dataset(batch_dirs: &[PathBuf]) -> std::collections::BTreeMap<String, Vec<PathBuf>> {
    let mut out = std::collections::BTreeMap::<String, Vec<PathBuf>>::new();
    for dir in batch_dirs {
        let dataset = dir
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.entry(dataset).or_default().push(dir.clone());
    }
    out
}

/// The table of a dataset's accepted rows: `accepted_` and its name as an identifier
/// (`stripe-charges` → `accepted_stripe_charges`).
fn accepted_table(dataset: &str) -> String {
    let name: String = dataset
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect();
    format!("accepted_{name}")
}

/// What a user's query may do: read. The mirror and the batches are written by runs only, so
/// no INSERT, DELETE, COPY … TO, CREATE (tables over arbitrary files) or SET.
pub(crate) fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Runs `sql` over [`session`]'s tables.
pub async fn sql(
    mirror_root: &Path,
    batch_dirs: &[PathBuf],
    sql: &str,
) -> Result<Vec<RecordBatch>, InspectError> {
    let ctx = session(mirror_root, batch_dirs).await?;
    // `SHOW TABLES` and `information_schema` for the user's query.
    ctx.sql("SET datafusion.catalog.information_schema = true")
        .await
        .map_err(QueryError::Sql)?;
    let df = match ctx.sql_with_options(sql, read_only()).await {
        Ok(df) => df,
        Err(e) => return Err(with_tables(&ctx, mirror_root, e).into()),
    };
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(QueryError::Sql)?;
    // An empty result still has its columns (a CSV header, an empty Parquet file).
    Ok(if batches.is_empty() {
        vec![RecordBatch::new_empty(schema)]
    } else {
        batches
    })
}

/// DataFusion's error; when it names a table it cannot find, with the tables there are.
fn with_tables(
    ctx: &SessionContext,
    mirror_root: &Path,
    e: datafusion::error::DataFusionError,
) -> QueryError {
    let text = e.to_string();
    if !(text.contains("table '") && text.contains("not found")) {
        return QueryError::Sql(e);
    }
    let mut names = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    names.sort();
    QueryError::MissingTable {
        tables: if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        },
        mirrors: mirror_root.to_path_buf(),
        source: e,
    }
}
