//! Match time over tables of 10,000 routes: Portico's matcher against `matchit` on the same
//! route set. matchit cannot express spec §3.5–3.6 exactly (Exact and Prefix on one path
//! conflict, and it has no effective-length precedence), so Portico has its own matcher; this
//! shows it is at least as fast. Run: `cargo bench --bench matcher`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portico::routing::{
    normalize, Backend, BackendRef, Decision, HostMatch, Origin, PathType, Piece, Policy, PortRef,
    Rewrite, RewriteTarget, Route, RouteTable, Target, VirtualHost,
};

const ROUTES: usize = 10_000;
const PATHS_PER_HOST: usize = 3;
const REQUESTS: usize = 1024;

fn backend(i: usize) -> Arc<Backend> {
    Arc::new(Backend::new(
        BackendRef::Service {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port: PortRef::Number(80),
        },
        Target::Endpoints(vec![format!("127.0.0.1:{}", 1024 + i % 60000)
            .parse()
            .unwrap()]),
    ))
}

fn route(path: String, path_type: PathType, i: usize) -> Route {
    Route {
        path,
        path_type,
        backend: backend(i),
        origin: Origin {
            namespace: "bench".into(),
            name: format!("ing-{i}"),
            rule: 0,
            path: 0,
        },
        ssl_redirect: false,
    }
}

/// The three paths of host `h`: like a typical app (`/`, `/api`, exact `/healthz`).
fn host_paths(h: usize) -> [(String, PathType); PATHS_PER_HOST] {
    [
        ("/".to_string(), PathType::Prefix),
        (format!("/api/v{}", h % 7), PathType::Prefix),
        ("/healthz".to_string(), PathType::Exact),
    ]
}

fn hosts() -> usize {
    ROUTES / PATHS_PER_HOST
}

fn portico_many_hosts() -> RouteTable {
    let vhosts = (0..hosts())
        .map(|h| {
            let routes = host_paths(h)
                .into_iter()
                .map(|(p, t)| route(p, t, h))
                .collect();
            VirtualHost::new(
                HostMatch::Exact(format!("app-{h}.example.com")),
                routes,
                None,
            )
        })
        .collect();
    RouteTable::new(vhosts, None)
}

fn matchit_many_hosts() -> HashMap<String, matchit::Router<usize>> {
    (0..hosts())
        .map(|h| {
            let mut router = matchit::Router::new();
            for (i, (p, t)) in host_paths(h).into_iter().enumerate() {
                insert_matchit(&mut router, &p, t, i);
            }
            (format!("app-{h}.example.com"), router)
        })
        .collect()
}

/// Prefix `p` as matchit routes: `p` itself and `p/{*rest}`.
fn insert_matchit(router: &mut matchit::Router<usize>, path: &str, t: PathType, value: usize) {
    if t == PathType::Exact {
        router.insert(path, value).expect("exact route inserts");
        return;
    }
    let key = path.trim_end_matches('/');
    if key.is_empty() {
        router.insert("/", value).expect("root inserts");
        router
            .insert("/{*rest}", value)
            .expect("root catch-all inserts");
    } else {
        router.insert(key, value).expect("prefix inserts");
        router
            .insert(format!("{key}/{{*rest}}"), value)
            .expect("prefix catch-all inserts");
    }
}

/// One vhost with 10,000 prefix routes `/svc-N/api`.
fn portico_one_host() -> RouteTable {
    let routes = (0..ROUTES)
        .map(|i| route(format!("/svc-{i}/api"), PathType::Prefix, i))
        .collect();
    RouteTable::new(vec![VirtualHost::new(HostMatch::Any, routes, None)], None)
}

fn matchit_one_host() -> matchit::Router<usize> {
    let mut router = matchit::Router::new();
    for i in 0..ROUTES {
        insert_matchit(&mut router, &format!("/svc-{i}/api"), PathType::Prefix, i);
    }
    router
}

fn requests_many_hosts() -> Vec<(String, String)> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..REQUESTS)
        .map(|_| {
            let h = rng.usize(0..hosts());
            let path = match rng.u8(0..3) {
                0 => format!("/api/v{}/items/{}", h % 7, rng.u32(..)),
                1 => "/healthz".to_string(),
                _ => format!("/static/app-{}.js", rng.u32(..)),
            };
            (format!("app-{h}.example.com"), path)
        })
        .collect()
}

