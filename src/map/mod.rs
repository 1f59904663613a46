//! Map: the resource's decoded records are a DataFusion table named after the resource
//! (`charges`, `balance_transactions`, …) and a SQL file projects them into rows of the target
//! XDM schema.
//!
//! A mapping must return exactly one row per source row, in order (a projection: use `CASE`,
//! `TRY_CAST` and NULLs rather than `WHERE`, joins or aggregates), so every output row can be
//! traced back to its Stripe record. A chunk whose mapping fails at run time (a `CAST` that
//! cannot convert one value) is bisected so that only the failing records are rejected, with
//! `MAPPER-3700-400`, and the rest of the chunk goes on.

mod columnar_map;
pub mod currency;
pub mod dataprep;
pub mod functions;
mod identity;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::catalog::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::source::DataSource;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::decode::{source_schema, with_null_raw, RAW_COLUMN};
use crate::Resource;

pub mod check;

/// Platform's code for a mapping (Data Prep) transform error.
pub const CODE_TRANSFORM: &str = "MAPPER-3700-400";

/// The placeholder for the tenant id in mapping files and XDM schema files.
pub const TENANT_PLACEHOLDER: &str = "${tenant}";

/// The default tenant id (custom fields go under `_tenant`).
pub const DEFAULT_TENANT: &str = "tenant";

/// Checks a tenant id: Platform's are letters, digits and underscores (`_acme` holds a
/// schema's custom fields), so it is one field name and one segment of the schema's `$id`.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() {
        return Err("the tenant id is empty: give your organization's (the name of its custom fields' object, without the leading _)".into());
    }
    if let Some(c) = tenant
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "tenant id {tenant:?}: has {c:?}; a tenant id is letters, digits and underscores (give it without the leading _)"
        ));
    }
    if tenant.starts_with('_') {
        return Err(format!(
            "tenant id {tenant:?}: give it without the leading _ (custom fields go under _<tenant>)"
        ));
    }
    Ok(())
}

/// A mapping: SQL text over the resource table, with where it came from.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The SQL, with the tenant placeholder already substituted.
    pub sql: String,
    /// Where it came from: a file path or `built-in sql/<resource>.sql`.
    pub origin: String,
}

/// Why a mapping could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The mapping file could not be read.
    #[error("cannot read mapping file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The SQL does not plan against the resource table.
    #[error("mapping {origin} does not compile against table `{table}`: {source}")]
    Compile {
        /// The mapping's origin.
        origin: String,
        /// The table name.
        table: String,
        /// DataFusion's (or Arrow's) error.
        #[source]
        source: Box<DataFusionError>,
    },
    /// The source rows' `_raw` could not be turned into the text the mapping reads.
    #[error("mapping {origin}: cannot read the source rows' `_raw` as text: {source}")]
    RawText {
        /// The mapping's origin.
        origin: String,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
    /// The SQL is not a projection of the resource table: it filters, joins, aggregates,
    /// orders, limits or windows, so its rows would not be one per record of a chunk.
    #[error("mapping {origin} is not a projection of `{table}`: it has {what}; a mapping returns one row per record, in order (use CASE/TRY_CAST/NULL instead of WHERE, joins, aggregates, DISTINCT, ORDER BY, LIMIT or window functions)")]
    NotProjection {
        /// The mapping's origin.
        origin: String,
        /// The table name.
        table: String,
        /// What it has, e.g. `a WHERE (Filter)`.
        what: String,
    },
    /// The SQL changes the number of rows.
    #[error("mapping {origin} returned {got} rows for {expected} source rows: a mapping must be a projection (one row per record); use CASE/TRY_CAST/NULL instead of WHERE, joins or aggregates")]
    RowCount {
        /// The mapping's origin.
        origin: String,
        /// Rows in.
        expected: usize,
        /// Rows out.
        got: usize,
    },
}

impl Mapping {
    /// The built-in default mapping of a resource (`sql/<resource>.sql`).
    pub fn builtin(resource: Resource, tenant: &str) -> Mapping {
        Mapping {
            sql: substitute_tenant(crate::defaults::mapping_sql(resource), tenant),
            origin: format!("built-in sql/{}.sql", resource.path()),
        }
    }

    /// A mapping read from a file.
    pub fn from_file(path: &Path, tenant: &str) -> Result<Mapping, MapError> {
        let sql = std::fs::read_to_string(path).map_err(|source| MapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Mapping {
            sql: substitute_tenant(&sql, tenant),
            origin: path.display().to_string(),
        })
    }
}

