//! Accounts: adding one (its key tested before anything is stored), testing it, and the Stripe
//! client a command uses for it.

use super::{AppError, Result};
use crate::catalog::{Account, Catalog};
use crate::source::StripeClient;
use crate::Secret;

pub use crate::runner::ApiOverrides;

/// A Stripe client for `key`, with `api`'s overrides over the settings `account` was added with.
pub fn client_for(
    key: Secret,
    account: Option<&Account>,
    api: &ApiOverrides,
) -> Result<StripeClient> {
    StripeClient::new(api.client_config(key, account))
        .map_err(|source| AppError::stripe("the Stripe client", source))
}

/// The stored account `name` and a client for it.
pub fn stored_client(
    cat: &Catalog,
    name: &str,
    api: &ApiOverrides,
) -> Result<(Account, StripeClient)> {
    let key = cat.account_key(name)?;
    let account = cat.account(name)?;
    let client = client_for(key, Some(&account), api)?;
    Ok((account, client))
}

/// A client for a connection test, which someone waits for: two retries, a few seconds of
/// backoff and a 20 s timeout (a run's client retries for minutes), so an unreachable
/// `--base-url` is said within seconds.
fn test_client(key: Secret, account: Option<&Account>, api: &ApiOverrides) -> Result<StripeClient> {
    let mut cfg = api.client_config(key, account);
    cfg.max_retries = 2;
    cfg.backoff_max = std::time::Duration::from_secs(2);
    cfg.timeout = cfg.timeout.min(std::time::Duration::from_secs(20));
    StripeClient::new(cfg).map_err(|source| AppError::stripe("the Stripe client", source))
}

/// Tests a key: `GET /v1/account`; the Stripe account id it belongs to.
async fn test_key(client: &StripeClient, name: &str, base_url: &str) -> Result<String> {
    let info = client.get_account().await.map_err(|source| {
        AppError::stripe(
            format!("account {name:?}: the connection test (GET /v1/account at {base_url}) failed"),
            source,
        )
    })?;
    Ok(info
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string())
}

/// Tests the stored account `name`; the Stripe account id its key belongs to.
pub async fn test_account(cat: &Catalog, name: &str, api: &ApiOverrides) -> Result<String> {
    let key = cat.account_key(name)?;
    let account = cat.account(name)?;
    let client = test_client(key, Some(&account), api)?;
    test_key(&client, name, &api.base_url_for(Some(&account))).await
}

/// An account to add.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Unique name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The Stripe secret or restricted key.
    pub key: Secret,
    /// Where it is read from, and at what budgets; remembered for later commands.
    pub api: ApiOverrides,
}

/// Adds an account: its key is tested first (nothing is stored for a key that does not work),
/// then stored with the API settings it was tested with. Returns the account and the Stripe
/// account id the key belongs to.
pub async fn add_account(cat: &mut Catalog, new: NewAccount) -> Result<(Account, String)> {
    if cat.account(&new.name).is_ok() {
        return Err(AppError::Invalid(format!(
            "account {:?} already exists",
            new.name
        )));
    }
    // The budgets a user gives are bounded as flags are, before anything is tried or stored.
    for (flag, rate) in [
        ("--rate", new.api.rate),
        ("--endpoint-rate", new.api.endpoint_rate),
    ] {
        if let Some(r) = rate {
            crate::source::rate::check_rate_flag(r)
                .map_err(|e| AppError::Invalid(format!("account {:?}: {flag}: {e}", new.name)))?;
        }
    }
    let client = test_client(new.key.clone(), None, &new.api)?;
    let stripe_id = test_key(&client, &new.name, &new.api.base_url_for(None)).await?;
    cat.add_account(&new.name, new.description.as_deref(), &new.key)?;
    // Nothing half-made stays: a refused setting removes the account again.
    let rest = (|| -> Result<Account> {
        if let Some(url) = &new.api.base_url {
            cat.set_account_base_url(&new.name, Some(url.trim_end_matches('/')))?;
        }
        if let Some(id) = &new.api.stripe_account {
            cat.set_account_stripe_account(&new.name, Some(id))?;
        }
        if new.api.rate.is_some() || new.api.endpoint_rate.is_some() {
            cat.set_account_rates(&new.name, new.api.rate, new.api.endpoint_rate)?;
        }
        Ok(cat.account(&new.name)?)
    })();
    match rest {
        Ok(account) => Ok((account, stripe_id)),
        Err(e) => {
            let _ = cat.remove_account(&new.name);
            Err(e)
        }
    }
}
