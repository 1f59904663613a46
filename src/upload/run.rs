//! The upload's steps: decide what is left to do from the recorded state, plan it (dry run) or do
//! it, recording each acknowledged step.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::client::{Content, PlatformClient};
use super::error::{io_err, UploadError};
use super::limits::{check_batch, CheckedBatch, CheckedFile};
use super::state::{is_final, UploadState};
use super::{
    encode_path, PlannedRequest, PlatformError, PlatformMetrics, UploadConfig, UploadOptions,
    UploadReport, CATALOG_PATH, IMPORT_PATH,
};

fn create_path() -> String {
    format!("{IMPORT_PATH}/batches")
}
fn file_path(batch: &str, dataset: &str, name: &str) -> String {
    format!(
        "{IMPORT_PATH}/batches/{}/datasets/{}/files/{}",
        encode_path(batch),
        encode_path(dataset),
        encode_path(name)
    )
}
fn complete_path(batch: &str) -> String {
    format!(
        "{IMPORT_PATH}/batches/{}?action=COMPLETE",
        encode_path(batch)
    )
}
fn status_path(batch: &str) -> String {
    format!("{CATALOG_PATH}/batches/{}", encode_path(batch))
}

/// The create-batch body.
fn create_body(cfg: &UploadConfig, checked: &CheckedBatch, predecessors: &[String]) -> Bytes {
    let m = &checked.manifest;
    let mut body = serde_json::json!({
        "datasetId": cfg.dataset_id,
        "inputFormat": {"format": "parquet"},
        "enableErrorDiagnostics": m.error_diagnostics,
    });
    if let Some(p) = m.partial_ingestion_percent {
        body["partialIngestionPercent"] = serde_json::json!(p);
    }
    if !predecessors.is_empty() {
        body["replay"] = serde_json::json!({"predecessors": predecessors, "reason": "replace"});
    }
    Bytes::from(serde_json::to_vec(&body).expect("json"))
}

/// `(start, end_inclusive)` of each chunk of a `len`-byte file.
fn chunks(len: u64, size: u64) -> Vec<(u64, u64)> {
    let size = size.max(1);
    (0..len.div_ceil(size))
        .map(|i| (i * size, ((i + 1) * size).min(len) - 1))
        .collect()
}

pub(super) async fn upload_batch(
    cfg: &UploadConfig,
    batch_dir: &Path,
    opts: UploadOptions,
) -> Result<UploadReport, UploadError> {
    if cfg.dataset_id.trim().is_empty() {
        return Err(UploadError::Config(
            "the Platform dataset id is empty".into(),
        ));
    }
    if cfg.chunk_size == 0 {
        return Err(UploadError::Config(
            "chunk size must be at least 1 byte".into(),
        ));
    }
    let checked = check_batch(batch_dir)?;
    let batch_id = checked.manifest.batch_id.clone();
    let mut state = UploadState::load(batch_dir)?
        .unwrap_or_else(|| UploadState::new(&batch_id, &cfg.dataset_id));

    if state.platform_batch_id.is_some() && state.dataset_id != cfg.dataset_id {
        return Err(UploadError::Config(format!(
            "batch {batch_id} was uploaded to dataset {} (Platform batch {}); uploading it into dataset {} as well is not supported",
            state.dataset_id,
            state.platform_batch_id.as_deref().unwrap_or(""),
            cfg.dataset_id
        )));
    }
    state.dataset_id = cfg.dataset_id.clone();
    if state.succeeded() {
        let current = state.platform_batch_id.clone().unwrap_or_default();
        if !opts.replay {
            return Err(UploadError::AlreadyUploaded {
                batch_id,
                platform_batch_id: current,
                status: state.final_status.clone().unwrap_or_default(),
            });
        }
        state.restart(vec![current]);
    } else if state.final_status.is_some() {
        // Failed (or aborted, abandoned…): nothing was ingested; a new Platform batch replaces
        // the same predecessors, if any.
        let preds = state.predecessors.clone();
        state.restart(preds);
    }

    let mut report = UploadReport {
        batch_id: batch_id.clone(),
        dataset_id: cfg.dataset_id.clone(),
        platform_batch_id: state.platform_batch_id.clone(),
        predecessors: state.predecessors.clone(),
        dry_run: opts.dry_run,
        ..UploadReport::default()
    };
    let pending: Vec<&CheckedFile> = checked
        .files
        .iter()
        .filter(|f| !state.acknowledged.contains(&f.name))
        .collect();
    report.skipped = checked
        .files
        .iter()
        .filter(|f| state.acknowledged.contains(&f.name))
        .map(|f| f.name.clone())
        .collect();

    if opts.dry_run {
        report.planned = plan(cfg, &checked, &state, &pending);
        return Ok(report);
    }

    // OAuth Server-to-Server credentials: a token exchanged now, or the cached one while fresh.
    let fresh = UploadConfig {
        credentials: cfg.credentials.fresh().await?,
        ..cfg.clone()
    };
    let cfg = &fresh;
    let client = PlatformClient::new(cfg)?;
    let result = execute(
        cfg,
        batch_dir,
        &checked,
        &mut state,
        &pending,
        &client,
        &mut report,
    )
    .await;
    report.requests = client.requests();
    report.retries = client.retries();
    result.map(|()| report)
}

