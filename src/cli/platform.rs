//! `stripe-xdm schema export` and `stripe-xdm datasets push`: the XDM schemas rebuilt in
//! Platform's Schema Registry, and a Platform dataset made on them.

use std::path::PathBuf;

use clap::Args;
use stripe_xdm::app;
use stripe_xdm::catalog::Catalog;
use stripe_xdm::upload::registry;
use stripe_xdm::upload::PlatformCredentials;
use stripe_xdm::Resource;

use super::dataflows::app_err;
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// Options of `schema export`.
#[derive(Debug, Args)]
pub struct SchemaExportArgs {
    /// A resource (its built-in schema, `sql/<resource>.xdm.json`) or an XDM schema file.
    pub schema: String,
    /// Tenant id for `${tenant}`.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    pub tenant: String,
    /// Mark the schema for Real-Time Customer Profile (`meta:immutableTags: ["union"]`).
    #[arg(long)]
    pub profile: bool,
}

/// `stripe-xdm schema …`
#[derive(Debug, clap::Subcommand)]
pub enum SchemaCommand {
    /// Print the Schema Registry payloads that rebuild an XDM schema in Platform: the custom
    /// class where needed, the field group with the tenant fields, the schema, its identity
    /// descriptors. Ids Platform assigns are placeholders ({CLASS_ID}, {FIELD_GROUP_ID},
    /// {SCHEMA_ID}); `datasets push` sends them for real.
    Export(SchemaExportArgs),
}

/// `schema export`.
pub fn schema_export(a: SchemaExportArgs) -> Result<u8> {
    let text = match a.schema.parse::<Resource>() {
        Ok(r) => stripe_xdm::defaults::xdm_schema_json(r).to_string(),
        Err(_) => std::fs::read_to_string(&a.schema).map_err(|e| {
            CliError::usage(format!(
                "{:?} is neither a resource (charges, subscriptions, refunds, balance_transactions, customers, prices) nor a readable schema file: {e}",
                a.schema
            ))
        })?,
    };
    let text = stripe_xdm::map::substitute_tenant(&text, &a.tenant);
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("{}: not JSON: {e}", a.schema)))?;
    let p = registry::payloads(&json, a.profile).map_err(CliError::usage)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&p.to_json()).expect("JSON")
    );
    Ok(0)
}

/// Options of `datasets push`.
#[derive(Debug, Args)]
pub struct DatasetPushArgs {
    /// The dataset (its XDM schema and Profile toggle).
    pub name: String,
    /// The Platform dataset's name (default: the dataset's).
    #[arg(long)]
    pub platform_name: Option<String>,
    /// Credentials file (as for `upload`). Default: the AEP_* environment variables.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Platform base URL.
    #[arg(long, default_value = stripe_xdm::upload::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `datasets push`: schema (class, field group, schema, descriptors) and dataset, made once.
pub async fn dataset_push(cat: &mut Catalog, a: DatasetPushArgs) -> Result<u8> {
    let credentials = match &a.credentials_file {
        Some(path) => PlatformCredentials::from_file(path),
        None => PlatformCredentials::from_env(),
    }
    .map_err(CliError::usage)?;
    let (name, pushed) = app::platform::push_dataset(
        cat,
        &a.name,
        a.platform_name.as_deref(),
        credentials,
        &a.base_url,
    )
    .await
    .map_err(app_err)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "dataset": a.name,
                "class_id": pushed.class_id,
                "field_group_id": pushed.field_group_id,
                "schema_id": pushed.schema_id,
                "dataset_id": pushed.dataset_id,
                "created": pushed.created,
            })
        );
    } else {
        if let Some(c) = &pushed.class_id {
            println!("class:        {c}");
        }
        println!("field group:  {}", pushed.field_group_id);
        println!("schema:       {}", pushed.schema_id);
        println!("dataset:      {} ({name})", pushed.dataset_id);
        if pushed.created.is_empty() {
            println!("(everything existed already: nothing created)");
        } else {
            println!("created:      {}", pushed.created.join(", "));
        }
    }
    Ok(0)
}
