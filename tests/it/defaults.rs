//! Tests for the built-in default mappings and XDM schemas (`sql/<resource>.sql`,
//! `sql/<resource>.xdm.json`): they compile against the source tables, their output fits the
//! schema, and they map Stripe's own fixtures (both API generations) without a rejected row.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{DataType, Fields};
use bytes::Bytes;
use serde_json::Value;
use stripe_xdm::decode::decode_records;
use stripe_xdm::defaults::{mapping_sql, xdm_schema_json};
use stripe_xdm::map::{substitute_tenant, Mapper, Mapping, DEFAULT_TENANT, TENANT_PLACEHOLDER};
use stripe_xdm::xdm::{validate, Behavior, XdmSchema};
use stripe_xdm::Resource;

const TENANT: &str = "acme";

fn schema_text(resource: Resource, tenant: &str) -> String {
    substitute_tenant(xdm_schema_json(resource), tenant)
}

fn schema_json(resource: Resource) -> Value {
    serde_json::from_str(&schema_text(resource, TENANT))
        .unwrap_or_else(|e| panic!("sql/{}.xdm.json is not JSON: {e}", resource.path()))
}

async fn mapper(resource: Resource) -> Mapper {
    Mapper::new(resource, Mapping::builtin(resource, TENANT))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every output column, recursively, must be a property of the JSON schema object `props`.
fn columns_in_schema(fields: &Fields, obj: &Value, path: &str, out: &mut Vec<String>) {
    let props = obj["properties"].as_object();
    for f in fields {
        let here = format!("{path}{}", f.name());
        let Some(def) = props.and_then(|p| p.get(f.name())) else {
            out.push(format!("{here}: not in the XDM schema"));
            continue;
        };
        column_fits(f.data_type(), def, &here, out);
    }
}

fn column_fits(dt: &DataType, def: &Value, here: &str, out: &mut Vec<String>) {
    match dt {
        DataType::Struct(children) => {
            if def["type"] != "object" || def.get("properties").is_none() {
                out.push(format!("{here}: a struct, but the schema has {def}"));
            } else {
                columns_in_schema(children, def, &format!("{here}."), out);
            }
        }
        DataType::List(item) => {
            if def["type"] != "array" {
                out.push(format!("{here}: a list, but the schema has no array"));
            } else {
                column_fits(item.data_type(), &def["items"], &format!("{here}[]"), out);
            }
        }
        DataType::Map(..) => {
            if def["meta:xdmType"] != "map" {
                out.push(format!("{here}: a map, but the schema has no map"));
            }
        }
        _ => {
            if def["type"] == "object" || def["type"] == "array" {
                out.push(format!(
                    "{here}: a scalar, but the schema has {}",
                    def["type"]
                ));
            }
        }
    }
}

/// Every `required` property (at any depth of the produced objects) must be produced.
fn required_produced(fields: &Fields, obj: &Value, path: &str, out: &mut Vec<String>) {
    for r in obj["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        if fields.find(r).is_none() {
            out.push(format!("{path}{r}: required but never produced"));
        }
    }
    for f in fields {
        if let (DataType::Struct(children), Some(def)) =
            (f.data_type(), obj["properties"].get(f.name()))
        {
            required_produced(children, def, &format!("{path}{}.", f.name()), out);
        }
    }
}

/// Walks every property definition of a schema, with its name and dotted path.
fn walk<'a>(obj: &'a Value, path: &str, f: &mut dyn FnMut(&str, &str, &'a Value)) {
    if let Some(props) = obj["properties"].as_object() {
        for (name, def) in props {
            let here = format!("{path}{name}");
            f(name, &here, def);
            walk(def, &format!("{here}."), f);
            if def["type"] == "array" {
                walk(&def["items"], &format!("{here}[]."), f);
            }
        }
    }
}

