//! The six Stripe resource paths that Platform's Stripe source offers.

use std::fmt;
use std::str::FromStr;

/// A Stripe list resource, named by its API path (`/v1/<path>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `/v1/charges`, objects `ch_…`.
    Charges,
    /// `/v1/subscriptions` (always listed with `status=all`), objects `sub_…`.
    Subscriptions,
    /// `/v1/refunds`, objects `re_…`.
    Refunds,
    /// `/v1/balance_transactions`, objects `txn_…`.
    BalanceTransactions,
    /// `/v1/customers`, objects `cus_…`.
    Customers,
    /// `/v1/prices`, objects `price_…`.
    Prices,
}

impl Resource {
    /// Every resource, in the order Platform lists them.
    pub const ALL: [Resource; 6] = [
        Resource::Charges,
        Resource::Subscriptions,
        Resource::Refunds,
        Resource::BalanceTransactions,
        Resource::Customers,
        Resource::Prices,
    ];

    /// The resource path, also the SQL table name: `charges`, `balance_transactions`, …
    pub fn path(self) -> &'static str {
        match self {
            Resource::Charges => "charges",
            Resource::Subscriptions => "subscriptions",
            Resource::Refunds => "refunds",
            Resource::BalanceTransactions => "balance_transactions",
            Resource::Customers => "customers",
            Resource::Prices => "prices",
        }
    }

    /// The `object` value Stripe sets on each record: `charge`, `balance_transaction`, …
    pub fn object_name(self) -> &'static str {
        match self {
            Resource::Charges => "charge",
            Resource::Subscriptions => "subscription",
            Resource::Refunds => "refund",
            Resource::BalanceTransactions => "balance_transaction",
            Resource::Customers => "customer",
            Resource::Prices => "price",
        }
    }

    /// The id prefix of the resource's objects: `ch_`, `sub_`, `re_`, `txn_`, `cus_`, `price_`.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Resource::Charges => "ch_",
            Resource::Subscriptions => "sub_",
            Resource::Refunds => "re_",
            Resource::BalanceTransactions => "txn_",
            Resource::Customers => "cus_",
            Resource::Prices => "price_",
        }
    }

    /// Extra query parameters the list endpoint always needs for a complete extract.
    pub fn fixed_params(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Without status=all Stripe silently omits canceled subscriptions.
            Resource::Subscriptions => &[("status", "all")],
            _ => &[],
        }
    }

    /// The event types (`types[]` of `GET /v1/events`) that tell an object of this resource
    /// changed. Empty for balance transactions: they never change after creation, so they stay
    /// on the `created` cursor only. Dispute events (`charge.dispute.*`) carry a dispute whose
    /// `charge` names the charge; `charge.refund.updated` carries a refund.
    pub fn event_types(self) -> &'static [&'static str] {
        match self {
            Resource::Charges => &[
                "charge.captured",
                "charge.expired",
                "charge.failed",
                "charge.pending",
                "charge.refunded",
                "charge.succeeded",
                "charge.updated",
                "charge.dispute.created",
                "charge.dispute.updated",
                "charge.dispute.closed",
                "charge.dispute.funds_withdrawn",
                "charge.dispute.funds_reinstated",
            ],
            Resource::Refunds => &[
                "refund.created",
                "refund.updated",
                "refund.failed",
                "charge.refund.updated",
            ],
            Resource::Customers => &["customer.created", "customer.updated", "customer.deleted"],
            Resource::Subscriptions => &[
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
                "customer.subscription.paused",
                "customer.subscription.resumed",
                "customer.subscription.pending_update_applied",
                "customer.subscription.pending_update_expired",
                "customer.subscription.trial_will_end",
            ],
            Resource::Prices => &["price.created", "price.updated", "price.deleted"],
            Resource::BalanceTransactions => &[],
        }
    }

    /// The event type that means an object of this resource is gone (`customer.deleted`,
    /// `price.deleted`); `None` where objects are never deleted. A subscription's
    /// `customer.subscription.deleted` means it ended (status `canceled`): not a deletion.
    pub fn deleted_event(self) -> Option<&'static str> {
        match self {
            Resource::Customers => Some("customer.deleted"),
            Resource::Prices => Some("price.deleted"),
            _ => None,
        }
    }

    /// The event type for an update of an object of this resource (the simulator sends it).
    pub fn updated_event(self) -> Option<&'static str> {
        match self {
            Resource::Charges => Some("charge.updated"),
            Resource::Refunds => Some("refund.updated"),
            Resource::Customers => Some("customer.updated"),
            Resource::Subscriptions => Some("customer.subscription.updated"),
            Resource::Prices => Some("price.updated"),
            Resource::BalanceTransactions => None,
        }
    }
}

/// Serialized as its path (`"charges"`, …), as Stripe and the catalog name it.
impl serde::Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.path())
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// The error for a resource path Platform's Stripe source does not offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource path '{0}': expected one of charges, subscriptions, refunds, balance_transactions, customers, prices")]
pub struct UnknownResource(pub String);

impl FromStr for Resource {
    type Err = UnknownResource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Resource::ALL
            .into_iter()
            .find(|r| r.path() == s || r.object_name() == s)
            .ok_or_else(|| UnknownResource(s.to_string()))
    }
}
