//! Looking before running: a resource's first page, its decoded records, and a mapping's XDM
//! rows for them (the wizard's "select data" and "mapping" previews).

use arrow::array::RecordBatch;
use serde_json::Value;

mod mapped;
pub use mapped::{preview, PreviewError, PreviewRow};

use super::accounts::{stored_client, ApiOverrides};
use super::{AppError, Result};
use crate::catalog::Catalog;
use crate::map::Mapping;
use crate::source::{Page, Window};
use crate::xdm::XdmSchema;
use crate::Resource;

/// The first page of `resource` as the stored account `account` reads it.
pub async fn first_page(
    cat: &Catalog,
    account: &str,
    resource: Resource,
    api: &ApiOverrides,
) -> Result<Page> {
    let (_, client) = stored_client(cat, account, api)?;
    client
        .list_page(resource, Window::default(), None)
        .await
        .map_err(|source| {
            AppError::stripe(
                format!("account {account:?}: listing {}", resource.path()),
                source,
            )
        })
}

/// A page's records as the pipeline decodes them, for showing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PagePreview {
    /// Records on the page.
    pub records: usize,
    /// Whether the list has more pages.
    pub has_more: bool,
    /// The decoded columns.
    pub columns: Vec<String>,
    /// The decoded records, one JSON object each (nested columns as JSON).
    pub rows: Vec<Value>,
    /// Fields present in the records beyond the decoded schema (kept in `_raw`), with how
    /// many records carry each.
    pub extra_fields: Vec<(String, usize)>,
    /// Records that could not be decoded: id and reason.
    pub undecodable: Vec<(Option<String>, String)>,
}

/// Rows of `batch` as JSON objects.
pub fn batch_rows(batch: &RecordBatch) -> Result<Vec<Value>> {
    let mut buf = Vec::new();
    let mut w = arrow::json::ArrayWriter::new(&mut buf);
    w.write(batch)
        .and_then(|()| w.finish())
        .map_err(|e| AppError::Invalid(format!("cannot show the rows as JSON: {e}")))?;
    drop(w);
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf)
        .map_err(|e| AppError::Invalid(format!("cannot show the rows as JSON: {e}")))
}

/// Decodes a page of `resource` and describes it (at most `limit` rows).
pub fn page_rows(resource: Resource, page: &Page, limit: usize) -> Result<PagePreview> {
    let decoded = crate::decode::decode_records(resource, &page.body, &page.records);
    let n = limit.min(decoded.batch.num_rows());
    let shown = decoded.batch.slice(0, n);
    let extra_fields = crate::decode::schema::undecoded_fields(resource, decoded.sources());
    Ok(PagePreview {
        records: page.len(),
        has_more: page.has_more,
        columns: shown
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        rows: batch_rows(&shown)?,
        extra_fields: extra_fields.into_iter().collect(),
        undecodable: decoded
            .rejected
            .iter()
            .map(|r| (r.id.clone(), r.reason.clone()))
            .collect(),
    })
}

/// `mapping`'s XDM rows for the first `limit` records of a page of `resource`, each validated
/// against `schema` with its issues.
pub async fn mapping_rows(
    resource: Resource,
    page: &Page,
    mapping: Mapping,
    schema: &XdmSchema,
    limit: usize,
) -> Result<Vec<PreviewRow>> {
    let origin = mapping.origin.clone();
    let invalid = |e: &dyn std::fmt::Display| AppError::Invalid(format!("mapping {origin}: {e}"));
    let mapper = crate::map::Mapper::new(resource, mapping)
        .await
        .map_err(|e| invalid(&e))?;
    let ranges = &page.records[..limit.min(page.records.len())];
    let decoded = crate::decode::decode_records(resource, &page.body, ranges);
    preview(&mapper, schema, &decoded)
        .await
        .map_err(|e| invalid(&e))
}
