//! Explicit Arrow schemas of the six resources, written from Stripe's OpenAPI component schemas
//! (API version 2023-08-16, plus fields added since that the decoder keeps when present).
//!
//! A schema is described once as a tree of [`Kind`]s; the same tree drives the Arrow schema and the
//! decoder, so the two cannot drift apart.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::Resource;

/// How one JSON field of a Stripe object is decoded.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A 64-bit integer (minor-unit amounts, counts). Stripe integers exceed `i32`.
    Int,
    /// A JSON number with decimals (`exchange_rate`, `application_fee_percent`).
    Float,
    /// `true` / `false`.
    Bool,
    /// A string (enums are strings too: Stripe adds values without notice).
    Str,
    /// A unix-seconds timestamp, decoded as `Timestamp(Second, "UTC")`.
    Ts,
    /// An expandable reference: the id string, whether Stripe sent `"cus_…"` or an expanded object.
    Id,
    /// A `metadata`-style map of string → string.
    Meta,
    /// Any JSON value kept verbatim as its JSON text (polymorphic sub-objects).
    Json,
    /// A nested object.
    Obj(&'static [(&'static str, Kind)]),
    /// A JSON array whose items are of the given kind.
    List(&'static Kind),
}

impl Kind {
    /// The Arrow type this kind decodes into.
    pub fn data_type(&self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Str | Kind::Id | Kind::Json => DataType::Utf8,
            Kind::Ts => DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            Kind::Meta => DataType::Map(Arc::new(map_entries_field()), false),
            Kind::Obj(fields) => DataType::Struct(struct_fields(fields)),
            Kind::List(item) => {
                DataType::List(Arc::new(Field::new("item", item.data_type(), true)))
            }
        }
    }
}

/// The `entries` field of a metadata map: non-null string keys, nullable string values.
pub(crate) fn map_entries_field() -> Field {
    Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    )
}

pub(crate) fn struct_fields(fields: &[(&str, Kind)]) -> Fields {
    fields
        .iter()
        .map(|(name, kind)| Field::new(*name, kind.data_type(), true))
        .collect()
}

use Kind::*;

const ADDRESS: Kind = Obj(&[
    ("city", Str),
    ("country", Str),
    ("line1", Str),
    ("line2", Str),
    ("postal_code", Str),
    ("state", Str),
]);

const SHIPPING: Kind = Obj(&[
    ("address", ADDRESS),
    ("carrier", Str),
    ("name", Str),
    ("phone", Str),
    ("tracking_number", Str),
]);

const CARD_DETAILS: Kind = Obj(&[
    ("brand", Str),
    (
        "checks",
        Obj(&[
            ("address_line1_check", Str),
            ("address_postal_code_check", Str),
            ("cvc_check", Str),
        ]),
    ),
    ("country", Str),
    ("exp_month", Int),
    ("exp_year", Int),
    ("fingerprint", Str),
    ("funding", Str),
    ("installments", Json),
    ("last4", Str),
    ("mandate", Str),
    ("network", Str),
    ("three_d_secure", Json),
    ("wallet", Obj(&[("type", Str)])),
]);

const CHARGE: &[(&str, Kind)] = &[
    ("id", Str),
    ("object", Str),
    ("amount", Int),
    ("amount_captured", Int),
    ("amount_refunded", Int),
    ("application", Id),
    ("application_fee", Id),
    ("application_fee_amount", Int),
    ("balance_transaction", Id),
    (
        "billing_details",
        Obj(&[
            ("address", ADDRESS),
            ("email", Str),
            ("name", Str),
            ("phone", Str),
        ]),
    ),
    ("calculated_statement_descriptor", Str),
    ("captured", Bool),
    ("created", Ts),
    ("currency", Str),
    ("customer", Id),
    ("description", Str),
    ("disputed", Bool),
    ("failure_balance_transaction", Id),
    ("failure_code", Str),
    ("failure_message", Str),
    (
        "fraud_details",
        Obj(&[("stripe_report", Str), ("user_report", Str)]),
    ),
    ("invoice", Id),
    ("livemode", Bool),
    ("metadata", Meta),
    ("on_behalf_of", Id),
    (
        "outcome",
        Obj(&[
            ("network_status", Str),
            ("reason", Str),
            ("risk_level", Str),
            ("risk_score", Int),
            ("rule", Id),
            ("seller_message", Str),
            ("type", Str),
        ]),
    ),
    ("paid", Bool),
    ("payment_intent", Id),
    ("payment_method", Str),
    (
        "payment_method_details",
        Obj(&[("type", Str), ("card", CARD_DETAILS)]),
    ),
    ("receipt_email", Str),
    ("receipt_number", Str),
    ("receipt_url", Str),
    ("refunded", Bool),
    ("review", Id),
    ("shipping", SHIPPING),
    ("source_transfer", Id),
    ("statement_descriptor", Str),
    ("statement_descriptor_suffix", Str),
    ("status", Str),
    (
        "transfer_data",
        Obj(&[("amount", Int), ("destination", Id)]),
    ),
    ("transfer_group", Str),
];

