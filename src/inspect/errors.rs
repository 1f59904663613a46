//! `errors`: what went wrong in a batch, from its `rejected.parquet`.
//!
//! [`summarize`] counts the rejected rows of one batch directory by error code and column (the
//! row's deciding error, as in the run report's `rejected_by_code`), with a few sample rows per
//! group. [`query`] runs DataFusion SQL over the rows of several batch directories: table
//! `rejected` (every `rejected.parquet` row plus a `batch_id` column) and table `accepted`
//! (every `part-*.parquet` row).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;

use crate::sink::rejects::rejected_schema;
use crate::sink::{io_err, read_parquet, SinkError, REJECTED_FILE};

/// The Stripe object ids of one batch directory, row by row, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchIds {
    /// `_id` of every accepted row.
    pub accepted: Vec<String>,
    /// `object_id` of every rejected row (`None` when the record's id could not be read).
    pub rejected: Vec<Option<String>>,
}

impl BatchIds {
    /// Rows in the batch, accepted and rejected.
    pub fn rows(&self) -> usize {
        self.accepted.len() + self.rejected.len()
    }

    /// The distinct ids of all rows (a duplicate shows as `ids().len() < rows()`).
    pub fn ids(&self) -> std::collections::BTreeSet<String> {
        let rejected = self.rejected.iter().flatten();
        self.accepted.iter().chain(rejected).cloned().collect()
    }
}

/// Reads the object ids of a batch directory: what a comparison of two runs' output needs
/// (resume and crash tests, the resume bench).
pub fn batch_ids(batch_dir: &Path) -> Result<BatchIds, SinkError> {
    let strings = |b: &RecordBatch, column: &str| -> Vec<Option<String>> {
        b.column_by_name(column)
            .and_then(|c| c.as_string_opt::<i32>())
            .map(|s| s.iter().map(|v| v.map(str::to_string)).collect())
            .unwrap_or_else(|| vec![None; b.num_rows()])
    };
    let mut ids = BatchIds::default();
    for b in crate::sink::read_batch_dir(batch_dir)? {
        ids.accepted
            .extend(strings(&b, "_id").into_iter().flatten());
    }
    let rejected = batch_dir.join(REJECTED_FILE);
    if rejected.exists() {
        for b in read_parquet(&rejected)? {
            ids.rejected.extend(strings(&b, "object_id"));
        }
    }
    Ok(ids)
}

/// A rejected row shown as an example of its group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// The Stripe object id, when known.
    pub object_id: Option<String>,
    /// The offending value, when the error recorded one.
    pub value: Option<String>,
    /// The error's message.
    pub message: String,
}

/// Rejected rows sharing a deciding error code and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CodeCount {
    /// Platform-style code (`INGEST-1401-400`, `XDM-ENUM`, …).
    pub code: String,
    /// Dotted column path, `None` for whole-row errors.
    pub column: Option<String>,
    /// Rows.
    pub count: u64,
    /// Up to `samples_per_code` example rows, in file order.
    pub samples: Vec<Sample>,
}

/// Rejected rows of one stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StageCount {
    /// `decode`, `map` or `validate`.
    pub stage: String,
    /// Rows.
    pub count: u64,
}

/// The rejected rows of a batch, counted.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ErrorSummary {
    /// Rejected rows.
    pub total: u64,
    /// Rows by deciding code and column, most frequent first.
    pub by_code: Vec<CodeCount>,
    /// Rows by stage, most frequent first.
    pub by_stage: Vec<StageCount>,
}

impl ErrorSummary {
    /// Rows whose deciding error has `code` (all columns), as in `RunReport::rejected_by_code`.
    pub fn count_of(&self, code: &str) -> u64 {
        self.by_code
            .iter()
            .filter(|c| c.code == code)
            .map(|c| c.count)
            .sum()
    }

    /// Rows by code, all columns together.
    pub fn counts_by_code(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for c in &self.by_code {
            *out.entry(c.code.clone()).or_insert(0) += c.count;
        }
        out
    }
}

