//! From a local XDM schema to a Platform dataset: the Schema Registry payloads that rebuild
//! the schema in the tenant (a custom class where the schema needs one, a field group with the
//! tenant fields, the schema, its identity descriptors) and the Catalog Service dataset on it.
//!
//! [`payloads`] builds them (ids Platform has not assigned yet are placeholders:
//! [`CLASS_ID`], [`FIELD_GROUP_ID`], [`SCHEMA_ID`]); [`push`] sends them in order, filling each
//! placeholder with the id Platform returned, and reuses what already exists (by title), so a
//! second push changes nothing.

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{Content, PlatformClient};
use super::error::UploadError;

/// Placeholder for the custom class's `$id` until Platform assigns it.
pub const CLASS_ID: &str = "{CLASS_ID}";
/// Placeholder for the field group's `$id`.
pub const FIELD_GROUP_ID: &str = "{FIELD_GROUP_ID}";
/// Placeholder for the schema's `$id`.
pub const SCHEMA_ID: &str = "{SCHEMA_ID}";

/// The Schema Registry's tenant container.
pub const REGISTRY_PATH: &str = "/data/foundation/schemaregistry/tenant";
/// Catalog Service datasets.
pub const DATASETS_PATH: &str = "/data/foundation/catalog/dataSets";

/// The standard field group holding `identityMap` for classes that lack it (Profile).
const IDENTITY_MAP_GROUP: &str = "https://ns.adobe.com/xdm/context/identitymap";
const PROFILE_CLASS: &str = "https://ns.adobe.com/xdm/context/profile";

/// The Schema Registry payloads for one schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Payloads {
    /// `POST …/tenant/classes`, when the schema's class is a custom one of the tenant.
    pub class: Option<Value>,
    /// `POST …/tenant/fieldgroups`: the tenant fields (`_<tenant>`).
    pub field_group: Value,
    /// `POST …/tenant/schemas`: the class and field groups composed.
    pub schema: Value,
    /// `POST …/tenant/descriptors`: one per identity.
    pub descriptors: Vec<Value>,
}

impl Payloads {
    /// As one JSON document (what `schema export` prints).
    pub fn to_json(&self) -> Value {
        json!({
            "class": self.class,
            "fieldGroup": self.field_group,
            "schema": self.schema,
            "descriptors": self.descriptors,
        })
    }
}

fn bad(reason: impl Into<String>) -> UploadError {
    UploadError::Config(format!(
        "the XDM schema cannot be exported: {}",
        reason.into()
    ))
}

/// The payloads that rebuild `schema` (an XDM schema document as stripe-xdm keeps it, tenant
/// substituted) in the Schema Registry; `profile` marks the schema for Real-Time Customer
/// Profile (`meta:immutableTags: ["union"]`).
pub fn payloads(schema: &Value, profile: bool) -> Result<Payloads, UploadError> {
    let obj = schema.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let title = text("title").ok_or_else(|| bad("no title"))?;
    let description = text("description").unwrap_or_else(|| title.clone());
    let class = text("meta:class").ok_or_else(|| bad("no meta:class"))?;
    let props = obj
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no properties"))?;
    let tenant_fields: Map<String, Value> = props
        .iter()
        .filter(|(k, v)| k.starts_with('_') && *k != "_id" && v.get("properties").is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if tenant_fields.is_empty() {
        return Err(bad(
            "no tenant object (`_<tenant>`) to put in a field group",
        ));
    }
    let custom_class = !class.starts_with("https://ns.adobe.com/xdm/");
    let class_payload = custom_class
        .then(|| -> Result<Value, UploadError> {
            let extends = obj
                .get("meta:extends")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad("a custom class needs meta:extends (the behavior it extends)")
                })?;
            Ok(json!({
                "title": format!("{title} class"),
                "description": format!("Class of the {title} schema ({extends} behavior)."),
                "type": "object",
                "allOf": [{"$ref": extends}],
            }))
        })
        .transpose()?;
    let class_ref = if custom_class {
        CLASS_ID.to_string()
    } else {
        class.clone()
    };
    let field_group = json!({
        "title": format!("{title} fields"),
        "description": format!("The tenant fields of {title}."),
        "type": "object",
        "meta:intendedToExtend": [class_ref],
        "definitions": {"fields": {"properties": tenant_fields}},
        "allOf": [{"$ref": "#/definitions/fields"}],
    });
    let mut all_of = vec![json!({"$ref": class_ref}), json!({"$ref": FIELD_GROUP_ID})];
    if props.contains_key("identityMap") && class == PROFILE_CLASS {
        all_of.push(json!({"$ref": IDENTITY_MAP_GROUP}));
    }
    let mut schema_payload = json!({
        "title": title,
        "description": description,
        "type": "object",
        "allOf": all_of,
    });
    if profile {
        schema_payload["meta:immutableTags"] = json!(["union"]);
    }
    let descriptors = obj
        .get("descriptors")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .map(|d| {
                    let mut d = d.clone();
                    d["xdm:sourceSchema"] = json!(SCHEMA_ID);
                    d
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Payloads {
        class: class_payload,
        field_group,
        schema: schema_payload,
        descriptors,
    })
}

