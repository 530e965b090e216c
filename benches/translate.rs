//! Translate at scale: N Ingresses (one host, three paths each), one Service and one
//! EndpointSlice with four endpoints per Ingress; optionally a TLS Secret (ECDSA P-256) per
//! Ingress. Cases, at 5,000 and 20,000 Ingresses:
//!
//! - `cold`: a fresh `Cache` every time (what a restart pays);
//! - `unchanged`: the same snapshot again with the cache of the previous translate;
//! - `ingress_changed`: one Ingress's path changed, alternating between two snapshots;
//! - `slice_changed`: one EndpointSlice's endpoint changed, alternating;
//! - `secret_rotated` (with TLS): one Secret's certificate replaced, alternating.
//!
//! The alternating cases keep one cache, as the publisher does, so each iteration is one
//! change against the previous translate.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use k8s_openapi::api::networking::v1::IngressClass;
use portico::source::Snapshot;
use portico::translate::{translate, Cache, Options};
use serde_json::json;

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("benchmark object deserialises")
}

/// With `tls`, every Ingress binds its host to its own Secret holding that certificate and key.
fn snapshot_with_tls(n: usize, tls: Option<(&str, &str)>) -> Snapshot {
    let class: IngressClass = from(json!({"metadata": {"name": "portico"},
        "spec": {"controller": "portico.dev/ingress-controller"}}));
    let mut snapshot = Snapshot {
        ingress_classes: vec![class.into()],
        ..Snapshot::default()
    };
    for i in 0..n {
        let ns = format!("ns{}", i % 50);
        let name = format!("app{i}");
        let backend = json!({"service": {"name": name, "port": {"number": 80}}});
        snapshot.ingresses.push(Arc::new(from::<k8s_openapi::api::networking::v1::Ingress>(json!({
            "metadata": {"name": name, "namespace": ns,
                         "creationTimestamp": format!("2024-01-01T{:02}:{:02}:{:02}Z", i / 3600, (i / 60) % 60, i % 60)},
            "spec": {"ingressClassName": "portico",
                "tls": if tls.is_some() { json!([{"hosts": [format!("app{i}.example.com")], "secretName": name}]) } else { json!([]) },
                "rules": [{"host": format!("app{i}.example.com"),
                "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": backend},
                    {"path": "/api", "pathType": "Prefix", "backend": backend},
                    {"path": "/healthz", "pathType": "Exact", "backend": backend},
                ]}}]}}))));
        if let Some((crt, key)) = tls {
            snapshot
                .secrets
                .push(Arc::new(from::<k8s_openapi::api::core::v1::Secret>(
                    json!({
                "metadata": {"name": name, "namespace": ns},
                "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": crt, "tls.key": key}}),
                )));
        }
        snapshot
            .services
            .push(Arc::new(from::<k8s_openapi::api::core::v1::Service>(
                json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            )));
        snapshot.endpoint_slices.push(Arc::new(from::<
            k8s_openapi::api::discovery::v1::EndpointSlice,
        >(json!({
            "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints(i, 1)}))));
    }
    snapshot
}

fn endpoints(i: usize, first: usize) -> serde_json::Value {
    (first..first + 4)
        .map(|e| json!({"addresses": [format!("10.{}.{}.{}", i / 250, i % 250, e)]}))
        .collect()
}

fn certificate(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let crt = rcgen::CertificateParams::new(vec![name.to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate")
        .pem();
    (crt, key.serialize_pem())
}

/// Translates `a` and `b` in turn with one cache; each translate sees one change.
fn alternate(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    a: &Snapshot,
    b: &Snapshot,
) {
    let options = Options::default();
    let mut cache = Cache::default();
    let (ta, tb) = (
        translate(a, &options, &mut cache),
        translate(b, &options, &mut cache),
    );
    assert_ne!(ta, tb, "{id}: the change shows in the translation");
    let mut flip = false;
    group.bench_function(id, |bench| {
        bench.iter(|| {
            flip = !flip;
            translate(if flip { a } else { b }, &options, &mut cache)
        })
    });
}

fn bench(c: &mut Criterion) {
    let options = Options::default();
    let mut group = c.benchmark_group("translate");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let (crt, key) = certificate("*.example.com");
    let (crt2, key2) = certificate("*.example.com");
    // `cargo test --all-targets` runs every case once so the file cannot rot; the full sizes
    // only under `cargo bench` (which passes `--bench`).
    let sizes: &[usize] = if std::env::args().any(|a| a == "--bench") {
        &[5_000, 20_000]
    } else {
        &[500]
    };
    for &n in sizes {
        let snapshot = snapshot_with_tls(n, None);
        let translation = translate(&snapshot, &options, &mut Cache::default());
        assert_eq!(translation.table.route_count(), 3 * n);
        assert!(translation.conditions.is_empty());

        group.bench_function(format!("{n}_cold"), |b| {
            b.iter(|| translate(&snapshot, &options, &mut Cache::default()))
        });
        let mut cache = Cache::default();
        group.bench_function(format!("{n}_unchanged"), |b| {
            b.iter(|| translate(&snapshot, &options, &mut cache))
        });

        let mut changed = snapshot.clone();
        let ingress = Arc::make_mut(&mut changed.ingresses[n / 2]);
        let rules = ingress.spec.as_mut().and_then(|s| s.rules.as_mut());
        let path = &mut rules.expect("rules")[0].http.as_mut().expect("http").paths[1];
        path.path = Some("/api/v2".to_string());
        alternate(
            &mut group,
            &format!("{n}_ingress_changed"),
            &snapshot,
            &changed,
        );

        let mut changed = snapshot.clone();
        let slice = Arc::make_mut(&mut changed.endpoint_slices[n / 2]);
        slice.endpoints = from(endpoints(n / 2, 2));
        alternate(
            &mut group,
            &format!("{n}_slice_changed"),
            &snapshot,
            &changed,
        );
        drop((snapshot, changed));

        let tls = snapshot_with_tls(n, Some((&crt, &key)));
        let translation = translate(&tls, &options, &mut Cache::default());
        assert_eq!(translation.tls.bindings().len(), n);
        assert!(
            translation.conditions.is_empty(),
            "{:?}",
            &translation.conditions[..1]
        );
        let mut rotated = tls.clone();
        let secret = Arc::make_mut(&mut rotated.secrets[n / 2]);
        secret.string_data = Some(
            [
                ("tls.crt".to_string(), crt2.clone()),
                ("tls.key".to_string(), key2.clone()),
            ]
            .into(),
        );
        alternate(&mut group, &format!("{n}_secret_rotated"), &tls, &rotated);
        if n == sizes[0] {
            // The figure published before the cache existed: TLS, unchanged, warm.
            let mut cache = Cache::default();
            group.bench_function(format!("{n}_ingresses_tls"), |b| {
                b.iter(|| translate(&tls, &options, &mut cache))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
