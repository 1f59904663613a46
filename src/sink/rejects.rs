//! Rejected rows: a Parquet file for local analysis and, with error diagnostics on, Platform-style
//! `row_errors/` JSON Lines files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, ListBuilder, RecordBatch, StringBuilder, StructBuilder};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::{io_err, SinkError};

/// File name of the rejected rows inside a batch directory.
pub const REJECTED_FILE: &str = "rejected.parquet";

/// The stage that rejected a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The record could not be decoded (broken JSON, wrong type).
    Decode,
    /// The mapping SQL failed on the record.
    Map,
    /// The mapped row broke the XDM schema.
    Validate,
}

impl Stage {
    /// `decode`, `map` or `validate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Map => "map",
            Stage::Validate => "validate",
        }
    }
}

/// One error of a rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEntry {
    /// Dotted path of the column (empty for whole-row errors).
    pub column: String,
    /// Platform-style code.
    pub code: String,
    /// Human message.
    pub message: String,
    /// The offending value, rendered and truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A rejected row with its source record.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The Stripe object id, when known.
    pub object_id: Option<String>,
    /// Which stage rejected it.
    pub stage: Stage,
    /// Every error of the row.
    pub errors: Vec<ErrorEntry>,
    /// The raw Stripe record (JSON text).
    pub source: String,
}

impl Rejection {
    /// The error that decided the rejection: the first one that is not a transform warning
    /// (a failed conversion only rejects a row through the rule it then breaks).
    pub fn primary(&self) -> Option<&ErrorEntry> {
        self.errors
            .iter()
            .find(|e| e.code != "MAPPER-3700-400")
            .or(self.errors.first())
    }
}

/// The Arrow schema of `rejected.parquet`.
pub fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("object_id", DataType::Utf8, true),
        Field::new("stage", DataType::Utf8, false),
        Field::new("code", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, true),
        Field::new(
            "errors",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(error_fields()),
                true,
            ))),
            false,
        ),
        Field::new("source", DataType::Utf8, false),
    ]))
}

fn error_fields() -> Fields {
    Fields::from(vec![
        Field::new("column", DataType::Utf8, true),
        Field::new("code", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
    ])
}

fn to_batch(rows: &[Rejection]) -> RecordBatch {
    let mut id = StringBuilder::new();
    let mut stage = StringBuilder::new();
    let mut code = StringBuilder::new();
    let mut column = StringBuilder::new();
    let mut source = StringBuilder::new();
    let fields = error_fields();
    let mut errors = ListBuilder::new(StructBuilder::from_fields(fields.clone(), 0))
        .with_field(Arc::new(Field::new("item", DataType::Struct(fields), true)));
    for r in rows {
        id.append_option(r.object_id.as_deref());
        stage.append_value(r.stage.as_str());
        let first = r.primary();
        code.append_value(first.map(|e| e.code.as_str()).unwrap_or(""));
        column.append_option(first.map(|e| e.column.as_str()).filter(|c| !c.is_empty()));
        source.append_value(&r.source);
        let items = errors.values();
        for e in &r.errors {
            let values = [
                Some(e.column.as_str()),
                Some(e.code.as_str()),
                Some(e.message.as_str()),
                e.value.as_deref(),
            ];
            for (i, v) in values.into_iter().enumerate() {
                items
                    .field_builder::<StringBuilder>(i)
                    .expect("error fields are strings")
                    .append_option(v);
            }
            items.append(true);
        }
        errors.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(stage.finish()),
        Arc::new(code.finish()),
        Arc::new(column.finish()),
        Arc::new(errors.finish()),
        Arc::new(source.finish()),
    ];
    RecordBatch::try_new(rejected_schema(), columns).expect("columns follow rejected_schema")
}

/// What the reject writer produced.
#[derive(Debug, Default)]
pub(crate) struct RejectSummary {
    pub file: Option<String>,
    pub diagnostics: Vec<String>,
}

/// Streams rejected rows to Parquet and keeps diagnostics lines on disk.
///
/// Rejected rows go to Parquet *parts* that [`RejectWriter::seal`] closes at each checkpoint;
/// [`RejectWriter::finish`] joins them into one `rejected.parquet`. The diagnostics files are
/// append-only, so a checkpoint records their lengths and a resume truncates them back.
pub(crate) struct RejectWriter {
    dir: PathBuf,
    parquet: Option<(ArrowWriter<File>, String)>,
    parts: Vec<String>,
    parsing: BufWriter<File>,
    conversion: BufWriter<File>,
    parsing_rows: u64,
    conversion_rows: u64,
}

/// The rejected rows staged up to a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectsState {
    /// Sealed Parquet parts.
    pub parts: Vec<String>,
    /// Bytes of the parsing diagnostics file.
    pub parsing_bytes: u64,
    /// Bytes of the conversion diagnostics file.
    pub conversion_bytes: u64,
    /// Lines in the parsing diagnostics file.
    pub parsing_rows: u64,
    /// Lines in the conversion diagnostics file.
    pub conversion_rows: u64,
}

