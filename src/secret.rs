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
    /// last four characters; a value not shaped like a Stripe key shows only `…` and its last four.
    /// Short values are fully masked.
    pub fn masked(&self) -> String {
        let v = &self.0;
        let n = v.chars().count();
        if n < 12 {
            return "****".to_string();
        }
        let prefix = STRIPE_KEY_PREFIXES
            .iter()
            .find(|p| v.starts_with(**p))
            .copied()
            .unwrap_or("");
        let last: String = v.chars().skip(n - 4).collect();
        format!("{prefix}…{last}")
    }

    /// `live` or `test` for a value shaped like a Stripe key (`sk_live_…`, `rk_test_…`), else
    /// `None`.
    pub fn stripe_mode(&self) -> Option<&'static str> {
        let prefix = STRIPE_KEY_PREFIXES
            .iter()
            .find(|p| self.0.starts_with(**p))?;
        Some(if prefix.ends_with("live_") {
            "live"
        } else {
            "test"
        })
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

/// The most characters [`mask_url`] shows.
const MASKED_URL_CHARS: usize = 200;

/// A URL as it may be shown, logged or stored (webhook targets, API base URLs): `scheme://host[:port]/…`, without user info,
/// path, query or fragment (an explicit default port is dropped): webhook paths often carry the
/// token (Slack's `/services/T…/B…/<secret>`), so only a bare `/` is shown as is. Anything else
/// (not an `http(s)` URL with a host) shows as its part before the first `/`, `?` or `#`, with
/// its scheme kept and anything up to the last `@` removed, and `/…` when a path followed.
pub fn mask_url(url: &str) -> String {
    let url = url.trim();
    let masked = |path: &str| {
        if path.is_empty() || path == "/" {
            "/"
        } else {
            "/…"
        }
    };
    if let Ok(u) = reqwest::Url::parse(url) {
        if let ("http" | "https", Some(host)) = (u.scheme(), u.host_str()) {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            return format!("{}://{host}{port}{}", u.scheme(), masked(u.path()));
        }
    }
    let head = url.split(['?', '#']).next().unwrap_or("");
    let (scheme, rest) = match head.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), head),
    };
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], masked(&rest[i..])),
        None => (rest, ""),
    };
    cut(&format!("{scheme}{host}{path}"), MASKED_URL_CHARS)
}

/// At most `max` characters of `text`, trimmed, with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let t = text.trim();
    if t.chars().count() <= max {
        t.to_string()
    } else {
        let mut s: String = t.chars().take(max).collect();
        s.push('…');
        s
    }
}

/// The prefixes of Stripe's API keys, up to and including the mode.
const STRIPE_KEY_PREFIXES: [&str; 6] = [
    "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_shows_a_stripe_prefix_and_four_characters_at_most() {
        let key = Secret::new("sk_test_51AbCdEf0123456789");
        assert_eq!(key.masked(), "sk_test_…6789");
        assert_eq!(key.stripe_mode(), Some("test"));
        assert_eq!(
            Secret::new("rk_live_51AbCdEf0123456789").stripe_mode(),
            Some("live")
        );
        let other = Secret::new("hunter2secretvalue");
        assert_eq!(other.masked(), "…alue");
        assert_eq!(other.stripe_mode(), None);
        assert_eq!(Secret::new("short").masked(), "****");
    }

    #[test]
    fn mask_url_keeps_scheme_host_port_only() {
        assert_eq!(
            mask_url("https://bob:hunter2@hooks.example.com:8443/a/b?token=x#frag"),
            "https://hooks.example.com:8443/…"
        );
        assert_eq!(
            mask_url("https://hooks.example.com:443/x"),
            "https://hooks.example.com/…"
        );
        assert_eq!(mask_url("http://127.0.0.1:9"), "http://127.0.0.1:9/");
        assert_eq!(mask_url("not a url?secret=1"), "not a url");
        assert_eq!(mask_url("user:pw@host/p?q"), "host/…");
        assert_eq!(mask_url("ftp://u:pw@host/p?q"), "ftp://host/…");
    }
}
