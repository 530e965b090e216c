//! A fake Kubernetes API server on 127.0.0.1:0 that speaks the HTTP protocol kube's client
//! uses: list with `resourceVersion`, watch as a stream of JSON events with bookmarks, `410
//! Gone` for a compacted resourceVersion, create/get/replace/patch/delete, the `/status`
//! subresource (merge and JSON patch), Leases and Events. Objects live in memory; tests change
//! them while Portico runs, drop watch connections, compact history, or take the server down.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

type Body = BoxBody<Bytes, Infallible>;

/// Where an object lives: group/version ("v1" for core), plural resource, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    gv: String,
    resource: String,
    namespace: String,
    name: String,
}

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

/// One request Portico made, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// Which listener (`FakeApi::listen`) the request came in on: 0 is `addr`.
    pub listener: usize,
    pub group: String,
    /// Plural resource, with `/status` for the subresource.
    pub resource: String,
    pub verb: String,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Change>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    down: bool,
    /// While set, every request gets a 500 (an error kube's client does not retry itself).
    failing: bool,
    /// Listeners that answer 503, as if that replica had lost its connection to the API.
    down_listeners: std::collections::HashSet<usize>,
    calls: Vec<Call>,
    /// Every write to an Ingress's status subresource.
    status_writes: Vec<StatusWrite>,
}

struct State {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
    /// Bumped to close every open watch.
    kill: watch::Sender<u64>,
}

#[derive(Debug, Clone)]
pub struct StatusWrite {
    pub listener: usize,
    pub namespace: String,
    pub name: String,
    pub status: Value,
}

pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<State>,
    listeners: std::sync::atomic::AtomicUsize,
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "ingresses" => "Ingress",
        "ingressclasses" => "IngressClass",
        "services" => "Service",
        "endpointslices" => "EndpointSlice",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "leases" => "Lease",
        "events" => "Event",
        "namespaces" => "Namespace",
        _ => "Unknown",
    }
}

fn group_of(gv: &str) -> &str {
    gv.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

fn gv_of<K: k8s_openapi::Resource>() -> String {
    K::API_VERSION.to_string()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("valid response")
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).expect("valid code"),
        &status(code, reason, message),
    )
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().expect("object");
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(k);
                } else {
                    merge(map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn pointer_parts(path: &str) -> Vec<String> {
    path.split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// RFC 6902 JSON patch: add, remove, replace, test.
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("patch is not a list")? {
        let kind = op["op"].as_str().ok_or("op without op")?;
        let path = op["path"].as_str().ok_or("op without path")?;
        let mut parts = pointer_parts(path);
        let last = parts.pop().ok_or("empty path")?;
        let mut parent = &mut *target;
        for p in &parts {
            parent = match parent {
                Value::Object(m) => m.get_mut(p).ok_or(format!("no {path}"))?,
                Value::Array(a) => a
                    .get_mut(p.parse::<usize>().map_err(|e| e.to_string())?)
                    .ok_or(format!("no {path}"))?,
                _ => return Err(format!("no {path}")),
            };
        }
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (kind, parent) {
            ("test", parent) => {
                let current = match parent {
                    Value::Object(m) => m.get(&last).cloned(),
                    Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i).cloned()),
                    _ => None,
                };
                if current != Some(value) {
                    return Err(format!("test failed at {path}"));
                }
            }
            ("add" | "replace", Value::Object(m)) => {
                if kind == "replace" && !m.contains_key(&last) {
                    return Err(format!("no {path}"));
                }
                m.insert(last, value);
            }
            ("add", Value::Array(a)) if last == "-" => a.push(value),
            ("add", Value::Array(a)) => {
                let i = last.parse::<usize>().map_err(|e| e.to_string())?;
                if i > a.len() {
                    return Err(format!("index out of range at {path}"));
                }
                a.insert(i, value);
            }
            ("replace", Value::Array(a)) => {
                let i = last.parse::<usize>().map_err(|e| e.to_string())?;
                *a.get_mut(i).ok_or(format!("no {path}"))? = value;
            }
            ("remove", Value::Object(m)) => {
                m.remove(&last).ok_or(format!("no {path}"))?;
            }
            ("remove", Value::Array(a)) => {
                let i = last.parse::<usize>().map_err(|e| e.to_string())?;
                if i >= a.len() {
                    return Err(format!("no {path}"));
                }
                a.remove(i);
            }
            (other, _) => return Err(format!("unsupported op {other} at {path}")),
        }
    }
    Ok(())
}