#[test]
fn tenant_placeholder_is_fully_substituted() {
    for r in Resource::ALL {
        assert!(
            mapping_sql(r).contains("\"_${tenant}\""),
            "{r}: SQL without the tenant object"
        );
        assert!(
            xdm_schema_json(r).contains("\"_${tenant}\""),
            "{r}: schema without the tenant object"
        );
        let sql = Mapping::builtin(r, TENANT).sql;
        let schema = schema_text(r, TENANT);
        for (what, text) in [("sql", &sql), ("xdm.json", &schema)] {
            assert!(
                !text.contains(TENANT_PLACEHOLDER),
                "{r}.{what}: ${{tenant}} left"
            );
            assert!(
                !text.contains("${"),
                "{r}.{what}: a ${{…}} placeholder left"
            );
            assert!(text.contains("\"_acme\""), "{r}.{what}: no _acme object");
        }
    }
}

#[tokio::test]
async fn defaults_compile_and_fit_their_schemas() {
    for r in Resource::ALL {
        let mapper = mapper(r).await;
        let out = mapper.output_schema();
        let json = schema_json(r);
        let mut problems = Vec::new();
        columns_in_schema(out.fields(), &json, "", &mut problems);
        required_produced(out.fields(), &json, "", &mut problems);
        assert!(problems.is_empty(), "{r}: {problems:#?}");

        let schema = XdmSchema::from_json_str(&schema_text(r, TENANT))
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        let problems = schema.check_output(&out);
        assert!(problems.is_empty(), "{r}: {problems:#?}");

        // The tenant object is the only custom root field and holds one object per resource.
        let names: Vec<&str> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names.first(), Some(&"_id"), "{r}");
        assert_eq!(names.last(), Some(&"_acme"), "{r}");
    }
}

#[tokio::test]
async fn default_tenant_is_tenant() {
    let mapper = Mapper::new(
        Resource::Charges,
        Mapping::builtin(Resource::Charges, DEFAULT_TENANT),
    )
    .await
    .unwrap();
    assert!(mapper.output_schema().field_with_name("_tenant").is_ok());
    let schema = XdmSchema::from_json_str(&schema_text(Resource::Charges, DEFAULT_TENANT)).unwrap();
    assert_eq!(schema.tenant(), Some("tenant"));
    assert!(schema.check_output(&mapper.output_schema()).is_empty());
}

#[test]
fn schemas_follow_platform_conventions() {
    for r in Resource::ALL {
        let json = schema_json(r);
        let id = format!(
            "https://ns.adobe.com/acme/schemas/stripe-{}",
            r.path().replace('_', "-")
        );
        assert_eq!(json["$id"], id.as_str(), "{r}");
        assert_eq!(json["type"], "object", "{r}");
        assert!(json["title"].is_string(), "{r}");
        let schema = XdmSchema::from_json_str(&schema_text(r, TENANT)).unwrap();
        let (class, behavior, required): (&str, &str, &[&str]) = match r {
            Resource::Charges | Resource::Refunds | Resource::BalanceTransactions => (
                "https://ns.adobe.com/xdm/context/experienceevent",
                "time-series",
                &["_id", "timestamp"],
            ),
            Resource::Customers => (
                "https://ns.adobe.com/xdm/context/profile",
                "record",
                &["_id"],
            ),
            // `…/xdm/data/record` is a behavior, not a class: a custom class of the tenant
            // that extends it.
            Resource::Subscriptions | Resource::Prices => (
                if r == Resource::Subscriptions {
                    "https://ns.adobe.com/acme/classes/stripe-subscriptions"
                } else {
                    "https://ns.adobe.com/acme/classes/stripe-prices"
                },
                "record",
                &["_id"],
            ),
        };
        assert_eq!(json["meta:class"], class, "{r}");
        if matches!(r, Resource::Subscriptions | Resource::Prices) {
            assert_eq!(
                json["meta:extends"],
                serde_json::json!(["https://ns.adobe.com/xdm/data/record"]),
                "{r}"
            );
        }
        assert_eq!(json["meta:behaviorType"], behavior, "{r}");
        assert_eq!(json["required"], serde_json::json!(required), "{r}");
        let expected = if behavior == "time-series" {
            Behavior::TimeSeries
        } else {
            Behavior::Record
        };
        assert_eq!(schema.behavior(), expected, "{r}");
        assert_eq!(json["properties"]["_id"]["format"], "uri-reference", "{r}");
        if behavior == "time-series" {
            assert_eq!(
                json["properties"]["timestamp"]["format"], "date-time",
                "{r}"
            );
            assert_eq!(json["properties"]["eventType"]["type"], "string", "{r}");
        }
        walk(&json, "", &mut |name, path, def| {
            assert!(def["title"].is_string(), "{r}: {path} has no title");
            assert!(
                def["description"].is_string(),
                "{r}: {path} has no description"
            );
            assert!(def["type"].is_string(), "{r}: {path} has no type");
            if path.contains('.') {
                assert!(
                    !name.starts_with('_'),
                    "{r}: custom field {path} starts with _"
                );
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{r}: {path} is not camelCase"
                );
            }
            if def["type"] == "integer" {
                assert!(
                    matches!(def["meta:xdmType"].as_str(), Some("long" | "int")),
                    "{r}: {path} has no meta:xdmType"
                );
            }
        });
        for d in json["descriptors"].as_array().into_iter().flatten() {
            assert_eq!(d["xdm:sourceSchema"], id.as_str(), "{r}");
            assert_eq!(d["xdm:property"], "xdm:code", "{r}");
            assert_eq!(d["xdm:sourceVersion"], 1, "{r}");
        }
    }
}

