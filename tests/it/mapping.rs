//! `mapping import` (Platform mapping sets → SQL) and `mapping check` (a mapping held against
//! its source table and XDM schema).

use arrow::array::RecordBatch;
use bytes::Bytes;
use serde_json::{json, Value};
use stripe_xdm::decode::decode_records;
use stripe_xdm::import::{import_mapping_set, ImportError, Imported};
use stripe_xdm::map::check::{check_mapping, CheckKind, CheckReport};
use stripe_xdm::map::{substitute_tenant, Mapper, Mapping};
use stripe_xdm::sim::{ListParams, SimConfig, Simulator};
use stripe_xdm::source::envelope::scan;
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::Resource;

// ---------------------------------------------------------------------------------------------
// helpers

/// A decoded simulator page of `resource` and the source objects, row by row.
fn page(resource: Resource, limit: u32) -> (RecordBatch, Vec<Value>) {
    let sim = Simulator::new(SimConfig::default());
    let body = sim
        .page_json(
            resource,
            &ListParams {
                limit,
                ..Default::default()
            },
        )
        .expect("page");
    let body = Bytes::from(body);
    let env = scan(&body).expect("envelope");
    let decoded = decode_records(resource, &body, &env.records);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    let objects = decoded
        .sources()
        .map(|s| serde_json::from_slice(s).expect("record JSON"))
        .collect();
    (decoded.source_batch(), objects)
}

/// Imports, substitutes tenant `acme`, runs the mapping over a page: output rows as JSON objects
/// (nulls omitted) and the source objects.
async fn run_imported(
    imported: &Imported,
    resource: Resource,
    limit: u32,
) -> (Vec<Value>, Vec<Value>) {
    let mapping = Mapping {
        sql: substitute_tenant(&imported.sql, "acme"),
        origin: "imported".into(),
    };
    let mapper = Mapper::new(resource, mapping)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.sql));
    let (batch, objects) = page(resource, limit);
    let mapped = mapper.map(batch).await.expect("maps");
    assert!(mapped.failed.is_empty(), "{:?}", mapped.failed);
    assert_eq!(mapped.batch.num_rows(), objects.len());
    (rows_json(&mapped.batch), objects)
}

fn rows_json(batch: &RecordBatch) -> Vec<Value> {
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    w.write(batch).unwrap();
    w.finish().unwrap();
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return vec![json!({}); batch.num_rows()];
    }
    serde_json::from_slice::<Vec<Value>>(&bytes).unwrap()
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg).unwrap_or(&Value::Null);
    }
    cur
}

/// Output value vs source value: absent and null are the same; timestamps come out as text.
fn same(out: &Value, src: &Value) -> bool {
    match (out, src) {
        (Value::Null, Value::Null) => true,
        (Value::String(s), Value::Number(n)) if s.contains('T') || s.contains(' ') => {
            let parsed = chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.timestamp())
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(
                        s.trim_end_matches('Z'),
                        "%Y-%m-%dT%H:%M:%S",
                    )
                    .map(|d| d.and_utc().timestamp())
                });
            parsed.ok() == n.as_i64()
        }
        (Value::Object(o), Value::Object(s)) => o
            .iter()
            .all(|(k, v)| same(v, s.get(k).unwrap_or(&Value::Null))),
        (Value::Object(o), Value::Null) => o.values().all(|v| same(v, &Value::Null)),
        // JSON-text fields (polymorphic objects) come out as their text.
        (Value::String(s), src) if !src.is_string() && serde_json::from_str::<Value>(s).is_ok() => {
            &serde_json::from_str::<Value>(s).unwrap() == src
        }
        // Expanded references come out as their id.
        (Value::String(s), Value::Object(o)) => o.get("id").and_then(Value::as_str) == Some(s),
        (o, s) => o == s,
    }
}

