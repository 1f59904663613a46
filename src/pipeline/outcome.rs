//! What becomes of a chunk's rows: mapped and validated into accepted rows and rejections
//! (with Platform's codes), and the run's verdict under the partial-ingestion threshold.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};

use super::PipelineError;
use crate::decode::{Decoded, CODE_UNPARSABLE};
use crate::map::{Mapper, CODE_TRANSFORM};
use crate::sink::{BatchError, ErrorEntry, Rejection, Stage};
use crate::xdm::{self, XdmSchema};

/// The run's failure under Platform's rule: without partial ingestion any rejected row fails
/// it; with it, the run fails only when rejected/fetched exceeds the threshold.
pub fn threshold_failure(fetched: u64, rejected: u64, partial: Option<f64>) -> Option<String> {
    match partial {
        _ if rejected == 0 => None,
        None => Some(format!(
            "{rejected} of {fetched} records were rejected and partial ingestion is off"
        )),
        Some(pct) if (rejected as f64) * 100.0 > pct * fetched as f64 => Some(format!(
            "{rejected} of {fetched} records rejected ({:.2}%), above the partial ingestion threshold of {pct}%",
            rejected as f64 * 100.0 / fetched.max(1) as f64
        )),
        Some(_) => None,
    }
}

pub(crate) fn error_summary(
    ingested: u64,
    by_code: &BTreeMap<String, u64>,
    diagnostics: bool,
) -> Vec<BatchError> {
    let total: u64 = by_code.values().sum();
    if total == 0 {
        return Vec::new();
    }
    let mut out = vec![if diagnostics {
        BatchError {
            code: "INGEST-1212-400".into(),
            message: format!("Encountered {total} errors in the data. Successfully ingested {ingested} rows. Review the associated diagnostic files for additional details."),
            record_count: None,
        }
    } else {
        BatchError {
            code: "INGEST-1211-400".into(),
            message: "Encountered errors while parsing, converting or otherwise validating the data. Please resend the data with error diagnostics enabled to collect additional information on failure types".into(),
            record_count: None,
        }
    }];
    for (code, n) in by_code {
        out.push(BatchError {
            code: code.clone(),
            message: code_message(code).to_string(),
            record_count: Some(*n),
        });
    }
    out
}

/// Platform's message for a code (ours for the local `XDM-*` codes).
pub fn code_message(code: &str) -> &'static str {
    match code {
        CODE_UNPARSABLE => "The row has corrupted data and cannot be read or parsed. Fix the corrupted data and try again.",
        "INGEST-1555-400" => "A required field is either missing or has a value of null. Add the required field to the input row and try again.",
        CODE_TRANSFORM => "Mapper Transform Error",
        "XDM-ENUM" => "A value is not one of the field's enum values.",
        "XDM-PATTERN" => "A value does not match the field's pattern.",
        "XDM-MINLENGTH" | "XDM-MAXLENGTH" => "A value's length is outside the field's minLength/maxLength.",
        "XDM-MINIMUM" | "XDM-MAXIMUM" => "A value is outside the field's minimum/maximum.",
        "XDM-FORMAT" => "A value does not match the field's format.",
        _ => "Validation error.",
    }
}

/// The code a rejected row is counted under.
pub(crate) fn primary_code(r: &Rejection) -> String {
    r.primary()
        .map(|e| e.code.clone())
        .unwrap_or_else(|| "UNKNOWN".into())
}

/// What mapping and validating decoded records gave.
pub(crate) struct Outcome {
    /// Accepted rows in the XDM Arrow schema.
    pub accepted: RecordBatch,
    /// Rejected rows (decode, map and validate stages), with their sources.
    pub rejected: Vec<Rejection>,
    /// Fields nulled by failed conversions in accepted rows.
    pub warnings: u64,
}

/// Decode failures as rejected rows (`INGEST-1401-400`).
pub(crate) fn decode_rejections(rejected: &[crate::decode::RejectedRecord]) -> Vec<Rejection> {
    rejected
        .iter()
        .map(|r| Rejection {
            object_id: r.id.clone(),
            stage: Stage::Decode,
            errors: vec![ErrorEntry {
                column: String::new(),
                code: CODE_UNPARSABLE.to_string(),
                message: r.reason.clone(),
                value: None,
            }],
            source: r.raw.clone(),
        })
        .collect()
}

/// Maps and validates decoded records, turning every failure into a [`Rejection`].
pub(crate) async fn map_and_validate(
    schema: &XdmSchema,
    mapper: &Mapper,
    decoded: Decoded,
) -> Result<Outcome, PipelineError> {
    let mut rejected = decode_rejections(&decoded.rejected);
    let mut outcome = map_and_validate_rows(schema, mapper, decoded.source_batch()).await?;
    rejected.append(&mut outcome.rejected);
    outcome.rejected = rejected;
    Ok(outcome)
}

/// Maps and validates rows of the mapping's source table (decoded columns and `_raw`, which
/// becomes each rejected row's source).
pub(crate) async fn map_and_validate_rows(
    schema: &XdmSchema,
    mapper: &Mapper,
    source: RecordBatch,
) -> Result<Outcome, PipelineError> {
    let mut rejected = Vec::new();
    let ids = source.column(0).as_string::<i32>().clone();
    let raw = crate::stage::raw_column(&source);
    let source_of = |row: usize| {
        raw.and_then(|r| r.value(row))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let id_of = |row: usize| (!ids.is_null(row)).then(|| ids.value(row).to_string());

    let mapped = mapper.map(source.clone()).await?;
    for (row, message) in &mapped.failed {
        let row = *row as usize;
        rejected.push(Rejection {
            object_id: id_of(row),
            stage: Stage::Map,
            errors: vec![ErrorEntry {
                column: String::new(),
                code: CODE_TRANSFORM.to_string(),
                message: message.clone(),
                value: None,
            }],
            source: source_of(row),
        });
    }

    let schema = schema.clone();
    let batch = mapped.batch;
    let validated = tokio::task::spawn_blocking(move || xdm::validate(&batch, &schema))
        .await
        .map_err(|source| PipelineError::Task {
            what: "validation",
            source,
        })??;
    for r in &validated.rejected {
        let row = mapped.rows[r.row as usize] as usize;
        rejected.push(Rejection {
            object_id: id_of(row),
            stage: Stage::Validate,
            errors: r
                .errors
                .iter()
                .map(|e| ErrorEntry {
                    column: e.column.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                    value: e.value.clone(),
                })
                .collect(),
            source: source_of(row),
        });
    }
    Ok(Outcome {
        accepted: validated.accepted,
        rejected,
        warnings: validated.warnings.len() as u64,
    })
}
