//! One change at a time through the manifests source's reload and the Publisher, in process:
//! the control-plane part of `scale`'s propagation, without the binary, inotify or requests,
//! so its cost can be timed and counted (callgrind) per kind of change (issue 11).
//!
//! ```text
//! propagate N KIND ROUNDS     KIND: path | endpoints | new | rescan
//! valgrind --tool=callgrind --toggle-collect='propagate::change*' propagate 20000 path 2
//! ```
//!
//! Generates N Ingresses in N files (as `scale` does: 1 host, 3 paths, a Service and a
//! 4-endpoint EndpointSlice each, plus the probe files), loads and publishes them, then applies
//! ROUNDS changes of KIND: each rewrites one file (or, for `rescan`, none) and runs what the
//! watch loop runs for it. Prints the mean time per change of the reload and of the publish.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico::publish::Publisher;
use portico::source::files::{self, Cache, Changed, Limits};
use portico::source::Snapshot;
use portico::translate::Options;

fn ingress(name: &str, host: &str, paths: &[(&str, &str)], service: &str) -> String {
    let mut s = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  ingressClassName: portico\n  rules:\n  - host: {host}\n    http:\n      paths:\n"
    );
    for (path, kind) in paths {
        s += &format!("      - path: {path}\n        pathType: {kind}\n        backend:\n          service:\n            name: {service}\n            port:\n              number: 80\n");
    }
    s
}

fn service(name: &str, ips: &[&str]) -> String {
    let mut s = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-abcde\n  namespace: bench\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- name: http\n  port: 8080\nendpoints:\n"
    );
    if ips.is_empty() {
        s.truncate(s.len() - "endpoints:\n".len());
        s += "endpoints: []\n";
    }
    for ip in ips {
        s += &format!("- addresses: [\"{ip}\"]\n");
    }
    s
}

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: portico\nspec:\n  controller: portico.dev/ingress-controller\n";
const IPS: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

fn probe(k: usize) -> String {
    ingress(
        "probe",
        "probe.example",
        &[(&format!("/v{k}"), "Prefix")],
        "probe",
    ) + &service("probe", &["127.0.0.1"])
}

fn endpoint_probe(present: bool) -> String {
    let ips: &[&str] = if present { &["127.0.0.1"] } else { &[] };
    ingress("ep", "ep.example", &[("/", "Prefix")], "ep") + &service("ep", ips)
}

fn write_atomic(dir: &Path, name: &str, text: &str) -> PathBuf {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
    dir.join(name)
}

struct Run {
    dir: PathBuf,
    limits: Limits,
    cache: Cache,
    current: Arc<Snapshot>,
    publisher: Publisher,
    options: Options,
    reload: Duration,
    publish: Duration,
}

/// What the watch loop does for one batch: reload what changed, publish if anything did.
#[inline(never)]
fn change(run: &mut Run, changed: Changed) {
    let t = Instant::now();
    let loaded = files::load_changed(
        &run.dir,
        &run.limits,
        &mut run.cache,
        &run.current,
        &changed,
    );
    let differs = loaded.snapshot != *run.current;
    run.reload += t.elapsed();
    if differs {
        let t = Instant::now();
        run.current = Arc::new(loaded.snapshot);
        run.publisher.publish(run.current.clone(), &run.options);
        run.publish += t.elapsed();
    }
}

/// A rescan's walk: stat every file, then reload only what the stamps say changed.
#[inline(never)]
fn change_rescan(run: &mut Run) {
    let t = Instant::now();
    let walked = files::stamped_files(&run.dir).expect("walk");
    if let Some(stale) = run.cache.stale(&walked) {
        if !stale.is_empty() {
            change(run, Changed::Paths(stale));
        }
    }
    run.reload += t.elapsed();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let kind = args.get(1).cloned().unwrap_or_else(|| "path".into());
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("portico-propagate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("class.yaml"), CLASS).expect("write");
    for i in 0..n {
        let name = format!("app{i}");
        let text = ingress(
            &name,
            &format!("app{i}.example"),
            &[("/", "Prefix"), ("/api", "Prefix"), ("/healthz", "Exact")],
            &name,
        ) + &service(&name, &IPS);
        std::fs::write(dir.join(format!("{name}.yaml")), text).expect("write");
    }
    write_atomic(&dir, "probe.yaml", &probe(0));
    write_atomic(&dir, "ep.yaml", &endpoint_probe(true));
    let limits = Limits::default();
    let mut cache = Cache::default();
    let t = Instant::now();
    let loaded = files::load_cached(&dir, &limits, &mut cache, &Snapshot::default());
    let load = t.elapsed();
    let options = Options::default();
    let mut publisher = Publisher::new(Default::default());
    let current = Arc::new(loaded.snapshot);
    let t = Instant::now();
    publisher.publish(current.clone(), &options);
    let first = t.elapsed();
    let mut run = Run {
        dir: dir.clone(),
        limits,
        cache,
        current,
        publisher,
        options,
        reload: Duration::ZERO,
        publish: Duration::ZERO,
    };
    // Warm: one change of each kind first, as a running controller has had.
    change(
        &mut run,
        Changed::Paths([write_atomic(&dir, "probe.yaml", &probe(1))].into()),
    );
    change(
        &mut run,
        Changed::Paths([write_atomic(&dir, "ep.yaml", &endpoint_probe(false))].into()),
    );
    if kind == "rescan" {
        // Stamps of files written within the racy window are not trusted yet.
        std::thread::sleep(Duration::from_millis(2100));
        change_rescan(&mut run);
    }
    run.reload = Duration::ZERO;
    run.publish = Duration::ZERO;
    for k in 0..rounds {
        match kind.as_str() {
            "path" => {
                let path = write_atomic(&dir, "probe.yaml", &probe(k + 2));
                change(&mut run, Changed::Paths([path].into()));
            }
            "endpoints" => {
                let path = write_atomic(&dir, "ep.yaml", &endpoint_probe(k % 2 == 0));
                change(&mut run, Changed::Paths([path].into()));
            }
            "new" => {
                let name = format!("new{k}");
                let text = ingress(
                    &name,
                    &format!("{name}.example"),
                    &[("/", "Prefix")],
                    "app0",
                );
                let path = write_atomic(&dir, &format!("{name}.yaml"), &text);
                change(&mut run, Changed::Paths([path].into()));
            }
            "rescan" => change_rescan(&mut run),
            other => panic!("unknown kind {other}"),
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / rounds.max(1) as f64;
    println!(
        "n={n} kind={kind} rounds={rounds}: load {:.1} ms, first publish {:.1} ms; per change: reload {:.3} ms, publish {:.3} ms, version {}",
        load.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        per(run.reload),
        per(run.publish),
        run.publisher.shared().load().version
    );
    let _ = std::fs::remove_dir_all(&dir);
}