/// The Platform's Stripe sample mapping set (Flow Service tutorial, step 7): leaf mappings plus
/// two object copies, in the sources form (`sourceAttribute` / `destinationXdmPath`).
fn stripe_sample(prefix: &str) -> Value {
    let leaves = [
        "id",
        "refunded",
        "disputed",
        "livemode",
        "captured",
        "paid",
        "status",
        "receipt_url",
        "payment_intent",
        "customer",
        "payment_method",
        "object",
        "amount",
        "amount_captured",
        "amount_refunded",
        "created",
        "currency",
        "calculated_statement_descriptor",
        "balance_transaction",
        "payment_method_details.card.last4",
        "payment_method_details.card.fingerprint",
        "payment_method_details.card.funding",
        "payment_method_details.card.country",
        "payment_method_details.card.exp_year",
        "payment_method_details.card.exp_month",
        "payment_method_details.card.amount_authorized",
        "payment_method_details.card.network",
        "payment_method_details.card.brand",
        "payment_method_details.card.overcapture.maximum_amount_capturable",
        "payment_method_details.card.overcapture.status",
        "payment_method_details.card.network_token.used",
        "payment_method_details.card.incremental_authorization.status",
        "payment_method_details.card.multicapture.status",
        "payment_method_details.card.extended_authorization.status",
        "payment_method_details",
        "outcome",
    ];
    let mappings: Vec<Value> = leaves
        .iter()
        .map(|p| {
            json!({
                "destinationXdmPath": format!("{prefix}.charges_data.{p}"),
                "sourceAttribute": format!("data.{p}"),
                "identity": false,
                "version": 0
            })
        })
        .collect();
    json!({
        "version": 0,
        "xdmSchema": "https://ns.adobe.com/exchangesandboxcharlie/schemas/5f76be8c4e4b847fdac13ca42aa6b596a89a5b91dea48b16",
        "xdmVersion": "1.0",
        "mappings": mappings
    })
}

const NOT_IN_STRIPE_SCHEMA: [&str; 7] = [
    "payment_method_details.card.amount_authorized",
    "payment_method_details.card.overcapture.maximum_amount_capturable",
    "payment_method_details.card.overcapture.status",
    "payment_method_details.card.network_token.used",
    "payment_method_details.card.incremental_authorization.status",
    "payment_method_details.card.multicapture.status",
    "payment_method_details.card.extended_authorization.status",
];

// ---------------------------------------------------------------------------------------------
// import

#[tokio::test]
async fn stripe_sample_mapping_set_imports_and_maps_every_field_from_its_source() {
    let sample = stripe_sample("_{ORG_ID}");
    let imported = import_mapping_set(&sample.to_string(), Resource::Charges).unwrap();
    // Every mapping translates: fields the decoded schema does not have are read from the
    // record's JSON text with the JSON functions.
    assert!(
        imported.untranslated.is_empty(),
        "{:#?}",
        imported.untranslated
    );
    for p in NOT_IN_STRIPE_SCHEMA {
        let args: Vec<String> = p.split('.').map(|s| format!("'{s}'")).collect();
        let call = format!("json_as_text(_raw, {})", args.join(", "));
        assert!(
            imported.sql.contains(&call),
            "{p}: {call}\n{}",
            imported.sql
        );
    }
    // Readable: one field per line with the mapping it comes from, siblings merged.
    let sql = &imported.sql;
    assert!(
        sql.contains("-- mappings[0] ATTRIBUTE data.id -> _{ORG_ID}.charges_data.id"),
        "{sql}"
    );
    assert!(
        sql.contains("'brand', payment_method_details['card']['brand']"),
        "{sql}"
    );
    assert_eq!(
        sql.matches("'charges_data', named_struct(").count(),
        1,
        "{sql}"
    );
    assert!(sql.contains("AS \"_${tenant}\""), "{sql}");
    assert!(sql.contains("(object copy)"), "{sql}");

    let (rows, objects) = run_imported(&imported, Resource::Charges, 5).await;
    assert_eq!(rows.len(), 5);
    let sample_paths: Vec<String> = sample["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sourceAttribute"].as_str().unwrap()["data.".len()..].to_string())
        .collect();
    let mut compared = 0;
    for (row, obj) in rows.iter().zip(&objects) {
        let data = at(row, "_acme.charges_data");
        assert!(data.is_object(), "{row}");
        for p in &sample_paths {
            let (out, src) = (at(data, p), at(obj, p));
            assert!(
                same(out, src),
                "{}: {p}: mapped {out} from {src}",
                obj["id"]
            );
            compared += 1;
        }
        // The object copy brought fields no leaf mapping named.
        assert!(same(
            at(data, "payment_method_details.type"),
            at(obj, "payment_method_details.type")
        ));
        assert!(same(
            at(data, "outcome.risk_level"),
            at(obj, "outcome.risk_level")
        ));
        assert!(same(
            at(data, "payment_method_details.card.checks"),
            at(obj, "payment_method_details.card.checks")
        ));
    }
    assert!(compared > 100);
    // At least one card was actually compared (not only nulls).
    assert!(rows
        .iter()
        .any(|r| at(r, "_acme.charges_data.payment_method_details.card.brand").is_string()));
}

