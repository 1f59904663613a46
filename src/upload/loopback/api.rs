//! The loopback Platform's API: routing, batches, files and chunks, final statuses, the catalog view.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{Inner, LoopbackBatch, LoopbackConfig};

pub(super) type Reply = (u16, Value);

pub(super) fn err(status: u16, code: &str, message: impl Into<String>) -> Reply {
    (
        status,
        json!({"error_code": code, "message": message.into()}),
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(super) fn route(
    cfg: &LoopbackConfig,
    inner: &mut Inner,
    method: &str,
    path: &str,
    query: Option<&str>,
    header: &dyn Fn(&str) -> Option<String>,
    body: Bytes,
) -> Reply {
    let action = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("action=")))
        .map(str::to_string);
    let not_found = || err(404, "404001", format!("No route for {method} {path}"));
    if let Some(id) = path.strip_prefix("/data/foundation/catalog/batches/") {
        if method != "GET" {
            return not_found();
        }
        return match inner.batches.get_mut(id) {
            Some(b) => (200, catalog_view(cfg, b)),
            None => err(404, "404002", format!("Batch {id} not found")),
        };
    }
    if path == "/data/foundation/import/batches" {
        return if method == "POST" {
            create(inner, &body)
        } else {
            not_found()
        };
    }
    let Some(rest) = path.strip_prefix("/data/foundation/import/batches/") else {
        return not_found();
    };
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(batch) = inner.batches.get_mut(id) else {
        return err(404, "404002", format!("Batch {id} not found"));
    };
    if tail.is_empty() {
        return match (method, action.as_deref()) {
            ("POST", Some("COMPLETE")) => {
                if batch.status == "loading" {
                    batch.status = "staging".into();
                    batch.polls_left = cfg.polls_before_final;
                    batch.updated = now_ms();
                }
                (200, Value::Null)
            }
            ("POST", Some("ABORT")) if batch.status == "loading" || batch.status == "staging" => {
                batch.status = "aborted".into();
                (200, Value::Null)
            }
            _ => err(400, "400001", format!("Unsupported action for batch {id}")),
        };
    }
    let Some((ds, name)) = tail
        .strip_prefix("datasets/")
        .and_then(|t| t.split_once("/files/"))
    else {
        return not_found();
    };
    if ds != batch.dataset_id {
        return err(
            400,
            "400010",
            format!("Dataset {ds} is not the batch's dataset"),
        );
    }
    if name.is_empty() {
        return err(400, "400011", "A file name is required");
    }
    if batch.status != "loading" {
        return err(
            400,
            "400012",
            format!("Batch {id} is {} and accepts no more files", batch.status),
        );
    }
    batch.updated = now_ms();
    match (method, action.as_deref()) {
        ("PUT", None) => {
            if header("content-type").as_deref() != Some("application/octet-stream") {
                return err(
                    400,
                    "400013",
                    "Content-Type must be application/octet-stream",
                );
            }
            batch.files.insert(name.to_string(), body);
            (200, Value::Null)
        }
        ("POST", Some("INITIALIZE")) => {
            batch.files.remove(name);
            batch.pending_chunks.insert(name.to_string(), Vec::new());
            (201, Value::Null)
        }
        ("PATCH", None) => {
            let Some(chunks) = batch.pending_chunks.get_mut(name) else {
                return err(400, "400014", format!("File {name} was not initialized"));
            };
            let Some((a, b, total)) = header("content-range").as_deref().and_then(parse_range)
            else {
                return err(
                    400,
                    "400015",
                    "Content-Range must be 'bytes a-b/total' with a <= b < total",
                );
            };
            if b - a + 1 != body.len() as u64 {
                return err(
                    400,
                    "400016",
                    format!(
                        "Content-Range covers {} bytes but the body has {}",
                        b - a + 1,
                        body.len()
                    ),
                );
            }
            chunks.push((a, b, body));
            let _ = total;
            (200, Value::Null)
        }
        ("POST", Some("COMPLETE")) => {
            let Some(mut chunks) = batch.pending_chunks.remove(name) else {
                return err(400, "400014", format!("File {name} was not initialized"));
            };
            chunks.sort_by_key(|c| (c.0, c.1));
            let mut next = 0u64;
            let mut file = Vec::new();
            for (a, b, bytes) in &chunks {
                if *a < next {
                    batch
                        .pending_chunks
                        .insert(name.to_string(), chunks.clone());
                    return err(
                        400,
                        "400017",
                        format!("Overlapping chunks at byte {a} of {name}"),
                    );
                }
                if *a > next {
                    batch
                        .pending_chunks
                        .insert(name.to_string(), chunks.clone());
                    return err(
                        400,
                        "400018",
                        format!("Missing bytes {next}-{} of {name}", a - 1),
                    );
                }
                file.extend_from_slice(bytes);
                next = b + 1;
            }
            if chunks.is_empty() {
                return err(400, "400018", format!("No chunk was uploaded for {name}"));
            }
            batch.files.insert(name.to_string(), Bytes::from(file));
            (201, Value::Null)
        }
        _ => err(400, "400001", format!("Unsupported {method} on a file")),
    }
}

/// `bytes a-b/total` (total a number or `*`) → `(a, b, total)`.
pub fn parse_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let r = v.trim().strip_prefix("bytes ")?;
    let (span, total) = r.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(a) || !all_digits(b) {
        return None;
    }
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    let total = if total == "*" {
        None
    } else if all_digits(total) {
        Some(total.parse().ok()?)
    } else {
        return None;
    };
    (a <= b && total.is_none_or(|t| b < t)).then_some((a, b, total))
}

