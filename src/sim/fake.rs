//! Vocabulary shared by the generators: currencies and amounts, people, places, metadata.
//! Values are chosen to exercise decoders: unicode, quotes and backslashes, nulls,
//! zero- and three-decimal currencies, i64-sized amounts.

use super::dataset::Rng;
use super::json::Json;

/// A presentment currency: code, minor-unit exponent, rough units per USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Currency {
    pub code: &'static str,
    pub exponent: u32,
    pub per_usd: f64,
}

const fn cur(code: &'static str, exponent: u32, per_usd: f64) -> Currency {
    Currency {
        code,
        exponent,
        per_usd,
    }
}

pub(crate) const USD: Currency = cur("usd", 2, 1.0);

const CURRENCIES: &[(Currency, u32)] = &[
    (USD, 45),
    (cur("eur", 2, 0.92), 15),
    (cur("gbp", 2, 0.79), 9),
    (cur("jpy", 0, 150.0), 6),
    (cur("krw", 0, 1350.0), 3),
    (cur("cad", 2, 1.36), 5),
    (cur("aud", 2, 1.52), 4),
    (cur("chf", 2, 0.88), 2),
    (cur("sek", 2, 10.5), 2),
    (cur("brl", 2, 5.0), 3),
    (cur("inr", 2, 83.0), 3),
    (cur("mxn", 2, 17.0), 2),
    (cur("bhd", 3, 0.376), 1),
];

/// A presentment currency, USD-heavy.
pub(crate) fn currency(rng: &mut Rng) -> Currency {
    rng.weighted(CURRENCIES)
}

/// A plausible order amount in the currency's minor unit.
pub(crate) fn amount(rng: &mut Rng, c: Currency) -> i64 {
    let usd = match rng.below(100) {
        0..=39 => rng.range(5, 50),
        40..=74 => rng.range(50, 200),
        75..=94 => rng.range(200, 1_000),
        _ => rng.range(1_000, 10_000),
    };
    let major = ((usd as f64) * c.per_usd).round().max(1.0) as i64;
    match c.exponent {
        0 => (major / 10).max(1) * 10,
        3 => major * 1_000 + rng.range(0, 99) * 10,
        _ => major * 100 + rng.pick(&[0, 0, 0, 99, 50, 95, 49]),
    }
}

/// Converts a minor-unit amount to USD cents (the account's settlement currency).
pub(crate) fn to_usd_cents(amount: i64, c: Currency) -> i64 {
    let major = amount as f64 / 10f64.powi(c.exponent as i32);
    (major / c.per_usd * 100.0).round() as i64
}

/// A customer-ish person.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Person {
    pub name: &'static str,
    pub handle: &'static str,
}

const PEOPLE: &[Person] = &[
    Person {
        name: "Jenny Rosen",
        handle: "jenny.rosen",
    },
    Person {
        name: "José García",
        handle: "jose.garcia",
    },
    Person {
        name: "Zoë Müller",
        handle: "zoe.mueller",
    },
    Person {
        name: "Léa Dubois",
        handle: "lea.dubois",
    },
    Person {
        name: "渡辺 健太",
        handle: "kenta.watanabe",
    },
    Person {
        name: "김민수",
        handle: "minsu.kim",
    },
    Person {
        name: "Siobhán O'Brien",
        handle: "siobhan.obrien",
    },
    Person {
        name: "Łukasz Żółkiewski",
        handle: "lukasz.z",
    },
    Person {
        name: "أحمد الفارسي",
        handle: "ahmed.alfarsi",
    },
    Person {
        name: "Priya Sharma",
        handle: "priya.sharma",
    },
    Person {
        name: "John Smith",
        handle: "john.smith",
    },
    Person {
        name: "Emma Johnson",
        handle: "emma.johnson",
    },
    Person {
        name: "Liam Brown",
        handle: "liam.brown",
    },
    Person {
        name: "Olivia Wilson",
        handle: "olivia.wilson",
    },
    Person {
        name: "Noah Taylor",
        handle: "noah.taylor",
    },
    Person {
        name: "Ana Souza",
        handle: "ana.souza",
    },
    Person {
        name: "Дмитрий Иванов",
        handle: "dmitry.ivanov",
    },
    Person {
        name: "Chloé Martin",
        handle: "chloe.martin",
    },
    Person {
        name: "Dwayne \"The Rock\" Johnson",
        handle: "dwayne.j",
    },
    Person {
        name: "Mia Schneider",
        handle: "mia.schneider",
    },
];

pub(crate) fn person(rng: &mut Rng) -> Person {
    rng.pick(PEOPLE)
}

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "exämple.de",
];

