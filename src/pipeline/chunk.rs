//! One chunk of a run's pages on its way to the stage thread: decoded on rayon (every record,
//! those that did not decode included, becomes a mirror row), mapped and validated.

use arrow::array::RecordBatch;

use super::drive::Totals;
use super::{decode_rejections, map_and_validate_rows, Outcome, PipelineError, RunConfig};
use crate::decode;
use crate::map::Mapper;
use crate::metrics::RecordCounts;
use crate::sink::Rejection;
use crate::source::windows::record_created;
use crate::source::windows::WindowEvent;
use crate::source::{record_id, Page, StripeClient};
use crate::stage;

/// A chunk on its way to the stage thread.
pub(super) struct Processed {
    /// Rows for the mirror: decoded records with the staging columns, then those that did not
    /// decode ([`stage::undecodable_rows`]).
    pub staged: Vec<RecordBatch>,
    /// Records that could not be decoded.
    pub rejected: Vec<Rejection>,
    /// The decoded records mapped and validated (`None` for tombstones: staged only).
    pub outcome: Option<Outcome>,
    pub events: Vec<WindowEvent>,
    pub totals: Totals,
}

impl Processed {
    /// Only totals (changes read, none to stage).
    pub fn empty(totals: Totals) -> Self {
        Processed {
            staged: Vec::new(),
            rejected: Vec::new(),
            outcome: None,
            events: Vec::new(),
            totals,
        }
    }

    /// Tombstones: staged in the mirror, not in the batch.
    pub fn tombstones(staged: Vec<RecordBatch>, totals: Totals) -> Self {
        Processed {
            staged,
            totals,
            ..Processed::empty(Totals::default())
        }
    }
}

/// Drops records the previous run committed and collects the next re-read span's ids.
fn dedup_pages(dedup: &super::Dedup, pages: &mut [Page], totals: &mut Totals) {
    for page in pages.iter_mut() {
        // Only pages whose requested window reaches the span hold records for it.
        let in_span = |lt: Option<i64>, from: i64| lt.is_none_or(|lt| lt > from);
        let collect = dedup
            .trailing_from
            .filter(|&from| in_span(page.window.lt, from));
        if dedup.known.is_empty() && collect.is_none() {
            continue;
        }
        let before = page.records.len();
        page.retain(|raw| {
            let id = record_id(raw);
            if let (Some(from), Some(id)) = (collect, &id) {
                if let Some(created) = record_created(raw).filter(|&c| c >= from) {
                    totals.trailing.push((id.clone(), created));
                }
            }
            !id.is_some_and(|id| dedup.known.contains(&id) && !dedup.changed.contains(&id))
        });
        totals.skipped += (before - page.records.len()) as u64;
    }
}

/// Decodes one chunk of pages, adds the staging columns, and maps and validates the records;
/// `listed` pages (not changed objects) drop what the previous run committed.
pub(super) async fn process_pages(
    cfg: &RunConfig,
    client: &StripeClient,
    mapper: &Mapper,
    pages: Vec<Page>,
    listed: bool,
) -> Result<Processed, PipelineError> {
    let resource = cfg.resource;
    let mut totals = Totals {
        counts: RecordCounts {
            pages: pages.len() as u64,
            bytes_in: pages.iter().map(|p| p.body.len() as u64).sum(),
            ..Default::default()
        },
        ..Totals::default()
    };
    let mut pages = pages;
    if let Some(dedup) = cfg.control.dedup.as_ref().filter(|_| listed) {
        dedup_pages(dedup, &mut pages, &mut totals);
    }
    let batch_id = cfg.batch_id.clone().unwrap_or_default();
    let api_version = client.config().stripe_version.clone();
    let (undecodable, source, staged) =
        tokio::task::spawn_blocking(move || -> Result<_, arrow::error::ArrowError> {
            let decoded = decode::decode_pages(
                resource,
                &pages
                    .iter()
                    .map(|p| (&p.body, p.records.as_slice()))
                    .collect::<Vec<_>>(),
            );
            // `_raw` views the page bodies: they live as long as the chunk's rows, no copy.
            let source = decoded.staged_batch();
            let now = chrono::Utc::now();
            let mut staged = vec![stage::stage_columns(
                &source,
                now,
                &api_version,
                &batch_id,
                None,
            )];
            if !decoded.rejected.is_empty() {
                staged.push(stage::undecodable_rows(
                    resource,
                    &decoded.rejected,
                    now,
                    &api_version,
                    &batch_id,
                )?);
            }
            Ok((decoded.rejected, source, staged))
        })
        .await
        .map_err(|source| PipelineError::Task {
            what: "decode",
            source,
        })?
        .map_err(|source| {
            PipelineError::Stage(stage::StageError::Arrow {
                path: cfg.mirror_dir(),
                action: "staging records that did not decode",
                source: Box::new(source),
            })
        })?;
    totals.counts.fetched = (source.num_rows() + undecodable.len()) as u64;
    totals.counts.staged = staged.iter().map(|b| b.num_rows() as u64).sum();
    let rejected = decode_rejections(&undecodable);
    drop(undecodable);
    totals.count_rejected(&rejected);
    let outcome = map_and_validate_rows(&cfg.schema, mapper, source).await?;
    totals.counts.ingested = outcome.accepted.num_rows() as u64;
    totals.counts.warnings = outcome.warnings;
    totals.count_rejected(&outcome.rejected);
    Ok(Processed {
        staged,
        rejected,
        outcome: Some(outcome),
        events: Vec::new(),
        totals,
    })
}
