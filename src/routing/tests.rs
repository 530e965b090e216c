//! Matcher unit tests, each named after the rule it pins (spec §3.3–3.7, §3.9).

use std::sync::Arc;

use super::*;

fn backend(name: &str) -> Arc<Backend> {
    Arc::new(Backend::new(
        BackendRef::Service {
            namespace: "default".into(),
            name: name.into(),
            port: PortRef::Number(80),
        },
        Target::Endpoints(vec!["127.0.0.1:80".parse().unwrap()]),
    ))
}

fn route(path: &str, path_type: PathType, name: &str) -> Route {
    route_from(path, path_type, name, name)
}

fn route_from(path: &str, path_type: PathType, name: &str, ingress: &str) -> Route {
    Route {
        path: path.into(),
        path_type,
        backend: backend(name),
        origin: Origin {
            namespace: "default".into(),
            name: ingress.into(),
            rule: 0,
            path: 0,
        },
        ssl_redirect: false,
    }
}

fn vhost(routes: Vec<Route>) -> VirtualHost {
    VirtualHost::new(HostMatch::Any, routes, None)
}

/// The backend name chosen for `path`, or `None`.
fn chosen(v: &VirtualHost, path: &str) -> Option<String> {
    v.lookup(path).map(|r| match &r.backend.reference {
        BackendRef::Service { name, .. } => name.clone(),
        BackendRef::Resource { name, .. } => name.clone(),
    })
}

use PathType::{Exact, ImplementationSpecific, Prefix};

#[test]
fn root_prefix_matches_everything() {
    let v = vhost(vec![route("/", Prefix, "root")]);
    for p in ["/", "/a", "/a/b/", "/FOO", "*"] {
        assert_eq!(chosen(&v, p).as_deref(), Some("root"), "{p}");
    }
}

#[test]
fn exact_requires_equality() {
    let v = vhost(vec![route("/foo", Exact, "foo")]);
    assert_eq!(chosen(&v, "/foo").as_deref(), Some("foo"));
    assert_eq!(chosen(&v, "/bar"), None);
    assert_eq!(chosen(&v, "/foo/"), None, "trailing slash counts");
    assert_eq!(chosen(&v, "/FOO"), None, "case-sensitive");
    let slash = vhost(vec![route("/foo/", Exact, "foo")]);
    assert_eq!(chosen(&slash, "/foo"), None);
    let root = vhost(vec![route("/", Exact, "root")]);
    assert_eq!(chosen(&root, "/").as_deref(), Some("root"));
    assert_eq!(chosen(&root, "/a"), None);
}

#[test]
fn prefix_is_element_wise() {
    let v = vhost(vec![route("/aaa/bbb", Prefix, "p")]);
    assert_eq!(chosen(&v, "/aaa/bbb").as_deref(), Some("p"));
    assert_eq!(chosen(&v, "/aaa/bbb/").as_deref(), Some("p"));
    assert_eq!(chosen(&v, "/aaa/bbb/ccc").as_deref(), Some("p"));
    assert_eq!(chosen(&v, "/aaa/bbbxyz"), None);
    assert_eq!(chosen(&v, "/aaa"), None);
    let short = vhost(vec![route("/aaa/bb", Prefix, "p")]);
    assert_eq!(chosen(&short, "/aaa/bbb"), None);
}

#[test]
fn prefix_ignores_trailing_slash_on_rule() {
    let v = vhost(vec![route("/aaa/bbb/", Prefix, "p")]);
    assert_eq!(chosen(&v, "/aaa/bbb").as_deref(), Some("p"));
    assert_eq!(chosen(&v, "/aaa/bbb/").as_deref(), Some("p"));
    assert_eq!(chosen(&v, "/aaa/bbb/c").as_deref(), Some("p"));
}

#[test]
fn prefix_is_case_sensitive() {
    let v = vhost(vec![route("/foo", Prefix, "p")]);
    assert_eq!(chosen(&v, "/FOO"), None);
    let upper = vhost(vec![route("/Foo", Prefix, "p")]);
    assert_eq!(chosen(&upper, "/foo"), None);
}

