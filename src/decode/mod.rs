//! Decode: Stripe records → Arrow record batches with an explicit schema per resource.
//!
//! Records are deserialized straight into column builders (no `serde_json::Value` trees).
//! Unknown fields are skipped, so fields Stripe adds later never break decoding. A record that
//! cannot be decoded (a wrong type, broken JSON) is rolled back out of the builders and becomes a
//! [`RejectedRecord`] with its raw JSON and the reason; the rest of the page goes on.

mod builder;
pub mod schema;
mod visit;

use std::ops::Range;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringViewArray, StringViewBuilder};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use rayon::prelude::*;

use crate::Resource;
use builder::{Hint, StructCol};
use visit::StructSeed;

pub use schema::{arrow_schema, Kind};

/// Platform's code for a row that cannot be read or parsed.
pub const CODE_UNPARSABLE: &str = "INGEST-1401-400";

/// A source record that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// The record's top-level `id`, when it could be found.
    pub id: Option<String>,
    /// The record's top-level `created` (unix seconds), when it could be found.
    pub created: Option<i64>,
    /// The record's raw JSON (invalid UTF-8 replaced).
    pub raw: String,
    /// Why it failed, naming the field path (`billing_details.address.city: expected a string…`).
    pub reason: String,
}

/// Decodes records of one resource into a growing batch.
#[derive(Debug)]
pub struct RecordDecoder {
    resource: Resource,
    schema: SchemaRef,
    root: StructCol,
}

impl RecordDecoder {
    /// A decoder for `resource`'s schema.
    pub fn new(resource: Resource) -> Self {
        RecordDecoder {
            resource,
            schema: arrow_schema(resource),
            root: StructCol::new(schema::fields(resource)),
        }
    }

    /// The resource this decoder reads.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// The Arrow schema of the batches this decoder produces.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Records buffered so far.
    pub fn len(&self) -> usize {
        self.root.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes one record. On error nothing of the record stays in the builders and the error
    /// message names the field path and position.
    pub fn push(&mut self, raw: &[u8]) -> Result<(), String> {
        self.push_with(serde_json::Deserializer::from_slice(raw))
    }

    /// [`RecordDecoder::push`] for text already known to be UTF-8 (not validated again).
    pub fn push_str(&mut self, raw: &str) -> Result<(), String> {
        self.push_with(serde_json::Deserializer::from_str(raw))
    }

    fn push_with<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        mut de: serde_json::Deserializer<R>,
    ) -> Result<(), String> {
        let before = self.root.len();
        let result = serde::de::DeserializeSeed::deserialize(
            StructSeed {
                col: &mut self.root,
                nullable: false,
            },
            &mut de,
        )
        .and_then(|()| de.end());
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.root.truncate(before);
                Err(e.to_string())
            }
        }
    }

    /// The lengths of the builders' buffers now (see [`RecordDecoder::reserve`]).
    fn lengths(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.root.buffers(&mut |len, _| out.push(len));
        out
    }

    /// Reserves in fresh builders, for `rows` records, the capacities that `lengths` (of a
    /// decoder of the same resource, after `rows_then` records) reached.
    fn reserve(&mut self, lengths: &[usize], rows_then: usize, rows: usize) {
        self.root.reserve(&mut Hint::new(lengths, rows_then, rows));
    }

    /// Takes the buffered records as a batch and starts a new one.
    pub fn finish(&mut self) -> RecordBatch {
        let columns = self.root.finish().into_parts().1;
        RecordBatch::try_new(self.schema.clone(), columns)
            .expect("builders follow the schema they were made from")
    }
}

/// The decoded form of some records: a batch plus, per row, its raw source record, and the
/// records that could not be decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The decoded rows, in the resource's source schema.
    pub batch: RecordBatch,
    /// The JSON text of each row of `batch`, exactly as received: an Arrow column whose data
    /// buffers are the page bodies themselves (views into them, no copy); the mirror's `_raw`.
    pub raw: StringViewArray,
    /// Records that could not be decoded.
    pub rejected: Vec<RejectedRecord>,
}

