//! Uploading committed batches to the loopback Platform: small and chunked files, resume after an
//! interruption, refusal of a second upload and replay, failing files, dry runs. Retried statuses,
//! refused credentials and local limit checks are in `upload_faults`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stripe_xdm::pipeline::{self, RunConfig};
use stripe_xdm::sim::SimConfig;
use stripe_xdm::sink::{BatchStatus, Manifest};
use stripe_xdm::upload::loopback::{Fault, LoopbackConfig, LoopbackPlatform};
use stripe_xdm::upload::{upload_batch, UploadConfig, UploadError, UploadOptions, UploadState};
use stripe_xdm::Resource;

use crate::support::sim;

const DATASET: &str = "5deac2648a19d218a888d2b1";

/// A committed charges batch of several Parquet files, made by the pipeline from the simulator.
pub(crate) async fn committed_batch(out: &Path) -> PathBuf {
    let (_h, client) = sim(SimConfig::default().with_counts(240)).await;
    let mut cfg = RunConfig::builtin(Resource::Charges, "acme", out.to_path_buf()).unwrap();
    cfg.chunk_records = 80;
    cfg.sink.max_file_bytes = 1; // one file per chunk
    let report = pipeline::run(&client, cfg).await.expect("pipeline runs");
    assert_eq!(report.status, BatchStatus::Success);
    let m = manifest(&report.batch_dir);
    assert!(m.files.len() >= 3, "several files: {:?}", m.files);
    report.batch_dir
}

pub(crate) fn manifest(dir: &Path) -> Manifest {
    Manifest::read(&dir.join("manifest.json")).unwrap()
}

pub(crate) async fn platform() -> LoopbackPlatform {
    LoopbackPlatform::start(LoopbackConfig::default())
        .await
        .unwrap()
}

pub(crate) fn config(p: &LoopbackPlatform) -> UploadConfig {
    let mut c = UploadConfig::new(DATASET, p.credentials());
    c.base_url = p.base_url();
    c.max_retries = 4;
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(20);
    c.poll_interval = Duration::from_millis(5);
    c.poll_timeout = Duration::from_secs(10);
    c
}

