use bytes::Bytes;
use std::str::FromStr;
use stripe_xdm::map::{Mapper, Mapping};
use stripe_xdm::Resource;

#[tokio::test]
#[ignore]
async fn playground() {
    let res = Resource::from_str(&std::env::var("R").unwrap()).unwrap();
    let path = std::env::var("SQLF").unwrap();
    let fixtures: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/stripe-openapi/fixtures.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mapping = Mapping::from_file(std::path::Path::new(&path), "acme").unwrap();
    let mapper = match Mapper::new(res, mapping).await {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    println!("{:#?}", mapper.output_schema());
    for set in ["resources", "resources_2023_09_12"] {
        let obj = &fixtures[set][res.object_name()];
        let bytes = Bytes::from(serde_json::to_vec(obj).unwrap());
        let d = stripe_xdm::decode::decode_records(res, &bytes, &[0..bytes.len()]);
        println!("rejected {:?}", d.rejected);
        let m = mapper.map(d.batch).await.unwrap();
        println!("failed {:?}", m.failed);
        println!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&[m.batch]).unwrap()
        );
        if let Ok(x) = std::env::var("XDM") {
            let text =
                stripe_xdm::map::substitute_tenant(&std::fs::read_to_string(x).unwrap(), "acme");
            let s = stripe_xdm::xdm::XdmSchema::from_json_str(&text).unwrap();
            println!("problems {:#?}", s.check_output(&mapper.output_schema()));
        }
    }
}
