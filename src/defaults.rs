//! The built-in default mappings and XDM schemas (`sql/<resource>.sql`, `sql/<resource>.xdm.json`).
//!
//! Both are embedded in the binary with the tenant placeholder `${tenant}` left in place;
//! callers substitute the tenant id ([`crate::map::substitute_tenant`]) before use.
//! The mapping's output columns (names and nesting) match the XDM schema's properties.

use crate::Resource;

/// The default mapping SQL of a resource (`sql/<resource>.sql`), with `${tenant}` unsubstituted.
pub fn mapping_sql(resource: Resource) -> &'static str {
    match resource {
        Resource::Charges => include_str!("../sql/charges.sql"),
        Resource::Subscriptions => include_str!("../sql/subscriptions.sql"),
        Resource::Refunds => include_str!("../sql/refunds.sql"),
        Resource::BalanceTransactions => include_str!("../sql/balance_transactions.sql"),
        Resource::Customers => include_str!("../sql/customers.sql"),
        Resource::Prices => include_str!("../sql/prices.sql"),
    }
}

/// The default target XDM schema of a resource (`sql/<resource>.xdm.json`), with `${tenant}`
/// unsubstituted.
pub fn xdm_schema_json(resource: Resource) -> &'static str {
    match resource {
        Resource::Charges => include_str!("../sql/charges.xdm.json"),
        Resource::Subscriptions => include_str!("../sql/subscriptions.xdm.json"),
        Resource::Refunds => include_str!("../sql/refunds.xdm.json"),
        Resource::BalanceTransactions => include_str!("../sql/balance_transactions.xdm.json"),
        Resource::Customers => include_str!("../sql/customers.xdm.json"),
        Resource::Prices => include_str!("../sql/prices.xdm.json"),
    }
}