fn plan(
    cfg: &UploadConfig,
    checked: &CheckedBatch,
    state: &UploadState,
    pending: &[&CheckedFile],
) -> Vec<PlannedRequest> {
    let req =
        |method: &str, path: String, bytes: u64, content_range: Option<String>| PlannedRequest {
            method: method.to_string(),
            // The placeholder stays readable (it was percent-encoded as an id).
            path: path.replace("%7BBATCH_ID%7D", "{BATCH_ID}"),
            bytes,
            content_range,
        };
    let mut out = Vec::new();
    let id = state
        .platform_batch_id
        .clone()
        .unwrap_or_else(|| "{BATCH_ID}".to_string());
    if state.platform_batch_id.is_none() {
        let body = create_body(cfg, checked, &state.predecessors);
        out.push(req("POST", create_path(), body.len() as u64, None));
    }
    for f in pending {
        let path = file_path(&id, &cfg.dataset_id, &f.name);
        if f.bytes <= cfg.chunk_threshold {
            out.push(req("PUT", path, f.bytes, None));
        } else {
            out.push(req("POST", format!("{path}?action=INITIALIZE"), 0, None));
            for (a, b) in chunks(f.bytes, cfg.chunk_size) {
                out.push(req(
                    "PATCH",
                    path.clone(),
                    b - a + 1,
                    Some(format!("bytes {a}-{b}/{}", f.bytes)),
                ));
            }
            out.push(req("POST", format!("{path}?action=COMPLETE"), 0, None));
        }
    }
    if !state.completed {
        out.push(req("POST", complete_path(&id), 0, None));
    }
    out.push(req("GET", status_path(&id), 0, None));
    out
}

async fn execute(
    cfg: &UploadConfig,
    batch_dir: &Path,
    checked: &CheckedBatch,
    state: &mut UploadState,
    pending: &[&CheckedFile],
    client: &PlatformClient,
    report: &mut UploadReport,
) -> Result<(), UploadError> {
    let id = match state.platform_batch_id.clone() {
        Some(id) => id,
        None => {
            let body = create_body(cfg, checked, &state.predecessors);
            let endpoint = format!("POST {}", create_path());
            let resp = client
                .send(Method::POST, &create_path(), Content::Json(body))
                .await?;
            let id = serde_json::from_slice::<serde_json::Value>(&resp)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| UploadError::InvalidResponse {
                    endpoint,
                    message: "the created batch has no \"id\"".into(),
                })?;
            tracing::info!(batch = %checked.manifest.batch_id, platform_batch = %id, "Platform batch created");
            state.platform_batch_id = Some(id.clone());
            state.save(batch_dir)?;
            id
        }
    };
    report.platform_batch_id = Some(id.clone());

    for f in pending {
        let path = file_path(&id, &cfg.dataset_id, &f.name);
        if f.bytes <= cfg.chunk_threshold {
            let body = tokio::fs::read(&f.path)
                .await
                .map_err(io_err("reading", &f.path))?;
            client
                .send(
                    Method::PUT,
                    &path,
                    Content::Octets {
                        body: Bytes::from(body),
                        range: None,
                    },
                )
                .await?;
        } else {
            upload_large(cfg, client, &path, f).await?;
        }
        tracing::info!(platform_batch = %id, file = %f.name, bytes = f.bytes, "file acknowledged");
        state.acknowledged.push(f.name.clone());
        state.save(batch_dir)?;
        report.uploaded.push(f.name.clone());
        report.bytes_sent += f.bytes;
    }

    if !state.completed {
        client
            .send(Method::POST, &complete_path(&id), Content::Empty)
            .await?;
        state.completed = true;
        state.save(batch_dir)?;
    }

    poll(cfg, batch_dir, state, client, report, &id).await
}

