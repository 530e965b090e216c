//! ingress-nginx's session affinity, consistent hashing and `load-balance` over real sockets
//! (issue 14): Ingresses are translated from YAML and published to a proxy on 127.0.0.1, in
//! front of several echo backends on 127.0.0.2, 127.0.0.3, ... (one port, one address per
//! endpoint, like pods). Each test names the ingress-nginx e2e case it reproduces
//! (`test/e2e/annotations/*.go` in kubernetes/ingress-nginx).

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use portico::proxy::ProxyOptions;
use portico::routing::traffic::stable_hash;
use portico::translate::{Options, Translation};
use support::Proxy;
use tokio::net::TcpListener;

const N: &str = "nginx.ingress.kubernetes.io/";

fn n(name: &str) -> String {
    format!("{N}{name}")
}

/// `count` echo backends, each answering with its own name (`ep2`, `ep3`, ...), on one port
/// of 127.0.0.2, 127.0.0.3, ...; plus `dead` addresses on that port where nothing listens.
async fn endpoints(count: u8, dead: u8) -> (u16, Vec<SocketAddr>) {
    'port: for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for i in 3..(2 + count + dead) {
            match TcpListener::bind(("127.0.0.".to_string() + &i.to_string(), port)).await {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'port,
            }
        }
        let mut addrs = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let addr = l.local_addr().unwrap();
            addrs.push(addr);
            if i < usize::from(count) {
                tokio::spawn(support::echo::serve(l, format!("ep{}", i + 2)));
            }
            // A dead endpoint's listener is dropped here: connecting to it is refused.
        }
        return (port, addrs);
    }
    panic!("no port free on 127.0.0.2-{}", 2 + count + dead);
}

/// The IngressClass, the Service `echo` and its endpoints.
fn service(port: u16, addrs: &[SocketAddr]) -> String {
    let ips: Vec<String> = addrs
        .iter()
        .map(|a| format!("- addresses: [\"{}\"]", a.ip()))
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: portico}}
spec: {{controller: portico.dev/ingress-controller}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:
{ips}
",
        ips = ips.join("\n")
    )
}

/// One Ingress `name` (created at second `age`) for `host` with one Prefix rule per path to
/// Service `echo`, with `annotations`.
fn ingress(
    name: &str,
    age: u32,
    host: &str,
    paths: &[&str],
    annotations: &[(&str, &str)],
) -> String {
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {v:?}"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{}\n", annotations.join("\n"))
    };
    let paths: Vec<String> = paths
        .iter()
        .map(|p| {
            format!(
                "      - path: {p}
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: \"2020-01-01T00:00:{age:02}Z\"
{annotations}spec:
  ingressClassName: portico
  rules:
  - host: {host}
    http:
      paths:
{paths}
",
        paths = paths.join("\n")
    )
}

fn translate_yaml(documents: &[String], options: &Options) -> Translation {
    support::translate_documents(documents, options)
}

fn publish(proxy: &Proxy, translation: Translation) {
    proxy.publish_translation(translation);
}

async fn new_proxy() -> Proxy {
    Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..ProxyOptions::default()
    })
    .await
}

/// A proxy serving `ingresses` in front of `endpoints`.
async fn serve(port: u16, addrs: &[SocketAddr], ingresses: &[String]) -> (Proxy, Translation) {
    let mut documents = vec![service(port, addrs)];
    documents.extend(ingresses.iter().cloned());
    let translation = translate_yaml(&documents, &Options::default());
    let proxy = new_proxy().await;
    publish(&proxy, translation.clone());
    (proxy, translation)
}

/// `GET path` with `Host: host` and extra header lines.
async fn get(proxy: &Proxy, host: &str, path: &str, extra: &str) -> support::RawResponse {
    proxy
        .raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"
        ))
        .await
}

