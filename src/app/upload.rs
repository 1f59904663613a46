//! Sending committed batches to Platform: which batches of a dataset are still to send, and
//! Platform's answer recorded on the catalog run that made each batch.

use std::path::{Path, PathBuf};

use super::{AppError, Result};
use crate::catalog::{Catalog, RunUpload};
use crate::sink::{Manifest, MANIFEST_FILE};
use crate::upload::{upload_batch, UploadConfig, UploadOptions, UploadReport, UploadState};

/// Checks a Platform dataset id given as `flag`: one path segment of the Batch Ingestion API's URLs, so not
/// empty and without `/`, `?`, `#`, `%`, spaces or control characters.
pub fn check_dataset_id(flag: &str, id: &str) -> Result<()> {
    let bad = id
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace() || c.is_control());
    if id.is_empty() {
        return Err(AppError::Invalid(format!(
            "{flag} is empty: give the id of the Platform dataset (Datasets → the dataset → Dataset ID)"
        )));
    }
    if let Some(c) = bad {
        return Err(AppError::Invalid(format!(
            "{flag} {id:?}: a dataset id has no {c:?} (Platform's ids are letters and digits)"
        )));
    }
    Ok(())
}

/// Checks a Platform gateway URL given as `flag`: absolute `http` or `https`, with a host.
pub fn check_base_url(flag: &str, url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| AppError::Invalid(format!("{flag} {url:?}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(AppError::Invalid(format!(
            "{flag} {url:?}: the gateway is an http(s) URL with a host, like {}",
            crate::upload::DEFAULT_BASE_URL
        )));
    }
    Ok(())
}

/// Checks a dataflow's upload target before it is stored: its dataset id, its gateway, and its
/// credentials file, which must be readable and complete now (credentials from the environment
/// are read when the dataflow runs).
pub fn check_target(target: &crate::catalog::UploadTarget) -> Result<()> {
    check_dataset_id("--upload-dataset-id", &target.dataset_id)?;
    if let Some(url) = &target.base_url {
        check_base_url("--platform-url", url)?;
    }
    if let Some(file) = &target.credentials_file {
        crate::upload::PlatformCredentials::from_file(Path::new(file)).map_err(|e| {
            AppError::Flag {
                flag: "--platform-credentials-file",
                source: Box::new(e),
            }
        })?;
    }
    Ok(())
}

/// The batch id of `dir` when it is a committed, successful batch without records (a run whose
/// window held nothing): there is nothing to send, and Platform fails a batch without files.
pub fn without_records(dir: &Path) -> Option<String> {
    let m = Manifest::read(&dir.join(MANIFEST_FILE)).ok()?;
    let empty = m.files.is_empty() && m.parts.is_empty();
    (empty && m.status == crate::sink::BatchStatus::Success).then_some(m.batch_id)
}

/// Committed batches of a dataset directory (`<out>/<dataset>`) with rows that Platform has not
/// ingested yet, oldest first (by manifest time). A further batch of a split run counts only
/// once the run's first batch is committed (a crash in between leaves it to the resumed run).
pub fn pending_batches(dataset_dir: &Path) -> Result<Vec<PathBuf>> {
    let batches = dataset_dir.join("batches");
    let entries = std::fs::read_dir(&batches).map_err(|e| {
        AppError::Invalid(format!(
            "{} is not a dataset directory (no batches/ folder: {e})",
            dataset_dir.display()
        ))
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        // Only committed batches with rows: Platform refuses a batch without files.
        match Manifest::read(&dir.join(MANIFEST_FILE)) {
            Ok(m)
                if m.part_of
                    .as_ref()
                    .is_some_and(|p| !batches.join(p).join(MANIFEST_FILE).exists()) =>
            {
                continue
            }
            Ok(m) if !m.files.is_empty() => {}
            _ => continue,
        }
        let done = UploadState::load(&dir)
            .ok()
            .flatten()
            .is_some_and(|s| s.succeeded());
        if !done {
            let modified = std::fs::metadata(dir.join(MANIFEST_FILE))
                .and_then(|m| m.modified())
                .ok();
            found.push((modified, dir));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, d)| d).collect())
}

/// Sends each batch directory in turn (stopping at the first that cannot be sent), records
/// Platform's answer on the catalog run that made it when `cat` is given and knows the batch,
/// and hands each report to `sent` as soon as it is there.
pub async fn upload_batches(
    cfg: &UploadConfig,
    dirs: &[PathBuf],
    opts: UploadOptions,
    mut cat: Option<&mut Catalog>,
    mut sent: impl FnMut(&UploadReport),
) -> Result<Vec<UploadReport>> {
    let mut reports = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let report = upload_batch(cfg, dir, opts).await?;
        if let (false, Some(cat)) = (report.dry_run, cat.as_deref_mut()) {
            record(cat, &report);
        }
        sent(&report);
        reports.push(report);
    }
    Ok(reports)
}

/// Records Platform's answer on the catalog run that made the batch, when there is one. A
/// catalog that cannot take it is logged, not fatal: the batch's own upload state is the record.
pub fn record(cat: &mut Catalog, report: &UploadReport) {
    let Ok(Some(run)) = cat.run_by_batch(&report.batch_id) else {
        return;
    };
    let upload = RunUpload {
        platform_batch_id: report.platform_batch_id.clone(),
        status: report.status.clone().unwrap_or_else(|| "unknown".into()),
        errors: report
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("?"),
                    e.description.as_deref().unwrap_or("")
                )
            })
            .collect(),
        uploaded_at: crate::runner::now(),
    };
    if let Err(e) = cat.record_upload(run.id, &upload) {
        tracing::warn!(run = run.id, error = %e, "cannot record the upload in the catalog");
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;
    use crate::catalog::UploadTarget;

    fn target(id: &str, url: Option<&str>, file: Option<&Path>) -> UploadTarget {
        UploadTarget {
            dataset_id: id.into(),
            base_url: url.map(str::to_string),
            credentials_file: file.map(|p| p.display().to_string()),
        }
    }

    #[test]
    fn an_upload_target_is_checked_before_it_is_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("aep.env");
        std::fs::write(
            &good,
            "AEP_ACCESS_TOKEN=t\nAEP_API_KEY=k\nAEP_ORG_ID=o@AdobeOrg\nAEP_SANDBOX=prod\n",
        )
        .unwrap();
        check_target(&target("5f0c", Some("http://127.0.0.1:9"), Some(&good))).unwrap();
        check_target(&target("5f0c", None, None)).unwrap();
        let err = |t: UploadTarget| check_target(&t).unwrap_err().to_string();
        assert!(err(target("", None, None)).contains("--upload-dataset-id is empty"));
        assert!(err(target("a/b", None, None)).contains("--upload-dataset-id \"a/b\""));
        assert!(err(target("5f0c", Some("platform.adobe.io"), None))
            .contains("--platform-url \"platform.adobe.io\": not a URL"));
        assert!(err(target("5f0c", Some("ftp://x"), None)).contains("http(s) URL"));
        let missing = tmp.path().join("nope.env");
        let e = err(target("5f0c", None, Some(&missing)));
        assert!(e.starts_with("--platform-credentials-file:"), "{e}");
        assert!(e.contains("nope.env"), "{e}");
        let partial = tmp.path().join("partial.env");
        std::fs::write(&partial, "AEP_ACCESS_TOKEN=secret-token\n").unwrap();
        let e = err(target("5f0c", None, Some(&partial)));
        assert!(e.contains("AEP_API_KEY"), "{e}");
        assert!(!e.contains("secret-token"), "{e}");
    }
}
