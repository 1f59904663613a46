//! OAuth Server-to-Server credentials for uploads: the access token is exchanged at IMS (here
//! the loopback Platform's token endpoint), cached, and exchanged again before it expires; the
//! client secret never shows in errors.

use std::time::Duration;

use stripe_xdm::upload::loopback::{LoopbackConfig, LoopbackPlatform};
use stripe_xdm::upload::{upload_batch, PlatformCredentials, UploadConfig};

use crate::upload::{committed_batch, RUN};

const DATASET: &str = "5deac2648a19d218a888d2b1";

fn config(p: &LoopbackPlatform) -> UploadConfig {
    let mut c = UploadConfig::new(DATASET, p.oauth_credentials());
    c.base_url = p.base_url();
    c.poll_interval = Duration::from_millis(5);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_exchange_a_token_once_and_again_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let first = committed_batch(&dir.path().join("a")).await;
    let second = committed_batch(&dir.path().join("b")).await;
    // A token lives 2 s here: the client exchanges it again once less than a minute is left.
    let p = LoopbackPlatform::start(LoopbackConfig {
        token_lifetime: Duration::from_secs(2),
        ..LoopbackConfig::default()
    })
    .await
    .unwrap();
    let r = upload_batch(&config(&p), &first, RUN).await.unwrap();
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(p.tokens_issued(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = upload_batch(&config(&p), &second, RUN).await.unwrap();
    assert!(r.succeeded(), "the expired token was replaced: {r:?}");
    assert_eq!(p.tokens_issued(), 2);
    p.shutdown().await;

    // With IMS's usual day-long tokens, one exchange serves every upload of the process.
    let p = LoopbackPlatform::start(LoopbackConfig::default())
        .await
        .unwrap();
    let third = committed_batch(&dir.path().join("c")).await;
    let fourth = committed_batch(&dir.path().join("d")).await;
    for b in [&third, &fourth] {
        let r = upload_batch(&config(&p), b, RUN).await.unwrap();
        assert!(r.succeeded(), "{r:?}");
    }
    assert_eq!(p.tokens_issued(), 1, "cached");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_exchange_names_the_client_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let p = LoopbackPlatform::start(LoopbackConfig::default())
        .await
        .unwrap();
    let mut cfg = config(&p);
    let wrong = "p8e-wrong-secret-that-must-never-print";
    cfg.credentials.oauth.as_mut().unwrap().client_secret = stripe_xdm::Secret::new(wrong);
    let err = upload_batch(&cfg, &batch, RUN)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid_client"), "{err}");
    assert!(err.contains("AEP_CLIENT_SECRET"), "{err}");
    assert!(!err.contains(wrong), "{err}");
    assert_eq!(p.tokens_issued(), 0);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ims_that_does_not_answer_is_an_outage_not_a_credentials_error() {
    let dir = tempfile::tempdir().unwrap();
    let batch = committed_batch(dir.path()).await;
    let p = LoopbackPlatform::start(LoopbackConfig::default())
        .await
        .unwrap();
    let mut cfg = config(&p);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    cfg.credentials.oauth.as_mut().unwrap().ims_url = url;
    let err = upload_batch(&cfg, &batch, RUN).await.unwrap_err();
    assert!(!err.is_usage(), "retry later (exit 1): {err}");
    let text = err.to_string();
    assert!(text.contains("connection failed"), "{text}");
    assert!(text.contains("retry later"), "{text}");
    assert_eq!(p.request_count(), 0, "nothing sent to Platform");
    p.shutdown().await;
}

#[test]
fn a_client_secret_stands_in_for_the_access_token() {
    let base = [
        ("AEP_API_KEY", "client-id"),
        ("AEP_ORG_ID", "ORG@AdobeOrg"),
        ("AEP_SANDBOX", "prod"),
    ];
    let lookup = |extra: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            base.iter()
                .chain(extra.iter())
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let c = PlatformCredentials::from_lookup("test", lookup(&[("AEP_CLIENT_SECRET", "s3cr3t")]))
        .unwrap();
    let oauth = c.oauth.as_ref().unwrap();
    assert_eq!(oauth.ims_url, stripe_xdm::upload::ims::DEFAULT_IMS_URL);
    assert!(oauth.scopes.contains("AdobeID"));
    assert!(
        !format!("{c:?}").contains("s3cr3t"),
        "Debug masks the secret"
    );
    assert_eq!(c.scrub("a s3cr3t b"), "a **** b");
    let err = PlatformCredentials::from_lookup("test", lookup(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AEP_ACCESS_TOKEN") && err.contains("AEP_CLIENT_SECRET"),
        "{err}"
    );
    assert_eq!(err.matches("Platform credentials").count(), 1, "{err}");
}
