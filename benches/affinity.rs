//! Endpoint choice per request (issue 14): round-robin (no hashing or affinity, the default
//! path) next to `upstream-hash-by: $request_uri` and `affinity: cookie` with a session
//! cookie, over 10 endpoints; and the churn when one of the ten leaves.
//! `cargo bench --bench affinity`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use portico::proxy::affinity::{rendezvous, RequestView, Sticky};
use portico::proxy::Balancer;
use portico::routing::traffic::{stable_hash, Affinity, HashBy, HashPiece};
use portico::routing::{Backend, BackendRef, Balance, PortRef, Target, Traffic};

fn endpoints() -> Vec<SocketAddr> {
    (1..=10)
        .map(|i| format!("10.0.0.{i}:8080").parse().unwrap())
        .collect()
}

fn backend() -> Backend {
    Backend::new(
        BackendRef::Service {
            namespace: "default".into(),
            name: "svc".into(),
            port: PortRef::Number(80),
        },
        Target::Endpoints(endpoints()),
    )
}

fn affinity() -> Affinity {
    Affinity {
        persistent: false,
        name: "INGRESSCOOKIE".into(),
        path: None,
        domain: None,
        samesite: None,
        conditional_samesite_none: false,
        secure: false,
        max_age: None,
        expires: None,
        change_on_failure: false,
        issues: true,
        backend_key: "0123456789abcdef".into(),
    }
}

fn bench(c: &mut Criterion) {
    let balancer = Balancer::default();
    let backend = backend();
    let request = http::Request::builder()
        .uri("/api/v1/items/42?x=1")
        .header("host", "shop.example")
        .header(
            "cookie",
            "a=b; INGRESSCOOKIE=5f3a9c0d1e2b4a67|0123456789abcdef",
        )
        .body(())
        .unwrap();
    let view = RequestView {
        host: "shop.example",
        path: "/api/v1/items/42",
        client_ip: "192.0.2.7".parse().unwrap(),
        https: false,
    };
    let hash = Traffic {
        hash_by: Some(HashBy {
            text: "$request_uri".into(),
            pieces: vec![HashPiece::RequestUri],
            subset: None,
        }),
        affinity: None,
    };
    let sticky = Traffic {
        hash_by: None,
        affinity: Some(affinity()),
    };
    let mut group = c.benchmark_group("pick");
    group.bench_function("round_robin", |b| {
        b.iter(|| {
            let a = balancer.pick(black_box(&backend), Balance::RoundRobin, 7, &[]);
            black_box(a.map(|a| a.addr))
        })
    });
    group.bench_function("hash_request_uri", |b| {
        b.iter(|| {
            let mut s = Sticky::new(black_box(&hash), &request, &view, None);
            let a = s.pick(&balancer, &backend, Balance::RoundRobin, 7, &[]);
            black_box(a.map(|a| a.addr))
        })
    });
    group.bench_function("affinity_cookie", |b| {
        b.iter(|| {
            let mut s = Sticky::new(black_box(&sticky), &request, &view, None);
            let a = s.pick(&balancer, &backend, Balance::RoundRobin, 7, &[]);
            black_box(a.map(|a| a.addr))
        })
    });
    group.finish();

    // The churn figure: share of 100 000 keys (or balanced sessions) that move when one of
    // ten endpoints leaves. Ideal: 1/10.
    let all = endpoints();
    let fewer: Vec<SocketAddr> = all[1..].to_vec();
    let keys = 100_000u64;
    let moved = (0..keys)
        .filter(|k| {
            let key = stable_hash(format!("/path/{k}").as_bytes());
            rendezvous(key, &all, |_| 2) != rendezvous(key, &fewer, |_| 2)
        })
        .count();
    println!(
        "churn: {moved} of {keys} keys moved when 1 of 10 endpoints left ({:.4}; ideal 0.1)",
        moved as f64 / keys as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