fn part_name(i: usize) -> String {
    format!(".rejected-part-{i:05}.parquet")
}

const PARSING: &str = "row_errors/parsing_errors_0.json";
const CONVERSION: &str = "row_errors/conversion_errors_0.json";

impl RejectWriter {
    pub fn new(dir: &Path) -> Result<Self, SinkError> {
        let row_errors = dir.join("row_errors");
        std::fs::create_dir_all(&row_errors).map_err(io_err("creating", &row_errors))?;
        let open = |name: &str| -> Result<BufWriter<File>, SinkError> {
            let p = dir.join(name);
            Ok(BufWriter::new(
                File::create(&p).map_err(io_err("creating", &p))?,
            ))
        };
        Ok(RejectWriter {
            dir: dir.to_path_buf(),
            parquet: None,
            parts: Vec::new(),
            parsing: open(PARSING)?,
            conversion: open(CONVERSION)?,
            parsing_rows: 0,
            conversion_rows: 0,
        })
    }

    /// Reopens the rejects of a staged batch at a checkpoint: parts after it are removed, the
    /// diagnostics files cut back to their checkpointed lengths.
    pub fn resume(dir: &Path, state: &RejectsState) -> Result<Self, SinkError> {
        let row_errors = dir.join("row_errors");
        std::fs::create_dir_all(&row_errors).map_err(io_err("creating", &row_errors))?;
        for entry in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
            let entry = entry.map_err(io_err("listing", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".rejected-part-") && !state.parts.contains(&name) {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        let reopen = |name: &str, len: u64| -> Result<BufWriter<File>, SinkError> {
            let p = dir.join(name);
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .map_err(io_err("opening", &p))?;
            f.set_len(len).map_err(io_err("truncating", &p))?;
            let mut w = BufWriter::new(f);
            use std::io::Seek;
            w.seek(std::io::SeekFrom::Start(len))
                .map_err(io_err("seeking", &p))?;
            Ok(w)
        };
        Ok(RejectWriter {
            dir: dir.to_path_buf(),
            parquet: None,
            parts: state.parts.clone(),
            parsing: reopen(PARSING, state.parsing_bytes)?,
            conversion: reopen(CONVERSION, state.conversion_bytes)?,
            parsing_rows: state.parsing_rows,
            conversion_rows: state.conversion_rows,
        })
    }

    /// Closes the open part and flushes the diagnostics; returns what is staged so far.
    pub fn seal(&mut self) -> Result<RejectsState, SinkError> {
        if let Some((w, name)) = self.parquet.take() {
            let path = self.dir.join(&name);
            w.close().map_err(|e| SinkError::Parquet {
                path: path.clone(),
                source: e.into(),
            })?;
            self.parts.push(name);
        }
        let len = |w: &mut BufWriter<File>, name: &str| -> Result<u64, SinkError> {
            let p = self.dir.join(name);
            w.flush().map_err(io_err("writing", &p))?;
            w.get_ref().sync_data().map_err(io_err("syncing", &p))?;
            Ok(w.get_ref().metadata().map_err(io_err("reading", &p))?.len())
        };
        let parsing_bytes = len(&mut self.parsing, PARSING)?;
        let conversion_bytes = len(&mut self.conversion, CONVERSION)?;
        Ok(RejectsState {
            parts: self.parts.clone(),
            parsing_bytes,
            conversion_bytes,
            parsing_rows: self.parsing_rows,
            conversion_rows: self.conversion_rows,
        })
    }

    pub fn write(&mut self, rows: &[Rejection]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.parquet.is_none() {
            let name = part_name(self.parts.len());
            let path = self.dir.join(&name);
            let file = File::create(&path).map_err(io_err("creating", &path))?;
            let w = ArrowWriter::try_new(file, rejected_schema(), Some(reject_props())).map_err(
                |e| SinkError::Parquet {
                    path: path.clone(),
                    source: e.into(),
                },
            )?;
            self.parquet = Some((w, name));
        }
        let batch = to_batch(rows);
        let (w, name) = self.parquet.as_mut().expect("opened above");
        w.write(&batch).map_err(|e| SinkError::Parquet {
            path: PathBuf::from(name.clone()),
            source: e.into(),
        })?;
        for r in rows {
            self.diagnostic_line(r)?;
        }
        Ok(())
    }

    fn diagnostic_line(&mut self, r: &Rejection) -> Result<(), SinkError> {
        #[derive(Serialize)]
        struct RowError<'a> {
            #[serde(skip_serializing_if = "str::is_empty")]
            column: &'a str,
            code: &'a str,
            message: &'a str,
        }
        let errors: Vec<RowError> = r
            .errors
            .iter()
            .map(|e| RowError {
                column: &e.column,
                // Platform's parsing rows carry the bare numeric code ("1401").
                code: if r.stage == Stage::Decode {
                    "1401"
                } else {
                    &e.code
                },
                message: &e.message,
            })
            .collect();
        let (out, name, count) = if r.stage == Stage::Decode {
            (&mut self.parsing, PARSING, &mut self.parsing_rows)
        } else {
            (&mut self.conversion, CONVERSION, &mut self.conversion_rows)
        };
        let line = if r.stage == Stage::Decode {
            serde_json::json!({
                "_corrupt_record": r.source,
                "_errors": errors,
                "_filename": name.rsplit('/').next(),
            })
        } else {
            let record = serde_json::from_str::<serde_json::Value>(&r.source)
                .unwrap_or_else(|_| serde_json::Value::String(r.source.clone()));
            serde_json::json!({
                "_id": r.object_id,
                "_record": record,
                "_errors": errors,
                "_filename": name.rsplit('/').next(),
            })
        };
        serde_json::to_writer(&mut *out, &line).map_err(|e| SinkError::Io {
            action: "writing",
            path: name.into(),
            source: e.into(),
        })?;
        out.write_all(b"\n")
            .map_err(io_err("writing", Path::new(name)))?;
        *count += 1;
        Ok(())
    }

    /// Closes the files. Diagnostics files are kept only when `diagnostics` is on and they
    /// hold rows.
    pub fn finish(mut self, diagnostics: bool) -> Result<RejectSummary, SinkError> {
        let mut summary = RejectSummary::default();
        self.seal()?;
        if !self.parts.is_empty() {
            join_parts(&self.dir, &self.parts)?;
            summary.file = Some(REJECTED_FILE.to_string());
        }
        for (mut w, name, rows) in [
            (self.parsing, PARSING, self.parsing_rows),
            (self.conversion, CONVERSION, self.conversion_rows),
        ] {
            let path = self.dir.join(name);
            w.flush().map_err(io_err("writing", &path))?;
            drop(w);
            if diagnostics && rows > 0 {
                summary.diagnostics.push(name.to_string());
            } else {
                std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
            }
        }
        if summary.diagnostics.is_empty() {
            let _ = std::fs::remove_dir(self.dir.join("row_errors"));
        }
        Ok(summary)
    }
}

/// Rows per row group of the rejected rows: each carries its raw source record (kilobytes),
/// and a row group's encoded pages stay in memory until it is closed, so row groups are kept
/// small (in rows, and in bytes for large records) to keep memory flat however many rows a long
/// backfill rejects.
const REJECT_ROW_GROUP_ROWS: usize = 8 * 1024;
const REJECT_ROW_GROUP_BYTES: usize = 64 << 20;

fn reject_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(REJECT_ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(REJECT_ROW_GROUP_BYTES))
        .build()
}