fn create(inner: &mut Inner, body: &[u8]) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return err(400, "400002", "The request body is not JSON");
    };
    let Some(dataset) = v
        .get("datasetId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return err(400, "400003", "datasetId is required");
    };
    match v.pointer("/inputFormat/format").and_then(Value::as_str) {
        Some("parquet") | Some("json") => {}
        _ => return err(400, "400004", "inputFormat.format must be parquet or json"),
    }
    let mut predecessors = Vec::new();
    if let Some(r) = v.get("replay") {
        let preds: Option<Vec<String>> = r.get("predecessors").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        });
        let Some(preds) = preds.filter(|p| !p.is_empty()) else {
            return err(400, "400005", "replay.predecessors must list batch ids");
        };
        if r.get("reason").and_then(Value::as_str).is_none() {
            return err(400, "400006", "replay.reason is required");
        }
        for p in &preds {
            match inner.batches.get(p) {
                Some(b)
                    if b.dataset_id == dataset
                        && (b.status == "success" || b.status == "inactive") => {}
                _ => {
                    return err(
                        400,
                        "400007",
                        format!("Predecessor {p} is not a successful batch of dataset {dataset}"),
                    )
                }
            }
        }
        for p in &preds {
            if let Some(b) = inner.batches.get_mut(p) {
                b.status = "inactive".into();
            }
        }
        predecessors = preds;
    }
    inner.next += 1;
    let id = format!("01LOOPBACK{:016}", inner.next);
    let t = now_ms();
    let batch = LoopbackBatch {
        id: id.clone(),
        dataset_id: dataset.to_string(),
        status: "loading".into(),
        enable_error_diagnostics: v.get("enableErrorDiagnostics").and_then(Value::as_bool),
        partial_ingestion_percent: v.get("partialIngestionPercent").and_then(Value::as_f64),
        predecessors,
        files: BTreeMap::new(),
        pending_chunks: BTreeMap::new(),
        errors: Vec::new(),
        records: 0,
        polls_left: 0,
        created: t,
        updated: t,
        completed: None,
    };
    inner.batches.insert(id.clone(), batch);
    (
        201,
        json!({
            "id": id, "imsOrg": "loopback", "updated": t, "status": "loading", "created": t,
            "relatedObjects": [{"type": "dataSet", "id": dataset}], "version": "1.0.0", "tags": {},
            "createdUser": "loopback", "updatedUser": "loopback"
        }),
    )
}

/// Rows in a Parquet file's footer, `None` if it is not readable Parquet.
fn parquet_rows(bytes: &Bytes) -> Option<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(bytes.clone()).ok()?;
    Some(r.metadata().file_metadata().num_rows().max(0) as u64)
}

fn finish(batch: &mut LoopbackBatch) {
    let mut errors = Vec::new();
    let mut records = 0;
    if batch.files.is_empty() {
        errors.push(json!({"code": "133", "description": "We are unable to locate any files uploaded for this batch. Please upload files to ingest."}));
    }
    for (name, bytes) in &batch.files {
        if bytes.is_empty() {
            errors.push(json!({"code": "106", "description": format!("Dataset file is empty. Please upload file with data. ({name})")}));
        } else if !(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1")) {
            errors.push(json!({"code": "INGEST-1111-400", "description": format!("Unreadable file: {name} is not a Parquet file")}));
        } else if let Some(n) = parquet_rows(bytes) {
            records += n;
        } else {
            errors.push(json!({"code": "INGEST-1111-400", "description": format!("Unreadable file: {name} has no readable Parquet footer")}));
        }
    }
    batch.status = if errors.is_empty() {
        "success"
    } else {
        "failed"
    }
    .into();
    batch.errors = errors;
    batch.records = records;
    batch.completed = Some(now_ms());
    batch.updated = now_ms();
}

fn catalog_view(cfg: &LoopbackConfig, b: &mut LoopbackBatch) -> Value {
    if b.status == "staging" {
        if b.polls_left == 0 {
            finish(b);
        } else {
            b.polls_left -= 1;
        }
    }
    let ok = b.status == "success" || b.status == "inactive";
    let final_ = b.completed.is_some();
    let bytes: u64 = b.files.values().map(|f| f.len() as u64).sum();
    let mut o = json!({
        "status": b.status,
        "tags": {"acp_enableErrorDiagnostics": b.enable_error_diagnostics, "acp_partialIngestionPercent": b.partial_ingestion_percent},
        "relatedObjects": [{"type": "dataSet", "id": b.dataset_id}],
        "id": b.id, "externalId": b.id, "inputFormat": {"format": "parquet"}, "imsOrg": cfg.org_id,
        "created": b.created, "updated": b.updated, "version": "1.0.5",
    });
    if b.status != "loading" {
        o["started"] = json!(b.updated);
    }
    if final_ {
        o["completed"] = json!(b.completed);
        o["metrics"] = json!({
            "inputByteSize": bytes, "inputFileCount": b.files.len(), "inputRecordCount": b.records,
            "outputRecordCount": if ok { b.records } else { 0 },
            "failedRecordCount": if ok { 0 } else { b.records },
        });
        o["errors"] = json!(b.errors);
    }
    if !b.predecessors.is_empty() {
        o["replay"] = json!({"predecessors": b.predecessors, "reason": "replace"});
    }
    json!({ b.id.clone(): o })
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_syntax() {
        assert_eq!(parse_range("bytes 0-9/20"), Some((0, 9, Some(20))));
        assert_eq!(parse_range("bytes 10-19/*"), Some((10, 19, None)));
        for bad in [
            "bytes 9-0/20",
            "bytes 0-20/20",
            "0-9/20",
            "bytes -9/20",
            "bytes 0-9",
            "bytes a-b/c",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
    }
}
