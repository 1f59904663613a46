//! Decoder tests: Stripe's own fixtures, expandable fields, unknown fields, bad records.

use std::path::PathBuf;

use arrow::array::{Array, AsArray, MapArray, StructArray};
use arrow::datatypes::{Int64Type, TimestampSecondType};
use bytes::Bytes;
use stripe_xdm::decode::{decode_records, RecordDecoder};
use stripe_xdm::Resource;

fn fixtures() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/stripe-fixtures.json");
    serde_json::from_slice(&std::fs::read(path).expect("fixtures file")).expect("fixtures JSON")
}

/// One page body holding `records`, and the ranges of each record.
fn page(records: &[&str]) -> (Bytes, Vec<std::ops::Range<usize>>) {
    let records: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    byte_page(&records)
}

/// A list page of `records` (any bytes) and their ranges in it.
fn byte_page(records: &[&[u8]]) -> (Bytes, Vec<std::ops::Range<usize>>) {
    let mut body = b"{\"object\":\"list\",\"data\":[".to_vec();
    let mut ranges = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let start = body.len();
        body.extend_from_slice(r);
        ranges.push(start..body.len());
    }
    body.extend_from_slice(b"],\"has_more\":false}");
    (Bytes::from(body), ranges)
}

type Pages = Vec<(Bytes, Vec<std::ops::Range<usize>>)>;

/// `n` pages of `per_page` charges (`record(page, i)` is each record's JSON), and the charges
/// decoded on the rayon pool.
fn decoded_pages(
    n: usize,
    per_page: usize,
    record: impl Fn(usize, usize) -> String,
) -> (Pages, stripe_xdm::decode::Decoded) {
    let pages: Pages = (0..n)
        .map(|p| {
            let records: Vec<String> = (0..per_page).map(|i| record(p, i)).collect();
            let refs: Vec<&str> = records.iter().map(String::as_str).collect();
            page(&refs)
        })
        .collect();
    let input: Vec<(&Bytes, &[std::ops::Range<usize>])> =
        pages.iter().map(|(b, r)| (b, r.as_slice())).collect();
    let d = stripe_xdm::decode::decode_pages(Resource::Charges, &input);
    (pages, d)
}

#[test]
fn every_resource_decodes_stripes_fixtures_with_nothing_rejected() {
    let f = fixtures();
    for set in ["resources", "resources_2023_09_12"] {
        for resource in Resource::ALL {
            let obj = &f[set][resource.object_name()];
            assert!(obj.is_object(), "fixture {set}.{resource} present");
            let text = serde_json::to_string(obj).unwrap();
            let (body, ranges) = page(&[&text]);
            let d = decode_records(resource, &body, &ranges);
            assert!(
                d.rejected.is_empty(),
                "{set}.{resource} rejected: {:?}",
                d.rejected
            );
            assert_eq!(d.batch.num_rows(), 1);
            assert_eq!(d.records(), 1);
            let id = d.batch.column(0).as_string::<i32>().value(0).to_string();
            assert_eq!(Some(id.as_str()), obj["id"].as_str());
        }
    }
}

#[test]
fn expandable_fields_keep_the_id_whether_expanded_or_not() {
    let plain = r#"{"id":"ch_1","amount":5,"customer":"cus_A","created":1700000000}"#;
    let expanded = r#"{"id":"ch_2","amount":6,"customer":{"id":"cus_B","object":"customer","email":"x@y.z","metadata":{"a":"b"}},"created":1700000001}"#;
    let deleted = r#"{"id":"ch_3","amount":7,"customer":{"id":"cus_C","object":"customer","deleted":true},"created":1700000002}"#;
    let (body, ranges) = page(&[plain, expanded, deleted]);
    let d = decode_records(Resource::Charges, &body, &ranges);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let idx = d.batch.schema().index_of("customer").unwrap();
    let customer = d.batch.column(idx).as_string::<i32>();
    assert_eq!(customer.value(0), "cus_A");
    assert_eq!(customer.value(1), "cus_B");
    assert_eq!(customer.value(2), "cus_C");
}

