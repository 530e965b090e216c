//! The ingress-nginx suites' common setup: Ingress YAML for the Service `echo`, that Service
//! with one endpoint, and a proxy on 127.0.0.1 serving their translation.

use std::net::SocketAddr;
use std::time::Duration;

use portico::proxy::ProxyOptions;
use portico::translate::{Options, Translation};

use super::{start_echo, Proxy};

/// One Ingress `name` for `host` and `path` to the Service `echo`, with `annotations`
/// (`key: value` lines), plus whatever `extra` YAML documents say.
pub fn ingress(name: &str, host: &str, path: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {v:?}"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{}\n", annotations.join("\n"))
    };
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: \"2020-01-01T00:00:00Z\"
{annotations}spec:
  ingressClassName: portico
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}
"
    )
}

/// The IngressClass, the Service `echo` and its one endpoint.
pub fn echo_service(echo: SocketAddr) -> String {
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
- addresses: [\"{ip}\"]
",
        port = echo.port(),
        ip = echo.ip()
    )
}

pub fn translate_yaml(documents: &[String]) -> Translation {
    super::translate_documents(documents, &Options::default())
}

pub fn publish(proxy: &Proxy, translation: Translation) {
    proxy.publish_translation(translation);
}

/// A proxy serving `ingresses` (and the echo Service) with `options`.
pub async fn serve(ingresses: &[String], options: ProxyOptions) -> (Proxy, Translation) {
    let echo = start_echo("echo").await;
    let mut documents = vec![echo_service(echo)];
    documents.extend(ingresses.iter().cloned());
    let translation = translate_yaml(&documents);
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        ..options
    })
    .await;
    publish(&proxy, translation.clone());
    (proxy, translation)
}

pub const N: &str = "nginx.ingress.kubernetes.io/";

pub fn n(name: &str) -> String {
    format!("{N}{name}")
}
