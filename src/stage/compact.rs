//! Compaction of the mirror: OPTIMIZE (small files into large ones) and VACUUM (files that no
//! version references any more), on a policy.

use std::num::NonZeroU64;

use deltalake::operations::optimize::OptimizeType;

use super::{Mirror, StageError};

/// Files the mirror's writers aim for.
pub const TARGET_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// When and how the mirror is compacted.
#[derive(Debug, Clone)]
pub struct CompactPolicy {
    /// OPTIMIZE once the table has at least this many files smaller than half the target.
    pub min_small_files: usize,
    /// The size OPTIMIZE writes toward.
    pub target_file_bytes: u64,
    /// VACUUM deletes files removed from the table longer ago than this (readers of an older
    /// version, e.g. a Spark job started before the OPTIMIZE, keep working for that long).
    pub retention: chrono::Duration,
    /// Compact even when there are fewer small files (an explicit `mirror compact`).
    pub force: bool,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        CompactPolicy {
            min_small_files: 16,
            target_file_bytes: TARGET_FILE_BYTES,
            retention: chrono::Duration::hours(24),
            force: false,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactReport {
    /// Data files before.
    pub files_before: usize,
    /// Files OPTIMIZE replaced.
    pub files_removed: u64,
    /// Files OPTIMIZE wrote.
    pub files_added: u64,
    /// Files VACUUM deleted from disk.
    pub files_vacuumed: usize,
    /// Table version after.
    pub version: u64,
}

pub(super) async fn run(
    mirror: &mut Mirror,
    policy: &CompactPolicy,
) -> Result<CompactReport, StageError> {
    let snapshot = mirror
        .table
        .snapshot()
        .map_err(mirror.delta_err("reading the log"))?;
    let sizes: Vec<i64> = snapshot.log_data().into_iter().map(|f| f.size()).collect();
    let small = sizes
        .iter()
        .filter(|&&s| (s as u64) < policy.target_file_bytes / 2)
        .count();
    let mut report = CompactReport {
        files_before: sizes.len(),
        ..CompactReport::default()
    };
    if small >= policy.min_small_files || (policy.force && small > 1) {
        let schema =
            super::writer_schema(&mirror.table).map_err(mirror.delta_err("reading the schema"))?;
        let stats: Vec<&str> = super::STATS_COLUMNS.split(',').collect();
        let (table, metrics) = mirror
            .table
            .clone()
            .optimize()
            .with_type(OptimizeType::Compact)
            .with_target_size(NonZeroU64::new(policy.target_file_bytes).expect("non-zero"))
            .with_writer_properties(super::files::writer_props(&schema, &stats))
            .with_max_concurrent_tasks(2)
            .await
            .map_err(mirror.delta_err("optimizing"))?;
        mirror.table = table;
        report.files_removed = metrics.num_files_removed;
        report.files_added = metrics.num_files_added;
    }
    let (table, vacuumed) = mirror
        .table
        .clone()
        .vacuum()
        .with_retention_period(policy.retention)
        .with_enforce_retention_duration(false)
        // Full: also files no version ever referenced (written by a run that died before its
        // commit), once they are older than the retention.
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .await
        .map_err(mirror.delta_err("vacuuming"))?;
    mirror.table = table;
    report.files_vacuumed = vacuumed.files_deleted.len();
    report.version = mirror.version();
    Ok(report)
}