#[test]
fn repeated_slashes_stay_elements() {
    let v = vhost(vec![route("/foo", Prefix, "p")]);
    assert_eq!(chosen(&v, "/foo//bar").as_deref(), Some("p"));
    assert_eq!(chosen(&v, "/foo;v=1"), None);
}

#[test]
fn longest_prefix_wins() {
    let v = vhost(vec![
        route("/", Prefix, "root"),
        route("/aaa", Prefix, "aaa"),
        route("/aaa/bbb", Prefix, "bbb"),
    ]);
    assert_eq!(chosen(&v, "/aaa/ccc").as_deref(), Some("aaa"));
    assert_eq!(chosen(&v, "/aaa/bbb").as_deref(), Some("bbb"));
    assert_eq!(chosen(&v, "/aaa/bbb/x").as_deref(), Some("bbb"));
    assert_eq!(chosen(&v, "/ccc").as_deref(), Some("root"));
    assert_eq!(chosen(&v, "/aaaccc").as_deref(), Some("root"));
}

#[test]
fn exact_beats_prefix_at_equal_length() {
    let v = vhost(vec![
        route("/foo", Prefix, "prefix"),
        route("/foo", Exact, "exact"),
    ]);
    assert_eq!(chosen(&v, "/foo").as_deref(), Some("exact"));
    assert_eq!(chosen(&v, "/foo/").as_deref(), Some("prefix"));
}

#[test]
fn exact_beats_slash_prefix_at_equal_effective_length() {
    let v = vhost(vec![
        route("/foo/", Prefix, "prefix"),
        route("/foo", Exact, "exact"),
    ]);
    assert_eq!(chosen(&v, "/foo").as_deref(), Some("exact"));
    assert_eq!(chosen(&v, "/foo/x").as_deref(), Some("prefix"));
}

#[test]
fn longer_exact_beats_shorter_prefix() {
    let v = vhost(vec![
        route("/foo", Prefix, "prefix"),
        route("/foo/bar", Exact, "exact"),
    ]);
    assert_eq!(chosen(&v, "/foo/bar").as_deref(), Some("exact"));
    assert_eq!(chosen(&v, "/foo/baz").as_deref(), Some("prefix"));
}

#[test]
fn written_slash_prefix_beats_bare_prefix() {
    let v = vhost(vec![
        route("/foo", Prefix, "bare"),
        route("/foo/", Prefix, "slash"),
    ]);
    assert_eq!(chosen(&v, "/foo").as_deref(), Some("slash"));
    assert_eq!(chosen(&v, "/foo/x").as_deref(), Some("slash"));
    let (loser, winner) = v.shadowed().next().expect("bare /foo is shadowed");
    assert_eq!(loser.path, "/foo");
    assert_eq!(winner.path, "/foo/");
}

#[test]
fn oldest_wins_identical_paths() {
    // Routes arrive in age order: "old" first.
    let v = vhost(vec![
        route_from("/x", Prefix, "old", "a"),
        route_from("/x", Prefix, "new", "b"),
    ]);
    assert_eq!(chosen(&v, "/x").as_deref(), Some("old"));
    let shadowed: Vec<_> = v.shadowed().collect();
    assert_eq!(shadowed.len(), 1);
    assert_eq!(shadowed[0].0.origin.name, "b");
}

#[test]
fn implementation_specific_is_a_literal_prefix() {
    let v = vhost(vec![
        route("/api", ImplementationSpecific, "api"),
        route("/api/v[0-9]+", ImplementationSpecific, "regex"),
        route("/.*", ImplementationSpecific, "dotstar"),
    ]);
    assert_eq!(chosen(&v, "/api/v1").as_deref(), Some("api"));
    assert_eq!(chosen(&v, "/apiv1"), None);
    assert_eq!(chosen(&v, "/api/v[0-9]+/x").as_deref(), Some("regex"));
    assert_eq!(chosen(&v, "/anything"), None);
}

