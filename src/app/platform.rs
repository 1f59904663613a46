//! Platform's side of a dataset: its XDM schema rebuilt in the Schema Registry and a Catalog
//! dataset on it, made once and recorded on the local dataset.

use super::{AppError, Result};
use crate::catalog::Catalog;
use crate::upload::registry::{self, Pushed};
use crate::upload::{PlatformClient, PlatformCredentials, UploadConfig};

/// Creates dataset `name`'s schema (class where needed, field group, schema, identity
/// descriptors) and a Platform dataset named `platform_name` (default: the dataset's) at
/// `base_url`, finding what a previous push made; records the Platform ids on the dataset.
pub async fn push_dataset(
    cat: &mut Catalog,
    name: &str,
    platform_name: Option<&str>,
    credentials: PlatformCredentials,
    base_url: &str,
) -> Result<(String, Pushed)> {
    let ds = cat.dataset(name)?;
    let json: serde_json::Value = serde_json::from_str(&ds.schema_json)
        .map_err(|e| AppError::Invalid(format!("dataset {name:?}: schema is not JSON: {e}")))?;
    let payloads = registry::payloads(&json, ds.profile_enabled)?;
    let credentials = credentials.fresh().await?;
    let mut cfg = UploadConfig::new(String::new(), credentials);
    cfg.base_url = base_url.trim_end_matches('/').to_string();
    let client = PlatformClient::new(&cfg)?;
    let platform_name = platform_name.map_or_else(|| ds.name.clone(), str::to_string);
    let pushed = registry::push(
        &client,
        &payloads,
        &platform_name,
        ds.profile_enabled,
        ds.platform_dataset_id.as_deref(),
    )
    .await?;
    cat.set_dataset_platform(&ds.name, &pushed.schema_id, &pushed.dataset_id)?;
    Ok((platform_name, pushed))
}
