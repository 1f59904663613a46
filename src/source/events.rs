//! Change capture: the objects of a resource that changed since a cursor, read from Stripe's
//! events (`GET /v1/events`) and hydrated at the pinned API version.
//!
//! Events render `data.object` at the event's own `api_version` and leave out expandable
//! sub-objects, so each changed object is fetched again by id (`GET /v1/<resource>/<id>`)
//! unless its newest event's payload is at the pinned version and has every top-level field
//! the decoder reads. Objects are de-duplicated by object id (the newest event wins, and the
//! object is fetched as it is now). `customer.deleted` / `price.deleted`, a retrieve that
//! answers `404 resource_missing`, and a retrieve answering Stripe's `"deleted": true` stub are
//! deletions; their last known state is the event's payload.

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::Url;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{SourceError, StripeClient};
use crate::Resource;

/// Changed objects retrieved at once.
pub const HYDRATE_CONCURRENCY: usize = 4;

/// What to read: events of `resource` created in `(since, upto]`.
#[derive(Debug, Clone)]
pub struct ChangeQuery {
    /// The resource.
    pub resource: Resource,
    /// The event cursor: events created after this second (`created[gt]`).
    pub since: i64,
    /// The last second read (`created[lte]`), kept behind now for Stripe's eventual
    /// consistency.
    pub upto: i64,
    /// Objects created at or after this second are read by the run's list at their current
    /// version anyway: their events are skipped (deletions excepted).
    pub listed_from: Option<i64>,
    /// The top-level fields a payload must have to be used without a re-fetch (the fields the
    /// decoder reads).
    pub required_fields: Vec<String>,
}

/// How an object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Changed: `object` is its current version.
    Updated,
    /// Deleted: `object` is its last known version (the event's payload).
    Deleted,
}

/// One changed object.
#[derive(Debug, Clone)]
pub struct Change {
    /// The object's id.
    pub id: String,
    /// Updated or deleted.
    pub kind: ChangeKind,
    /// The newest event about it.
    pub event_id: String,
    /// That event's type.
    pub event_type: String,
    /// That event's `created` second.
    pub at: i64,
    /// The object's JSON (as retrieved, or the event's payload).
    pub object: Bytes,
    /// The API version `object` is rendered at.
    pub api_version: String,
}

/// The changes since a cursor, and what reading them cost.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    /// One entry per changed object, newest change first.
    pub changes: Vec<Change>,
    /// Events read.
    pub events: u64,
    /// Event list pages read.
    pub pages: u64,
    /// Objects retrieved by id.
    pub retrieved: u64,
    /// Objects taken from their event's payload (at the pinned version and complete).
    pub from_payload: u64,
    /// Events skipped because the run's list reads their objects.
    pub skipped_listed: u64,
    /// The ids of those objects: the list must not drop them as already known.
    pub listed_changed: Vec<String>,
}

impl ChangeSet {
    /// The changes of one kind.
    pub fn of(&self, kind: ChangeKind) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.kind == kind)
    }
}

#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct Event<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(borrow)]
    data: EventData<'a>,
}

#[derive(Deserialize)]
struct EventData<'a> {
    #[serde(borrow)]
    object: &'a RawValue,
}

/// The newest event of one object, before hydration.
struct Pending {
    id: String,
    event_id: String,
    event_type: String,
    at: i64,
    payload: Bytes,
    api_version: String,
    deleted: bool,
    /// The payload can stand for the object (pinned version, complete, the object itself).
    usable: bool,
}

impl StripeClient {
    fn events_url(&self, q: &ChangeQuery, starting_after: Option<&str>) -> Url {
        let mut url = Url::parse(&format!("{}/v1/events", self.inner.base))
            .expect("base URL validated in StripeClient::new");
        {
            let mut p = url.query_pairs_mut();
            p.append_pair("limit", "100");
            p.append_pair("created[gt]", &q.since.to_string());
            p.append_pair("created[lte]", &q.upto.to_string());
            for t in q.resource.event_types() {
                p.append_pair("types[]", t);
            }
            if let Some(c) = starting_after {
                p.append_pair("starting_after", c);
            }
        }
        url
    }

    /// `GET /v1/<resource>/<id>` at the pinned version: the object's raw JSON.
    pub async fn retrieve(&self, resource: Resource, id: &str) -> Result<Bytes, SourceError> {
        let endpoint = format!("GET /v1/{}/:id", resource.path());
        let mut url = Url::parse(&format!("{}/v1/{}/", self.inner.base, resource.path()))
            .expect("base URL validated in StripeClient::new");
        url.path_segments_mut()
            .expect("http URL")
            .pop_if_empty()
            .push(id);
        Ok(self.execute(&endpoint, url).await?.body)
    }