#[test]
fn prefix_and_exact_with_shared_start_do_not_interfere() {
    let v = vhost(vec![
        route("/a/b/c", Exact, "exact"),
        route("/a", Prefix, "a"),
    ]);
    assert_eq!(chosen(&v, "/a/b/c/d").as_deref(), Some("a"));
    assert_eq!(chosen(&v, "/a/b/c").as_deref(), Some("exact"));
}

fn table() -> RouteTable {
    RouteTable::new(
        vec![
            VirtualHost::new(
                HostMatch::Exact("bar.foo.com".into()),
                vec![route("/", Prefix, "exact-host")],
                None,
            ),
            VirtualHost::new(
                HostMatch::Wildcard("foo.com".into()),
                vec![route("/", Prefix, "wildcard")],
                None,
            ),
            VirtualHost::new(
                HostMatch::Exact("fallback.example".into()),
                vec![route("/only", Exact, "only")],
                Some(backend("vhost-default")),
            ),
            VirtualHost::new(
                HostMatch::Any,
                vec![route("/hostless", Prefix, "hostless")],
                None,
            ),
        ],
        Some(backend("global-default")),
    )
}

fn decided(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.decide(host, path).backend().map(|b| match &b.reference {
        BackendRef::Service { name, .. } => name.clone(),
        BackendRef::Resource { name, .. } => name.clone(),
    })
}

#[test]
fn exact_host_beats_wildcard() {
    assert_eq!(
        decided(&table(), "bar.foo.com", "/").as_deref(),
        Some("exact-host")
    );
}

#[test]
fn wildcard_matches_one_label() {
    let t = table();
    assert_eq!(decided(&t, "baz.foo.com", "/").as_deref(), Some("wildcard"));
    // Two labels, or none, fall to the hostless vhost, which has no `/` route: global default.
    assert_eq!(
        decided(&t, "a.baz.foo.com", "/").as_deref(),
        Some("global-default")
    );
    assert_eq!(
        decided(&t, "foo.com", "/").as_deref(),
        Some("global-default")
    );
    assert_eq!(
        decided(&t, ".foo.com", "/").as_deref(),
        Some("global-default")
    );
}

#[test]
fn hostless_serves_unclaimed_hosts_and_ips() {
    let t = table();
    assert_eq!(
        decided(&t, "10.0.0.7", "/hostless/x").as_deref(),
        Some("hostless")
    );
    assert_eq!(decided(&t, "", "/hostless").as_deref(), Some("hostless"));
}

#[test]
fn no_fall_through_between_vhosts() {
    // bar.foo.com has `/` only, so this needs a host with a miss: wildcard vhost has `/` too;
    // build one whose exact vhost misses while the hostless vhost would match.
    let t = RouteTable::new(
        vec![
            VirtualHost::new(
                HostMatch::Exact("a.example".into()),
                vec![route("/x", Prefix, "x")],
                None,
            ),
            VirtualHost::new(HostMatch::Any, vec![route("/", Prefix, "hostless")], None),
        ],
        Some(backend("global-default")),
    );
    assert!(matches!(
        t.decide("a.example", "/y"),
        Decision::NotFound { vhost: Some(_) }
    ));
}

#[test]
fn vhost_fallback_serves_path_misses() {
    let t = table();
    assert_eq!(
        decided(&t, "fallback.example", "/only").as_deref(),
        Some("only")
    );
    assert_eq!(
        decided(&t, "fallback.example", "/other").as_deref(),
        Some("vhost-default")
    );
}