#[test]
fn customers_have_an_optional_primary_email_identity() {
    let schema = XdmSchema::from_json_str(&schema_text(Resource::Customers, TENANT)).unwrap();
    let primary = schema.primary_identity().expect("a primary identity");
    assert_eq!(primary.namespace, "Email");
    assert_eq!(primary.path, "_acme.customers.email");
    let email = schema.field("_acme.customers.email").unwrap();
    assert!(
        !email.required(),
        "many customers have no email: it must not be required"
    );
    let ids: Vec<(&str, &str, bool)> = schema
        .identities()
        .iter()
        .map(|i| (i.path.as_str(), i.namespace.as_str(), i.primary))
        .collect();
    assert!(
        ids.contains(&("_acme.customers.id", "StripeCustomerId", false)),
        "{ids:?}"
    );
    // Nothing inside the tenant object is required: any absent Stripe field would reject rows.
    for f in schema.all_fields() {
        if f.path().starts_with("_acme") {
            assert!(!f.required(), "{} is required", f.path());
        }
    }
}

// ------------------------------------------------------------------ running the mappings

/// Stripe's own fixture objects, copied into the repository (`fixtures/stripe-fixtures.json`).
fn fixtures() -> Option<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stripe-fixtures.json");
    let text =
        std::fs::read_to_string(&path).expect("fixtures/stripe-fixtures.json is in the repo");
    Some(serde_json::from_str(&text).expect("fixtures are JSON"))
}

/// Decodes JSON objects as one batch of `resource` records (no decode rejects allowed).
fn decode(resource: Resource, objects: &[Value]) -> RecordBatch {
    let mut body = Vec::new();
    let mut ranges = Vec::new();
    for o in objects {
        let start = body.len();
        body.extend(serde_json::to_vec(o).unwrap());
        ranges.push(start..body.len());
        body.push(b'\n');
    }
    let decoded = decode_records(resource, &Bytes::from(body), &ranges);
    assert!(
        decoded.rejected.is_empty(),
        "{resource}: {:?}",
        decoded.rejected
    );
    decoded.batch
}

/// Maps and validates; every row must be mapped and accepted. Returns the mapped batch.
async fn map_and_validate(resource: Resource, objects: &[Value]) -> RecordBatch {
    let batch = decode(resource, objects);
    let mapped = mapper(resource).await.map(batch).await.unwrap();
    assert!(mapped.failed.is_empty(), "{resource}: {:?}", mapped.failed);
    assert_eq!(mapped.batch.num_rows(), objects.len(), "{resource}");
    let schema = XdmSchema::from_json_str(&schema_text(resource, TENANT)).unwrap();
    let v = validate(&mapped.batch, &schema).unwrap_or_else(|e| panic!("{resource}: {e}"));
    assert!(v.rejected.is_empty(), "{resource}: {:#?}", v.rejected);
    assert!(v.warnings.is_empty(), "{resource}: {:#?}", v.warnings);
    assert_eq!(v.accepted.num_rows(), objects.len());
    mapped.batch
}

