//! OAuth Server-to-Server credentials: a client id (the API key) and client secret exchanged
//! at Adobe IMS's token endpoint for an access token, cached per process and exchanged again
//! before it expires, so a long-lived `serve` keeps uploading after the first token's day.
//!
//! `POST {ims}/ims/token/v3` with a form body `grant_type=client_credentials`, `client_id`,
//! `client_secret`, `scope` answers `{"access_token": …, "token_type": "bearer",
//! "expires_in": <seconds>}`. Neither the secret nor a token is ever logged or printed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::UploadError;
use crate::Secret;

/// Adobe IMS (North America), where Developer Console's OAuth Server-to-Server credentials
/// are exchanged.
pub const DEFAULT_IMS_URL: &str = "https://ims-na1.adobelogin.com";

/// The scopes Developer Console lists for an Experience Platform API credential.
pub const DEFAULT_SCOPES: &str =
    "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext";

/// A token is exchanged again once less than this share of its lifetime is left (and at least
/// [`MIN_MARGIN`] before it expires).
const REFRESH_SHARE: f64 = 0.1;
const MIN_MARGIN: Duration = Duration::from_secs(60);

/// What the exchange needs besides the client id (the credentials' API key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The client secret.
    pub client_secret: Secret,
    /// Comma-separated scopes.
    pub scopes: String,
    /// The IMS origin (without `/ims/token/v3`).
    pub ims_url: String,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

type Cache = Mutex<HashMap<u64, Cached>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn fingerprint(parts: &[&str]) -> u64 {
    crate::fingerprint(parts.iter().flat_map(|p| p.bytes().chain([0])))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl OAuthClient {
    /// An access token for `client_id`: the cached one while it is fresh, else a new exchange.
    pub async fn access_token(&self, client_id: &Secret) -> Result<Secret, UploadError> {
        let key = fingerprint(&[
            &self.ims_url,
            client_id.expose(),
            self.client_secret.expose(),
            &self.scopes,
        ]);
        {
            let c = cache().lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = c.get(&key).filter(|h| Instant::now() < h.refresh_at) {
                return Ok(hit.token.clone());
            }
        }
        let (token, lifetime) = self.exchange(client_id).await?;
        let margin = lifetime
            .mul_f64(REFRESH_SHARE)
            .max(MIN_MARGIN)
            .min(lifetime);
        let refresh_at = Instant::now() + (lifetime - margin);
        let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
        c.insert(
            key,
            Cached {
                token: token.clone(),
                refresh_at,
            },
        );
        Ok(token)
    }

    async fn exchange(&self, client_id: &Secret) -> Result<(Secret, Duration), UploadError> {
        let url = format!("{}/ims/token/v3", self.ims_url.trim_end_matches('/'));
        let failed = |reason: String| {
            UploadError::Credentials(format!(
                "the OAuth exchange at {url} for client id {} failed: {reason}",
                client_id.masked()
            ))
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.expose()),
            ("client_secret", self.client_secret.expose()),
            ("scope", self.scopes.as_str()),
        ];
        let body = form_body(&form);
        let unavailable =
            |reason: String, source: Option<reqwest::Error>| UploadError::ImsUnavailable {
                url: url.clone(),
                client_id: client_id.masked(),
                reason,
                source,
            };
        let transport = |e: reqwest::Error| unavailable(crate::net::describe_error(&e), Some(e));
        let resp = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(unavailable(format!("HTTP {status}"), None));
        }
        if !status.is_success() {
            let detail = serde_json::from_slice::<TokenError>(&bytes)
                .ok()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.error.unwrap_or_default(),
                        e.error_description.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| format!("{} bytes of non-JSON", bytes.len()));
            return Err(failed(format!(
                "HTTP {status}: {detail} — check AEP_API_KEY (the client id) and AEP_CLIENT_SECRET"
            )));
        }
        let t: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("not a token response: {e}")))?;
        if t.access_token.is_empty() {
            return Err(failed("an empty access_token".into()));
        }
        // IMS gives 24 h; a missing lifetime is taken as one hour.
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600).max(1));
        Ok((Secret::new(t.access_token), lifetime))
    }
}

/// `application/x-www-form-urlencoded` of `pairs` (the URL crate's serializer, through a
/// scratch URL's query).
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
    u.query_pairs_mut().extend_pairs(pairs);
    u.query().unwrap_or_default().to_string()
}