#[tokio::test]
async fn mapping_set_document_form_with_static_expression_and_tenant() {
    let doc = json!({
        "id": "cbb0da769faa48fcb29e026a924ba29d",
        "name": "Demo Mapping Set",
        "inputSchema": {"id": "a167ff2947ff447ebd8bcf7ef6756232", "version": 0},
        "outputSchema": {"schemaRef": {"id": "https://ns.adobe.com/{TENANT_ID}/schemas/6dd1768b", "contentType": "application/vnd.adobe.xed-full+json;version=1"}},
        "mappings": [
            {"sourceType": "ATTRIBUTE", "source": "data.id", "destination": "_id", "name": "Id"},
            {"sourceType": "ATTRIBUTE", "source": "data.created", "destination": "timestamp"},
            {"sourceType": "STATIC", "source": "stripe.charge", "destination": "eventType"},
            {"sourceType": "ATTRIBUTE", "source": "data.amount", "destination": "_{TENANT}.charges_data.amount"},
            {"sourceType": "ATTRIBUTE", "source": "data.currency", "destination": "_{TENANT}.charges_data.currency"},
            {"sourceType": "STATIC", "source": "it's stripe", "destination": "_{TENANT}.charges_data.origin"},
            {"sourceType": "STATIC", "source": 42, "destination": "_{TENANT}.charges_data.answer"},
            {"sourceType": "EXPRESSION", "source": "concat(data.currency, \" \", upper(data.status))", "destination": "_{TENANT}.charges_data.label"},
            {"sourceType": "EXPRESSION", "source": "iif(data.paid, \"paid\", 'unpaid')", "destination": "_{TENANT}.charges_data.paidText"},
            {"sourceType": "EXPRESSION", "source": "data.amount / 100", "destination": "_{TENANT}.charges_data.units"},
            {"sourceType": "EXPRESSION", "source": "data.amount_refunded * 2 + 1", "destination": "_{TENANT}.charges_data.arith"},
            {"sourceType": "EXPRESSION", "source": "data.status == \"succeeded\" && !data.refunded", "destination": "_{TENANT}.charges_data.kept"},
            {"sourceType": "EXPRESSION", "source": "data.status.equalsIgnoreCase(\"SUCCEEDED\") ? \"ok\" : \"ko\"", "destination": "_{TENANT}.charges_data.ok"},
            {"sourceType": "EXPRESSION", "source": "coalesce(data.description, data.currency)", "destination": "_{TENANT}.charges_data.coalesced"},
            {"sourceType": "EXPRESSION", "source": "max(data.amount, data.amount_captured)", "destination": "_{TENANT}.charges_data.biggest"}
        ]
    });
    let imported = import_mapping_set(&doc.to_string(), Resource::Charges).unwrap();
    assert!(
        imported.untranslated.is_empty(),
        "{:#?}",
        imported.untranslated
    );
    let sql = &imported.sql;
    assert!(sql.contains("'origin', 'it''s stripe'"), "{sql}");
    assert!(
        sql.contains("'label', dp_concat(currency, ' ', dp_upper(status))"),
        "{sql}"
    );
    assert!(
        sql.contains("CASE WHEN paid THEN 'paid' ELSE 'unpaid' END"),
        "{sql}"
    );

    let (rows, objects) = run_imported(&imported, Resource::Charges, 5).await;
    for (row, obj) in rows.iter().zip(&objects) {
        let id = obj["id"].as_str().unwrap();
        assert_eq!(row["_id"], obj["id"]);
        assert!(same(&row["timestamp"], &obj["created"]), "{id}");
        assert_eq!(row["eventType"], "stripe.charge");
        let d = at(row, "_acme.charges_data");
        assert_eq!(d["amount"], obj["amount"], "{id}");
        assert_eq!(d["currency"], obj["currency"]);
        assert_eq!(d["origin"], "it's stripe");
        assert_eq!(d["answer"], 42);
        let status = obj["status"].as_str().unwrap();
        let currency = obj["currency"].as_str().unwrap();
        assert_eq!(d["label"], format!("{currency} {}", status.to_uppercase()));
        let paid = obj["paid"].as_bool().unwrap();
        assert_eq!(d["paidText"], if paid { "paid" } else { "unpaid" });
        let amount = obj["amount"].as_i64().unwrap();
        assert_eq!(d["units"], amount / 100);
        assert_eq!(d["arith"], obj["amount_refunded"].as_i64().unwrap() * 2 + 1);
        let kept = status == "succeeded" && !obj["refunded"].as_bool().unwrap();
        assert_eq!(d["kept"], kept);
        assert_eq!(d["ok"], if status == "succeeded" { "ok" } else { "ko" });
        let coalesced = obj["description"].as_str().unwrap_or(currency);
        assert_eq!(d["coalesced"], coalesced);
        let biggest = amount.max(obj["amount_captured"].as_i64().unwrap());
        assert_eq!(d["biggest"], biggest);
    }
}

