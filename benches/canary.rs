//! Per-request cost of canary Ingresses (issue 14): the routing decision plus what the proxy
//! does with the decided backend (`proxy::canary`: one `Option` check without a canary; the
//! header, cookie and weighted draw with one), on a table translated from YAML with and
//! without a canary Ingress. Run: `cargo bench --bench canary`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options, Translation};

const BASE: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: main, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: main-1, namespace: default, labels: {kubernetes.io/service-name: main}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [\"10.0.0.1\"]}]
---
apiVersion: v1
kind: Service
metadata: {name: canary, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: canary-1, namespace: default, labels: {kubernetes.io/service-name: canary}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [\"10.0.0.2\"]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: foo, namespace: default}
spec:
  ingressClassName: portico
  rules:
  - host: foo.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: main, port: {number: 80}}}}
";

const CANARY: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: foo-canary
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: \"true\"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/canary-by-cookie: canary
    nginx.ingress.kubernetes.io/canary-weight: \"30\"
spec:
  ingressClassName: portico
  rules:
  - host: foo.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: canary, port: {number: 80}}}}
";

fn table(with_canary: bool) -> Translation {
    let mut text = BASE.to_string();
    if with_canary {
        text.push_str("---\n");
        text.push_str(CANARY);
    }
    let mut loaded = Loaded::default();
    parse_documents("bench.yaml", &text, &mut loaded);
    translate(&loaded.snapshot, &Options::default(), &mut Cache::default())
}

/// What `proxy::service` does per request: decide, then the canary hook.
fn request(translation: &Translation, headers: &HeaderMap) -> bool {
    let decision = translation.table.decide("foo.example", "/api/users");
    let backend = decision.backend().expect("routed");
    match &backend.policy.canary {
        Some(canary) => canary.takes(headers),
        None => false,
    }
}

fn bench(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", "bench".parse().unwrap());
    headers.insert("cookie", "session=abc; other=1".parse().unwrap());
    let mut group = c.benchmark_group("canary");
    for (name, with) in [("absent", false), ("weight+header+cookie", true)] {
        let translation = table(with);
        assert_eq!(
            translation.table.vhosts()[0].routes[0]
                .backend
                .policy
                .canary
                .is_some(),
            with
        );
        group.bench_function(name, |b| {
            b.iter(|| request(black_box(&translation), black_box(&headers)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
