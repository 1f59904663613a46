//! The loopback Platform's Schema Registry (tenant classes, field groups, schemas, descriptors,
//! `stats`) and Catalog datasets, with the checks Platform makes on what a client sends: a
//! title and `type: object`, no second resource with a title, field groups that name the
//! classes they extend, schemas composed of a known class and known field groups, descriptors
//! on a known schema and an existing field, datasets on a known schema.

use bytes::Bytes;
use serde_json::{json, Value};

use super::api::{err, Reply};
use super::{Inner, LoopbackConfig};

/// Standard classes and field groups the loopback knows without their being created.
const STANDARD: [&str; 5] = [
    "https://ns.adobe.com/xdm/context/experienceevent",
    "https://ns.adobe.com/xdm/context/profile",
    "https://ns.adobe.com/xdm/data/record",
    "https://ns.adobe.com/xdm/data/time-series",
    "https://ns.adobe.com/xdm/context/identitymap",
];

const REGISTRY: &str = "/data/foundation/schemaregistry";
const DATASETS: &str = "/data/foundation/catalog/dataSets";

/// Answers registry and dataset requests; `None` for other paths.
pub(super) fn route(
    cfg: &LoopbackConfig,
    inner: &mut Inner,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &Bytes,
) -> Option<Reply> {
    if path == format!("{REGISTRY}/stats") && method == "GET" {
        return Some((200, json!({"tenantId": cfg.tenant})));
    }
    if let Some(kind) = path.strip_prefix(&format!("{REGISTRY}/tenant/")) {
        return Some(match (method, kind) {
            ("GET", "classes" | "fieldgroups" | "schemas" | "descriptors") => {
                list(inner, kind, query)
            }
            ("POST", "classes" | "fieldgroups" | "schemas" | "descriptors") => {
                match serde_json::from_slice::<Value>(body) {
                    Ok(v) => create(cfg, inner, kind, v),
                    Err(e) => err(400, "XDM-1000-400", format!("the body is not JSON: {e}")),
                }
            }
            _ => err(404, "404001", format!("No route for {method} {path}")),
        });
    }
    if path == DATASETS && method == "POST" {
        return Some(match serde_json::from_slice::<Value>(body) {
            Ok(v) => create_dataset(inner, v),
            Err(e) => err(400, "400001", format!("the body is not JSON: {e}")),
        });
    }
    if let Some(id) = path.strip_prefix(&format!("{DATASETS}/")) {
        if method == "GET" {
            return Some(match inner.datasets.get(id) {
                Some(d) => (200, json!({ id: d })),
                None => err(404, "404002", format!("Dataset {id} not found")),
            });
        }
    }
    None
}

fn known(inner: &Inner, id: &str) -> bool {
    STANDARD.contains(&id) || inner.registry.iter().any(|(_, v)| v["$id"] == id)
}

fn list(inner: &Inner, kind: &str, query: Option<&str>) -> Reply {
    let title = query.and_then(|q| {
        q.split('&').find_map(|kv| {
            let v = super::api::percent_decode(&kv.strip_prefix("property=")?.replace('+', " "));
            v.strip_prefix("title==").map(str::to_string)
        })
    });
    let results: Vec<Value> = inner
        .registry
        .iter()
        .filter(|(k, v)| k == kind && title.as_ref().is_none_or(|t| v["title"] == t.as_str()))
        .map(|(_, v)| json!({"$id": v["$id"], "title": v["title"], "version": v["version"]}))
        .collect();
    (
        200,
        json!({"results": results, "_page": {"count": results.len()}}),
    )
}

