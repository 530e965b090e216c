//! Per-request cost of basic authentication (issue 15, docs/security.md): a bcrypt cost-10
//! check in full (what a request pays on a cache miss, on the blocking pool), the same
//! credentials answered from the verified-credentials cache, a wrong password (always
//! checked in full), and a route without basic auth (the one `Option` test the proxy adds):
//! `cargo bench --bench basic_auth`.

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Version};
use portico::proxy::basic_auth::check;
use portico::routing::basic_auth::{BasicAuth, Credential};

fn headers(user_pass: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let v = base64::engine::general_purpose::STANDARD.encode(user_pass);
    h.insert(AUTHORIZATION, format!("Basic {v}").parse().unwrap());
    h
}

fn bench(c: &mut Criterion) {
    let hash = bcrypt::hash("bar", 10).unwrap();
    let credential = Credential::parse(&hash).unwrap();
    let auth = Arc::new(BasicAuth::new(
        "default/s".into(),
        "r".into(),
        vec![("foo".into(), credential.clone())],
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let right = headers("foo:bar");
    let wrong = headers("foo:baz");
    let mut group = c.benchmark_group("basic_auth");
    group.sample_size(10);
    group.bench_function("bcrypt cost 10, full check", |b| {
        b.iter(|| black_box(credential.verify(black_box(b"bar"))))
    });
    group.bench_function("bcrypt cost 10, wrong password (request)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(check(&auth, &wrong, Version::HTTP_11))
                    .is_some(),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("basic_auth_fast");
    // The first request verifies and fills the cache; every later one is a cache hit.
    assert!(rt
        .block_on(check(&auth, &right, Version::HTTP_11))
        .is_none());
    group.bench_function("bcrypt cost 10, cached (request)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(check(&auth, &right, Version::HTTP_11))
                    .is_none(),
            )
        })
    });
    let none: Option<Arc<BasicAuth>> = None;
    group.bench_function("no basic auth (request)", |b| {
        b.iter(|| black_box(black_box(&none).is_some()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