#[test]
fn unknown_new_fields_are_ignored_at_every_level() {
    let rec = r#"{"id":"ch_1","amount":5,"brand_new_field":{"deep":[1,2,{"x":null}]},
        "billing_details":{"address":{"city":"Köln","galaxy":"Milky Way"},"tax_id":"DE1"},
        "outcome":{"type":"authorized","advice_code":"try_again_later"},"created":1700000000}"#;
    let (body, ranges) = page(&[rec]);
    let d = decode_records(Resource::Charges, &body, &ranges);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let bd = d
        .batch
        .column(d.batch.schema().index_of("billing_details").unwrap());
    let bd = bd.as_any().downcast_ref::<StructArray>().unwrap();
    let addr = bd.column_by_name("address").unwrap().as_struct();
    assert_eq!(
        addr.column_by_name("city")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "Köln"
    );
}

#[test]
fn bad_records_are_isolated_and_rolled_back() {
    let good1 = r#"{"id":"ch_1","amount":100,"metadata":{"order":"1"},"billing_details":{"address":{"city":"A"}},"created":1700000000}"#;
    // Fails deep inside a nested object, after several columns were already appended.
    let wrong_type = r#"{"id":"ch_bad","amount":200,"metadata":{"order":"2"},"billing_details":{"address":{"city":5}},"created":1700000001}"#;
    let broken = r#"{"id":"ch_broken","amount": ,"currency":usd}"#;
    let not_object = r#"[1,2,3]"#;
    let good2 = r#"{"id":"ch_2","amount":300,"metadata":{},"created":1700000002}"#;
    let (body, ranges) = page(&[good1, wrong_type, broken, not_object, good2]);
    let d = decode_records(Resource::Charges, &body, &ranges);
    assert_eq!(d.records(), 5, "nothing lost");
    assert_eq!(d.batch.num_rows(), 2);
    assert_eq!(d.rejected.len(), 3);
    assert_eq!(d.rejected[0].id.as_deref(), Some("ch_bad"));
    assert!(
        d.rejected[0]
            .reason
            .contains("billing_details.address.city"),
        "{}",
        d.rejected[0].reason
    );
    assert_eq!(d.rejected[1].id.as_deref(), Some("ch_broken"));
    assert_eq!(d.rejected[1].raw, broken);
    // The good rows are intact and aligned in every column.
    let amount = d.batch.column(d.batch.schema().index_of("amount").unwrap());
    assert_eq!(amount.as_primitive::<Int64Type>().values(), &[100, 300]);
    let created = d
        .batch
        .column(d.batch.schema().index_of("created").unwrap());
    assert_eq!(
        created.as_primitive::<TimestampSecondType>().values(),
        &[1700000000, 1700000002]
    );
    let meta = d
        .batch
        .column(d.batch.schema().index_of("metadata").unwrap());
    let meta = meta.as_any().downcast_ref::<MapArray>().unwrap();
    assert_eq!(meta.value_length(0), 1);
    assert_eq!(meta.value_length(1), 0);
    assert_eq!(d.raw.len(), 2);
    assert_eq!(d.raw.value(1), good2);
}

#[test]
fn nulls_absent_fields_and_empty_objects() {
    let rec = r#"{"id":"ch_1","amount":null,"shipping":{},"fraud_details":{},"outcome":null,"created":1700000000}"#;
    let mut dec = RecordDecoder::new(Resource::Charges);
    dec.push(rec.as_bytes()).unwrap();
    let b = dec.finish();
    assert!(b.column(b.schema().index_of("amount").unwrap()).is_null(0));
    assert!(b.column(b.schema().index_of("outcome").unwrap()).is_null(0));
    assert!(b
        .column(b.schema().index_of("shipping").unwrap())
        .is_valid(0));
    assert!(b
        .column(b.schema().index_of("description").unwrap())
        .is_null(0));
}

#[test]
fn integers_beyond_i32_and_negative_amounts() {
    let rec = r#"{"id":"txn_1","amount":-400,"fee":-5,"net":9007199254740991,"exchange_rate":1.0873,"fee_details":[{"amount":-5,"currency":"usd","type":"stripe_fee"}],"created":1700000000}"#;
    let mut dec = RecordDecoder::new(Resource::BalanceTransactions);
    dec.push(rec.as_bytes()).unwrap();
    let b = dec.finish();
    let col = |n: &str| b.column(b.schema().index_of(n).unwrap()).clone();
    assert_eq!(col("amount").as_primitive::<Int64Type>().value(0), -400);
    assert_eq!(
        col("net").as_primitive::<Int64Type>().value(0),
        9007199254740991
    );
    assert_eq!(col("fee_details").as_list::<i32>().value_length(0), 1);
}

