//! Properties of translate: object order never changes the result, and a longer prefix always
//! wins (spec §3.6 step 1).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use portico::routing::{normalize, Route};
use portico::source::files::{parse_documents, Loaded};
use portico::source::Snapshot;
use portico::translate::{translate, Cache, Options};
use proptest::prelude::*;
use serde_json::json;

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("generated object deserialises")
}

const HOSTS: &[&str] = &["", "a.test", "b.test", "*.w.test", "BAD.test", "10.0.0.1"];
const PATHS: &[&str] = &["/", "/a", "/a/", "/a/b", "/b", "", "//x", "/a/../b"];
const TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific", "Regex"];
const SERVICES: &[&str] = &["s0", "s1", "s2", "missing"];
const TIMES: &[Option<&str>] = &[
    None,
    Some("2024-01-01T00:00:00Z"),
    Some("2024-01-01T00:00:00Z"),
    Some("2025-01-01T00:00:00Z"),
];

fn backend(service: usize, port: usize) -> serde_json::Value {
    let port = match port {
        0 => json!({"number": 80}),
        1 => json!({"name": "http"}),
        2 => json!({"number": 81}),
        _ => json!({}),
    };
    json!({"service": {"name": SERVICES[service % SERVICES.len()], "port": port}})
}

/// `(namespace, name, time, class, rules: [(host, [(path, type, service, port)])], default)`
type IngressSpec = (
    usize,
    usize,
    usize,
    usize,
    Vec<(usize, Vec<(usize, usize, usize, usize)>)>,
    Option<(usize, usize)>,
);

fn ingress((ns, name, time, class, rules, default): IngressSpec) -> Ingress {
    let namespace = ["a", "b"][ns % 2];
    let mut metadata = json!({"name": format!("i{}", name % 4), "namespace": namespace});
    if let Some(t) = TIMES[time % TIMES.len()] {
        metadata["creationTimestamp"] = json!(t);
    }
    let mut spec = json!({});
    match class % 3 {
        0 => spec["ingressClassName"] = json!("portico"),
        1 => spec["ingressClassName"] = json!("other"),
        _ => {}
    }
    let rules: Vec<_> = rules
        .into_iter()
        .map(|(host, paths)| {
            let paths: Vec<_> = paths
                .into_iter()
                .map(|(p, t, s, port)| {
                    json!({"path": PATHS[p % PATHS.len()], "pathType": TYPES[t % TYPES.len()],
                           "backend": backend(s, port)})
                })
                .collect();
            let mut rule = json!({"host": HOSTS[host % HOSTS.len()]});
            if !paths.is_empty() {
                rule["http"] = json!({"paths": paths});
            }
            rule
        })
        .collect();
    if !rules.is_empty() {
        spec["rules"] = json!(rules);
    }
    if let Some((s, port)) = default {
        spec["defaultBackend"] = backend(s, port);
    }
    from(json!({"metadata": metadata, "spec": spec}))
}

fn fixed_objects() -> (Vec<IngressClass>, Vec<Service>, Vec<EndpointSlice>) {
    let classes = vec![
        from(json!({"metadata": {"name": "portico",
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "portico.dev/ingress-controller"}})),
        from(json!({"metadata": {"name": "other"}, "spec": {"controller": "x.dev/y"}})),
    ];
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for ns in ["a", "b"] {
        for (i, name) in SERVICES[..3].iter().enumerate() {
            services.push(from(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 81, "protocol": "UDP"}]}})));
            for j in 0..2 {
                slices.push(from(json!({
                    "metadata": {"name": format!("{name}-{j}"), "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": if j == 0 { "IPv4" } else { "IPv6" },
                    "ports": [{"name": "http", "port": 8080 + j}],
                    "endpoints": [
                        {"addresses": [if j == 0 { format!("10.0.{i}.1") } else { format!("fd00::{i}") }]},
                        {"addresses": [format!("10.0.{i}.2")], "conditions": {"ready": false, "serving": true, "terminating": true}},
                        {"addresses": [format!("10.0.{i}.1")]},
                    ]})));
            }
        }
    }
    (classes, services, slices)
}