fn served_by(response: &support::RawResponse) -> String {
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The `NAME=VALUE` part of a `Set-Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

/// affinity.go "should set sticky cookie SERVERID", plus what the cookie is for: requests
/// that send it back stay on one endpoint, and its value names no address.
#[tokio::test]
async fn sticky_cookie_is_set_and_keeps_the_session_on_one_endpoint() {
    let (port, addrs) = endpoints(4, 0).await;
    let host = "sticky.foo.com";
    let (proxy, translation) = serve(
        port,
        &addrs,
        &[ingress(
            "sticky",
            0,
            host,
            &["/"],
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "SERVERID"),
            ],
        )],
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let first = get(&proxy, host, "/", "").await;
    let set = first
        .header("set-cookie")
        .expect("a sticky cookie")
        .to_string();
    assert!(set.starts_with("SERVERID="), "{set}");
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(
        !set.contains("127.0.0."),
        "the cookie names an address: {set}"
    );
    let endpoint = served_by(&first);
    let cookie = format!("Cookie: {}\r\n", cookie_pair(&set));
    for _ in 0..12 {
        let again = get(&proxy, host, "/", &cookie).await;
        assert_eq!(served_by(&again), endpoint);
        // A session that has its endpoint gets no new cookie.
        assert_eq!(again.header("set-cookie"), None);
    }
}

/// affinity.go "should set the path to /something on the generated cookie" and "does not set
/// the path to / on the generated cookie if there's more than one rule referring to the same
/// backend": each path issues the cookie for itself.
#[tokio::test]
async fn cookie_path_is_the_path_of_the_route() {
    let (port, addrs) = endpoints(2, 0).await;
    let host = "morethanonerule.foo.com";
    let (proxy, _) = serve(
        port,
        &addrs,
        &[ingress(
            "paths",
            0,
            host,
            &["/something", "/somewhereelse"],
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "SERVERID"),
            ],
        )],
    )
    .await;
    let a = get(&proxy, host, "/something", "").await;
    assert!(a
        .header("set-cookie")
        .unwrap()
        .contains("; Path=/something;"));
    let b = get(&proxy, host, "/somewhereelse", "").await;
    assert!(b
        .header("set-cookie")
        .unwrap()
        .contains("; Path=/somewhereelse;"));
}

/// affinity.go "should set cookie with expires", "should set cookie with domain", "should not
/// set cookie without domain annotation", "should work with use-regex annotation and
/// session-cookie-path", "should set secure in cookie with provided true annotation on http",
/// "should not set secure in cookie with provided false annotation on http".
#[tokio::test]
async fn cookie_attributes_follow_the_annotations() {
    let (port, addrs) = endpoints(2, 0).await;
    // Each Ingress alone: they would share the Service's cookie settings otherwise.
    let first_cookie = |ingress: String, host: &'static str, path: &'static str| {
        let addrs = addrs.clone();
        async move {
            let (proxy, translation) = serve(port, &addrs, &[ingress]).await;
            assert!(
                translation.conditions.is_empty(),
                "{:?}",
                translation.conditions
            );
            let response = get(&proxy, host, path, "").await;
            response.header("set-cookie").expect("a cookie").to_string()
        }
    };
    let set = first_cookie(
        ingress(
            "expires",
            0,
            "expires.foo.com",
            &["/"],
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "ExpiresCookie"),
                (&n("session-cookie-expires"), "172800"),
                (&n("session-cookie-max-age"), "259200"),
            ],
        ),
        "expires.foo.com",
        "/",
    )
    .await;
    assert!(set.starts_with("ExpiresCookie="), "{set}");
    assert!(
        set.contains("; Expires=") && set.ends_with("GMT; Max-Age=259200; HttpOnly"),
        "{set}"
    );
    assert!(!set.contains("; Domain"), "{set}");
    assert!(!set.contains("; Secure"), "{set}");
    let set = first_cookie(
        ingress(
            "domain",
            1,
            "domain.foo.com",
            &["/"],
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "DomainCookie"),
                (&n("session-cookie-domain"), "foo.bar"),
                (&n("session-cookie-secure"), "true"),
                (&n("session-cookie-samesite"), "Strict"),
            ],
        ),
        "domain.foo.com",
        "/",
    )
    .await;
    assert!(set.contains("; Domain=foo.bar"), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    assert!(set.contains("; SameSite=Strict"), "{set}");
    let set = first_cookie(
        ingress(
            "regex",
            2,
            "regex.foo.com",
            &["/foo.*"],
            &[
                (&n("affinity"), "cookie"),
                (&n("use-regex"), "true"),
                (&n("session-cookie-path"), "/foo/bar"),
                (&n("session-cookie-secure"), "false"),
            ],
        ),
        "regex.foo.com",
        "/foo/x",
    )
    .await;
    assert!(set.starts_with("INGRESSCOOKIE="), "{set}");
    assert!(set.contains("; Path=/foo/bar;"), "{set}");
    assert!(!set.contains("; Secure"), "{set}");
}

/// Scope (ingress-nginx `controller.go` `createServers`): two Ingresses with `affinity:
/// cookie` for one Service share its cookie settings, the youngest's (each overwrites them);
/// each still issues the cookie for its own paths.
#[tokio::test]
async fn ingresses_of_one_service_share_its_cookie_settings() {
    let (port, addrs) = endpoints(2, 0).await;
    let (proxy, _) = serve(
        port,
        &addrs,
        &[
            ingress(
                "old",
                0,
                "a.foo.com",
                &["/"],
                &[
                    (&n("affinity"), "cookie"),
                    (&n("session-cookie-name"), "OLD"),
                ],
            ),
            ingress(
                "young",
                1,
                "b.foo.com",
                &["/b"],
                &[
                    (&n("affinity"), "cookie"),
                    (&n("session-cookie-name"), "YOUNG"),
                ],
            ),
        ],
    )
    .await;
    let a = get(&proxy, "a.foo.com", "/", "").await;
    assert!(a.header("set-cookie").unwrap().starts_with("YOUNG="));
    let b = get(&proxy, "b.foo.com", "/b", "").await;
    let set = b.header("set-cookie").unwrap();
    assert!(
        set.starts_with("YOUNG=") && set.contains("; Path=/b;"),
        "{set}"
    );
}

/// affinity.go "should not set affinity across all server locations when using separate
/// ingresses": only the paths of the Ingress with `affinity: cookie` issue the cookie, even
/// though both route to the same Service.
#[tokio::test]
async fn only_the_affinity_ingress_issues_the_cookie() {
    let (port, addrs) = endpoints(2, 0).await;
    let host = "separate.foo.com";
    let (proxy, _) = serve(
        port,
        &addrs,
        &[
            ingress(
                "ingress1",
                0,
                host,
                &["/foo/bar"],
                &[(&n("affinity"), "cookie")],
            ),
            ingress("ingress2", 1, host, &["/foo"], &[]),
        ],
    )
    .await;
    let plain = get(&proxy, host, "/foo", "").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("set-cookie"), None);
    let sticky = get(&proxy, host, "/foo/bar", "").await;
    assert!(sticky
        .header("set-cookie")
        .unwrap()
        .contains("; Path=/foo/bar;"));
    // The other Ingress's paths still follow a cookie they are sent (the Service's affinity).
    let cookie = format!(
        "Cookie: {}\r\n",
        cookie_pair(sticky.header("set-cookie").unwrap())
    );
    let endpoint = served_by(&sticky);
    for _ in 0..6 {
        assert_eq!(
            served_by(&get(&proxy, host, "/foo", &cookie).await),
            endpoint
        );
    }
}