/// Replaces `${tenant}` with the tenant id.
pub fn substitute_tenant(text: &str, tenant: &str) -> String {
    text.replace(TENANT_PLACEHOLDER, tenant)
}

/// The outcome of mapping one chunk.
#[derive(Debug)]
pub struct Mapped {
    /// The mapped rows, one per entry of `rows`.
    pub batch: RecordBatch,
    /// For each mapped row, its index in the input batch (ascending).
    pub rows: Vec<u32>,
    /// Input rows whose mapping failed, with DataFusion's message.
    pub failed: Vec<(u32, String)>,
}

/// A compiled mapping bound to one resource table.
pub struct Mapper {
    ctx: SessionContext,
    mapping: Mapping,
    table: String,
    source_schema: SchemaRef,
    output_schema: SchemaRef,
    /// The mapping planned once (SQL parsed, optimized, physical plan built) when it is a pure
    /// projection whose plan does not depend on the data or the time of planning; each chunk
    /// then only swaps the in-memory scan under it. `None`: every chunk plans the SQL again.
    prepared: Option<Prepared>,
    /// The mapping reads `_raw` (a JSON function over it, or the column itself).
    reads_raw: bool,
}

/// A physical plan made of projections over one in-memory scan, and the task context to run it.
struct Prepared {
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
}

impl std::fmt::Debug for Mapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapper")
            .field("origin", &self.mapping.origin)
            .field("table", &self.table)
            .finish()
    }
}

impl Mapper {
    /// Compiles `mapping` against `resource`'s source table and records its output schema.
    pub async fn new(resource: Resource, mapping: Mapping) -> Result<Mapper, MapError> {
        Self::with_session(resource, mapping, new_session()).await
    }

    /// Like [`Mapper::new`] for records read through a connected account: the mapping's
    /// `connected_account()` returns `account`.
    pub async fn for_account(
        resource: Resource,
        mapping: Mapping,
        account: Option<&str>,
    ) -> Result<Mapper, MapError> {
        let ctx = new_session();
        functions::set_connected_account(&ctx, account);
        Self::with_session(resource, mapping, ctx).await
    }

    /// Like [`Mapper::new`] with a caller-provided session (e.g. one with extra UDFs).
    pub async fn with_session(
        resource: Resource,
        mapping: Mapping,
        ctx: SessionContext,
    ) -> Result<Mapper, MapError> {
        let table = resource.path().to_string();
        let source_schema = source_schema(resource);
        let compile = |e: DataFusionError| MapError::Compile {
            origin: mapping.origin.clone(),
            table: table.clone(),
            source: Box::new(e),
        };
        ctx.register_batch(&table, RecordBatch::new_empty(source_schema.clone()))
            .map_err(compile)?;
        let df = ctx.sql(&mapping.sql).await.map_err(compile)?;
        if let Some(what) = not_projection(df.logical_plan()) {
            return Err(MapError::NotProjection {
                origin: mapping.origin.clone(),
                table,
                what,
            });
        }
        let output_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let reads_raw = references_column(df.logical_plan(), RAW_COLUMN);
        let prepared = prepare(df).await;
        Ok(Mapper {
            ctx,
            mapping,
            table,
            source_schema,
            output_schema,
            prepared,
            reads_raw,
        })
    }

    /// True when the mapping reads `_raw`. When it does not, its source rows may come without
    /// `_raw` (a remap then reads far less of the mirror).
    pub fn reads_raw(&self) -> bool {
        self.reads_raw
    }

    /// The Arrow schema of the mapping's output.
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// The source table's schema.
    pub fn source_schema(&self) -> SchemaRef {
        self.source_schema.clone()
    }

    /// True when the mapping was planned once and each chunk reuses the plan (a pure
    /// projection without `now()`-like functions); false when every chunk plans it again.
    pub fn is_prepared(&self) -> bool {
        self.prepared.is_some()
    }

