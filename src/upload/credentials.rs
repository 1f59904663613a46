//! Platform credentials: from the environment or a file, never from the command line.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::UploadError;
use crate::Secret;

/// Environment variable (and file key) of the IMS access token.
pub const ENV_ACCESS_TOKEN: &str = "AEP_ACCESS_TOKEN";
/// Environment variable (and file key) of the API key (`x-api-key`).
pub const ENV_API_KEY: &str = "AEP_API_KEY";
/// Environment variable (and file key) of the IMS org id (`x-gw-ims-org-id`).
pub const ENV_ORG_ID: &str = "AEP_ORG_ID";
/// Environment variable (and file key) of the sandbox name (`x-sandbox-name`).
pub const ENV_SANDBOX: &str = "AEP_SANDBOX";
/// Environment variable (and file key) of an OAuth Server-to-Server client secret: with it, the
/// access token is exchanged at IMS (and refreshed) instead of given.
pub const ENV_CLIENT_SECRET: &str = "AEP_CLIENT_SECRET";
/// Environment variable (and file key) of the OAuth scopes (default
/// [`super::ims::DEFAULT_SCOPES`]).
pub const ENV_SCOPES: &str = "AEP_SCOPES";
/// Environment variable (and file key) of the IMS origin (default
/// [`super::ims::DEFAULT_IMS_URL`]).
pub const ENV_IMS_URL: &str = "AEP_IMS_URL";

/// What Platform's gateway needs on every request. `Debug` masks the two secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCredentials {
    /// IMS access token, sent as `Authorization: Bearer …`.
    pub access_token: Secret,
    /// API key (client id), sent as `x-api-key`.
    pub api_key: Secret,
    /// IMS org id, sent as `x-gw-ims-org-id`.
    pub org_id: String,
    /// Sandbox name, sent as `x-sandbox-name`.
    pub sandbox: String,
    /// OAuth Server-to-Server: the access token is exchanged at IMS with the API key as client
    /// id and refreshed before it expires ([`PlatformCredentials::fresh`]).
    pub oauth: Option<super::ims::OAuthClient>,
}

/// The file keys accepted for each credential (upper-case env names and lower-case short names).
const KEYS: [(&str, &str); 7] = [
    (ENV_ACCESS_TOKEN, "access_token"),
    (ENV_API_KEY, "api_key"),
    (ENV_ORG_ID, "org_id"),
    (ENV_SANDBOX, "sandbox"),
    (ENV_CLIENT_SECRET, "client_secret"),
    (ENV_SCOPES, "scopes"),
    (ENV_IMS_URL, "ims_url"),
];

impl PlatformCredentials {
    /// No credentials, for a dry run, which plans requests and sends none: a request made with
    /// them is refused by Platform (an empty token and API key).
    pub fn none() -> Self {
        PlatformCredentials {
            access_token: Secret::new(String::new()),
            api_key: Secret::new(String::new()),
            org_id: String::new(),
            sandbox: String::new(),
            oauth: None,
        }
    }

    /// Reads `AEP_ACCESS_TOKEN`, `AEP_API_KEY`, `AEP_ORG_ID`, `AEP_SANDBOX`.
    pub fn from_env() -> Result<Self, UploadError> {
        Self::from_lookup("environment variable", |k| std::env::var(k).ok())
    }

