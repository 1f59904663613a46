//! The Stripe client of an account: the settings it was added with, under a command's or a
//! process's overrides. The runner, the CLI and the console all build their clients here.

use crate::catalog::Account;
use crate::source::{resolve_base_url, ClientConfig};
use crate::Secret;

/// Overrides of an account's stored API settings (flags of a command, options of a process).
#[derive(Debug, Clone, Default)]
pub struct ApiOverrides {
    /// API base URL (Stripe, the simulator, or a stub); default: the account's, else Stripe's.
    pub base_url: Option<String>,
    /// Request budget per second; default: the account's, else Stripe's for the key's mode.
    pub rate: Option<f64>,
    /// Request budget per second and endpoint; default: the account's, else Stripe's 25.
    pub endpoint_rate: Option<f64>,
    /// Connected account (`Stripe-Account`); default: the account's, else the key's own.
    pub stripe_account: Option<String>,
    /// `Stripe-Version` to pin; default: the engine's.
    pub stripe_version: Option<String>,
    /// Retries of a failed request; default: the client's.
    pub max_retries: Option<u32>,
}

impl ApiOverrides {
    /// The base URL: the override, else the account's, else Stripe's.
    pub fn base_url_for(&self, account: Option<&Account>) -> String {
        resolve_base_url(
            self.base_url.as_deref(),
            account.and_then(|a| a.base_url.as_deref()),
        )
    }

    /// The client configuration for `key`: each override, else what `account` was added with.
    pub fn client_config(&self, key: Secret, account: Option<&Account>) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.base_url_for(account), key);
        cfg.requests_per_sec = self.rate.or(account.and_then(|a| a.rate));
        cfg.endpoint_requests_per_sec =
            self.endpoint_rate.or(account.and_then(|a| a.endpoint_rate));
        cfg.stripe_account = self
            .stripe_account
            .clone()
            .or(account.and_then(|a| a.stripe_account.clone()));
        if let Some(v) = &self.stripe_version {
            cfg.stripe_version = v.clone();
        }
        if let Some(n) = self.max_retries {
            cfg.max_retries = n;
        }
        cfg
    }
}
