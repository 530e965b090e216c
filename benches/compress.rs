//! Response compression (issue 13): CPU per MiB and ratio of the proxy's streaming encoder at
//! ingress-nginx's default levels (`gzip-level` 1, `brotli-level` 4), and at gzip 6 and
//! brotli 6 for comparison, on a generated but realistic corpus: an HTML page (markup, class
//! names, prose) and a JSON API answer (an array of objects). The body arrives in 16 KiB
//! frames, as upstream reads do, and goes through `compress_body`, the same wrapper the proxy
//! uses. Ratios are printed once per case (compressed / original).
//!
//! `cargo bench --bench compress`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use portico::proxy::compress::{compress_body, Encoding};
use portico::proxy::ProxyBody;

const MIB: usize = 1 << 20;
const FRAME: usize = 16 * 1024;

/// About 1 MiB of HTML: a product listing with repeated markup and varied text.
fn html() -> Vec<u8> {
    let words = [
        "portable",
        "kettle",
        "stainless",
        "steel",
        "warranty",
        "delivery",
        "ceramic",
        "blue",
        "handmade",
        "limited",
        "edition",
        "garden",
        "chair",
        "oak",
        "linen",
        "cushion",
    ];
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>\
         <link rel=\"stylesheet\" href=\"/static/css/main.4f2a9c.css\"></head><body>\n\
         <ul class=\"product-list grid grid-cols-4 gap-4\">\n",
    );
    let mut i: usize = 0;
    while out.len() < MIB {
        let w = |k: usize| words[(i * 7 + k * 13) % words.len()];
        out.push_str(&format!(
            "<li class=\"product-card rounded shadow\" data-id=\"{i}\" data-sku=\"SKU-{:06}\">\
             <a href=\"/products/{}-{}-{i}\"><img src=\"/img/{i}.webp\" alt=\"{} {}\" \
             loading=\"lazy\" width=\"320\" height=\"240\"></a><h3 class=\"title\">{} {} {}</h3>\
             <p class=\"description\">A {} {} {} with {} {}, {} and {}.</p>\
             <span class=\"price\">{}.{:02} EUR</span></li>\n",
            i * 31 % 1_000_000,
            w(0),
            w(1),
            w(2),
            w(3),
            w(4),
            w(5),
            w(6),
            w(7),
            w(8),
            w(9),
            w(10),
            w(11),
            w(12),
            w(13),
            (i * 17) % 500,
            (i * 7) % 100
        ));
        i += 1;
    }
    out.push_str("</ul></body></html>\n");
    out.into_bytes()
}

/// About 1 MiB of JSON: what a paginated API answers.
fn json() -> Vec<u8> {
    let mut out = String::from("{\"items\":[");
    let mut i: usize = 0;
    while out.len() < MIB {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{i},\"uuid\":\"{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}\",\"name\":\"user{}\",\
             \"email\":\"user{}@example.com\",\"active\":{},\"score\":{}.{},\"tags\":[\"t{}\",\"t{}\"],\
             \"created\":\"2026-{:02}-{:02}T{:02}:{:02}:00Z\"}}",
            i.wrapping_mul(2_654_435_761) & 0xffff_ffff,
            i * 7 % 0xffff,
            i * 11 % 0xfff,
            i * 13 % 0xfff,
            i.wrapping_mul(40_503) & 0xffff_ffff_ffff,
            i * 37 % 10_000,
            i * 37 % 10_000,
            !i.is_multiple_of(3),
            i % 100,
            i % 10,
            i % 20,
            i % 50,
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60
        ));
        i += 1;
    }
    out.push_str("]}");
    out.into_bytes()
}

fn body(corpus: &Bytes) -> ProxyBody {
    let frames: Vec<Result<Frame<Bytes>, portico::proxy::BodyError>> = (0..corpus.len())
        .step_by(FRAME)
        .map(|start| {
            Ok(Frame::data(
                corpus.slice(start..(start + FRAME).min(corpus.len())),
            ))
        })
        .collect();
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

fn compressed_len(runtime: &tokio::runtime::Runtime, corpus: &Bytes, e: Encoding, l: u32) -> usize {
    runtime.block_on(async {
        compress_body(body(corpus), e, l)
            .collect()
            .await
            .map(|c| c.to_bytes().len())
            .unwrap_or(0)
    })
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let corpora = [("html", Bytes::from(html())), ("json", Bytes::from(json()))];
    let cases = [
        ("gzip-1", Encoding::Gzip, 1),
        ("gzip-6", Encoding::Gzip, 6),
        ("brotli-4", Encoding::Brotli, 4),
        ("brotli-6", Encoding::Brotli, 6),
    ];
    let mut group = c.benchmark_group("compress");
    for (name, corpus) in &corpora {
        group.throughput(Throughput::Bytes(corpus.len() as u64));
        for (case, encoding, level) in cases {
            let out = compressed_len(&runtime, corpus, encoding, level);
            println!(
                "ratio {name} {case}: {out} / {} = {:.3}",
                corpus.len(),
                out as f64 / corpus.len() as f64
            );
            group.bench_function(format!("{name}/{case}"), |b| {
                b.iter(|| compressed_len(&runtime, corpus, encoding, level))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
