//! Backend resolution (spec §4.1, §4.2, §4.5, §4.6): an Ingress backend reference plus the
//! snapshot's Services and EndpointSlices become a shared `Arc<Backend>`.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressBackend;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::paths::is_dns1123_subdomain;
use super::{Options, Reason};
use crate::routing::{Backend, BackendRef, PortRef, Target, Unavailable};

/// The label linking an EndpointSlice to its Service (spec §1.4, §4.2 step 1).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A problem found while resolving a backend; becomes a condition on every Ingress using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    fn new(reason: Reason, message: String) -> Option<Problem> {
        Some(Problem { reason, message })
    }
}

/// A resolved backend and what is wrong with it, if anything.
pub type Resolved = (Arc<Backend>, Option<Problem>);

/// Services or EndpointSlices by `(namespace, name)` (slices by the Service their label
/// names), as the incremental state keeps them from one translate to the next.
pub type Index<T> = HashMap<(String, String), Vec<Arc<T>>>;

/// Resolves backend references against one snapshot, sharing one `Arc` per distinct reference.
pub struct Backends<'a> {
    options: &'a Options,
    /// `(namespace, name)` → Service; looked up only for the backends resolved now, so a
    /// translate that resolves few pays for few (issue 11).
    services: &'a Index<Service>,
    /// `(namespace, service-name label)` → slices.
    slices: &'a Index<EndpointSlice>,
    cache: HashMap<BackendRef, Resolved>,
}

impl<'a> Backends<'a> {
    /// `services` and `slices` index the snapshot's objects (`incremental::State` keeps them
    /// up to date); `cache` holds resolutions still valid for them (see
    /// `incremental::State::changes`); [`Backends::into_cache`] gives it back.
    pub fn new(
        services: &'a Index<Service>,
        slices: &'a Index<EndpointSlice>,
        options: &'a Options,
        cache: HashMap<BackendRef, Resolved>,
    ) -> Self {
        Backends {
            options,
            services,
            slices,
            cache,
        }
    }

