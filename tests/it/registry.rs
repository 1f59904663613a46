//! The XDM schemas rebuilt in Platform: `schema export` prints the Schema Registry payloads,
//! `datasets push` (here through the library) creates class, field group, schema, descriptors
//! and dataset in the loopback Platform, which checks them as Platform does.

use serde_json::{json, Value};
use stripe_xdm::upload::loopback::{LoopbackConfig, LoopbackPlatform};
use stripe_xdm::upload::registry::{self, CLASS_ID, FIELD_GROUP_ID, SCHEMA_ID};
use stripe_xdm::upload::{PlatformClient, UploadConfig, UploadError};
use stripe_xdm::Resource;

use crate::support::bin::{command, output, text};

fn schema(r: Resource) -> Value {
    let text = stripe_xdm::map::substitute_tenant(stripe_xdm::defaults::xdm_schema_json(r), "acme");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn schema_export_prints_the_registry_payloads() {
    let o = output(command(
        None,
        &["schema", "export", "subscriptions", "--tenant", "acme"],
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["class"]["allOf"],
        json!([{"$ref": "https://ns.adobe.com/xdm/data/record"}]),
        "a custom class with record behavior: {v}"
    );
    assert_eq!(v["fieldGroup"]["meta:intendedToExtend"], json!([CLASS_ID]));
    assert!(
        v["fieldGroup"]["definitions"]["fields"]["properties"]["_acme"]["properties"]
            ["subscriptions"]
            .is_object()
    );
    assert_eq!(
        v["schema"]["allOf"],
        json!([{"$ref": CLASS_ID}, {"$ref": FIELD_GROUP_ID}])
    );
    assert_eq!(v["descriptors"], json!([]));

    let o = output(command(
        None,
        &["schema", "export", "customers", "--profile"],
        &[],
    ))
    .await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["class"].is_null(), "the standard profile class");
    assert_eq!(v["schema"]["meta:immutableTags"], json!(["union"]));
    assert_eq!(
        v["schema"]["allOf"][2],
        json!({"$ref": "https://ns.adobe.com/xdm/context/identitymap"}),
        "{v}"
    );
    let d = v["descriptors"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d["xdm:sourceSchema"] == SCHEMA_ID));
    assert_eq!(d[0]["xdm:sourceProperty"], "/_tenant/customers/email");

    let o = output(command(None, &["schema", "export", "nosuch.json"], &[])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("neither a resource"), "{}", text(&o));
}

async fn client(p: &LoopbackPlatform) -> PlatformClient {
    let mut cfg = UploadConfig::new(String::new(), p.credentials());
    cfg.base_url = p.base_url();
    PlatformClient::new(&cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_makes_each_resource_once_and_the_loopback_checks_them() {
    let p = LoopbackPlatform::start(LoopbackConfig::default())
        .await
        .unwrap();
    let c = client(&p).await;
    // A custom class first, then the rest on it.
    let subs = registry::payloads(&schema(Resource::Subscriptions), false).unwrap();
    let pushed = registry::push(&c, &subs, "Stripe subscriptions", false, None)
        .await
        .unwrap();
    assert_eq!(
        pushed.created,
        ["class", "field group", "schema", "dataset"]
    );
    let class = pushed.class_id.clone().unwrap();
    assert!(class.starts_with("https://ns.adobe.com/stripexdmloopback/classes/"));
    let again = registry::push(
        &c,
        &subs,
        "Stripe subscriptions",
        false,
        Some(&pushed.dataset_id),
    )
    .await
    .unwrap();
    assert!(again.created.is_empty(), "{again:?}");
    assert_eq!(again.dataset_id, pushed.dataset_id);
    // The field group extends the class the push made.
    let reg = p.registry();
    let fg = reg.iter().find(|(k, _)| k == "fieldgroups").unwrap();
    assert_eq!(fg.1["meta:intendedToExtend"], json!([class]));

    // A Profile dataset: descriptors on the schema, the dataset tagged for Profile.
    let cust = registry::payloads(&schema(Resource::Customers), true).unwrap();
    let pushed = registry::push(&c, &cust, "Stripe customers", true, None)
        .await
        .unwrap();
    assert_eq!(
        pushed.created,
        [
            "field group",
            "schema",
            "descriptor",
            "descriptor",
            "dataset"
        ]
    );
    let ds = &p.datasets()[&pushed.dataset_id];
    assert_eq!(ds["tags"]["unifiedProfile"], json!(["enabled:true"]));
    assert_eq!(ds["schemaRef"]["id"], pushed.schema_id.as_str());
    let descriptors: Vec<Value> = p
        .registry()
        .into_iter()
        .filter(|(k, _)| k == "descriptors")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(descriptors.len(), 2);
    assert!(descriptors
        .iter()
        .all(|d| d["xdm:sourceSchema"] == pushed.schema_id.as_str()));

    // What Platform refuses, the loopback refuses, naming the problem.
    let mut bad = registry::payloads(&schema(Resource::Charges), false).unwrap();
    bad.descriptors[0]["xdm:sourceProperty"] = json!("/_acme/charges/nosuchfield");
    let err = registry::push(&c, &bad, "Stripe charges", false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UploadError::Http { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nosuchfield"), "{err}");
    p.shutdown().await;
}
