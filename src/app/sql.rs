//! `stripe-xdm sql`: which mirror and batches a query runs over.

use std::path::Path;

use arrow::array::RecordBatch;

use super::{AppError, Result};
use crate::catalog::Catalog;
use crate::inspect;
use crate::runner::RunnerConfig;

/// Runs read-only `sql` over a one-off run's output folder `out` (`out/mirror/<resource>`,
/// `out/<dataset>/batches`), or over the mirror of `account` (default: the catalog's only
/// account) and the batches under the home's data folder.
pub async fn query(
    cat: Option<&Catalog>,
    account: Option<&str>,
    out: Option<&Path>,
    sql: &str,
) -> Result<Vec<RecordBatch>> {
    let (mirror_root, out) = match (out, cat) {
        (Some(out), _) => (out.join("mirror"), out.to_path_buf()),
        (None, Some(cat)) => {
            let account = match account {
                Some(name) => cat.account(name)?.name,
                None => only_account(cat)?,
            };
            let cfg = RunnerConfig::new(cat.home());
            (cat.home().join("mirror").join(account), cfg.out_dir)
        }
        (None, None) => {
            return Err(AppError::Invalid(
                "sql needs a catalog or an output folder (--out DIR)".into(),
            ))
        }
    };
    let dirs = inspect::batch_dirs_under(&out);
    Ok(inspect::sql(&mirror_root, &dirs, sql).await?)
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
