//! Incremental translate equals translate from scratch (issue 11): random sequences of edits
//! to a snapshot (Ingresses, Services, EndpointSlices, Secrets, IngressClasses and options
//! added, changed and removed, and the controller ConfigMap's translate-time keys) are translated with one cache kept across the sequence, and
//! after every step the result must equal a translate with a fresh cache, with identical
//! backends still sharing one `Arc`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use portico::routing::{BackendRef, PortRef};
use portico::source::Snapshot;
use portico::translate::{translate, Cache, Options, Translation};
use proptest::prelude::*;
use serde_json::json;

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("generated object deserialises")
}

const NAMESPACES: &[&str] = &["a", "b"];
const HOSTS: &[&str] = &["", "a.test", "b.test", "x.w.test", "*.w.test", "BAD.test"];
const PATHS: &[&str] = &["/", "/a", "/a/", "/a/b", "//x", "", "/a/(.*)", "/x("];
const TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific", "Regex"];
const SERVICES: &[&str] = &["s0", "s1", "s2", "missing"];
const SECRETS: &[&str] = &["t0", "t1", "ca"];
const TIMES: &[Option<&str>] = &[
    None,
    Some("2024-01-01T00:00:00Z"),
    Some("2024-01-01T00:00:00Z"),
    Some("2025-01-01T00:00:00Z"),
];

/// Two certificates made once: one for `a.test` and `b.test`, one for `*.w.test` and `a.test`.
fn certificates() -> &'static [(String, String); 2] {
    static CERTS: OnceLock<[(String, String); 2]> = OnceLock::new();
    CERTS.get_or_init(|| {
        let make = |names: &[&str]| {
            let key = rcgen::KeyPair::generate().expect("key");
            let crt = rcgen::CertificateParams::new(
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            )
            .expect("params")
            .self_signed(&key)
            .expect("certificate")
            .pem();
            (crt, key.serialize_pem())
        };
        [make(&["a.test", "b.test"]), make(&["*.w.test", "a.test"])]
    })
}

fn backend(service: usize, port: usize) -> serde_json::Value {
    let port = match port % 4 {
        0 => json!({"number": 80}),
        1 => json!({"name": "http"}),
        2 => json!({"number": 81}),
        _ => json!({}),
    };
    json!({"service": {"name": SERVICES[service % SERVICES.len()], "port": port}})
}

/// `(time, class, annotations, rules: [(host, [(path, type, service, port)])], default, tls)`
type IngressSpec = (
    usize,
    usize,
    (usize, usize, usize),
    Vec<(usize, Vec<(usize, usize, usize, usize)>)>,
    Option<(usize, usize)>,
    Vec<(Vec<usize>, usize)>,
);

fn ingress_spec() -> impl Strategy<Value = IngressSpec> {
    let path = (0..8usize, 0..4usize, 0..4usize, 0..4usize);
    let rule = (0..6usize, prop::collection::vec(path, 0..3));
    let tls = (prop::collection::vec(0..6usize, 0..2), 0..4usize);
    (
        0..4usize,
        0..3usize,
        (0..4usize, 0..3usize, 0..12usize),
        prop::collection::vec(rule, 0..3),
        prop::option::of((0..4usize, 0..4usize)),
        prop::collection::vec(tls, 0..2),
    )
}