/// A parsed request path.
struct Target {
    gv: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segments.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [r] => (r, None, None),
        [r, n] => (r, Some(n.to_string()), None),
        [r, n, s] => (r, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(Target {
        gv,
        namespace,
        resource: resource.to_string(),
        name,
        subresource,
    })
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `fieldSelector` support for what controllers use: `metadata.name`, `metadata.namespace`
/// and top-level string fields such as a Secret's `type`, with `=`, `==` and `!=`.
fn fields_match(selector: Option<&String>, object: &Value) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (field, want, negate) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, false)
        } else {
            return true;
        };
        let pointer = format!("/{}", field.replace('.', "/"));
        let have = object
            .pointer(&pointer)
            .and_then(Value::as_str)
            .unwrap_or("");
        (have == want) != negate
    })
}

fn matches(key: &Key, target: &Target, namespace: &Option<String>) -> bool {
    key.gv == target.gv
        && key.resource == target.resource
        && namespace.as_ref().is_none_or(|ns| *ns == key.namespace)
}

impl Inner {
    fn record(
        &mut self,
        key: Key,
        kind: &'static str,
        object: Value,
        changes: &broadcast::Sender<Change>,
    ) {
        let change = Change {
            rv: self.rv,
            key,
            kind,
            object,
        };
        self.log.push(change.clone());
        let _ = changes.send(change);
    }

