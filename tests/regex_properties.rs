//! Properties of regex paths and rewrites (issue 13): a rewrite always yields a valid
//! origin-form request-target, and a regex-mode host's locations, their order and every
//! decision do not depend on the order in which objects arrive.

use std::sync::Arc;

use portico::routing::{
    rewrite_target, Backend, BackendRef, Decision, HostMatch, Origin, PathType, Piece, Policy,
    PortRef, Rewrite, RewriteTarget, Route, Target, VirtualHost,
};
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options};
use proptest::prelude::*;
use serde_json::json;

/// Path regexes with zero to three capture groups, as users write them.
const REGEXES: &[&str] = &[
    "/",
    "/(.*)",
    "/api(/|$)(.*)",
    "/(?P<first>[^/]+)/(.*)/(.+)",
    "/static/[a-z]+\\.(css|js)",
];

fn route_with_target(path: &str, target: RewriteTarget) -> Route {
    let policy = Policy {
        rewrite: Some(Box::new(Rewrite {
            use_regex: true,
            target: Some(target),
            ..Rewrite::default()
        })),
        ..Policy::default()
    };
    let backend = Backend::new(
        BackendRef::Service {
            namespace: "p".into(),
            name: "s".into(),
            port: PortRef::Number(80),
        },
        Target::Endpoints(vec!["127.0.0.1:1".parse().expect("addr")]),
    )
    .with_policy(Arc::new(policy));
    Route {
        path: path.to_string(),
        path_type: PathType::ImplementationSpecific,
        backend: Arc::new(backend),
        origin: Origin {
            namespace: "p".into(),
            name: "i".into(),
            rule: 0,
            path: 0,
        },
        ssl_redirect: false,
    }
}

/// A target made of arbitrary literal text (any characters, `?` and `%` included) and
/// references to groups 1–3.
fn target() -> impl Strategy<Value = RewriteTarget> {
    let piece = prop_oneof![
        "\\PC{0,6}".prop_map(Piece::Literal),
        "[ -~]{0,6}".prop_map(Piece::Literal),
        (1usize..4).prop_map(Piece::Group),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| {
        let text = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(t) => t.clone(),
                Piece::Group(n) => format!("${n}"),
            })
            .collect();
        RewriteTarget { text, pieces }
    })
}

/// Whether `target` is an origin-form request-target (RFC 9112 §3.2.1): `/`, then path
/// characters, optionally `?` and query characters, every `%` starting an escape.
fn is_origin_form(target: &str) -> bool {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut in_query = false;
    for (i, &b) in bytes.iter().enumerate() {
        let ok = match b {
            b'%' => {
                bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            }
            b'?' if !in_query => {
                in_query = true;
                true
            }
            b'?' => true,
            b if b.is_ascii_alphanumeric() => true,
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
            | b',' | b';' | b'=' | b':' | b'@' | b'/' => true,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// issue 13: "rewrites never produce a request-target that is not a valid origin-form",
    /// whatever the target, the request path (not even normalised) and the query.
    #[test]
    fn rewrites_are_always_origin_form(
        regex in prop::sample::select(REGEXES),
        target in target(),
        path in "/\\PC{0,12}",
        query in prop::option::of("[ -~]{0,8}"),
    ) {
        let vhost = VirtualHost::new(
            HostMatch::Any,
            vec![route_with_target(regex, target.clone())],
            None,
        );
        let mode = vhost.regex().expect("use-regex makes regex mode");
        for location in &mode.locations {
            if !location.rewrites || !location.is_match(&path) {
                continue;
            }
            if let Some(out) = rewrite_target(location, &target, &path, query.as_deref()) {
                prop_assert!(is_origin_form(&out), "{out:?} from {target:?} on {path:?}");
                let parsed = http::uri::PathAndQuery::try_from(out.as_str());
                prop_assert!(parsed.is_ok(), "{out:?}");
                prop_assert!(parsed.expect("checked").path().starts_with('/'));
            }
        }
    }
}

const HOSTS: &[&str] = &["r.test", "s.test"];
const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/",
    "/A",
    "/a/(.*)",
    "/a.+",
    "/b(/|$)(.*)",
    "/x(",
    "/(?=y)",
    "/a|/c",
];
const TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];
const TIMES: &[Option<&str>] = &[
    None,
    Some("2026-01-01T00:00:00Z"),
    Some("2026-01-02T00:00:00Z"),
];
const REQUESTS: &[&str] = &[
    "/", "/a", "/a/", "/A/b", "/a/b/c", "/ab", "/b", "/b/x", "/c", "/x(", "/y", "/zz",
];