    /// The mapping this mapper runs.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Runs the mapping over one chunk. Rows whose mapping fails are bisected out and reported
    /// in [`Mapped::failed`]; a mapping that changes the row count is an error.
    ///
    /// `batch` is in the source schema (decoded columns and `_raw`); a batch of decoded
    /// columns only gets a NULL `_raw`.
    pub async fn map(&self, batch: RecordBatch) -> Result<Mapped, MapError> {
        let batch = match batch.schema().column_with_name(RAW_COLUMN) {
            None => with_null_raw(&batch),
            Some((i, f)) if f.data_type() == &DataType::Utf8View => self
                .raw_as_text(&batch, i)
                .map_err(|source| MapError::RawText {
                    origin: self.mapping.origin.clone(),
                    source,
                })?,
            Some(_) => batch,
        };
        let n = batch.num_rows();
        match self.run(batch.clone()).await {
            Ok(out) => {
                self.check_rows(n, out.num_rows())?;
                Ok(Mapped {
                    batch: out,
                    rows: (0..n as u32).collect(),
                    failed: Vec::new(),
                })
            }
            Err(first) => {
                let mut parts = Vec::new();
                let mut rows = Vec::new();
                let mut failed = Vec::new();
                self.bisect(&batch, 0, n, first, &mut parts, &mut rows, &mut failed)
                    .await?;
                let batch =
                    arrow::compute::concat_batches(&self.output_schema, &parts).map_err(|e| {
                        MapError::Compile {
                            origin: self.mapping.origin.clone(),
                            table: self.table.clone(),
                            source: Box::new(e.into()),
                        }
                    })?;
                Ok(Mapped {
                    batch,
                    rows,
                    failed,
                })
            }
        }
    }

    /// `batch` with its `Utf8View` `_raw` (column `i`, as the run stages it: views of the page
    /// bodies) as the source table's `Utf8`: copied when the mapping reads it, NULL when not.
    fn raw_as_text(&self, batch: &RecordBatch, i: usize) -> Result<RecordBatch, ArrowError> {
        let raw = if self.reads_raw {
            arrow::compute::cast(batch.column(i), &DataType::Utf8)?
        } else {
            arrow::array::new_null_array(&DataType::Utf8, batch.num_rows())
        };
        let mut columns = batch.columns().to_vec();
        columns[i] = raw;
        let mut fields: Vec<FieldRef> = batch.schema().fields().iter().cloned().collect();
        fields[i] = Arc::new(Field::new(RAW_COLUMN, DataType::Utf8, true));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }

    #[allow(clippy::too_many_arguments)]
    async fn bisect(
        &self,
        batch: &RecordBatch,
        offset: usize,
        len: usize,
        known_error: String,
        parts: &mut Vec<RecordBatch>,
        rows: &mut Vec<u32>,
        failed: &mut Vec<(u32, String)>,
    ) -> Result<(), MapError> {
        // Iterative halving with an explicit stack keeps rows in order.
        let mut stack = vec![(offset, len, Some(known_error))];
        while let Some((off, len, err)) = stack.pop() {
            if len == 0 {
                continue;
            }
            let result = match err {
                Some(e) => Err(e),
                None => self.run(batch.slice(off, len)).await,
            };
            match result {
                Ok(out) => {
                    self.check_rows(len, out.num_rows())?;
                    rows.extend(off as u32..(off + len) as u32);
                    parts.push(out);
                }
                Err(e) if len == 1 => failed.push((off as u32, e)),
                Err(_) => {
                    let half = len / 2;
                    stack.push((off + half, len - half, None));
                    stack.push((off, half, None));
                }
            }
        }
        Ok(())
    }

    fn check_rows(&self, expected: usize, got: usize) -> Result<(), MapError> {
        if expected == got {
            Ok(())
        } else {
            Err(MapError::RowCount {
                origin: self.mapping.origin.clone(),
                expected,
                got,
            })
        }
    }