pub(crate) const RUN: UploadOptions = UploadOptions {
    dry_run: false,
    replay: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_uploaded_and_the_final_status_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let m = manifest(&batch);
    let p = platform().await;
    let r = upload_batch(&config(&p), &batch, RUN).await.unwrap();
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.status.as_deref(), Some("success"));
    let n = m.files.len();
    assert_eq!(r.uploaded.len(), n);
    let id = r.platform_batch_id.clone().unwrap();

    // Request sequence: create, one PUT per file, complete, polls (staging, then success).
    let reqs = p.requests();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/data/foundation/import/batches");
    for (req, f) in reqs[1..=n].iter().zip(&m.files) {
        assert_eq!(req.method, "PUT");
        assert_eq!(
            req.path,
            format!(
                "/data/foundation/import/batches/{id}/datasets/{DATASET}/files/{}",
                f.name
            )
        );
        assert_eq!(req.bytes, f.bytes);
        assert_eq!(
            req.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(req.status, 200);
    }
    assert_eq!(reqs[n + 1].query.as_deref(), Some("action=COMPLETE"));
    assert_eq!(reqs[n + 1].status, 200);
    let gets: Vec<_> = reqs[n + 2..].iter().collect();
    assert_eq!(gets.len(), 2, "one staging poll, then final");
    assert!(gets
        .iter()
        .all(|g| g.method == "GET" && g.path == format!("/data/foundation/catalog/batches/{id}")));

    // Platform holds exactly the files, byte for byte; the create body carried the manifest's flags.
    let b = p.batch(&id).unwrap();
    assert_eq!(b.status, "success");
    assert_eq!(b.dataset_id, DATASET);
    assert_eq!(b.enable_error_diagnostics, Some(m.error_diagnostics));
    assert_eq!(b.partial_ingestion_percent, m.partial_ingestion_percent);
    for f in &m.files {
        assert_eq!(
            b.files[&f.name],
            std::fs::read(batch.join(&f.name)).unwrap()
        );
    }

    // Metrics and the recorded state.
    let metrics = r.metrics.clone().unwrap();
    assert_eq!(metrics.input_file_count, Some(n as u64));
    assert_eq!(metrics.input_byte_size, Some(m.output_bytes));
    assert_eq!(
        metrics.input_record_count,
        Some(m.metrics.output_record_count)
    );
    assert_eq!(metrics.failed_record_count, Some(0));
    let s = UploadState::load(&batch).unwrap().unwrap();
    assert_eq!(s.platform_batch_id.as_deref(), Some(id.as_str()));
    assert_eq!(s.final_status.as_deref(), Some("success"));
    assert!(s.completed);
    assert_eq!(s.acknowledged.len(), n);
    assert_eq!(r.requests, (n + 4) as u64);
    assert_eq!(r.retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_use_the_chunked_upload_with_valid_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let m = manifest(&batch);
    let p = platform().await;
    let mut cfg = config(&p);
    cfg.chunk_threshold = 1000;
    cfg.chunk_size = 777;
    let r = upload_batch(&cfg, &batch, RUN).await.unwrap();
    assert!(r.succeeded(), "{r:?}");
    let reqs = p.requests();
    let b = p.batch(r.platform_batch_id.as_deref().unwrap()).unwrap();
    for f in &m.files {
        assert!(f.bytes > 1000, "test files exceed the tiny threshold");
        let mine: Vec<_> = reqs
            .iter()
            .filter(|q| q.path.ends_with(&format!("/files/{}", f.name)))
            .collect();
        assert_eq!(
            mine.first().unwrap().query.as_deref(),
            Some("action=INITIALIZE")
        );
        assert_eq!(mine.first().unwrap().status, 201);
        assert_eq!(
            mine.last().unwrap().query.as_deref(),
            Some("action=COMPLETE")
        );
        assert_eq!(mine.last().unwrap().status, 201);
        let patches: Vec<_> = mine.iter().filter(|q| q.method == "PATCH").collect();
        assert_eq!(patches.len() as u64, f.bytes.div_ceil(777));
        let mut next = 0;
        for q in &patches {
            let want = format!("bytes {next}-{}/{}", (next + 777).min(f.bytes) - 1, f.bytes);
            assert_eq!(q.content_range.as_deref(), Some(want.as_str()));
            assert_eq!(q.status, 200);
            next += q.bytes;
        }
        assert_eq!(next, f.bytes);
        assert!(
            !reqs.iter().any(|q| q.method == "PUT"),
            "no single-request upload"
        );
        assert_eq!(
            b.files[&f.name],
            std::fs::read(batch.join(&f.name)).unwrap()
        );
    }
}

/// Raw requests to the loopback, for the range validation the client never provokes.
async fn raw(
    p: &LoopbackPlatform,
    method: &str,
    path: &str,
    range: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let c = p.credentials();
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{}", p.base_url(), path))
        .header(
            "Authorization",
            format!("Bearer {}", c.access_token.expose()),
        )
        .header("x-api-key", c.api_key.expose())
        .header("x-gw-ims-org-id", &c.org_id)
        .header("x-sandbox-name", &c.sandbox)
        .header(
            "Content-Type",
            if body.is_empty() {
                "application/json"
            } else {
                "application/octet-stream"
            },
        )
        .body(body);
    if let Some(r) = range {
        req = req.header("Content-Range", r);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_validates_ranges_at_complete_and_fails_bad_files() {
    let p = platform().await;
    let create =
        serde_json::json!({"datasetId": DATASET, "inputFormat": {"format": "parquet"}}).to_string();
    let (status, body) = raw(
        &p,
        "POST",
        "/data/foundation/import/batches",
        None,
        create.into_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "loading");
    let id = v["id"].as_str().unwrap().to_string();
    let file = |name: &str| {
        format!("/data/foundation/import/batches/{id}/datasets/{DATASET}/files/{name}")
    };

    // Overlap.
    assert_eq!(
        raw(
            &p,
            "POST",
            &format!("{}?action=INITIALIZE", file("a.parquet")),
            None,
            vec![]
        )
        .await
        .0,
        201
    );
    assert_eq!(
        raw(
            &p,
            "PATCH",
            &file("a.parquet"),
            Some("bytes 0-9/20"),
            vec![1; 10]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw(
            &p,
            "PATCH",
            &file("a.parquet"),
            Some("bytes 5-19/20"),
            vec![1; 15]
        )
        .await
        .0,
        200
    );
    let (s, body) = raw(
        &p,
        "POST",
        &format!("{}?action=COMPLETE", file("a.parquet")),
        None,
        vec![],
    )
    .await;
    assert_eq!(s, 400);
    assert!(body.contains("Overlapping"), "{body}");
    // Gap.
    assert_eq!(
        raw(
            &p,
            "POST",
            &format!("{}?action=INITIALIZE", file("b.parquet")),
            None,
            vec![]
        )
        .await
        .0,
        201
    );
    assert_eq!(
        raw(
            &p,
            "PATCH",
            &file("b.parquet"),
            Some("bytes 0-9/30"),
            vec![1; 10]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw(
            &p,
            "PATCH",
            &file("b.parquet"),
            Some("bytes 20-29/30"),
            vec![1; 10]
        )
        .await
        .0,
        200
    );
    let (s, body) = raw(
        &p,
        "POST",
        &format!("{}?action=COMPLETE", file("b.parquet")),
        None,
        vec![],
    )
    .await;
    assert_eq!(s, 400);
    assert!(body.contains("Missing bytes 10-19"), "{body}");
    // Bad Content-Range syntax, and a range not matching the body.
    for bad in ["bytes 9-0/20", "0-9/20", "bytes 0-9", "bytes 0-20/20"] {
        assert_eq!(
            raw(&p, "PATCH", &file("b.parquet"), Some(bad), vec![1; 10])
                .await
                .0,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        raw(
            &p,
            "PATCH",
            &file("b.parquet"),
            Some("bytes 0-9/30"),
            vec![1; 3]
        )
        .await
        .0,
        400
    );
    // PATCH without INITIALIZE.
    assert_eq!(
        raw(
            &p,
            "PATCH",
            &file("c.parquet"),
            Some("bytes 0-9/10"),
            vec![1; 10]
        )
        .await
        .0,
        400
    );

    // Complete the batch with an empty file and a non-Parquet one: staging, then failed.
    assert_eq!(
        raw(&p, "PUT", &file("empty.parquet"), None, vec![]).await.0,
        400,
        "PUT needs octet-stream"
    );
    let c = p.credentials();
    let put_empty = reqwest::Client::new()
        .put(format!("{}{}", p.base_url(), file("empty.parquet")))
        .bearer_auth(c.access_token.expose())
        .header("x-api-key", c.api_key.expose())
        .header("x-gw-ims-org-id", &c.org_id)
        .header("x-sandbox-name", &c.sandbox)
        .header("Content-Type", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(put_empty.status().as_u16(), 200);
    assert_eq!(
        raw(
            &p,
            "PUT",
            &file("junk.parquet"),
            None,
            b"not parquet".to_vec()
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw(
            &p,
            "POST",
            &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
            None,
            vec![]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw(
            &p,
            "POST",
            &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
            None,
            vec![]
        )
        .await
        .0,
        200,
        "safe to retry"
    );
    let status =
        |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap()[&id].clone();
    let first = status(
        raw(
            &p,
            "GET",
            &format!("/data/foundation/catalog/batches/{id}"),
            None,
            vec![],
        )
        .await
        .1,
    );
    assert_eq!(first["status"], "staging");
    let last = status(
        raw(
            &p,
            "GET",
            &format!("/data/foundation/catalog/batches/{id}"),
            None,
            vec![],
        )
        .await
        .1,
    );
    assert_eq!(last["status"], "failed");
    let codes: Vec<_> = last["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect();
    assert!(codes.contains(&"106".to_string()), "{codes:?}");
    assert!(codes.contains(&"INGEST-1111-400".to_string()), "{codes:?}");
    assert_eq!(last["metrics"]["inputFileCount"], 2);
    assert_eq!(last["relatedObjects"][0]["id"], DATASET);
    // Files are refused once the batch is completed.
    assert_eq!(
        raw(&p, "PUT", &file("late.parquet"), None, b"PAR1".to_vec())
            .await
            .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_without_resending_acknowledged_files() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let m = manifest(&batch);
    let p = platform().await;
    let mut cfg = config(&p);
    cfg.max_retries = 1;
    // Create and the first PUT succeed; the second PUT fails on both attempts.
    p.inject(Fault::status(503).times(2).after(2));
    let e = upload_batch(&cfg, &batch, RUN).await.unwrap_err();
    assert!(
        matches!(
            e,
            UploadError::RetriesExhausted {
                attempts: 2,
                last_status: Some(503),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("resume"), "{e}");
    let s = UploadState::load(&batch).unwrap().unwrap();
    assert_eq!(s.acknowledged, vec![m.files[0].name.clone()]);
    assert!(!s.completed);
    let id = s.platform_batch_id.clone().unwrap();

    p.clear_requests();
    let r = upload_batch(&cfg, &batch, RUN).await.unwrap();
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(
        r.platform_batch_id.as_deref(),
        Some(id.as_str()),
        "same Platform batch"
    );
    assert_eq!(r.skipped, vec![m.files[0].name.clone()]);
    assert_eq!(r.uploaded.len(), m.files.len() - 1);
    let reqs = p.requests();
    assert!(
        !reqs.iter().any(|q| q.method == "POST" && q.query.is_none()),
        "no new batch"
    );
    assert!(
        !reqs.iter().any(|q| q.path.ends_with(&m.files[0].name)),
        "first file not re-sent"
    );
    assert_eq!(p.batches().len(), 1);
    assert_eq!(p.batch(&id).unwrap().files.len(), m.files.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_is_refused_and_replay_replaces_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let p = platform().await;
    let cfg = config(&p);
    let first = upload_batch(&cfg, &batch, RUN).await.unwrap();
    let first_id = first.platform_batch_id.clone().unwrap();
    let before = p.request_count();

    let e = upload_batch(&cfg, &batch, RUN).await.unwrap_err();
    assert!(matches!(e, UploadError::AlreadyUploaded { .. }), "{e}");
    assert!(
        e.to_string().contains(&first_id) && e.to_string().contains("replay"),
        "{e}"
    );
    assert_eq!(p.request_count(), before, "refused without a request");

    let replay = UploadOptions {
        dry_run: false,
        replay: true,
    };
    let second = upload_batch(&cfg, &batch, replay).await.unwrap();
    assert!(second.succeeded());
    let second_id = second.platform_batch_id.clone().unwrap();
    assert_ne!(second_id, first_id);
    assert_eq!(second.predecessors, vec![first_id.clone()]);
    assert_eq!(
        p.batch(&second_id).unwrap().predecessors,
        vec![first_id.clone()]
    );
    assert_eq!(p.batch(&first_id).unwrap().status, "inactive", "replaced");
    let s = UploadState::load(&batch).unwrap().unwrap();
    assert_eq!(s.previous.len(), 1);
    assert_eq!(s.previous[0].platform_batch_id, first_id);
    assert!(matches!(
        upload_batch(&cfg, &batch, RUN).await,
        Err(UploadError::AlreadyUploaded { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_the_requests_and_sends_none() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let m = manifest(&batch);
    let p = platform().await;
    let mut cfg = config(&p);
    let dry = UploadOptions {
        dry_run: true,
        replay: false,
    };
    let r = upload_batch(&cfg, &batch, dry).await.unwrap();
    assert!(r.dry_run && r.status.is_none() && r.platform_batch_id.is_none());
    let lines: Vec<String> = r.planned.iter().map(|q| q.to_string()).collect();
    assert_eq!(r.planned.len(), m.files.len() + 3, "{lines:#?}");
    assert_eq!(
        (r.planned[0].method.as_str(), r.planned[0].path.as_str()),
        ("POST", "/data/foundation/import/batches")
    );
    for (q, f) in r.planned[1..].iter().zip(&m.files) {
        assert_eq!(q.method, "PUT");
        assert_eq!(
            q.path,
            format!(
                "/data/foundation/import/batches/{{BATCH_ID}}/datasets/{DATASET}/files/{}",
                f.name
            )
        );
        assert_eq!(q.bytes, f.bytes);
    }
    assert_eq!(
        r.planned[m.files.len() + 1].path,
        "/data/foundation/import/batches/{BATCH_ID}?action=COMPLETE"
    );
    assert_eq!(r.planned[m.files.len() + 2].method, "GET");

    cfg.chunk_threshold = 1000;
    cfg.chunk_size = 1000;
    let r = upload_batch(&cfg, &batch, dry).await.unwrap();
    let f = &m.files[0];
    let patches: Vec<_> = r
        .planned
        .iter()
        .filter(|q| q.method == "PATCH" && q.path.ends_with(&f.name))
        .collect();
    assert_eq!(patches.len() as u64, f.bytes.div_ceil(1000));
    assert_eq!(
        patches[0].content_range.as_deref(),
        Some(format!("bytes 0-999/{}", f.bytes).as_str())
    );
    assert!(r
        .planned
        .iter()
        .any(|q| q.path.ends_with("?action=INITIALIZE")));

    assert_eq!(p.request_count(), 0, "a dry run sends nothing");
    assert!(
        UploadState::load(&batch).unwrap().is_none(),
        "and records nothing"
    );

    // After an upload, a dry run with replay plans a new batch; without replay it is refused.
    upload_batch(&config(&p), &batch, RUN).await.unwrap();
    let n = p.request_count();
    assert!(matches!(
        upload_batch(&config(&p), &batch, dry).await,
        Err(UploadError::AlreadyUploaded { .. })
    ));
    let r = upload_batch(
        &config(&p),
        &batch,
        UploadOptions {
            dry_run: true,
            replay: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(r.predecessors.len(), 1);
    assert_eq!(p.request_count(), n);
    assert!(
        UploadState::load(&batch).unwrap().unwrap().succeeded(),
        "state untouched by the dry run"
    );
}