#[tokio::test]
async fn array_index_whole_array_and_escaped_dots() {
    let doc = json!({"mappings": [
        {"sourceType": "ATTRIBUTE", "source": "data.id", "destination": "_id"},
        // [0] is the first element: DataFusion arrays are 1-based.
        {"sourceType": "ATTRIBUTE", "source": "data.items.data[0].price.id", "destination": "_{TENANT}.firstPrice"},
        {"sourceType": "ATTRIBUTE", "source": "data.items.data[1].quantity", "destination": "_{TENANT}.secondQuantity"},
        {"sourceType": "ATTRIBUTE", "source": "data.items.data[*]", "destination": "_{TENANT}.items"},
        // An escaped dot is part of a name: a metadata key, and a destination field.
        {"sourceType": "ATTRIBUTE", "source": "data.metadata.order\\.id", "destination": "_{TENANT}.order\\.id"},
        {"sourceType": "ATTRIBUTE", "source": "${data}.${status}", "destination": "_{TENANT}.status"}
    ]});
    let imported = import_mapping_set(&doc.to_string(), Resource::Subscriptions).unwrap();
    assert!(
        imported.untranslated.is_empty(),
        "{:#?}",
        imported.untranslated
    );
    let sql = &imported.sql;
    assert!(sql.contains("items['data'][1]['price']['id']"), "{sql}");
    assert!(sql.contains("items['data'][2]['quantity']"), "{sql}");
    assert!(sql.contains("'items', items['data']"), "{sql}");
    assert!(sql.contains("'order.id', metadata['order.id']"), "{sql}");

    let (rows, objects) = run_imported(&imported, Resource::Subscriptions, 8).await;
    let mut seen_second = false;
    for (row, obj) in rows.iter().zip(&objects) {
        let t = &row["_acme"];
        let items = obj["items"]["data"].as_array().unwrap();
        assert!(same(&t["firstPrice"], &items[0]["price"]["id"]), "{row}");
        match items.get(1) {
            Some(second) => {
                seen_second = true;
                assert_eq!(t["secondQuantity"], second["quantity"]);
            }
            None => assert!(t["secondQuantity"].is_null()),
        }
        let copied = t["items"].as_array().expect("whole array copied");
        assert_eq!(copied.len(), items.len());
        for (c, s) in copied.iter().zip(items) {
            assert_eq!(c["id"], s["id"]);
            assert_eq!(c["quantity"], s["quantity"]);
            assert_eq!(c["price"]["id"], s["price"]["id"]);
        }
        assert!(same(&t["order.id"], at(&obj["metadata"], "order.id")));
        assert_eq!(t["status"], obj["status"]);
    }
    let _ = seen_second;
}

/// The index and reason of each mapping the import could not translate.
fn untranslated(imported: &Imported) -> Vec<(usize, &str)> {
    imported
        .untranslated
        .iter()
        .map(|u| (u.index, u.reason.as_str()))
        .collect()
}