/// Why [`query`] failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Reading the batch files failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The accepted files of the batches do not share one schema.
    #[error("the accepted files do not share one schema: {0}")]
    Schema(String),
    /// An accepted file's Parquet footer could not be read.
    #[error("reading the schema of {}: {source}", path.display())]
    Footer {
        /// The file.
        path: PathBuf,
        /// Parquet's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A dataset's accepted files have schemas that cannot be merged.
    #[error("the accepted files under {} do not share one schema: {source}", dataset.display())]
    Merge {
        /// The dataset folder.
        dataset: PathBuf,
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A file path that cannot be a `file://` URL.
    #[error("{}: not a file path a table can be read from", .0.display())]
    FilePath(PathBuf),
    /// DataFusion rejected or failed the query.
    #[error("query failed: {0}")]
    Sql(#[source] datafusion::error::DataFusionError),
    /// The query names a table that is not there.
    #[error(
        "query failed: {source}; the tables here are: {tables} (mirrors from {mirrors}, \
         `accepted…` and `rejected` from the batches)"
    )]
    MissingTable {
        /// The tables there are, comma-separated (`none` when there are none).
        tables: String,
        /// The folder the mirror tables come from.
        mirrors: PathBuf,
        /// DataFusion's error naming the table.
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

/// Counts the rejected rows of one batch directory (committed or failed) by code and column.
/// A batch without `rejected.parquet` has none.
pub fn summarize(batch_dir: &Path, samples_per_code: usize) -> Result<ErrorSummary, SinkError> {
    let path = batch_dir.join(REJECTED_FILE);
    if !batch_dir.is_dir() {
        return Err(SinkError::Io {
            action: "reading batch directory",
            path: batch_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    if !path.exists() {
        // A committed batch without rejected rows; a folder without a manifest is no batch.
        if !batch_dir.join(crate::sink::MANIFEST_FILE).exists() {
            return Err(SinkError::Io {
                action: "reading batch directory",
                path: batch_dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no manifest.json or rejected.parquet: not a batch (<out>/<dataset>/batches/<id> or …/failed/<id>)",
                ),
            });
        }
        return Ok(ErrorSummary::default());
    }
    let batches = read_parquet(&path)?;
    let mut groups: BTreeMap<(String, Option<String>), CodeCount> = BTreeMap::new();
    let mut order: Vec<(String, Option<String>)> = Vec::new();
    let mut stages: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    for b in &batches {
        let bad = |what: &str| SinkError::Parquet {
            path: path.clone(),
            source: format!("rejected file lacks a string column `{what}`").into(),
        };
        let string_col = |name: &str| -> Result<StringArray, SinkError> {
            let col = b.column_by_name(name).ok_or_else(|| bad(name))?;
            let col = arrow::compute::cast(col, &DataType::Utf8).map_err(|_| bad(name))?;
            Ok(col.as_string::<i32>().clone())
        };
        let ids = string_col("object_id")?;
        let stage = string_col("stage")?;
        let code = string_col("code")?;
        let column = string_col("column")?;
        let errors = b
            .column_by_name("errors")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| bad("errors"))?;
        for row in 0..b.num_rows() {
            total += 1;
            *stages.entry(stage.value(row).to_string()).or_insert(0) += 1;
            let key = (
                code.value(row).to_string(),
                (!column.is_null(row) && !column.value(row).is_empty())
                    .then(|| column.value(row).to_string()),
            );
            let entry = groups.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                CodeCount {
                    code: key.0.clone(),
                    column: key.1.clone(),
                    count: 0,
                    samples: Vec::new(),
                }
            });
            entry.count += 1;
            if entry.samples.len() < samples_per_code {
                let (message, value) = deciding_error(errors, row, &key.0, key.1.as_deref());
                entry.samples.push(Sample {
                    object_id: (!ids.is_null(row)).then(|| ids.value(row).to_string()),
                    value,
                    message,
                });
            }
        }
    }
    let mut by_code: Vec<CodeCount> = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect();
    // Most frequent first; ties keep first-seen order (stable sort).
    by_code.sort_by_key(|c| std::cmp::Reverse(c.count));
    let mut by_stage: Vec<StageCount> = stages
        .into_iter()
        .map(|(stage, count)| StageCount { stage, count })
        .collect();
    by_stage.sort_by_key(|s| std::cmp::Reverse(s.count));
    Ok(ErrorSummary {
        total,
        by_code,
        by_stage,
    })
}

/// The message and value of the row's error entry matching its deciding code and column (the
/// first entry if none matches).
fn deciding_error(
    errors: &arrow::array::ListArray,
    row: usize,
    code: &str,
    column: Option<&str>,
) -> (String, Option<String>) {
    if errors.is_null(row) {
        return (String::new(), None);
    }
    let items = errors.value(row);
    let Some(items) = items.as_struct_opt() else {
        return (String::new(), None);
    };
    let get = |name: &str| {
        items
            .column_by_name(name)
            .and_then(|c| arrow::compute::cast(c, &DataType::Utf8).ok())
    };
    let (Some(codes), Some(columns), Some(messages), Some(values)) =
        (get("code"), get("column"), get("message"), get("value"))
    else {
        return (String::new(), None);
    };
    let (codes, columns, messages, values) = (
        codes.as_string::<i32>(),
        columns.as_string::<i32>(),
        messages.as_string::<i32>(),
        values.as_string::<i32>(),
    );
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    let matching = (0..items.len()).find(|&i| {
        opt(codes, i).as_deref() == Some(code)
            && opt(columns, i).filter(|c| !c.is_empty()).as_deref() == column
    });
    let i = match matching.or((!items.is_empty()).then_some(0)) {
        Some(i) => i,
        None => return (String::new(), None),
    };
    (opt(messages, i).unwrap_or_default(), opt(values, i))
}

/// Runs DataFusion SQL over the batches in `batch_dirs`: table `rejected` holds every row of
/// their `rejected.parquet` files (columns object_id, stage, code, column, errors, source, and
/// batch_id: the directory name), table `accepted` every row of their `part-*.parquet` files.
pub async fn query(batch_dirs: &[PathBuf], sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let ctx = crate::map::new_session();
    register_batches(&ctx, batch_dirs)?;
    let accepted = accepted_table(&accepted_files(batch_dirs)?)?;
    ctx.register_table("accepted", accepted)
        .map_err(QueryError::Sql)?;
    let df = ctx
        .sql_with_options(sql, super::read_only())
        .await
        .map_err(QueryError::Sql)?;
    df.collect().await.map_err(QueryError::Sql)
}

/// The accepted rows' files of `batch_dirs` (`part-*.parquet`), in order.
pub fn accepted_files(batch_dirs: &[PathBuf]) -> Result<Vec<PathBuf>, QueryError> {
    let mut files = Vec::new();
    for dir in batch_dirs {
        let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_err("listing", dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
            })
            .collect();
        parts.sort();
        files.append(&mut parts);
    }
    Ok(files)
}

