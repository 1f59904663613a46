//! Changes over time: objects updated, ended or deleted after they were created, and the
//! events that tell of them (`GET /v1/events`), kept [`EVENT_RETENTION_SECS`] as Stripe keeps
//! them.
//!
//! Lists and retrieves serve each object at its latest version; a deleted customer retrieves
//! as Stripe's `{"id":…,"deleted":true}` stub, a deleted price answers `404 resource_missing`,
//! and both leave lists. Each change records an event whose `data.object` is the object as of
//! that change, rendered at [`SimConfig::events_api_version`](super::SimConfig): at any other
//! version than the objects' own, the payload lacks the expandable references (`customer`,
//! `balance_transaction`, …), as payloads rendered for another version differ from what the
//! pinned version returns.

use std::collections::HashMap;

use super::dataset::{hash, ns, unit};
use super::json::{push_i64, push_str, remove_top, set_top};
use super::list::{percent_decode, ListError, ListParams};
use super::{Simulator, SIM_API_VERSION};
use crate::Resource;

/// How long events stay listed, as on Stripe: 30 days.
pub const EVENT_RETENTION_SECS: i64 = 30 * 86_400;

/// The API version event payloads are rendered at unless configured otherwise: older than the
/// one objects are served at, so a reader must re-fetch changed objects.
pub const SIM_EVENTS_API_VERSION: &str = "2022-11-15";

/// Why a change cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No object with that index.
    #[error("{resource} has no object {index} (it has {len})")]
    NoSuchObject {
        /// The resource.
        resource: Resource,
        /// The index asked for.
        index: u64,
        /// How many objects it has.
        len: u64,
    },
    /// The object cannot change this way (balance transactions never change; charges and
    /// refunds are never deleted; a deleted object does not change again).
    #[error("{resource} object {index}: {reason}")]
    Refused {
        /// The resource.
        resource: Resource,
        /// The index.
        index: u64,
        /// Why.
        reason: &'static str,
    },
}

/// One object's state after its changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ObjectState {
    /// Updates so far.
    version: u32,
    /// When a subscription was canceled.
    canceled_at: Option<i64>,
    /// When a customer or price was deleted.
    deleted_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct SimEvent {
    seq: u64,
    created: i64,
    kind: &'static str,
    resource: Resource,
    index: u64,
    state: ObjectState,
}

/// The objects that changed and their events, shared by every clone of a simulator.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    objects: HashMap<(Resource, u64), ObjectState>,
    /// In `(created, seq)` order.
    events: Vec<SimEvent>,
}

