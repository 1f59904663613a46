//! Runs as a user sees them: a running run's counts come from its last checkpoint (they are
//! written to the run itself only at its end).

use super::Result;
use crate::catalog::{Catalog, Run, RunStatus};

/// Fills a running run's counts from its last checkpoint, and `progress_as_of` with when that
/// checkpoint was written; other runs are left as they are.
pub fn with_checkpoint(cat: &Catalog, r: &mut Run) {
    if r.status != RunStatus::Running {
        return;
    }
    let Some(cp) = cat.checkpoint(r.id).ok().flatten() else {
        return;
    };
    let Some(t) = crate::pipeline::checkpoint_totals(&cp.state) else {
        return;
    };
    r.counts = t.counts;
    r.batch_id = Some(t.batch_id);
    r.progress_as_of = Some(cp.updated_at);
}

/// Runs, newest first, of one dataflow or all, at most `limit`, running ones as of their last
/// checkpoint.
pub fn list(cat: &Catalog, dataflow: Option<&str>, limit: Option<usize>) -> Result<Vec<Run>> {
    let mut runs = cat.list_runs(dataflow, limit)?;
    for r in &mut runs {
        with_checkpoint(cat, r);
    }
    Ok(runs)
}