#[test]
fn untranslatable_mappings_are_reported_with_reasons() {
    let doc = json!({"mappings": [
        {"sourceType": "ATTRIBUTE", "source": "data.id", "destination": "_id"},
        {"sourceType": "ATTRIBUTE", "source": "data.Amount", "destination": "_{TENANT}.a"},
        {"sourceType": "ATTRIBUTE", "source": "data.payment_method_details.card.three_d_secure.version", "destination": "_{TENANT}.b"},
        {"sourceType": "ATTRIBUTE", "source": "data.amount.value", "destination": "_{TENANT}.c"},
        {"sourceType": "EXPRESSION", "source": "filterArray(data.amount, x -> x > 0)", "destination": "_{TENANT}.d"},
        {"sourceType": "EXPRESSION", "source": "str_to_object(data.description, \"-\", \";\").get(\"firstName\")", "destination": "_{TENANT}.e"},
        {"sourceType": "EXPRESSION", "source": "frobnicate(data.amount)", "destination": "_{TENANT}.f"},
        {"sourceType": "EXPRESSION", "source": "data.created + data.paid", "destination": "_{TENANT}.g"},
        {"sourceType": "ATTRIBUTE", "source": "data.currency", "destination": "_{TENANT}.list[*].currency"},
        {"sourceType": "LOOKUP", "source": "x", "destination": "_{TENANT}.h"},
        {"sourceType": "ATTRIBUTE", "source": "data.currency", "destination": "_id"},
        {"sourceType": "ATTRIBUTE", "source": "data.currency", "destination": "_{TENANT}.i"},
        {"sourceType": "ATTRIBUTE", "source": "data.amount", "destination": "_{TENANT}.i.j"}
    ]});
    let imported = import_mapping_set(&doc.to_string(), Resource::Charges).unwrap();
    let reasons = untranslated(&imported);
    let expect = [
        (
            1,
            "`Amount` is not a field of the charge source schema (did you mean amount?)",
        ),
        (3, "is an integer, it has no field `value`"),
        (4, "Destinations-only"),
        (5, "method call `.get(…)`"),
        (6, "`frobnicate` is not a Data Prep function"),
        (7, "ambiguous"),
        (8, "array destination"),
        (9, "unknown sourceType `LOOKUP`"),
        (10, "destination `_id` is already mapped"),
        (12, "cannot be placed under it"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((i, r), (ei, er)) in reasons.iter().zip(expect) {
        assert_eq!(*i, ei, "{reasons:#?}");
        assert!(r.contains(er), "mappings[{i}]: {r:?} lacks {er:?}");
    }
    // Each is listed at the top of the SQL as well.
    assert!(
        imported.sql.contains("NOT TRANSLATED (10)"),
        "{}",
        imported.sql
    );

    // Nothing translatable is an error that still lists every mapping.
    let none = json!({"mappings": [{"sourceType": "ATTRIBUTE", "source": "data.amount.nope", "destination": "x"}]});
    match import_mapping_set(&none.to_string(), Resource::Charges) {
        Err(ImportError::NothingTranslated { untranslated }) => assert_eq!(untranslated.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        import_mapping_set("{\"name\": 1}", Resource::Charges),
        Err(ImportError::Shape(_))
    ));
    // An empty set says so, not "none of the 0 mappings could be translated: ".
    let empty = import_mapping_set("[]", Resource::Charges)
        .unwrap_err()
        .to_string();
    assert!(empty.contains("`mappings` array is empty"), "{empty}");
    assert!(matches!(
        import_mapping_set("{", Resource::Charges),
        Err(ImportError::Json(_))
    ));
}

#[tokio::test]
async fn imported_sample_onto_the_builtin_schema_checks_cleanly() {
    // The import's output goes through `mapping check` like any mapping.
    let doc = json!({"mappings": [
        {"sourceAttribute": "data.id", "destinationXdmPath": "_id"},
        {"sourceAttribute": "data.created", "destinationXdmPath": "timestamp"},
        {"sourceAttribute": "data.amount", "destinationXdmPath": "_{TENANT}.charges.amount"},
        {"sourceAttribute": "data.status", "destinationXdmPath": "_{TENANT}.charges.status"},
        {"sourceAttribute": "data.outcome", "destinationXdmPath": "_{TENANT}.charges.outcome"}
    ]});
    let imported = import_mapping_set(&doc.to_string(), Resource::Charges).unwrap();
    let report = check(&imported.sql).await;
    // outcome is copied with Stripe's snake_case names: the schema wants camelCase.
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == CheckKind::UnknownColumn
                && p.path.as_deref() == Some("_acme.charges.outcome.network_status")),
        "{:#?}",
        report.problems
    );
}

// ---------------------------------------------------------------------------------------------
// check

fn charges_schema() -> XdmSchema {
    let text = substitute_tenant(
        stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
        "acme",
    );
    XdmSchema::from_json_str(&text).unwrap()
}

