//! Mapping preview: a mapping run over sample records and each mapped row validated, shown with
//! its errors, as the Platform's mapping preview does (map and validate together, which is why
//! it lives here and not in the map stage).

use arrow::array::{Array, AsArray};
use serde::Serialize;

use crate::decode::Decoded;
use crate::map::{Mapper, CODE_TRANSFORM};
use crate::xdm::{self, XdmError, XdmSchema};

use crate::map::MapError;

/// One previewed row.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewRow {
    /// The Stripe object id.
    pub object_id: Option<String>,
    /// The mapped row as JSON (before conversion to the XDM types), `null` when the mapping
    /// failed on it.
    pub mapped: serde_json::Value,
    /// True when the row passes the XDM schema.
    pub accepted: bool,
    /// Errors and warnings: `(column, code, message)`.
    pub issues: Vec<(String, String, String)>,
}

/// Why a preview could not run.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The mapping failed.
    #[error(transparent)]
    Map(#[from] MapError),
    /// Validation failed as a whole (a schema mismatch).
    #[error(transparent)]
    Xdm(#[from] XdmError),
    /// The mapped rows could not be written as JSON.
    #[error("rendering mapped rows as JSON")]
    Render(#[source] arrow::error::ArrowError),
    /// The JSON written could not be read back.
    #[error("reading back the mapped rows' JSON")]
    RenderJson(#[source] serde_json::Error),
}

/// Maps and validates `decoded` and returns one [`PreviewRow`] per decoded record, plus the
/// records that could not be decoded (as rows with an `INGEST-1401-400` issue).
pub async fn preview(
    mapper: &Mapper,
    schema: &XdmSchema,
    decoded: &Decoded,
) -> Result<Vec<PreviewRow>, PreviewError> {
    let ids = decoded.batch.column(0).as_string::<i32>().clone();
    let mapped = mapper.map(decoded.source_batch()).await?;
    let json = render(&mapped.batch)?;
    let validated = xdm::validate(&mapped.batch, schema)?;
    let n = decoded.batch.num_rows();
    let mut rows: Vec<PreviewRow> = (0..n)
        .map(|i| PreviewRow {
            object_id: (!ids.is_null(i)).then(|| ids.value(i).to_string()),
            mapped: serde_json::Value::Null,
            accepted: false,
            issues: Vec::new(),
        })
        .collect();
    for (k, &row) in mapped.rows.iter().enumerate() {
        rows[row as usize].mapped = json[k].clone();
        rows[row as usize].accepted = true;
    }
    for (row, message) in &mapped.failed {
        let r = &mut rows[*row as usize];
        r.accepted = false;
        r.issues
            .push((String::new(), CODE_TRANSFORM.to_string(), message.clone()));
    }
    for rej in &validated.rejected {
        let r = &mut rows[mapped.rows[rej.row as usize] as usize];
        r.accepted = false;
        r.issues.extend(
            rej.errors
                .iter()
                .map(|e| (e.column.clone(), e.code.clone(), e.message.clone())),
        );
    }
    for w in &validated.warnings {
        let r = &mut rows[mapped.rows[w.row as usize] as usize];
        r.issues
            .push((w.column.clone(), w.code.clone(), w.message.clone()));
    }
    for bad in &decoded.rejected {
        rows.push(PreviewRow {
            object_id: bad.id.clone(),
            mapped: serde_json::Value::Null,
            accepted: false,
            issues: vec![(
                String::new(),
                crate::decode::CODE_UNPARSABLE.to_string(),
                bad.reason.clone(),
            )],
        });
    }
    Ok(rows)
}

fn render(batch: &arrow::array::RecordBatch) -> Result<Vec<serde_json::Value>, PreviewError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut buf);
        writer.write(batch).map_err(PreviewError::Render)?;
        writer.finish().map_err(PreviewError::Render)?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(&buf).map_err(PreviewError::RenderJson)?;
    // arrow's ArrayWriter writes one JSON array.
    match value {
        serde_json::Value::Array(rows) => Ok(rows),
        other => Ok(vec![other]),
    }
}