impl Simulator {
    fn change(
        &self,
        r: Resource,
        index: u64,
        at: i64,
        kind: &'static str,
        apply: impl FnOnce(&mut ObjectState),
    ) -> Result<String, ChangeError> {
        if index >= self.len(r) {
            return Err(ChangeError::NoSuchObject {
                resource: r,
                index,
                len: self.len(r),
            });
        }
        let mut log = self.changes.write().unwrap_or_else(|p| p.into_inner());
        let state = log.objects.entry((r, index)).or_default();
        if state.deleted_at.is_some() {
            return Err(ChangeError::Refused {
                resource: r,
                index,
                reason: "it was deleted",
            });
        }
        apply(state);
        let state = *state;
        let seq = log.events.len() as u64;
        let at = at.max(self.created(r, index));
        let pos = log.events.partition_point(|e| e.created <= at);
        log.events.insert(
            pos,
            SimEvent {
                seq,
                created: at,
                kind,
                resource: r,
                index,
                state,
            },
        );
        self.has_changes
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self.event_id(seq))
    }

    /// Updates object `index` of `r` at unix time `at` (no earlier than its creation): lists
    /// and retrieves serve the new version from now on, and an `<object>.updated` event tells
    /// of it. Returns the event's id.
    pub fn update(&self, r: Resource, index: u64, at: i64) -> Result<String, ChangeError> {
        let Some(kind) = r.updated_event() else {
            return Err(ChangeError::Refused {
                resource: r,
                index,
                reason: "balance transactions never change",
            });
        };
        self.change(r, index, at, kind, |s| s.version += 1)
    }

    /// Deletes customer or price `index` at `at` (`customer.deleted` / `price.deleted`), or
    /// cancels subscription `index` (`customer.subscription.deleted`, status `canceled`; it
    /// stays listed). Charges, refunds and balance transactions are never deleted.
    pub fn delete(&self, r: Resource, index: u64, at: i64) -> Result<String, ChangeError> {
        match r {
            Resource::Customers | Resource::Prices => {
                let kind = r.deleted_event().expect("deletable");
                self.change(r, index, at, kind, |s| s.deleted_at = Some(at))
            }
            Resource::Subscriptions => {
                self.change(r, index, at, "customer.subscription.deleted", |s| {
                    s.canceled_at = Some(at)
                })
            }
            _ => Err(ChangeError::Refused {
                resource: r,
                index,
                reason: "objects of this resource are never deleted",
            }),
        }
    }

    /// Changes `n` objects of `r` chosen from the seed, at times spread over `[gte, lt)`: a
    /// fraction `delete_fraction` of them deleted (customers, prices) or canceled
    /// (subscriptions), the rest updated. Returns how many changes were applied.
    pub fn churn(&self, r: Resource, n: u64, gte: i64, lt: i64, delete_fraction: f64) -> u64 {
        let len = self.len(r);
        let mut applied = 0;
        for k in 0..n {
            if len == 0 {
                break;
            }
            let h = hash(&[self.config.seed, 0xc4a9, r as u64, k]);
            let index = h % len;
            let at = gte + (hash(&[h, 1]) % (lt - gte).max(1) as u64) as i64;
            let result = if unit(hash(&[h, 2])) < delete_fraction {
                self.delete(r, index, at)
            } else {
                self.update(r, index, at)
            };
            applied += u64::from(result.is_ok());
        }
        applied
    }

    /// How many events were recorded (retention aside).
    pub fn events_recorded(&self) -> usize {
        self.changes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .len()
    }

    fn event_id(&self, seq: u64) -> String {
        let mut b = Vec::with_capacity(32);
        self.push_ns_id("evt_", ns::EVENT, seq, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    /// The state of object `index` after its changes (`None` when it never changed).
    pub(crate) fn state(&self, r: Resource, index: u64) -> Option<ObjectState> {
        if !self.has_changes.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.changes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .objects
            .get(&(r, index))
            .copied()
    }

    /// Whether object `index` of `r` was deleted by a change.
    pub(crate) fn deleted_by_change(&self, r: Resource, index: u64) -> bool {
        self.state(r, index).is_some_and(|s| s.deleted_at.is_some())
    }

    /// Whether subscription `index` was canceled by a change.
    pub(crate) fn canceled_by_change(&self, index: u64) -> bool {
        self.state(Resource::Subscriptions, index)
            .is_some_and(|s| s.canceled_at.is_some())
    }

    /// Rewrites the object just written at `buf[from..]` to its state after its changes.
    pub(crate) fn apply_changes(&self, r: Resource, index: u64, from: usize, buf: &mut Vec<u8>) {
        if let Some(state) = self.state(r, index) {
            apply(r, index, &state, from, buf);
        }
    }

    /// Writes the body of `GET /v1/events?<query>`: events newest first, within retention.
    pub(crate) fn write_events(&self, query: &str, buf: &mut Vec<u8>) -> Result<usize, ListError> {
        let mut types: Vec<String> = Vec::new();
        let mut wildcard: Option<String> = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(k).as_str() {
                "types[]" => types.push(percent_decode(v)),
                "type" => wildcard = Some(percent_decode(v)),
                "delivery_success" => {}
                _ => rest.push(pair),
            }
        }
        // Cursors name events, not objects: take them out before the list parameters are
        // checked against an object namespace.
        let mut params = ListParams::parse(Resource::Charges, &rest.join("&"))?;
        let (after, before) = (params.starting_after.take(), params.ending_before.take());
        let log = self.changes.read().unwrap_or_else(|p| p.into_inner());
        let position = |id: &str, param: &'static str| {
            log.events
                .iter()
                .position(|e| self.event_id(e.seq) == id)
                .ok_or_else(|| ListError::NoSuchObject {
                    object: "event",
                    id: id.to_string(),
                    param,
                })
        };
        let horizon = chrono::Utc::now().timestamp() - EVENT_RETENTION_SECS;
        let wanted = |e: &SimEvent| {
            e.created >= horizon
                && params.created.gte.is_none_or(|g| e.created >= g)
                && params.created.lt.is_none_or(|l| e.created < l)
                && (types.is_empty() || types.iter().any(|t| t == e.kind))
                && wildcard
                    .as_deref()
                    .is_none_or(|w| match w.strip_suffix('*') {
                        Some(prefix) => e.kind.starts_with(prefix),
                        None => e.kind == w,
                    })
        };
        let limit = params.limit as usize;
        let (page, has_more): (Vec<&SimEvent>, bool) = match (after, before) {
            (Some(_), Some(_)) => return Err(ListError::BothCursors),
            (_, Some(id)) => {
                let k = position(&id, "ending_before")?;
                let mut it = log.events[k + 1..].iter().filter(|e| wanted(e));
                let mut page: Vec<&SimEvent> = it.by_ref().take(limit).collect();
                let more = it.next().is_some();
                page.reverse();
                (page, more)
            }
            (after, None) => {
                let top = match after {
                    Some(id) => position(&id, "starting_after")?,
                    None => log.events.len(),
                };
                let mut it = log.events[..top].iter().rev().filter(|e| wanted(e));
                let page: Vec<&SimEvent> = it.by_ref().take(limit).collect();
                (page, it.next().is_some())
            }
        };
        buf.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
        for (n, e) in page.iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            self.write_event(e, buf);
        }
        buf.extend_from_slice(if has_more {
            &b"],\"has_more\":true,\"url\":\"/v1/events\"}"[..]
        } else {
            b"],\"has_more\":false,\"url\":\"/v1/events\"}"
        });
        Ok(page.len())
    }

    fn write_event(&self, e: &SimEvent, buf: &mut Vec<u8>) {
        let version = self.config.events_api_version.as_str();
        buf.extend_from_slice(b"{\"id\":");
        push_str(buf, &self.event_id(e.seq));
        buf.extend_from_slice(b",\"object\":\"event\",\"api_version\":");
        push_str(buf, version);
        buf.extend_from_slice(b",\"created\":");
        push_i64(buf, e.created);
        buf.extend_from_slice(b",\"data\":{\"object\":");
        let from = buf.len();
        self.write_clean(e.resource, e.index, false, buf);
        apply(e.resource, e.index, &e.state, from, buf);
        if version != SIM_API_VERSION {
            for key in expandable(e.resource) {
                remove_top(buf, from, key);
            }
        }
        buf.extend_from_slice(b"},\"livemode\":false,\"pending_webhooks\":0,\"request\":{\"id\":null,\"idempotency_key\":null},\"type\":");
        push_str(buf, e.kind);
        buf.push(b'}');
    }
}