/// The accepted rows of `files` (one dataset's) as a table read from disk as queries need them
/// (nothing is loaded up front); empty when there are none. Its schema is every file's merged
/// (a dataset whose XDM schema gained fields since its first batch), columns that some files
/// lack being nullable; files whose schemas cannot be merged are an error naming the file.
pub fn accepted_table(
    files: &[PathBuf],
) -> Result<Arc<dyn datafusion::catalog::TableProvider>, QueryError> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    if files.is_empty() {
        let empty =
            MemTable::try_new(Arc::new(Schema::empty()), vec![vec![]]).map_err(QueryError::Sql)?;
        return Ok(Arc::new(empty));
    }
    let schema = merged_schema(files)?;
    // File URLs, not paths parsed as globs: `[`, `*` or `?` in a folder name stay literal.
    let urls = files
        .iter()
        .map(|f| {
            let url = std::path::absolute(f)
                .ok()
                .and_then(|a| url::Url::from_file_path(a).ok())
                .ok_or_else(|| QueryError::FilePath(f.clone()))?;
            ListingTableUrl::try_new(url, None).map_err(QueryError::Sql)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let format = ParquetFormat::default().with_force_view_types(false);
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(QueryError::Sql)?,
    ))
}

/// The merged Arrow schema of Parquet `files` (read from their footers); a column some file
/// lacks is nullable.
fn merged_schema(files: &[PathBuf]) -> Result<SchemaRef, QueryError> {
    let mut schemas = Vec::with_capacity(files.len());
    for f in files {
        let file = std::fs::File::open(f).map_err(io_err("opening", f))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| QueryError::Footer {
            path: f.clone(),
            source,
        })?;
        let schema = reader.schema();
        schemas.push(Schema::new(schema.fields().clone()));
    }
    // `<dataset>/batches/<batch>/part-*.parquet`: the dataset folder names the table's files.
    let merged =
        Schema::try_merge(schemas.iter().cloned()).map_err(|source| QueryError::Merge {
            dataset: files[0]
                .ancestors()
                .nth(3)
                .unwrap_or(&files[0])
                .to_path_buf(),
            source,
        })?;
    let fields: Vec<Field> = merged
        .fields()
        .iter()
        .map(|f| {
            let everywhere = schemas.iter().all(|s| s.field_with_name(f.name()).is_ok());
            f.as_ref()
                .clone()
                .with_nullable(f.is_nullable() || !everywhere)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Registers table `rejected` (see [`query`]) of `batch_dirs` in `ctx`.
pub fn register_batches(
    ctx: &datafusion::prelude::SessionContext,
    batch_dirs: &[PathBuf],
) -> Result<(), QueryError> {
    let mut rejected_schema_ext: SchemaRef = {
        let mut fields: Vec<Field> = rejected_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("batch_id", DataType::Utf8, false));
        Arc::new(Schema::new(fields))
    };
    let mut rejected = Vec::new();
    for dir in batch_dirs {
        let batch_id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(REJECTED_FILE);
        if path.exists() {
            for b in read_parquet(&path)? {
                let ids = StringArray::from(vec![batch_id.as_str(); b.num_rows()]);
                let mut columns = b.columns().to_vec();
                columns.push(Arc::new(ids));
                let mut fields: Vec<Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                fields.push(Field::new("batch_id", DataType::Utf8, false));
                let schema = Arc::new(Schema::new(fields));
                rejected_schema_ext = schema.clone();
                rejected.push(
                    RecordBatch::try_new(schema, columns)
                        .map_err(|e| QueryError::Schema(e.to_string()))?,
                );
            }
        }
    }
    let rejected_table =
        MemTable::try_new(rejected_schema_ext, vec![rejected]).map_err(QueryError::Sql)?;
    ctx.register_table("rejected", Arc::new(rejected_table))
        .map_err(QueryError::Sql)?;
    Ok(())
}