fn tenant_object(batch: &RecordBatch, name: &str) -> StructArray {
    let t = batch.column_by_name("_acme").unwrap().as_struct();
    t.column_by_name(name).unwrap().as_struct().clone()
}

fn tenant_key(r: Resource) -> &'static str {
    match r {
        Resource::BalanceTransactions => "balanceTransactions",
        other => other.path(),
    }
}

#[tokio::test]
async fn defaults_map_stripe_fixtures() {
    let Some(fx) = fixtures() else { return };
    for set in ["resources", "resources_2023_09_12"] {
        for r in Resource::ALL {
            let obj = fx[set][r.object_name()].clone();
            assert!(obj.is_object(), "{set}.{}", r.object_name());
            let batch = map_and_validate(r, std::slice::from_ref(&obj)).await;
            let id = batch.column_by_name("_id").unwrap().as_string::<i32>();
            assert_eq!(id.value(0), obj["id"].as_str().unwrap(), "{set} {r}");
            let inner = tenant_object(&batch, tenant_key(r));
            let inner_id = inner.column_by_name("id").unwrap().as_string::<i32>();
            assert_eq!(inner_id.value(0), obj["id"].as_str().unwrap(), "{set} {r}");
            if let Some(ts) = batch.column_by_name("timestamp") {
                assert!(ts.is_valid(0), "{set} {r}: no timestamp");
            }
        }
    }
}

#[tokio::test]
async fn charge_event_shape() {
    let Some(fx) = fixtures() else { return };
    let mut minimal = fx["resources"]["charge"].clone();
    for k in ["payment_method_details", "outcome", "billing_details"] {
        minimal[k] = Value::Null;
    }
    minimal["status"] = "failed".into();
    let objects = [fx["resources"]["charge"].clone(), minimal];
    let batch = map_and_validate(Resource::Charges, &objects).await;
    let et = batch
        .column_by_name("eventType")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(et.value(0), "stripe.charge.succeeded");
    assert_eq!(et.value(1), "stripe.charge.failed");
    let ch = tenant_object(&batch, "charges");
    let card = ch.column_by_name("card").unwrap().as_struct();
    assert!(card.is_valid(0));
    assert_eq!(
        card.column_by_name("last4")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "4242"
    );
    assert_eq!(
        card.column_by_name("wallet")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "link"
    );
    for name in ["card", "outcome", "billing"] {
        assert!(
            ch.column_by_name(name).unwrap().is_null(1),
            "{name} of a charge without it"
        );
    }
}

#[tokio::test]
async fn subscription_items_become_an_array() {
    let Some(fx) = fixtures() else { return };
    let base = fx["resources"]["subscription"].clone();
    let item = base["items"]["data"][0].clone();
    let with_items = |n: usize| {
        let mut s = base.clone();
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let mut it = item.clone();
                it["id"] = format!("si_{i}").into();
                it["quantity"] = (i as i64 + 1).into();
                it
            })
            .collect();
        s["items"]["data"] = Value::Array(items);
        s
    };
    let mut no_items = base.clone();
    no_items["items"] = Value::Null;
    let objects = [with_items(0), with_items(3), with_items(20), no_items];
    let batch = map_and_validate(Resource::Subscriptions, &objects).await;
    let sub = tenant_object(&batch, "subscriptions");
    let items = sub.column_by_name("items").unwrap().as_list::<i32>();
    let counts = sub
        .column_by_name("itemCount")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(items.value_length(0), 0);
    assert_eq!(items.value_length(1), 3);
    assert_eq!(items.value_length(2), 20);
    assert!(items.is_null(3) || items.value_length(3) == 0);
    assert_eq!(counts.value(1), 3);
    assert_eq!(counts.value(2), 20);
    let second = items.value(1);
    let second = second.as_struct();
    let ids = second.column_by_name("id").unwrap().as_string::<i32>();
    assert_eq!((ids.value(0), ids.value(2)), ("si_0", "si_2"));
    let price = second.column_by_name("priceId").unwrap().as_string::<i32>();
    assert_eq!(price.value(1), item["price"]["id"].as_str().unwrap());
    // Since API 2025-03-31 the billing period lives on the items only.
    let cps = sub.column_by_name("currentPeriodStart").unwrap();
    assert!(
        cps.is_valid(1),
        "current period start taken from the first item"
    );
}

