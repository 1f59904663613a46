//! Accounts: a name, a description and a Stripe key. The key goes to
//! `<home>/secrets/<name>.key` (0600); the catalog holds only its masked form.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, Row};
use serde::Serialize;

use super::{check_name, unix_now, Catalog, CatalogError, SqlContext, SECRETS_DIR};
use crate::secret::Secret;

/// An account as listed: never the key, only its masked form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    /// Unique name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The key, masked (`sk_test_…4242`).
    pub key_masked: String,
    /// The API base URL it was added with (`None`: Stripe's).
    pub base_url: Option<String>,
    /// The request budget per second it was added with (`None`: Stripe's default for the
    /// key's mode); every later command with this account uses it unless told otherwise.
    pub rate: Option<f64>,
    /// The per-endpoint request budget it was added with (`None`: Stripe's 25/s).
    pub endpoint_rate: Option<f64>,
    /// The Stripe connected account (`acct_…`) its requests go through by default
    /// (`Stripe-Account`); `None`: the key's own account.
    pub stripe_account: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Account {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
        Ok(Account {
            name: r.get("name")?,
            description: r.get("description")?,
            key_masked: r.get("key_masked")?,
            base_url: r.get("base_url")?,
            rate: r.get("rate")?,
            endpoint_rate: r.get("endpoint_rate")?,
            stripe_account: r.get("stripe_account")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

const COLUMNS: &str = "name, description, key_masked, base_url, rate, endpoint_rate, \
                       stripe_account, created_at, updated_at";

impl Catalog {
    /// Sets the API base URL later commands use for the account (`None`: Stripe's).
    pub fn set_account_base_url(
        &mut self,
        name: &str,
        base_url: Option<&str>,
    ) -> Result<Account, CatalogError> {
        self.update_account(name, "base_url = ?2", &[&base_url])
    }

    /// Runs `UPDATE accounts SET <set>, updated_at = now WHERE name = ?1` with `params` as ?2…
    /// and returns the account as it now is.
    fn update_account(
        &mut self,
        name: &str,
        set: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Account, CatalogError> {
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&name];
        values.extend_from_slice(params);
        let now = unix_now();
        values.push(&now);
        let sql = format!(
            "UPDATE accounts SET {set}, updated_at = ?{} WHERE name = ?1",
            values.len()
        );
        let n = self
            .conn
            .execute(&sql, values.as_slice())
            .ctx(format!("update account {name:?}"))?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                what: "account",
                name: name.to_string(),
            });
        }
        self.account(name)
    }

    /// Remembers the request budgets an account was added with (`None` clears one).
    pub fn set_account_rates(
        &mut self,
        name: &str,
        rate: Option<f64>,
        endpoint_rate: Option<f64>,
    ) -> Result<Account, CatalogError> {
        self.update_account(
            name,
            "rate = ?2, endpoint_rate = ?3",
            &[&rate, &endpoint_rate],
        )
    }

    /// Sets the connected account an account's requests go through by default.
    pub fn set_account_stripe_account(
        &mut self,
        name: &str,
        stripe_account: Option<&str>,
    ) -> Result<Account, CatalogError> {
        if let Some(a) = stripe_account {
            check_connected_account(a)?;
        }
        self.update_account(name, "stripe_account = ?2", &[&stripe_account])
    }

    /// Adds an account. The key is written to its own private file; the catalog gets the masked
    /// form. (Testing the key against Stripe is the caller's job, before this call.)
    pub fn add_account(
        &mut self,
        name: &str,
        description: Option<&str>,
        key: &Secret,
    ) -> Result<Account, CatalogError> {
        check_name("account", name)?;
        let file_name = format!("{name}.key");
        let key_path = self.secrets_dir()?.join(&file_name);
        let now = unix_now();
        let tx = self.write_tx()?;
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM accounts WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )
            .ctx(format!("look up account {name:?}"))?;
        if exists {
            return Err(CatalogError::Exists {
                what: "account",
                name: name.to_string(),
            });
        }
        write_private(&key_path, key)?;
        let inserted = tx
            .execute(
                "INSERT INTO accounts (name, description, key_masked, key_file, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                (name, description, key.masked(), &file_name, now),
            )
            .ctx(format!("insert account {name:?}"))
            .and_then(|_| tx.commit().ctx(format!("commit account {name:?}")));
        if let Err(e) = inserted {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        self.account(name)
    }

    /// One account.
    pub fn account(&self, name: &str) -> Result<Account, CatalogError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM accounts WHERE name = ?1"),
                [name],
                Account::from_row,
            )
            .optional()
            .ctx(format!("read account {name:?}"))?
            .ok_or_else(|| CatalogError::NotFound {
                what: "account",
                name: name.to_string(),
            })
    }

    /// All accounts, by name.
    pub fn list_accounts(&self) -> Result<Vec<Account>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM accounts ORDER BY name"))
            .ctx("list accounts")?;
        let rows = stmt.query_map([], Account::from_row).ctx("list accounts")?;
        rows.collect::<Result<_, _>>().ctx("list accounts")
    }

    /// The account's key, read from its private file (for the one place that sends it).
    pub fn account_key(&self, name: &str) -> Result<Secret, CatalogError> {
        let file: String = self
            .conn
            .query_row(
                "SELECT key_file FROM accounts WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .ctx(format!("read account {name:?}"))?
            .ok_or_else(|| CatalogError::NotFound {
                what: "account",
                name: name.to_string(),
            })?;
        let path = self.home.join(SECRETS_DIR).join(file);
        Secret::from_file(&path).map_err(|e| CatalogError::Io {
            context: format!("cannot read the key of account {name:?} from"),
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Names of the dataflows using an account.
    pub fn dataflows_using_account(&self, name: &str) -> Result<Vec<String>, CatalogError> {
        names_where(&self.conn, "account", name)
    }

    /// Removes an account, refused (with their names) while dataflows use it. Its key file is
    /// deleted after the row.
    pub fn remove_account(&mut self, name: &str) -> Result<(), CatalogError> {
        let tx = self.write_tx()?;
        let file: Option<String> = tx
            .query_row(
                "SELECT key_file FROM accounts WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .ctx(format!("read account {name:?}"))?;
        let Some(file) = file else {
            return Err(CatalogError::NotFound {
                what: "account",
                name: name.to_string(),
            });
        };
        let users = names_where(&tx, "account", name)?;
        if !users.is_empty() {
            return Err(CatalogError::AccountInUse {
                account: name.to_string(),
                dataflows: users,
            });
        }
        tx.execute("DELETE FROM accounts WHERE name = ?1", [name])
            .ctx(format!("delete account {name:?}"))?;
        tx.commit()
            .ctx(format!("commit removal of account {name:?}"))?;
        let path = self.home.join(SECRETS_DIR).join(file);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CatalogError::Io {
                context: "account removed, but cannot delete its key file".into(),
                path: path.display().to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// `<home>/secrets`, created with mode 0700.
    fn secrets_dir(&self) -> Result<PathBuf, CatalogError> {
        let dir = self.home.join(SECRETS_DIR);
        let io = |source| CatalogError::Io {
            context: "cannot create the secrets folder".into(),
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(dir)
    }
}

/// Names of dataflows whose `column` equals `value`.
pub(super) fn names_where(
    conn: &rusqlite::Connection,
    column: &str,
    value: &str,
) -> Result<Vec<String>, CatalogError> {
    let ctx = format!("find dataflows using {column} {value:?}");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT name FROM dataflows WHERE {column} = ?1 ORDER BY name"
        ))
        .ctx(ctx.clone())?;
    let rows = stmt.query_map([value], |r| r.get(0)).ctx(ctx.clone())?;
    rows.collect::<Result<_, _>>().ctx(ctx)
}

/// Writes the key to a new file readable only by the owner (temp file + rename).
fn write_private(path: &Path, key: &Secret) -> Result<(), CatalogError> {
    let io = |source| CatalogError::Io {
        context: "cannot write the key file".into(),
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension(format!("key.tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        f.write_all(key.expose().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Whether `id` is shaped like a Stripe account id: `acct_` and letters or digits.
pub fn is_account_id(id: &str) -> bool {
    id.strip_prefix("acct_")
        .is_some_and(|b| !b.is_empty() && b.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Refuses what is not a Stripe account id (`acct_` and letters or digits).
pub(super) fn check_connected_account(id: &str) -> Result<(), CatalogError> {
    if is_account_id(id) {
        Ok(())
    } else {
        Err(CatalogError::InvalidName {
            what: "connected account",
            name: id.to_string(),
            reason: "a Stripe account id is acct_ followed by letters and digits",
        })
    }
}