impl Decoded {
    /// Records seen: decoded rows plus rejected records.
    pub fn records(&self) -> usize {
        self.batch.num_rows() + self.rejected.len()
    }

    /// The decoded rows with each record's JSON text as `_raw`: a row of the mapping's source
    /// table ([`source_schema`]).
    pub fn source_batch(&self) -> RecordBatch {
        let mut text = arrow::array::StringBuilder::with_capacity(
            self.raw.len(),
            self.raw.total_buffer_bytes_used(),
        );
        text.extend(self.raw.iter());
        with_raw_column(&self.batch, Arc::new(text.finish()))
    }

    /// Each row's JSON text as bytes.
    pub fn sources(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.raw.iter().map(|r| r.unwrap_or_default().as_bytes())
    }

    /// The decoded rows with [`Decoded::raw`] appended as `_raw` (a `Utf8View` column, not
    /// copied): the rows the mirror stages, and the mapping's source rows
    /// ([`crate::map::Mapper::map`] adapts the column to the mapping).
    pub fn staged_batch(&self) -> RecordBatch {
        with_raw_view(&self.batch, self.raw.clone())
    }
}

/// The column holding each record's JSON text exactly as received.
pub const RAW_COLUMN: &str = "_raw";

/// The mapping's source table: the decoded columns ([`arrow_schema`]) and `_raw`.
pub fn source_schema(resource: Resource) -> arrow::datatypes::SchemaRef {
    let decoded = arrow_schema(resource);
    let mut fields: Vec<arrow::datatypes::FieldRef> = decoded.fields().iter().cloned().collect();
    fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
        RAW_COLUMN,
        arrow::datatypes::DataType::Utf8,
        true,
    )));
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}

/// `batch` (decoded columns) with a NULL `_raw` (rows read without their JSON text).
pub fn with_null_raw(batch: &RecordBatch) -> RecordBatch {
    let n = batch.num_rows();
    with_raw_column(batch, arrow::array::new_null_array(&DataType::Utf8, n))
}

/// `batch` (decoded columns) with `raw` appended as a `Utf8View` `_raw` (one value per row).
pub fn with_raw_view(batch: &RecordBatch, raw: StringViewArray) -> RecordBatch {
    with_raw_column(batch, Arc::new(raw))
}

/// `batch` with `raw` (text or views, one value per row) appended as `_raw`.
fn with_raw_column(batch: &RecordBatch, raw: ArrayRef) -> RecordBatch {
    let mut fields: Vec<FieldRef> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        RAW_COLUMN,
        raw.data_type().clone(),
        true,
    )));
    let mut columns = batch.columns().to_vec();
    columns.push(raw);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("one raw value per row")
}

/// Decodes the records of one page body (`records` are byte ranges of `body`).
pub fn decode_records(resource: Resource, body: &Bytes, records: &[Range<usize>]) -> Decoded {
    let mut part = Part::new(resource, records.len());
    part.push_page(body, records);
    part.finish()
}

/// Records held one by one (event payloads, a mirror's `_raw` values) as one body, one per
/// line, and each one's byte range in it: what [`decode_records`] takes.
pub fn join_records<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> (Bytes, Vec<Range<usize>>) {
    let mut body = Vec::new();
    let mut ranges = Vec::new();
    for r in records {
        let start = body.len();
        body.extend_from_slice(r);
        ranges.push(start..body.len());
        body.push(b'\n');
    }
    (Bytes::from(body), ranges)
}