/// affinitymode.go "Check persistent affinity mode": scaling up moves no session. And
/// "Balanced affinity mode should balance": new sessions spread over the endpoints.
#[tokio::test]
async fn persistent_sessions_survive_scaling_up_and_balanced_ones_spread() {
    let (port, addrs) = endpoints(5, 0).await;
    let host = "affinity-mode.foo.com";
    let annotations = |mode: &'static str| {
        vec![
            (n("affinity"), "cookie"),
            (n("session-cookie-name"), "hello-cookie"),
            (n("affinity-mode"), mode),
        ]
    };
    let ingress_with = |mode: &'static str| {
        let a = annotations(mode);
        let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        ingress("mode", 0, host, &["/"], &a)
    };
    // Persistent, with only the first two endpoints.
    let (proxy, _) = serve(port, &addrs[..2], &[ingress_with("persistent")]).await;
    let first = get(&proxy, host, "/", "").await;
    let endpoint = served_by(&first);
    let cookie = format!(
        "Cookie: {}\r\n",
        cookie_pair(first.header("set-cookie").unwrap())
    );
    for count in 3..=5 {
        let documents = vec![service(port, &addrs[..count]), ingress_with("persistent")];
        publish(&proxy, translate_yaml(&documents, &Options::default()));
        for _ in 0..4 {
            let again = get(&proxy, host, "/", &cookie).await;
            assert_eq!(served_by(&again), endpoint, "moved at {count} endpoints");
        }
    }
    // Balanced: twenty new sessions do not all land on one endpoint.
    let documents = vec![service(port, &addrs), ingress_with("balanced")];
    publish(&proxy, translate_yaml(&documents, &Options::default()));
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let response = get(&proxy, host, "/", "").await;
        assert!(response.header("set-cookie").is_some());
        seen.insert(served_by(&response));
    }
    assert!(seen.len() > 1, "{seen:?}");
}