async fn check(sql: &str) -> CheckReport {
    let mapping = Mapping {
        sql: substitute_tenant(sql, "acme"),
        origin: "test".into(),
    };
    check_mapping(&mapping, Resource::Charges, &charges_schema()).await
}

fn only(report: &CheckReport, kind: CheckKind) -> Vec<&stripe_xdm::map::check::CheckProblem> {
    report.problems.iter().filter(|p| p.kind == kind).collect()
}

#[tokio::test]
async fn builtin_mapping_is_sound_with_nullability_warnings() {
    let mapping = Mapping::builtin(Resource::Charges, "acme");
    let report = check_mapping(&mapping, Resource::Charges, &charges_schema()).await;
    assert!(report.is_sound(), "{:#?}", report.problems);
    assert!(report.output_schema.is_some());
    // `_id` and `timestamp` are required and come from nullable source columns.
    let warned: Vec<_> = only(&report, CheckKind::Nullability)
        .iter()
        .map(|p| p.path.clone().unwrap())
        .collect();
    assert!(warned.contains(&"_id".to_string()), "{warned:?}");
    assert!(warned.contains(&"timestamp".to_string()), "{warned:?}");
    for p in only(&report, CheckKind::Nullability) {
        assert!(p.message.contains("will be rejected"), "{}", p.message);
        assert!(p.line.is_some());
    }
}

#[tokio::test]
async fn a_coalesce_with_a_constant_default_is_never_null() {
    let sql = r#"SELECT COALESCE(id, 'none') AS "_id",
        COALESCE(created, to_timestamp(0)) AS "timestamp" FROM charges"#;
    let report = check(sql).await;
    assert!(
        only(&report, CheckKind::Nullability).is_empty(),
        "{:#?}",
        report.problems
    );
    // A default that can itself be NULL still warns.
    let sql = r#"SELECT COALESCE(id, description) AS "_id", created AS "timestamp" FROM charges"#;
    let warned: Vec<_> = only(&check(sql).await, CheckKind::Nullability)
        .iter()
        .map(|p| p.path.clone().unwrap())
        .collect();
    assert_eq!(warned, vec!["_id".to_string(), "timestamp".to_string()]);
}

#[tokio::test]
async fn a_mapping_that_is_not_a_projection_is_not_sound() {
    let builtin = Mapping::builtin(Resource::Charges, "acme").sql;
    let body = builtin.trim_end().trim_end_matches(';');
    for (tail, what) in [
        ("WHERE amount > 100", "a WHERE"),
        ("ORDER BY amount", "an ORDER BY"),
        ("LIMIT 5", "a LIMIT"),
    ] {
        let report = check(&format!("{body}\n{tail}")).await;
        assert!(!report.is_sound(), "{tail}: {:#?}", report.problems);
        let found = only(&report, CheckKind::NotProjection);
        assert_eq!(found.len(), 1, "{tail}: {:#?}", report.problems);
        assert!(found[0].message.contains(what), "{}", found[0].message);
    }
    // An aggregate in a scalar subquery sees one chunk at a time as well.
    let sub = r#"SELECT id AS "_id", COALESCE(created, to_timestamp(0)) AS "timestamp",
        (SELECT max(id) FROM charges) AS "eventType" FROM charges"#;
    let report = check(sub).await;
    assert_eq!(
        only(&report, CheckKind::NotProjection).len(),
        1,
        "{:#?}",
        report.problems
    );
    let distinct = body.replacen("SELECT", "SELECT DISTINCT", 1);
    let report = check(&distinct).await;
    assert_eq!(only(&report, CheckKind::NotProjection).len(), 1);
    // The built-in mapping itself is one.
    assert!(only(&check(body).await, CheckKind::NotProjection).is_empty());
}

#[tokio::test]
async fn syntax_error_has_line_and_column() {
    let report =
        check("SELECT\n    id AS \"_id\",\n    created AS \"timestamp\" created\nFROM charges")
            .await;
    assert!(!report.is_sound());
    assert!(report.output_schema.is_none());
    let p = &only(&report, CheckKind::Compile)[0];
    assert_eq!(p.line, Some(3), "{p:?}");
    assert!(p.column.is_some(), "{p:?}");
}

#[tokio::test]
async fn unknown_source_column_is_located() {
    let report =
        check("SELECT\n    id AS \"_id\",\n    createdd AS \"timestamp\"\nFROM charges").await;
    let p = &only(&report, CheckKind::Compile)[0];
    assert!(p.message.contains("createdd"), "{p:?}");
    assert_eq!((p.line, p.column), (Some(3), Some(5)), "{p:?}");
}