    /// Stores `object` at `key` with the next resourceVersion and tells the watches.
    fn put(&mut self, key: Key, mut object: Value, changes: &broadcast::Sender<Change>) -> Value {
        self.rv += 1;
        let kind = kind_of(&key.resource);
        let existed = self.objects.contains_key(&key);
        let meta = object
            .as_object_mut()
            .expect("object")
            .entry("metadata")
            .or_insert(json!({}));
        meta["resourceVersion"] = json!(self.rv.to_string());
        meta["name"] = json!(key.name);
        if !key.namespace.is_empty() {
            meta["namespace"] = json!(key.namespace);
        }
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!("uid-{}", self.rv));
        }
        if meta.get("creationTimestamp").is_none() {
            let ts = format!(
                "2026-01-01T00:{:02}:{:02}Z",
                (self.rv / 60) % 60,
                self.rv % 60
            );
            meta["creationTimestamp"] = json!(ts);
        }
        object["apiVersion"] = json!(key.gv);
        object["kind"] = json!(kind);
        self.objects.insert(key.clone(), object.clone());
        let event = if existed { "MODIFIED" } else { "ADDED" };
        self.record(key, event, object.clone(), changes);
        object
    }

    fn remove(&mut self, key: &Key, changes: &broadcast::Sender<Change>) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(key.clone(), "DELETED", object.clone(), changes);
        Some(object)
    }
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let (changes, _) = broadcast::channel(4096);
        let (kill, _) = watch::channel(0);
        let state = Arc::new(State {
            inner: Mutex::new(Inner::default()),
            changes,
            kill,
        });
        let mut api = FakeApi {
            addr: "127.0.0.1:0".parse().expect("address"),
            state,
            listeners: Default::default(),
        };
        api.addr = api.listen().await.1;
        api
    }

    /// Another port onto the same objects, so a test can tell replicas' requests apart.
    /// Returns its index in `Call::listener` and its address.
    pub async fn listen(&self) -> (usize, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API server");
        let addr = listener.local_addr().expect("local addr");
        let index = self
            .listeners
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let serving = self.state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, index, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (index, addr)
    }

    /// Writes a kubeconfig for this server to `path` (plain HTTP, no credentials).
    pub fn write_kubeconfig(&self, path: &Path) {
        write_kubeconfig(self.addr, path)
    }

    fn key<K: k8s_openapi::Resource>(namespace: &str, name: &str) -> Key {
        Key {
            gv: gv_of::<K>(),
            resource: K::URL_PATH_SEGMENT.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// Creates or replaces an object (its status included), as a controller-manager would.
    pub fn apply<
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
            + Serialize,
    >(
        &self,
        object: &K,
    ) {
        let meta = object.metadata();
        let key = Self::key::<K>(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().expect("object has a name"),
        );
        let mut value = serde_json::to_value(object).expect("serialise");
        let mut inner = self.state.inner.lock().expect("lock");
        // Keep server-owned metadata, as the API server does on update.
        if let Some(old) = inner.objects.get(&key) {
            for field in ["uid", "creationTimestamp"] {
                if let Some(v) = old["metadata"].get(field) {
                    value["metadata"][field] = v.clone();
                }
            }
        }
        inner.put(key, value, &self.state.changes);
    }

    pub fn delete<K: k8s_openapi::Resource>(&self, namespace: &str, name: &str) {
        let key = Self::key::<K>(namespace, name);
        let mut inner = self.state.inner.lock().expect("lock");
        inner.remove(&key, &self.state.changes);
    }

    pub fn get<K: k8s_openapi::Resource + serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        let key = Self::key::<K>(namespace, name);
        let inner = self.state.inner.lock().expect("lock");
        inner
            .objects
            .get(&key)
            .map(|v| serde_json::from_value(v.clone()).expect("stored object deserialises"))
    }

    /// Stores raw JSON (for objects that do not deserialise).
    pub fn apply_raw(&self, gv: &str, resource: &str, namespace: &str, name: &str, value: Value) {
        let key = Key {
            gv: gv.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.state
            .inner
            .lock()
            .expect("lock")
            .put(key, value, &self.state.changes);
    }

    /// Every status write to an Ingress, in order: (namespace, name, status).
    pub fn status_writes(&self) -> Vec<StatusWrite> {
        self.state.inner.lock().expect("lock").status_writes.clone()
    }

    pub fn status_writes_for(&self, namespace: &str, name: &str) -> Vec<Value> {
        self.status_writes()
            .into_iter()
            .filter(|w| w.namespace == namespace && w.name == name)
            .map(|w| w.status)
            .collect()
    }

    /// Every request made, as (group, resource, verb).
    pub fn calls(&self) -> Vec<Call> {
        self.state.inner.lock().expect("lock").calls.clone()
    }

    /// Objects of one resource, raw.
    pub fn list_raw(&self, gv: &str, resource: &str) -> Vec<Value> {
        let inner = self.state.inner.lock().expect("lock");
        inner
            .objects
            .iter()
            .filter(|(k, _)| k.gv == gv && k.resource == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Closes every open watch connection, as a load balancer or API server restart would.
    pub fn drop_watches(&self) {
        self.state.kill.send_modify(|g| *g += 1);
    }

    /// Forgets history: a watch resuming from any resourceVersion seen so far gets 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.state.inner.lock().expect("lock");
        inner.compacted = inner.rv + 1;
        inner.log.clear();
    }

    /// Cuts one listener off (503 to everything), as a replica losing the API would see it.
    pub fn set_listener_down(&self, listener: usize, down: bool) {
        let mut inner = self.state.inner.lock().expect("lock");
        if down {
            inner.down_listeners.insert(listener);
        } else {
            inner.down_listeners.remove(&listener);
        }
        drop(inner);
        if down {
            self.drop_watches();
        }
    }

    /// While failing, every request gets 500 and open watches close. Unlike 503 (which kube's
    /// client retries itself for minutes), a 500 reaches the watchers as an error at once.
    pub fn set_failing(&self, failing: bool) {
        self.state.inner.lock().expect("lock").failing = failing;
        if failing {
            self.drop_watches();
        }
    }

    /// While down, every request gets 503 and open watches close.
    pub fn set_down(&self, down: bool) {
        self.state.inner.lock().expect("lock").down = down;
        if down {
            self.drop_watches();
        }
    }
}

/// A kubeconfig for the server at `addr` (plain HTTP, no credentials).
pub fn write_kubeconfig(addr: SocketAddr, path: &Path) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: portico}}\ncurrent-context: fake\n",
        addr
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

fn verb(method: &Method, target: &Target, watching: bool) -> &'static str {
    match (method, target.name.is_some()) {
        (&Method::GET, false) if watching => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "unknown",
    }
}