fn ingress_specs() -> impl Strategy<Value = Vec<IngressSpec>> {
    let path = (0..8usize, 0..4usize, 0..4usize, 0..4usize);
    let rule = (0..6usize, prop::collection::vec(path, 0..4));
    let one = (
        0..2usize,
        0..4usize,
        0..4usize,
        0..3usize,
        prop::collection::vec(rule, 0..3),
        prop::option::of((0..4usize, 0..4usize)),
    );
    prop::collection::vec(one, 0..8)
}

/// Objects as a `Snapshot` holds them.
fn arcs<T>(objects: Vec<T>) -> Vec<Arc<T>> {
    objects.into_iter().map(Arc::new).collect()
}

/// A snapshot and the same snapshot with every vector permuted.
fn snapshot_and_shuffled() -> impl Strategy<Value = (Snapshot, Snapshot)> {
    ingress_specs().prop_flat_map(|specs| {
        let (classes, services, slices) = fixed_objects();
        let snapshot = Snapshot {
            ingresses: specs.into_iter().map(|s| Arc::new(ingress(s))).collect(),
            ingress_classes: arcs(classes),
            services: arcs(services),
            endpoint_slices: arcs(slices),
            secrets: Vec::new(),
            config_maps: Vec::new(),
        };
        let s = snapshot.clone();
        (
            Just(snapshot),
            Just(s.ingresses).prop_shuffle(),
            Just(s.ingress_classes).prop_shuffle(),
            Just(s.services).prop_shuffle(),
            Just(s.endpoint_slices).prop_shuffle(),
        )
            .prop_map(|(snapshot, ingresses, classes, services, slices)| {
                let shuffled = Snapshot {
                    ingresses,
                    ingress_classes: classes,
                    services,
                    endpoint_slices: slices,
                    secrets: Vec::new(),
                    config_maps: Vec::new(),
                };
                (snapshot, shuffled)
            })
    })
}

/// Parsed once: the property is about translate, and each case would parse them again.
fn fixture_snapshots() -> &'static [(String, Snapshot)] {
    static PARSED: std::sync::OnceLock<Vec<(String, Snapshot)>> = std::sync::OnceLock::new();
    PARSED.get_or_init(parse_fixtures)
}

fn parse_fixtures() -> Vec<(String, Snapshot)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).expect("fixtures").flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("input.yaml")) else {
            continue;
        };
        let mut loaded = Loaded::default();
        parse_documents("input.yaml", &text, &mut loaded);
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            loaded.snapshot,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Shuffling the snapshot's vectors never changes the translation (spec §0, style).
    #[test]
    fn object_order_never_changes_the_translation(
        (snapshot, shuffled) in snapshot_and_shuffled(),
        watch in any::<bool>(),
        ipv6 in any::<bool>(),
    ) {
        let options = Options { watch_without_class: watch, ipv6, ..Options::default() };
        prop_assert_eq!(translate(&snapshot, &options, &mut Cache::default()), translate(&shuffled, &options, &mut Cache::default()));
    }

    /// The same for the golden fixtures, under random permutations.
    #[test]
    fn fixture_order_never_changes_the_translation(seed in any::<u64>()) {
        for (name, snapshot) in fixture_snapshots() {
            let mut shuffled = snapshot.clone();
            let mut rng = seed;
            let mut next = move |n: usize| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((rng >> 33) as usize) % n.max(1)
            };
            macro_rules! shuffle {
                ($v:expr) => {
                    for i in (1..$v.len()).rev() {
                        let j = next(i + 1);
                        $v.swap(i, j);
                    }
                };
            }
            shuffle!(shuffled.ingresses);
            shuffle!(shuffled.ingress_classes);
            shuffle!(shuffled.services);
            shuffle!(shuffled.endpoint_slices);
            let options = Options::default();
            prop_assert_eq!(
                translate(snapshot, &options, &mut Cache::default()),
                translate(&shuffled, &options, &mut Cache::default()),
                "fixture {}", name
            );
        }
    }

    /// Among matching Prefix rules, the one with the longest prefix wins, whatever the order
    /// and whatever other rules exist (spec §3.6 step 1).
    #[test]
    fn longer_prefix_always_wins(
        segments in prop::collection::vec("[ab]{1,2}", 1..6),
        rules in prop::collection::vec((prop::collection::vec("[ab]{1,2}", 0..6), any::<bool>(), 0..3usize), 1..10),
    ) {
        let request = format!("/{}", segments.join("/"));
        let paths: Vec<_> = rules
            .iter()
            .map(|(segs, slash, ty)| {
                let mut p = format!("/{}", segs.join("/"));
                if *slash && p != "/" {
                    p.push('/');
                }
                let path_type = ["Prefix", "ImplementationSpecific", "Exact"][*ty];
                json!({"path": p, "pathType": path_type,
                       "backend": {"service": {"name": "s", "port": {"number": 80}}}})
            })
            .collect();
        let ing: Ingress = from(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"ingressClassName": "portico",
                     "rules": [{"host": "h.test", "http": {"paths": paths}}]}}));
        let (classes, _, _) = fixed_objects();
        let snapshot = Snapshot { ingresses: vec![Arc::new(ing)], ingress_classes: arcs(classes), ..Snapshot::default() };
        let translation = translate(&snapshot, &Options::default(), &mut Cache::default());
        let table = &translation.table;
        let path = normalize::path(&request);
        let all: Vec<&Route> = table.vhosts().iter().flat_map(|v| v.routes.iter()).collect();
        let best = all.iter().filter(|r| r.matches(&path)).map(|r| r.effective_len()).max();
        let decided = table.decide("h.test", &path);
        prop_assert_eq!(decided.route().map(|r| r.effective_len()), best);
        if let Some(route) = decided.route() {
            // No matching Prefix rule is longer than the winner, and an Exact winner has at
            // least the length of every matching prefix.
            for r in all.iter().filter(|r| r.matches(&path) && r.path_type.is_prefix()) {
                prop_assert!(r.prefix_key().len() <= route.effective_len());
            }
        }
    }
}

