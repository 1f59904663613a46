//! Sink: accepted rows as a Parquet batch, rejected rows beside it, and a manifest.
//!
//! A batch is written under `<out>/<dataset>/.staging/<batch_id>/` and becomes visible only when
//! [`BatchWriter::commit`] renames the whole directory to `<out>/<dataset>/batches/<batch_id>/`
//! after the manifest is on disk. A crash never leaves a half batch that looks finished: whatever
//! is under `.staging` is by definition incomplete. A failed run's directory goes to
//! `<out>/<dataset>/failed/<batch_id>/` without its accepted files (a failed run promotes no
//! batch), keeping the rejected rows and diagnostics for analysis.

mod manifest;

pub(crate) mod rejects;

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

pub use crate::columnar::ParallelWriter;
use crate::direct::DirectFile;
pub use manifest::{
    BatchError, BatchStatus, FileEntry, Manifest, ManifestError, Metrics, PartEntry, MANIFEST_FILE,
};
pub use rejects::{ErrorEntry, Rejection, RejectsState, Stage, REJECTED_FILE};

/// What a staged batch holds at a checkpoint: the sealed accepted files and the rejects. A
/// resume reopens the staging area at exactly this point ([`BatchWriter::resume`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagedState {
    /// Sealed accepted files, in order.
    pub files: Vec<FileEntry>,
    /// Sealed rejects.
    pub rejects: RejectsState,
}

/// Platform's limit of files per batch.
pub const MAX_FILES_PER_BATCH: usize = 1500;
/// Platform's limit of bytes per batch (100 GB).
pub const MAX_BATCH_BYTES: u64 = 100 * 1000 * 1000 * 1000;
/// Files roll over at this size, which keeps each one within the single-request upload (256 MB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 * 1000 * 1000;
/// Rows per Parquet row group: one processing chunk ([`crate::pipeline::DEFAULT_CHUNK_RECORDS`]),
/// so a chunk's encoded columns are written out with it instead of waiting in memory for the
/// next ones (128 Ki rows held ~60 MiB more at the peak, BENCHMARKS.md §2d).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 8 * 1024;

/// Why the sink could not write.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error (or what was wrong with the file).
        #[source]
        source: std::io::Error,
    },
    /// Parquet encoding or decoding failed.
    #[error("Parquet file {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The encoder's or decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The batch would break one of Platform's limits.
    #[error("batch {batch_id} would exceed Platform's limit: {limit}; split the run into smaller created windows")]
    Limit {
        /// The batch.
        batch_id: String,
        /// The limit, in words.
        limit: String,
    },
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> SinkError {
    let path = path.to_path_buf();
    move |source| SinkError::Io {
        action,
        path,
        source,
    }
}

/// Size settings of a batch writer.
#[derive(Debug, Clone, Copy)]
pub struct SinkOptions {
    /// Roll over to a new file once a file reaches this many bytes.
    pub max_file_bytes: u64,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Files per batch: a run with more is split into several batches.
    pub max_files_per_batch: usize,
    /// Bytes per batch: a run with more is split into several batches.
    pub max_batch_bytes: u64,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            max_files_per_batch: MAX_FILES_PER_BATCH,
            max_batch_bytes: MAX_BATCH_BYTES,
        }
    }
}

/// Checks that `name` can name a dataset's folder (`<out>/<name>`): one path component, so a
/// dataset's files stay under the output folder. `Err` says why not.
pub fn check_dataset_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("it names a folder: not empty, `.` or `..`");
    }
    if name.contains(['/', '\\', '\0']) {
        return Err("it names one folder: no `/` or `\\`");
    }
    Ok(())
}

/// The directory layout of one dataset's output.
#[derive(Debug, Clone)]
pub struct DatasetDir {
    root: PathBuf,
}

impl DatasetDir {
    /// `<out>/<dataset>`.
    pub fn new(out: &Path, dataset: &str) -> Self {
        DatasetDir {
            root: out.join(dataset),
        }
    }
    /// The dataset folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Where in-progress batches are written.
    pub fn staging(&self, batch_id: &str) -> PathBuf {
        self.root.join(".staging").join(batch_id)
    }
    /// Where a committed batch lives.
    pub fn committed(&self, batch_id: &str) -> PathBuf {
        self.root.join("batches").join(batch_id)
    }
    /// Where a failed run's rejected rows and manifest live.
    pub fn failed(&self, batch_id: &str) -> PathBuf {
        self.root.join("failed").join(batch_id)
    }
}

