//! `stripe-xdm sql`: which mirror and batches a query runs over.

use std::path::Path;

use arrow::array::RecordBatch;

use super::{AppError, Result};
use crate::catalog::Catalog;
use crate::inspect;
use crate::runner::{self, RunnerConfig};

/// Runs read-only `sql` over a one-off run's output folder `out` (`out/mirror/<resource>`,
/// `out/<dataset>/batches`), or over the mirror of `account` (default: the catalog's only
/// account) and the batches of its dataflows' datasets under the home's data folder.
///
/// `stripe_account` picks the mirror of a connected account (`<home>/mirror/<account>/<acct_…>`)
/// and the batches of the dataflows that read it; by default it is the account's own connected
/// account when it has one, as for its runs.
pub async fn query(
    cat: Option<&Catalog>,
    account: Option<&str>,
    stripe_account: Option<&str>,
    out: Option<&Path>,
    sql: &str,
) -> Result<Vec<RecordBatch>> {
    let (mirror_root, dirs) = match (out, cat) {
        (Some(out), _) => (out.join("mirror"), inspect::batch_dirs_under(out)),
        (None, Some(cat)) => {
            let account = match account {
                Some(name) => cat.account(name)?,
                None => cat.account(&only_account(cat)?)?,
            };
            let connected = stripe_account
                .map(str::to_string)
                .or_else(|| account.stripe_account.clone());
            let root = runner::mirror_root(cat.home(), &account.name, connected.as_deref());
            let cfg = RunnerConfig::new(cat.home());
            let mut datasets: Vec<String> = cat
                .list_dataflows()?
                .into_iter()
                .filter(|f| {
                    f.account == account.name && runner::connected_account(f, &account) == connected
                })
                .map(|f| f.dataset)
                .collect();
            datasets.sort();
            datasets.dedup();
            let dirs: Vec<_> = datasets
                .iter()
                .flat_map(|d| inspect::batch_dirs_of(&cfg.out_dir.join(d)).unwrap_or_default())
                .collect();
            if let Some(asked) = stripe_account.filter(|_| dirs.is_empty() && !root.exists()) {
                return Err(unknown_connected(cat, &account, asked)?);
            }
            (root, dirs)
        }
        (None, None) => {
            return Err(AppError::Invalid(
                "sql needs a catalog or an output folder (--out DIR)".into(),
            ))
        }
    };
    Ok(inspect::sql(&mirror_root, &dirs, sql).await?)
}

/// Why `--stripe-account` finds nothing: a connected account the account neither has nor reads
/// through, or one whose dataflows have not run yet.
fn unknown_connected(
    cat: &Catalog,
    account: &crate::catalog::Account,
    asked: &str,
) -> Result<AppError> {
    let mut known: Vec<String> = cat
        .list_dataflows()?
        .iter()
        .filter(|f| f.account == account.name)
        .filter_map(|f| runner::connected_account(f, account))
        .chain(account.stripe_account.clone())
        .collect();
    known.sort();
    known.dedup();
    if known.iter().any(|k| k == asked) {
        return Ok(AppError::Invalid(format!(
            "connected account {asked} of account \"{}\" has no mirror yet: run one of its dataflows first",
            account.name
        )));
    }
    let known = match known.is_empty() {
        true => "none".to_string(),
        false => known.join(", "),
    };
    Ok(AppError::Invalid(format!(
        "account \"{}\" has no mirror or dataflow of connected account {asked} (its connected accounts: {known})",
        account.name
    )))
}

/// The catalog's account when it has exactly one.
fn only_account(cat: &Catalog) -> Result<String> {
    let accounts = cat.list_accounts()?;
    match accounts.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(AppError::Invalid("no account in the catalog: add one (`accounts add`) and run a dataflow, or pass --out DIR of a one-off run".into())),
        many => Err(AppError::Invalid(format!(
            "several accounts ({}): choose one with --account",
            many.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
