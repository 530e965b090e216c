//! The `portico` binary end to end, as the README runs it: a manifests directory on disk, echo
//! backends on loopback, changes to the files taking effect, bad input sparing the rest.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{free_port, start_echo, Conn, RawResponse};

/// How often, and how many times, a test polls for a change to show. Bounded in count.
const POLL: Duration = Duration::from_millis(50);
const POLLS: usize = 200;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portico-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// An Ingress `name` for `host` with Prefix `/` to Service `service`, plus that Service and an
/// EndpointSlice pointing at `backend`.
fn app_yaml(name: &str, host: &str, service: &str, backend: SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {service}}}
spec:
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {service}-1
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
ports: [{{name: "", port: {port}}}]
endpoints: [{{addresses: ["{ip}"]}}]
"#,
        port = backend.port(),
        ip = backend.ip(),
    )
}

struct Portico {
    child: Child,
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Portico {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Portico {
    /// Starts the binary on `dir` with watch-without-class (the fixtures name no class).
    async fn start(dir: &Path) -> Portico {
        Portico::start_with(dir, &[]).await
    }

    async fn start_with(dir: &Path, extra: &[&str]) -> Portico {
        let (http, https, admin) = (free_port(), free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(extra)
            .arg("--manifests")
            .arg(dir)
            .args(["--http-addr", &http.to_string()])
            .args(["--https-addr", &https.to_string()])
            .args(["--admin-addr", &admin.to_string()])
            .arg("--watch-ingress-without-class")
            .env("PORTICO_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("portico starts");
        let portico = Portico {
            child,
            http,
            https,
            admin,
        };
        portico.wait_ready().await;
        portico
    }

    async fn wait_ready(&self) {
        for _ in 0..POLLS {
            if let Ok(stream) = tokio::net::TcpStream::connect(self.admin).await {
                let mut conn = Conn {
                    reader: tokio::io::BufReader::new(stream),
                };
                conn.send(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                    .await;
                if conn.response().await.status == 200 {
                    return;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("portico never became ready");
    }

    async fn get(&self, host: &str, path: &str) -> RawResponse {
        let mut conn = Conn::connect(self.http).await;
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        conn.response().await
    }

    /// Which backend answered (`name` in the echo JSON), or the status code for others.
    async fn who(&self, host: &str, path: &str) -> String {
        answer(&self.get(host, path).await)
    }

    /// Polls until `host` is answered by `expected` (bounded); returns what it last saw.
    async fn wait_for(&self, host: &str, expected: &str) -> String {
        let mut last = String::new();
        for _ in 0..POLLS {
            last = self.who(host, "/").await;
            if last == expected {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        last
    }
}

fn answer(r: &RawResponse) -> String {
    if r.status == 200 {
        r.json()["name"].as_str().unwrap_or("?").to_string()
    } else {
        r.status.to_string()
    }
}

#[tokio::test]
async fn file_changes_take_effect_without_restart() {
    let (a, b, c) = (
        start_echo("a").await,
        start_echo("b").await,
        start_echo("c").await,
    );
    let dir = temp_dir("changes");
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-a", a),
    )
    .unwrap();
    let portico = Portico::start(&dir).await;
    assert_eq!(portico.who("app.example", "/").await, "a");

    // Changed file: the same host now points at another Service.
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-b", b),
    )
    .unwrap();
    assert_eq!(portico.wait_for("app.example", "b").await, "b");

    // Added file: a new host.
    std::fs::write(
        dir.join("more.yml"),
        app_yaml("more", "more.example", "svc-c", c),
    )
    .unwrap();
    assert_eq!(portico.wait_for("more.example", "c").await, "c");

    // Deleted file: its host is gone.
    std::fs::remove_file(dir.join("app.yaml")).unwrap();
    assert_eq!(portico.wait_for("app.example", "404").await, "404");
    assert_eq!(portico.who("more.example", "/").await, "c");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn keep_alive_connection_survives_a_reload() {
    let (a, b) = (start_echo("a").await, start_echo("b").await);
    let dir = temp_dir("keepalive");
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-a", a),
    )
    .unwrap();
    let portico = Portico::start(&dir).await;
    let mut conn = Conn::connect(portico.http).await;
    let request = b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n";
    conn.send(request).await;
    assert_eq!(answer(&conn.response().await), "a");

    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-b", b),
    )
    .unwrap();
    assert_eq!(portico.wait_for("app.example", "b").await, "b");
    // The connection opened before the change still works, and now sees the new table.
    conn.send(request).await;
    assert_eq!(answer(&conn.response().await), "b");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_broken_file_spares_the_rest() {
    let a = start_echo("a").await;
    let dir = temp_dir("broken");
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-a", a),
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: [oops\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("wrong.json"),
        r#"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"w"},"spec":{"rules":"nope"}}"#,
    )
    .unwrap();
    let portico = Portico::start(&dir).await;
    assert_eq!(portico.who("app.example", "/").await, "a");

    // Breaking the good file later keeps the objects of its valid documents. The new file
    // shows when the reload that read the broken one has happened.
    let c = start_echo("c").await;
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "{}---\nkind: [unclosed\n",
            app_yaml("app", "app.example", "svc-a", a)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("more.yaml"),
        app_yaml("more", "more.example", "svc-c", c),
    )
    .unwrap();
    assert_eq!(portico.wait_for("more.example", "c").await, "c");
    assert_eq!(portico.who("app.example", "/").await, "a");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_flags_exit_non_zero_naming_the_flag() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(args)
            .env_remove("PORTICO_MANIFESTS")
            .output()
            .expect("portico runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = run(&["--manifests", ".", "--max-header-bytes", "5"]);
    assert!(!ok);
    assert!(err.contains("--max-header-bytes"), "{err}");
    let (ok, err) = run(&[]);
    assert!(!ok);
    assert!(err.contains("--manifests"), "{err}");
    let (ok, err) = run(&["--manifests", ".", "--upstream-connect-timeout", "soon"]);
    assert!(!ok);
    assert!(err.contains("--upstream-connect-timeout"), "{err}");
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--help")
        .output()
        .expect("portico runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--manifests",
        "--http-addr",
        "--https-addr",
        "--admin-addr",
        "--default-ssl-certificate",
        "--ssl-redirect",
        "--tls-handshake-timeout",
        "--controller-name",
        "--ingress-class",
        "--watch-ingress-without-class",
        "--default-backend-service",
        "--enable-external-name",
        "--max-header-bytes",
        "--upstream-connect-timeout",
        "--upstream-response-timeout",
        "--log-format",
        "--log-level",
        "--access-log",
        "--upstream-idle-timeout",
        "--client-header-timeout",
        "--client-idle-timeout",
        "--load-balance",
        "--proxy-next-upstream-tries",
        "--proxy-body-size",
        "--max-connections",
        "--http2-max-concurrent-streams",
        "--proxy-protocol",
        "--trusted-proxies",
        "--shutdown-delay",
        "--shutdown-timeout",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(
            help.contains(&format!(
                "PORTICO_{}",
                flag[2..].replace('-', "_").to_uppercase()
            )),
            "{flag} has no env var"
        );
    }
}

/// Kubernetes' termination sequence: SIGTERM, /readyz unready at once while requests are
/// still served for the shutdown delay, then the listener closes, the request in flight
/// finishes, and the process exits 0.
#[tokio::test]
async fn sigterm_unready_then_drains_the_slow_request_and_exits_zero() {
    let gated = support::gated_backend().await;
    let echo = start_echo("quick").await;
    let dir = temp_dir("sigterm");
    std::fs::write(
        dir.join("slow.yaml"),
        app_yaml("slow", "slow.example", "slow", gated.addr),
    )
    .unwrap();
    std::fs::write(
        dir.join("quick.yaml"),
        app_yaml("quick", "quick.example", "quick", echo),
    )
    .unwrap();
    let mut portico = Portico::start_with(
        &dir,
        &["--shutdown-delay", "1s", "--shutdown-timeout", "20s"],
    )
    .await;

    // A slow request in flight (the backend holds its answer).
    let mut slow = Conn::connect(portico.http).await;
    slow.send(b"GET / HTTP/1.1\r\nHost: slow.example\r\n\r\n")
        .await;
    let head = tokio::time::timeout(support::BOUND, gated.head_seen)
        .await
        .unwrap()
        .unwrap();
    assert!(head.starts_with("GET / "));

    let pid = portico.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    // Unready at once (polled, bounded), while the proxy still answers.
    let mut unready = false;
    for _ in 0..POLLS {
        let mut admin = Conn::connect(portico.admin).await;
        admin
            .send(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .await;
        if admin.response().await.status == 503 {
            unready = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(unready, "/readyz stayed ready after SIGTERM");
    assert_eq!(answer(&portico.get("quick.example", "/").await), "quick");

    // The slow request completes after the listener has closed.
    let mut closed = false;
    for _ in 0..POLLS {
        if tokio::net::TcpStream::connect(portico.http).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(closed, "listener still open after the shutdown delay");
    gated.release.send("finally").unwrap();
    let response = slow.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "finally");

    let mut status = None;
    for _ in 0..POLLS {
        if let Some(s) = portico.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let status = status.expect("portico exits after draining");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn tls_from_a_secret_file_with_rotation_and_redirect() {
    use support::tls;
    let backend = start_echo("secure").await;
    let dir = temp_dir("tls");
    let first = tls::cert(&["secure.example"]);
    std::fs::write(
        dir.join("app.yaml"),
        tls::app_yaml(
            "default",
            "secure",
            "secure.example",
            &["secure.example"],
            "secure-tls",
            backend,
            &[],
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("secret.yaml"),
        tls::tls_secret("default", "secure-tls", &first),
    )
    .unwrap();
    let portico = Portico::start(&dir).await;

    let stream = tls::connect(portico.https, Some("secure.example"), &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls::leaf(&stream), first.der);
    let mut open = tls::Client::new(stream).await;
    let response = open.get("secure.example", "/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(tls::json(&response)["name"], "secure");

    let response = portico.get("secure.example", "/x?y=1").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("https://secure.example/x?y=1")
    );
    // The running controller explains the same certificate and redirect, and counts them.
    let explained = portico
        .admin(
            "GET",
            "/debug/explain?host=secure.example&path=%2Fx%3Fy%3D1&sni=Secure.Example",
            "",
        )
        .await
        .text();
    for part in [
        "tls:     SNI \"secure.example\" -> default/secure-tls (exact)",
        "names secure.example; valid 1975-01-01T00:00:00Z to 4096-01-01T00:00:00Z",
        "http:    redirected to https://secure.example/x?y=1: 308",
    ] {
        assert!(explained.contains(part), "{part} in {explained}");
    }
    let metrics = portico.admin("GET", "/metrics", "").await.text();
    for part in [
        "portico_tls_handshakes_total{version=\"TLSv1.3\"} 1",
        "portico_tls_certificate_not_after_timestamp_seconds{host=\"secure.example\",secret=\"default/secure-tls\"} 67090118400",
        "portico_source_last_sync_age_seconds{source=\"files\"}",
    ] {
        assert!(metrics.contains(part), "{part} in {metrics}");
    }

    // Rotate the Secret on disk: new handshakes get the new certificate, the open connection
    // keeps working.
    let second = tls::cert(&["secure.example"]);
    std::fs::write(
        dir.join("secret.yaml"),
        tls::tls_secret("default", "secure-tls", &second),
    )
    .unwrap();
    let mut served = None;
    for _ in 0..POLLS {
        let stream = tls::connect(portico.https, Some("secure.example"), &[b"http/1.1"]).await;
        if tls::leaf(&stream) == second.der {
            served = Some(());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(served.is_some(), "the rotated certificate is served");
    assert_eq!(open.get("secure.example", "/again").await.status(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

impl Portico {
    /// One request to the admin port.
    async fn admin(&self, method: &str, path: &str, body: &str) -> RawResponse {
        let mut conn = Conn::connect(self.admin).await;
        conn.send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
        conn.response().await
    }
}

#[tokio::test]
async fn admin_serves_metrics_routes_explain_and_log_level() {
    let a = start_echo("a").await;
    let dir = temp_dir("admin");
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-a", a),
    )
    .unwrap();
    let portico = Portico::start(&dir).await;
    assert_eq!(portico.who("app.example", "/").await, "a");

    let metrics = portico.admin("GET", "/metrics", "").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = metrics.text();
    assert!(text.contains("portico_config_version 1\n"), "{text}");
    assert!(
        text.contains("portico_source_last_sync_age_seconds{source=\"files\"}"),
        "{text}"
    );
    // The count is taken when the response body ends; poll briefly.
    let counted = "portico_requests_total{namespace=\"default\",ingress=\"app\",service=\"svc-a\",method=\"GET\",status_class=\"2xx\"} 1";
    let mut seen = text.contains(counted);
    for _ in 0..POLLS {
        if seen {
            break;
        }
        tokio::time::sleep(POLL).await;
        seen = portico
            .admin("GET", "/metrics", "")
            .await
            .text()
            .contains(counted);
    }
    assert!(seen, "{counted}");

    let routes = portico.admin("GET", "/debug/routes", "").await.json();
    assert_eq!(routes["version"], 1);
    assert_eq!(routes["table"]["vhosts"][0]["host"]["exact"], "app.example");
    assert_eq!(
        routes["table"]["vhosts"][0]["routes"][0]["backend"]["target"]["endpoints"][0],
        a.to_string()
    );

    let explained = portico
        .admin("GET", "/debug/explain?host=app.example&path=%2Fx", "")
        .await
        .text();
    assert!(
        explained.contains("configuration: version 1"),
        "{explained}"
    );
    assert!(
        explained.contains("vhost:   app.example (exact)"),
        "{explained}"
    );
    assert!(explained.contains("chosen Prefix /"), "{explained}");
    let json = portico
        .admin("GET", "/debug/explain?host=app.example&format=json", "")
        .await
        .json();
    assert_eq!(json["outcome"]["decision"], "route");

    assert_eq!(
        portico.admin("GET", "/log-level", "").await.text(),
        "warn\n"
    );
    assert_eq!(
        portico
            .admin("PUT", "/log-level", "portico=debug")
            .await
            .status,
        200
    );
    assert_eq!(
        portico.admin("GET", "/log-level", "").await.text(),
        "portico=debug\n"
    );
    assert_eq!(
        portico
            .admin("PUT", "/log-level", "portico=[nope")
            .await
            .status,
        400
    );
    assert_eq!(portico.admin("PUT", "/log-level", "").await.status, 400);
    assert_eq!(
        portico.admin("GET", "/log-level", "").await.text(),
        "portico=debug\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the binary with `args` (and `stdin`), returning exit code and stdout.
fn run(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("portico runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().expect("portico ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_exits_non_zero_only_for_errors() {
    let dir = temp_dir("check");
    let good = app_yaml(
        "app",
        "app.example",
        "svc-a",
        "127.0.0.1:9".parse().unwrap(),
    );
    std::fs::write(dir.join("app.yaml"), &good).unwrap();
    let d = dir.to_str().unwrap();
    let flag = "--watch-ingress-without-class";

    let (code, out) = run(&["check", "--manifests", d, flag], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("summary: 1 of 1 Ingresses owned; 1 vhosts, 1 routes"),
        "{out}"
    );
    // Standard input, as `kubectl get ... -o yaml | portico check -`.
    let (code, out) = run(&["check", "-", flag], Some(&good));
    assert_eq!(code, 0, "{out}");
    // Without the flag the Ingress is not ours: nothing to complain about, nothing owned.
    let (code, out) = run(&["check", d], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("summary: 0 of 1 Ingresses owned"), "{out}");

    let broken = good.replace("name: svc-a}\nspec", "name: other}\nspec");
    let (code, out) = run(&["check", "-", flag], Some(&broken));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "error   Ingress default/app: ServiceNotFound: service default/svc-a not found"
        ),
        "{out}"
    );
    let (code, _) = run(&["check"], None);
    assert_eq!(code, 2, "no input is a usage error");
    let (code, _) = run(&["check", "--http-addr", "127.0.0.1:1", d], None);
    assert_eq!(code, 2, "controller flags are refused");
    let (code, _) = run(&["check", d, "--default-backend-service", "nope"], None);
    assert_eq!(code, 2, "a bad flag value is a usage error");

    let (code, out) = run(
        &[
            "explain",
            "--manifests",
            d,
            flag,
            "--host",
            "x.app.example",
            "--path",
            "/a",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("vhost:   none"), "{out}");
    assert!(out.contains("answer:  404 Not Found"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Logs written to a pipe (a file, `kubectl logs`, a log shipper) carry no terminal colour
/// codes: tracing-subscriber colours by default, so the binary must turn that off when its log
/// stream is not a terminal. Both streams are piped and read whole after a clean exit.
#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let echo = start_echo("plain").await;
    let dir = temp_dir("no-ansi");
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "plain.example", "plain", echo),
    )
    .unwrap();
    // A broken file: a warning with fields, the line most decorated when colours are on.
    std::fs::write(dir.join("broken.yaml"), "kind: Ingress\nspec: [").unwrap();
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--manifests")
        .arg(&dir)
        .args(["--http-addr", &http.to_string()])
        .args(["--https-addr", &https.to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--watch-ingress-without-class", "--shutdown-delay", "0s"])
        .args(["--log-format", "text", "--log-level", "info"])
        // tracing-subscriber also honours NO_COLOR; make sure it is not what turns colour off.
        .env_remove("NO_COLOR")
        .env_remove("PORTICO_LOG_LEVEL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portico starts");
    let mut portico = Portico {
        child,
        http,
        https,
        admin,
    };
    portico.wait_ready().await;
    assert_eq!(answer(&portico.get("plain.example", "/").await), "plain");

    let pid = portico.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..POLLS {
        if let Some(s) = portico.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(status.expect("portico exits").code(), Some(0));

    let mut logs = Vec::new();
    for stream in [
        portico
            .child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read>),
        portico
            .child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        stream.read_to_end(&mut logs).unwrap();
    }
    let text = String::from_utf8_lossy(&logs);
    // Not vacuous: the lines that would be coloured are there.
    assert!(text.contains("portico serving"), "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(
        !logs.contains(&0x1b),
        "ESC (terminal colour code) in piped logs:\n{}",
        text.escape_debug()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Manifests mode reads the controller ConfigMap from the directory and follows its changes
/// (`ingress-nginx.md` §4); `portico check` reports its invalid values as errors naming it.
#[tokio::test]
async fn the_controller_configmap_is_read_from_the_directory_and_checked() {
    let a = start_echo("a").await;
    let dir = temp_dir("configmap");
    std::fs::write(
        dir.join("app.yaml"),
        app_yaml("app", "app.example", "svc-a", a),
    )
    .unwrap();
    let config = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: portico\ndata:\n{data}")
    };
    std::fs::write(
        dir.join("config.yaml"),
        config("  force-ssl-redirect: \"false\"\n"),
    )
    .unwrap();
    let portico = Portico::start_with(&dir, &["--configmap", "default/portico"]).await;
    let response = portico.get("app.example", "/").await;
    assert_eq!(response.status, 200);

    // A live change: every route now redirects to HTTPS, TLS or not.
    std::fs::write(
        dir.join("config.yaml"),
        config("  force-ssl-redirect: \"true\"\n"),
    )
    .unwrap();
    let mut status = 0;
    for _ in 0..POLLS {
        status = portico.get("app.example", "/").await.status;
        if status != 200 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(status, 308);

    std::fs::write(
        dir.join("config.yaml"),
        config("  hsts-max-age: \"a year\"\n  not-a-key: \"1\"\n"),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let flags = [
        "--watch-ingress-without-class",
        "--configmap",
        "default/portico",
    ];
    let (code, out) = run(&[&["check", d][..], &flags[..]].concat(), None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error   ConfigMap default/portico: InvalidConfigMapKey: hsts-max-age"),
        "{out}"
    );
    assert!(
        out.contains("warning ConfigMap default/portico: UnsupportedConfigMapKey:")
            && out.contains("not-a-key"),
        "{out}"
    );
    std::fs::remove_file(dir.join("config.yaml")).unwrap();
    let (code, out) = run(&[&["check", d][..], &flags[..]].concat(), None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ConfigMapNotFound"), "{out}");
    drop(portico);
    std::fs::remove_dir_all(&dir).unwrap();
}