/// Arbitrary values in every field translate reads (TLS entries, Secrets and the redirect
/// annotation included): never a panic, every problem a condition.
fn arbitrary_ingress() -> impl Strategy<Value = serde_json::Value> {
    let text = prop_oneof![
        Just(String::new()),
        "[a-z0-9.*/%:-]{0,12}",
        any::<String>(),
        Just("/a/../..".to_string()),
        Just("*.".to_string()),
    ];
    let number = prop_oneof![any::<i32>(), 0..3i32, 65530..65540i32];
    let backend = (
        prop::option::of(text.clone()),
        prop::option::of(number.clone()),
        prop::option::of(text.clone()),
        any::<bool>(),
    )
        .prop_map(|(name, number, port_name, resource)| {
            let mut port = json!({});
            if let Some(n) = number {
                port["number"] = json!(n);
            }
            if let Some(p) = port_name {
                port["name"] = json!(p);
            }
            let mut b = json!({});
            if let Some(name) = name {
                b["service"] = json!({"name": name, "port": port});
            }
            if resource {
                b["resource"] = json!({"kind": "K", "name": "n"});
            }
            b
        });
    let path = (
        prop::option::of(text.clone()),
        text.clone(),
        backend.clone(),
    )
        .prop_map(|(p, t, b)| {
            let mut v = json!({"pathType": t, "backend": b});
            if let Some(p) = p {
                v["path"] = json!(p);
            }
            v
        });
    let rule = (
        prop::option::of(text.clone()),
        prop::option::of(prop::collection::vec(path, 0..3)),
    )
        .prop_map(|(host, paths)| {
            let mut r = json!({});
            if let Some(h) = host {
                r["host"] = json!(h);
            }
            if let Some(p) = paths {
                r["http"] = json!({"paths": p});
            }
            r
        });
    let tls = (
        prop::option::of(prop::collection::vec(text.clone(), 0..3)),
        prop::option::of(prop_oneof![text.clone(), Just("s0".to_string())]),
    )
        .prop_map(|(hosts, secret)| {
            let mut t = json!({});
            if let Some(h) = hosts {
                t["hosts"] = json!(h);
            }
            if let Some(s) = secret {
                t["secretName"] = json!(s);
            }
            t
        });
    (
        text.clone(),
        prop::option::of(prop::collection::vec(rule, 0..3)),
        prop::option::of(backend),
        prop::option::of(prop::collection::vec(tls, 0..3)),
        prop::option::of(text),
    )
        .prop_map(|(name, rules, default, tls, redirect)| {
            let mut spec = json!({});
            if let Some(r) = rules {
                spec["rules"] = json!(r);
            }
            if let Some(d) = default {
                spec["defaultBackend"] = d;
            }
            if let Some(t) = tls {
                spec["tls"] = json!(t);
            }
            let mut metadata = json!({"name": name, "namespace": "a"});
            if let Some(r) = redirect {
                metadata["annotations"] = json!({"portico.dev/ssl-redirect": r});
            }
            json!({"metadata": metadata, "spec": spec})
        })
}