/// Decodes many pages on the rayon pool and concatenates them in page order.
///
/// The pages are cut into runs of consecutive pages with about as many records each, a few per
/// thread, and each run is decoded by one task into one set of builders, so the builders are
/// allocated and the columns concatenated once per run, not once per page. Each run's builders
/// reserve up front what the last run of the same resource needed per record.
pub fn decode_pages(resource: Resource, pages: &[(&Bytes, &[Range<usize>])]) -> Decoded {
    let records: usize = pages.iter().map(|(_, r)| r.len()).sum();
    let runs = (rayon::current_num_threads() * 2).clamp(1, pages.len().max(1));
    let per_run = records.div_ceil(runs).max(1);
    let mut cuts = vec![0];
    let mut so_far = 0;
    for (i, (_, r)) in pages.iter().enumerate() {
        so_far += r.len();
        if so_far >= per_run && i + 1 < pages.len() {
            cuts.push(i + 1);
            so_far = 0;
        }
    }
    cuts.push(pages.len());
    let parts: Vec<Decoded> = cuts
        .par_windows(2)
        .map(|w| {
            let run = &pages[w[0]..w[1]];
            let mut part = Part::new(resource, run.iter().map(|(_, r)| r.len()).sum());
            for (body, records) in run {
                part.push_page(body, records);
            }
            part.finish()
        })
        .collect();
    concat(resource, parts)
}

/// A resource, the records of its last measured run, and its builders' lengths after them.
type Measured = (Resource, usize, Arc<[usize]>);

/// The builder lengths of the last run of records of each resource and its record count, the
/// capacities the next runs reserve (scaled to their records).
static LENGTHS: std::sync::Mutex<Vec<Measured>> = std::sync::Mutex::new(Vec::new());

/// Runs of fewer records are not measured: their lengths say little about the next runs.
const MIN_MEASURED_RECORDS: usize = 256;

/// The records of consecutive pages being decoded by one task.
struct Part {
    decoder: RecordDecoder,
    /// Views of the decoded records; the page bodies are its blocks.
    raw: StringViewBuilder,
    rejected: Vec<RejectedRecord>,
}

impl Part {
    /// A part for about `records` records.
    fn new(resource: Resource, records: usize) -> Self {
        let mut decoder = RecordDecoder::new(resource);
        let last = LENGTHS
            .lock()
            .ok()
            .and_then(|l| l.iter().find(|(r, ..)| *r == resource).cloned());
        if let Some((_, rows_then, lengths)) = last {
            decoder.reserve(&lengths, rows_then, records);
        }
        Part {
            decoder,
            raw: StringViewBuilder::with_capacity(records),
            rejected: Vec::new(),
        }
    }

    /// Decodes the records of one page body. The body is checked to be UTF-8 once, as a
    /// whole (the JSON parser then skips that check per string); a body that is not is
    /// decoded record by record with the check, so only the broken record is rejected.
    fn push_page(&mut self, body: &Bytes, records: &[Range<usize>]) {
        let text = std::str::from_utf8(body).ok();
        // The body becomes a block of `_raw` (shared, not copied) at its first decoded record.
        let mut block = None;
        for range in records {
            let raw = &body[range.clone()];
            // Records start with `{` and end with `}`: their ranges are on char boundaries.
            let record = text.and_then(|t| t.get(range.clone()));
            let result = match record {
                Some(record) => self.decoder.push_str(record),
                None => self.decoder.push(raw),
            };
            match result {
                Ok(()) => {
                    // Valid UTF-8 (the norm) is viewed as is; anything else as decoded lossily.
                    if record.is_some() || std::str::from_utf8(raw).is_ok() {
                        let block = *block.get_or_insert_with(|| {
                            self.raw.append_block(Buffer::from(body.clone()))
                        });
                        // SAFETY: the block is the body appended above, the range is within
                        // it, and the text in the range is valid UTF-8 (checked just above,
                        // or as part of the whole body).
                        unsafe {
                            self.raw.append_view_unchecked(
                                block,
                                range.start as u32,
                                range.len() as u32,
                            )
                        };
                    } else {
                        self.raw.append_value(String::from_utf8_lossy(raw));
                    }
                }
                Err(reason) => self.rejected.push(RejectedRecord {
                    id: crate::source::envelope::record_id(raw),
                    created: crate::source::record_created(raw),
                    raw: String::from_utf8_lossy(raw).into_owned(),
                    reason,
                }),
            }
        }
    }