/// A session whose endpoint is down: `session-cookie-change-on-failure: "true"` moves it to
/// another endpoint with a new cookie (ingress-nginx `sticky.lua` `balance`); without it the
/// session stays on its endpoint, as ingress-nginx retries the same upstream.
#[tokio::test]
async fn change_on_failure_moves_the_session_off_a_failed_endpoint() {
    let (port, addrs) = endpoints(1, 1).await;
    let (live, dead) = (addrs[0], addrs[1]);
    // A balanced session key held by the dead endpoint, the way the proxy looks keys up.
    let key = (0..10_000)
        .map(|i| format!("k{i}"))
        .find(|k| {
            portico::proxy::affinity::rendezvous(stable_hash(k.as_bytes()), &addrs, |_| 1)
                == Some(dead)
        })
        .expect("some key maps to the dead endpoint");
    let cookie = format!("Cookie: SESSION={key}|x\r\n");
    let (proxy, _) = serve(
        port,
        &addrs,
        &[ingress(
            "change",
            0,
            "change.foo.com",
            &["/"],
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "SESSION"),
                (&n("session-cookie-change-on-failure"), "true"),
            ],
        )],
    )
    .await;
    let moved = get(&proxy, "change.foo.com", "/", &cookie).await;
    assert_eq!(served_by(&moved), "ep2");
    let set = moved.header("set-cookie").expect("a new session cookie");
    assert!(!set.contains(&key), "{set}");
    // Without change-on-failure: the session stays on its endpoint (a fresh proxy, so no
    // ejection from the first part is involved).
    let documents = vec![
        service(port, &addrs),
        ingress(
            "stay",
            0,
            "change.foo.com",
            &["/"],
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "SESSION"),
            ],
        ),
    ];
    let fresh = new_proxy().await;
    publish(&fresh, translate_yaml(&documents, &Options::default()));
    let stuck = get(&fresh, "change.foo.com", "/", &cookie).await;
    assert_eq!(stuck.status, 502, "{}", stuck.text());
    let _ = live;
}