#[tokio::test]
async fn customer_without_email_is_accepted() {
    let Some(fx) = fixtures() else { return };
    let without = fx["resources"]["customer"].clone();
    assert!(without["email"].is_null());
    let mut with = without.clone();
    with["email"] = "jenny.rosen@example.com".into();
    with["preferred_locales"] = serde_json::json!(["en", "fr-CA"]);
    let batch = map_and_validate(Resource::Customers, &[without, with]).await;
    let c = tenant_object(&batch, "customers");
    let email = c.column_by_name("email").unwrap();
    assert!(email.is_null(0));
    assert_eq!(email.as_string::<i32>().value(1), "jenny.rosen@example.com");
    let locales = c
        .column_by_name("preferredLocales")
        .unwrap()
        .as_list::<i32>();
    assert_eq!(locales.value_length(1), 2);
}

#[tokio::test]
async fn one_time_price_has_no_recurring_object() {
    let Some(fx) = fixtures() else { return };
    let mut one_time = fx["resources"]["price"].clone();
    one_time["type"] = "one_time".into();
    one_time["recurring"] = Value::Null;
    let batch = map_and_validate(Resource::Prices, &[one_time]).await;
    let p = tenant_object(&batch, "prices");
    assert!(p.column_by_name("recurring").unwrap().is_null(0));
}

#[tokio::test]
async fn defaults_accept_simulated_data() {
    use stripe_xdm::sim::{SimConfig, Simulator};
    let sim = Simulator::new(SimConfig::default().with_counts(400));
    for r in Resource::ALL {
        let mut body = Vec::new();
        let mut ranges = Vec::new();
        for i in 0..sim.len(r) {
            let start = body.len();
            sim.write_object(r, i, false, &mut body);
            ranges.push(start..body.len());
            body.push(b'\n');
        }
        let decoded = decode_records(r, &Bytes::from(body), &ranges);
        let rows = decoded.batch.num_rows();
        assert!(rows > 300, "{r}: only {rows} decoded");
        let mapped = mapper(r).await.map(decoded.batch).await.unwrap();
        assert!(mapped.failed.is_empty(), "{r}: {:?}", mapped.failed);
        assert_eq!(mapped.batch.num_rows(), rows);
        let schema = XdmSchema::from_json_str(&schema_text(r, TENANT)).unwrap();
        let v = validate(&mapped.batch, &schema).unwrap();
        assert!(
            v.rejected.is_empty(),
            "{r}: {:#?}",
            &v.rejected[..v.rejected.len().min(3)]
        );
        assert!(
            v.warnings.is_empty(),
            "{r}: {:#?}",
            &v.warnings[..v.warnings.len().min(3)]
        );
    }
}

#[tokio::test]
async fn amounts_get_major_units_by_currency_exponent_and_an_upper_case_code() {
    let Some(fx) = fixtures() else { return };
    let cases = [
        ("usd", 1999, 19.99),
        ("jpy", 500, 500.0),
        ("bhd", 12340, 12.34),
    ];
    let objects: Vec<Value> = cases
        .iter()
        .map(|(currency, amount, _)| {
            let mut o = fx["resources"]["charge"].clone();
            o["currency"] = (*currency).into();
            o["amount"] = (*amount).into();
            o["amount_captured"] = (*amount).into();
            o
        })
        .collect();
    let batch = map_and_validate(Resource::Charges, &objects).await;
    let ch = tenant_object(&batch, "charges");
    let code = ch.column_by_name("currencyCode").unwrap();
    let code = arrow::compute::cast(code, &DataType::Utf8).unwrap();
    let major = ch.column_by_name("amountMajor").unwrap();
    let major = major.as_primitive::<arrow::datatypes::Float64Type>();
    let minor = ch.column_by_name("amount").unwrap();
    let minor = arrow::compute::cast(minor, &DataType::Int64).unwrap();
    for (i, (currency, amount, expected)) in cases.iter().enumerate() {
        assert_eq!(
            code.as_string::<i32>().value(i),
            currency.to_uppercase(),
            "{currency}"
        );
        assert_eq!(major.value(i), *expected, "{currency}");
        assert_eq!(
            minor.as_primitive::<arrow::datatypes::Int64Type>().value(i),
            *amount,
            "the minor-unit integer is kept"
        );
    }
}

