//! Uploading committed batches to the loopback Platform when things go wrong: retried statuses and
//! dropped connections, refused credentials (named, never echoed), local limit checks before any
//! request.

use std::path::Path;

use stripe_xdm::sink::{BatchStatus, FileEntry, Manifest};
use stripe_xdm::upload::loopback::Fault;
use stripe_xdm::upload::{upload_batch, PlatformCredentials, UploadError, UploadState};
use stripe_xdm::Secret;

use crate::upload::{committed_batch, config, manifest, platform, RUN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_statuses_and_dropped_connections_recover() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let cases = [
        ("429", Fault::status(429)),
        ("500", Fault::status(500)),
        ("502", Fault::status(502)),
        ("503", Fault::status(503)),
        ("drop", Fault::disconnect()),
    ];
    for (i, (name, fault)) in cases.into_iter().enumerate() {
        let _ = std::fs::remove_file(UploadState::path(&batch));
        let p = platform().await;
        // Twice in a row, at a different step each time (create, PUT, complete, poll…).
        p.inject(fault.times(2).after(i as u32));
        let r = upload_batch(&config(&p), &batch, RUN)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(r.succeeded(), "{name}: {r:?}");
        assert_eq!(r.retries, 2, "{name}");
        assert_eq!(p.batches().len(), 1, "{name}: one batch");
        let failed = p
            .requests()
            .iter()
            .filter(|q| q.status == 0 || q.status >= 429)
            .count();
        assert_eq!(failed, 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_and_forbidden_name_the_credential_and_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let p = platform().await;
    let good = p.credentials();
    let wrong_token = "eyJwrong-token-that-must-never-print-123";
    let wrong_key = "wrong-api-key-never-printed-456";
    let cases: Vec<(&str, PlatformCredentials, &str)> = vec![
        (
            "token",
            PlatformCredentials {
                access_token: Secret::new(wrong_token),
                ..good.clone()
            },
            "AEP_ACCESS_TOKEN",
        ),
        (
            "key",
            PlatformCredentials {
                api_key: Secret::new(wrong_key),
                ..good.clone()
            },
            "AEP_API_KEY",
        ),
        (
            "org",
            PlatformCredentials {
                org_id: "OTHER@AdobeOrg".into(),
                ..good.clone()
            },
            "AEP_ORG_ID",
        ),
        (
            "sandbox",
            PlatformCredentials {
                sandbox: "dev-2".into(),
                ..good.clone()
            },
            "AEP_SANDBOX",
        ),
    ];
    for (name, creds, hint) in cases {
        p.clear_requests();
        let mut cfg = config(&p);
        cfg.credentials = creds;
        let e = upload_batch(&cfg, &batch, RUN).await.unwrap_err();
        let text = format!("{e} {e:?}");
        match name {
            "token" => {
                assert!(matches!(e, UploadError::Unauthorized { .. }), "{e}");
                assert!(text.contains("expired or invalid"), "{text}");
            }
            _ => assert!(matches!(e, UploadError::Forbidden { .. }), "{name}: {e}"),
        }
        assert!(text.contains(hint), "{name}: {text}");
        for secret in [
            wrong_token,
            wrong_key,
            good.access_token.expose(),
            good.api_key.expose(),
        ] {
            assert!(!text.contains(secret), "{name}: secret leaked in {text}");
        }
        assert_eq!(p.request_count(), 1, "{name}: not retried");
    }
    assert!(p.batches().is_empty());
    let s = UploadState::load(&batch).unwrap();
    assert!(s.is_none(), "nothing recorded");
}

/// Rewrites the manifest with `edit`.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Manifest)) {
    let mut m = manifest(dir);
    edit(&mut m);
    m.write(&dir.join("manifest.json")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_violations_are_caught_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let original = manifest(&batch);
    let p = platform().await;
    let cfg = config(&p);
    let limit = |e: UploadError| match e {
        UploadError::Limit { file, limit, .. } => (file, limit),
        other => panic!("not a limit error: {other}"),
    };
    let first = original.files[0].name.clone();

    // Too many files (a constructed manifest).
    edit_manifest(&batch, |m| {
        m.files = (0..1501)
            .map(|i| FileEntry {
                name: format!("part-{i:05}.parquet"),
                records: 1,
                bytes: 10,
            })
            .collect();
    });
    let (file, msg) = limit(upload_batch(&cfg, &batch, RUN).await.unwrap_err());
    assert!(
        file.is_none() && msg.contains("1501 files") && msg.contains("1500"),
        "{msg}"
    );

    // More than 100 GB.
    edit_manifest(&batch, |m| {
        *m = original.clone();
        m.files[0].bytes = 101 * 1000 * 1000 * 1000;
    });
    let (_, msg) = limit(upload_batch(&cfg, &batch, RUN).await.unwrap_err());
    assert!(msg.contains("100 GB"), "{msg}");

    // A failed run.
    edit_manifest(&batch, |m| {
        *m = original.clone();
        m.status = BatchStatus::Failed;
    });
    let (_, msg) = limit(upload_batch(&cfg, &batch, RUN).await.unwrap_err());
    assert!(msg.contains("failed"), "{msg}");

    // Not Parquet (same size as declared).
    let saved = std::fs::read(batch.join(&first)).unwrap();
    std::fs::write(batch.join(&first), vec![b'x'; saved.len()]).unwrap();
    edit_manifest(&batch, |m| *m = original.clone());
    let (file, msg) = limit(upload_batch(&cfg, &batch, RUN).await.unwrap_err());
    assert_eq!(file.as_deref(), Some(first.as_str()));
    assert!(msg.contains("not readable Parquet"), "{msg}");

    // An empty file.
    std::fs::write(batch.join(&first), b"").unwrap();
    edit_manifest(&batch, |m| {
        *m = original.clone();
        m.files[0].bytes = 0;
    });
    let e = upload_batch(&cfg, &batch, RUN).await.unwrap_err();
    assert!(
        e.to_string().contains(&first) && e.to_string().contains("empty"),
        "{e}"
    );

    // A file changed after commit (size differs from the manifest).
    std::fs::write(batch.join(&first), &saved[..saved.len() - 1]).unwrap();
    edit_manifest(&batch, |m| *m = original.clone());
    let (file, msg) = limit(upload_batch(&cfg, &batch, RUN).await.unwrap_err());
    assert_eq!(file.as_deref(), Some(first.as_str()));
    assert!(msg.contains("manifest says"), "{msg}");

    assert_eq!(p.request_count(), 0, "no request for any violation");
    assert!(UploadState::load(&batch).unwrap().is_none());

    // Restored, it uploads.
    std::fs::write(batch.join(&first), &saved).unwrap();
    assert!(upload_batch(&cfg, &batch, RUN).await.unwrap().succeeded());
}

#[test]
fn credentials_from_files_never_echo_values() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("aep.env");
    std::fs::write(&env, "# Platform\nexport AEP_ACCESS_TOKEN=\"eyJtok-1234567890\"\nAEP_API_KEY=key-abcdef\nAEP_ORG_ID=ORG@AdobeOrg\nAEP_SANDBOX=prod\n").unwrap();
    let c = PlatformCredentials::from_file(&env).unwrap();
    assert_eq!(c.access_token.expose(), "eyJtok-1234567890");
    assert_eq!(c.sandbox, "prod");
    assert!(!format!("{c:?}").contains("eyJtok-1234567890"));
    assert!(!format!("{c:?}").contains("key-abcdef"));

    let json = dir.path().join("aep.json");
    std::fs::write(
        &json,
        r#"{"access_token":"eyJtok-1234567890","api_key":"key-abcdef","org_id":"ORG@AdobeOrg"}"#,
    )
    .unwrap();
    let e = PlatformCredentials::from_file(&json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("AEP_SANDBOX") && !e.contains("eyJtok"), "{e}");
}