    /// Reads a file holding either a JSON object or `KEY=value` lines (`#` comments, optional
    /// `export ` and quotes). Keys are the environment variable names (`AEP_ACCESS_TOKEN`, …) or
    /// their short forms (`access_token`, `api_key`, `org_id`, `sandbox`).
    pub fn from_file(path: &Path) -> Result<Self, UploadError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            UploadError::Credentials(format!("cannot read {}: {e}", path.display()))
        })?;
        let map = parse_file(&text).map_err(|reason| {
            UploadError::Credentials(format!("{} is not valid: {reason}", path.display()))
        })?;
        let what = format!("key in {}", path.display());
        Self::from_lookup(&what, |k| {
            let short = KEYS.iter().find(|(env, _)| *env == k).map(|(_, s)| *s);
            map.get(k)
                .or_else(|| short.and_then(|s| map.get(s)))
                .cloned()
        })
    }

    /// Builds credentials from a lookup by environment variable name; `what` names the source in
    /// errors ("environment variable", "key in creds.env").
    pub fn from_lookup(
        what: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, UploadError> {
        // What is wrong with `k`, as a reason; wrapped in `UploadError::Credentials` once.
        let reason = |k: &str| -> Result<String, String> {
            match get(k) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Some(_) => Err(format!("{what} {k} is empty")),
                None => Err(format!(
                    "{what} {k} is not set (credentials are read from the environment or a credentials file, never from the command line)"
                )),
            }
        };
        let value = |k: &str| reason(k).map_err(UploadError::Credentials);
        let optional = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let oauth = optional(ENV_CLIENT_SECRET).map(|secret| super::ims::OAuthClient {
            client_secret: Secret::new(secret),
            scopes: optional(ENV_SCOPES).unwrap_or_else(|| super::ims::DEFAULT_SCOPES.into()),
            ims_url: optional(ENV_IMS_URL).unwrap_or_else(|| super::ims::DEFAULT_IMS_URL.into()),
        });
        let access_token = match (&oauth, optional(ENV_ACCESS_TOKEN)) {
            // With a client secret the token is exchanged; one given too is used first.
            (Some(_), token) => Secret::new(token.unwrap_or_default()),
            (None, _) => Secret::new(reason(ENV_ACCESS_TOKEN).map_err(|e| {
                UploadError::Credentials(format!(
                    "{e}; or give {ENV_CLIENT_SECRET} (OAuth Server-to-Server) to have tokens exchanged and refreshed"
                ))
            })?),
        };
        Ok(PlatformCredentials {
            access_token,
            api_key: Secret::new(value(ENV_API_KEY)?),
            org_id: value(ENV_ORG_ID)?,
            sandbox: value(ENV_SANDBOX)?,
            oauth,
        })
    }

    /// The credentials with a valid access token: as they are for a static token, else with
    /// the token exchanged at IMS (cached per process and exchanged again before it expires).
    pub async fn fresh(&self) -> Result<PlatformCredentials, UploadError> {
        let Some(oauth) = &self.oauth else {
            return Ok(self.clone());
        };
        Ok(PlatformCredentials {
            access_token: oauth.access_token(&self.api_key).await?,
            ..self.clone()
        })
    }

    /// `text` with both secrets replaced by their masked forms (for Platform's error messages).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let secret = self.oauth.as_ref().map(|o| &o.client_secret);
        for s in [Some(&self.access_token), Some(&self.api_key), secret]
            .into_iter()
            .flatten()
        {
            if !s.expose().is_empty() {
                out = out.replace(s.expose(), "****");
            }
        }
        out
    }
}

fn parse_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| format!("JSON: line {}", e.line()))?;
        let obj = v.as_object().ok_or("JSON: not an object")?;
        return Ok(obj
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect());
    }
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        // Never echo the line: it may hold a secret.
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {} is not KEY=value", i + 1))?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        map.insert(k.trim().to_string(), v.to_string());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_style_and_json_files() {
        let m = parse_file("# c\nexport AEP_ACCESS_TOKEN=\"tok en\"\nAEP_API_KEY='k'\norg_id=O@AdobeOrg\nsandbox = prod\n").unwrap();
        assert_eq!(m["AEP_ACCESS_TOKEN"], "tok en");
        assert_eq!(m["AEP_API_KEY"], "k");
        assert_eq!(m["sandbox"], "prod");
        let m = parse_file(r#"{"access_token":"t","AEP_API_KEY":"k"}"#).unwrap();
        assert_eq!(m["access_token"], "t");
        let e = parse_file("AEP_ACCESS_TOKEN supersecret").unwrap_err();
        assert!(!e.contains("supersecret"));
    }

    #[test]
    fn lookup_names_the_missing_variable() {
        let e = PlatformCredentials::from_lookup("environment variable", |k| {
            (k != ENV_SANDBOX).then(|| "v".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("AEP_SANDBOX"), "{e}");
    }
}