    /// The Service `namespace/name`. Two Services with one name cannot exist in a cluster;
    /// should a source deliver them, the one with the smaller serialised form is used, so the
    /// input order is moot.
    fn find_service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        let group = self
            .services
            .get(&(namespace.to_string(), name.to_string()))?;
        match group.as_slice() {
            [one] => Some(one),
            many => many
                .iter()
                .min_by(|a, b| canonical(a.as_ref()).cmp(&canonical(b.as_ref())))
                .map(|s| s.as_ref()),
        }
    }

    /// The resolutions made so far, for the next translate.
    pub fn into_cache(self) -> HashMap<BackendRef, Resolved> {
        self.cache
    }

    /// The backend for a reference resolved before (by [`Backends::resolve`]), resolved again
    /// if its Service or slices changed since.
    pub fn again(&mut self, reference: &BackendRef) -> Arc<Backend> {
        match self.cache.get(reference) {
            Some(hit) => hit.0.clone(),
            None => self.service(reference.clone()).0,
        }
    }

    /// Resolves an Ingress backend in the Ingress's namespace.
    pub fn resolve(&mut self, namespace: &str, backend: &IngressBackend) -> Resolved {
        match (&backend.service, &backend.resource) {
            (Some(service), None) => {
                let port = service.port.as_ref();
                let number = port.and_then(|p| p.number);
                let name = port
                    .and_then(|p| p.name.as_deref())
                    .filter(|n| !n.is_empty());
                let port = match (number, name) {
                    (Some(n), None) => match u16::try_from(n) {
                        Ok(n) if n > 0 => Ok(PortRef::Number(n)),
                        _ => Err(format!("service port number {n} is out of range")),
                    },
                    (None, Some(name)) => Ok(PortRef::Name(name.to_string())),
                    (Some(_), Some(_)) => {
                        Err("service port has both a number and a name".to_string())
                    }
                    (None, None) => Err("service port has neither a number nor a name".to_string()),
                };
                let port = match port {
                    Ok(port) if !service.name.is_empty() => port,
                    Ok(_) => return invalid(namespace, "", "service name is empty".to_string()),
                    Err(message) => return invalid(namespace, &service.name, message),
                };
                self.service(BackendRef::Service {
                    namespace: namespace.to_string(),
                    name: service.name.clone(),
                    port,
                })
            }
            (None, Some(resource)) => {
                // spec §4.6: typed resource backends are never served.
                let reference = BackendRef::Resource {
                    namespace: namespace.to_string(),
                    kind: resource.kind.clone(),
                    name: resource.name.clone(),
                };
                let message = format!(
                    "resource backend {}/{} is not supported",
                    resource.kind, resource.name
                );
                self.cache
                    .entry(reference.clone())
                    .or_insert_with(|| {
                        (
                            Arc::new(Backend::new(
                                reference,
                                Target::Unavailable(Unavailable::ResourceBackendUnsupported),
                            )),
                            Problem::new(Reason::ResourceBackendUnsupported, message),
                        )
                    })
                    .clone()
            }
            (Some(service), Some(_)) => invalid(
                namespace,
                &service.name,
                "backend sets both service and resource".to_string(),
            ),
            (None, None) => invalid(
                namespace,
                "",
                "backend sets neither service nor resource".to_string(),
            ),
        }
    }

    /// The controller-configured default Service (spec §3.7 step 2), on its first port.
    pub fn default_service(&mut self, namespace: &str, name: &str) -> Arc<Backend> {
        let first_port = self
            .find_service(namespace, name)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first());
        let port = match first_port {
            Some(sp) => match sp.name.as_deref().filter(|n| !n.is_empty()) {
                Some(port_name) => PortRef::Name(port_name.to_string()),
                None => PortRef::Number(u16::try_from(sp.port).unwrap_or(0)),
            },
            // Service missing, or without ports: resolution reports which.
            None => PortRef::Number(0),
        };
        self.service(BackendRef::Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port,
        })
        .0
    }

    fn service(&mut self, reference: BackendRef) -> Resolved {
        if let Some(hit) = self.cache.get(&reference) {
            return hit.clone();
        }
        let (target, problem) = match &reference {
            BackendRef::Service {
                namespace,
                name,
                port,
            } => self.service_target(namespace, name, port),
            BackendRef::Resource { .. } => (
                Target::Unavailable(Unavailable::ResourceBackendUnsupported),
                None,
            ),
        };
        let mut backend = Backend::new(reference.clone(), target);
        backend.app_protocol = self.app_protocol(&reference);
        let resolved = (Arc::new(backend), problem);
        self.cache.insert(reference, resolved.clone());
        resolved
    }

    /// `service-upstream`: the referenced Service's ClusterIP and Service port (not the
    /// target port), ingress-nginx's `getServiceClusterEndpoint`; why not, when it has none
    /// (headless, ExternalName, missing Service or port).
    pub fn cluster_endpoint(&self, reference: &BackendRef) -> Result<SocketAddr, String> {
        let BackendRef::Service {
            namespace,
            name,
            port,
        } = reference
        else {
            return Err("the backend is not a Service".to_string());
        };
        let service = self
            .find_service(namespace, name)
            .ok_or_else(|| format!("service {namespace}/{name} not found"))?;
        let spec = service.spec.as_ref();
        let ip = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .ok_or_else(|| format!("service {namespace}/{name} has no ClusterIP"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("service {namespace}/{name} has an unusable ClusterIP {ip:?}"))?;
        let service_port = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .find(|sp| match port {
                PortRef::Number(n) => sp.port == i32::from(*n),
                PortRef::Name(n) => sp.name.as_deref() == Some(n.as_str()),
            })
            .ok_or_else(|| format!("port {port} not found on service {namespace}/{name}"))?;
        let number = u16::try_from(service_port.port)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("port {port} of service {namespace}/{name} is out of range"))?;
        Ok(SocketAddr::new(ip, number))
    }

    /// The `appProtocol` of the referenced Service port, when Portico speaks it.
    fn app_protocol(&self, reference: &BackendRef) -> Option<crate::routing::Protocol> {
        let BackendRef::Service {
            namespace,
            name,
            port,
        } = reference
        else {
            return None;
        };
        let service = self.find_service(namespace, name)?;
        service
            .spec
            .as_ref()?
            .ports
            .as_ref()?
            .iter()
            .find(|sp| match port {
                PortRef::Number(n) => sp.port == i32::from(*n),
                PortRef::Name(n) => sp.name.as_deref() == Some(n.as_str()),
            })?
            .app_protocol
            .as_deref()
            .and_then(crate::routing::Protocol::from_app_protocol)
    }

    fn service_target(
        &self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> (Target, Option<Problem>) {
        // spec §4.1 step 1.
        let Some(service) = self.find_service(namespace, name) else {
            return (
                Target::Unavailable(Unavailable::ServiceNotFound),
                Problem::new(
                    Reason::ServiceNotFound,
                    format!("service {namespace}/{name} not found"),
                ),
            );
        };
        let spec = service.spec.as_ref();
        // spec §4.1 step 2: by number the ServicePort's `port`, by name its `name`.
        let service_port = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .find(|sp| match port {
                PortRef::Number(n) => sp.port == i32::from(*n),
                PortRef::Name(n) => sp.name.as_deref() == Some(n.as_str()),
            });
        let Some(service_port) = service_port else {
            return (
                Target::Unavailable(Unavailable::ServicePortNotFound),
                Problem::new(
                    Reason::ServicePortNotFound,
                    format!("port {port} not found on service {namespace}/{name}"),
                ),
            );
        };
        let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
        if protocol != "TCP" {
            return (
                Target::Unavailable(Unavailable::ServicePortNotFound),
                Problem::new(
                    Reason::ServicePortNotTcp,
                    format!("port {port} of service {namespace}/{name} is {protocol}, not TCP"),
                ),
            );
        }
        // spec §4.1 step 3.
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            let external = spec.and_then(|s| s.external_name.as_deref());
            return self.external_name(namespace, name, external, service_port);
        }
        let slices: Vec<&EndpointSlice> = self
            .slices
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .map(|s| s.as_ref())
            .collect();
        (endpoints(&slices, service_port, self.options.ipv6), None)
    }

    /// spec §4.5.
    fn external_name(
        &self,
        namespace: &str,
        name: &str,
        external: Option<&str>,
        service_port: &ServicePort,
    ) -> (Target, Option<Problem>) {
        if !self.options.external_name {
            return (
                Target::Unavailable(Unavailable::ExternalNameDisabled),
                Problem::new(
                    Reason::ExternalNameDisabled,
                    format!("service {namespace}/{name} is ExternalName and ExternalName support is disabled"),
                ),
            );
        }
        let raw = external.unwrap_or_default();
        let host = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        let port = match &service_port.target_port {
            Some(IntOrString::Int(n)) if *n != 0 => *n,
            _ => service_port.port,
        };
        let rejected = rejection(&host).or_else(|| match u16::try_from(port) {
            Ok(p) if p > 0 => None,
            _ => Some("its port is out of range"),
        });
        if let Some(why) = rejected {
            return (
                Target::Unavailable(Unavailable::ExternalNameRejected),
                Problem::new(
                    Reason::ExternalNameRejected,
                    format!("service {namespace}/{name}: external name {raw:?} rejected: {why}"),
                ),
            );
        }
        let port = u16::try_from(port).unwrap_or_default();
        (Target::ExternalName { host, port }, None)
    }
}

