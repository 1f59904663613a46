//! End-to-end bench: the simulator (no rate limit) → the whole pipeline (fetch, decode, stage in
//! the Delta mirror, cut the batch from it) → Parquet on disk; then a remap of the whole mirror.
//! Prints records/s, the CPU seconds the run took (engine and simulator), peak RSS, the mirror's
//! size next to the raw JSON's, and remap records/s.
//!
//! Run: `cargo bench --bench e2e` (defaults: 200,000 charges), or
//! `E2E_RECORDS=1000000 E2E_CONCURRENCY=4 cargo bench --bench e2e`.
//!
//! The simulator runs in a child process (this binary again, with `E2E_SIM_SERVE` set), so the
//! peak RSS printed is the engine's alone, as it would be against Stripe; the child's own peak
//! is printed beside it. `E2E_SIM=inprocess` runs the simulator in this process instead (as
//! before BENCHMARKS.md §2d). The child shares the two cores, as the in-process simulator did.
//! `E2E_REMAP=0` skips the remap; `E2E_KEEP=1` keeps the output (mirror and batch) and prints
//! where; `E2E_MAPPING=DIR` maps the run and the remap with `DIR/<resource>.sql` into
//! `DIR/<resource>.xdm.json` instead of the built-in mapping (`benches/ratio.sh` uses it to run
//! the baseline's mapping).

#[path = "support/mod.rs"]
mod support;
use support::env;

use std::time::Instant;

use stripe_xdm::map::{substitute_tenant, Mapping};
use stripe_xdm::pipeline::{self, RunConfig};
use stripe_xdm::sim::{SimConfig, Simulator, SIM_KEY};
use stripe_xdm::source::{ClientConfig, StripeClient};
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::{Resource, Secret};

/// The run's configuration: the built-in mapping of `resource`, or with `E2E_MAPPING=DIR`
/// `DIR/<resource>.sql` into `DIR/<resource>.xdm.json` (the run and the remap alike).
fn run_config(resource: Resource, out: &std::path::Path) -> RunConfig {
    let mut run = RunConfig::builtin(resource, "acme", out.to_path_buf()).unwrap();
    if let Some(dir) = std::env::var_os("E2E_MAPPING").map(std::path::PathBuf::from) {
        let path = resource.path();
        run.mapping = Mapping::from_file(&dir.join(format!("{path}.sql")), "acme")
            .expect("E2E_MAPPING: the resource's mapping");
        let schema = std::fs::read_to_string(dir.join(format!("{path}.xdm.json")))
            .expect("E2E_MAPPING: the resource's XDM schema");
        run.schema = XdmSchema::from_json_str(&substitute_tenant(&schema, "acme"))
            .expect("E2E_MAPPING: the XDM schema");
    }
    run
}

fn peak_rss_mib() -> f64 {
    peak_rss_of(std::process::id())
}

/// Bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Samples the allocator's statistics every 20 ms and keeps the highest of each: how much of the
/// peak resident set is live data and how much the allocator holds besides.
struct AllocatorPeaks {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<stripe_xdm::memory::AllocatorStats>,
}

impl AllocatorPeaks {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = stripe_xdm::memory::AllocatorStats::default();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Some(now) = stripe_xdm::memory::allocator_stats() else {
                        break;
                    };
                    peak.allocated = peak.allocated.max(now.allocated);
                    peak.active = peak.active.max(now.active);
                    peak.resident = peak.resident.max(now.resident);
                    peak.mapped = peak.mapped.max(now.mapped);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                peak
            })
        };
        AllocatorPeaks { stop, handle }
    }

    /// The peaks so far, as text ("" without jemalloc).
    fn finish(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = self.handle.join().unwrap_or_default();
        if peak.allocated == 0 {
            return String::new();
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        format!(
            " (allocator peaks: live {:.1} MiB, active {:.1} MiB, resident {:.1} MiB)",
            mib(peak.allocated),
            mib(peak.active),
            mib(peak.resident)
        )
    }
}

/// Peak RSS of process `pid` in MiB.
fn peak_rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time (user + system) process `pid` has used so far, in seconds.
fn cpu_secs_of(pid: u32) -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(f64::NAN)
}

/// The simulator, in this process or in a child; its base URL.
enum Sim {
    InProcess(stripe_xdm::sim::SimHandle),
    Child(std::process::Child, String),
}

