//! Customers, prices and subscriptions, shaped like Stripe's (API 2023-08-16 plus the
//! per-item billing periods, plans and `discounts` arrays later versions show).

use chrono::{DateTime, Months};

use super::dataset::{hash, ns, salt, weighted, Rng};
use super::fake::{self, Currency};
use super::json::Json;
use super::Simulator;
use crate::Resource;

/// Subscription statuses and their weights; ~22% are canceled.
const SUB_STATUSES: &[(&str, u32)] = &[
    ("active", 52),
    ("canceled", 22),
    ("trialing", 8),
    ("past_due", 6),
    ("unpaid", 3),
    ("incomplete", 3),
    ("incomplete_expired", 2),
    ("paused", 4),
];

/// Every value `status=` accepts on `/v1/subscriptions`.
pub(crate) const STATUS_FILTERS: &[&str] = &[
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
];

/// The status of subscription `i`, from its own hash so list filters stay cheap.
pub(crate) fn subscription_status(seed: u64, i: u64) -> &'static str {
    let h = hash(&[
        seed,
        super::namespace(Resource::Subscriptions),
        i,
        salt::STATUS,
    ]);
    weighted(SUB_STATUSES, h)
}

/// Writes customer `i`.
pub(super) fn customer(sim: &Simulator, i: u64, live: bool, buf: &mut Vec<u8>) {
    let mut rng = sim.rng(Resource::Customers, i);
    let person = fake::person(&mut rng);
    let place = fake::place_of(&mut rng);
    let mut j = Json::new(buf);
    j.begin();
    j.str_with("id", |b| sim.push_id(Resource::Customers, i, b));
    j.str("object", "customer");
    match rng.below(10) {
        0..=5 => fake::address(&mut j, "address", &mut rng, place),
        6 => fake::null_address(&mut j, "address"),
        _ => j.null("address"),
    }
    let balance = match rng.below(1000) {
        0..=899 => 0,
        900..=979 => -rng.range(100, 50_000),
        980..=994 => rng.range(100, 20_000),
        _ => -rng.range(3_000_000_000, 9_000_000_000),
    };
    j.int("balance", balance);
    j.int("created", sim.created(Resource::Customers, i));
    j.opt_str(
        "currency",
        rng.pick(&[Some("usd"), Some("usd"), Some("eur"), Some("jpy"), None]),
    );
    j.null("default_source");
    j.bool("delinquent", rng.chance(0.04));
    j.opt_str(
        "description",
        rng.chance(0.3)
            .then(|| rng.pick(&["VIP customer", "Imported from legacy CRM", "Großkunde"])),
    );
    j.null("discount");
    if rng.chance(0.85) {
        fake::email(&mut j, "email", &mut rng, person);
    } else {
        j.null("email");
    }
    j.str_with("invoice_prefix", |b| {
        let h = rng.next_u64();
        for k in 0..8 {
            b.push(b"0123456789ABCDEF"[((h >> (4 * k)) & 0xf) as usize]);
        }
    });
    j.open("invoice_settings");
    j.null("custom_fields");
    if rng.chance(0.6) {
        j.str_with("default_payment_method", |b| {
            sim.push_ns_id("pm_", ns::PAYMENT_METHOD, !i, b)
        });
    } else {
        j.null("default_payment_method");
    }
    j.null("footer");
    j.null("rendering_options");
    j.close();
    j.bool("livemode", live);
    fake::metadata(&mut j, &mut rng);
    j.opt_str("name", rng.chance(0.9).then_some(person.name));
    j.int("next_invoice_sequence", rng.range(1, 40));
    fake::phone(&mut j, "phone", &mut rng, 0.4);
    j.open_arr("preferred_locales");
    for l in rng.pick(&[
        &[][..],
        &[][..],
        &["en"][..],
        &["fr-FR", "en"][..],
        &["ja"][..],
    ]) {
        j.item_str(l);
    }
    j.close_arr();
    match rng.below(10) {
        0..=6 => j.null("shipping"),
        7 => j.raw("shipping", "{}"),
        _ => {
            j.open("shipping");
            fake::address(&mut j, "address", &mut rng, place);
            j.str("name", person.name);
            fake::phone(&mut j, "phone", &mut rng, 0.5);
            j.close();
        }
    }
    j.str(
        "tax_exempt",
        rng.weighted(&[("none", 90), ("exempt", 6), ("reverse", 4)]),
    );
    j.null("test_clock");
    j.close();
}