/// Writes one batch: rolling Parquet files of accepted rows plus the rejected rows.
pub struct BatchWriter {
    batch_id: String,
    dirs: DatasetDir,
    staging: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    options: SinkOptions,
    current: Option<(ParallelWriter<DirectFile>, String, u64)>,
    files: Vec<FileEntry>,
    rejects: rejects::RejectWriter,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("batch_id", &self.batch_id)
            .field("staging", &self.staging)
            .finish()
    }
}

impl BatchWriter {
    /// Starts a batch in the dataset's staging area. `schema` is the XDM Arrow schema of the
    /// accepted rows.
    pub fn create(
        dirs: DatasetDir,
        batch_id: &str,
        schema: SchemaRef,
        options: SinkOptions,
    ) -> Result<Self, SinkError> {
        let staging = dirs.staging(batch_id);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io_err("clearing", &staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(io_err("creating", &staging))?;
        let props = writer_props(&options);
        let rejects = rejects::RejectWriter::new(&staging)?;
        Ok(BatchWriter {
            batch_id: batch_id.to_string(),
            dirs,
            staging,
            schema,
            props,
            options,
            current: None,
            files: Vec::new(),
            rejects,
        })
    }

    /// Reopens the staging area of `batch_id` at checkpoint `state`: accepted files and reject
    /// parts written after it are removed, the diagnostics cut back, and writing continues with
    /// the next part. Fails when the staging area or one of the state's files is gone.
    pub fn resume(
        dirs: DatasetDir,
        batch_id: &str,
        schema: SchemaRef,
        options: SinkOptions,
        state: &StagedState,
    ) -> Result<Self, SinkError> {
        let staging = dirs.staging(batch_id);
        for f in &state.files {
            let p = staging.join(&f.name);
            let len = std::fs::metadata(&p).map_err(io_err("reading", &p))?.len();
            if len != f.bytes {
                return Err(SinkError::Io {
                    action: "resuming",
                    path: p,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the file has {len} bytes, the checkpoint says {}", f.bytes),
                    ),
                });
            }
        }
        for entry in std::fs::read_dir(&staging).map_err(io_err("listing", &staging))? {
            let entry = entry.map_err(io_err("listing", &staging))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("part-") && !state.files.iter().any(|f| f.name == name) {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        let rejects = rejects::RejectWriter::resume(&staging, &state.rejects)?;
        Ok(BatchWriter {
            batch_id: batch_id.to_string(),
            dirs,
            staging,
            schema,
            props: writer_props(&options),
            options,
            current: None,
            files: state.files.clone(),
            rejects,
        })
    }

    /// Closes the open accepted file and reject part and syncs them: everything written so far
    /// is durable, and the returned state is what a checkpoint records.
    pub fn seal(&mut self) -> Result<StagedState, SinkError> {
        // Every accepted file is synced as it is closed (`DirectFile::finish`).
        self.close_file()?;
        let rejects = self.rejects.seal()?;
        sync_dir(&self.staging);
        Ok(StagedState {
            files: self.files.clone(),
            rejects,
        })
    }

    /// Seals the rejected rows only (the accepted files stay open and unlisted: a resume makes
    /// them again, see [`BatchWriter::resume`]); the returned state is what a checkpoint records.
    pub fn seal_rejects(&mut self) -> Result<StagedState, SinkError> {
        let rejects = self.rejects.seal()?;
        sync_dir(&self.staging);
        Ok(StagedState {
            files: Vec::new(),
            rejects,
        })
    }

    /// The batch id.
    pub fn batch_id(&self) -> &str {
        &self.batch_id
    }

    /// The staging directory.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// Appends accepted rows (an empty batch writes nothing: Platform refuses empty files).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            self.open_file(batch)?;
        }
        let (writer, name, rows) = self.current.as_mut().expect("opened above");
        writer.write(batch).map_err(|e| SinkError::Parquet {
            path: PathBuf::from(name.clone()),
            source: e.into(),
        })?;
        *rows += batch.num_rows() as u64;
        let size = writer.bytes_written() as u64 + writer.in_progress_size() as u64;
        if size >= self.options.max_file_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    /// Appends rejected rows.
    pub fn reject(&mut self, rows: &[Rejection]) -> Result<(), SinkError> {
        self.rejects.write(rows)
    }

    /// Opens the next file, its settings fitted to `first`, the rows it starts with.
    fn open_file(&mut self, first: &RecordBatch) -> Result<(), SinkError> {
        let name = format!("part-{:05}.parquet", self.files.len());
        let path = self.staging.join(&name);
        let file = DirectFile::create(&path).map_err(io_err("creating", &path))?;
        let props = crate::columnar::fit_to_rows(self.props.clone(), first);
        // Platform reads whole files and prunes nothing; min/max of every string (names,
        // addresses, descriptions) costs a comparison per value (BENCHMARKS.md §2m). `_id`
        // keeps them for readers that look rows up by it.
        let props =
            crate::columnar::byte_statistics_only_for(props.into_builder(), &self.schema, &["_id"])
                .build();
        let writer = ParallelWriter::try_new(file, self.schema.clone(), props).map_err(|e| {
            SinkError::Parquet {
                path: path.clone(),
                source: e.into(),
            }
        })?;
        self.current = Some((writer, name, 0));
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), SinkError> {
        if let Some((mut writer, name, rows)) = self.current.take() {
            let path = self.staging.join(&name);
            writer.finish().map_err(|e| SinkError::Parquet {
                path: path.clone(),
                source: e.into(),
            })?;
            writer
                .inner_mut()
                .finish()
                .map_err(io_err("writing", &path))?;
            let bytes = std::fs::metadata(&path)
                .map_err(io_err("reading size of", &path))?
                .len();
            self.files.push(FileEntry {
                name,
                records: rows,
                bytes,
            });
        }
        Ok(())
    }

    /// Finishes the files, writes the manifest and the diagnostics, and makes the batch
    /// visible: under `batches/` when `manifest.status` is success, under `failed/` (without
    /// accepted files) otherwise. Returns the final directory.
    ///
    /// Accepted files beyond Platform's per-batch limits ([`SinkOptions::max_files_per_batch`],
    /// [`SinkOptions::max_batch_bytes`]) go to further batches `<batch id>-2`, `-3`, … beside
    /// the first, each with its own manifest (`part_of`); they are committed before the first,
    /// whose manifest lists them (`parts`) and keeps the whole run's metrics and rejects.
    pub fn commit(
        mut self,
        mut manifest: Manifest,
        diagnostics: bool,
    ) -> Result<(PathBuf, Manifest), SinkError> {
        self.close_file()?;
        let reject_summary = self.rejects.finish(diagnostics)?;
        manifest.batch_id = self.batch_id.clone();
        manifest.rejected_file = reject_summary.file.clone();
        manifest.diagnostics = reject_summary.diagnostics.clone();
        let success = manifest.status == BatchStatus::Success;
        // Further batches an earlier attempt of this run committed before it died: this commit
        // makes them again from its own files.
        for n in 2.. {
            let stale = self.dirs.committed(&format!("{}-{n}", self.batch_id));
            if !stale.exists() {
                break;
            }
            std::fs::remove_dir_all(&stale).map_err(io_err("removing", &stale))?;
        }
        let target = if success {
            let mut groups = split_files(
                std::mem::take(&mut self.files),
                self.options.max_files_per_batch,
                self.options.max_batch_bytes,
            )
            .into_iter();
            manifest.files = groups.next().unwrap_or_default();
            manifest.parts.clear();
            for (i, files) in groups.enumerate() {
                manifest.parts.push(commit_part(
                    &self.dirs,
                    &self.staging,
                    &self.batch_id,
                    &manifest,
                    i + 2,
                    files,
                )?);
            }
            self.dirs.committed(&self.batch_id)
        } else {
            for f in &self.files {
                let p = self.staging.join(&f.name);
                std::fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
            manifest.files.clear();
            self.dirs.failed(&self.batch_id)
        };
        manifest.output_bytes = manifest.files.iter().map(|f| f.bytes).sum();
        manifest.write(&self.staging.join(manifest::MANIFEST_FILE))?;
        sync_dir(&self.staging);
        let parent = target.parent().expect("batch dirs have a parent");
        std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(io_err("replacing", &target))?;
        }
        std::fs::rename(&self.staging, &target).map_err(io_err("committing", &target))?;
        sync_dir(parent);
        Ok((target, manifest))
    }
}

/// Moves `files` out of the run's staging area `from` into batch `<run_id>-<n>` and commits it.
fn commit_part(
    dirs: &DatasetDir,
    from: &Path,
    run_id: &str,
    run: &Manifest,
    n: usize,
    files: Vec<FileEntry>,
) -> Result<PartEntry, SinkError> {
    let batch_id = format!("{run_id}-{n}");
    let staging = dirs.staging(&batch_id);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_err("clearing", &staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io_err("creating", &staging))?;
    for f in &files {
        let (from, to) = (from.join(&f.name), staging.join(&f.name));
        std::fs::rename(&from, &to).map_err(io_err("moving", &from))?;
    }
    let records: u64 = files.iter().map(|f| f.records).sum();
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let part = Manifest {
        batch_id: batch_id.clone(),
        metrics: Metrics {
            input_record_count: records,
            output_record_count: records,
            failed_record_count: 0,
            warning_count: 0,
            input_byte_size: 0,
        },
        errors: Vec::new(),
        files: files.clone(),
        output_bytes: bytes,
        rejected_file: None,
        diagnostics: Vec::new(),
        parts: Vec::new(),
        part_of: Some(run_id.to_string()),
        ..run.clone()
    };
    part.write(&staging.join(manifest::MANIFEST_FILE))?;
    sync_dir(&staging);
    let target = dirs.committed(&batch_id);
    let parent = target.parent().expect("batch dirs have a parent");
    std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io_err("replacing", &target))?;
    }
    std::fs::rename(&staging, &target).map_err(io_err("committing", &target))?;
    Ok(PartEntry {
        batch_id,
        files: files.len(),
        records,
        bytes,
    })
}