/// A usable certificate and key, made once.
fn valid_pem() -> &'static (String, String) {
    static PEM: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PEM.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let crt = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (crt.pem(), key.serialize_pem())
    })
}

/// Secrets named `s0`/`s1` in namespace `a` with arbitrary types and contents.
fn arbitrary_secret() -> impl Strategy<Value = serde_json::Value> {
    let value = prop_oneof![
        Just(0usize).prop_map(|_| valid_pem().0.clone()),
        Just(0usize).prop_map(|_| valid_pem().1.clone()),
        Just("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n".to_string()),
        any::<String>(),
    ];
    (
        prop_oneof![Just("s0"), Just("s1")],
        prop::option::of(prop_oneof![
            Just("kubernetes.io/tls"),
            Just("Opaque"),
            Just("x")
        ]),
        prop::option::of(value.clone()),
        prop::option::of(value),
    )
        .prop_map(|(name, kind, crt, key)| {
            let mut data = json!({});
            if let Some(c) = crt {
                data["tls.crt"] = json!(c);
            }
            if let Some(k) = key {
                data["tls.key"] = json!(k);
            }
            let mut secret =
                json!({"metadata": {"name": name, "namespace": "a"}, "stringData": data});
            if let Some(k) = kind {
                secret["type"] = json!(k);
            }
            secret
        })
}