/// Writes `"k":"handle+N@domain"`.
pub(crate) fn email(j: &mut Json, k: &str, rng: &mut Rng, p: Person) {
    let n = rng.below(1000) as i64;
    let domain = rng.pick(DOMAINS);
    j.str(k, &format!("{}+{n}@{domain}", p.handle));
}

/// A postal address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub country: &'static str,
    pub city: &'static str,
    pub state: Option<&'static str>,
    pub postal_code: &'static str,
    pub line1: &'static str,
}

const fn place(
    country: &'static str,
    city: &'static str,
    state: Option<&'static str>,
    postal_code: &'static str,
    line1: &'static str,
) -> Place {
    Place {
        country,
        city,
        state,
        postal_code,
        line1,
    }
}

const PLACES: &[Place] = &[
    place(
        "US",
        "San Francisco",
        Some("CA"),
        "94103",
        "510 Townsend St",
    ),
    place("US", "New York", Some("NY"), "10001", "350 5th Ave"),
    place("US", "Austin", Some("TX"), "78701", "600 Congress Ave"),
    place("GB", "London", None, "EC1A 1BB", "1 Long Lane"),
    place("DE", "Berlin", None, "10117", "Friedrichstraße 68"),
    place("FR", "Paris", None, "75002", "12 Rue de la Paix"),
    place("JP", "千代田区", Some("東京都"), "100-0005", "丸の内1-1-1"),
    place("KR", "서울", None, "04524", "세종대로 110"),
    place("CA", "Toronto", Some("ON"), "M5V 2T6", "100 King St W"),
    place("AU", "Sydney", Some("NSW"), "2000", "1 Martin Pl"),
    place(
        "BR",
        "São Paulo",
        Some("SP"),
        "01310-100",
        "Av. Paulista, 1578",
    ),
    place("IN", "Mumbai", Some("MH"), "400001", "Nariman Point"),
];

pub(crate) fn place_of(rng: &mut Rng) -> Place {
    rng.pick(PLACES)
}

/// Writes an `address` object (all six keys, some null).
pub(crate) fn address(j: &mut Json, k: &str, rng: &mut Rng, p: Place) {
    j.open(k);
    j.str("city", p.city);
    j.str("country", p.country);
    j.str("line1", p.line1);
    j.opt_str(
        "line2",
        rng.chance(0.2)
            .then(|| rng.pick(&["Apt 4B", "Suite 200", "2. OG", "Floor 3"])),
    );
    j.str("postal_code", p.postal_code);
    j.opt_str("state", p.state);
    j.close();
}

/// Writes an all-null `address`, as Stripe does when nothing was collected.
pub(crate) fn null_address(j: &mut Json, k: &str) {
    j.raw(
        k,
        r#"{"city":null,"country":null,"line1":null,"line2":null,"postal_code":null,"state":null}"#,
    );
}

/// Writes a phone number in E.164 form or null.
pub(crate) fn phone(j: &mut Json, k: &str, rng: &mut Rng, p: f64) {
    if rng.chance(p) {
        j.str(k, &format!("+1555{:07}", rng.below(10_000_000)));
    } else {
        j.null(k);
    }
}

const NOTES: &[&str] = &[
    "Merci beaucoup 🙏",
    "配送は午前中希望",
    "Line one\nline two",
    "He said \"ship it\"",
    "C:\\exports\\q3.csv",
    "Ünïcödé ✓ — ok",
    "שלום",
    "{\"looks\":\"like json\"}",
];

/// Writes `metadata`: usually `{}`, sometimes a few string keys, now and then many.
pub(crate) fn metadata(j: &mut Json, rng: &mut Rng) {
    let n = match rng.below(100) {
        0..=54 => 0,
        55..=89 => rng.range(1, 3),
        _ => rng.range(4, 9),
    } as usize;
    j.open("metadata");
    let offset = rng.below(9) as usize;
    for k in 0..n {
        match (offset + k) % 9 {
            0 => j.str("order_id", &format!("ord_{}", 100_000 + rng.below(900_000))),
            1 => j.str("customer_tier", rng.pick(&["gold", "silver", "bronze"])),
            2 => j.str("channel", rng.pick(&["web", "ios", "android", "pos"])),
            3 => j.str("campaign", "spring_sale_2025"),
            4 => j.str("note", rng.pick(NOTES)),
            5 => j.str("地域", rng.pick(&["東京", "大阪", "서울"])),
            6 => j.str("erp.ref", &format!("4711-{:04}", rng.below(10_000))),
            7 => j.str("is_test", rng.pick(&["false", "true"])),
            _ => j.str("amount hint", "12.50"),
        }
    }
    j.close();
}