/// `(host, path, type, annotations, time)` of one single-path Ingress.
type Spec = (usize, usize, usize, usize, usize);

fn ingress(i: usize, (host, path, kind, notes, time): &Spec) -> serde_json::Value {
    let annotations = match notes % 5 {
        1 => json!({"nginx.ingress.kubernetes.io/use-regex": "true"}),
        2 => json!({"nginx.ingress.kubernetes.io/rewrite-target": "/r/$1"}),
        3 => json!({"portico.dev/rewrite-target": "/", "portico.dev/x-forwarded-prefix": "/p"}),
        4 => json!({"nginx.ingress.kubernetes.io/app-root": "/app"}),
        _ => json!({}),
    };
    let mut metadata =
        json!({"name": format!("i{i}"), "namespace": "p", "annotations": annotations});
    if let Some(t) = TIMES[time % TIMES.len()] {
        metadata["creationTimestamp"] = json!(t);
    }
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata,
        "spec": {"ingressClassName": "portico", "rules": [{"host": HOSTS[host % HOSTS.len()],
            "http": {"paths": [{"path": PATHS[path % PATHS.len()],
                "pathType": TYPES[kind % TYPES.len()],
                "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}]},
    })
}

fn translate_docs(docs: &[serde_json::Value]) -> portico::translate::Translation {
    let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "portico"}, "spec": {"controller": "portico.dev/ingress-controller"}});
    let mut text = class.to_string();
    for d in docs {
        text.push_str("\n---\n");
        text.push_str(&d.to_string());
    }
    let mut loaded = Loaded::default();
    parse_documents("p.yaml", &text, &mut loaded);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    translate(&loaded.snapshot, &Options::default(), &mut Cache::default())
}

fn decision_key(d: &Decision<'_>) -> String {
    match d {
        Decision::Route {
            route, location, ..
        } => format!(
            "{}/{} {:?} {:?}",
            route.origin.name,
            route.path,
            route.path_type,
            location.map(|l| (l.path.clone(), l.rewrites))
        ),
        Decision::Fallback { .. } => "fallback".into(),
        Decision::Default { .. } => "default".into(),
        Decision::NotFound { .. } => "404".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// issue 13: "regex ordering is independent of object order": the locations, their order,
    /// the conditions and every decision are the same however the Ingresses are listed.
    #[test]
    fn regex_mode_ignores_object_order(
        specs in prop::collection::vec((0..2usize, 0..10usize, 0..3usize, 0..5usize, 0..3usize), 1..8),
        seed in any::<u64>(),
    ) {
        let docs: Vec<serde_json::Value> =
            specs.iter().enumerate().map(|(i, s)| ingress(i, s)).collect();
        let mut shuffled = docs.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
        let a = translate_docs(&docs);
        let b = translate_docs(&shuffled);
        prop_assert_eq!(&a.table, &b.table);
        prop_assert_eq!(&a.conditions, &b.conditions);
        for host in HOSTS {
            for path in REQUESTS {
                prop_assert_eq!(
                    decision_key(&a.table.decide(host, path)),
                    decision_key(&b.table.decide(host, path))
                );
            }
        }
    }
}