/// The expandable references an event payload at another API version leaves out.
fn expandable(r: Resource) -> &'static [&'static str] {
    match r {
        Resource::Charges => &[
            "customer",
            "balance_transaction",
            "payment_intent",
            "invoice",
        ],
        Resource::Refunds => &["charge", "balance_transaction", "payment_intent"],
        Resource::Customers => &["default_source", "test_clock"],
        Resource::Subscriptions => &["customer", "latest_invoice", "default_payment_method"],
        Resource::Prices => &["product"],
        Resource::BalanceTransactions => &[],
    }
}

/// Rewrites an object at `buf[from..]` to `state`.
fn apply(r: Resource, index: u64, state: &ObjectState, from: usize, buf: &mut Vec<u8>) {
    if state.version > 0 {
        let mut meta = b"{\"sim_version\":\"".to_vec();
        push_i64(&mut meta, i64::from(state.version));
        meta.extend_from_slice(b"\"}");
        set_top(buf, from, "metadata", &meta);
        match r {
            Resource::Charges => {
                set_top(buf, from, "refunded", b"true");
            }
            Resource::Customers => {
                let mut email = Vec::new();
                push_str(
                    &mut email,
                    &format!("updated{}.{index}@example.com", state.version),
                );
                set_top(buf, from, "email", &email);
            }
            Resource::Subscriptions => {
                set_top(buf, from, "cancel_at_period_end", b"true");
            }
            Resource::Prices => {
                set_top(buf, from, "active", b"false");
            }
            Resource::Refunds | Resource::BalanceTransactions => {}
        }
    }
    if let Some(at) = state.canceled_at {
        let mut t = Vec::new();
        push_i64(&mut t, at);
        set_top(buf, from, "status", b"\"canceled\"");
        set_top(buf, from, "canceled_at", &t);
        set_top(buf, from, "ended_at", &t);
    }
}

/// The body Stripe retrieves a deleted customer as.
pub(crate) fn deleted_stub(sim: &Simulator, r: Resource, index: u64) -> Vec<u8> {
    let mut b = b"{\"id\":".to_vec();
    push_str(&mut b, &sim.id(r, index));
    b.extend_from_slice(b",\"object\":");
    push_str(&mut b, r.object_name());
    b.extend_from_slice(b",\"deleted\":true}");
    b
}