fn requests_one_host() -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(11);
    (0..REQUESTS)
        .map(|_| format!("/svc-{}/api/items/{}", rng.usize(0..ROUTES), rng.u32(..)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_10k_routes");
    group.throughput(Throughput::Elements(REQUESTS as u64));

    let table = portico_many_hosts();
    let routers = matchit_many_hosts();
    let requests = requests_many_hosts();
    group.bench_function("portico/3334_hosts_x3", |b| {
        b.iter(|| {
            for (host, path) in &requests {
                let host = normalize::host(host);
                let path = normalize::path(path);
                black_box(table.decide(&host, &path).backend());
            }
        })
    });
    group.bench_function("matchit/3334_hosts_x3", |b| {
        b.iter(|| {
            for (host, path) in &requests {
                let host = normalize::host(host);
                let path = normalize::path(path);
                black_box(routers.get(host.as_ref()).and_then(|r| r.at(&path).ok()));
            }
        })
    });

    let table = portico_one_host();
    let router = matchit_one_host();
    let requests = requests_one_host();
    group.bench_function("portico/1_host_x10000", |b| {
        b.iter(|| {
            for path in &requests {
                let path = normalize::path(path);
                black_box(table.decide("any.example", &path).backend());
            }
        })
    });
    group.bench_function("matchit/1_host_x10000", |b| {
        b.iter(|| {
            for path in &requests {
                let path = normalize::path(path);
                black_box(router.at(&path).ok());
            }
        })
    });
    group.finish();
}

/// issue 13: 5,000 Ingresses of one path each, `INGRESSES / HOSTS_5K` per host.
const INGRESSES: usize = 5_000;
const HOSTS_5K: usize = 1_000;

/// Route of Ingress `i`: Prefix `/svc-i/api`, or, for a regex Ingress, `use-regex` and
/// `rewrite-target: /$2` on ImplementationSpecific `/re-i/(v[0-9]+)/(.*)` (the shape of
/// ingress-nginx's rewrite example).
fn ingress_route(i: usize, regex: bool) -> Route {
    if !regex {
        return route(format!("/svc-{i}/api"), PathType::Prefix, i);
    }
    let policy = Policy {
        rewrite: Some(Box::new(Rewrite {
            use_regex: true,
            target: Some(RewriteTarget {
                text: "/$2".into(),
                pieces: vec![Piece::Literal("/".into()), Piece::Group(2)],
            }),
            ..Rewrite::default()
        })),
        ..Policy::default()
    };
    let mut r = route(
        format!("/re-{i}/(v[0-9]+)/(.*)"),
        PathType::ImplementationSpecific,
        i,
    );
    r.backend = Arc::new(r.backend.with_policy(Arc::new(policy)));
    r
}

/// 5,000 Ingresses over 1,000 hosts; `is_regex(i)` says which use regex.
fn table_5k(is_regex: impl Fn(usize) -> bool) -> RouteTable {
    let per_host = INGRESSES / HOSTS_5K;
    let vhosts = (0..HOSTS_5K)
        .map(|h| {
            let routes = (0..per_host)
                .map(|k| {
                    let i = h * per_host + k;
                    ingress_route(i, is_regex(i))
                })
                .collect();
            VirtualHost::new(HostMatch::Exact(format!("h{h}.example.com")), routes, None)
        })
        .collect();
    RouteTable::new(vhosts, None)
}

/// Requests for the Ingresses' own paths (regex ones in their regex shape) and misses.
fn requests_5k(is_regex: impl Fn(usize) -> bool) -> Vec<(String, String)> {
    let per_host = INGRESSES / HOSTS_5K;
    let mut rng = fastrand::Rng::with_seed(13);
    (0..REQUESTS)
        .map(|_| {
            let i = rng.usize(0..INGRESSES);
            let host = format!("h{}.example.com", i / per_host);
            let path = match (is_regex(i), rng.u8(0..4)) {
                (_, 0) => format!("/nothing/{}", rng.u32(..)),
                (true, _) => format!("/re-{i}/v{}/items/{}", rng.u8(0..9), rng.u32(..)),
                (false, _) => format!("/svc-{i}/api/items/{}", rng.u32(..)),
            };
            (host, path)
        })
        .collect()
}

fn bench_regex(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_5k_ingresses");
    group.throughput(Throughput::Elements(REQUESTS as u64));
    let per_host = INGRESSES / HOSTS_5K;
    // Today's figure: no regex anywhere.
    let none = |_: usize| false;
    // 20 % of Ingresses, one on every host: ingress-nginx's scope makes every host regex.
    let spread = |i: usize| i.is_multiple_of(per_host);
    // 20 % of Ingresses, all on 20 % of the hosts: the other hosts keep the hash matcher.
    let grouped = |i: usize| (i / per_host).is_multiple_of(5);
    for (name, is_regex) in [
        ("prefix_only", &none as &dyn Fn(usize) -> bool),
        ("regex_20pct_every_host", &spread),
        ("regex_20pct_on_20pct_of_hosts", &grouped),
    ] {
        let table = table_5k(is_regex);
        let requests = requests_5k(is_regex);
        group.bench_function(name, |b| {
            b.iter(|| {
                for (host, path) in &requests {
                    let path = normalize::path(path);
                    black_box(table.decide(host, &path).backend());
                }
            })
        });
    }
    // The rewrite itself, for requests that hit a rewriting location.
    let table = table_5k(spread);
    let requests: Vec<(String, String)> = requests_5k(spread)
        .into_iter()
        .filter(|(_, p)| p.starts_with("/re-"))
        .collect();
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("rewrite_target_regex_hits", |b| {
        b.iter(|| {
            for (host, path) in &requests {
                if let Decision::Route {
                    route,
                    location: Some(location),
                    ..
                } = table.decide(host, path)
                {
                    let rewrite = route
                        .backend
                        .policy
                        .rewrite
                        .as_deref()
                        .expect("regex route");
                    let target = rewrite.target.as_ref().expect("target");
                    black_box(portico::routing::rewrite_target(
                        location, target, path, None,
                    ));
                }
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench, bench_regex
}
criterion_main!(benches);
