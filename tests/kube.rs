//! Kubernetes mode end to end: Portico's unmodified kube client against the fake API server in
//! `support/fake_apiserver.rs`, echo backends on loopback, requests through the real proxy.
//! Every wait is a bounded polling loop; timings are printed, never asserted.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use fake_apiserver::FakeApi;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{json, Value};
use support::{free_port, start_echo, Conn};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const POLL: Duration = Duration::from_millis(20);
/// Polls before giving up: 20 s at most, so a bug fails instead of hanging.
const POLLS: usize = 1000;

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portico-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(format!("{name}-{:08x}", fastrand::u32(..)))
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test object deserialises")
}

fn class(name: &str, controller: &str) -> IngressClass {
    from_json(json!({"metadata": {"name": name}, "spec": {"controller": controller}}))
}

fn ingress(name: &str, host: &str, service: &str, class: &str) -> Ingress {
    from_json(json!({
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "ingressClassName": class,
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}}
            }]}}]
        }
    }))
}

fn service(name: &str) -> Service {
    from_json(json!({
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"ports": [{"port": 80}]}
    }))
}

fn slice(service: &str, backend: SocketAddr) -> EndpointSlice {
    from_json(json!({
        "metadata": {"name": format!("{service}-1"), "namespace": "apps",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": backend.port()}],
        "endpoints": [{"addresses": [backend.ip().to_string()]}]
    }))
}

/// An app: Service + EndpointSlice to a fresh echo backend named `name`, and an Ingress for
/// `host` in class `portico`.
async fn app(api: &FakeApi, name: &str, host: &str) {
    let backend = start_echo(name).await;
    api.apply(&service(name));
    api.apply(&slice(name, backend));
    api.apply(&ingress(name, host, name, "portico"));
}

fn base(api: &FakeApi) {
    api.apply(&class("portico", "portico.dev/ingress-controller"));
    api.apply(&class("other", "example.com/other"));
}

struct Portico {
    http: SocketAddr,
    admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Portico {
    /// Starts Portico in this process against `server`, with a 2 s election Lease.
    async fn start(server: SocketAddr, extra: &[&str]) -> Portico {
        let kubeconfig = temp_file("kubeconfig");
        fake_apiserver::write_kubeconfig(server, &kubeconfig);
        let (http, https, admin) = (free_port(), free_port(), free_port());
        let mut args = vec![
            "portico".to_string(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--http-addr".into(),
            http.to_string(),
            "--https-addr".into(),
            https.to_string(),
            "--admin-addr".into(),
            admin.to_string(),
            "--election-namespace".into(),
            "portico".into(),
            "--election-lease-duration".into(),
            "2s".into(),
            // Tests stop Portico at once; production waits for balancers to notice.
            "--shutdown-delay".into(),
            "0s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let config = portico::config::Args::try_parse_from(args)
            .expect("arguments parse")
            .validate()
            .expect("arguments are valid");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            portico::app::run(config, None, async {
                let _ = stopped.await;
            })
            .await
            .expect("portico runs");
        });
        Portico {
            http,
            admin,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
    }

    async fn status_code(addr: SocketAddr, host: &str, path: &str) -> Option<(u16, String)> {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut conn = Conn {
            reader: tokio::io::BufReader::new(stream),
        };
        conn.send(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let response = conn.response().await;
        Some((response.status, response.text()))
    }

    async fn ready(&self) -> bool {
        matches!(
            Self::status_code(self.admin, "admin", "/readyz").await,
            Some((200, _))
        )
    }

    async fn wait_ready(&self) {
        poll("ready", || self.ready()).await;
    }

    /// Which echo backend answered for `host`, or the status code.
    async fn who(&self, host: &str) -> String {
        match Self::status_code(self.http, host, "/").await {
            Some((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_string))
                .unwrap_or(body),
            Some((code, _)) => code.to_string(),
            None => "unreachable".into(),
        }
    }

    async fn wait_who(&self, host: &str, want: &str) {
        poll(&format!("{host} → {want}"), || async {
            self.who(host).await == want
        })
        .await;
    }
}

/// Polls `check` until it holds, at most `POLLS` times; returns how long it took.
async fn poll<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    for _ in 0..POLLS {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out waiting for: {what}");
}

fn addresses(status: &Value) -> Vec<String> {
    status["loadBalancer"]["ingress"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    a["ip"]
                        .as_str()
                        .or(a["hostname"].as_str())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ingress_addresses(api: &FakeApi, name: &str) -> Vec<String> {
    api.get::<Ingress>("apps", name)
        .map(|i| addresses(&serde_json::to_value(i.status).expect("serialise")))
        .unwrap_or_default()
}

/// Creates app `name` and watches both the proxy and the status writes every 2 ms: how long
/// until the first routed request, and until the first status write.
async fn measure(api: &FakeApi, portico: &Portico, name: &str) -> (Duration, Duration) {
    let backend = start_echo(name).await;
    api.apply(&service(name));
    api.apply(&slice(name, backend));
    let host = format!("{name}.example");
    let created = Instant::now();
    api.apply(&ingress(name, &host, name, "portico"));
    // Two independent pollers, so a slow request does not delay noticing the status.
    let routable = async {
        for _ in 0..10_000 {
            if portico.who(&host).await == name {
                return created.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{name} never became routable");
    };
    let status = async {
        for _ in 0..10_000 {
            if !api.status_writes_for("apps", name).is_empty() {
                let elapsed = created.elapsed();
                // spec §7 ordering, as the conformance suite checks it: one request, no retry.
                assert_eq!(portico.who(&host).await, name, "status before the route");
                return elapsed;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{name} never got status");
    };
    tokio::join!(routable, status)
}

fn assert_calls_are_in_rbac(api: &FakeApi) {
    for call in api.calls() {
        assert!(
            portico::status::API_CALLS
                .iter()
                .any(|(g, r, v)| *g == call.group && *r == call.resource && *v == call.verb),
            "Portico made a call that portico::status::API_CALLS (and so the RBAC) lacks: {call:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_objects_become_routable_status_follows_and_deletes_withdraw() {
    let api = FakeApi::start().await;
    base(&api);
    let portico = Portico::start(api.addr, &["--publish-status-address", "192.0.2.10"]).await;
    portico.wait_ready().await;
    assert_eq!(portico.who("a.example").await, "404");

    let created = Instant::now();
    app(&api, "a", "a.example").await;
    poll("a routable", || async {
        portico.who("a.example").await == "a"
    })
    .await;
    let routable = created.elapsed();
    poll("a status", || async {
        !api.status_writes_for("apps", "a").is_empty()
    })
    .await;
    let status = created.elapsed();
    println!("MEASURE created → routable: {routable:?}; created → status written: {status:?}");

    // spec §7 ordering, the conformance way: once status shows, one request must route.
    let backend = start_echo("b").await;
    api.apply(&service("b"));
    api.apply(&slice("b", backend));
    api.apply(&ingress("b", "b.example", "b", "portico"));
    poll("b status", || async {
        !ingress_addresses(&api, "b").is_empty()
    })
    .await;
    assert_eq!(
        portico.who("b.example").await,
        "b",
        "status appeared before the route"
    );
    assert_eq!(ingress_addresses(&api, "b"), vec!["192.0.2.10"]);

    api.delete::<Ingress>("apps", "a");
    poll("a withdrawn", || async {
        portico.who("a.example").await == "404"
    })
    .await;
    assert_eq!(portico.who("b.example").await, "b");

    // An object that does not deserialise is skipped; the rest keep working.
    api.apply_raw(
        "networking.k8s.io/v1",
        "ingresses",
        "apps",
        "broken",
        json!({"metadata": {"name": "broken"}, "spec": {"rules": "not a list"}}),
    );
    app(&api, "c", "c.example").await;
    poll("c after broken", || async {
        portico.who("c.example").await == "c"
    })
    .await;
    assert_eq!(portico.who("b.example").await, "b");

    assert_calls_are_in_rbac(&api);
    portico.stop().await;
}

/// The same measurement with 1,000 other Ingresses (and their Services and slices) present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ingress_among_a_thousand_becomes_routable_and_gets_status() {
    let api = FakeApi::start().await;
    base(&api);
    let backend = start_echo("bulk").await;
    for i in 0..1000 {
        let name = format!("bulk-{i}");
        api.apply(&service(&name));
        api.apply(&slice(&name, backend));
        api.apply(&ingress(
            &name,
            &format!("{name}.example"),
            &name,
            "portico",
        ));
    }
    let portico = Portico::start(api.addr, &["--publish-status-address", "192.0.2.10"]).await;
    portico.wait_ready().await;
    poll("bulk status", || async {
        api.status_writes().len() == 1000
    })
    .await;
    let (routable, status) = measure(&api, &portico, "new").await;
    println!(
        "MEASURE among 1000 Ingresses: created → routable: {routable:?}; created → status written: {status:?}"
    );
    portico.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_410_resume_without_losing_changes() {
    let api = FakeApi::start().await;
    base(&api);
    let portico = Portico::start(api.addr, &[]).await;
    portico.wait_ready().await;
    app(&api, "a", "a.example").await;
    portico.wait_who("a.example", "a").await;

    let lists = || {
        api.calls()
            .iter()
            .filter(|c| c.resource == "ingresses" && c.verb == "list")
            .count()
    };

    // A dropped connection: changes made before the client reconnects arrive on resume,
    // without a new list.
    let before = lists();
    api.drop_watches();
    app(&api, "b", "b.example").await;
    portico.wait_who("b.example", "b").await;
    assert_eq!(lists(), before, "resumed from its resourceVersion");

    // History compacted and the connection dropped: resuming gets 410, the client relists.
    api.compact();
    api.drop_watches();
    api.delete::<Ingress>("apps", "a");
    app(&api, "c", "c.example").await;
    portico.wait_who("c.example", "c").await;
    portico.wait_who("a.example", "404").await;
    assert_eq!(portico.who("b.example").await, "b");
    assert!(lists() > before, "the 410 made the watcher list again");
    portico.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_written_once_follows_the_balancer_and_leaves_foreign_ingresses_alone() {
    let api = FakeApi::start().await;
    base(&api);
    // The publish Service appears only later: nothing is written until it has an address.
    let portico = Portico::start(api.addr, &["--publish-service", "portico/portico"]).await;
    portico.wait_ready().await;
    app(&api, "mine", "mine.example").await;
    let mut theirs = ingress("theirs", "theirs.example", "mine", "other");
    theirs.status = Some(from_json(
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}),
    ));
    api.apply(&theirs);
    portico.wait_who("mine.example", "mine").await;
    assert!(api.status_writes().is_empty(), "no publish Service yet");

    let mut balancer: Service = from_json(json!({
        "metadata": {"name": "portico", "namespace": "portico"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    }));
    api.apply(&balancer);
    poll("status from the balancer", || async {
        ingress_addresses(&api, "mine") == ["192.0.2.1"]
    })
    .await;

    // Rebuilds that do not change the address write nothing.
    app(&api, "more", "more.example").await;
    portico.wait_who("more.example", "more").await;
    poll("more status", || async {
        !ingress_addresses(&api, "more").is_empty()
    })
    .await;
    assert_eq!(
        api.status_writes_for("apps", "mine").len(),
        1,
        "written once"
    );

    // The balancer's address changes: every owned Ingress follows.
    balancer.status = Some(from_json(
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}, {"hostname": "lb.example"}]}}),
    ));
    api.apply(&balancer);
    for name in ["mine", "more"] {
        poll("new address", || async {
            ingress_addresses(&api, name) == ["lb.example", "192.0.2.2"]
        })
        .await;
    }
    assert_eq!(api.status_writes_for("apps", "mine").len(), 2);

    // Class changed to someone else's: routes withdrawn, our addresses removed.
    let mut moved = api.get::<Ingress>("apps", "mine").expect("mine exists");
    moved.spec.as_mut().expect("spec").ingress_class_name = Some("other".into());
    api.apply(&moved);
    portico.wait_who("mine.example", "404").await;
    poll("status removed", || async {
        ingress_addresses(&api, "mine").is_empty()
    })
    .await;

    // Events: Normal once when programmed, Warning for a missing Service, not repeated.
    api.apply(&ingress("lonely", "lonely.example", "nowhere", "portico"));
    poll("warning event", || async {
        api.list_raw("events.k8s.io/v1", "events")
            .iter()
            .any(|e| e["reason"] == "ServiceNotFound" && e["regarding"]["name"] == "lonely")
    })
    .await;
    app(&api, "later", "later.example").await;
    portico.wait_who("later.example", "later").await;
    let events = api.list_raw("events.k8s.io/v1", "events");
    let count = |reason: &str, name: &str| {
        events
            .iter()
            .filter(|e| e["reason"] == reason && e["regarding"]["name"] == name)
            .count()
    };
    assert_eq!(
        count("ServiceNotFound", "lonely"),
        1,
        "not re-emitted on rebuild"
    );
    assert_eq!(count("Programmed", "more"), 1);
    assert!(events.iter().all(|e| e["regarding"]["name"] != "theirs"));

    assert!(
        api.status_writes().iter().all(|w| w.name != "theirs"),
        "a foreign Ingress was written"
    );
    assert_eq!(ingress_addresses(&api, "theirs"), vec!["203.0.113.5"]);
    assert_calls_are_in_rbac(&api);
    portico.stop().await;
}

fn lease_holder(api: &FakeApi) -> Option<String> {
    api.get::<Lease>("portico", "portico-leader")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_writer_and_the_other_takes_over() {
    let api = FakeApi::start().await;
    base(&api);
    let (second, second_addr) = api.listen().await;
    let args = ["--publish-status-address", "192.0.2.10"];
    let first = Portico::start(api.addr, &args).await;
    first.wait_ready().await;
    poll("first leads", || async { lease_holder(&api).is_some() }).await;
    let leader = lease_holder(&api);
    let other = Portico::start(second_addr, &args).await;
    other.wait_ready().await;

    for name in ["a", "b", "c"] {
        app(&api, name, &format!("{name}.example")).await;
    }
    for name in ["a", "b", "c"] {
        other.wait_who(&format!("{name}.example"), name).await;
        first.wait_who(&format!("{name}.example"), name).await;
        poll("status", || async {
            !ingress_addresses(&api, name).is_empty()
        })
        .await;
    }
    let writes = api.status_writes();
    assert!(
        writes.iter().all(|w| w.listener == 0),
        "only the leader writes: {writes:?}"
    );
    assert_eq!(writes.len(), 3, "one write per Ingress: {writes:?}");
    assert_eq!(lease_holder(&api), leader);

    // The leader stops: the other replica takes the Lease and writes from then on.
    let stopped = Instant::now();
    first.stop().await;
    let takeover = poll("takeover", || async {
        lease_holder(&api).is_some_and(|h| Some(&h) != leader.as_ref())
    })
    .await;
    println!(
        "MEASURE leader stopped → new leader: {:?}",
        stopped.elapsed().max(takeover)
    );
    app(&api, "d", "d.example").await;
    other.wait_who("d.example", "d").await;
    poll("status by the new leader", || async {
        !ingress_addresses(&api, "d").is_empty()
    })
    .await;
    let by_second: Vec<_> = api
        .status_writes()
        .into_iter()
        .filter(|w| w.listener == second)
        .collect();
    assert_eq!(by_second.len(), 1, "{by_second:?}");
    assert_eq!(by_second[0].name, "d");
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_the_api_hands_over_within_the_lease() {
    let api = FakeApi::start().await;
    base(&api);
    let (second, second_addr) = api.listen().await;
    let args = ["--publish-status-address", "192.0.2.10"];
    let first = Portico::start(api.addr, &args).await;
    first.wait_ready().await;
    poll("first leads", || async { lease_holder(&api).is_some() }).await;
    let leader = lease_holder(&api);
    let other = Portico::start(second_addr, &args).await;
    other.wait_ready().await;

    // The leader keeps serving but can no longer reach the API (its Lease stops renewing).
    let cut = Instant::now();
    api.set_listener_down(0, true);
    poll("takeover", || async {
        lease_holder(&api).is_some_and(|h| Some(&h) != leader.as_ref())
    })
    .await;
    println!(
        "MEASURE leader lost the API → new leader: {:?} (lease 2s)",
        cut.elapsed()
    );
    app(&api, "a", "a.example").await;
    other.wait_who("a.example", "a").await;
    poll("status by the new leader", || async {
        !ingress_addresses(&api, "a").is_empty()
    })
    .await;
    assert!(api.status_writes().iter().all(|w| w.listener == second));
    // The old leader still serves its last table.
    assert_eq!(first.who("a.example").await, "404");
    api.set_listener_down(0, false);
    first.wait_who("a.example", "a").await;
    first.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_down_at_start_means_not_ready_then_recovery_and_outages_keep_serving() {
    let api = FakeApi::start().await;
    base(&api);
    app(&api, "a", "a.example").await;
    api.set_down(true);
    let portico = Portico::start(api.addr, &[]).await;
    // Bounded look: several polls while the API answers 503, all unready, process alive.
    poll("admin up", || async {
        Portico::status_code(portico.admin, "admin", "/healthz")
            .await
            .is_some()
    })
    .await;
    for _ in 0..25 {
        assert!(!portico.ready().await, "ready without an initial list");
        tokio::time::sleep(POLL).await;
    }
    assert!(!portico.task.is_finished(), "portico gave up");

    api.set_down(false);
    portico.wait_ready().await;
    portico.wait_who("a.example", "a").await;

    // The API goes away mid-run: the last table keeps serving.
    api.set_down(true);
    for _ in 0..25 {
        assert_eq!(portico.who("a.example").await, "a");
        tokio::time::sleep(POLL).await;
    }
    assert!(portico.ready().await);
    api.set_down(false);
    app(&api, "b", "b.example").await;
    portico.wait_who("b.example", "b").await;
    portico.stop().await;
}

/// The fake API server itself: the status subresource takes merge and JSON patches, touches
/// only `status`, and a stale resourceVersion on update is a conflict.
#[tokio::test]
async fn fake_api_server_status_subresource_and_conflicts() {
    let api = FakeApi::start().await;
    api.apply(&ingress("x", "x.example", "s", "portico"));
    let send = |method: &'static str,
                path: &'static str,
                content_type: &'static str,
                body: Value| {
        let addr = api.addr;
        async move {
            let mut conn = Conn::connect(addr).await;
            let body = body.to_string();
            conn.send(
                format!(
                    "{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
            let response = conn.response().await;
            (response.status, response.json())
        }
    };
    let path = "/apis/networking.k8s.io/v1/namespaces/apps/ingresses/x/status";
    let merge = json!({"spec": {"ingressClassName": "hijack"},
                       "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let (code, body) = send("PATCH", path, "application/merge-patch+json", merge).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["spec"]["ingressClassName"], "portico",
        "status patch left spec alone"
    );
    let ops = json!([{"op": "add", "path": "/status/loadBalancer/ingress/-", "value": {"hostname": "lb"}}]);
    let (code, body) = send("PATCH", path, "application/json-patch+json", ops).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(addresses(&body["status"]), vec!["192.0.2.1", "lb"]);
    assert_eq!(api.status_writes_for("apps", "x").len(), 2);

    let mut stale = body.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, _) = send(
        "PUT",
        "/apis/networking.k8s.io/v1/namespaces/apps/ingresses/x",
        "application/json",
        stale,
    )
    .await;
    assert_eq!(code, 409);
}

/// The value of the sample whose name and labels are exactly `series` in OpenMetrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The Kubernetes source feeds the source metrics: the sync age with `source="kube"`, and
/// watch errors by kind while the API server fails (the age then keeps growing). The API
/// answers 500: kube's client retries 503 itself for minutes before a watcher sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_source_reports_sync_age_and_watch_errors_by_kind() {
    let api = FakeApi::start().await;
    base(&api);
    let portico = Portico::start(api.addr, &[]).await;
    portico.wait_ready().await;
    let admin = portico.admin;
    let scrape = move || async move {
        Portico::status_code(admin, "admin", "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let age = "portico_source_last_sync_age_seconds{source=\"kube\"}";
    let ingress_errors = "portico_source_watch_errors_total{source=\"kube\",kind=\"Ingress\"}";
    poll("the kube sync age", || async {
        sample(&scrape().await, age).is_some()
    })
    .await;
    let text = scrape().await;
    assert!(sample(&text, age).expect("age") < 10.0, "{text}");
    let before = sample(&text, ingress_errors).unwrap_or(0.0);

    api.set_failing(true);
    poll("an Ingress watch error counted", || async {
        sample(&scrape().await, ingress_errors).unwrap_or(0.0) > before
    })
    .await;
    let text = scrape().await;
    for kind in ["Service", "EndpointSlice", "Secret", "IngressClass"] {
        let series =
            format!("portico_source_watch_errors_total{{source=\"kube\",kind=\"{kind}\"}}");
        poll(&format!("a {kind} watch error counted"), || async {
            sample(&scrape().await, &series).unwrap_or(0.0) >= 1.0
        })
        .await;
    }
    // Not in sync while watches fail: the age is not refreshed.
    let first = sample(&text, age).expect("age");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = sample(&scrape().await, age).expect("age");
    assert!(later >= first + 1.0, "{first} then {later}");
    api.set_failing(false);
    portico.stop().await;
}

/// Quiet at rest (issue 11 item 6): the Kubernetes source wakes nobody while idle, nor for
/// watch events translate cannot see (a status write like Portico's own coming back, an
/// unchanged re-apply, a managedFields-only update, a relist after a compacted watch), yet
/// status/ still gets the new status quietly, and the next real change is the next snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_only_and_unchanged_watch_events_send_no_snapshot() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use portico::source::Snapshot;
    use std::sync::Arc;
    /// Long enough for a loopback watch event to arrive many times over; only bounds the test.
    const WINDOW: Duration = Duration::from_millis(1500);
    const FIRST: Duration = Duration::from_secs(20);

    let api = FakeApi::start().await;
    base(&api);
    let backend: SocketAddr = "127.0.0.1:9".parse().expect("address");
    api.apply(&service("a"));
    api.apply(&slice("a", backend));
    api.apply(&ingress("a", "a.test", "a", "portico"));
    let kubeconfig = temp_file("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let client = portico::source::kube::client(Some(&kubeconfig))
        .await
        .expect("client");
    let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = Arc::new(portico::metrics::Metrics::new());
    let source = tokio::spawn(portico::source::kube::run(
        client,
        None,
        None,
        tx,
        metrics,
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::timeout(FIRST, rx.changed())
        .await
        .expect("a first snapshot")
        .expect("source running");
    assert_eq!(rx.borrow_and_update().ingresses.len(), 1);

    let woken = |rx: &mut tokio::sync::watch::Receiver<Arc<Snapshot>>| {
        let mut rx = rx.clone();
        async move { tokio::time::timeout(WINDOW, rx.changed()).await.is_ok() }
    };
    assert!(!woken(&mut rx).await, "a snapshot while idle");

    let mut with_status = ingress("a", "a.test", "a", "portico");
    with_status.status = Some(from_json(
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
    ));
    api.apply(&with_status);
    assert!(!woken(&mut rx).await, "a snapshot for a status-only update");

    api.apply(&service("a"));
    api.apply(&slice("a", backend));
    api.apply(&class("portico", "portico.dev/ingress-controller"));
    let mut managed = with_status.clone();
    managed.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("kubectl".into()),
        ..Default::default()
    }]);
    api.apply(&managed);
    assert!(!woken(&mut rx).await, "a snapshot for unchanged objects");

    let lists = |api: &FakeApi| {
        api.calls()
            .iter()
            .filter(|c| c.resource == "ingresses" && c.verb == "list")
            .count()
    };
    let before = lists(&api);
    api.compact();
    api.drop_watches();
    poll("the Ingress watcher relisted", || async {
        lists(&api) > before
    })
    .await;
    assert!(
        !woken(&mut rx).await,
        "a snapshot for a relist that found nothing new"
    );

    // Status/ still sees the status, in the snapshot replaced without waking anyone.
    let status = rx.borrow().ingresses[0].status.clone();
    assert_eq!(status, with_status.status);

    api.apply(&ingress("b", "b.test", "a", "portico"));
    tokio::time::timeout(FIRST, rx.changed())
        .await
        .expect("a snapshot for a new Ingress")
        .expect("source running");
    assert_eq!(rx.borrow_and_update().ingresses.len(), 2);
    let _ = stop.send(());
    source.await.expect("source stops");
}

/// The Events recorded so far with `reason` about an object named `name`.
fn events_for(api: &FakeApi, reason: &str, name: &str) -> Vec<Value> {
    api.list_raw("events.k8s.io/v1", "events")
        .into_iter()
        .filter(|e| e["reason"] == reason && e["regarding"]["name"] == name)
        .collect()
}

/// Issue 11 item 6: a start (or restart) writes no status that is already right and records no
/// `Programmed` Event for an Ingress a previous replica programmed; Events about the
/// `--default-ssl-certificate` Secret name the Secret (apiVersion v1, its uid), not an Ingress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_writes_no_status_and_records_no_event_for_what_is_already_programmed() {
    let api = FakeApi::start().await;
    base(&api);
    let address = "192.0.2.10";
    // "done" was programmed by an earlier replica: its status already shows our address.
    let backend = start_echo("done").await;
    api.apply(&service("done"));
    api.apply(&slice("done", backend));
    let mut done = ingress("done", "done.example", "done", "portico");
    done.status = Some(from_json(
        json!({"loadBalancer": {"ingress": [{"ip": address}]}}),
    ));
    api.apply(&done);
    app(&api, "new", "new.example").await;
    // A TLS Secret that is no certificate, named as the default one.
    api.apply_raw(
        "v1",
        "secrets",
        "portico",
        "broken",
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "broken", "namespace": "portico"},
               "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "bm90IGEga2V5"}}),
    );
    let args = [
        "--publish-status-address",
        address,
        "--default-ssl-certificate",
        "portico/broken",
    ];

    let first = Portico::start(api.addr, &args).await;
    first.wait_ready().await;
    first.wait_who("new.example", "new").await;
    poll("status of new", || async {
        ingress_addresses(&api, "new") == [address]
    })
    .await;
    poll("Programmed for new", || async {
        !events_for(&api, "Programmed", "new").is_empty()
    })
    .await;
    poll("Secret event", || async {
        !events_for(&api, "TlsSecretInvalid", "broken").is_empty()
    })
    .await;
    let secret_event = &events_for(&api, "TlsSecretInvalid", "broken")[0];
    assert_eq!(
        secret_event["regarding"]["kind"], "Secret",
        "{secret_event}"
    );
    assert_eq!(
        secret_event["regarding"]["apiVersion"], "v1",
        "{secret_event}"
    );
    let uid = api.list_raw("v1", "secrets")[0]["metadata"]["uid"].clone();
    assert_eq!(secret_event["regarding"]["uid"], uid, "{secret_event}");
    // Everything the first start had to do is done; "new" was written once, "done" never.
    let writes = |name: &str| api.status_writes_for("apps", name).len();
    assert_eq!(writes("new"), 1);
    assert_eq!(writes("done"), 0, "status already right: no patch");
    assert!(events_for(&api, "Programmed", "done").is_empty());
    first.stop().await;

    // A restart: same cluster, new process.
    let second = Portico::start(api.addr, &args).await;
    second.wait_ready().await;
    // An Ingress created now is announced and written: once it is, the new process leads and
    // has handled every version before it (status and Events go version by version).
    app(&api, "later", "later.example").await;
    second.wait_who("later.example", "later").await;
    poll("status of later", || async {
        ingress_addresses(&api, "later") == [address]
    })
    .await;
    poll("Programmed for later", || async {
        !events_for(&api, "Programmed", "later").is_empty()
    })
    .await;
    assert_eq!(writes("new"), 1, "not rewritten on restart");
    assert_eq!(writes("done"), 0, "not written on restart");
    assert_eq!(
        events_for(&api, "Programmed", "new").len(),
        1,
        "not re-recorded"
    );
    assert!(events_for(&api, "Programmed", "done").is_empty());
    assert_calls_are_in_rbac(&api);
    second.stop().await;
}

fn config_map(namespace: &str, name: &str, data: Value) -> k8s_openapi::api::core::v1::ConfigMap {
    from_json(json!({"metadata": {"name": name, "namespace": namespace}, "data": data}))
}

/// `ingress-nginx.md` §4 and §6: with `--watch-namespace`, the source delivers the ConfigMaps
/// of the watched namespace and of the controller ConfigMap's namespace (where the ConfigMaps
/// its `add-headers` / `proxy-set-headers` name usually are), none of any other namespace, and
/// follows changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_source_delivers_the_configmaps_of_the_watched_and_the_controllers_namespace() {
    use portico::source::Snapshot;
    use std::sync::Arc;
    const FIRST: Duration = Duration::from_secs(20);

    let api = FakeApi::start().await;
    base(&api);
    api.apply(&config_map("portico", "portico", json!({"hsts": "false"})));
    api.apply(&config_map("portico", "unrelated", json!({"a": "b"})));
    api.apply(&config_map("apps", "headers", json!({"X-A": "b"})));
    api.apply(&config_map("elsewhere", "headers", json!({"X-A": "b"})));
    let kubeconfig = temp_file("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let client = portico::source::kube::client(Some(&kubeconfig))
        .await
        .expect("client");
    let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let (stop, stopped) = oneshot::channel::<()>();
    let source = tokio::spawn(portico::source::kube::run(
        client,
        Some("apps".into()),
        Some(("portico".into(), "portico".into())),
        tx,
        Arc::new(portico::metrics::Metrics::new()),
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::timeout(FIRST, rx.changed())
        .await
        .expect("a first snapshot")
        .expect("source running");
    let names = |snapshot: &Snapshot| {
        let mut names: Vec<String> = snapshot
            .config_maps
            .iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.metadata.namespace.as_deref().unwrap_or_default(),
                    c.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&rx.borrow_and_update()),
        ["apps/headers", "portico/portico", "portico/unrelated"]
    );
    let hsts = |snapshot: &Snapshot| {
        snapshot
            .config_map("portico", "portico")
            .and_then(|c| c.data.as_ref()?.get("hsts").cloned())
    };
    assert_eq!(hsts(&rx.borrow()).as_deref(), Some("false"));

    // Another controller's ConfigMap-based leader election renews an annotation every few
    // seconds: no change translate can see, so no snapshot wakes anyone.
    let mut renewed = config_map("apps", "headers", json!({"X-A": "b"}));
    renewed.metadata.annotations = Some(
        [(
            "control-plane.alpha.kubernetes.io/leader".to_string(),
            "{\"renewTime\":\"now\"}".to_string(),
        )]
        .into(),
    );
    api.apply(&renewed);
    let quiet = tokio::time::timeout(Duration::from_millis(1500), rx.changed()).await;
    assert!(
        quiet.is_err(),
        "a snapshot for an annotation-only ConfigMap update"
    );

    api.apply(&config_map("portico", "portico", json!({"hsts": "true"})));
    tokio::time::timeout(FIRST, rx.changed())
        .await
        .expect("a snapshot for the change")
        .expect("source running");
    assert_eq!(hsts(&rx.borrow_and_update()).as_deref(), Some("true"));
    assert_calls_are_in_rbac(&api);
    let _ = stop.send(());
    let _ = tokio::time::timeout(FIRST, source).await;
}

/// `ingress-nginx.md` §4: an invalid value and the keys Portico does not implement are Events
/// on the controller ConfigMap (apiVersion v1), and the Ingresses keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_configmap_problems_are_events_on_the_configmap() {
    let api = FakeApi::start().await;
    base(&api);
    app(&api, "a", "a.example").await;
    api.apply(&config_map(
        "portico",
        "portico",
        json!({"ssl-redirect": "maybe", "no-such-key": "1"}),
    ));
    let portico = Portico::start(api.addr, &["--configmap", "portico/portico"]).await;
    portico.wait_ready().await;
    portico.wait_who("a.example", "a").await;
    poll("InvalidConfigMapKey event", || async {
        !events_for(&api, "InvalidConfigMapKey", "portico").is_empty()
    })
    .await;
    let event = &events_for(&api, "InvalidConfigMapKey", "portico")[0];
    assert_eq!(event["regarding"]["kind"], "ConfigMap", "{event}");
    assert_eq!(event["regarding"]["apiVersion"], "v1", "{event}");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("ssl-redirect"),
        "{event}"
    );
    poll("UnsupportedConfigMapKey event", || async {
        events_for(&api, "UnsupportedConfigMapKey", "portico")
            .iter()
            .any(|e| {
                e["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("no-such-key")
            })
    })
    .await;
    assert_calls_are_in_rbac(&api);
    portico.stop().await;
}

/// Issue 15 (basic authentication): the kube source delivers `Opaque` Secrets (an
/// `auth-secret`) with every key (an `auth-map`'s keys are its users) next to the TLS ones,
/// and never the Secrets of other types (Helm releases, service-account tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_source_delivers_opaque_secrets_for_basic_auth() {
    use k8s_openapi::api::core::v1::Secret;
    use portico::source::Snapshot;
    use std::sync::Arc;
    const FIRST: Duration = Duration::from_secs(20);

    let secret = |name: &str, type_: &str| -> Secret {
        from_json(json!({
            "metadata": {"name": name, "namespace": "apps"},
            "type": type_,
            "data": {"auth": "YQ==", "alice": "Yg=="}
        }))
    };
    let api = FakeApi::start().await;
    base(&api);
    api.apply(&secret("users", "Opaque"));
    api.apply(&secret("release", "helm.sh/release.v1"));
    api.apply(&secret("token", "kubernetes.io/service-account-token"));
    let kubeconfig = temp_file("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let client = portico::source::kube::client(Some(&kubeconfig))
        .await
        .expect("client");
    let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let (stop, stopped) = oneshot::channel::<()>();
    let source = tokio::spawn(portico::source::kube::run(
        client,
        None,
        None,
        tx,
        Arc::new(portico::metrics::Metrics::new()),
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::timeout(FIRST, rx.changed())
        .await
        .expect("a first snapshot")
        .expect("source running");
    let secrets = |snapshot: &Snapshot| -> Vec<(String, usize)> {
        let mut found: Vec<(String, usize)> = snapshot
            .secrets
            .iter()
            .map(|s| {
                (
                    s.metadata.name.clone().unwrap_or_default(),
                    s.data.as_ref().map_or(0, |d| d.len()),
                )
            })
            .collect();
        found.sort();
        found
    };
    assert_eq!(secrets(&rx.borrow_and_update()), [("users".to_string(), 2)]);
    // A change to the Opaque Secret arrives like any other.
    let mut changed = secret("users", "Opaque");
    changed
        .data
        .as_mut()
        .expect("data")
        .insert("bob".into(), k8s_openapi::ByteString(b"c".to_vec()));
    api.apply(&changed);
    tokio::time::timeout(FIRST, rx.changed())
        .await
        .expect("a snapshot for the change")
        .expect("source running");
    assert_eq!(secrets(&rx.borrow_and_update()), [("users".to_string(), 3)]);
    assert_calls_are_in_rbac(&api);
    let _ = stop.send(());
    let _ = tokio::time::timeout(FIRST, source).await;
}