fn ingress(ns: &str, name: &str, spec: &IngressSpec) -> Ingress {
    let (time, class, (redirect, ca, balance), rules, default, tls) = spec;
    let mut metadata = json!({"name": name, "namespace": ns});
    if let Some(t) = TIMES[time % TIMES.len()] {
        metadata["creationTimestamp"] = json!(t);
    }
    let mut annotations = serde_json::Map::new();
    match redirect {
        1 => drop(annotations.insert("portico.dev/ssl-redirect".into(), json!("false"))),
        2 => drop(annotations.insert("portico.dev/ssl-redirect".into(), json!("maybe"))),
        3 => drop(annotations.insert(
            "nginx.ingress.kubernetes.io/ssl-redirect".into(),
            json!("true"),
        )),
        _ => {}
    }
    match ca {
        1 => drop(annotations.insert("portico.dev/proxy-ssl-secret".into(), json!("ca"))),
        2 => drop(annotations.insert("portico.dev/proxy-ssl-secret".into(), json!("t0"))),
        _ => {}
    }
    // issue 13: regex mode, rewrites (with a group some paths lack), app-root.
    match balance {
        1 => drop(annotations.insert("portico.dev/load-balance".into(), json!("ewma"))),
        2 => {
            annotations.insert(
                "nginx.ingress.kubernetes.io/use-regex".into(),
                json!("true"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/rewrite-target".into(),
                json!("/r/$1"),
            );
        }
        3 => drop(annotations.insert(
            "nginx.ingress.kubernetes.io/rewrite-target".into(),
            json!("/"),
        )),
        4 => drop(annotations.insert("portico.dev/app-root".into(), json!("/app"))),
        5 => drop(annotations.insert("portico.dev/use-regex".into(), json!("true"))),
        // Issue 13: the ClusterIP replaces endpoints; redirects live in the policy.
        6 => {
            annotations.insert(
                "nginx.ingress.kubernetes.io/service-upstream".into(),
                json!("true"),
            );
            // Aliases that collide with rule hosts and with each other's.
            annotations.insert(
                "nginx.ingress.kubernetes.io/server-alias".into(),
                json!("b.test, c.test, *.v.test"),
            );
        }
        7 => {
            annotations.insert("portico.dev/server-alias".into(), json!("c.test, a.test"));
            annotations.insert(
                "nginx.ingress.kubernetes.io/from-to-www-redirect".into(),
                json!("true"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/force-ssl-redirect".into(),
                json!("true"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/permanent-redirect".into(),
                json!("https://elsewhere.example/"),
            );
        }
        // Error pages hold backends of their own (`default-backend`, the global one).
        8 => {
            annotations.insert(
                "nginx.ingress.kubernetes.io/custom-http-errors".into(),
                json!("404,503"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/default-backend".into(),
                json!("s1"),
            );
        }
        9 => drop(annotations.insert("portico.dev/default-backend".into(), json!("s2"))),
        // Issue 14: affinity and hashing are the Service's, decided across Ingresses.
        10 => {
            annotations.insert(
                "nginx.ingress.kubernetes.io/affinity".into(),
                json!("cookie"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/session-cookie-name".into(),
                json!(format!("C{name}")),
            );
        }
        11 => drop(annotations.insert(
            "nginx.ingress.kubernetes.io/upstream-hash-by".into(),
            json!("$request_uri"),
        )),
        _ => {}
    }
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    let mut spec = json!({});
    match class % 3 {
        0 => spec["ingressClassName"] = json!("portico"),
        1 => spec["ingressClassName"] = json!("other"),
        _ => {}
    }
    let rules: Vec<_> = rules
        .iter()
        .map(|(host, paths)| {
            let paths: Vec<_> = paths
                .iter()
                .map(|(p, t, s, port)| {
                    json!({"path": PATHS[p % PATHS.len()], "pathType": TYPES[t % TYPES.len()],
                           "backend": backend(*s, *port)})
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
        spec["defaultBackend"] = backend(*s, *port);
    }
    let tls: Vec<_> = tls
        .iter()
        .map(|(hosts, secret)| {
            let hosts: Vec<_> = hosts.iter().map(|h| HOSTS[h % HOSTS.len()]).collect();
            let secret = ["t0", "t1", "missing", ""][secret % 4];
            json!({"hosts": hosts, "secretName": secret})
        })
        .collect();
    if !tls.is_empty() {
        spec["tls"] = json!(tls);
    }
    from(json!({"metadata": metadata, "spec": spec}))
}

fn service(ns: &str, name: &str, variant: usize) -> Service {
    let spec = match variant % 4 {
        0 => {
            json!({"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 81, "protocol": "UDP"}]})
        }
        1 => {
            json!({"ports": [{"name": "http", "port": 80, "targetPort": 8081, "appProtocol": "kubernetes.io/h2c"}]})
        }
        2 => {
            json!({"type": "ExternalName", "externalName": "db.example", "ports": [{"name": "http", "port": 80}]})
        }
        _ => {
            json!({"type": "ExternalName", "externalName": "localhost", "ports": [{"name": "http", "port": 80}]})
        }
    };
    from(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
}

fn slice(ns: &str, service: &str, index: usize, variant: usize) -> EndpointSlice {
    let mut slice = json!({
        "metadata": {"name": format!("{service}-{index}"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [format!("10.0.{index}.1")]},
                      {"addresses": [format!("10.0.{index}.2")],
                       "conditions": {"ready": false, "serving": true, "terminating": true}}],
    });
    match variant % 4 {
        1 => slice["endpoints"] = json!([{"addresses": [format!("10.1.{index}.9")]}]),
        2 => {
            slice["addressType"] = json!("IPv6");
            slice["endpoints"] = json!([{"addresses": [format!("fd00::{index}")]}]);
        }
        3 => {
            slice["ports"] = json!([]);
            slice["endpoints"] =
                json!([{"addresses": ["10.2.0.1"], "conditions": {"ready": false}}]);
        }
        _ => {}
    }
    from(slice)
}

fn secret(ns: &str, name: &str, variant: usize) -> Secret {
    let certs = certificates();
    let value = match variant % 4 {
        0 | 1 => {
            let (crt, key) = &certs[variant % 2];
            json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": crt, "tls.key": key}})
        }
        2 => {
            json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "garbage", "tls.key": "garbage"}})
        }
        _ => {
            // A CA bundle for the upstream-TLS annotation: `data` is base64.
            let ca = k8s_openapi::ByteString(certs[0].0.clone().into_bytes());
            json!({"type": "Opaque", "data": {"ca.crt": ca}})
        }
    };
    let mut value = value;
    value["metadata"] = json!({"name": name, "namespace": ns});
    from(value)
}

fn class(name: &str, variant: usize) -> IngressClass {
    let mut value = json!({"metadata": {"name": name}});
    match variant % 3 {
        0 => {
            value["spec"] = json!({"controller": "portico.dev/ingress-controller"});
            value["metadata"]["annotations"] =
                json!({"ingressclass.kubernetes.io/is-default-class": "true"});
        }
        1 => value["spec"] = json!({"controller": "portico.dev/ingress-controller"}),
        _ => value["spec"] = json!({"controller": "x.dev/y"}),
    }
    from(value)
}

/// The controller ConfigMap `a/cm`: keys that change what translate builds (`ssl-redirect`,
/// `default-ssl-certificate`, `force-ssl-redirect`), a bad value, unimplemented keys, nothing.
fn config_map(variant: usize) -> ConfigMap {
    let data = match variant % 6 {
        0 => json!({}),
        1 => json!({"ssl-redirect": "false"}),
        2 => json!({"ssl-redirect": "maybe", "hsts": "false"}),
        3 => json!({"default-ssl-certificate": "a/t0"}),
        4 => json!({"default-ssl-certificate": "b/t1", "ssl-redirect": "true", "x-unknown": "1"}),
        _ => json!({"force-ssl-redirect": "true", "proxy-body-size": "8m"}),
    };
    from(json!({"metadata": {"name": "cm", "namespace": "a"}, "data": data}))
}

fn options(variant: usize) -> Options {
    Options {
        configmap: Some(("a".into(), "cm".into())),
        watch_without_class: variant & 1 != 0,
        ipv6: variant & 2 != 0,
        ssl_redirect: variant & 4 == 0,
        external_name: variant & 8 == 0,
        default_backend_service: (variant & 16 != 0).then(|| ("a".into(), "s0".into())),
        default_ssl_certificate: (variant & 32 != 0).then(|| ("a".into(), "t1".into())),
        force_ssl_redirect: variant & 64 != 0,
        error_pages: portico::translate::error_pages::Settings {
            custom_http_errors: if variant.is_multiple_of(3) {
                vec![502]
            } else {
                vec![]
            },
        },
        ..Options::default()
    }
}

/// One edit: `(kind, slot, variant or removal, the Ingress when kind is 0)`.
type Edit = (usize, usize, Option<usize>, IngressSpec);

fn edit() -> impl Strategy<Value = Edit> {
    (
        0..7usize,
        0..16usize,
        prop::option::of(0..128usize),
        ingress_spec(),
    )
}

/// The objects, by kind and key; a snapshot is built from them after every edit.
#[derive(Default)]
struct World {
    ingresses: BTreeMap<(usize, usize), Arc<Ingress>>,
    services: BTreeMap<(usize, usize), Arc<Service>>,
    slices: BTreeMap<(usize, usize, usize), Arc<EndpointSlice>>,
    secrets: BTreeMap<(usize, usize), Arc<Secret>>,
    classes: BTreeMap<usize, Arc<IngressClass>>,
    config_maps: BTreeMap<usize, Arc<ConfigMap>>,
}

impl World {
    fn apply(&mut self, (kind, slot, variant, spec): &Edit, options: &mut Options) {
        let ns = slot % 2;
        let namespace = NAMESPACES[ns];
        match kind {
            0 => {
                let key = (ns, (slot / 2) % 4);
                match variant {
                    Some(_) => drop(self.ingresses.insert(
                        key,
                        Arc::new(ingress(namespace, &format!("i{}", key.1), spec)),
                    )),
                    None => drop(self.ingresses.remove(&key)),
                }
            }
            1 => {
                let key = (ns, (slot / 2) % 3);
                match variant {
                    Some(v) => drop(
                        self.services
                            .insert(key, Arc::new(service(namespace, SERVICES[key.1], *v))),
                    ),
                    None => drop(self.services.remove(&key)),
                }
            }
            2 => {
                let key = (ns, (slot / 2) % 3, (slot / 6) % 2);
                match variant {
                    Some(v) => drop(
                        self.slices
                            .insert(key, Arc::new(slice(namespace, SERVICES[key.1], key.2, *v))),
                    ),
                    None => drop(self.slices.remove(&key)),
                }
            }
            3 => {
                let key = (ns, (slot / 2) % 3);
                match variant {
                    Some(v) => drop(
                        self.secrets
                            .insert(key, Arc::new(secret(namespace, SECRETS[key.1], *v))),
                    ),
                    None => drop(self.secrets.remove(&key)),
                }
            }
            4 => {
                let key = slot % 2;
                let name = ["portico", "other"][key];
                match variant {
                    Some(v) => drop(self.classes.insert(key, Arc::new(class(name, *v)))),
                    None => drop(self.classes.remove(&key)),
                }
            }
            5 => *options = self::options(variant.unwrap_or(0)),
            _ => match variant {
                Some(v) => drop(self.config_maps.insert(0, Arc::new(config_map(*v)))),
                None => drop(self.config_maps.remove(&0)),
            },
        }
    }

    /// The snapshot, sharing the objects' `Arc`s as a source does. `reversed` lists every kind
    /// backwards (order must not matter); `copied` puts every object in a new `Arc`, as a
    /// source that re-read an unchanged object would.
    fn snapshot(&self, reversed: bool, copied: bool) -> Snapshot {
        fn shared<'a, T: Clone + 'a>(
            values: impl DoubleEndedIterator<Item = &'a Arc<T>>,
            reversed: bool,
            copied: bool,
        ) -> Vec<Arc<T>> {
            let one = |v: &Arc<T>| {
                if copied {
                    Arc::new(T::clone(v))
                } else {
                    v.clone()
                }
            };
            if reversed {
                values.rev().map(one).collect()
            } else {
                values.map(one).collect()
            }
        }
        Snapshot {
            ingresses: shared(self.ingresses.values(), reversed, copied),
            ingress_classes: shared(self.classes.values(), reversed, copied),
            services: shared(self.services.values(), reversed, copied),
            endpoint_slices: shared(self.slices.values(), reversed, copied),
            secrets: shared(self.secrets.values(), reversed, copied),
            config_maps: shared(self.config_maps.values(), reversed, copied),
        }
    }
}

/// Identical backend references under the same annotations share one `Arc`. The target counts
/// too: an Ingress that fails closed (an annotation it cannot have, e.g. a missing
/// `proxy-ssl-secret`) gets an unavailable backend for a reference another user of it (the
/// default backend) resolves normally, both under the default policy.
fn assert_shared(translation: &Translation) -> Result<(), TestCaseError> {
    let table = &translation.table;
    let backends: Vec<_> = table
        .vhosts()
        .iter()
        .flat_map(|v| v.routes.iter().map(|r| &r.backend).chain(v.fallback.iter()))
        .chain(table.default_backend())
        .collect();
    for a in &backends {
        for b in &backends {
            let malformed = matches!(
                &a.reference,
                BackendRef::Service {
                    port: PortRef::Number(0),
                    ..
                }
            );
            if a.reference == b.reference
                && a.policy == b.policy
                && a.target == b.target
                && !malformed
            {
                prop_assert!(Arc::ptr_eq(a, b), "{} resolved twice", a.reference);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// After every edit, translating with the cache kept across the sequence equals
    /// translating with a fresh cache: field for field, and as golden files print it.
    #[test]
    fn incremental_equals_fresh_after_every_edit(
        start in 0..128usize,
        edits in prop::collection::vec(edit(), 1..48),
    ) {
        let mut world = World::default();
        let mut options = options(start);
        let mut cache = Cache::default();
        for (step, edit) in edits.iter().enumerate() {
            world.apply(edit, &mut options);
            let snapshot = world.snapshot(step % 3 == 2, step % 4 == 3);
            let warm = translate(&snapshot, &options, &mut cache);
            let fresh = translate(&world.snapshot(false, false), &options, &mut Cache::default());
            prop_assert_eq!(&warm, &fresh, "step {}: {:?}", step, edit);
            prop_assert_eq!(
                serde_json::to_string(&warm).expect("serialises"),
                serde_json::to_string(&fresh).expect("serialises"),
                "step {}", step
            );
            assert_shared(&warm)?;
        }
    }
}

/// The same edit sequence applied twice in a row (nothing changed the second time) gives the
/// same result, and reuses every vhost: a regression test for cached state.
#[test]
fn an_unchanged_snapshot_reuses_every_vhost() {
    let mut world = World::default();
    let mut options = options(1);
    let spec: IngressSpec = (1, 0, (0, 0, 0), vec![(1, vec![(1, 1, 0, 0)])], None, vec![]);
    world.apply(&(4, 0, Some(1), spec.clone()), &mut options);
    world.apply(&(1, 0, Some(0), spec.clone()), &mut options);
    world.apply(&(2, 0, Some(0), spec.clone()), &mut options);
    world.apply(&(0, 0, Some(0), spec.clone()), &mut options);
    world.apply(&(0, 2, Some(0), spec), &mut options);
    let mut cache = Cache::default();
    let first = translate(&world.snapshot(false, false), &options, &mut cache);
    let second = translate(&world.snapshot(true, true), &options, &mut cache);
    assert_eq!(first, second);
    assert!(!first.table.vhosts().is_empty());
    for (a, b) in first.table.vhosts().iter().zip(second.table.vhosts()) {
        assert!(Arc::ptr_eq(a, b), "vhost {} rebuilt", a.host);
    }
}

/// A source delivering one `namespace/name` twice (no real cluster does): a second object
/// arriving while the first is held, and leaving again, translates as a fresh cache does
/// (which keeps one of them, chosen by content), although the cache otherwise merges new
/// Ingresses into its age order without selecting every Ingress again.
#[test]
fn a_name_delivered_twice_translates_as_from_scratch() {
    let older: IngressSpec = (1, 0, (0, 0, 0), vec![(1, vec![(1, 1, 0, 0)])], None, vec![]);
    let newer: IngressSpec = (3, 0, (0, 0, 0), vec![(2, vec![(3, 1, 1, 0)])], None, vec![]);
    let mut world = World::default();
    let mut options = options(1);
    world.apply(&(4, 0, Some(1), older.clone()), &mut options);
    world.apply(&(1, 0, Some(0), older.clone()), &mut options);
    world.apply(&(0, 0, Some(0), older.clone()), &mut options);
    world.apply(&(0, 2, Some(0), newer.clone()), &mut options);
    let first = world.snapshot(false, false);
    let mut twice = first.clone();
    twice.ingresses.push(Arc::new(ingress("a", "i0", &newer)));
    let mut cache = Cache::default();
    for snapshot in [&first, &twice, &first, &twice] {
        let warm = translate(snapshot, &options, &mut cache);
        let fresh = translate(snapshot, &options, &mut Cache::default());
        assert_eq!(warm, fresh);
        assert_eq!(
            serde_json::to_string(&warm).expect("serialises"),
            serde_json::to_string(&fresh).expect("serialises")
        );
    }
}

/// One Ingress changed, added or removed at a time, the rest the very same objects (what the
/// sources hand on): each step translates as a fresh cache does, and every vhost the change
/// did not touch is the previous translate's own.
#[test]
fn one_change_at_a_time_reuses_every_untouched_vhost() {
    let spec = |host: usize, time: usize, path: usize| -> IngressSpec {
        (
            time,
            0,
            (0, 0, 0),
            vec![(host, vec![(path, 1, host % 3, 0)])],
            None,
            vec![],
        )
    };
    let mut world = World::default();
    let mut options = options(1);
    world.apply(&(4, 0, Some(1), spec(1, 1, 1)), &mut options);
    for service in 0..3 {
        world.apply(&(1, service * 2, Some(0), spec(1, 1, 1)), &mut options);
    }
    for slot in 0..8 {
        world.apply(
            &(0, slot, Some(0), spec(1 + slot % 3, slot % 4, 1)),
            &mut options,
        );
    }
    let mut cache = Cache::default();
    let mut previous = translate(&world.snapshot(false, false), &options, &mut cache);
    let steps: [(usize, Option<usize>, IngressSpec); 6] = [
        (3, Some(0), spec(2, 3, 3)),
        (5, None, spec(1, 1, 1)),
        (5, Some(0), spec(1, 0, 2)),
        (0, Some(0), spec(3, 2, 0)),
        (7, None, spec(1, 1, 1)),
        (6, Some(0), spec(2, 1, 4)),
    ];
    for (slot, variant, spec) in steps {
        world.apply(&(0, slot, variant, spec), &mut options);
        let snapshot = world.snapshot(false, false);
        let warm = translate(&snapshot, &options, &mut cache);
        let fresh = translate(&snapshot, &options, &mut Cache::default());
        assert_eq!(warm, fresh, "slot {slot}");
        assert_eq!(
            serde_json::to_string(&warm).expect("serialises"),
            serde_json::to_string(&fresh).expect("serialises")
        );
        let shared = warm
            .table
            .vhosts()
            .iter()
            .filter(|v| previous.table.vhosts().iter().any(|p| Arc::ptr_eq(p, v)))
            .count();
        assert!(
            shared + 2 >= warm.table.vhosts().len(),
            "slot {slot}: {shared} of {} vhosts reused",
            warm.table.vhosts().len()
        );
        previous = warm;
    }
}

/// What the manifests source delivers when one file holding an Ingress, its Service and its
/// EndpointSlice is rewritten with new endpoints: equal Ingress and Service objects in new
/// `Arc`s, and a changed slice. Each such change keeps the other Ingresses' selection (the
/// `owned` list is the previous translation's own); a rebound Part that kept the older
/// Ingress object made every later change of it select every Ingress again (issue 11: 3× the
/// cost of a path edit at 20,000 Ingresses).
#[test]
fn endpoint_edits_with_equal_objects_reread_keep_the_selection() {
    let ingress = |name: &str| -> Arc<Ingress> {
        Arc::new(from(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "a"},
            "spec": {"rules": [{"host": format!("{name}.test"), "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}
        })))
    };
    let service = |name: &str| -> Arc<Service> {
        Arc::new(from(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "a"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
        })))
    };
    let slice = |name: &str, ip: &str| -> Arc<EndpointSlice> {
        Arc::new(from(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-x"), "namespace": "a",
                "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"port": 8080}],
            "endpoints": [{"addresses": [ip]}]
        })))
    };
    let options = Options {
        watch_without_class: true,
        ..Options::default()
    };
    let mut snapshot = Snapshot::default();
    for name in ["x", "y", "z"] {
        snapshot.ingresses.push(ingress(name));
        snapshot.services.push(service(name));
        snapshot.endpoint_slices.push(slice(name, "10.0.0.1"));
    }
    let mut cache = Cache::default();
    let mut previous = translate(&snapshot, &options, &mut cache);
    for (step, ip) in ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
        .into_iter()
        .enumerate()
    {
        // `y.yaml` read again: every object of the file is a new `Arc`.
        snapshot.ingresses[1] = ingress("y");
        snapshot.services[1] = service("y");
        snapshot.endpoint_slices[1] = slice("y", ip);
        let warm = translate(&snapshot, &options, &mut cache);
        assert_eq!(warm, translate(&snapshot, &options, &mut Cache::default()));
        assert!(
            Arc::ptr_eq(&previous.owned, &warm.owned),
            "step {step}: every Ingress was selected again"
        );
        assert_ne!(
            previous.table, warm.table,
            "step {step}: the endpoint moved"
        );
        previous = warm;
    }
}