async fn upload_large(
    cfg: &UploadConfig,
    client: &PlatformClient,
    path: &str,
    f: &CheckedFile,
) -> Result<(), UploadError> {
    client
        .send(
            Method::POST,
            &format!("{path}?action=INITIALIZE"),
            Content::Empty,
        )
        .await?;
    let mut file = tokio::fs::File::open(&f.path)
        .await
        .map_err(io_err("opening", &f.path))?;
    for (a, b) in chunks(f.bytes, cfg.chunk_size) {
        let mut buf = vec![0u8; (b - a + 1) as usize];
        file.seek(std::io::SeekFrom::Start(a))
            .await
            .map_err(io_err("reading", &f.path))?;
        file.read_exact(&mut buf)
            .await
            .map_err(io_err("reading", &f.path))?;
        let range = format!("bytes {a}-{b}/{}", f.bytes);
        client
            .send(
                Method::PATCH,
                path,
                Content::Octets {
                    body: Bytes::from(buf),
                    range: Some(range),
                },
            )
            .await?;
    }
    client
        .send(
            Method::POST,
            &format!("{path}?action=COMPLETE"),
            Content::Empty,
        )
        .await?;
    Ok(())
}

async fn poll(
    cfg: &UploadConfig,
    batch_dir: &Path,
    state: &mut UploadState,
    client: &PlatformClient,
    report: &mut UploadReport,
    id: &str,
) -> Result<(), UploadError> {
    let started = Instant::now();
    let path = status_path(id);
    loop {
        let body = client.send(Method::GET, &path, Content::Empty).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| UploadError::InvalidResponse {
                endpoint: format!("GET {path}"),
                message: format!("not JSON: {e}"),
            })?;
        // §3.5: `{ "<id>": { "status": …, … } }`; accept the bare object too.
        let batch = if v.get("status").is_some() {
            Some(&v)
        } else {
            v.get(id).or_else(|| {
                v.as_object()
                    .and_then(|o| o.values().find(|x| x.is_object()))
            })
        };
        let status = batch
            .and_then(|b| b.get("status"))
            .and_then(|s| s.as_str())
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| UploadError::InvalidResponse {
                endpoint: format!("GET {path}"),
                message: "the batch has no \"status\"".into(),
            })?;
        let batch = batch.expect("status found in it");
        state.status = Some(status.clone());
        if is_final(&status) {
            let metrics = batch.get("metrics").cloned();
            let errors = batch
                .get("errors")
                .and_then(|e| e.as_array())
                .cloned()
                .unwrap_or_default();
            report.metrics = metrics
                .as_ref()
                .and_then(|m| serde_json::from_value::<PlatformMetrics>(m.clone()).ok());
            report.errors = errors
                .iter()
                .filter_map(|e| serde_json::from_value::<PlatformError>(e.clone()).ok())
                .collect();
            report.status = Some(status.clone());
            state.final_status = Some(status.clone());
            state.metrics = metrics;
            state.errors = errors;
            state.save(batch_dir)?;
            tracing::info!(platform_batch = %id, status = %status, "Platform batch final");
            return Ok(());
        }
        if started.elapsed() >= cfg.poll_timeout {
            state.save(batch_dir)?;
            return Err(UploadError::PollTimeout {
                platform_batch_id: id.to_string(),
                last_status: status,
                waited_secs: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(cfg.poll_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunk_ranges_cover_the_file() {
        assert_eq!(chunks(10, 4), vec![(0, 3), (4, 7), (8, 9)]);
        assert_eq!(chunks(8, 4), vec![(0, 3), (4, 7)]);
        assert_eq!(chunks(1, 4), vec![(0, 0)]);
    }
}