fn arbitrary_service_and_slice() -> impl Strategy<Value = (serde_json::Value, serde_json::Value)> {
    let name = prop_oneof![Just("s0".to_string()), "[a-z0-9]{0,3}"];
    let port = (
        prop::option::of("[a-z]{0,3}"),
        any::<i32>(),
        prop::option::of(prop_oneof![Just("TCP"), Just("UDP")]),
        prop::option::of(prop_oneof![
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z]{0,3}".prop_map(|s| json!(s))
        ]),
    )
        .prop_map(|(n, p, proto, target)| {
            let mut v = json!({"port": p});
            if let Some(n) = n {
                v["name"] = json!(n);
            }
            if let Some(proto) = proto {
                v["protocol"] = json!(proto);
            }
            if let Some(t) = target {
                v["targetPort"] = t;
            }
            v
        });
    let ty = prop_oneof![Just("ClusterIP"), Just("ExternalName"), Just("Weird")];
    let address = prop_oneof![
        Just("10.0.0.1".to_string()),
        Just("::1".to_string()),
        any::<String>()
    ];
    let endpoint = (
        prop::collection::vec(address, 0..2),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(addresses, r, s, t)| {
            json!({"addresses": addresses, "conditions": {"ready": r, "serving": s, "terminating": t}})
        });
    (
        name,
        prop::collection::vec(port.clone(), 0..3),
        ty,
        any::<String>(),
        prop_oneof![Just("IPv4"), Just("IPv6"), Just("FQDN"), Just("x")],
        prop::option::of(prop::collection::vec(port, 0..2)),
        prop::collection::vec(endpoint, 0..3),
    )
        .prop_map(|(name, ports, ty, ext, family, slice_ports, endpoints)| {
            let service = json!({"metadata": {"name": name, "namespace": "a"},
                "spec": {"type": ty, "externalName": ext, "ports": ports}});
            let mut slice = json!({"metadata": {"name": "x", "namespace": "a",
                    "labels": {"kubernetes.io/service-name": name}},
                "addressType": family, "endpoints": endpoints});
            if let Some(p) = slice_ports {
                slice["ports"] = json!(p);
            }
            (service, slice)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_fields(
        ingresses in prop::collection::vec(arbitrary_ingress(), 0..4),
        backends in prop::collection::vec(arbitrary_service_and_slice(), 0..3),
        default_service in prop::option::of(("[a-z]{0,2}", "[a-z0-9]{0,3}")),
        secrets in prop::collection::vec(arbitrary_secret(), 0..3),
        default_certificate in prop::option::of(prop_oneof![Just("s0"), Just("s9")]),
    ) {
        let (classes, _, _) = fixed_objects();
        let mut snapshot = Snapshot { ingress_classes: arcs(classes), ..Snapshot::default() };
        for i in ingresses {
            // Values the API types themselves cannot hold are dropped, as a source would.
            if let Ok(i) = serde_json::from_value::<Ingress>(i) {
                snapshot.ingresses.push(Arc::new(i));
            }
        }
        for (service, slice) in backends {
            if let Ok(s) = serde_json::from_value::<Service>(service) {
                snapshot.services.push(Arc::new(s));
            }
            if let Ok(s) = serde_json::from_value::<EndpointSlice>(slice) {
                snapshot.endpoint_slices.push(Arc::new(s));
            }
        }
        for s in secrets {
            if let Ok(s) = serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(s) {
                snapshot.secrets.push(Arc::new(s));
            }
        }
        let options = Options {
            default_backend_service: default_service,
            default_ssl_certificate: default_certificate.map(|n| ("a".to_string(), n.to_string())),
            ..Options::default()
        };
        let translation = translate(&snapshot, &options, &mut Cache::default());
        // Conditions come out sorted and without duplicates.
        prop_assert!(translation.conditions.windows(2).all(|w| w[0] < w[1]));
    }
}

/// Every `%XX` decoded, once (what most backends do before resolving dot-segments).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path pieces that exercise every rule of `normalize::request_path` (docs/security.md).
fn hostile_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%2F"),
        Just("%5c"),
        Just("\\"),
        Just(";"),
        Just("a"),
        Just("%61"),
        Just("%c0%ae"),
        Just("%c3%a9"),
        Just("é"),
        Just("\u{FF0E}"),
        Just("%"),
        Just("%00"),
        Just("%2"),
        Just("%25"),
        Just("%6"),
        Just("5"),
        Just("?"),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// spec §6.1: what the proxy forwards is exactly what it matched, and a backend that
    /// normalises it again per RFC 3986 gets the same path: an accepted path is a fixed point,
    /// has no dot-segments left, and is rewritten whenever it differs from the raw one other
    /// than in hex case.
    #[test]
    fn accepted_paths_are_fixed_points(raw in hostile_path(), allow in any::<bool>()) {
        let raw = raw.split('?').next().unwrap_or_default().to_string();
        let rules = normalize::PathRules { allow_encoded_slashes: allow };
        if let Ok(matched) = normalize::request_path(&raw, rules) {
            prop_assert_eq!(normalize::request_path(&matched, rules), Ok(matched.clone()));
            prop_assert!(!matched.split('/').any(|s| s == "." || s == ".."), "{}", matched);
            if !normalize::forwards_changed(&raw, &matched) {
                prop_assert_eq!(raw.to_ascii_uppercase(), matched.to_ascii_uppercase());
            }
            if !allow {
                prop_assert!(!matched.contains("%2F"), "{}", matched);
                // A backend that percent-decodes once and then resolves dot-segments finds
                // none: it names the same segments Portico matched.
                let decoded = percent_decode(&matched);
                prop_assert!(
                    !decoded.split(['/', '\\']).any(|s| s == "." || s == ".."),
                    "{} decodes to {}", matched, decoded
                );
            }
        }
    }

    /// Host checks never panic, and nothing they accept carries userinfo or a delimiter that
    /// could smuggle a path, query or second authority into `Host`.
    #[test]
    fn accepted_authorities_have_no_delimiters(a in "[a-z0-9.:@/?# \\[\\]%<>_-]{0,16}") {
        if normalize::check_authority(&a).is_ok() {
            prop_assert!(!a.contains(['@', '/', '?', '#', ' ', '<', '>']), "{}", a);
        }
    }
}
