//! Charges, refunds and balance transactions, shaped like Stripe's (API 2023-08-16).

use super::dataset::{ns, push_base62, Rng};
use super::fake::{self, Currency, USD};
use super::json::Json;
use super::Simulator;
use crate::Resource;

/// The first draws of a charge's random stream: its currency and amount. Refunds and
/// balance transactions that point at a charge replay these to stay consistent with it.
fn charge_core(rng: &mut Rng) -> (Currency, i64) {
    let c = fake::currency(rng);
    let amount = fake::amount(rng, c);
    (c, amount)
}

#[derive(Clone, Copy, PartialEq)]
enum Status {
    Succeeded,
    Failed,
    Pending,
}

/// Writes charge `i`.
pub(super) fn charge(sim: &Simulator, i: u64, live: bool, buf: &mut Vec<u8>) {
    let mut rng = sim.rng(Resource::Charges, i);
    let (cur, amount) = charge_core(&mut rng);
    let created = sim.created(Resource::Charges, i);
    let status = rng.weighted(&[
        (Status::Succeeded, 88),
        (Status::Failed, 9),
        (Status::Pending, 3),
    ]);
    let captured = status != Status::Failed && !rng.chance(0.04);
    let amount_captured = if captured { amount } else { 0 };
    let amount_refunded = match (captured, rng.below(100)) {
        (true, 0..=6) => amount,
        (true, 7..=10) => (amount / 2).max(1),
        _ => 0,
    };
    let person = fake::person(&mut rng);
    let place = fake::place_of(&mut rng);
    let customer = (!sim.is_empty(Resource::Customers) && rng.chance(0.8))
        .then(|| sim.pick_before(Resource::Customers, created, &mut rng));
    let pm_type = rng.weighted(&[("card", 90), ("sepa_debit", 5), ("us_bank_account", 5)]);

    let mut j = Json::new(buf);
    j.begin();
    j.str_with("id", |b| sim.push_id(Resource::Charges, i, b));
    j.str("object", "charge");
    j.int("amount", amount);
    j.int("amount_captured", amount_captured);
    j.int("amount_refunded", amount_refunded);
    j.null("application");
    j.null("application_fee");
    if rng.chance(0.05) {
        j.int("application_fee_amount", amount / 10);
    } else {
        j.null("application_fee_amount");
    }
    if status == Status::Failed {
        j.null("balance_transaction");
    } else {
        j.str_with("balance_transaction", |b| {
            sim.push_ns_id("txn_", ns::CHARGE_TXN, i, b)
        });
    }
    j.open("billing_details");
    if rng.chance(0.7) {
        fake::address(&mut j, "address", &mut rng, place);
    } else {
        fake::null_address(&mut j, "address");
    }
    if rng.chance(0.6) {
        fake::email(&mut j, "email", &mut rng, person);
    } else {
        j.null("email");
    }
    j.str("name", person.name);
    fake::phone(&mut j, "phone", &mut rng, 0.3);
    j.null("tax_id");
    j.close();
    j.opt_str(
        "calculated_statement_descriptor",
        (status != Status::Failed).then_some("SIMSHOP* ONLINE"),
    );
    j.bool("captured", captured);
    j.int("created", created);
    j.str("currency", cur.code);
    match customer {
        Some(c) => j.str_with("customer", |b| sim.push_id(Resource::Customers, c, b)),
        None => j.null("customer"),
    }
    j.opt_str(
        "description",
        rng.chance(0.6).then(|| {
            rng.pick(&[
                "Order #1042",
                "Subscription update",
                "Abonnement Premium — März",
                "ギフトカード",
                "Payment for invoice",
            ])
        }),
    );
    j.null("destination");
    let disputed = captured && rng.chance(0.01);
    if disputed {
        j.str_with("dispute", |b| sim.push_ns_id("dp_", ns::DISPUTE, i, b));
    } else {
        j.null("dispute");
    }
    j.bool("disputed", disputed);
    j.null("failure_balance_transaction");
    let decline = rng.pick(&[
        (
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        ),
        (
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        ("expired_card", "expired_card", "Your card has expired."),
        (
            "incorrect_cvc",
            "incorrect_cvc",
            "Your card's security code is incorrect.",
        ),
    ]);
    if status == Status::Failed {
        j.str("failure_code", decline.0);
        j.str("failure_message", decline.2);
    } else {
        j.null("failure_code");
        j.null("failure_message");
    }
    if disputed {
        j.raw("fraud_details", r#"{"stripe_report":"fraudulent"}"#);
    } else {
        j.raw("fraud_details", "{}");
    }
    if rng.chance(0.3) {
        j.str_with("invoice", |b| sim.push_ns_id("in_", ns::INVOICE, i, b));
    } else {
        j.null("invoice");
    }
    j.bool("livemode", live);
    fake::metadata(&mut j, &mut rng);
    j.null("on_behalf_of");
    j.open("outcome");
    let risk_score = rng.range(0, 99);
    if status == Status::Failed {
        j.str("network_status", "declined_by_network");
        j.str("reason", decline.1);
        j.str("risk_level", "normal");
        j.int("risk_score", risk_score.min(64));
        j.str(
            "seller_message",
            "The bank did not return any further details with this decline.",
        );
        j.str("type", "issuer_declined");
    } else {
        j.str("network_status", "approved_by_network");
        j.null("reason");
        j.str(
            "risk_level",
            if risk_score > 75 {
                "elevated"
            } else {
                "normal"
            },
        );
        j.int("risk_score", risk_score);
        j.str("seller_message", "Payment complete.");
        j.str("type", "authorized");
    }
    j.close();
    j.bool("paid", status == Status::Succeeded);
    j.str_with("payment_intent", |b| {
        sim.push_ns_id("pi_", ns::PAYMENT_INTENT, i, b)
    });
    j.str_with("payment_method", |b| {
        sim.push_ns_id("pm_", ns::PAYMENT_METHOD, i, b)
    });
    payment_method_details(sim, &mut j, &mut rng, pm_type, amount, i);
    j.raw("radar_options", "{}");
    if rng.chance(0.5) {
        fake::email(&mut j, "receipt_email", &mut rng, person);
    } else {
        j.null("receipt_email");
    }
    j.null("receipt_number");
    j.str_with("receipt_url", |b| {
        b.extend_from_slice(b"https://pay.stripe.com/receipts/payment/");
        push_base62(i ^ sim.config.seed.rotate_left(17), 96, b);
    });
    j.bool("refunded", amount_refunded == amount && amount_refunded > 0);
    j.open("refunds");
    j.str("object", "list");
    j.open_arr("data");
    if amount_refunded > 0 {
        let refunded_at = created + rng.range(3_600, 86_400 * 20);
        j.begin();
        refund_fields(
            sim,
            &mut j,
            &mut rng,
            RefundOf {
                id: (ns::NESTED_REFUND, i),
                charge: i,
                created: refunded_at,
                cur,
                amount: amount_refunded,
            },
        );
        j.close();
    }
    j.close_arr();
    j.bool("has_more", false);
    j.int("total_count", i64::from(amount_refunded > 0));
    j.str_with("url", |b| {
        b.extend_from_slice(b"/v1/charges/");
        sim.push_id(Resource::Charges, i, b);
        b.extend_from_slice(b"/refunds");
    });
    j.close();
    j.null("review");
    match rng.below(10) {
        0..=5 => j.null("shipping"),
        6 => j.raw("shipping", "{}"),
        _ => {
            j.open("shipping");
            fake::address(&mut j, "address", &mut rng, place);
            j.opt_str("carrier", rng.chance(0.5).then_some("UPS"));
            j.str("name", person.name);
            j.null("phone");
            j.null("tracking_number");
            j.close();
        }
    }
    j.null("source_transfer");
    j.null("statement_descriptor");
    j.opt_str(
        "statement_descriptor_suffix",
        rng.chance(0.1).then_some("ORDER"),
    );
    j.str(
        "status",
        match status {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Pending => "pending",
        },
    );
    j.null("transfer_data");
    j.null("transfer_group");
    j.close();
}

const BRANDS: &[(&str, u32)] = &[
    ("visa", 55),
    ("mastercard", 25),
    ("amex", 10),
    ("discover", 4),
    ("jcb", 3),
    ("unionpay", 2),
    ("diners", 1),
];

fn payment_method_details(
    sim: &Simulator,
    j: &mut Json,
    rng: &mut Rng,
    pm_type: &str,
    amount: i64,
    i: u64,
) {
    j.open("payment_method_details");
    let last4 = format!("{:04}", rng.below(10_000));
    match pm_type {
        "sepa_debit" => {
            j.open("sepa_debit");
            j.str("bank_code", "37040044");
            j.null("branch_code");
            j.str("country", "DE");
            j.str_with("fingerprint", |b| push_base62(rng.next_u64(), 16, b));
            j.str("last4", &last4);
            j.str_with("mandate", |b| sim.push_ns_id("mandate_", ns::MANDATE, i, b));
            j.close();
        }
        "us_bank_account" => {
            j.open("us_bank_account");
            j.str("account_holder_type", "individual");
            j.str("account_type", "checking");
            j.str("bank_name", "STRIPE TEST BANK");
            j.str_with("fingerprint", |b| push_base62(rng.next_u64(), 16, b));
            j.str("last4", &last4);
            j.str("routing_number", "110000000");
            j.close();
        }
        _ => {
            let brand = rng.weighted(BRANDS);
            let check = |rng: &mut Rng| {
                rng.pick(&[
                    "\"pass\"",
                    "\"pass\"",
                    "\"pass\"",
                    "null",
                    "\"unavailable\"",
                    "\"fail\"",
                ])
            };
            j.open("card");
            j.null("amount_authorized");
            j.str("brand", brand);
            j.open("checks");
            j.raw("address_line1_check", check(rng));
            j.raw("address_postal_code_check", check(rng));
            j.raw(
                "cvc_check",
                if rng.chance(0.95) { "\"pass\"" } else { "null" },
            );
            j.close();
            j.str(
                "country",
                rng.pick(&["US", "US", "US", "GB", "DE", "FR", "JP", "KR", "CA", "BR"]),
            );
            j.int("exp_month", rng.range(1, 12));
            j.int("exp_year", rng.range(2026, 2032));
            j.raw("extended_authorization", r#"{"status":"disabled"}"#);
            j.str_with("fingerprint", |b| push_base62(rng.next_u64(), 16, b));
            j.str(
                "funding",
                rng.pick(&["credit", "credit", "debit", "prepaid"]),
            );
            j.raw("incremental_authorization", r#"{"status":"unavailable"}"#);
            j.null("installments");
            j.str("last4", &last4);
            j.null("mandate");
            j.raw("multicapture", r#"{"status":"unavailable"}"#);
            j.str("network", brand);
            j.raw("network_token", r#"{"used":false}"#);
            j.open("overcapture");
            j.int("maximum_amount_capturable", amount);
            j.str("status", "unavailable");
            j.close();
            if rng.chance(0.2) {
                j.raw(
                    "three_d_secure",
                    r#"{"authentication_flow":"challenge","electronic_commerce_indicator":"05","exemption_indicator":null,"result":"authenticated","result_reason":null,"transaction_id":"a7b1d0c2-5f3e-4c1a-9e0b-0e6f9b8c7d21","version":"2.2.0"}"#,
                );
            } else {
                j.null("three_d_secure");
            }
            match rng.below(10) {
                0 => j.raw(
                    "wallet",
                    r#"{"apple_pay":{"type":"apple_pay"},"dynamic_last4":"4242","type":"apple_pay"}"#,
                ),
                1 => j.raw(
                    "wallet",
                    r#"{"dynamic_last4":null,"google_pay":{},"type":"google_pay"}"#,
                ),
                2 => j.raw("wallet", r#"{"dynamic_last4":null,"link":{},"type":"link"}"#),
                _ => j.null("wallet"),
            }
            j.close();
        }
    }
    j.str("type", pm_type);
    j.close();
}

/// What a refund refers to; shared by listed refunds and the ones nested in charges.
struct RefundOf {
    id: (u64, u64),
    charge: u64,
    created: i64,
    cur: Currency,
    amount: i64,
}

fn refund_fields(sim: &Simulator, j: &mut Json, rng: &mut Rng, r: RefundOf) {
    let (id_ns, id_index) = r.id;
    let status = rng.weighted(&[
        ("succeeded", 90),
        ("pending", 5),
        ("failed", 3),
        ("canceled", 2),
    ]);
    j.str_with("id", |b| sim.push_ns_id("re_", id_ns, id_index, b));
    j.str("object", "refund");
    j.int("amount", r.amount);
    if status == "canceled" {
        j.null("balance_transaction");
    } else {
        j.str_with("balance_transaction", |b| {
            sim.push_ns_id("txn_", ns::REFUND_TXN, id_index ^ id_ns << 56, b)
        });
    }
    j.str_with("charge", |b| sim.push_id(Resource::Charges, r.charge, b));
    j.int("created", r.created);
    j.str("currency", r.cur.code);
    if rng.chance(0.5) {
        j.str_with("customer", |b| {
            sim.push_id(
                Resource::Customers,
                rng.below(sim.len(Resource::Customers).max(1)),
                b,
            )
        });
    } else {
        j.null("customer");
    }
    j.open("destination_details");
    j.open("card");
    j.str_with("reference", |b| push_base62(rng.next_u64(), 12, b));
    j.str("reference_status", "available");
    j.str("reference_type", "acquirer_reference_number");
    j.str("type", "refund");
    j.close();
    j.str("type", "card");
    j.close();
    if status == "failed" {
        j.str_with("failure_balance_transaction", |b| {
            sim.push_ns_id("txn_", ns::REFUND_TXN, !id_index, b)
        });
        j.str("failure_reason", "expired_or_canceled_card");
    }
    if rng.chance(0.03) {
        j.null("metadata");
    } else {
        fake::metadata(j, rng);
    }
    j.str_with("payment_intent", |b| {
        sim.push_ns_id("pi_", ns::PAYMENT_INTENT, r.charge, b)
    });
    j.str_with("payment_method", |b| {
        sim.push_ns_id("pm_", ns::PAYMENT_METHOD, r.charge, b)
    });
    j.opt_str(
        "reason",
        rng.pick(&[
            None,
            None,
            Some("requested_by_customer"),
            Some("duplicate"),
            Some("fraudulent"),
        ]),
    );
    if rng.chance(0.3) {
        j.str(
            "receipt_number",
            &format!("{}-{}", 1000 + rng.below(9000), 1000 + rng.below(9000)),
        );
    } else {
        j.null("receipt_number");
    }
    j.null("source_transfer_reversal");
    j.str("status", status);
    j.null("transfer_reversal");
}

/// Writes refund `i`: it refunds an existing, older charge, in that charge's currency.
pub(super) fn refund(sim: &Simulator, i: u64, buf: &mut Vec<u8>) {
    let mut rng = sim.rng(Resource::Refunds, i);
    let created = sim.created(Resource::Refunds, i);
    let charge = sim.pick_before(Resource::Charges, created, &mut rng);
    let (cur, charge_amount) = charge_core(&mut sim.rng(Resource::Charges, charge));
    let amount = if rng.chance(0.7) {
        charge_amount
    } else {
        (charge_amount * rng.range(10, 90) / 100).max(1)
    };
    let mut j = Json::new(buf);
    j.begin();
    refund_fields(
        sim,
        &mut j,
        &mut rng,
        RefundOf {
            id: (super::namespace(Resource::Refunds), i),
            charge,
            created,
            cur,
            amount,
        },
    );
    j.close();
}

/// Writes balance transaction `i`, settled in USD; `net = amount − fee`.
pub(super) fn balance_transaction(sim: &Simulator, i: u64, buf: &mut Vec<u8>) {
    let mut rng = sim.rng(Resource::BalanceTransactions, i);
    let created = sim.created(Resource::BalanceTransactions, i);
    let kind = rng.weighted(&[
        ("charge", 62),
        ("payment", 4),
        ("refund", 12),
        ("payout", 8),
        ("stripe_fee", 5),
        ("adjustment", 3),
        ("transfer", 3),
        ("application_fee", 2),
        ("payment_refund", 1),
    ]);
    let mut exchange_rate = None;
    let mut source_charge = None;
    let (amount, fee, category, description): (i64, i64, &str, Option<&str>) = match kind {
        "charge" | "payment" | "application_fee" => {
            let k = sim.pick_before(Resource::Charges, created, &mut rng);
            source_charge = Some(k);
            let (cur, amt) = charge_core(&mut sim.rng(Resource::Charges, k));
            let usd = fake::to_usd_cents(amt, cur);
            if cur != USD {
                exchange_rate = Some((100.0 / cur.per_usd).round() / 100.0);
            }
            let fee = usd * 29 / 1000 + 30;
            (usd, fee, "charge", Some("Payment for order"))
        }
        "refund" | "payment_refund" => {
            let amt = -fake::amount(&mut rng, USD);
            (amt, 0, "refund", Some("REFUND FOR CHARGE (Order #1042)"))
        }
        "payout" => (
            -rng.range(10_000, 5_000_000_000),
            0,
            "payout",
            Some("STRIPE PAYOUT"),
        ),
        "stripe_fee" => (
            -rng.range(100, 20_000),
            0,
            "fee",
            Some("Billing - Usage Fee (2025-06-01 - 2025-06-30)"),
        ),
        "adjustment" => (
            -rng.range(1_000, 50_000),
            1_500,
            "dispute",
            Some("Chargeback withdrawal"),
        ),
        _ => (-rng.range(1_000, 200_000), 0, "transfer", None),
    };
    let day = 86_400;
    let available_on = (created / day + rng.range(2, 7)) * day;
    let mut j = Json::new(buf);
    j.begin();
    j.str_with("id", |b| sim.push_id(Resource::BalanceTransactions, i, b));
    j.str("object", "balance_transaction");
    j.int("amount", amount);
    j.int("available_on", available_on);
    j.str("balance_type", "payments");
    j.int("created", created);
    j.str("currency", USD.code);
    j.opt_str("description", description);
    match exchange_rate {
        Some(x) => j.float("exchange_rate", x),
        None => j.null("exchange_rate"),
    }
    j.int("fee", fee);
    j.open_arr("fee_details");
    if fee > 0 {
        j.begin();
        j.int("amount", fee);
        j.null("application");
        j.str("currency", USD.code);
        j.str("description", "Stripe processing fees");
        j.str("type", "stripe_fee");
        j.close();
    }
    j.close_arr();
    j.int("net", amount - fee);
    j.str("reporting_category", category);
    match (kind, source_charge) {
        (_, Some(k)) => j.str_with("source", |b| sim.push_id(Resource::Charges, k, b)),
        ("refund" | "payment_refund", _) if !sim.is_empty(Resource::Refunds) => {
            let k = sim.pick_before(Resource::Refunds, created, &mut rng);
            j.str_with("source", |b| sim.push_id(Resource::Refunds, k, b));
        }
        ("payout", _) => j.str_with("source", |b| sim.push_ns_id("po_", ns::PAYOUT, i, b)),
        ("transfer", _) => j.str_with("source", |b| sim.push_ns_id("tr_", ns::TRANSFER, i, b)),
        ("adjustment", _) => j.str_with("source", |b| sim.push_ns_id("dp_", ns::DISPUTE, i, b)),
        _ => j.null("source"),
    }
    j.str(
        "status",
        if available_on > sim.config.end {
            "pending"
        } else {
            "available"
        },
    );
    j.str("type", kind);
    j.close();
}