    fn finish(mut self) -> Decoded {
        let rows = self.decoder.len();
        if rows >= MIN_MEASURED_RECORDS {
            let lengths: Arc<[usize]> = self.decoder.lengths().into();
            if let Ok(mut last) = LENGTHS.lock() {
                let resource = self.decoder.resource();
                last.retain(|(r, ..)| *r != resource);
                last.push((resource, rows, lengths));
            }
        }
        Decoded {
            batch: self.decoder.finish(),
            raw: self.raw.finish(),
            rejected: self.rejected,
        }
    }
}

/// Concatenates decoded parts in order.
pub fn concat(resource: Resource, parts: Vec<Decoded>) -> Decoded {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let schema = arrow_schema(resource);
    let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
    let batch = arrow::compute::concat_batches(&schema, batches)
        .expect("all parts share the resource schema");
    let mut raw = StringViewBuilder::with_capacity(batch.num_rows());
    let mut rejected = Vec::new();
    for p in parts {
        // The parts' blocks (page bodies) are shared, their views rebased.
        raw.append_array(&p.raw);
        rejected.extend(p.rejected);
    }
    Decoded {
        batch,
        raw: raw.finish(),
        rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacities(d: &RecordDecoder) -> Vec<usize> {
        let mut out = Vec::new();
        d.root.buffers(&mut |_, cap| out.push(cap));
        out
    }

    #[test]
    fn builders_reserved_from_a_runs_lengths_do_not_grow_over_as_many_records() {
        let records: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"id":"re_{i:06}","object":"refund","amount":{},"currency":"usd","status":"succeeded","created":{},"charge":"ch_{i}","metadata":{{"order":"{i}"}}}}"#,
                    100 + i,
                    1_700_000_000 + i
                )
            })
            .collect();
        let (body, ranges) = join_records(records.iter().map(|r| r.as_bytes()));
        let mut first = RecordDecoder::new(Resource::Refunds);
        for r in &ranges {
            first.push(&body[r.clone()]).unwrap();
        }
        let lengths = first.lengths();
        assert!(lengths.iter().any(|&l| l > 300), "string data is measured");

        let mut next = RecordDecoder::new(Resource::Refunds);
        next.reserve(&lengths, ranges.len(), ranges.len());
        let reserved = capacities(&next);
        assert!(reserved.iter().zip(&lengths).all(|(c, l)| c >= l));
        for r in &ranges {
            next.push(&body[r.clone()]).unwrap();
        }
        assert_eq!(capacities(&next), reserved, "no buffer grew");
        assert_eq!(next.finish(), first.finish());
    }

    #[test]
    fn pages_decoded_in_runs_keep_their_order() {
        let pages: Vec<(Bytes, Vec<Range<usize>>)> = (0..9)
            .map(|p| {
                let records: Vec<String> = (0..(p * 37 % 50 + 1))
                    .map(|i| format!(r#"{{"id":"re_{p}_{i}","object":"refund","amount":{i}}}"#))
                    .collect();
                join_records(records.iter().map(|r| r.as_bytes()))
            })
            .collect();
        let input: Vec<(&Bytes, &[Range<usize>])> =
            pages.iter().map(|(b, r)| (b, r.as_slice())).collect();
        let decoded = decode_pages(Resource::Refunds, &input);
        let expected: Vec<String> = pages
            .iter()
            .flat_map(|(b, ranges)| {
                ranges
                    .iter()
                    .map(|r| std::str::from_utf8(&b[r.clone()]).unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let raw: Vec<String> = decoded.raw.iter().map(|v| v.unwrap().to_string()).collect();
        assert_eq!(raw, expected);
        let ids = decoded
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>();
        let ids: Vec<&str> = ids.unwrap().iter().map(|v| v.unwrap()).collect();
        let expected_ids: Vec<String> = expected
            .iter()
            .map(|r| r.split('"').nth(3).unwrap().to_string())
            .collect();
        assert_eq!(ids, expected_ids);
    }
}
