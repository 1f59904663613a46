//! Engine throughput from recorded pages in memory, per resource: the whole engine
//! (decode → map → validate → Parquet) against a raw arrow-json decode of the same pages.
//!
//! Run: `cargo bench --bench engine`. Criterion prints time and throughput (MB/s of page bytes)
//! for each; the ratio `engine / raw_arrow_json` is the figure recorded in BENCHMARKS.md.

use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stripe_xdm::decode::{self, schema::baseline_schema};
use stripe_xdm::map::{substitute_tenant, Mapper, Mapping};
use stripe_xdm::sim::{ListParams, SimConfig, Simulator};
use stripe_xdm::sink::{writer_props, ParallelWriter, SinkOptions};
use stripe_xdm::source::envelope;
use stripe_xdm::xdm::{self, XdmSchema};
use stripe_xdm::Resource;

const RECORDS: u64 = 8_000;

struct Pages {
    bodies: Vec<Bytes>,
    ranges: Vec<Vec<std::ops::Range<usize>>>,
    bytes: u64,
}

fn record_pages(resource: Resource) -> Pages {
    let sim = Simulator::new(SimConfig::default().with_count(resource, RECORDS));
    let mut cursor: Option<String> = None;
    let (mut bodies, mut ranges, mut bytes) = (Vec::new(), Vec::new(), 0);
    loop {
        let params = ListParams {
            limit: 100,
            starting_after: cursor.clone(),
            ..ListParams::default()
        };
        let body = Bytes::from(sim.page_json(resource, &params).expect("page"));
        let env = envelope::scan(&body).expect("envelope");
        bytes += body.len() as u64;
        cursor = env
            .records
            .last()
            .and_then(|r| envelope::record_id(&body[r.clone()]));
        bodies.push(body);
        ranges.push(env.records);
        if !env.has_more {
            break;
        }
    }
    Pages {
        bodies,
        ranges,
        bytes,
    }
}

fn raw_arrow_json(resource: Resource, pages: &Pages) -> usize {
    let schema = baseline_schema(resource);
    let mut decoder = arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(8192)
        .build_decoder()
        .expect("decoder");
    let mut rows = 0;
    for (body, ranges) in pages.bodies.iter().zip(&pages.ranges) {
        for r in ranges {
            let mut buf = &body[r.clone()];
            while !buf.is_empty() {
                let n = decoder.decode(buf).expect("decode");
                if n == 0 {
                    rows += decoder.flush().expect("flush").map_or(0, |b| b.num_rows());
                } else {
                    buf = &buf[n..];
                }
            }
        }
    }
    rows + decoder.flush().expect("flush").map_or(0, |b| b.num_rows())
}

fn engine(
    rt: &tokio::runtime::Runtime,
    resource: Resource,
    pages: &Pages,
    mapper: &Mapper,
    schema: &XdmSchema,
) -> usize {
    // The pipeline's own writer settings (BatchWriter uses the same function).
    let props = writer_props(&SinkOptions::default());
    let mut writer =
        ParallelWriter::try_new(Vec::new(), schema.arrow_schema(), props).expect("writer");
    let mut accepted = 0;
    let chunk = 82; // pages per chunk ≈ the pipeline's 8192-record chunks
    for (bodies, ranges) in pages.bodies.chunks(chunk).zip(pages.ranges.chunks(chunk)) {
        let input: Vec<(&Bytes, &[std::ops::Range<usize>])> = bodies
            .iter()
            .zip(ranges)
            .map(|(b, r)| (b, r.as_slice()))
            .collect();
        let decoded = decode::decode_pages(resource, &input);
        let mapped = rt.block_on(mapper.map(decoded.batch)).expect("map");
        let validated = xdm::validate(&mapped.batch, schema).expect("validate");
        accepted += validated.accepted.num_rows();
        writer.write(&validated.accepted).expect("write");
    }
    std::hint::black_box(writer.into_inner().expect("close").len());
    accepted
}

fn decode_only(resource: Resource, pages: &Pages) -> RecordBatch {
    let input: Vec<(&Bytes, &[std::ops::Range<usize>])> = pages
        .bodies
        .iter()
        .zip(&pages.ranges)
        .map(|(b, r)| (b, r.as_slice()))
        .collect();
    decode::decode_pages(resource, &input).batch
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for resource in Resource::ALL {
        let pages = record_pages(resource);
        let mapper = rt
            .block_on(Mapper::new(resource, Mapping::builtin(resource, "acme")))
            .expect("mapping");
        let schema = XdmSchema::from_json_str(&substitute_tenant(
            stripe_xdm::defaults::xdm_schema_json(resource),
            "acme",
        ))
        .expect("schema");
        let schema = Arc::new(schema);
        group.throughput(Throughput::Bytes(pages.bytes));
        group.bench_with_input(
            BenchmarkId::new("raw_arrow_json", resource),
            &pages,
            |b, p| b.iter(|| raw_arrow_json(resource, p)),
        );
        group.bench_with_input(BenchmarkId::new("envelope", resource), &pages, |b, p| {
            b.iter(|| {
                p.bodies
                    .iter()
                    .map(|body| envelope::scan(body).expect("envelope").records.len())
                    .sum::<usize>()
            })
        });
        group.bench_with_input(BenchmarkId::new("decode", resource), &pages, |b, p| {
            b.iter(|| decode_only(resource, p))
        });
        group.bench_with_input(BenchmarkId::new("engine", resource), &pages, |b, p| {
            b.iter(|| engine(&rt, resource, p, &mapper, &schema))
        });
        // Where the engine's time goes: each stage alone, on the previous stage's output.
        let decoded = decode_only(resource, &pages);
        let mapped = rt.block_on(mapper.map(decoded.clone())).expect("map").batch;
        let validated = xdm::validate(&mapped, &schema).expect("validate").accepted;
        group.bench_function(BenchmarkId::new("stage_map", resource), |b| {
            b.iter(|| rt.block_on(mapper.map(decoded.clone())).expect("map"))
        });
        group.bench_function(BenchmarkId::new("stage_validate", resource), |b| {
            b.iter(|| xdm::validate(&mapped, &schema).expect("validate"))
        });
        let size = |level: i32| {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(
                    parquet::basic::ZstdLevel::try_new(level).expect("level"),
                ))
                .build();
            let mut w =
                ParallelWriter::try_new(Vec::new(), schema.arrow_schema(), props).expect("writer");
            w.write(&validated).expect("write");
            w.into_inner().expect("close").len()
        };
        let json: u64 = pages.bytes;
        let (z1, z3) = (size(1), size(3));
        eprintln!(
            "{resource}: {json} B of JSON -> Parquet {z1} B at ZSTD 1, {z3} B at ZSTD 3 (+{:.1}%)",
            (z1 as f64 / z3 as f64 - 1.0) * 100.0
        );
        group.bench_function(BenchmarkId::new("stage_parquet", resource), |b| {
            b.iter(|| {
                let props = writer_props(&SinkOptions::default());
                let mut w = ParallelWriter::try_new(Vec::new(), schema.arrow_schema(), props)
                    .expect("writer");
                w.write(&validated).expect("write");
                w.into_inner().expect("close").len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