async fn handle(state: Arc<State>, listener: usize, req: Request<Incoming>) -> Response<Body> {
    let Some(target) = parse_path(req.uri().path()) else {
        return error(404, "NotFound", "unknown path");
    };
    let q = query(&req);
    let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let method = req.method().clone();
    {
        let mut inner = state.inner.lock().expect("lock");
        if inner.down || inner.down_listeners.contains(&listener) {
            return error(503, "ServiceUnavailable", "the fake API server is down");
        }
        if inner.failing {
            return error(500, "InternalError", "the fake API server is failing");
        }
        let resource = match &target.subresource {
            Some(s) => format!("{}/{s}", target.resource),
            None => target.resource.clone(),
        };
        inner.calls.push(Call {
            listener,
            group: group_of(&target.gv).to_string(),
            resource,
            verb: verb(&method, &target, watching).to_string(),
        });
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "BadRequest", "unreadable body"),
    };
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => return error(400, "BadRequest", &format!("body is not JSON: {e}")),
        }
    };
    let namespace = target.namespace.clone();
    let key = |name: &str| Key {
        gv: target.gv.clone(),
        resource: target.resource.clone(),
        namespace: namespace.clone().unwrap_or_default(),
        name: name.to_string(),
    };
    match (method, target.name.clone()) {
        (Method::GET, None) if watching => watch_response(state, target, q),
        (Method::GET, None) => {
            let inner = state.inner.lock().expect("lock");
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|(k, v)| {
                    matches(k, &target, &namespace) && fields_match(q.get("fieldSelector"), v)
                })
                .map(|(_, v)| v.clone())
                .collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "apiVersion": target.gv,
                    "kind": format!("{}List", kind_of(&target.resource)),
                    "metadata": {"resourceVersion": inner.rv.to_string()},
                    "items": items,
                }),
            )
        }
        (Method::GET, Some(name)) => {
            let inner = state.inner.lock().expect("lock");
            match inner.objects.get(&key(&name)) {
                Some(v) => json_response(StatusCode::OK, v),
                None => error(
                    404,
                    "NotFound",
                    &format!("{} {name} not found", target.resource),
                ),
            }
        }
        (Method::POST, None) => {
            let Some(mut object) = parsed else {
                return error(400, "BadRequest", "no body");
            };
            let name = match object["metadata"]["name"].as_str() {
                Some(n) => n.to_string(),
                None => match object["metadata"]["generateName"].as_str() {
                    Some(prefix) => format!("{prefix}{:05x}", fastrand::u32(..0xfffff)),
                    None => return error(422, "Invalid", "metadata.name is required"),
                },
            };
            object["metadata"]["name"] = json!(name);
            let mut inner = state.inner.lock().expect("lock");
            if inner.objects.contains_key(&key(&name)) {
                return error(409, "AlreadyExists", &format!("{name} already exists"));
            }
            let stored = inner.put(key(&name), object, &state.changes);
            json_response(StatusCode::CREATED, &stored)
        }
        (Method::PUT, Some(name)) => {
            let Some(mut object) = parsed else {
                return error(400, "BadRequest", "no body");
            };
            let mut inner = state.inner.lock().expect("lock");
            let Some(old) = inner.objects.get(&key(&name)).cloned() else {
                return error(404, "NotFound", &format!("{name} not found"));
            };
            let sent_rv = object["metadata"]["resourceVersion"].as_str();
            if sent_rv.is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str()) {
                return error(409, "Conflict", "the object has been modified");
            }
            for field in ["uid", "creationTimestamp"] {
                object["metadata"][field] = old["metadata"][field].clone();
            }
            if target.subresource.as_deref() == Some("status") {
                let mut updated = old.clone();
                updated["status"] = object["status"].clone();
                object = updated;
                record_status(&mut inner, listener, &target, &name, &object);
            }
            let stored = inner.put(key(&name), object, &state.changes);
            json_response(StatusCode::OK, &stored)
        }
        (Method::PATCH, Some(name)) => {
            let Some(patch) = parsed else {
                return error(400, "BadRequest", "no body");
            };
            let mut inner = state.inner.lock().expect("lock");
            let Some(old) = inner.objects.get(&key(&name)).cloned() else {
                return error(404, "NotFound", &format!("{name} not found"));
            };
            let mut object = old.clone();
            if content_type.starts_with("application/json-patch+json") {
                if let Err(e) = json_patch(&mut object, &patch) {
                    return error(422, "Invalid", &e);
                }
            } else {
                // merge-patch, and strategic merge / apply treated as merge (enough here).
                merge(&mut object, &patch);
            }
            if target.subresource.as_deref() == Some("status") {
                let mut updated = old.clone();
                updated["status"] = object["status"].clone();
                object = updated;
                record_status(&mut inner, listener, &target, &name, &object);
            }
            let stored = inner.put(key(&name), object, &state.changes);
            json_response(StatusCode::OK, &stored)
        }
        (Method::DELETE, Some(name)) => {
            let mut inner = state.inner.lock().expect("lock");
            match inner.remove(&key(&name), &state.changes) {
                Some(v) => json_response(StatusCode::OK, &v),
                None => error(404, "NotFound", &format!("{name} not found")),
            }
        }
        _ => error(405, "MethodNotAllowed", "method not allowed"),
    }
}