/// upstreamhashby.go "should connect to the same pod" and "should connect to the same subset
/// of pods" (6 endpoints, subset size 3).
#[tokio::test]
async fn upstream_hash_by_pins_a_key_to_one_endpoint_or_one_subset() {
    let (port, addrs) = endpoints(6, 0).await;
    let (proxy, translation) = serve(
        port,
        &addrs,
        &[ingress(
            "hash",
            0,
            "upstream-hash-by.foo.com",
            &["/"],
            &[(&n("upstream-hash-by"), "$request_uri")],
        )],
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let mut pods = BTreeSet::new();
    for _ in 0..30 {
        pods.insert(served_by(
            &get(&proxy, "upstream-hash-by.foo.com", "/", "").await,
        ));
    }
    assert_eq!(pods.len(), 1, "{pods:?}");
    // Other URIs go elsewhere: the key is the request URI, not a constant.
    let mut others = BTreeSet::new();
    for i in 0..30 {
        others.insert(served_by(
            &get(&proxy, "upstream-hash-by.foo.com", &format!("/{i}"), "").await,
        ));
    }
    assert!(others.len() > 1, "{others:?}");

    let documents = vec![
        service(port, &addrs),
        ingress(
            "hash",
            0,
            "upstream-hash-by.foo.com",
            &["/"],
            &[
                (&n("upstream-hash-by"), "$request_uri"),
                (&n("upstream-hash-by-subset"), "true"),
                (&n("upstream-hash-by-subset-size"), "3"),
            ],
        ),
    ];
    publish(&proxy, translate_yaml(&documents, &Options::default()));
    let mut pods = BTreeSet::new();
    for _ in 0..60 {
        pods.insert(served_by(
            &get(&proxy, "upstream-hash-by.foo.com", "/", "").await,
        ));
    }
    assert_eq!(pods.len(), 3, "{pods:?}");
}

/// Hashing keeps passive health and retries: a key whose endpoint is down is served by
/// another endpoint (`proxy-next-upstream`), not answered 502.
#[tokio::test]
async fn a_hashed_key_on_a_dead_endpoint_is_retried_elsewhere() {
    let (port, addrs) = endpoints(2, 1).await;
    let dead = addrs[2];
    let path = (0..10_000)
        .map(|i| format!("/k{i}"))
        .find(|p| {
            portico::proxy::affinity::rendezvous(stable_hash(p.as_bytes()), &addrs, |_| 2)
                == Some(dead)
        })
        .expect("some path maps to the dead endpoint");
    let (proxy, _) = serve(
        port,
        &addrs,
        &[ingress(
            "hash",
            0,
            "h.example",
            &["/"],
            &[(&n("upstream-hash-by"), "$request_uri")],
        )],
    )
    .await;
    for _ in 0..3 {
        let response = get(&proxy, "h.example", &path, "").await;
        assert_ne!(served_by(&response), "");
    }
}

/// Scope (ingress-nginx `controller.go` `createUpstreams`): `load-balance` and
/// `upstream-hash-by` are the Service's, from the oldest Ingress routing to it, whether it
/// sets them or not; a younger Ingress's values for the same Service are not used.
#[test]
fn hashing_and_load_balance_come_from_the_oldest_ingress_of_the_service() {
    let addrs: Vec<SocketAddr> = vec!["10.0.0.1:80".parse().unwrap()];
    let documents = vec![
        service(80, &addrs),
        ingress("old", 0, "a.example", &["/"], &[]),
        ingress(
            "young",
            1,
            "b.example",
            &["/"],
            &[
                (&n("upstream-hash-by"), "$host"),
                (&n("load-balance"), "ewma"),
            ],
        ),
    ];
    let translation = translate_yaml(&documents, &Options::default());
    let json = serde_json::to_value(&translation.table).unwrap();
    let text = json.to_string();
    assert!(!text.contains("hashBy"), "{text}");
    assert!(!text.contains("ewma"), "{text}");
    // The other way round, the oldest Ingress's settings serve both.
    let documents = vec![
        service(80, &addrs),
        ingress(
            "old",
            0,
            "a.example",
            &["/"],
            &[
                (&n("upstream-hash-by"), "$host"),
                (&n("load-balance"), "ewma"),
            ],
        ),
        ingress("young", 1, "b.example", &["/"], &[]),
    ];
    let translation = translate_yaml(&documents, &Options::default());
    for vhost in translation.table.vhosts() {
        let policy = &vhost.routes[0].backend.policy;
        assert_eq!(
            policy.balance,
            Some(portico::routing::Balance::Ewma),
            "{}",
            vhost.host
        );
        let hash = policy.traffic.as_ref().and_then(|t| t.hash_by.as_ref());
        assert_eq!(
            hash.map(|h| h.text.as_str()),
            Some("$host"),
            "{}",
            vhost.host
        );
    }
}

/// Bad input: each unusable value is an `InvalidAnnotation` naming Ingress and key, and its
/// default applies; `load-balance` values ingress-nginx had but Portico maps elsewhere say
/// what to use.
#[test]
fn invalid_values_are_reported_and_defaults_apply() {
    let addrs: Vec<SocketAddr> = vec!["10.0.0.1:80".parse().unwrap()];
    let documents = vec![
        service(80, &addrs),
        ingress(
            "bad",
            0,
            "a.example",
            &["/"],
            &[
                (&n("affinity"), "cookie"),
                (&n("affinity-mode"), "sometimes"),
                (&n("session-cookie-name"), "a b"),
                (&n("session-cookie-max-age"), "soon"),
                (&n("session-cookie-samesite"), "Sometimes"),
                (&n("upstream-hash-by"), "$upstream_addr"),
                (&n("load-balance"), "ip_hash"),
            ],
        ),
    ];
    let translation = translate_yaml(&documents, &Options::default());
    let messages: Vec<String> = translation
        .conditions
        .iter()
        .map(|c| format!("{:?} {}: {}", c.reason, c.object.name, c.message))
        .collect();
    assert_eq!(messages.len(), 6, "{messages:#?}");
    assert!(messages
        .iter()
        .all(|m| m.starts_with("InvalidAnnotation bad: annotation nginx.ingress.kubernetes.io/")));
    assert!(messages
        .iter()
        .any(|m| m.contains("load-balance") && m.contains("$remote_addr")));
    assert!(messages.iter().any(|m| m.contains("$upstream_addr")));
    // The cookie keeps its defaults where the values were bad.
    let route = &translation.table.vhosts()[0].routes[0];
    let affinity = route
        .backend
        .policy
        .traffic
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap();
    assert_eq!(affinity.name, "INGRESSCOOKIE");
    assert_eq!(affinity.max_age, None);
    assert!(!affinity.persistent);
}

/// configmap.md `load-balance`: the controller ConfigMap's value; an unknown one is reported.
#[test]
fn configmap_load_balance_is_read() {
    let configmap = |value: &str| {
        format!(
            "apiVersion: v1
kind: ConfigMap
metadata: {{name: portico, namespace: infra}}
data: {{load-balance: {value:?}}}
"
        )
    };
    let options = Options {
        configmap: Some(("infra".into(), "portico".into())),
        ..Options::default()
    };
    let translation = translate_yaml(&[configmap("ewma")], &options);
    assert_eq!(
        translation.global.load_balance,
        Some(portico::routing::Balance::Ewma)
    );
    let translation = translate_yaml(&[configmap("least_conn")], &options);
    assert_eq!(translation.global.load_balance, None);
    assert!(translation
        .conditions
        .iter()
        .any(|c| c.message.starts_with("load-balance: \"least_conn\"")));
}
