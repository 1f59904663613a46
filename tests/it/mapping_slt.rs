//! The default mappings (`sql/<resource>.sql`) as sqllogictest files, the format DataFusion's own
//! SQL tests use: `tests/it/slt/<resource>.slt` queries `<resource>_xdm`, the mapping applied
//! to Stripe's own fixture objects (`fixtures/stripe-fixtures.json`, both API versions) and, where
//! present, a page of hand-made objects (`tests/it/slt/pages/<resource>.json`) for the cases the
//! fixtures lack (zero- and three-decimal currencies, failed charges, missing sub-objects).
//!
//! Each session has all six source tables (`charges`, …, decoded exactly as a run decodes them)
//! and all six mapped views, with every mapping function (Data Prep, JSON, currency).
//!
//! After an intended change to a mapping, rewrite the expected results with
//! `STRIPE_XDM_SLT_COMPLETE=1 cargo test --test it mapping_slt` and review the diff.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use stripe_xdm::map::{new_session, Mapping, DEFAULT_TENANT};
use stripe_xdm::Resource;

/// A DataFusion session with the sources and the mapped views.
struct MappingDb {
    ctx: SessionContext,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DbError(String);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Stripe list page holding `objects`.
fn page_of(resource: Resource, objects: &[serde_json::Value]) -> bytes::Bytes {
    let page = serde_json::json!({
        "object": "list",
        "url": format!("/v1/{}", resource.path()),
        "has_more": false,
        "data": objects,
    });
    bytes::Bytes::from(serde_json::to_vec_pretty(&page).unwrap())
}

/// The objects a resource's table holds: Stripe's fixtures, then the hand-made page's.
fn objects(resource: Resource) -> Vec<serde_json::Value> {
    let fixtures: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/stripe-fixtures.json")).unwrap(),
    )
    .unwrap();
    let name = resource.object_name();
    let mut out: Vec<serde_json::Value> = ["resources", "resources_2023_09_12"]
        .iter()
        .filter_map(|set| fixtures[set].get(name).cloned())
        .collect();
    let extra = root().join(format!("tests/it/slt/pages/{}.json", resource.path()));
    if let Ok(text) = std::fs::read_to_string(&extra) {
        let page: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", extra.display()));
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
    }
    out
}

impl MappingDb {
    async fn new() -> MappingDb {
        let ctx = new_session();
        for resource in Resource::ALL {
            let body = page_of(resource, &objects(resource));
            let env = stripe_xdm::source::envelope::scan(&body).unwrap();
            let decoded = stripe_xdm::decode::decode_records(resource, &body, &env.records);
            assert!(
                decoded.rejected.is_empty(),
                "{resource}: {:?}",
                decoded.rejected
            );
            ctx.register_batch(resource.path(), decoded.source_batch())
                .unwrap();
        }
        for resource in Resource::ALL {
            let mapping = Mapping::builtin(resource, DEFAULT_TENANT);
            let view = ctx.sql(&mapping.sql).await.unwrap().into_view();
            ctx.register_table(format!("{}_xdm", resource.path()), view)
                .unwrap();
        }
        MappingDb { ctx }
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DbError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError(e.to_string()))?;
        for i in 0..b.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| match f.value(i).to_string() {
                        s if s.is_empty() => "(empty)".to_string(),
                        s => s,
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[async_trait::async_trait]
impl AsyncDB for MappingDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let err = |e: datafusion::error::DataFusionError| DbError(e.to_string());
        let df = self.ctx.sql(sql).await.map_err(err)?;
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = df.collect().await.map_err(err)?;
        Ok(DBOutput::Rows {
            types,
            rows: rows_of(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "stripe-xdm mapping"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/it/slt"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    files
}

async fn run_file(path: &Path) {
    let mut runner = sqllogictest::Runner::new(|| async { Ok(MappingDb::new().await) });
    if std::env::var_os("STRIPE_XDM_SLT_COMPLETE").is_some() {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    if let Err(e) = runner.run_file_async(path).await {
        panic!("{}\n{}", path.display(), e.display(false));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_default_mapping_has_a_sqllogictest_file_and_passes_it() {
    let files = slt_files();
    for resource in Resource::ALL {
        assert!(
            files
                .iter()
                .any(|f| f.file_stem().unwrap() == resource.path()),
            "sql/{}.sql has no tests/it/slt/{}.slt",
            resource.path(),
            resource.path()
        );
    }
    for f in &files {
        run_file(f).await;
    }
}
