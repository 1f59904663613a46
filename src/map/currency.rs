//! Currency functions for mappings: Stripe sends amounts as integers in the currency's minor
//! unit and currencies as lower-case ISO 4217 codes; XDM's commerce fields want the upper-case
//! code and amounts in major units. A fixed `/100` is wrong for zero-decimal currencies (JPY,
//! KRW, …: `500` is ¥500) and three-decimal ones (BHD, JOD, KWD, OMR, TND).
//!
//! * `currency_exponent(currency)` → `Int32`: the minor-unit exponent Stripe's API uses.
//! * `minor_to_major(amount, currency)` → `Float64`: `amount / 10^exponent`.
//! * `currency_code(currency)` → `Utf8`: the upper-case ISO 4217 code.
//!
//! Null in, null out; a currency that is not three ASCII letters gives null.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int32Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Zero-decimal currencies (Stripe: the amount is in whole units).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Three-decimal currencies.
const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// The minor-unit exponent of `currency` in Stripe's API (case-insensitive): 0 for
/// zero-decimal currencies, 3 for three-decimal ones, else 2. Stripe's special cases keep two
/// decimals in the API: ISK (amounts multiples of 100 since 2023), HUF and TWD (whole-unit
/// payouts). `None` when `currency` is not three ASCII letters.
pub fn exponent(currency: &str) -> Option<i32> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    // Lower-cased on the stack: this runs for every row of a mapping with amounts.
    let mut lower = [0u8; 3];
    lower.copy_from_slice(currency.as_bytes());
    lower.make_ascii_lowercase();
    let is = |c: &&str| c.as_bytes() == lower;
    Some(if ZERO_DECIMAL.iter().any(is) {
        0
    } else if THREE_DECIMAL.iter().any(is) {
        3
    } else {
        2
    })
}

/// `amount` in major units of `currency`.
pub fn to_major(amount: i64, currency: &str) -> Option<f64> {
    exponent(currency).map(|e| amount as f64 / 10f64.powi(e))
}

/// Registers the currency functions on a session.
pub fn register(ctx: &SessionContext) {
    for f in [Func::Exponent, Func::ToMajor, Func::Code] {
        ctx.register_udf(ScalarUDF::from(CurrencyUdf::new(f)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    Exponent,
    ToMajor,
    Code,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrencyUdf {
    func: Func,
    signature: Signature,
}

impl CurrencyUdf {
    fn new(func: Func) -> Self {
        let signature = match func {
            Func::ToMajor => Signature::any(2, Volatility::Immutable),
            _ => Signature::any(1, Volatility::Immutable),
        };
        CurrencyUdf { func, signature }
    }
}

/// The argument cast to `to`, as an array of `rows`.
fn arg(v: &ColumnarValue, to: &DataType, rows: usize) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(&v.to_array(rows)?, to)?)
}

impl ScalarUDFImpl for CurrencyUdf {
    fn name(&self) -> &str {
        match self.func {
            Func::Exponent => "currency_exponent",
            Func::ToMajor => "minor_to_major",
            Func::Code => "currency_code",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let wanted = if self.func == Func::ToMajor { 2 } else { 1 };
        if args.len() != wanted {
            return plan_err!("{} takes {wanted} argument(s)", self.name());
        }
        Ok(match self.func {
            Func::Exponent => DataType::Int32,
            Func::ToMajor => DataType::Float64,
            Func::Code => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let currency = arg(
            args.args.last().expect("arity checked"),
            &DataType::Utf8,
            rows,
        )?;
        let currency = currency
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8");
        let out: ArrayRef = match self.func {
            Func::Exponent => Arc::new(
                currency
                    .iter()
                    .map(|c| c.and_then(exponent))
                    .collect::<Int32Array>(),
            ),
            Func::Code => Arc::new(
                currency
                    .iter()
                    .map(|c| {
                        c.filter(|c| exponent(c).is_some())
                            .map(str::to_ascii_uppercase)
                    })
                    .collect::<StringArray>(),
            ),
            Func::ToMajor => {
                let amount = arg(&args.args[0], &DataType::Int64, rows)?;
                let amount = amount
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("cast to Int64");
                Arc::new(
                    amount
                        .iter()
                        .zip(currency.iter())
                        .map(|(a, c)| to_major(a?, c?))
                        .collect::<Float64Array>(),
                )
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_stripes_table() {
        assert_eq!(to_major(500, "jpy"), Some(500.0));
        assert_eq!(to_major(12345, "usd"), Some(123.45));
        assert_eq!(to_major(12340, "KWD"), Some(12.34));
        assert_eq!(
            to_major(100, "isk"),
            Some(1.0),
            "ISK keeps two decimals in the API"
        );
        assert_eq!(exponent("huf"), Some(2));
        assert_eq!(exponent("ugx"), Some(0));
        assert_eq!(exponent("us"), None);
        assert_eq!(exponent("u$d"), None);
    }

    #[tokio::test]
    async fn functions_work_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let rows = ctx
            .sql(
                "SELECT minor_to_major(a, c) AS m, currency_code(c) AS k, currency_exponent(c) AS e \
                 FROM (VALUES (500, 'jpy'), (1999, 'eur'), (12340, 'bhd'), (NULL, 'usd'), (5, NULL)) AS t(a, c)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &rows[0];
        let m = b.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        let k = arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
        let k = k.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(m.value(0), 500.0);
        assert_eq!(m.value(1), 19.99);
        assert_eq!(m.value(2), 12.34);
        assert!(m.is_null(3) && m.is_null(4));
        assert_eq!(k.value(0), "JPY");
        assert!(k.is_null(4));
    }
}