fn create(cfg: &LoopbackConfig, inner: &mut Inner, kind: &str, mut v: Value) -> Reply {
    let bad = |m: String| err(400, "XDM-1521-400", m);
    if kind == "descriptors" {
        let schema = v["xdm:sourceSchema"].as_str().unwrap_or_default();
        let Some((_, s)) = inner
            .registry
            .iter()
            .find(|(k, s)| k == "schemas" && s["$id"] == schema)
        else {
            return bad(format!(
                "xdm:sourceSchema {schema:?} is not a schema of the tenant"
            ));
        };
        let property = v["xdm:sourceProperty"].as_str().unwrap_or_default();
        if !has_property(inner, s, property) {
            return bad(format!(
                "xdm:sourceProperty {property:?} is not a field of {schema}"
            ));
        }
        if v["@type"] != "xdm:descriptorIdentity" || v["xdm:namespace"].as_str().is_none() {
            return bad(
                "an identity descriptor needs @type xdm:descriptorIdentity and xdm:namespace"
                    .into(),
            );
        }
        inner.next += 1;
        v["@id"] = json!(format!("{:040x}", inner.next));
        inner.registry.push((kind.into(), v.clone()));
        return (201, v);
    }
    let Some(title) = v["title"].as_str().map(str::to_string) else {
        return bad("a title is required".into());
    };
    if v["type"] != "object" {
        return bad(format!("{title}: type must be \"object\""));
    }
    if inner
        .registry
        .iter()
        .any(|(k, r)| k == kind && r["title"] == title.as_str())
    {
        return err(
            409,
            "XDM-1521-409",
            format!("a resource titled {title:?} already exists"),
        );
    }
    let refs: Vec<String> = v["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["$ref"].as_str())
        .filter(|r| !r.starts_with('#'))
        .map(str::to_string)
        .collect();
    match kind {
        "fieldgroups" => {
            let extends: Vec<&str> = v["meta:intendedToExtend"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if extends.is_empty() {
                return bad(format!("{title}: meta:intendedToExtend names no class"));
            }
            if let Some(c) = extends.iter().find(|c| !known(inner, c)) {
                return bad(format!(
                    "{title}: meta:intendedToExtend {c} is not a known class"
                ));
            }
        }
        "schemas" | "classes" => {
            if refs.is_empty() {
                return bad(format!("{title}: allOf references nothing"));
            }
            if let Some(r) = refs.iter().find(|r| !known(inner, r)) {
                return bad(format!(
                    "{title}: allOf references {r}, which does not exist"
                ));
            }
        }
        _ => {}
    }
    inner.next += 1;
    let segment = match kind {
        "fieldgroups" => "mixins",
        other => other,
    };
    let hash = format!("{:032x}", inner.next.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let id = format!("https://ns.adobe.com/{}/{segment}/{hash}", cfg.tenant);
    v["$id"] = json!(id);
    v["meta:altId"] = json!(format!("_{}.{segment}.{hash}", cfg.tenant));
    v["version"] = json!("1.0");
    v["meta:tenantNamespace"] = json!(format!("_{}", cfg.tenant));
    inner.registry.push((kind.into(), v.clone()));
    (201, v)
}

/// Whether the schema `s` (through its field groups) has the field at JSON pointer `property`.
fn has_property(inner: &Inner, s: &Value, property: &str) -> bool {
    let parts: Vec<&str> = property.trim_start_matches('/').split('/').collect();
    s["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["$ref"].as_str())
        .filter_map(|r| {
            inner
                .registry
                .iter()
                .find(|(k, g)| k == "fieldgroups" && g["$id"] == r)
        })
        .flat_map(|(_, g)| {
            g["definitions"]
                .as_object()
                .into_iter()
                .flat_map(|d| d.values())
        })
        .any(|def| {
            let mut node = def;
            for p in &parts {
                match node["properties"].get(p) {
                    Some(n) => node = n,
                    None => return false,
                }
            }
            true
        })
}

fn create_dataset(inner: &mut Inner, v: Value) -> Reply {
    let Some(name) = v["name"].as_str().filter(|n| !n.is_empty()) else {
        return err(400, "400002", "a dataset needs a name");
    };
    let schema = v["schemaRef"]["id"].as_str().unwrap_or_default();
    if !inner
        .registry
        .iter()
        .any(|(k, s)| k == "schemas" && s["$id"] == schema)
    {
        return err(
            400,
            "400003",
            format!("schemaRef.id {schema:?} is not a schema of the tenant"),
        );
    }
    if inner.datasets.values().any(|d| d["name"] == name) {
        return err(
            409,
            "409001",
            format!("a dataset named {name:?} already exists"),
        );
    }
    inner.next += 1;
    let id = format!("{:024x}", inner.next.wrapping_mul(0x5851_f42d_4c95_7f2d));
    inner.datasets.insert(id.clone(), v);
    (201, json!([format!("@/dataSets/{id}")]))
}
