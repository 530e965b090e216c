//! What issue 14's source ranges and limits cost one request, measured on the proxy's own
//! call (`proxy::limits::check`): a route without them (the `Option` check every request pays),
//! a source range of ten CIDRs, `limit-rps` over 1,000 client addresses, and `limit-rps` plus
//! `limit-connections`. Then the limiter's accuracy: 1,000 requests per second for 10 s on a
//! simulated clock against `limit-rps: 100` (nginx admits the burst of 500, then 100 per second:
//! 1,500), printed once.
//!
//! `cargo bench --bench limits`; ratios against `absent` are what to compare on a shared
//! machine.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use portico::proxy::limits::{check, Limiter};
use portico::routing::limits::{Access, Rate, RateLimits, SourceRanges};
use portico::routing::Policy;

fn rate_limits(connections: Option<u32>) -> RateLimits {
    RateLimits {
        zone: 1,
        rps: Some(Rate {
            per_minute: 1_000_000 * 60,
            burst: 5_000_000,
        }),
        rpm: None,
        connections,
        allowlist: Vec::new(),
        req_status: 503,
        conn_status: 503,
    }
}

fn policy(access: Option<Access>) -> Policy {
    Policy {
        access: access.map(Arc::new),
        ..Policy::default()
    }
}

fn addresses() -> Vec<IpAddr> {
    (0..1_000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let limiter = Arc::new(Limiter::default());
    let clients = addresses();
    let cases = [
        ("absent", policy(None)),
        (
            "source_ranges_10",
            policy(Some(Access {
                ranges: Some(SourceRanges {
                    deny: (0..5)
                        .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
                        .collect(),
                    allow: (0..5)
                        .map(|i| format!("{}.0.0.0/8", 7 + i).parse().unwrap())
                        .collect(),
                }),
                ..Access::default()
            })),
        ),
        (
            "limit_rps",
            policy(Some(Access {
                limits: Some(rate_limits(None)),
                ..Access::default()
            })),
        ),
        (
            "limit_rps_and_connections",
            policy(Some(Access {
                limits: Some(rate_limits(Some(1_000_000))),
                ..Access::default()
            })),
        ),
    ];
    let mut group = c.benchmark_group("limits");
    for (name, policy) in &cases {
        let mut i = 0usize;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i = (i + 1) % clients.len();
                // What `service.rs` does per request: one `Option` check, then the call.
                if let Some(access) = &black_box(policy).access {
                    let guard = check(&limiter, access, black_box(clients[i]));
                    black_box(&guard);
                }
            })
        });
    }
    group.finish();

    // Accuracy on a simulated clock (no wall-clock time involved).
    let limiter = Limiter::default();
    let limits = RateLimits {
        rps: Some(Rate {
            per_minute: 100 * 60,
            burst: 500,
        }),
        ..rate_limits(None)
    };
    let client = clients[0];
    let admitted = (0..10_000u64)
        .filter(|ms| limiter.admit(&limits, client, *ms))
        .count();
    eprintln!(
        "limits/accuracy: limit-rps 100 (burst 500), 1,000 req/s for 10 s simulated: \
         {admitted} admitted, nginx's arithmetic gives 1,500 ({:.4} of it)",
        admitted as f64 / 1_500.0
    );
    c.bench_function("limits/simulated_10s_at_1000rps", |b| {
        b.iter(|| {
            let limiter = Limiter::default();
            (0..10_000u64)
                .filter(|ms| limiter.admit(&limits, client, *ms))
                .count()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