const RECURRING: Kind = Obj(&[
    ("aggregate_usage", Str),
    ("interval", Str),
    ("interval_count", Int),
    ("trial_period_days", Int),
    ("usage_type", Str),
]);

const PRICE: &[(&str, Kind)] = &[
    ("id", Str),
    ("object", Str),
    ("active", Bool),
    ("billing_scheme", Str),
    ("created", Ts),
    ("currency", Str),
    (
        "custom_unit_amount",
        Obj(&[("maximum", Int), ("minimum", Int), ("preset", Int)]),
    ),
    ("livemode", Bool),
    ("lookup_key", Str),
    ("metadata", Meta),
    ("nickname", Str),
    ("product", Id),
    ("recurring", RECURRING),
    ("tax_behavior", Str),
    ("tiers_mode", Str),
    (
        "transform_quantity",
        Obj(&[("divide_by", Int), ("round", Str)]),
    ),
    ("type", Str),
    ("unit_amount", Int),
    ("unit_amount_decimal", Str),
];

const PLAN: Kind = Obj(&[
    ("id", Str),
    ("active", Bool),
    ("amount", Int),
    ("amount_decimal", Str),
    ("billing_scheme", Str),
    ("currency", Str),
    ("interval", Str),
    ("interval_count", Int),
    ("nickname", Str),
    ("product", Id),
    ("usage_type", Str),
]);

const SUBSCRIPTION_ITEM: Kind = Obj(&[
    ("id", Str),
    ("created", Ts),
    ("metadata", Meta),
    ("plan", PLAN),
    ("price", Obj(PRICE)),
    ("quantity", Int),
    ("subscription", Str),
    ("current_period_start", Ts),
    ("current_period_end", Ts),
]);

const SUBSCRIPTION: &[(&str, Kind)] = &[
    ("id", Str),
    ("object", Str),
    ("application", Id),
    ("application_fee_percent", Float),
    (
        "automatic_tax",
        Obj(&[("enabled", Bool), ("liability", Json)]),
    ),
    ("billing_cycle_anchor", Ts),
    ("billing_thresholds", Json),
    ("cancel_at", Ts),
    ("cancel_at_period_end", Bool),
    ("canceled_at", Ts),
    (
        "cancellation_details",
        Obj(&[("comment", Str), ("feedback", Str), ("reason", Str)]),
    ),
    ("collection_method", Str),
    ("created", Ts),
    ("currency", Str),
    ("current_period_end", Ts),
    ("current_period_start", Ts),
    ("customer", Id),
    ("days_until_due", Int),
    ("default_payment_method", Id),
    ("default_source", Id),
    ("description", Str),
    ("discount", Json),
    ("ended_at", Ts),
    (
        "items",
        Obj(&[
            ("data", List(&SUBSCRIPTION_ITEM)),
            ("has_more", Bool),
            ("total_count", Int),
        ]),
    ),
    ("latest_invoice", Id),
    ("livemode", Bool),
    ("metadata", Meta),
    ("next_pending_invoice_item_invoice", Ts),
    ("on_behalf_of", Id),
    (
        "pause_collection",
        Obj(&[("behavior", Str), ("resumes_at", Ts)]),
    ),
    ("pending_setup_intent", Id),
    ("quantity", Int),
    ("schedule", Id),
    ("start_date", Ts),
    ("status", Str),
    ("test_clock", Id),
    ("trial_end", Ts),
    ("trial_start", Ts),
];

const REFUND: &[(&str, Kind)] = &[
    ("id", Str),
    ("object", Str),
    ("amount", Int),
    ("balance_transaction", Id),
    ("charge", Id),
    ("created", Ts),
    ("currency", Str),
    ("description", Str),
    ("destination_details", Obj(&[("type", Str), ("card", Json)])),
    ("failure_balance_transaction", Id),
    ("failure_reason", Str),
    ("metadata", Meta),
    ("payment_intent", Id),
    ("reason", Str),
    ("receipt_number", Str),
    ("source_transfer_reversal", Id),
    ("status", Str),
    ("transfer_reversal", Id),
];

const FEE: Kind = Obj(&[
    ("amount", Int),
    ("application", Str),
    ("currency", Str),
    ("description", Str),
    ("type", Str),
]);

const BALANCE_TRANSACTION: &[(&str, Kind)] = &[
    ("id", Str),
    ("object", Str),
    ("amount", Int),
    ("available_on", Ts),
    ("balance_type", Str),
    ("created", Ts),
    ("currency", Str),
    ("description", Str),
    ("exchange_rate", Float),
    ("fee", Int),
    ("fee_details", List(&FEE)),
    ("net", Int),
    ("reporting_category", Str),
    ("source", Id),
    ("status", Str),
    ("type", Str),
];