/// Joins the sealed parts into `rejected.parquet` (a rename when there is one) and removes them.
/// The joined file is written under a temporary name and renamed when complete; the parts are
/// removed only then, so a failure leaves every part in place for a retry.
fn join_parts(dir: &Path, parts: &[String]) -> Result<(), SinkError> {
    let target = dir.join(REJECTED_FILE);
    if let [only] = parts {
        let p = dir.join(only);
        return std::fs::rename(&p, &target).map_err(io_err("renaming", &p));
    }
    let joining = dir.join(format!(".{REJECTED_FILE}.joining"));
    let file = File::create(&joining).map_err(io_err("creating", &joining))?;
    let perr = |e: parquet::errors::ParquetError| SinkError::Parquet {
        path: joining.clone(),
        source: e.into(),
    };
    let mut w =
        ArrowWriter::try_new(file, rejected_schema(), Some(reject_props())).map_err(perr)?;
    for part in parts {
        // Streamed batch by batch: a part can hold many rejected rows.
        let p = dir.join(part);
        for batch in super::parquet_reader(&p)? {
            let batch = batch.map_err(|e| SinkError::Parquet {
                path: p.clone(),
                source: e.into(),
            })?;
            w.write(&batch).map_err(perr)?;
        }
    }
    w.close().map_err(perr)?;
    std::fs::rename(&joining, &target).map_err(io_err("renaming", &joining))?;
    for part in parts {
        let p = dir.join(part);
        std::fs::remove_file(&p).map_err(io_err("removing", &p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(i: usize) -> Rejection {
        Rejection {
            object_id: Some(format!("ch_{i}")),
            stage: Stage::Decode,
            errors: vec![ErrorEntry {
                column: String::new(),
                code: "INGEST-1401-400".into(),
                message: "broken".into(),
                value: None,
            }],
            source: format!("{{\"id\":\"ch_{i}\""),
        }
    }

    #[test]
    fn parts_are_joined_in_order_and_kept_when_joining_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RejectWriter::new(dir.path()).unwrap();
        for part in 0..3 {
            let rows: Vec<Rejection> = (part * 10..part * 10 + 10).map(rejection).collect();
            w.write(&rows).unwrap();
            w.seal().unwrap();
        }
        let state = w.seal().unwrap();
        assert_eq!(state.parts.len(), 3);
        // A damaged part: the join fails and leaves every part in place.
        let bad = dir.path().join(&state.parts[2]);
        let good = std::fs::read(&bad).unwrap();
        std::fs::write(&bad, b"not parquet").unwrap();
        assert!(join_parts(dir.path(), &state.parts).is_err());
        for p in &state.parts {
            assert!(dir.path().join(p).exists(), "{p} kept");
        }
        assert!(!dir.path().join(REJECTED_FILE).exists());
        // Repaired, the retry joins all 30 rows in order and removes the parts.
        std::fs::write(&bad, good).unwrap();
        join_parts(dir.path(), &state.parts).unwrap();
        let batches = crate::sink::read_parquet(&dir.path().join(REJECTED_FILE)).unwrap();
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let c = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>();
                c.unwrap()
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let want: Vec<String> = (0..30).map(|i| format!("ch_{i}")).collect();
        assert_eq!(ids, want);
        for p in &state.parts {
            assert!(!dir.path().join(p).exists(), "{p} removed");
        }
    }
}