/// Why an ExternalName target may not be dialled (spec §4.5), for a lowercased name without
/// its trailing dot.
fn rejection(host: &str) -> Option<&'static str> {
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("localhost");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            // IPv4-mapped (`::ffff:127.0.0.1`) is judged as the IPv4 address it carries.
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        let bad = match (v4, ip) {
            (Some(v4), _) => bad_v4(v4),
            (None, IpAddr::V6(v6)) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
            (None, IpAddr::V4(_)) => false,
        };
        return bad.then_some("loopback, link-local or unspecified address");
    }
    if !is_dns1123_subdomain(host) {
        return Some("not a DNS-1123 subdomain");
    }
    None
}

fn bad_v4(v4: Ipv4Addr) -> bool {
    v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
}

/// The endpoint set of one Service port (spec §4.2).
fn endpoints(slices: &[&EndpointSlice], service_port: &ServicePort, ipv6: bool) -> Target {
    let port_name = service_port.name.as_deref().unwrap_or_default();
    let mut active = BTreeSet::new();
    let mut draining = BTreeSet::new();
    for slice in slices {
        // spec §4.2 step 2: FQDN (and anything unknown) is skipped; IPv6 only when enabled.
        let is_v6 = match slice.address_type.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            _ => continue,
        };
        if is_v6 && !ipv6 {
            continue;
        }
        // spec §4.2 step 3: the port comes from the slice, by Service port name.
        let port = match slice.ports.as_deref() {
            Some(ports) if !ports.is_empty() => ports
                .iter()
                .find(|p| {
                    p.name.as_deref().unwrap_or_default() == port_name
                        && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                        && p.port.is_some()
                })
                .and_then(|p| p.port),
            // A slice without ports uses a numeric targetPort (CONV, ingress-nginx). A missing
            // targetPort is what the API server defaults to `port`, so it counts as that number.
            _ => match &service_port.target_port {
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::String(_)) => None,
                None => Some(service_port.port),
            },
        };
        let Some(port) = port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            // spec §4.2 step 4: only the first address has defined meaning.
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            if ip.is_ipv6() && !ipv6 {
                continue;
            }
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let addr = SocketAddr::new(ip, port);
            if ready {
                active.insert(addr);
            } else if serving && terminating {
                draining.insert(addr);
            }
        }
    }
    // spec §4.2 steps 5–7: ready endpoints, else the drain fallback, else none.
    let chosen = if active.is_empty() { draining } else { active };
    if chosen.is_empty() {
        Target::Unavailable(Unavailable::NoEndpoints)
    } else {
        Target::Endpoints(chosen.into_iter().collect())
    }
}

/// A malformed backend reference (spec §1.1): kept as a route that answers 503, so a request
/// meant for it never reaches some other, shorter route instead.
fn invalid(namespace: &str, name: &str, message: String) -> Resolved {
    let reference = BackendRef::Service {
        namespace: namespace.to_string(),
        name: name.to_string(),
        port: PortRef::Number(0),
    };
    (
        Arc::new(Backend::new(
            reference,
            Target::Unavailable(Unavailable::ServiceNotFound),
        )),
        Problem::new(Reason::InvalidBackend, message),
    )
}

/// A total order on objects that have no `Ord`: their JSON form. Only used to break ties
/// between duplicates, which a real cluster never produces.
pub fn canonical<T: serde::Serialize>(object: &T) -> String {
    serde_json::to_string(object).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_name_rejections() {
        for bad in [
            "localhost",
            "foo.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.0.1",
            "foo_bar.com",
            "",
            "-a.com",
        ] {
            assert!(rejection(bad).is_some(), "{bad}");
        }
        for good in ["example.com", "10.0.0.1", "2001:db8::1", "db.prod.svc"] {
            assert_eq!(rejection(good), None, "{good}");
        }
    }
}
