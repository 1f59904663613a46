//! Reading a record's top-level `created` without parsing the record.

use crate::source::envelope::top_level_value;

/// The top-level `"created"` integer of a record (unix seconds), found without parsing the
/// record, like [`record_id`](crate::source::record_id).
///
/// Tolerates broken JSON elsewhere in the record as long as the part before `created` is
/// bracket- and quote-balanced. Returns `None` when the record is not an object, has no
/// top-level `created`, or its value is not a plain JSON integer that fits an `i64`
/// (`"created":"yesterday"`, `"created": ,`, `1.5e9`). Nested `created` fields (a charge's
/// refunds, a subscription's items) are ignored. The first top-level `created` wins.
pub fn record_created(raw: &[u8]) -> Option<i64> {
    integer_at(raw, top_level_value(raw, b"created")?)
}

/// A JSON integer (`-?digits`) starting at `at` and ending at a delimiter.
fn integer_at(raw: &[u8], at: usize) -> Option<i64> {
    let mut end = at;
    if raw.get(end) == Some(&b'-') {
        end += 1;
    }
    let digits_from = end;
    while raw.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    if end == digits_from {
        return None;
    }
    match raw.get(end) {
        None | Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r') => {}
        Some(_) => return None,
    }
    std::str::from_utf8(&raw[at..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::record_created as created;

    fn c(s: &str) -> Option<i64> {
        created(s.as_bytes())
    }

    #[test]
    fn reads_the_top_level_integer() {
        assert_eq!(
            c(r#"{"id":"ch_1","created":1700000000}"#),
            Some(1_700_000_000)
        );
        assert_eq!(c(r#"{ "created" : 17 , "id":"x"}"#), Some(17));
        assert_eq!(c("{\n\t\"created\":\r\n-5\n}"), Some(-5));
        assert_eq!(c(r#"{"created":0}"#), Some(0));
        assert_eq!(
            c(r#"{"created":9223372036854775807}"#),
            Some(i64::MAX),
            "the largest i64"
        );
    }

    #[test]
    fn ignores_nested_and_quoted_lookalikes() {
        let charge = r#"{"id":"ch_1","refunds":{"data":[{"id":"re_1","created":5}]},"metadata":{"created":"7"},"note":"\"created\":9","created":1234}"#;
        assert_eq!(c(charge), Some(1234));
        assert_eq!(c(r#"{"items":{"created":5}}"#), None);
        assert_eq!(c(r#"{"x":["created",1],"created":2}"#), Some(2));
        assert_eq!(c(r#"{"d":"\\","created":3}"#), Some(3));
        assert_eq!(c(r#"{"created_at":1,"creat":2}"#), None);
        assert_eq!(c(r#"{"created":1,"created":2}"#), Some(1), "first wins");
    }

    #[test]
    fn rejects_what_is_not_an_integer() {
        assert_eq!(c(r#"{"created":"yesterday"}"#), None);
        assert_eq!(c(r#"{"created": ,"id":"ch_1"}"#), None);
        assert_eq!(c(r#"{"created":1.5}"#), None);
        assert_eq!(c(r#"{"created":1e9}"#), None);
        assert_eq!(c(r#"{"created":null}"#), None);
        assert_eq!(c(r#"{"created":-}"#), None);
        assert_eq!(c(r#"{"created":99999999999999999999}"#), None, "overflow");
        assert_eq!(c(r#"["created",1]"#), None);
        assert_eq!(c(""), None);
        assert_eq!(c(r#"{"created""#), None);
        assert_eq!(c(r#"{"created":12"#), Some(12), "truncated after the value");
    }

    #[test]
    fn tolerates_broken_json_elsewhere() {
        assert_eq!(c(r#"{"amount": ,"currency":usd,"created":42}"#), Some(42));
        assert_eq!(c(r#"{"created":42,"amount": ,"x":usd}"#), Some(42));
    }
}