#[tokio::test]
async fn missing_required_field() {
    let report = check("SELECT id AS \"_id\" FROM charges").await;
    assert!(!report.is_sound());
    let p = only(&report, CheckKind::MissingRequired);
    assert_eq!(p.len(), 1, "{:#?}", report.problems);
    assert_eq!(p[0].path.as_deref(), Some("timestamp"));
}

#[tokio::test]
async fn type_mismatch_suggests_the_cast() {
    let report = check("SELECT id AS \"_id\",\n  amount AS \"timestamp\" FROM charges").await;
    let p = only(&report, CheckKind::TypeMismatch);
    assert_eq!(p.len(), 1, "{:#?}", report.problems);
    assert_eq!(p[0].path.as_deref(), Some("timestamp"));
    assert!(
        p[0].message.contains("to_timestamp_seconds"),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].line, Some(2));
}

#[tokio::test]
async fn unknown_column_with_folded_case() {
    let report =
        check("SELECT id AS \"_id\", created AS \"timestamp\",\n  'x' AS eventType FROM charges")
            .await;
    let p = only(&report, CheckKind::UnknownColumn);
    assert_eq!(p.len(), 1, "{:#?}", report.problems);
    assert_eq!(p[0].path.as_deref(), Some("eventtype"));
    assert!(
        p[0].message.contains("did you mean \"eventType\""),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].line, Some(2));
}

#[tokio::test]
async fn non_null_required_fields_do_not_warn() {
    let report = check(
        "SELECT COALESCE(id, 'none') AS \"_id\", COALESCE(created, TIMESTAMP '1970-01-01 00:00:00') AS \"timestamp\" FROM charges",
    )
    .await;
    assert!(report.is_sound(), "{:#?}", report.problems);
    assert!(
        only(&report, CheckKind::Nullability).is_empty(),
        "{:#?}",
        report.problems
    );
}

#[tokio::test]
async fn enum_literals_outside_the_enum() {
    let sql = "SELECT id AS \"_id\", created AS \"timestamp\",\n\
        named_struct('charges', named_struct(\n\
          'status', CASE WHEN paid THEN 'succeeded' WHEN refunded THEN 'refunded' ELSE COALESCE(status, 'unknown') END\n\
        )) AS \"_${tenant}\" FROM charges";
    let report = check(sql).await;
    let p = only(&report, CheckKind::EnumLiteral);
    let values: Vec<_> = p.iter().map(|p| p.message.clone()).collect();
    assert_eq!(p.len(), 2, "{values:#?}");
    assert!(values[0].contains("'refunded'"), "{values:?}");
    assert!(values[1].contains("'unknown'"), "{values:?}");
    for p in &p {
        assert_eq!(p.path.as_deref(), Some("_acme.charges.status"));
        assert_eq!(p.line, Some(3));
    }
    assert!(!report.is_sound());
}

// ---------------------------------------------------------------------------------------------
// planning once

/// `sql` with one more output column before its last `FROM`.
fn with_column(sql: &str, column: &str) -> String {
    let at = sql.rfind("\nFROM ").expect("a FROM line");
    format!("{},\n    {column}{}", &sql[..at], &sql[at..])
}

#[tokio::test]
async fn a_projection_is_planned_once_and_maps_like_a_plan_made_per_chunk() {
    for resource in Resource::ALL {
        let builtin = Mapping::builtin(resource, "acme");
        let once = Mapper::new(resource, builtin.clone())
            .await
            .expect("mapper");
        assert!(
            once.is_prepared(),
            "{resource}: the default mapping is a projection"
        );
        // now() is fixed when a query is planned: such a mapping is planned per chunk.
        let per_chunk = Mapper::new(
            resource,
            Mapping {
                sql: with_column(&builtin.sql, "now() AS planned_at"),
                origin: "test".into(),
            },
        )
        .await
        .expect("mapper");
        assert!(!per_chunk.is_prepared(), "{resource}");
        // Two different chunks through the same prepared plan.
        for limit in [100, 37] {
            let (batch, objects) = page(resource, limit);
            let a = once.map(batch.clone()).await.expect("maps").batch;
            let b = per_chunk.map(batch).await.expect("maps").batch;
            assert_eq!(a.num_rows(), objects.len());
            let b = b
                .project(&(0..a.num_columns()).collect::<Vec<_>>())
                .unwrap();
            assert_eq!(a.columns(), b.columns(), "{resource}, {limit} rows");
        }
    }
}

