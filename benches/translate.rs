//! Translate at scale: 5,000 Ingresses (one host, three paths each), one Service and one
//! EndpointSlice with four endpoints per Ingress; and the same with a TLS Secret (ECDSA P-256)
//! per Ingress.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::api::networking::v1::IngressClass;
use portico::source::Snapshot;
use portico::translate::{translate, Options};
use serde_json::json;

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("benchmark object deserialises")
}

fn snapshot(n: usize) -> Snapshot {
    snapshot_with_tls(n, None)
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
        snapshot.ingresses.push(from(json!({
            "metadata": {"name": name, "namespace": ns,
                         "creationTimestamp": format!("2024-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60)},
            "spec": {"ingressClassName": "portico",
                "tls": if tls.is_some() { json!([{"hosts": [format!("app{i}.example.com")], "secretName": name}]) } else { json!([]) },
                "rules": [{"host": format!("app{i}.example.com"),
                "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": backend},
                    {"path": "/api", "pathType": "Prefix", "backend": backend},
                    {"path": "/healthz", "pathType": "Exact", "backend": backend},
                ]}}]}})));
        if let Some((crt, key)) = tls {
            snapshot.secrets.push(from(json!({
                "metadata": {"name": name, "namespace": ns},
                "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": crt, "tls.key": key}})));
        }
        snapshot.services.push(from(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})));
        let endpoints: Vec<_> = (0..4)
            .map(|e| json!({"addresses": [format!("10.{}.{}.{}", i / 250, i % 250, e + 1)]}))
            .collect();
        snapshot.endpoint_slices.push(from(json!({
            "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints})));
    }
    snapshot
}

fn bench(c: &mut Criterion) {
    let snapshot = snapshot(5_000);
    let options = Options::default();
    let translation = translate(&snapshot, &options);
    assert_eq!(translation.table.route_count(), 15_000);
    assert!(translation.conditions.is_empty());
    let mut group = c.benchmark_group("translate");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("5000_ingresses", |b| {
        b.iter(|| translate(&snapshot, &options))
    });
    // TLS: one certificate covering every host, stored in 5,000 Secrets.
    let key = rcgen::KeyPair::generate().expect("key");
    let crt = rcgen::CertificateParams::new(vec!["*.example.com".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate")
        .pem();
    let key = key.serialize_pem();
    let tls = snapshot_with_tls(5_000, Some((&crt, &key)));
    let translation = translate(&tls, &options);
    assert_eq!(translation.tls.bindings().len(), 5_000);
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        &translation.conditions[..1]
    );
    group.bench_function("5000_ingresses_tls", |b| {
        b.iter(|| translate(&tls, &options))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