impl Sim {
    async fn start(config: SimConfig) -> Sim {
        if std::env::var("E2E_SIM").as_deref() == Ok("inprocess") {
            return Sim::InProcess(Simulator::new(config).start().await.expect("simulator"));
        }
        use std::io::BufRead;
        // The child picks its own port and prints its base URL once it listens.
        let mut child = std::process::Command::new(std::env::current_exe().expect("this bench"))
            .env("E2E_SIM_SERVE", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the simulator's process");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the simulator says it is ready");
        let url = line.trim().to_string();
        if url.is_empty() {
            let _ = child.kill();
            panic!("the simulator's process ended before it listened");
        }
        Sim::Child(child, url)
    }

    /// The child's CPU seconds so far (`None` in process: counted with the engine's).
    fn cpu_secs(&self) -> Option<f64> {
        match self {
            Sim::InProcess(_) => None,
            Sim::Child(c, _) => Some(cpu_secs_of(c.id())),
        }
    }

    fn base_url(&self) -> String {
        match self {
            Sim::InProcess(h) => h.base_url(),
            Sim::Child(_, url) => url.clone(),
        }
    }

    async fn stop(self) -> Option<f64> {
        match self {
            Sim::InProcess(h) => {
                h.shutdown().await;
                None
            }
            Sim::Child(mut c, _) => {
                let peak = peak_rss_of(c.id());
                let _ = c.kill();
                let _ = c.wait();
                Some(peak)
            }
        }
    }
}

/// Stops the child when the bench panics before [`Sim::stop`].
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) on a pid this process spawned; no memory is touched.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore harness flags.
    let records: u64 = env("E2E_RECORDS", 200_000);
    let resource: Resource = env("E2E_RESOURCE", Resource::Charges);
    let concurrency: usize = env("E2E_CONCURRENCY", 4);
    // Objects spread over ~5 years so windows stay realistic at millions of records.
    let config = SimConfig::default()
        .with_count(resource, records)
        .with_window(1_600_000_000, 1_760_000_000);
    let rt = support::runtime();
    if let Ok(addr) = std::env::var("E2E_SIM_SERVE") {
        // The child: serve until killed.
        rt.block_on(async {
            let addr: std::net::SocketAddr = addr.parse().expect("E2E_SIM_SERVE address");
            let handle = Simulator::new(config)
                .start_on(addr)
                .await
                .expect("simulator");
            println!("{}", handle.base_url());
            std::future::pending::<()>().await;
        });
        return;
    }
    rt.block_on(async {
        let handle = Sim::start(config).await;
        let mut guard = KillOnDrop(match &handle {
            Sim::Child(c, _) => Some(c.id()),
            Sim::InProcess(_) => None,
        });
        let mut cfg = ClientConfig::new(handle.base_url(), Secret::new(SIM_KEY));
        cfg.requests_per_sec = Some(1e9);
        cfg.endpoint_requests_per_sec = Some(1e9);
        let client = StripeClient::new(cfg).expect("client");
        let out = tempfile::tempdir().expect("temp dir");
        let out_path = out.path().to_path_buf();
        // E2E_KEEP=1 keeps the run's output (mirror and batch) for inspection.
        let _out = if std::env::var_os("E2E_KEEP").is_some() {
            println!("output kept in {}", out.keep().display());
            None
        } else {
            Some(out)
        };
        let mut run = run_config(resource, &out_path);
        run.control.concurrency = concurrency;
        run.chunk_records = env("E2E_CHUNK", pipeline::DEFAULT_CHUNK_RECORDS);
        run.sink.row_group_rows = env("E2E_ROW_GROUP", run.sink.row_group_rows);
        let peaks = AllocatorPeaks::start();
        let cpu_before = (cpu_secs_of(std::process::id()), handle.cpu_secs());
        let started = Instant::now();
        let report = pipeline::run(&client, run).await.expect("run");
        let secs = started.elapsed().as_secs_f64();
        let peaks = peaks.finish();
        let engine_cpu = cpu_secs_of(std::process::id()) - cpu_before.0;
        let cpu = match (cpu_before.1, handle.cpu_secs()) {
            (Some(b), Some(a)) => format!(
                "CPU {engine_cpu:.1} s engine + {:.1} s simulator ({:.2} cores)",
                a - b,
                (engine_cpu + a - b) / secs
            ),
            _ => format!(
                "CPU {engine_cpu:.1} s engine and simulator ({:.2} cores)",
                engine_cpu / secs
            ),
        };
        assert_eq!(report.counts.fetched, report.counts.ingested + report.counts.rejected);
        println!(
            "e2e {resource} ({concurrency} windows): {} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s in, {} pages, {} files, {:.1} MiB Parquet, peak RSS {:.1} MiB{peaks}, {cpu}",
            report.counts.fetched,
            report.counts.fetched as f64 / secs,
            report.counts.bytes_in as f64 / secs / 1e6,
            report.counts.pages,
            report.counts.files,
            report.counts.bytes_out as f64 / (1024.0 * 1024.0),
            peak_rss_mib()
        );
        let mirror_bytes = dir_bytes(&out_path.join("mirror").join(resource.path()));
        println!(
            "mirror: {:.1} MiB on disk for {:.1} MiB of JSON received ({:.2}x), {:.1} MiB per 1 M records",
            mirror_bytes as f64 / (1024.0 * 1024.0),
            report.counts.bytes_in as f64 / (1024.0 * 1024.0),
            report.counts.bytes_in as f64 / mirror_bytes.max(1) as f64,
            mirror_bytes as f64 / (1024.0 * 1024.0) * 1e6 / report.counts.fetched.max(1) as f64
        );
        guard.0 = None;
        if let Some(peak) = handle.stop().await {
            println!("simulator (child process): peak RSS {peak:.1} MiB");
        }
        if std::env::var("E2E_REMAP").as_deref() == Ok("0") {
            return;
        }
        let remap_cfg = run_config(resource, &out_path);
        let started = Instant::now();
        let remapped = pipeline::remap(remap_cfg).await.expect("remap");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(remapped.counts.fetched, report.counts.staged);
        println!(
            "remap {resource}: {} records in {secs:.2} s = {:.0} records/s (0 Stripe requests), peak RSS {:.1} MiB",
            remapped.counts.fetched,
            remapped.counts.fetched as f64 / secs,
            peak_rss_mib()
        );
        println!("reproduce: E2E_RECORDS={records} E2E_RESOURCE={resource} E2E_CONCURRENCY={concurrency} cargo bench --bench e2e");
    });
}