    async fn run(&self, batch: RecordBatch) -> Result<RecordBatch, String> {
        if let Some(prepared) = &self.prepared {
            if batch.schema().fields() == self.source_schema.fields() {
                let plan = bind(&prepared.plan, &batch).map_err(|e| e.to_string())?;
                let parts = datafusion::physical_plan::collect(plan, prepared.task_ctx.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                return arrow::compute::concat_batches(&self.output_schema, &parts)
                    .map_err(|e| e.to_string());
            }
        }
        let _ = self.ctx.deregister_table(&self.table);
        self.ctx
            .register_batch(&self.table, batch)
            .map_err(|e| e.to_string())?;
        let df = self
            .ctx
            .sql(&self.mapping.sql)
            .await
            .map_err(|e| e.to_string())?;
        let parts = df.collect().await.map_err(|e| e.to_string())?;
        arrow::compute::concat_batches(&self.output_schema, &parts).map_err(|e| e.to_string())
    }
}

/// Plans `df` (the mapping over the empty source table) once, if the plan can be reused for
/// every chunk: it calls no function whose value is fixed at planning time (`now()`,
/// `current_date()`: those are planned per chunk, as before) and it is nothing but projections
/// over the in-memory scan (a mapping with a filter, join, aggregate, sort or limit has a plan
/// that may depend on the data's statistics; it is planned per chunk and rejected by the row
/// count check as before).
async fn prepare(df: DataFrame) -> Option<Prepared> {
    if uses_stable_functions(df.logical_plan()) {
        return None;
    }
    let task_ctx = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await.ok()?;
    reusable(&plan).then_some(Prepared { plan, task_ctx })
}

/// What makes `plan` other than a projection of one table (rows in, the same rows out, in
/// order): the first node that is not a projection, an alias or the table scan, in words.
pub(crate) fn not_projection(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    // Subqueries too: `(SELECT max(id) FROM charges)` aggregates the chunk it sees.
    let _ = plan.apply_with_subqueries(|node| {
        let what = match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::TableScan(_) => return Ok(TreeNodeRecursion::Continue),
            LogicalPlan::Filter(_) => "a WHERE (or HAVING)",
            LogicalPlan::Aggregate(_) => "an aggregate (GROUP BY or an aggregate function)",
            LogicalPlan::Join(_) => "a join",
            LogicalPlan::Limit(_) => "a LIMIT or OFFSET",
            LogicalPlan::Sort(_) => "an ORDER BY",
            LogicalPlan::Distinct(_) => "a DISTINCT",
            LogicalPlan::Union(_) => "a UNION",
            LogicalPlan::Window(_) => "a window function (it would see one chunk at a time)",
            LogicalPlan::Unnest(_) => "an UNNEST (one row per list element)",
            other => {
                found = Some(format!(
                    "a {} step",
                    other
                        .display()
                        .to_string()
                        .split(':')
                        .next()
                        .unwrap_or("plan")
                ));
                return Ok(TreeNodeRecursion::Stop);
            }
        };
        found = Some(what.to_string());
        Ok(TreeNodeRecursion::Stop)
    });
    found
}

/// True when an expression of the plan refers to a column called `name` (true when unsure).
fn references_column(plan: &LogicalPlan, name: &str) -> bool {
    plan.exists(|node| {
        let mut found = false;
        node.apply_expressions(|e| {
            found = e
                .exists(|e| Ok(matches!(e, Expr::Column(c) if c.name == name)))
                .unwrap_or(true);
            Ok(if found {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        Ok(found)
    })
    .unwrap_or(true)
}

/// True when the plan calls a function evaluated once per query (Volatility::Stable).
fn uses_stable_functions(plan: &LogicalPlan) -> bool {
    let stable = |e: &Expr| {
        e.exists(|e| {
            Ok(matches!(e, Expr::ScalarFunction(f)
                if f.func.signature().volatility == Volatility::Stable))
        })
        .unwrap_or(true)
    };
    plan.exists(|node| {
        let mut found = false;
        node.apply_expressions(|e| {
            found = stable(e);
            Ok(if found {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        Ok(found)
    })
    .unwrap_or(true)
}

/// The in-memory scan of a plan leaf, without a row limit.
fn memory_scan(plan: &dyn ExecutionPlan) -> Option<&MemorySourceConfig> {
    let scan = plan.downcast_ref::<DataSourceExec>()?;
    let source = scan.data_source().downcast_ref::<MemorySourceConfig>()?;
    DataSource::fetch(source).is_none().then_some(source)
}

/// Projections over one in-memory scan, nothing else.
fn reusable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if memory_scan(plan.as_ref()).is_some() {
        return true;
    }
    let children = plan.children();
    plan.is::<ProjectionExec>() && children.len() == 1 && reusable(children[0])
}

/// The prepared plan over `batch`: the scan leaf replaced with one of `batch` (same schema,
/// projection and partitioning, so the nodes above keep their properties).
fn bind(
    plan: &Arc<dyn ExecutionPlan>,
    batch: &RecordBatch,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    if let Some(source) = memory_scan(plan.as_ref()) {
        return Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch.clone()]],
            source.original_schema(),
            source.projection().clone(),
        )?);
    }
    let children = plan
        .children()
        .into_iter()
        .map(|c| bind(c, batch))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Arc::clone(plan).replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
    )
}

/// A DataFusion session for mappings: one partition (row order is preserved) and large batches.
pub fn new_session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(1 << 16)
        .with_information_schema(false);
    let mut ctx = SessionContext::new_with_config(config);
    dataprep::register(&ctx);
    functions::register(&ctx);
    // DataFusion's `map`, replaced by one with a columnar path (same name, same results).
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
        columnar_map::ColumnarMap::default(),
    ));
    currency::register(&ctx);
    datafusion_functions_json::register_all(&mut ctx)
        .expect("the JSON functions register in a fresh session");
    ctx
}
