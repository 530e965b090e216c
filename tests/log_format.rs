//! The ConfigMap's `log-format-upstream` and `log-format-escape-json` over a real request
//! (issue 13): the line is the template filled in, escaped as nginx's `escape=json`, and a
//! new ConfigMap version changes the next line. Reproduces ingress-nginx's
//! `test/e2e/settings/log-format.go` "log-format-escape-json enabled".

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico::access_log::{AccessLog, Format};
use portico::metrics::Metrics;
use portico::proxy::{Observe, ProxyOptions};
use portico::publish::Published;
use portico::routing::{Global, HostMatch, PathType, RouteTable};
use portico::translate::configmap::from_data;
use portico::translate::{ObjectRef, Reason, Translation};
use support::{endpoints, route, start_echo, vhost, Proxy};

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until `n` lines have been written.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} access log lines, got {:?}", self.lines());
    }
}

fn object() -> ObjectRef {
    ObjectRef {
        kind: "ConfigMap".into(),
        namespace: "portico".into(),
        name: "portico".into(),
    }
}

fn global(pairs: &[(&str, &str)]) -> (Global, Vec<portico::translate::Condition>) {
    let data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut conditions = Vec::new();
    let global = from_data(data, &object(), &mut conditions);
    (global, conditions)
}

fn publish(proxy: &Proxy, upstream: std::net::SocketAddr, global: Global) {
    let version = proxy.shared.load().version + 1;
    let table = RouteTable::new(
        vec![vhost(
            HostMatch::Exact("log-format".into()),
            vec![route("/", PathType::Prefix, endpoints(&[upstream]))],
        )],
        None,
    );
    proxy.shared.store(Arc::new(Published {
        version,
        translation: Arc::new(Translation {
            table,
            global: Arc::new(global),
            ..Translation::default()
        }),
        snapshot: Default::default(),
    }));
}

async fn start() -> (Proxy, Lines) {
    let metrics = Arc::new(Metrics::new());
    let lines = Lines::default();
    let (log, _thread) = AccessLog::start(
        Format::Json,
        Box::new(lines.clone()),
        1024,
        metrics.access_log_dropped(),
    );
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        observe: Observe {
            metrics,
            access_log: Some(log),
        },
        ..ProxyOptions::default()
    })
    .await;
    (proxy, lines)
}

/// log-format.go "log-format-escape-json enabled": a header with quotes is JSON-escaped, an
/// absent one is empty; the text around the variables is kept as written.
#[tokio::test]
async fn a_request_produces_the_templated_line() {
    let (proxy, lines) = start().await;
    let upstream = start_echo("a").await;
    let (g, conditions) = global(&[
        ("log-format-escape-json", "true"),
        (
            "log-format-upstream",
            "\"{\"my_header1\":\"$http_header1\", \"my_header2\":\"$http_header2\"}\" $status $request_method $host",
        ),
    ]);
    assert!(conditions.is_empty(), "{conditions:?}");
    publish(&proxy, upstream, g);
    let r = proxy
        .raw("GET / HTTP/1.1\r\nHost: Log-Format:80\r\nheader1: Here is \"header1\" with json escape\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    let got = lines.wait_for(1).await;
    assert_eq!(
        got[0],
        r#""{"my_header1":"Here is \"header1\" with json escape", "my_header2":""}" 200 GET log-format"#
    );

    // A new ConfigMap version without the template: Portico's own JSON line again.
    publish(&proxy, upstream, global(&[]).0);
    let r = proxy
        .raw("GET /again HTTP/1.1\r\nHost: log-format\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    let got = lines.wait_for(2).await;
    let own: serde_json::Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(own["http.target"], "/again");
}

/// An unknown variable: a condition naming it on the ConfigMap, and Portico's own format.
#[tokio::test]
async fn an_unknown_variable_keeps_the_default_format() {
    let (g, conditions) = global(&[("log-format-upstream", "$remote_addr $bytes_sent")]);
    assert!(g.log_format.is_none());
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].reason, Reason::InvalidConfigMapKey);
    assert_eq!(conditions[0].object, object());
    assert!(
        conditions[0].message.contains("$bytes_sent"),
        "{}",
        conditions[0].message
    );

    let (proxy, lines) = start().await;
    let upstream = start_echo("a").await;
    publish(&proxy, upstream, g);
    let r = proxy.get("log-format", "/x").await;
    assert_eq!(r.status, 200);
    let lines = lines.wait_for(1).await;
    let own: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(own["http.target"], "/x");
}
