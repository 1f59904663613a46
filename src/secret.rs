//! Secrets (Stripe keys, Platform tokens) as a type that never prints its value.

use std::fmt;
use std::path::Path;

/// A secret string. `Debug` and `Display` print only a masked form (`sk_test_…4242`),
/// so a secret can travel through errors and logs without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value, trimming surrounding whitespace (keys read from files end in `\n`).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().trim().to_string())
    }

    /// Reads a secret from an environment variable; the error names the variable, never the value.
    pub fn from_env(var: &str) -> Result<Self, SecretError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v)),
            Ok(_) => Err(SecretError::Empty(format!("environment variable {var}"))),
            Err(_) => Err(SecretError::MissingEnv(var.to_string())),
        }
    }

    /// Reads a secret from a file (its first line, trimmed).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let line = text.lines().next().unwrap_or("").trim();
        if line.is_empty() {
            return Err(SecretError::Empty(format!("file {}", path.display())));
        }
        Ok(Secret::new(line))
    }

    /// The plain value, for the one place that must send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form: the key's prefix up to and including the mode (`sk_test_`), `…`, and the
    /// last four characters. Short values are fully masked.
    pub fn masked(&self) -> String {
        let v = &self.0;
        let n = v.chars().count();
        if n < 12 {
            return "****".to_string();
        }
        let prefix_len = [
            "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
        ]
        .iter()
        .find(|p| v.starts_with(**p))
        .map(|p| p.len())
        .unwrap_or(3);
        let last: String = v.chars().skip(n - 4).collect();
        format!("{}…{}", &v[..prefix_len], last)
    }

    /// True for live-mode keys (`sk_live_`, `rk_live_`).
    pub fn is_live(&self) -> bool {
        self.0.starts_with("sk_live_") || self.0.starts_with("rk_live_")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set: export the key in it (the key is never taken from the command line)")]
    MissingEnv(String),
    /// The source exists but is empty.
    #[error("{0} is empty: it must hold the key")]
    Empty(String),
    /// The key file could not be read.
    #[error("cannot read key file {path}: {reason}")]
    File {
        /// The file's path.
        path: String,
        /// The OS error.
        reason: String,
    },
}
