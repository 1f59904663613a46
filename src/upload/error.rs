//! The upload's error type. No variant ever holds a secret: messages name the environment
//! variable or file key to check, and Platform's response texts are scrubbed of the credentials.

/// Everything that can stop an upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Credentials could not be read (names the variable or file key, never a value).
    #[error("Platform credentials: {0}")]
    Credentials(String),
    /// The configuration cannot be used.
    #[error("upload configuration: {0}")]
    Config(String),
    /// The batch directory or its manifest cannot be used.
    #[error("batch {dir}: {reason}")]
    Batch {
        /// The batch directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// The batch breaks one of Platform's limits; found locally, before any request.
    #[error("batch {batch_id} cannot be ingested{}: {limit}", .file.as_ref().map(|f| format!(" (file {f})")).unwrap_or_default())]
    Limit {
        /// The local batch id.
        batch_id: String,
        /// The offending file, when one is to blame.
        file: Option<String>,
        /// The limit broken, in words.
        limit: String,
    },
    /// The batch was already ingested successfully; re-sending needs `replay`.
    #[error("batch {batch_id} was already ingested into Platform as batch {platform_batch_id} (status {status}); refusing to ingest it twice — re-send it on purpose with replay, which replaces that Platform batch")]
    AlreadyUploaded {
        /// The local batch id.
        batch_id: String,
        /// The Platform batch that holds it.
        platform_batch_id: String,
        /// Its final status.
        status: String,
    },
    /// Adobe IMS could not be reached, or failed (5xx, 429), exchanging OAuth credentials for
    /// a token: retry later.
    #[error("the OAuth exchange at {url} for client id {client_id} failed: {reason} — IMS did not answer; retry later")]
    ImsUnavailable {
        /// The token endpoint.
        url: String,
        /// The client id, masked.
        client_id: String,
        /// What happened, in words.
        reason: String,
        /// The transport's error, when there was one (its causes: refused, timed out, …).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// HTTP 401: the access token.
    #[error("{endpoint} failed: HTTP 401 Unauthorized: {message} — check the IMS access token (AEP_ACCESS_TOKEN / access_token): it is expired or invalid; generate a new one")]
    Unauthorized {
        /// `METHOD /path`.
        endpoint: String,
        /// Platform's message (scrubbed).
        message: String,
    },
    /// HTTP 403: the API key, org or sandbox.
    #[error("{endpoint} failed: HTTP 403 Forbidden: {message} — check the API key (AEP_API_KEY / x-api-key), the org id {org_id} (AEP_ORG_ID / x-gw-ims-org-id) and the sandbox {sandbox} (AEP_SANDBOX / x-sandbox-name): the key must belong to that org and have permission on that sandbox and dataset")]
    Forbidden {
        /// `METHOD /path`.
        endpoint: String,
        /// Platform's message (scrubbed).
        message: String,
        /// The org id sent (not a secret).
        org_id: String,
        /// The sandbox sent (not a secret).
        sandbox: String,
    },
    /// Any other final (non-retried) HTTP error.
    #[error("{endpoint} failed: HTTP {status}: {message}")]
    Http {
        /// `METHOD /path`.
        endpoint: String,
        /// The status.
        status: u16,
        /// Platform's message (scrubbed).
        message: String,
    },
    /// A retryable failure persisted through every attempt.
    #[error("{endpoint} failed after {attempts} attempts{}: {last_error}; the upload state is saved, run the upload again to resume", .last_status.map(|s| format!(" (last status HTTP {s})")).unwrap_or_default())]
    RetriesExhausted {
        /// `METHOD /path`.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// The last status, `None` after a network error.
        last_status: Option<u16>,
        /// The last failure, described.
        last_error: String,
    },
    /// A 2xx response that is not what the API documents.
    #[error("{endpoint} returned an unexpected response: {message}")]
    InvalidResponse {
        /// `METHOD /path`.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
    /// The batch did not reach a final status in time (it is still recorded; polling resumes).
    #[error("Platform batch {platform_batch_id} did not reach a final status within {waited_secs}s (last status {last_status}); run the upload again to keep polling")]
    PollTimeout {
        /// The Platform batch.
        platform_batch_id: String,
        /// The last status seen.
        last_status: String,
        /// How long was waited.
        waited_secs: u64,
    },
    /// A local file operation failed.
    #[error("{action} {path}: {reason}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
}

pub(crate) fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> UploadError {
    let path = path.display().to_string();
    move |e| UploadError::Io {
        action,
        path,
        reason: e.to_string(),
    }
}

impl UploadError {
    /// Whether the caller should fix its input or configuration (credentials, a batch that is
    /// not there, a refused request) rather than retry later (transport failures, Platform
    /// not answering, a local file that cannot be read).
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            UploadError::Http { .. }
                | UploadError::ImsUnavailable { .. }
                | UploadError::RetriesExhausted { .. }
                | UploadError::PollTimeout { .. }
                | UploadError::InvalidResponse { .. }
                | UploadError::Io { .. }
        )
    }
}