#[tokio::test]
async fn a_profile_dataset_rejects_rows_without_their_primary_identity() {
    let Some(fx) = fixtures() else { return };
    let without = fx["resources"]["customer"].clone();
    let mut with = without.clone();
    with["email"] = "jenny.rosen@example.com".into();
    let batch = decode(Resource::Customers, &[without, with]);
    let mapped = mapper(Resource::Customers).await.map(batch).await.unwrap();
    let plain = XdmSchema::from_json_str(&schema_text(Resource::Customers, TENANT)).unwrap();
    assert_eq!(validate(&mapped.batch, &plain).unwrap().rejected.len(), 0);
    let profile = plain.for_profile().unwrap();
    assert!(profile.field("_acme.customers.email").unwrap().required());
    let v = validate(&mapped.batch, &profile).unwrap();
    assert_eq!(v.accepted.num_rows(), 1);
    assert_eq!(v.rejected.len(), 1);
    let issue = &v.rejected[0].errors[0];
    assert_eq!(v.rejected[0].row, 0);
    assert_eq!(issue.code, "INGEST-1555-400");
    assert!(
        issue
            .message
            .contains("primary identity _acme.customers.email (Email)"),
        "{}",
        issue.message
    );
    // A schema without a primary identity cannot back a Profile dataset.
    let prices = XdmSchema::from_json_str(&schema_text(Resource::Prices, TENANT)).unwrap();
    let err = prices.for_profile().unwrap_err().to_string();
    assert!(err.contains("no primary identity"), "{err}");
}

#[tokio::test]
async fn default_mappings_fill_the_identity_map() {
    let Some(fx) = fixtures() else { return };
    let without = fx["resources"]["customer"].clone();
    let mut with = without.clone();
    with["email"] = "jenny.rosen@example.com".into();
    let batch = map_and_validate(Resource::Customers, &[without.clone(), with]).await;
    let rows = crate::support::json_rows(std::slice::from_ref(&batch));
    let id = without["id"].as_str().unwrap();
    assert_eq!(
        rows[0]["identityMap"],
        serde_json::json!({"StripeCustomerId": [{"id": id, "primary": false}]})
    );
    assert_eq!(
        rows[1]["identityMap"],
        serde_json::json!({
            "Email": [{"id": "jenny.rosen@example.com", "primary": true}],
            "StripeCustomerId": [{"id": id, "primary": false}]
        })
    );
    let mut guest = fx["resources"]["charge"].clone();
    guest["customer"] = Value::Null;
    guest["billing_details"]["email"] = Value::Null;
    let mut known = fx["resources"]["charge"].clone();
    known["customer"] = "cus_NffrFeUfNV2Hib".into();
    known["billing_details"]["email"] = "jenny.rosen@example.com".into();
    let batch = map_and_validate(Resource::Charges, &[known, guest]).await;
    let rows = crate::support::json_rows(std::slice::from_ref(&batch));
    assert_eq!(
        rows[0]["identityMap"],
        serde_json::json!({
            "StripeCustomerId": [{"id": "cus_NffrFeUfNV2Hib", "primary": true}],
            "Email": [{"id": "jenny.rosen@example.com", "primary": false}]
        })
    );
    assert!(rows[1].get("identityMap").is_none(), "no identity: no map");
}