#[test]
fn unknown_host_gets_global_default_or_404() {
    let t = table();
    assert_eq!(
        decided(&t, "nowhere.example", "/").as_deref(),
        Some("global-default")
    );
    let bare = RouteTable::new(Vec::new(), None);
    assert!(matches!(
        bare.decide("nowhere.example", "/"),
        Decision::NotFound { vhost: None }
    ));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![Just("a"), Just("b"), Just("ab"), Just(""), Just("A")].prop_map(String::from)
    }

    fn path() -> impl Strategy<Value = String> {
        proptest::collection::vec(segment(), 0..5).prop_map(|segs| format!("/{}", segs.join("/")))
    }

    fn path_type() -> impl Strategy<Value = PathType> {
        prop_oneof![Just(Exact), Just(Prefix), Just(ImplementationSpecific)]
    }

    proptest! {
        /// Hash probing gives exactly the answer of the precedence-order scan (spec §3.6).
        #[test]
        fn probe_equals_precedence_scan(
            rules in proptest::collection::vec((path(), path_type()), 1..30),
            requests in proptest::collection::vec(path(), 1..20),
        ) {
            let routes = rules
                .iter()
                .enumerate()
                .map(|(i, (p, t))| route_from(p, *t, &format!("b{i}"), &format!("i{i}")))
                .collect();
            let v = vhost(routes);
            for r in &requests {
                let (scan, probe) = v.lookup_both(r);
                prop_assert_eq!(scan, probe, "path {}", r);
            }
        }

        /// Among matching prefixes the one with the longest effective length wins.
        #[test]
        fn longer_prefix_always_wins(
            rules in proptest::collection::vec(path(), 1..20),
            request in path(),
        ) {
            let routes = rules
                .iter()
                .enumerate()
                .map(|(i, p)| route_from(p, Prefix, &format!("b{i}"), &format!("i{i}")))
                .collect();
            let v = vhost(routes);
            let best = v.routes.iter().filter(|r| r.matches(&request)).map(Route::effective_len).max();
            prop_assert_eq!(v.lookup(&request).map(Route::effective_len), best);
        }
    }
}

/// A table with the same hosts as an earlier one shares its host index (issue 11); one with
/// other hosts gets its own, and both select the right vhost.
#[test]
fn the_host_index_is_shared_only_by_the_same_hosts() {
    let host = |h: &str, name: &str| {
        Arc::new(VirtualHost::new(
            HostMatch::Exact(h.into()),
            vec![route("/", Prefix, name)],
            None,
        ))
    };
    let wild = Arc::new(VirtualHost::new(
        HostMatch::Wildcard("w.test".into()),
        vec![route("/", Prefix, "w")],
        None,
    ));
    let first = RouteTable::from_shared(vec![host("a.test", "a"), wild.clone()], None);
    let same = RouteTable::from_shared_with(
        vec![wild.clone(), host("a.test", "a2")],
        None,
        Some(first.host_index()),
    );
    assert!(Arc::ptr_eq(&first.host_index(), &same.host_index()));
    let other = RouteTable::from_shared_with(
        vec![host("b.test", "b"), wild.clone()],
        None,
        Some(first.host_index()),
    );
    assert!(!Arc::ptr_eq(&first.host_index(), &other.host_index()));
    let picked = |t: &RouteTable, h: &str| t.select_vhost(h).map(|v| v.host.to_string());
    assert_eq!(picked(&same, "a.test").as_deref(), Some("a.test"));
    assert_eq!(picked(&same, "x.w.test").as_deref(), Some("*.w.test"));
    assert_eq!(picked(&other, "a.test"), None);
    assert_eq!(picked(&other, "b.test").as_deref(), Some("b.test"));
    // Aliases go into the table's own copy, never into the shared index.
    let aliased = RouteTable::from_shared_with(
        vec![host("a.test", "a3"), wild],
        None,
        Some(first.host_index()),
    )
    .with_aliases(vec![(
        HostMatch::Exact("alias.test".into()),
        HostMatch::Exact("a.test".into()),
    )]);
    assert_eq!(picked(&aliased, "alias.test").as_deref(), Some("a.test"));
    assert_eq!(picked(&first, "alias.test"), None);
}

/// issue 11: a backend without annotations carries the one shared default policy (a `Policy`
/// is ~560 bytes; one per backend was the largest allocation per Ingress in translate's state).
#[test]
fn backends_without_annotations_share_one_default_policy() {
    let (a, b) = (backend("a"), backend("b"));
    assert!(Arc::ptr_eq(&a.policy, &b.policy));
    assert!(a.policy.is_default());
    assert!(Policy::default().is_default());
}