#[tokio::test]
async fn a_mapping_that_filters_joins_orders_or_aggregates_is_refused_when_compiled() {
    // Even a WHERE that keeps every row is refused: a mapping is a projection, one row per
    // record, in order.
    let resource = Resource::Charges;
    let builtin = Mapping::builtin(resource, "acme");
    let body = builtin.sql.trim_end();
    let cases = [
        (format!("{body}\nWHERE amount >= 0"), "a WHERE"),
        (format!("{body}\nORDER BY created"), "an ORDER BY"),
        (format!("{body}\nLIMIT 10"), "a LIMIT"),
        (
            "SELECT id AS \"_id\", max(created) AS \"timestamp\" FROM charges GROUP BY id".into(),
            "an aggregate",
        ),
        (
            "SELECT a.id AS \"_id\" FROM charges a JOIN charges b ON a.id = b.id".into(),
            "a join",
        ),
        (
            "SELECT id AS \"_id\", row_number() OVER () AS n FROM charges".into(),
            "a window function",
        ),
    ];
    for (sql, what) in cases {
        let err = Mapper::new(
            resource,
            Mapping {
                sql,
                origin: "test".into(),
            },
        )
        .await
        .expect_err(what)
        .to_string();
        assert!(
            err.contains(&format!("it has {what}")) && err.contains("one row per record"),
            "{what}: {err}"
        );
    }
    // The built-in mapping is a projection.
    assert!(Mapper::new(resource, builtin).await.unwrap().is_prepared());
}

#[tokio::test]
async fn json_functions_over_raw_are_typed_by_mapping_check() {
    // A string from `_raw` fits a string field; an integer from `_raw` in `_id` (a string) is a
    // type problem the check names, with the cast that fixes it.
    let sound = Mapping::builtin(Resource::Charges, "acme").sql.replacen(
        "'stripe.charge.' || COALESCE(status, 'unknown') AS \"eventType\"",
        "'stripe.charge.' || COALESCE(json_as_text(_raw, 'status'), 'unknown') AS \"eventType\"",
        1,
    );
    assert!(
        sound.contains("json_as_text"),
        "the built-in mapping changed"
    );
    let report = check(&sound).await;
    assert!(report.is_sound(), "{:#?}", report.problems);
    let typed = check(
        "SELECT json_get_int(_raw, 'amount') AS \"_id\", json_as_text(_raw, 'x') AS \"eventType\", created AS \"timestamp\" FROM charges",
    )
    .await;
    let out = typed.output_schema.expect("compiles");
    let ty = |name: &str| out.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(ty("_id"), arrow::datatypes::DataType::Int64);
    assert_eq!(ty("eventType"), arrow::datatypes::DataType::Utf8);
}

#[test]
fn mappings_whose_source_has_the_wrong_shape_are_listed_with_the_reason_and_the_rest_import() {
    let long = format!("concat({})", vec!["data.currency"; 400].join(", "));
    let doc = json!({"mappings": [
        {"sourceType": "ATTRIBUTE", "source": 7, "destination": "_{TENANT}.a"},
        {"sourceType": "EXPRESSION", "source": ["upper(data.status)"], "destination": "_{TENANT}.b"},
        {"sourceType": "EXPRESSION", "source": long, "destination": "_{TENANT}.c"},
        {"sourceType": "ATTRIBUTE", "source": "data.currency", "destination": "_{TENANT}.d"},
        {"sourceType": "EXPRESSION", "source": "upper(data.status)", "destination": "_{TENANT}.e"}
    ]});
    let imported = import_mapping_set(&doc.to_string(), Resource::Charges).unwrap();
    let reasons = untranslated(&imported);
    assert_eq!(
        reasons,
        [
            (0, "an ATTRIBUTE source must be a path string"),
            (1, "an EXPRESSION source must be a string"),
            (
                2,
                "calculated field longer than Data Prep's limit of 4096 characters"
            ),
        ]
    );
    assert!(imported.sql.contains("'d', currency"), "{}", imported.sql);
    assert!(
        imported.sql.contains("'e', dp_upper(status)"),
        "{}",
        imported.sql
    );
}