    /// Reads the changes `q` asks for: every page of events, then each changed object at the
    /// pinned version (see the module docs).
    pub async fn read_changes(&self, q: &ChangeQuery) -> Result<ChangeSet, SourceError> {
        let mut set = ChangeSet::default();
        if q.resource.event_types().is_empty() || q.upto <= q.since {
            return Ok(set);
        }
        let endpoint = "GET /v1/events";
        let pinned = self.inner.cfg.stripe_version.clone();
        let mut seen: HashSet<String> = HashSet::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = self.events_url(q, cursor.as_deref());
            let fetched = self.execute(endpoint, url).await?;
            set.pages += 1;
            let invalid = |message: String| SourceError::InvalidResponse {
                endpoint: endpoint.to_string(),
                request_id: fetched.request_id.clone(),
                message,
            };
            let list: EventList = serde_json::from_slice(&fetched.body)
                .map_err(|e| invalid(format!("not an event list: {e}")))?;
            let mut last = None;
            for raw in &list.data {
                let event: Event = serde_json::from_str(raw.get())
                    .map_err(|e| invalid(format!("an event without id/type/created/data: {e}")))?;
                set.events += 1;
                last = Some(event.id.clone());
                if let Some(p) = pending_change(q, &pinned, event, &mut set) {
                    if seen.insert(p.id.clone()) {
                        pending.push(p);
                    }
                }
            }
            if !list.has_more {
                break;
            }
            match last {
                Some(id) if cursor.as_deref() != Some(id.as_str()) => cursor = Some(id),
                _ => {
                    return Err(SourceError::StuckCursor {
                        endpoint: endpoint.to_string(),
                        cursor,
                        window: super::Window::default(),
                        reason: "has_more is true but the page does not advance".into(),
                    })
                }
            }
        }
        set.from_payload = pending.iter().filter(|p| p.usable && !p.deleted).count() as u64;
        set.retrieved = pending.iter().filter(|p| !p.usable && !p.deleted).count() as u64;
        let resource = q.resource;
        let pinned = pinned.as_str();
        set.changes = futures::stream::iter(
            pending
                .into_iter()
                .map(|p| async move { self.hydrate(resource, p, pinned).await }),
        )
        .buffered(HYDRATE_CONCURRENCY)
        .try_collect()
        .await?;
        Ok(set)
    }

    async fn hydrate(
        &self,
        resource: Resource,
        p: Pending,
        pinned: &str,
    ) -> Result<Change, SourceError> {
        let change = |kind, object: Bytes, api_version: String| Change {
            id: p.id.clone(),
            kind,
            event_id: p.event_id.clone(),
            event_type: p.event_type.clone(),
            at: p.at,
            object,
            api_version,
        };
        if p.deleted {
            return Ok(change(
                ChangeKind::Deleted,
                p.payload.clone(),
                p.api_version.clone(),
            ));
        }
        if p.usable {
            return Ok(change(
                ChangeKind::Updated,
                p.payload.clone(),
                p.api_version.clone(),
            ));
        }
        match self.retrieve(resource, &p.id).await {
            Ok(body) if is_deleted_stub(&body) => Ok(change(
                ChangeKind::Deleted,
                p.payload.clone(),
                p.api_version.clone(),
            )),
            Ok(body) => Ok(change(ChangeKind::Updated, body, pinned.to_string())),
            Err(SourceError::Stripe {
                status: 404, code, ..
            }) if code.as_deref() == Some("resource_missing") => Ok(change(
                ChangeKind::Deleted,
                p.payload.clone(),
                p.api_version.clone(),
            )),
            Err(e) => Err(e),
        }
    }
}

/// The object an event is about, or `None` when the run's list reads it anyway (or the event
/// names no object of the resource).
fn pending_change(
    q: &ChangeQuery,
    pinned: &str,
    event: Event<'_>,
    set: &mut ChangeSet,
) -> Option<Pending> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(event.data.object.get()).ok()?;
    let name = q.resource.object_name();
    let is_object = object.get("object").and_then(|v| v.as_str()) == Some(name);
    // A dispute (charge.dispute.*) names its charge; the charge itself must be fetched.
    let id = if is_object {
        object.get("id")?.as_str()?.to_string()
    } else {
        object.get(name)?.as_str()?.to_string()
    };
    let created = object.get("created").and_then(|v| v.as_i64());
    let deleted = q.resource.deleted_event() == Some(event.kind.as_str())
        || object.get("deleted").and_then(|v| v.as_bool()) == Some(true);
    // A deletion is never left to the list: the list does not return deleted objects.
    if !deleted
        && is_object
        && q.listed_from
            .is_some_and(|from| created.is_some_and(|c| c >= from))
    {
        set.skipped_listed += 1;
        set.listed_changed.push(id);
        return None;
    }
    let api_version = event.api_version.unwrap_or_default();
    let usable = is_object
        && api_version == pinned
        && q.required_fields.iter().all(|f| object.contains_key(f));
    Some(Pending {
        id,
        event_id: event.id,
        event_type: event.kind,
        at: event.created,
        payload: Bytes::copy_from_slice(event.data.object.get().as_bytes()),
        api_version,
        deleted,
        usable,
    })
}

/// True for Stripe's stub of a deleted object: `{"id":…,"object":…,"deleted":true}`.
fn is_deleted_stub(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Stub {
        #[serde(default)]
        deleted: bool,
    }
    serde_json::from_slice::<Stub>(body).is_ok_and(|s| s.deleted)
}