const CUSTOMER: &[(&str, Kind)] = &[
    ("id", Str),
    ("object", Str),
    ("address", ADDRESS),
    ("balance", Int),
    ("created", Ts),
    ("currency", Str),
    ("default_source", Id),
    ("delinquent", Bool),
    ("description", Str),
    ("discount", Json),
    ("email", Str),
    ("invoice_prefix", Str),
    (
        "invoice_settings",
        Obj(&[
            (
                "custom_fields",
                List(&Obj(&[("name", Str), ("value", Str)])),
            ),
            ("default_payment_method", Id),
            ("footer", Str),
            ("rendering_options", Json),
        ]),
    ),
    ("livemode", Bool),
    ("metadata", Meta),
    ("name", Str),
    ("next_invoice_sequence", Int),
    ("phone", Str),
    ("preferred_locales", List(&Str)),
    ("shipping", SHIPPING),
    ("tax_exempt", Str),
    ("test_clock", Id),
];

/// The top-level fields of a resource's objects.
pub fn fields(resource: Resource) -> &'static [(&'static str, Kind)] {
    match resource {
        Resource::Charges => CHARGE,
        Resource::Subscriptions => SUBSCRIPTION,
        Resource::Refunds => REFUND,
        Resource::BalanceTransactions => BALANCE_TRANSACTION,
        Resource::Customers => CUSTOMER,
        Resource::Prices => PRICE,
    }
}

/// The Arrow schema of a resource's source table (the table the mapping SQL reads).
pub fn arrow_schema(resource: Resource) -> SchemaRef {
    Arc::new(Schema::new(struct_fields(fields(resource))))
}

/// The source structure of a resource as an indented tree (`amount: integer (Int64)` …), as the
/// Platform preview shows it.
pub fn schema_tree(resource: Resource) -> String {
    let mut out = format!("{} (table `{}`)\n", resource.object_name(), resource.path());
    tree(fields(resource), 1, &mut out);
    out
}

fn describe(kind: &Kind) -> &'static str {
    match kind {
        Int => "integer",
        Float => "number",
        Bool => "boolean",
        Str => "string",
        Ts => "timestamp (unix seconds)",
        Id => "id (expandable)",
        Meta => "map<string, string>",
        Json => "json text",
        Obj(_) => "object",
        List(_) => "array",
    }
}

fn tree(fields: &[(&str, Kind)], depth: usize, out: &mut String) {
    for (name, kind) in fields {
        let pad = "  ".repeat(depth);
        out.push_str(&format!("{pad}{name}: {}\n", describe(kind)));
        match kind {
            Obj(children) => tree(children, depth + 1, out),
            List(Obj(children)) => tree(children, depth + 1, out),
            List(item) => out.push_str(&format!("{pad}  item: {}\n", describe(item))),
            _ => {}
        }
    }
}

/// The resource's schema without its [`Kind::Json`] fields: what a plain arrow-json reader can
/// decode from the same pages. Used as the raw-decode baseline in benchmarks.
pub fn baseline_schema(resource: Resource) -> SchemaRef {
    fn keep(fields: &[(&str, Kind)]) -> Fields {
        fields
            .iter()
            .filter(|(_, k)| !matches!(k, Json))
            .map(|(name, kind)| {
                let dt = match kind {
                    Obj(children) => DataType::Struct(keep(children)),
                    List(Obj(children)) => DataType::List(Arc::new(Field::new(
                        "item",
                        DataType::Struct(keep(children)),
                        true,
                    ))),
                    other => other.data_type(),
                };
                Field::new(*name, dt, true)
            })
            .collect()
    }
    Arc::new(Schema::new(keep(fields(resource))))
}

/// The fields of `records` (JSON objects of `resource`) that the decoded schema does not hold,
/// as dotted paths (`payment_method_details.card.extended_authorization`; `[]` marks array
/// items) with how many records carry each. They are still in `_raw`, reachable with the JSON
/// functions. Sub-objects kept whole (`metadata`, JSON text) are not looked into.
pub fn undecoded_fields<'a>(
    resource: Resource,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> std::collections::BTreeMap<String, usize> {
    fn walk(
        value: &serde_json::Value,
        fields: &[(&str, Kind)],
        prefix: &str,
        seen: &mut std::collections::BTreeSet<String>,
    ) {
        let Some(obj) = value.as_object() else {
            return;
        };
        for (key, v) in obj {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match fields.iter().find(|(n, _)| n == key) {
                None => {
                    seen.insert(path);
                }
                Some((_, kind)) => walk_kind(v, kind, &path, seen),
            }
        }
    }
    fn walk_kind(
        v: &serde_json::Value,
        kind: &Kind,
        path: &str,
        seen: &mut std::collections::BTreeSet<String>,
    ) {
        match kind {
            Kind::Obj(children) => walk(v, children, path, seen),
            Kind::List(item) => {
                for x in v.as_array().into_iter().flatten() {
                    walk_kind(x, item, &format!("{path}[]"), seen);
                }
            }
            _ => {}
        }
    }
    let mut counts = std::collections::BTreeMap::new();
    for raw in records {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        walk(&v, fields(resource), "", &mut seen);
        for p in seen {
            *counts.entry(p).or_insert(0) += 1;
        }
    }
    counts
}
