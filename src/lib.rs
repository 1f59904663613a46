//! stripe-xdm: Stripe payments data into Adobe Experience Platform's XDM, locally.
//!
//! One run walks one way through the stages:
//!
//! ```text
//! Stripe API (or the built-in simulator)
//!    │  pages of JSON (list envelopes)
//!    ▼
//! source   — HTTP, auth, pagination, windows, retries, rate budget
//!    │  Page { body, record ranges, request id, window, cursor }
//!    ▼
//! decode   — explicit Arrow schema per resource; records → RecordBatch; bad records → rejects
//!    ▼
//! map      — DataFusion: the resource is a table, the mapping SQL projects it to XDM
//!    ▼
//! xdm      — the XDM schema's rules row by row; Data Prep's null-the-field / reject-the-row rule
//!    ▼
//! sink     — Parquet batch (staging, rollover, atomic commit), rejected rows, diagnostics
//! ```
//!
//! [`pipeline`] wires the stages for one run and returns a report; [`sim`] is a Stripe
//! simulator that only speaks HTTP, like Stripe. Around the run: [`catalog`] (accounts,
//! datasets, dataflows, runs, checkpoints), [`runner`] (one dataflow run end to end, and the
//! scheduler), [`alert`] (run notifications) and [`upload`] (Platform's Batch Ingestion API).

/// The process allocator: jemalloc, which hands freed memory back to the system as a long run
/// goes (glibc's per-thread arenas kept a run's resident set at 3–4× its live heap, BENCHMARKS.md
/// §2b and §2d). On by default (feature `jemalloc`); an application embedding the library with its
/// own allocator turns the feature off.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread purges dirty pages one second
/// after they are freed (instead of on later allocations only), purged pages go straight back
/// to the system, and all threads share one arena: the engine's buffers are allocated on one
/// thread and freed on another (page bodies, chunks, encoded pages), and with jemalloc's default
/// of four arenas per core each arena held its own freed pages (~45 MiB more at 5 M charges,
/// BENCHMARKS.md §2i). Small allocations stay in per-thread caches. `_RJEM_MALLOC_CONF` in the
/// environment overrides them (e.g. `narenas:8` on a machine with many cores).
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[used]
#[export_name = "_rjem_malloc_conf"]
static malloc_conf: &[u8; 70] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1\0";

pub mod alert;
pub mod app;
pub mod catalog;
pub mod columnar;
pub mod console;
pub mod decode;
pub mod defaults;
pub mod direct;
pub mod import;
pub mod inspect;
mod loopback;
pub mod map;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod replay;
pub mod resource;
pub mod runner;
pub mod schedule;
pub mod secret;
pub mod sim;
pub mod sink;
pub mod source;
pub mod stage;
pub mod upload;
pub mod xdm;

pub use resource::Resource;
pub use secret::Secret;

/// A stable 64-bit FNV-1a hash of `bytes`: mapping fingerprints in checkpoints, and keys of
/// process-wide caches that must not hold a secret in plain text.
pub(crate) fn fingerprint(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
