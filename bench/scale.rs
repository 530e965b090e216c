//! Benchmark harness (`bench/run` drives it): a fixed-response upstream, a small HTTP/1.1 load
//! generator (so the smoke run needs no wrk), and the control plane at scale — translate,
//! publish, match and RSS at N Ingresses, propagation latency through the manifests source of
//! the real binary and the fake API server (new Ingress, changed path, endpoint removed/added,
//! Secret rotated), and churn under load. Loopback only; every load stops by itself.
//!
//! ```text
//! scale upstream ADDR... [--h2c ADDR]       serve "ok" (and 64 KiB on /64k) until killed; on the
//!                                           --h2c address cleartext HTTP/2 (prior knowledge)
//! scale load --addr A --host H [--path P] [--conns C] [--secs S] [--close]
//! scale scale --portico BIN [--sizes 1000,5000,20000] [--changes 500] [--churn-secs 60]
//!             [--churn-rate 100] [--churn-load builtin|wrk] [--no-kube] [--out FILE]
//! scale report --raw RAW.jsonl --scale SCALE.json --out DIR --date D --machine M --mode M
//!                                           medians, ratios: DIR/D.json, D.md, D.gnuplot
//! scale heap [--sizes 5000]                 live heap bytes per Ingress, by what holds them
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The system allocator, counting live bytes for `scale heap` (a relaxed add per call: nothing
/// the harness measures in the Portico process it starts).
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only a counter is added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The in-process API server of the Kubernetes tests, reused for propagation through the kube
/// source (it allows its own dead code: the harness uses a part of it).
#[path = "../tests/support/fake_apiserver.rs"]
mod fake_apiserver;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("usage: scale upstream|load|scale ...");
        std::process::exit(2);
    };
    match command.as_str() {
        "upstream" => upstream_main(rest),
        "load" => {
            let report = runtime().block_on(load(LoadArgs::parse(rest)?))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        "scale" => scale_main(rest),
        "report" => report_main(rest),
        "heap" => heap_main(rest),
        other => {
            eprintln!("unknown command {other:?}");
            std::process::exit(2);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn flag_or<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    match flag(args, name) {
        Some(v) => v.parse().map_err(|e| format!("{name} {v:?}: {e}").into()),
        None => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream

const SMALL: &[u8] = b"ok\n";

fn upstream_main(args: &[String]) -> Result<(), Error> {
    let mut addrs = Vec::new();
    let mut h2c = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        if a == "--h2c" {
            h2c.push(
                args.next()
                    .ok_or("--h2c needs an address")?
                    .parse::<SocketAddr>()?,
            );
        } else {
            addrs.push(a.parse::<SocketAddr>()?);
        }
    }
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for (addr, http2) in addrs
            .into_iter()
            .map(|a| (a, false))
            .chain(h2c.into_iter().map(|a| (a, true)))
        {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tasks.push(tokio::spawn(serve_upstream(listener, http2)));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}

/// Answers every request with a fixed body: 64 KiB on `/64k`, else `ok\n`. Keep-alive
/// HTTP/1.1, or cleartext HTTP/2 with prior knowledge (`http2`: the h2c/gRPC upstream scenario).
async fn serve_upstream(listener: tokio::net::TcpListener, http2: bool) {
    let big = Bytes::from(vec![b'x'; 64 * 1024]);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let big = big.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = if req.uri().path() == "/64k" {
                    big.clone()
                } else {
                    Bytes::from_static(SMALL)
                };
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            if http2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator

struct LoadArgs {
    addr: SocketAddr,
    host: String,
    path: String,
    conns: usize,
    secs: f64,
    close: bool,
}

impl LoadArgs {
    fn parse(args: &[String]) -> Result<Self, Error> {
        Ok(LoadArgs {
            addr: flag(args, "--addr").ok_or("--addr is required")?.parse()?,
            host: flag_or(args, "--host", "localhost".to_string())?,
            path: flag_or(args, "--path", "/".to_string())?,
            conns: flag_or(args, "--conns", 50)?,
            secs: flag_or(args, "--secs", 5.0)?,
            close: args.iter().any(|a| a == "--close"),
        })
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    non_2xx: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

/// Closed-loop load: `conns` connections, each sending its next request when the previous
/// answer is complete. Reports requests/s, latency percentiles, non-2xx and socket errors.
async fn load(a: LoadArgs) -> Result<Value, Error> {
    let deadline = Instant::now() + Duration::from_secs_f64(a.secs);
    let start = Instant::now();
    let a = Arc::new(a);
    let mut tasks = Vec::new();
    for _ in 0..a.conns {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sender = None;
            while Instant::now() < deadline {
                if sender.is_none() {
                    match connect(a.addr).await {
                        Ok(s) => sender = Some(s),
                        Err(_) => {
                            tally.errors += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            continue;
                        }
                    }
                }
                let s = sender.as_mut().expect("connected just above");
                let mut req = Request::get(&a.path).header("host", &a.host);
                if a.close {
                    req = req.header("connection", "close");
                }
                let req = req.body(Empty::<Bytes>::new()).expect("request builds");
                let t = Instant::now();
                match send(s, req).await {
                    Ok(status) => {
                        tally.latencies_us.push(t.elapsed().as_micros() as u32);
                        if (200..300).contains(&status) {
                            tally.ok += 1;
                        } else {
                            tally.non_2xx += 1;
                        }
                    }
                    Err(_) => {
                        tally.errors += 1;
                        sender = None;
                        continue;
                    }
                }
                if a.close {
                    sender = None;
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.ok += t.ok;
        all.non_2xx += t.non_2xx;
        all.errors += t.errors;
        all.latencies_us.extend(t.latencies_us);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| percentile_us(&all.latencies_us, p) / 1000.0;
    Ok(json!({
        "requests": all.ok + all.non_2xx,
        "rps": (all.ok + all.non_2xx) as f64 / elapsed,
        "p50_ms": pct(50.0), "p99_ms": pct(99.0), "p999_ms": pct(99.9),
        "non_2xx": all.non_2xx, "socket_errors": all.errors,
    }))
}

fn percentile_us(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer; the status code.
async fn send(sender: &mut Sender, req: Request<Empty<Bytes>>) -> Result<u16, Error> {
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

// ---------------------------------------------------------------------------------------------
// Control plane at scale

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: portico\nspec:\n  controller: portico.dev/ingress-controller\n";

/// Endpoint addresses of the generated Services: four loopback addresses, one upstream port.
const ENDPOINT_IPS: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

fn ingress(name: &str, host: &str, paths: &[(&str, &str)], service: &str) -> String {
    let mut s = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  ingressClassName: portico\n  rules:\n  - host: {host}\n    http:\n      paths:\n"
    );
    for (path, kind) in paths {
        s += &format!("      - path: {path}\n        pathType: {kind}\n        backend:\n          service:\n            name: {service}\n            port:\n              number: 80\n");
    }
    s
}

fn service(name: &str, ips: &[&str], port: u16) -> String {
    let mut s = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: {port}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-abcde\n  namespace: bench\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- name: http\n  port: {port}\nendpoints:\n"
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

fn app(i: usize, port: u16) -> String {
    let name = format!("app{i}");
    ingress(
        &name,
        &format!("app{i}.example"),
        &[("/", "Prefix"), ("/api", "Prefix"), ("/healthz", "Exact")],
        &name,
    ) + &service(&name, &ENDPOINT_IPS, port)
}

/// Writes a file the way a careful tool does: a temporary name, then a rename, so the reader
/// never sees half a file.
fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))
}

fn generate(dir: &Path, n: usize, port: u16) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    for i in 0..n {
        std::fs::write(dir.join(format!("app{i}.yaml")), app(i, port))?;
    }
    write_atomic(dir, "probe.yaml", &probe(0, port))?;
    write_atomic(dir, "ep.yaml", &endpoint_probe(true, port))?;
    write_atomic(dir, "tls.yaml", &tls_probe(&TLS_CERTS[0]))?;
    Ok(())
}

/// The two certificates the "Secret rotated" changes alternate between (made once: the change
/// measured is the rotation, not rcgen).
static TLS_CERTS: std::sync::LazyLock<[(String, String); 2]> = std::sync::LazyLock::new(|| {
    let one = || {
        let certified = rcgen::generate_simple_self_signed(vec!["tls.example".to_string()])
            .expect("rcgen makes a certificate");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    };
    [one(), one()]
});

/// An Ingress terminating TLS for `tls.example` with the Secret `tls-probe`, and that Secret.
fn tls_probe((crt, key): &(String, String)) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: tls-probe\n  namespace: bench\nspec:\n  ingressClassName: portico\n  tls:\n  - hosts: [tls.example]\n    secretName: tls-probe\n  rules:\n  - host: tls.example\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: app0\n            port:\n              number: 80\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: tls-probe\n  namespace: bench\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

/// Polls the admin endpoint until the published configuration version passes `before` (a
/// Secret rotation changes no route a request could see); the time since `t0`.
async fn poll_version(
    admin: SocketAddr,
    before: u64,
    t0: Instant,
    limit: Duration,
) -> Result<Duration, Error> {
    while t0.elapsed() < limit {
        if config_version(admin).await > before {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Err("the rotated Secret was never published".into())
}

/// The Ingress whose path the "changed path" changes move: `/v{k}` only.
fn probe(k: usize, port: u16) -> String {
    ingress(
        "probe",
        "probe.example",
        &[(&format!("/v{k}"), "Prefix")],
        "probe",
    ) + &service("probe", &["127.0.0.1"], port)
}

/// The Service whose single endpoint the "endpoint added/removed" changes toggle.
fn endpoint_probe(present: bool, port: u16) -> String {
    let ips: &[&str] = if present { &["127.0.0.1"] } else { &[] };
    ingress("ep", "ep.example", &[("/", "Prefix")], "ep") + &service("ep", ips, port)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn pct_ms(durations: &[Duration], p: f64) -> f64 {
    let mut us: Vec<u32> = durations.iter().map(|d| d.as_micros() as u32).collect();
    us.sort_unstable();
    percentile_us(&us, p) / 1000.0
}

struct Portico {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Portico {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_portico(bin: &Path, dir: &Path) -> Result<Portico, Error> {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let child = Command::new(bin)
        .arg("--manifests")
        .arg(dir)
        .args(["--http-addr", &http.to_string()])
        .args(["--https-addr", &https.to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--access-log", "off", "--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()?;
    Ok(Portico { child, http, admin })
}

async fn get_status(addr: SocketAddr, host: &str, path: &str) -> Result<u16, Error> {
    let mut s = connect(addr).await?;
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())?;
    send(&mut s, req).await
}

async fn wait_ready(p: &Portico, limit: Duration) -> Result<Duration, Error> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(200) = get_status(p.admin, "localhost", "/readyz").await {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err("portico did not become ready".into())
}

/// Polls with requests on one keep-alive connection until `want` answers; the time since `t0`.
async fn poll_until(
    addr: SocketAddr,
    host: &str,
    path: &str,
    want: u16,
    t0: Instant,
    limit: Duration,
) -> Result<Duration, Error> {
    let mut sender: Option<Sender> = None;
    while t0.elapsed() < limit {
        if sender.is_none() {
            sender = connect(addr).await.ok();
        }
        if let Some(s) = sender.as_mut() {
            let req = Request::get(path)
                .header("host", host)
                .body(Empty::<Bytes>::new())?;
            match send(s, req).await {
                Ok(status) if status == want => return Ok(t0.elapsed()),
                Ok(_) => {}
                Err(_) => sender = None,
            }
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Err(format!("{host}{path} never answered {want}").into())
}

/// New Ingress, changed path, endpoint removed, endpoint added, Secret rotated.
const CHANGE_KINDS: usize = 5;

/// One change of the propagation run, applied to the directory: (kind, host, path, status
/// that shows it arrived).
fn change(dir: &Path, k: usize, port: u16) -> std::io::Result<(&'static str, String, String, u16)> {
    Ok(match k % CHANGE_KINDS {
        4.. => {
            write_atomic(
                dir,
                "tls.yaml",
                &tls_probe(&TLS_CERTS[(k / CHANGE_KINDS + 1) % 2]),
            )?;
            // Seen through the config version, not a request: see `poll_version`.
            ("secret_rotated", String::new(), String::new(), 0)
        }
        0 => {
            let name = format!("new{k}");
            let host = format!("{name}.example");
            write_atomic(
                dir,
                &format!("{name}.yaml"),
                &ingress(&name, &host, &[("/", "Prefix")], "app0"),
            )?;
            ("new_ingress", host, "/".into(), 200)
        }
        1 => {
            write_atomic(dir, "probe.yaml", &probe(k, port))?;
            (
                "changed_path",
                "probe.example".into(),
                format!("/v{k}"),
                200,
            )
        }
        2 => {
            write_atomic(dir, "ep.yaml", &endpoint_probe(false, port))?;
            ("endpoint_removed", "ep.example".into(), "/".into(), 503)
        }
        3 => {
            write_atomic(dir, "ep.yaml", &endpoint_probe(true, port))?;
            ("endpoint_added", "ep.example".into(), "/".into(), 200)
        }
    })
}

struct ScaleArgs {
    portico: PathBuf,
    sizes: Vec<usize>,
    changes: usize,
    churn_secs: f64,
    churn_rate: f64,
    churn_size: usize,
    churn_load: String,
    kube: bool,
    out: Option<PathBuf>,
}

fn scale_main(args: &[String]) -> Result<(), Error> {
    let a = ScaleArgs {
        portico: flag(args, "--portico")
            .ok_or("--portico BIN is required")?
            .into(),
        sizes: flag_or(args, "--sizes", "1000,5000,20000".to_string())?
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()?,
        changes: flag_or(args, "--changes", 500)?,
        churn_secs: flag_or(args, "--churn-secs", 60.0)?,
        churn_rate: flag_or(args, "--churn-rate", 100.0)?,
        churn_size: flag_or(args, "--churn-size", 1000)?,
        churn_load: flag_or(args, "--churn-load", "builtin".to_string())?,
        kube: !args.iter().any(|a| a == "--no-kube"),
        out: flag(args, "--out").map(PathBuf::from),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(scale(a))
}

async fn scale(a: ScaleArgs) -> Result<(), Error> {
    let port = free_port();
    for ip in ENDPOINT_IPS {
        let listener = tokio::net::TcpListener::bind((ip, port)).await?;
        tokio::spawn(serve_upstream(listener, false));
    }
    let root = std::env::temp_dir().join(format!("portico-scale-{}", std::process::id()));
    let mut sizes = Vec::new();
    for &n in &a.sizes {
        let dir = root.join(format!("n{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&dir, n, port)?;
        let report = one_size(&a, &dir, n, port).await;
        let _ = std::fs::remove_dir_all(&dir);
        sizes.push(report?);
    }
    let churn = {
        let dir = root.join("churn");
        let _ = std::fs::remove_dir_all(&dir);
        generate(&dir, a.churn_size, port)?;
        let report = churn(&a, &dir, port).await;
        let _ = std::fs::remove_dir_all(&dir);
        report?
    };
    let _ = std::fs::remove_dir_all(&root);
    let report = json!({"sizes": sizes, "churn": churn});
    let text = serde_json::to_string_pretty(&report)?;
    match &a.out {
        Some(path) => std::fs::write(path, text + "\n")?,
        None => println!("{text}"),
    }
    Ok(())
}

/// Live heap bytes of what the manifests-source controller holds at N Ingresses, by holder:
/// the snapshot's objects per kind, the source's parse cache, translate's state and the
/// published table (requested sizes, not the allocator's rounding: a lower bound of RSS).
fn heap_main(args: &[String]) -> Result<(), Error> {
    let sizes: Vec<usize> = flag_or(args, "--sizes", "5000".to_string())?
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    for n in sizes {
        let dir = std::env::temp_dir().join(format!("portico-heap-{}-{n}", std::process::id()));
        generate(&dir, n, 9)?;
        let per = |bytes: isize| bytes as f64 / n as f64;
        let mut rows: Vec<(String, isize)> = Vec::new();
        // The objects, per kind: a second load, dropped kind by kind.
        let mut loaded = portico::source::files::load(&dir, &Default::default());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let s = &mut loaded.snapshot;
        let mut take = |name: &str, f: &mut dyn FnMut()| {
            let before = live();
            f();
            rows.push((format!("snapshot: {name}"), before - live()));
        };
        take("Ingresses", &mut || drop(std::mem::take(&mut s.ingresses)));
        take("Services", &mut || drop(std::mem::take(&mut s.services)));
        take("EndpointSlices", &mut || {
            drop(std::mem::take(&mut s.endpoint_slices))
        });
        take("Secrets, classes, ConfigMaps", &mut || {
            drop(std::mem::take(&mut s.secrets));
            drop(std::mem::take(&mut s.ingress_classes));
            drop(std::mem::take(&mut s.config_maps));
        });
        drop(loaded);
        // What the running source holds besides the snapshot: its parse cache.
        let mut cache = portico::source::files::Cache::default();
        let first = portico::source::files::load_cached(
            &dir,
            &Default::default(),
            &mut cache,
            &Default::default(),
        );
        let snapshot = std::sync::Arc::new(first.snapshot);
        let before = live();
        drop(cache);
        rows.push(("files source: parse cache".into(), before - live()));
        // Translate's state and the published value, through a Publisher as the binary runs it.
        let options = portico::translate::Options::default();
        let before = live();
        let mut publisher = portico::publish::Publisher::new(Default::default());
        publisher.publish(snapshot.clone(), &options);
        let published = live() - before;
        let before = live();
        let mut translate_cache = portico::translate::Cache::default();
        let translation = portico::translate::translate(&snapshot, &options, &mut translate_cache);
        let both = live() - before;
        let before = live();
        drop(translation);
        let table_only = before - live();
        rows.push((
            "translate: table not shared with the state".into(),
            table_only,
        ));
        rows.push(("translate: state (Cache)".into(), both - table_only));
        rows.push(("publisher: state + table + metrics".into(), published));
        println!("{n} Ingresses: live heap bytes per Ingress (what holds them)");
        {
            use k8s_openapi::api::{core::v1, discovery::v1 as d, networking::v1 as net};
            use std::mem::size_of;
            println!(
                "  inline sizes: Ingress {}, ObjectMeta {}, Service {}, EndpointSlice {}, \
                 Endpoint {}, Route {}, VirtualHost {}, Backend {}",
                size_of::<net::Ingress>(),
                size_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(),
                size_of::<v1::Service>(),
                size_of::<d::EndpointSlice>(),
                size_of::<d::Endpoint>(),
                size_of::<portico::routing::Route>(),
                size_of::<portico::routing::VirtualHost>(),
                size_of::<portico::routing::Backend>(),
            );
        }
        for (name, bytes) in &rows {
            println!("  {:>9.0}  {name}", per(*bytes));
        }
        drop((publisher, translate_cache, snapshot));
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

async fn one_size(a: &ScaleArgs, dir: &Path, n: usize, port: u16) -> Result<Value, Error> {
    use portico::routing::normalize;
    // In process: load, translate, publish, match.
    let t = Instant::now();
    let loaded = portico::source::files::load(dir, &Default::default());
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    // A reload with every file's parse cached (what a change of one file costs to read).
    let mut cache = portico::source::files::Cache::default();
    let first = portico::source::files::load_cached(
        dir,
        &Default::default(),
        &mut cache,
        &Default::default(),
    );
    let t = Instant::now();
    let reloaded =
        portico::source::files::load_cached(dir, &Default::default(), &mut cache, &first.snapshot);
    let reload_cached_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let same = reloaded.snapshot == loaded.snapshot;
    let compare_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(same);
    drop((reloaded, cache, first));
    let options = portico::translate::Options::default();
    let mut translate_ms = Vec::new();
    // One cache throughout, as the controller keeps one.
    let mut cache = portico::translate::Cache::default();
    for _ in 0..5 {
        let t = Instant::now();
        let translation = portico::translate::translate(&loaded.snapshot, &options, &mut cache);
        translate_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(translation.table.route_count(), 3 * n + 3);
    }
    // Publish: the first apply, then an apply of a one-Ingress change (translate, compare, swap).
    let mut publisher = portico::publish::Publisher::new(Default::default());
    let shared = publisher.shared().clone();
    let full = std::sync::Arc::new(loaded.snapshot.clone());
    let t = Instant::now();
    publisher.publish(full.clone(), &options);
    let first_publish_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut changed = loaded.snapshot.clone();
    changed.ingresses.pop();
    let changed = std::sync::Arc::new(changed);
    let mut publish_ms = Vec::new();
    for round in 0..5 {
        let snapshot = if round % 2 == 0 {
            changed.clone()
        } else {
            full.clone()
        };
        let t = Instant::now();
        publisher.publish(snapshot, &options);
        publish_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let published = shared.load();
    let table = &published.translation.table;
    let requests: Vec<(String, String)> = (0..1024)
        .map(|i| {
            let app = (i * 7919) % n;
            let path = ["/", "/api/v1/items", "/healthz", "/static/x.css"][i % 4];
            (format!("app{app}.example"), path.to_string())
        })
        .collect();
    let rounds = 200;
    let t = Instant::now();
    let mut found = 0usize;
    for _ in 0..rounds {
        for (host, path) in &requests {
            let host = normalize::host(host);
            let path = normalize::path(path);
            if table.decide(&host, &path).backend().is_some() {
                found += 1;
            }
        }
    }
    let match_ns = t.elapsed().as_nanos() as f64 / (rounds * requests.len()) as f64;
    assert_eq!(found, rounds * requests.len());
    drop(published);
    drop(shared);

    // The real binary.
    let p = start_portico(&a.portico, dir)?;
    let ready = wait_ready(&p, Duration::from_secs(120)).await?;
    let pid = p.child.id();
    let (rss_ready, _) = rss_kib(pid);
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    let mut all = Vec::new();
    for k in 0..a.changes {
        // Settle between changes, so each change is a reload of its own.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let version = config_version(p.admin).await;
        let t0 = Instant::now();
        let (kind, host, path, want) = change(dir, k, port)?;
        let took = if kind == "secret_rotated" {
            poll_version(p.admin, version, t0, Duration::from_secs(30)).await?
        } else {
            poll_until(p.http, &host, &path, want, t0, Duration::from_secs(30)).await?
        };
        by_kind.entry(kind).or_default().push(took);
        all.push(took);
    }
    let (rss, hwm) = rss_kib(pid);
    drop(p);
    let kube = if a.kube {
        Some(kube_propagation(a, n, port).await?)
    } else {
        None
    };
    let kinds: serde_json::Map<String, Value> = by_kind
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!({"p50_ms": pct_ms(v, 50.0), "p99_ms": pct_ms(v, 99.0), "count": v.len()}),
            )
        })
        .collect();
    let report = json!({
        "ingresses": n,
        "routes": 3 * n + 3,
        "load_ms": load_ms,
        "reload_cached_ms": reload_cached_ms,
        "snapshot_compare_ms": compare_ms,
        "translate_ms": median(translate_ms),
        "first_publish_ms": first_publish_ms,
        "publish_ms": median(publish_ms),
        "match_ns_per_request": match_ns,
        "startup_to_ready_ms": ready.as_secs_f64() * 1e3,
        "rss_after_load_mib": rss_ready as f64 / 1024.0,
        "rss_after_changes_mib": rss as f64 / 1024.0,
        "peak_rss_mib": hwm as f64 / 1024.0,
        "propagation": {
            "changes": all.len(),
            "p50_ms": pct_ms(&all, 50.0),
            "p99_ms": pct_ms(&all, 99.0),
            "max_ms": pct_ms(&all, 100.0),
            "by_kind": kinds,
        },
        "kube_propagation": kube,
    });
    eprintln!("{}", serde_json::to_string(&report)?);
    Ok(report)
}

/// Applies every document of `text` (the generator's YAML) to the fake API server.
fn apply_yaml(api: &fake_apiserver::FakeApi, text: &str) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    // Documents end at a line that is exactly `---` (a PEM's `-----END …-----` is not one).
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    for doc in docs.iter().filter(|d| !d.trim().is_empty()) {
        let value: Value = serde_saphyr::from_str(doc)?;
        match value["kind"].as_str().unwrap_or_default() {
            "Ingress" => api.apply(&serde_json::from_value::<Ingress>(value)?),
            "IngressClass" => api.apply(&serde_json::from_value::<IngressClass>(value)?),
            "Service" => api.apply(&serde_json::from_value::<Service>(value)?),
            "EndpointSlice" => api.apply(&serde_json::from_value::<EndpointSlice>(value)?),
            "Secret" => {
                api.apply(&serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(value)?)
            }
            other => return Err(format!("unexpected kind {other}").into()),
        }
    }
    Ok(())
}

/// Propagation through the Kubernetes source: the real binary against the fake API server.
async fn kube_propagation(a: &ScaleArgs, n: usize, port: u16) -> Result<Value, Error> {
    let api = fake_apiserver::FakeApi::start().await;
    apply_yaml(&api, CLASS)?;
    for i in 0..n {
        apply_yaml(&api, &app(i, port))?;
    }
    apply_yaml(&api, &probe(0, port))?;
    apply_yaml(&api, &endpoint_probe(true, port))?;
    apply_yaml(&api, &tls_probe(&TLS_CERTS[0]))?;
    let kubeconfig =
        std::env::temp_dir().join(format!("portico-scale-kubeconfig-{}", std::process::id()));
    api.write_kubeconfig(&kubeconfig);
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let child = Command::new(&a.portico)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--election-namespace", "portico"])
        .args(["--http-addr", &http.to_string()])
        .args(["--https-addr", &https.to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--access-log", "off", "--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()?;
    let p = Portico { child, http, admin };
    let ready = wait_ready(&p, Duration::from_secs(120)).await?;
    let mut all = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    for k in 0..a.changes {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let version = config_version(p.admin).await;
        let t0 = Instant::now();
        if k % CHANGE_KINDS == 4 {
            apply_yaml(&api, &tls_probe(&TLS_CERTS[(k / CHANGE_KINDS + 1) % 2]))?;
            let took = poll_version(p.admin, version, t0, Duration::from_secs(30)).await?;
            by_kind.entry("secret_rotated").or_default().push(took);
            all.push(took);
            continue;
        }
        let kind = [
            "new_ingress",
            "changed_path",
            "endpoint_removed",
            "endpoint_added",
        ][k % CHANGE_KINDS];
        let (host, path, want) = match k % CHANGE_KINDS {
            0 => {
                let name = format!("new{k}");
                let host = format!("{name}.example");
                apply_yaml(&api, &ingress(&name, &host, &[("/", "Prefix")], "app0"))?;
                (host, "/".to_string(), 200)
            }
            1 => {
                apply_yaml(&api, &probe(k, port))?;
                ("probe.example".to_string(), format!("/v{k}"), 200)
            }
            2 => {
                apply_yaml(&api, &endpoint_probe(false, port))?;
                ("ep.example".to_string(), "/".to_string(), 503)
            }
            _ => {
                apply_yaml(&api, &endpoint_probe(true, port))?;
                ("ep.example".to_string(), "/".to_string(), 200)
            }
        };
        let took = poll_until(p.http, &host, &path, want, t0, Duration::from_secs(30)).await?;
        by_kind.entry(kind).or_default().push(took);
        all.push(took);
    }
    let (rss, hwm) = rss_kib(p.child.id());
    let kinds: serde_json::Map<String, Value> = by_kind
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!({"p50_ms": pct_ms(v, 50.0), "p99_ms": pct_ms(v, 99.0), "count": v.len()}),
            )
        })
        .collect();
    drop(p);
    let _ = std::fs::remove_file(&kubeconfig);
    Ok(json!({
        "startup_to_ready_ms": ready.as_secs_f64() * 1e3,
        "changes": all.len(),
        "p50_ms": pct_ms(&all, 50.0),
        "p99_ms": pct_ms(&all, 99.0),
        "max_ms": pct_ms(&all, 100.0),
        "rss_mib": rss as f64 / 1024.0,
        "peak_rss_mib": hwm as f64 / 1024.0,
        "by_kind": kinds,
    }))
}

/// Load on one stable route while the directory changes `churn_rate` times a second.
async fn churn(a: &ScaleArgs, dir: &Path, port: u16) -> Result<Value, Error> {
    let p = start_portico(&a.portico, dir)?;
    wait_ready(&p, Duration::from_secs(120)).await?;
    let version_before = config_version(p.admin).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (dir, stop, writes) = (dir.to_path_buf(), stop.clone(), writes.clone());
        let interval = Duration::from_secs_f64(1.0 / a.churn_rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // Every kind of change, none touching the loaded route (app1.example).
                let _ = change(&dir, k, port);
                if k % 4 == 0 && k >= 8 {
                    let _ = std::fs::remove_file(dir.join(format!("new{}.yaml", k - 8)));
                }
                writes.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        })
    };
    let result = if a.churn_load == "wrk" {
        let out = tokio::process::Command::new("wrk")
            .args(["-t1", "-c50", &format!("-d{}s", a.churn_secs.ceil() as u64)])
            .args(["-H", "Host: app1.example"])
            .arg(format!("http://{}/api", p.http))
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        parse_wrk_errors(&text)
    } else {
        load(LoadArgs {
            addr: p.http,
            host: "app1.example".into(),
            path: "/api".into(),
            conns: 50,
            secs: a.churn_secs,
            close: false,
        })
        .await?
    };
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let version_after = config_version(p.admin).await;
    let report = json!({
        "ingresses": a.churn_size,
        "seconds": a.churn_secs,
        "load": a.churn_load,
        "writes": writes.load(Ordering::Relaxed),
        "published_versions": version_after.saturating_sub(version_before),
        "result": result,
    });
    eprintln!("{}", serde_json::to_string(&report)?);
    Ok(report)
}

/// wrk's summary: requests, non-2xx/3xx and socket errors.
fn parse_wrk_errors(text: &str) -> Value {
    let mut requests = 0u64;
    let mut non_2xx = 0u64;
    let mut socket_errors = 0u64;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if line.contains("requests in") {
            requests = line
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    json!({"requests": requests, "non_2xx": non_2xx, "socket_errors": socket_errors})
}

async fn config_version(admin: SocketAddr) -> u64 {
    async fn fetch(admin: SocketAddr) -> Result<String, Error> {
        let mut s = connect(admin).await?;
        let req = Request::get("/metrics")
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())?;
        s.ready().await?;
        let body = s.send_request(req).await?.into_body().collect().await?;
        Ok(String::from_utf8_lossy(&body.to_bytes()).to_string())
    }
    fetch(admin)
        .await
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("portico_config_version "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Report: medians over rounds, ratios, Markdown and a gnuplot script for the chart

const SCENARIO_NAMES: [(&str, &str); 12] = [
    ("h1_keepalive", "HTTP/1.1 keep-alive, small"),
    (
        "h1_fixed_rate",
        "HTTP/1.1 keep-alive at a fixed rate below saturation (h2load --rps)",
    ),
    (
        "h1_keepalive_2cores",
        "HTTP/1.1 keep-alive, proxy on 2 cores (shared with load and upstream)",
    ),
    (
        "h1_keepalive_1core_shared",
        "HTTP/1.1 keep-alive, proxy on 1 core, everything on the same 2 cores",
    ),
    ("h1_new_conn", "HTTP/1.1, new connection per request"),
    ("h1_64k", "HTTP/1.1 keep-alive, 64 KiB"),
    ("tls_keepalive", "TLS keep-alive, small"),
    (
        "tls_new_conn",
        "TLS, new connection per request (resumption allowed)",
    ),
    ("tls_handshake", "TLS full handshakes (s_time, no request)"),
    ("h2_tls", "HTTP/2 over TLS, 10 × 10 streams"),
    (
        "h2c_upstream",
        "HTTP/1.1 keep-alive in, cleartext HTTP/2 (h2c/gRPC) to the upstream",
    ),
    (
        "mem_10k",
        "10,000 keep-alive connections (RSS per connection: idle, then active)",
    ),
];

fn report_main(args: &[String]) -> Result<(), Error> {
    let raw = std::fs::read_to_string(flag(args, "--raw").ok_or("--raw")?)?;
    let scale: Value = flag(args, "--scale")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let out = PathBuf::from(flag(args, "--out").ok_or("--out")?);
    let date = flag_or(args, "--date", "undated".to_string())?;
    let machine = flag_or(args, "--machine", String::new())?;
    let mode = flag_or(args, "--mode", "full".to_string())?;
    // Why a peer is missing (e.g. Pingora did not build here): printed under the tables.
    let note = flag(args, "--note").unwrap_or("").trim().to_string();
    let runs: Vec<Value> = raw
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let rounds = runs
        .iter()
        .filter_map(|r| r["round"].as_u64())
        .max()
        .unwrap_or(0);
    let proxies = ["direct", "portico", "nginx", "haproxy", "pingora"];
    let mut medians = serde_json::Map::new();
    for (scenario, _) in SCENARIO_NAMES {
        let mut per_proxy = serde_json::Map::new();
        for proxy in proxies {
            let mine: Vec<&Value> = runs
                .iter()
                .filter(|r| {
                    r["scenario"] == scenario && r["proxy"] == proxy && r["load"].is_object()
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let field =
                |f: &str| median(mine.iter().filter_map(|r| r["load"][f].as_f64()).collect());
            let cpu = median(
                mine.iter()
                    .map(|r| {
                        let secs = r["cpu_ticks"].as_f64().unwrap_or(0.0)
                            / r["ticks_per_s"].as_f64().unwrap_or(100.0);
                        let requests = r["load"]["requests"].as_f64().unwrap_or(0.0).max(1.0);
                        secs / requests * 1_000_000.0
                    })
                    .collect(),
            );
            // Requests per CPU-second of the busiest thread (scaling run): what the proxy would
            // serve if each of its workers had a core to itself, capped by the one doing most.
            let capacity = median(
                mine.iter()
                    .filter_map(|r| {
                        let busiest = r["busiest_ticks"].as_f64().filter(|t| *t > 0.0)?
                            / r["ticks_per_s"].as_f64().unwrap_or(100.0);
                        Some(r["load"]["requests"].as_f64().unwrap_or(0.0) / busiest)
                    })
                    .collect(),
            );
            let rss = mine
                .iter()
                .filter_map(|r| r["peak_rss_kib"].as_f64())
                .fold(0.0, f64::max)
                / 1024.0;
            let sum = |f: &str| {
                mine.iter()
                    .filter_map(|r| r["load"][f].as_u64())
                    .sum::<u64>()
            };
            per_proxy.insert(
                proxy.to_string(),
                json!({"rps": field("rps"), "p50_ms": field("p50_ms"), "p99_ms": field("p99_ms"),
                       "p999_ms": field("p999_ms"), "cpu_us_per_request": cpu, "peak_rss_mib": rss,
                       "idle_kib_per_conn": field("idle_kib_per_conn"),
                       "active_kib_per_conn": field("active_kib_per_conn"),
                       "requests": field("requests"), "capacity_rps": capacity,
                       "non_2xx": sum("non_2xx"), "socket_errors": sum("socket_errors"),
                       "runs": mine.len()}),
            );
        }
        if !per_proxy.is_empty() {
            medians.insert(scenario.to_string(), Value::Object(per_proxy));
        }
    }
    let ratio = |scenario: &str, other: &str, f: &str| -> Option<f64> {
        let p = medians.get(scenario)?.get("portico")?.get(f)?.as_f64()?;
        let o = medians.get(scenario)?.get(other)?.get(f)?.as_f64()?;
        (o > 0.0).then(|| p / o)
    };
    let mut ratios = serde_json::Map::new();
    for (scenario, _) in SCENARIO_NAMES {
        ratios.insert(
            scenario.to_string(),
            json!({"rps_vs_nginx": ratio(scenario, "nginx", "rps"),
                   "rps_vs_haproxy": ratio(scenario, "haproxy", "rps"),
                   "p99_vs_nginx": ratio(scenario, "nginx", "p99_ms"),
                   "p99_vs_haproxy": ratio(scenario, "haproxy", "p99_ms"),
                   "cpu_per_request_vs_nginx": ratio(scenario, "nginx", "cpu_us_per_request"),
                   "cpu_per_request_vs_haproxy": ratio(scenario, "haproxy", "cpu_us_per_request"),
                   "rps_vs_pingora": ratio(scenario, "pingora", "rps"),
                   "p99_vs_pingora": ratio(scenario, "pingora", "p99_ms"),
                   "cpu_per_request_vs_pingora": ratio(scenario, "pingora", "cpu_us_per_request"),
                   "idle_kib_per_conn_vs_nginx": ratio(scenario, "nginx", "idle_kib_per_conn"),
                   "active_kib_per_conn_vs_nginx": ratio(scenario, "nginx", "active_kib_per_conn"),
                   "idle_kib_per_conn_vs_pingora": ratio(scenario, "pingora", "idle_kib_per_conn"),
                   "active_kib_per_conn_vs_pingora": ratio(scenario, "pingora", "active_kib_per_conn")}),
        );
    }

    // Markdown.
    let mut md = format!(
        "# Portico benchmark, {date} ({mode})\n\nMachine: {machine}. Medians of {rounds} round(s); proxies alternate within each round.\n\n\
         | Scenario | Target | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs / req | peak RSS MiB | non-2xx | socket errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (scenario, label) in SCENARIO_NAMES {
        let Some(per_proxy) = medians.get(scenario).filter(|_| scenario != "mem_10k") else {
            continue;
        };
        for proxy in proxies {
            let Some(m) = per_proxy.get(proxy) else {
                continue;
            };
            let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
            md +=
                &format!(
                "| {label} | {proxy} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |\n",
                f("rps"), f("p50_ms"), f("p99_ms"), f("p999_ms"), f("cpu_us_per_request"),
                f("peak_rss_mib"), m["non_2xx"], m["socket_errors"]
            );
        }
    }
    md += "\n| Scenario | req/s Portico/nginx | req/s Portico/HAProxy | req/s Portico/Pingora | p99 Portico/nginx | p99 Portico/HAProxy | p99 Portico/Pingora | CPU per request Portico/nginx | CPU per request Portico/HAProxy | CPU per request Portico/Pingora |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    let show = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "—".into())
    };
    for (scenario, label) in SCENARIO_NAMES {
        let r = &ratios[scenario];
        if medians.contains_key(scenario) && scenario != "mem_10k" {
            md += &format!(
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                show(&r["rps_vs_nginx"]),
                show(&r["rps_vs_haproxy"]),
                show(&r["rps_vs_pingora"]),
                show(&r["p99_vs_nginx"]),
                show(&r["p99_vs_haproxy"]),
                show(&r["p99_vs_pingora"]),
                show(&r["cpu_per_request_vs_nginx"]),
                show(&r["cpu_per_request_vs_haproxy"]),
                show(&r["cpu_per_request_vs_pingora"])
            );
        }
    }
    if let (Some(one), Some(two)) = (
        medians.get("h1_keepalive_1core_shared"),
        medians.get("h1_keepalive_2cores"),
    ) {
        md += "\n## Scaling: 1 worker vs 2\n\nreq/s 2 ÷ 1 is capped by the load generator and upstream sharing the two cores. Capacity is requests per CPU-second of the busiest worker thread (or process): the rate each proxy would reach with a core per worker, limited by its busiest worker; capacity 2 ÷ 1 is 2.00 for an even split at an unchanged cost per request.\n\n| Target | req/s 1 worker | req/s 2 workers | req/s 2 ÷ 1 | capacity 1 worker | capacity 2 workers | capacity 2 ÷ 1 |\n|---|---:|---:|---:|---:|---:|---:|\n";
        for proxy in proxies {
            let (Some(a), Some(b)) = (one.get(proxy), two.get(proxy)) else {
                continue;
            };
            let f = |m: &Value, k: &str| m[k].as_f64().unwrap_or(0.0);
            let div = |x: f64, y: f64| {
                if y > 0.0 {
                    format!("{:.2}", x / y)
                } else {
                    "—".to_string()
                }
            };
            md += &format!(
                "| {proxy} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {} |\n",
                f(a, "rps"),
                f(b, "rps"),
                div(f(b, "rps"), f(a, "rps")),
                f(a, "capacity_rps"),
                f(b, "capacity_rps"),
                div(f(b, "capacity_rps"), f(a, "capacity_rps"))
            );
        }
    }
    if let Some(mem) = medians.get("mem_10k") {
        // The memory run records its connection count as `requests` (bench/run lowers it to
        // what the descriptor limit allows).
        let conns = mem
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
            .filter_map(|m| m["requests"].as_f64())
            .fold(0.0, f64::max);
        let conns = {
            let digits = (conns as u64).to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        md += &format!("\n## Memory: {conns} keep-alive connections\n\nRSS growth over the idle process divided by the connections: idle (each connection made one request, then waits) and active (wrk keeps all {conns} busy).\n\n");
        md += "| Target | idle KiB per connection | active KiB per connection | peak RSS MiB |\n|---|---:|---:|---:|\n";
        for proxy in proxies {
            if let Some(m) = mem.get(proxy) {
                let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
                md += &format!(
                    "| {proxy} | {:.1} | {:.1} | {:.1} |\n",
                    f("idle_kib_per_conn"),
                    f("active_kib_per_conn"),
                    f("peak_rss_mib")
                );
            }
        }
        let r = &ratios["mem_10k"];
        md += &format!(
            "\nPortico ÷ nginx per connection: idle {}, active {}.\n",
            show(&r["idle_kib_per_conn_vs_nginx"]),
            show(&r["active_kib_per_conn_vs_nginx"])
        );
        if mem.get("pingora").is_some() {
            md += &format!(
                "Portico ÷ Pingora per connection: idle {}, active {}.\n",
                show(&r["idle_kib_per_conn_vs_pingora"]),
                show(&r["active_kib_per_conn_vs_pingora"])
            );
        }
    }
    if !note.is_empty() {
        md += &format!("\nNote: {note}\n");
    }
    if let Some(sizes) = scale["sizes"].as_array() {
        md += "\n## Control plane\n\n| Ingresses | load dir ms | cached reload ms | translate ms | publish ms (1 change) | match ns/req | RSS after load MiB | peak RSS MiB | propagation (files) p50 / p99 ms | propagation (API) p50 / p99 ms | changes |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for s in sizes {
            let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
            let kube = &s["kube_propagation"];
            let kube = if kube.is_object() {
                format!(
                    "{:.1} / {:.1}",
                    kube["p50_ms"].as_f64().unwrap_or(0.0),
                    kube["p99_ms"].as_f64().unwrap_or(0.0)
                )
            } else {
                "—".to_string()
            };
            md += &format!(
                "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} / {:.1} | {kube} | {} |\n",
                s["ingresses"], f("load_ms"), f("reload_cached_ms"), f("translate_ms"),
                f("publish_ms"), f("match_ns_per_request"), f("rss_after_load_mib"),
                f("peak_rss_mib"),
                s["propagation"]["p50_ms"].as_f64().unwrap_or(0.0),
                s["propagation"]["p99_ms"].as_f64().unwrap_or(0.0),
                s["propagation"]["changes"]
            );
        }
    }
    if scale["churn"].is_object() {
        let c = &scale["churn"];
        md += &format!(
            "\nChurn: {} Ingresses, {} s of load ({}) while the directory changed {} times ({} versions published): {} requests, {} non-2xx, {} socket errors.\n",
            c["ingresses"], c["seconds"], c["load"].as_str().unwrap_or(""), c["writes"],
            c["published_versions"], c["result"]["requests"], c["result"]["non_2xx"],
            c["result"]["socket_errors"]
        );
    }

    // Chart: req/s ratios per scenario, a line at 1.
    let mut dat = String::from("# scenario nginx haproxy pingora ('?': not measured)\n");
    let (mut rows, mut top, mut any_pingora) = (0usize, 1.2f64, false);
    for (scenario, _) in SCENARIO_NAMES {
        let r = &ratios[scenario];
        if let (Some(n), Some(h)) = (r["rps_vs_nginx"].as_f64(), r["rps_vs_haproxy"].as_f64()) {
            let pingora = r["rps_vs_pingora"].as_f64();
            any_pingora |= pingora.is_some();
            let p = pingora.map_or_else(|| "?".to_string(), |p| format!("{p:.3}"));
            dat += &format!("{scenario} {n:.3} {h:.3} {p}\n");
            rows += 1;
            top = top
                .max(n * 1.15)
                .max(h * 1.15)
                .max(pingora.unwrap_or(0.0) * 1.15);
        }
    }
    std::fs::create_dir_all(&out)?;
    let dat_path = out.join(format!("{date}.dat"));
    std::fs::write(&dat_path, dat)?;
    let png = out.join(format!("{date}.png"));
    let (peers, pingora_series) = if any_pingora {
        (
            "nginx, HAProxy and Pingora",
            ", '' using 4 title 'Portico / Pingora'",
        )
    } else {
        ("nginx and HAProxy", "")
    };
    let gp = format!(
        "set terminal pngcairo size 900,480 noenhanced\nset output '{}'\nset title 'Portico req/s relative to {peers} ({date}, medians)'\n\
         set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset xrange [-0.6:{:.1}]\nset yrange [0:{top:.2}]\n\
         set ylabel 'Portico req/s / other req/s'\nset xtics rotate by -20\nset key top left\nset grid ytics\nset datafile missing '?'\n\
         plot '{}' using 2:xtic(1) title 'Portico / nginx', '' using 3 title 'Portico / HAProxy'{pingora_series}, 1 with lines lc rgb 'black' title 'parity'\n",
        png.display(),
        rows as f64 - 0.4,
        dat_path.display()
    );
    std::fs::write(out.join(format!("{date}.gnuplot")), gp)?;
    let doc = json!({"date": date, "mode": mode, "machine": machine, "rounds": rounds, "note": note,
                     "medians": medians, "ratios": ratios, "scale": scale, "runs": runs});
    std::fs::write(
        out.join(format!("{date}.json")),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    std::fs::write(out.join(format!("{date}.md")), &md)?;
    println!("{md}");
    Ok(())
}