/// What a push made or found in Platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// The custom class (`None` for standard classes).
    pub class_id: Option<String>,
    /// The field group.
    pub field_group_id: String,
    /// The schema.
    pub schema_id: String,
    /// The dataset.
    pub dataset_id: String,
    /// What was created this time (`class`, `field group`, `schema`, `descriptor`, `dataset`);
    /// empty when everything existed.
    pub created: Vec<String>,
}

/// Replaces the placeholders in `v` by the ids assigned so far.
fn fill(v: &Value, ids: &[(&str, &str)]) -> Value {
    let mut text = v.to_string();
    for (placeholder, id) in ids {
        text = text.replace(placeholder, id);
    }
    serde_json::from_str(&text).expect("replacing ids keeps JSON valid")
}

async fn get_json(client: &PlatformClient, path: &str) -> Result<Value, UploadError> {
    let body = client.send(Method::GET, path, Content::Empty).await?;
    serde_json::from_slice(&body)
        .map_err(|e| UploadError::Config(format!("GET {path}: not JSON: {e}")))
}

async fn post_json(client: &PlatformClient, path: &str, v: &Value) -> Result<Value, UploadError> {
    let body = client
        .send(Method::POST, path, Content::Json(v.to_string().into()))
        .await?;
    serde_json::from_slice(&body)
        .map_err(|e| UploadError::Config(format!("POST {path}: not JSON: {e}")))
}

/// The `$id` of the registry resource of `kind` titled `title`, if the tenant has one.
async fn find(
    client: &PlatformClient,
    kind: &str,
    title: &str,
) -> Result<Option<String>, UploadError> {
    let q: String = reqwest::Url::parse_with_params(
        "http://q.invalid/",
        [("property", format!("title=={title}"))],
    )
    .expect("a valid URL")
    .query()
    .unwrap_or_default()
    .to_string();
    let v = get_json(client, &format!("{REGISTRY_PATH}/{kind}?{q}")).await?;
    Ok(v["results"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["$id"].as_str())
        .map(str::to_string))
}

/// Finds `payload` (by title) or creates it; returns its `$id`.
async fn ensure(
    client: &PlatformClient,
    kind: &str,
    payload: &Value,
    what: &str,
    created: &mut Vec<String>,
) -> Result<String, UploadError> {
    let title = payload["title"].as_str().unwrap_or_default();
    if let Some(id) = find(client, kind, title).await? {
        return Ok(id);
    }
    let v = post_json(client, &format!("{REGISTRY_PATH}/{kind}"), payload).await?;
    created.push(what.to_string());
    v["$id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| UploadError::Config(format!("the registry created a {what} without $id")))
}

/// Creates (or finds) the schema's class, field group, schema, descriptors, then the dataset
/// `dataset_name` on it (`known_dataset`: the id recorded by an earlier push, reused when
/// Platform still has it).
pub async fn push(
    client: &PlatformClient,
    p: &Payloads,
    dataset_name: &str,
    profile: bool,
    known_dataset: Option<&str>,
) -> Result<Pushed, UploadError> {
    let mut created = Vec::new();
    let class_id = match &p.class {
        Some(c) => Some(ensure(client, "classes", c, "class", &mut created).await?),
        None => None,
    };
    let mut ids: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = &class_id {
        ids.push((CLASS_ID, c));
    }
    let fg = fill(&p.field_group, &ids);
    let field_group_id = ensure(client, "fieldgroups", &fg, "field group", &mut created).await?;
    ids.push((FIELD_GROUP_ID, &field_group_id));
    let schema = fill(&p.schema, &ids);
    let schema_id = ensure(client, "schemas", &schema, "schema", &mut created).await?;
    ids.push((SCHEMA_ID, &schema_id));
    if created.iter().any(|c| c == "schema") {
        for d in &p.descriptors {
            post_json(
                client,
                &format!("{REGISTRY_PATH}/descriptors"),
                &fill(d, &ids),
            )
            .await?;
            created.push("descriptor".into());
        }
    }
    if let Some(id) = known_dataset {
        let found = client
            .send(
                Method::GET,
                &format!("{DATASETS_PATH}/{id}"),
                Content::Empty,
            )
            .await;
        match found {
            Ok(_) => {
                return Ok(Pushed {
                    class_id,
                    field_group_id,
                    schema_id,
                    dataset_id: id.to_string(),
                    created,
                })
            }
            Err(UploadError::Http { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut body = json!({
        "name": dataset_name,
        "schemaRef": {
            "id": schema_id,
            "contentType": "application/vnd.adobe.xed+json;version=1",
        },
    });
    if profile {
        body["tags"] = json!({
            "unifiedProfile": ["enabled:true"],
            "unifiedIdentity": ["enabled:true"],
        });
    }
    let v = post_json(
        client,
        &format!("{DATASETS_PATH}?requestDataSource=true"),
        &body,
    )
    .await?;
    // Catalog answers `["@/dataSets/<id>"]`.
    let dataset_id = v
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .and_then(|s| s.rsplit('/').next())
        .map(str::to_string)
        .ok_or_else(|| {
            UploadError::Config(format!("Catalog created a dataset but answered {v}"))
        })?;
    created.push("dataset".into());
    Ok(Pushed {
        class_id,
        field_group_id,
        schema_id,
        dataset_id,
        created,
    })
}