fn record_status(inner: &mut Inner, listener: usize, target: &Target, name: &str, object: &Value) {
    if target.resource == "ingresses" {
        inner.status_writes.push(StatusWrite {
            listener,
            namespace: target.namespace.clone().unwrap_or_default(),
            name: name.to_string(),
            status: object["status"].clone(),
        });
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A watch: the changes after `resourceVersion` from the log, then live ones, with a bookmark
/// every 200 ms when asked for, until `timeoutSeconds`, a kill, or the client leaving.
fn watch_response(
    state: Arc<State>,
    target: Target,
    q: BTreeMap<String, String>,
) -> Response<Body> {
    let namespace = target.namespace.clone();
    let selector = q.get("fieldSelector").cloned();
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(300);
    let since: Option<u64> = q
        .get("resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .filter(|rv| *rv > 0);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let kind = kind_of(&target.resource);
    let gv = target.gv.clone();
    let relevant = move |change: &Change| {
        matches(&change.key, &target, &namespace) && fields_match(selector.as_ref(), &change.object)
    };
    let (backlog, mut live, mut kill, mut seen) = {
        let inner = state.inner.lock().expect("lock");
        let backlog: Result<Vec<Bytes>, ()> = match since {
            Some(rv) if rv < inner.compacted => Err(()),
            Some(rv) => Ok(inner
                .log
                .iter()
                .filter(|c| c.rv > rv && relevant(c))
                .map(|c| event_line(c.kind, &c.object))
                .collect()),
            None => Ok(inner
                .objects
                .iter()
                .map(|(k, v)| Change {
                    rv: 0,
                    key: k.clone(),
                    kind: "ADDED",
                    object: v.clone(),
                })
                .filter(|c| relevant(c))
                .map(|c| event_line("ADDED", &c.object))
                .collect()),
        };
        // Subscribe under the lock so nothing falls between the backlog and the live feed.
        (
            backlog,
            state.changes.subscribe(),
            state.kill.subscribe(),
            inner.rv,
        )
    };
    match backlog {
        Err(()) => {
            // What a real API server does for a compacted resourceVersion: 200 and one ERROR.
            let gone = status(410, "Expired", "too old resource version");
            let _ = tx.try_send(event_line("ERROR", &gone));
        }
        Ok(lines) => {
            tokio::spawn(async move {
                for line in lines {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                kill.borrow_and_update();
                let deadline = tokio::time::sleep(Duration::from_secs(timeout));
                tokio::pin!(deadline);
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    let line = tokio::select! {
                        // A kill wins over pending changes: they must reach the client through
                        // its resumed watch (or its relist), which is what tests exercise.
                        biased;
                        _ = kill.changed() => return,
                        change = live.recv() => match change {
                            Ok(change) => {
                                // A bookmark never claims a version this stream has not passed.
                                seen = change.rv;
                                if !relevant(&change) {
                                    continue;
                                }
                                event_line(change.kind, &change.object)
                            }
                            // Fell behind: end the watch; the client resumes from its last rv.
                            Err(_) => return,
                        },
                        _ = tick.tick(), if bookmarks => event_line("BOOKMARK", &json!({
                            "apiVersion": gv, "kind": kind,
                            "metadata": {"resourceVersion": seen.to_string()}
                        })),
                        _ = &mut deadline => return,
                    };
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(body).boxed())
        .expect("valid response")
}