/// What a price is; plans and subscriptions derive from it.
struct PriceFacts {
    cur: Currency,
    recurring: Option<(&'static str, i64)>,
    metered: bool,
    tiers_mode: Option<&'static str>,
    unit_amount: Option<i64>,
    /// Fractional decimal amount for metered prices (then `unit_amount` is null).
    fraction: Option<&'static str>,
    active: bool,
}

fn price_facts(sim: &Simulator, i: u64) -> (PriceFacts, Rng) {
    let mut rng = sim.rng(Resource::Prices, i);
    let cur = fake::currency(&mut rng);
    let recurring = rng.chance(0.75).then(|| {
        rng.weighted(&[
            (("month", 1), 60),
            (("month", 3), 5),
            (("year", 1), 25),
            (("week", 1), 7),
            (("day", 1), 3),
        ])
    });
    let metered = recurring.is_some() && rng.chance(0.1);
    let tiers_mode =
        (recurring.is_some() && rng.chance(0.08)).then(|| rng.pick(&["graduated", "volume"]));
    let base = rng.pick(&[
        500, 900, 1000, 1500, 1900, 2000, 2900, 4900, 9900, 19900, 49900,
    ]);
    let unit = match cur.exponent {
        0 => ((base as f64 / 100.0 * cur.per_usd) as i64 / 10).max(1) * 10,
        e => (base as f64 * cur.per_usd).round() as i64 * 10i64.pow(e - 2),
    };
    let fraction = (metered && rng.chance(0.5)).then(|| rng.pick(&["0.5", "12.75", "0.0125"]));
    let unit_amount = (tiers_mode.is_none() && fraction.is_none()).then_some(unit);
    let active = rng.chance(0.85);
    let facts = PriceFacts {
        cur,
        recurring,
        metered,
        tiers_mode,
        unit_amount,
        fraction,
        active,
    };
    (facts, rng)
}

/// Writes price `i`.
pub(super) fn price(sim: &Simulator, i: u64, live: bool, buf: &mut Vec<u8>) {
    let mut j = Json::new(buf);
    j.begin();
    price_fields(sim, &mut j, i, live);
    j.close();
}

fn price_fields(sim: &Simulator, j: &mut Json, i: u64, live: bool) {
    let (f, mut rng) = price_facts(sim, i);
    j.str_with("id", |b| sim.push_id(Resource::Prices, i, b));
    j.str("object", "price");
    j.bool("active", f.active);
    j.str(
        "billing_scheme",
        if f.tiers_mode.is_some() {
            "tiered"
        } else {
            "per_unit"
        },
    );
    j.int("created", sim.created(Resource::Prices, i));
    j.str("currency", f.cur.code);
    j.null("custom_unit_amount");
    j.bool("livemode", live);
    let nickname = rng.chance(0.6).then(|| {
        rng.pick(&[
            "Pro monthly",
            "Basic",
            "Enterprise (annual)",
            "Été 2025",
            "スタンダード",
        ])
    });
    if rng.chance(0.3) {
        let lk = format!(
            "{}_{}_{}",
            nickname.map_or("plan", |_| "pro"),
            f.cur.code,
            i % 97
        );
        j.str("lookup_key", &lk);
    } else {
        j.null("lookup_key");
    }
    fake::metadata(j, &mut rng);
    j.opt_str("nickname", nickname);
    j.str_with("product", |b| {
        sim.push_ns_id("prod_", ns::PRODUCT, i / 3, b)
    });
    match f.recurring {
        Some((interval, count)) => {
            j.open("recurring");
            j.null("aggregate_usage");
            j.str("interval", interval);
            j.int("interval_count", count);
            j.null("meter");
            j.opt_int("trial_period_days", rng.chance(0.15).then_some(14));
            j.str("usage_type", if f.metered { "metered" } else { "licensed" });
            j.close();
        }
        None => j.null("recurring"),
    }
    j.str(
        "tax_behavior",
        rng.weighted(&[("unspecified", 60), ("exclusive", 25), ("inclusive", 15)]),
    );
    j.opt_str("tiers_mode", f.tiers_mode);
    j.null("transform_quantity");
    j.str(
        "type",
        if f.recurring.is_some() {
            "recurring"
        } else {
            "one_time"
        },
    );
    j.opt_int("unit_amount", f.unit_amount);
    match (f.unit_amount, f.fraction) {
        (Some(u), _) => j.str("unit_amount_decimal", &u.to_string()),
        (None, Some(d)) => j.str("unit_amount_decimal", d),
        (None, None) => j.null("unit_amount_decimal"),
    }
}

/// The legacy `plan` mirror of a recurring price.
fn plan_fields(sim: &Simulator, j: &mut Json, i: u64, f: &PriceFacts, live: bool) {
    let (interval, count) = f.recurring.unwrap_or(("month", 1));
    j.str_with("id", |b| sim.push_id(Resource::Prices, i, b));
    j.str("object", "plan");
    j.bool("active", f.active);
    j.null("aggregate_usage");
    j.opt_int("amount", f.unit_amount);
    match f.unit_amount {
        Some(u) => j.str("amount_decimal", &u.to_string()),
        None => j.opt_str("amount_decimal", f.fraction),
    }
    j.str(
        "billing_scheme",
        if f.tiers_mode.is_some() {
            "tiered"
        } else {
            "per_unit"
        },
    );
    j.int("created", sim.created(Resource::Prices, i));
    j.str("currency", f.cur.code);
    j.str("interval", interval);
    j.int("interval_count", count);
    j.bool("livemode", live);
    j.raw("metadata", "{}");
    j.null("meter");
    j.null("nickname");
    j.str_with("product", |b| {
        sim.push_ns_id("prod_", ns::PRODUCT, i / 3, b)
    });
    j.opt_str("tiers_mode", f.tiers_mode);
    j.null("transform_usage");
    j.null("trial_period_days");
    j.str("usage_type", if f.metered { "metered" } else { "licensed" });
}

/// The first recurring price at or before `start` (cyclically) matching `like`'s currency
/// and interval, if one turns up within a few steps.
fn recurring_price(
    sim: &Simulator,
    start: u64,
    like: Option<&PriceFacts>,
) -> Option<(u64, PriceFacts)> {
    let n = sim.len(Resource::Prices).max(1);
    (0..64).find_map(|k| {
        let j = (start + n * 64 - k) % n;
        let (f, _) = price_facts(sim, j);
        let ok = f.recurring.is_some()
            && like.is_none_or(|l| l.cur == f.cur && l.recurring == f.recurring);
        ok.then_some((j, f))
    })
}

/// `t` advanced by `k` billing intervals.
fn advance(t: i64, (interval, count): (&str, i64), k: i64) -> i64 {
    let months = match interval {
        "day" => return t + 86_400 * count * k,
        "week" => return t + 604_800 * count * k,
        "year" => 12 * count * k,
        _ => count * k,
    };
    DateTime::from_timestamp(t, 0)
        .and_then(|d| d.checked_add_months(Months::new(u32::try_from(months).ok()?)))
        .map_or(t, |d| d.timestamp())
}

/// The billing period `[start, end)` containing `at`, counted from `anchor`.
fn period(anchor: i64, every: (&str, i64), at: i64) -> (i64, i64) {
    let approx = advance(0, every, 1).max(1);
    let mut k = ((at - anchor) / approx).max(0);
    while k > 0 && advance(anchor, every, k) > at {
        k -= 1;
    }
    while advance(anchor, every, k + 1) <= at {
        k += 1;
    }
    (advance(anchor, every, k), advance(anchor, every, k + 1))
}

/// Writes subscription `i`.
pub(super) fn subscription(sim: &Simulator, i: u64, live: bool, buf: &mut Vec<u8>) {
    let mut rng = sim.rng(Resource::Subscriptions, i);
    let created = sim.created(Resource::Subscriptions, i);
    let now = sim.config.end;
    let status = subscription_status(sim.config.seed, i);
    let first = sim.pick_before(Resource::Prices, created, &mut rng);
    let (p0, f0) = recurring_price(sim, first, None).unwrap_or_else(|| (0, price_facts(sim, 0).0));
    let every = f0.recurring.unwrap_or(("month", 1));
    let mut items = vec![(p0, f0)];
    let extra = rng.weighted(&[(0, 80), (1, 15), (2, 5)]);
    for _ in 0..extra {
        let start = sim.pick_before(Resource::Prices, created, &mut rng);
        if let Some(more) = recurring_price(sim, start, Some(&items[0].1)) {
            if items.iter().all(|(p, _)| *p != more.0) {
                items.push(more);
            }
        }
    }
    let trial = status == "trialing" || rng.chance(0.1);
    let trial_end = trial.then(|| {
        if status == "trialing" {
            now + rng.range(1, 14) * 86_400
        } else {
            created + 14 * 86_400
        }
    });
    let anchor = trial_end.unwrap_or(created);
    let canceled_at = (status == "canceled").then(|| rng.range(created, now.max(created + 1)));
    let as_of = canceled_at.unwrap_or(now).max(anchor);
    let (period_start, period_end) = period(anchor, every, as_of);
    let cancel_at_period_end = status == "active" && rng.chance(0.05);
    let send_invoice = rng.chance(0.1);
    let customer = sim.pick_before(Resource::Customers, created, &mut rng);

    let mut j = Json::new(buf);
    j.begin();
    j.str_with("id", |b| sim.push_id(Resource::Subscriptions, i, b));
    j.str("object", "subscription");
    j.null("application");
    if rng.chance(0.05) {
        j.float("application_fee_percent", 5.0);
    } else {
        j.null("application_fee_percent");
    }
    j.raw("automatic_tax", r#"{"enabled":false,"liability":null}"#);
    j.int("billing_cycle_anchor", anchor);
    j.null("billing_cycle_anchor_config");
    j.null("billing_thresholds");
    j.opt_int("cancel_at", cancel_at_period_end.then_some(period_end));
    j.bool("cancel_at_period_end", cancel_at_period_end);
    j.opt_int("canceled_at", canceled_at);
    j.open("cancellation_details");
    if canceled_at.is_some() {
        j.opt_str(
            "comment",
            rng.chance(0.2).then_some("Zu teuer für uns — danke!"),
        );
        j.opt_str(
            "feedback",
            rng.pick(&[
                None,
                Some("too_expensive"),
                Some("switched_service"),
                Some("unused"),
            ]),
        );
        j.str(
            "reason",
            rng.pick(&[
                "cancellation_requested",
                "payment_failed",
                "payment_disputed",
            ]),
        );
    } else {
        j.null("comment");
        j.null("feedback");
        j.null("reason");
    }
    j.close();
    j.str(
        "collection_method",
        if send_invoice {
            "send_invoice"
        } else {
            "charge_automatically"
        },
    );
    j.int("created", created);
    j.str("currency", items[0].1.cur.code);
    j.int("current_period_end", period_end);
    j.int("current_period_start", period_start);
    j.str_with("customer", |b| {
        sim.push_id(Resource::Customers, customer, b)
    });
    j.opt_int("days_until_due", send_invoice.then_some(30));
    if send_invoice {
        j.null("default_payment_method");
    } else {
        j.str_with("default_payment_method", |b| {
            sim.push_ns_id("pm_", ns::PAYMENT_METHOD, !customer, b)
        });
    }
    j.null("default_source");
    j.raw("default_tax_rates", "[]");
    j.opt_str(
        "description",
        rng.chance(0.2).then_some("Team plan – 5 seats"),
    );
    if rng.chance(0.1) {
        j.open("discount");
        j.str_with("id", |b| sim.push_ns_id("di_", ns::DISCOUNT, i, b));
        j.str("object", "discount");
        j.null("checkout_session");
        j.raw(
            "coupon",
            r#"{"id":"SUMMER25","object":"coupon","amount_off":null,"created":1719792000,"currency":null,"duration":"repeating","duration_in_months":3,"livemode":false,"max_redemptions":null,"metadata":{},"name":"Summer 25% off","percent_off":25.0,"redeem_by":null,"times_redeemed":17,"valid":true}"#,
        );
        j.str_with("customer", |b| {
            sim.push_id(Resource::Customers, customer, b)
        });
        j.int("end", created + 90 * 86_400);
        j.null("invoice");
        j.null("invoice_item");
        j.null("promotion_code");
        j.int("start", created);
        j.str_with("subscription", |b| {
            sim.push_id(Resource::Subscriptions, i, b)
        });
        j.close();
    } else {
        j.null("discount");
    }
    j.raw("discounts", "[]");
    j.opt_int("ended_at", canceled_at);
    j.raw(
        "invoice_settings",
        r#"{"account_tax_ids":null,"issuer":{"type":"self"}}"#,
    );
    j.open("items");
    j.str("object", "list");
    j.open_arr("data");
    for (k, (p, f)) in items.iter().enumerate() {
        j.begin();
        j.str_with("id", |b| {
            sim.push_ns_id("si_", ns::SUB_ITEM, (i << 2) | k as u64, b)
        });
        j.str("object", "subscription_item");
        j.null("billing_thresholds");
        j.int("created", created);
        j.int("current_period_end", period_end);
        j.int("current_period_start", period_start);
        j.raw("discounts", "[]");
        j.raw("metadata", "{}");
        j.open("plan");
        plan_fields(sim, &mut j, *p, f, live);
        j.close();
        j.open("price");
        price_fields(sim, &mut j, *p, live);
        j.close();
        if !f.metered {
            j.int("quantity", rng.pick(&[1, 1, 1, 2, 5, 25]));
        }
        j.str_with("subscription", |b| {
            sim.push_id(Resource::Subscriptions, i, b)
        });
        j.raw("tax_rates", "[]");
        j.close();
    }
    j.close_arr();
    j.bool("has_more", false);
    j.int("total_count", items.len() as i64);
    j.str_with("url", |b| {
        b.extend_from_slice(b"/v1/subscription_items?subscription=");
        sim.push_id(Resource::Subscriptions, i, b);
    });
    j.close();
    if status == "incomplete_expired" && rng.chance(0.5) {
        j.null("latest_invoice");
    } else {
        j.str_with("latest_invoice", |b| {
            sim.push_ns_id("in_", ns::INVOICE, !i, b)
        });
    }
    j.bool("livemode", live);
    fake::metadata(&mut j, &mut rng);
    j.null("next_pending_invoice_item_invoice");
    j.null("on_behalf_of");
    if status == "paused" {
        j.open("pause_collection");
        j.str("behavior", "void");
        j.opt_int("resumes_at", rng.chance(0.5).then_some(now + 30 * 86_400));
        j.close();
    } else {
        j.null("pause_collection");
    }
    j.raw(
        "payment_settings",
        r#"{"payment_method_options":null,"payment_method_types":null,"save_default_payment_method":"off"}"#,
    );
    j.null("pending_invoice_item_interval");
    j.null("pending_setup_intent");
    j.null("pending_update");
    j.null("schedule");
    j.int("start_date", created);
    j.str("status", status);
    j.null("test_clock");
    j.null("transfer_data");
    j.opt_int("trial_end", trial_end);
    j.raw(
        "trial_settings",
        r#"{"end_behavior":{"missing_payment_method":"create_invoice"}}"#,
    );
    j.opt_int("trial_start", trial.then_some(created));
    j.close();
}
