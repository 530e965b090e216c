//! Cost of the per-request path and host checks (issue 10 items 4–5, docs/security.md) next to
//! the match-only normalisation they wrap: `cargo bench --bench normalize`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portico::routing::normalize::{self, PathRules};

/// Typical request paths (most already in normal form) and a few that get rewritten.
const PATHS: &[&str] = &[
    "/",
    "/api/v1/items/42",
    "/static/js/app.3f9a1c.js",
    "/cart/checkout",
    "/search",
    "/docs/en/latest/guide/install.html",
    "/caf%C3%A9/menu",
    "/a//b/c",
    "/img/%66oo.png",
    "/x/../y/z",
];

const HOSTS: &[&str] = &[
    "shop.example",
    "api.shop.example:8443",
    "10.0.0.7",
    "[::1]:8080",
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(PATHS.len() as u64));
    group.bench_function("path (match only)", |b| {
        b.iter(|| {
            for p in PATHS {
                black_box(normalize::path(black_box(p)));
            }
        })
    });
    group.bench_function("request_path (checks + match)", |b| {
        b.iter(|| {
            for p in PATHS {
                let m = normalize::request_path(black_box(p), PathRules::default());
                black_box(m.map(|m| normalize::forwards_changed(p, &m)).ok());
            }
        })
    });
    group.finish();
    let mut group = c.benchmark_group("authority");
    group.throughput(Throughput::Elements(HOSTS.len() as u64));
    group.bench_function("check_authority", |b| {
        b.iter(|| {
            for h in HOSTS {
                black_box(normalize::check_authority(black_box(h)).is_ok());
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