#[test]
fn a_float_where_an_integer_belongs_is_rejected_with_its_path() {
    let mut dec = RecordDecoder::new(Resource::Prices);
    let err = dec
        .push(br#"{"id":"price_1","unit_amount":12.5,"created":1}"#)
        .unwrap_err();
    assert!(err.contains("unit_amount"), "{err}");
    assert!(dec.is_empty());
}

#[test]
fn subscription_items_decode_as_a_list_of_structs() {
    let f = fixtures();
    let text = serde_json::to_string(&f["resources"]["subscription"]).unwrap();
    let mut dec = RecordDecoder::new(Resource::Subscriptions);
    dec.push(text.as_bytes()).unwrap();
    let b = dec.finish();
    let items = b
        .column(b.schema().index_of("items").unwrap())
        .as_struct()
        .clone();
    let data = items.column_by_name("data").unwrap().as_list::<i32>();
    assert_eq!(
        data.value_length(0) as usize,
        f["resources"]["subscription"]["items"]["data"]
            .as_array()
            .unwrap()
            .len()
    );
}

#[test]
fn invalid_utf8_rejects_only_its_record_and_pages_decoded_in_parallel_keep_their_order() {
    // A page with one record holding bytes that are not UTF-8: the page as a whole is not
    // UTF-8, so records are checked one by one and only that one is rejected.
    let mut bad = br#"{"id":"ch_bad","amount":1,"description":"caf"#.to_vec();
    bad.extend_from_slice(b"\xe9\"}");
    let good = r#"{"id":"ch_ok","amount":2,"description":"café ✓","metadata":{"k":"v\u00e9"}}"#;
    let (body, ranges) = byte_page(&[good.as_bytes(), &bad]);
    let d = decode_records(Resource::Charges, &body, &ranges);
    assert_eq!(d.batch.num_rows(), 1);
    assert_eq!(d.rejected.len(), 1);
    assert_eq!(d.rejected[0].id.as_deref(), Some("ch_bad"));
    let desc = d
        .batch
        .column(d.batch.schema().index_of("description").unwrap());
    assert_eq!(desc.as_string::<i32>().value(0), "café ✓");

    // Many pages on the rayon pool come back in page order, as one batch.
    let (_, d) = decoded_pages(40, 25, |p, i| {
        format!(r#"{{"id":"ch_{:04}","amount":{}}}"#, p * 25 + i, p * 25 + i)
    });
    assert_eq!(d.batch.num_rows(), 1000);
    assert_eq!(d.raw.len(), 1000);
    let amount = d.batch.column(d.batch.schema().index_of("amount").unwrap());
    let want: Vec<i64> = (0..1000).collect();
    assert_eq!(amount.as_primitive::<Int64Type>().values(), want.as_slice());
    assert_eq!(d.raw.value(999), r#"{"id":"ch_0999","amount":999}"#);
}

#[test]
fn escaped_keys_and_metadata_values_decode_like_plain_ones() {
    let plain = r#"{"id":"ch_1","amount":5,"metadata":{"order":"a\"b"}}"#;
    let escaped = r#"{"id":"ch_2","amo\u0075nt":6,"metadata":{"ord\u0065r":"x\u00e9"}}"#;
    let (body, ranges) = page(&[plain, escaped]);
    let d = decode_records(Resource::Charges, &body, &ranges);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let amount = d.batch.column(d.batch.schema().index_of("amount").unwrap());
    assert_eq!(amount.as_primitive::<Int64Type>().values(), &[5, 6]);
    let meta = d
        .batch
        .column(d.batch.schema().index_of("metadata").unwrap());
    let meta = meta.as_any().downcast_ref::<MapArray>().unwrap();
    let keys = meta.keys().as_string::<i32>();
    let values = meta.values().as_string::<i32>();
    assert_eq!((keys.value(0), values.value(0)), ("order", "a\"b"));
    assert_eq!((keys.value(1), values.value(1)), ("order", "xé"));
}

#[test]
fn raw_json_is_a_view_of_the_page_bodies_and_only_text_that_is_not_utf8_is_copied() {
    // Pages decoded on the rayon pool: `_raw` holds each record's text exactly, and its data
    // buffers are the page bodies themselves (shared, not copied).
    let (pages, d) = decoded_pages(12, 30, |p, i| {
        format!(r#"{{"id":"ch_{p:02}_{i:02}","amount":{i},"x_new":"v{i}"}}"#)
    });
    assert_eq!(d.raw.len(), 360);
    let sent = pages
        .iter()
        .flat_map(|(body, ranges)| ranges.iter().map(move |r| &body[r.clone()]));
    for (i, (raw, sent)) in d.sources().zip(sent).enumerate() {
        assert_eq!(raw, sent, "row {i}");
    }
    let bodies: Vec<(usize, usize)> = pages
        .iter()
        .map(|(b, _)| (b.as_ptr() as usize, b.len()))
        .collect();
    assert_eq!(d.raw.data_buffers().len(), pages.len());
    for buffer in d.raw.data_buffers() {
        let at = buffer.as_ptr() as usize;
        assert!(
            bodies
                .iter()
                .any(|&(start, len)| at == start && buffer.len() == len),
            "a data buffer of `_raw` is not a page body"
        );
    }
    let batch = d.staged_batch();
    assert_eq!(
        batch.schema().field_with_name("_raw").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8View
    );

    // A record that decodes although the body is not UTF-8 (the bad bytes are in a field the
    // decoder skips) keeps its text, decoded lossily, next to a viewed one.
    let good = r#"{"id":"ch_ok","amount":2}"#;
    let mut odd = br#"{"id":"ch_odd","amount":3,"x_unknown":"a"#.to_vec();
    odd.extend_from_slice(b"\xff\"}");
    let (body, ranges) = byte_page(&[good.as_bytes(), &odd]);
    let d = decode_records(Resource::Charges, &body, &ranges);
    assert_eq!(d.batch.num_rows(), 2, "{:?}", d.rejected);
    assert_eq!(d.raw.value(0), good);
    assert_eq!(
        d.raw.value(1),
        "{\"id\":\"ch_odd\",\"amount\":3,\"x_unknown\":\"a\u{fffd}\"}"
    );
}

#[test]
fn keys_in_any_order_with_unknown_and_absent_keys_decode_to_the_same_columns() {
    // The decoder remembers the order of the keys it saw: records that keep, change, drop or
    // add keys (known or not) must decode exactly as a fresh decoder decodes each alone.
    let records = [
        r#"{"id":"ch_1","x_new":1,"amount":10,"currency":"usd","y_new":"a","created":1700000000}"#,
        r#"{"id":"ch_2","x_new":2,"amount":20,"currency":"eur","y_new":"b","created":1700000001}"#,
        r#"{"id":"ch_3","amount":30,"created":1700000002}"#,
        r#"{"created":1700000003,"currency":"gbp","amount":40,"id":"ch_4"}"#,
        r#"{"id":"ch_5","z_new":[1],"x_new":5,"amount":50,"currency":"jpy","y_new":"e","created":1700000004}"#,
        r#"{"id":"ch_6","x_new":6,"amount":60,"currency":"usd","y_new":"f","created":1700000005}"#,
        r#"{"id":"ch_7","amount":70,"amount":71,"created":1700000006}"#,
        r#"{"id":"ch_8","x_new":8,"amount":80,"currency":"usd","y_new":"h","created":1700000007}"#,
    ];
    let mut dec = RecordDecoder::new(Resource::Charges);
    let mut results = Vec::new();
    for r in records {
        results.push(dec.push(r.as_bytes()).map_err(|e| e.to_string()));
    }
    let together = dec.finish();
    assert!(
        results[6]
            .as_ref()
            .is_err_and(|e| e.contains("duplicate key `amount`")),
        "{:?}",
        results[6]
    );
    let mut rows = 0;
    for (r, result) in records.iter().zip(&results) {
        if result.is_err() {
            continue;
        }
        let mut alone = RecordDecoder::new(Resource::Charges);
        alone.push(r.as_bytes()).unwrap();
        let alone = alone.finish();
        assert_eq!(together.slice(rows, 1), alone, "{r}");
        rows += 1;
    }
    assert_eq!(together.num_rows(), 7);
}