/// Groups files, in order, into batches of at most `max_files` files and `max_bytes` bytes
/// (a single file larger than `max_bytes` is a batch of its own). Always at least one group.
pub fn split_files(files: Vec<FileEntry>, max_files: usize, max_bytes: u64) -> Vec<Vec<FileEntry>> {
    let max_files = max_files.max(1);
    let mut groups: Vec<Vec<FileEntry>> = vec![Vec::new()];
    let mut bytes = 0u64;
    for f in files {
        let current = groups.last_mut().expect("one group");
        if !current.is_empty() && (current.len() >= max_files || bytes + f.bytes > max_bytes) {
            bytes = 0;
            groups.push(Vec::new());
        }
        bytes += f.bytes;
        groups.last_mut().expect("one group").push(f);
    }
    groups
}

/// ZSTD level of accepted files. Level 1 encodes about twice as fast as level 3 for files a
/// few percent larger (BENCHMARKS.md §1 has the measured sizes).
pub const ZSTD_LEVEL: i32 = 1;

/// The Parquet settings of accepted files: ZSTD at [`ZSTD_LEVEL`], row groups of
/// [`SinkOptions::row_group_rows`], and `created_by` naming this tool. Each file then fits them
/// to its first rows ([`crate::columnar::fit_to_rows`]) and keeps string min/max statistics
/// only for `_id`.
pub fn writer_props(options: &SinkOptions) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_created_by(format!("stripe-xdm {}", env!("CARGO_PKG_VERSION")))
        .build()
}

fn sync_dir(dir: &Path) {
    // Best effort: durability of the rename on file systems that support directory fsync.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Reads every accepted row of a committed batch directory back (for tests and tools).
pub fn read_batch_dir(dir: &Path) -> Result<Vec<RecordBatch>, SinkError> {
    let manifest = Manifest::read(&dir.join(manifest::MANIFEST_FILE))?;
    let mut out = Vec::new();
    for f in &manifest.files {
        out.extend(read_parquet(&dir.join(&f.name))?);
    }
    Ok(out)
}

/// Reads a Parquet file into record batches.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, SinkError> {
    parquet_reader(path)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SinkError::Parquet {
            path: path.to_path_buf(),
            source: e.into(),
        })
}

/// A streaming reader of a Parquet file, batch by batch.
pub(crate) fn parquet_reader(
    path: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, SinkError> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| SinkError::Parquet {
            path: path.to_path_buf(),
            source: e.into(),
        })
}

/// A new batch id: sortable by time, unique (`20261126T193347Z-3f9a1c2e`).
pub fn new_batch_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let rand: u32 = rand::random();
    format!("{now}-{rand:08x}")
}
