//! `deploy/`: every overlay renders offline with `kubectl kustomize`, parses into k8s-openapi
//! types, passes Portico's own flag validation, names a Service and IngressClass it defines,
//! and grants RBAC for every API call Portico makes (`portico::status::API_CALLS`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodTemplateSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

const OVERLAYS: &[&str] = &[
    "loadbalancer",
    "internal-loadbalancer",
    "nodeport",
    "hostport",
];

#[derive(Default)]
struct Rendered {
    namespaces: Vec<Namespace>,
    accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
    services: Vec<Service>,
    classes: Vec<IngressClass>,
    config_maps: Vec<ConfigMap>,
    deployments: Vec<Deployment>,
    daemonsets: Vec<DaemonSet>,
    budgets: Vec<PodDisruptionBudget>,
}

fn typed<T: DeserializeOwned>(value: Value, kind: &str) -> T {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{kind} does not parse: {e}"))
}

/// Whether kubectl runs here. CI (`.ci/run`) installs it and sets PORTICO_REQUIRE_KUBECTL.
fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("PORTICO_REQUIRE_KUBECTL").is_none(),
            "kubectl is required (PORTICO_REQUIRE_KUBECTL is set)"
        );
        eprintln!("kubectl not found: skipping the kustomize render (.ci/run installs it)");
    }
    ok
}

fn render(overlay: &str) -> Rendered {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/overlays")
        .join(overlay);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {overlay} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let mut rendered = Rendered::default();
    for value in serde_saphyr::from_multiple::<Value>(&text).expect("YAML parses") {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" => rendered.namespaces.push(typed(value, &kind)),
            "ServiceAccount" => rendered.accounts.push(typed(value, &kind)),
            "ClusterRole" => rendered.cluster_roles.push(typed(value, &kind)),
            "ClusterRoleBinding" => rendered.cluster_bindings.push(typed(value, &kind)),
            "Role" => rendered.roles.push(typed(value, &kind)),
            "RoleBinding" => rendered.bindings.push(typed(value, &kind)),
            "Service" => rendered.services.push(typed(value, &kind)),
            "IngressClass" => rendered.classes.push(typed(value, &kind)),
            "ConfigMap" => rendered.config_maps.push(typed(value, &kind)),
            "Deployment" => rendered.deployments.push(typed(value, &kind)),
            "DaemonSet" => rendered.daemonsets.push(typed(value, &kind)),
            "PodDisruptionBudget" => rendered.budgets.push(typed(value, &kind)),
            other => panic!("{overlay}: unexpected kind {other:?}"),
        }
    }
    rendered
}

fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        let has = |list: &Option<Vec<String>>, want: &str| {
            list.as_ref()
                .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
        };
        r.api_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|x| x == group || x == "*"))
            && has(&r.resources, resource)
            && r.verbs.iter().any(|v| v == verb || v == "*")
    })
}

/// `--flag=value` and `--flag value` arguments as a map.
fn flags(args: &[String]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        if let Some((flag, value)) = args[i].split_once('=') {
            map.insert(flag.to_string(), value.to_string());
        } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
            map.insert(args[i].clone(), args[i + 1].clone());
            i += 1;
        } else {
            map.insert(args[i].clone(), "true".into());
        }
        i += 1;
    }
    map
}

/// Checks what every overlay must have; returns the workload's namespace and pod template.
fn check_common(overlay: &str, r: &Rendered) -> (String, PodTemplateSpec) {
    assert_eq!(r.namespaces.len(), 1, "{overlay}: one Namespace");
    let (namespace, template) = match (&r.deployments[..], &r.daemonsets[..]) {
        ([d], []) => (d.metadata.namespace.clone(), d.spec.template.clone()),
        ([], [d]) => (d.metadata.namespace.clone(), d.spec.template.clone()),
        _ => panic!("{overlay}: exactly one Deployment or DaemonSet"),
    };
    let namespace = namespace.expect("workload namespace");
    let pod = template.spec.as_ref().expect("pod spec");
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();

    // The args are flags Portico accepts, in kube mode.
    let config = portico::config::Args::try_parse_from(
        std::iter::once("portico".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("{overlay}: args rejected: {e}"))
    .validate()
    .unwrap_or_else(|e| panic!("{overlay}: args invalid: {e}"));
    assert!(matches!(
        config.source,
        portico::config::SourceConfig::Kube(_)
    ));
    let flags = flags(&args);

    // --publish-service names a Service this overlay defines, and it selects these pods.
    let publish = flags
        .get("--publish-service")
        .expect("--publish-service set");
    let (ns, name) = publish.split_once('/').expect("NAMESPACE/NAME");
    let service = r
        .services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("{overlay}: --publish-service {publish} is not defined"));
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .expect("selector");
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{overlay}: Service selects the pods"
    );
    let ports: Vec<String> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    for port in service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
    {
        let target = serde_json::to_value(&port.target_port).expect("serialise");
        assert!(
            ports.iter().any(|p| target == p.as_str()),
            "{overlay}: Service port {} targets a named container port",
            port.port
        );
    }

    // --ingress-class names an IngressClass defined here whose controller is ours.
    let class_name = flags.get("--ingress-class").expect("--ingress-class set");
    let class = r
        .classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class_name))
        .unwrap_or_else(|| panic!("{overlay}: IngressClass {class_name} is not defined"));
    assert_eq!(
        class.spec.as_ref().and_then(|s| s.controller.as_deref()),
        Some(config.translate.controller_name.as_str()),
        "{overlay}: the IngressClass's controller is Portico's --controller-name"
    );

    // RBAC: every call, bound to the pod's ServiceAccount; Leases only in its own namespace.
    let account = pod
        .service_account_name
        .clone()
        .expect("serviceAccountName");
    assert!(r
        .accounts
        .iter()
        .any(|a| a.metadata.name.as_deref() == Some(&account)
            && a.metadata.namespace.as_deref() == Some(&namespace)));
    let binds_us = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == account
                && s.namespace.as_deref() == Some(namespace.as_str())
        })
    };
    let cluster_rules: Vec<PolicyRule> = r
        .cluster_bindings
        .iter()
        .filter(|b| binds_us(&b.subjects) && b.role_ref.kind == "ClusterRole")
        .filter_map(|b| {
            r.cluster_roles
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(&b.role_ref.name))
        })
        .flat_map(|c| c.rules.clone().unwrap_or_default())
        .collect();
    let own_rules: Vec<PolicyRule> = r
        .bindings
        .iter()
        .filter(|b| binds_us(&b.subjects) && b.metadata.namespace.as_deref() == Some(&namespace))
        .filter_map(|b| {
            r.roles.iter().find(|ro| {
                ro.metadata.name.as_deref() == Some(&b.role_ref.name)
                    && ro.metadata.namespace.as_deref() == Some(&namespace)
            })
        })
        .flat_map(|ro| ro.rules.clone().unwrap_or_default())
        .collect();
    for (group, resource, verb) in portico::status::API_CALLS {
        let rules = if *resource == "leases" {
            &own_rules
        } else {
            &cluster_rules
        };
        assert!(
            allows(rules, group, resource, verb),
            "{overlay}: RBAC lacks {verb} {group}/{resource}"
        );
    }
    assert!(
        !allows(&cluster_rules, "coordination.k8s.io", "leases", "update"),
        "{overlay}: Leases cluster-wide"
    );
    assert!(
        !allows(&cluster_rules, "", "secrets", "get"),
        "{overlay}: no secret reads beyond list/watch"
    );
    // ConfigMaps: read through the watch only, never written (`ingress-nginx.md` §6).
    for verb in ["get", "create", "update", "patch", "delete"] {
        assert!(
            !allows(&cluster_rules, "", "configmaps", verb)
                && !allows(&own_rules, "", "configmaps", verb),
            "{overlay}: configmaps {verb} is more than Portico needs"
        );
    }
    // --configmap names the controller ConfigMap this overlay ships.
    let configmap = flags.get("--configmap").expect("--configmap set");
    let (cns, cname) = configmap.split_once('/').expect("NAMESPACE/NAME");
    assert!(
        r.config_maps
            .iter()
            .any(|c| c.metadata.namespace.as_deref() == Some(cns)
                && c.metadata.name.as_deref() == Some(cname)),
        "{overlay}: --configmap {configmap} is not defined"
    );

    // Hardening and probes.
    let security = container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let drop = security
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.clone())
        .unwrap_or_default();
    assert_eq!(drop, vec!["ALL".to_string()]);
    assert_eq!(
        pod.security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );
    assert!(
        container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .is_some(),
        "{overlay}: preStop"
    );
    let env: Vec<_> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(env.contains(&"POD_NAMESPACE") && env.contains(&"POD_NAME"));
    (namespace, template)
}

fn publish_service(r: &Rendered) -> &Service {
    r.services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("portico"))
        .expect("Service portico")
}

#[test]
fn every_overlay_renders_and_is_consistent() {
    if !kubectl_available() {
        return;
    }
    for overlay in OVERLAYS {
        let r = render(overlay);
        check_common(overlay, &r);
        let service = publish_service(&r).spec.clone().expect("spec");
        let ports: Vec<(i32, Option<i32>)> = service
            .ports
            .iter()
            .flatten()
            .map(|p| (p.port, p.node_port))
            .collect();
        match *overlay {
            "loadbalancer" | "internal-loadbalancer" => {
                assert_eq!(service.type_.as_deref(), Some("LoadBalancer"));
                assert_eq!(service.external_traffic_policy.as_deref(), Some("Local"));
                assert_eq!(ports.iter().map(|p| p.0).collect::<Vec<_>>(), vec![80, 443]);
                let annotation = publish_service(&r)
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| {
                        a.get("service.beta.kubernetes.io/openstack-internal-load-balancer")
                            .cloned()
                    });
                let internal = *overlay == "internal-loadbalancer";
                assert_eq!(
                    annotation.as_deref(),
                    internal.then_some("true"),
                    "{overlay}"
                );
            }
            "nodeport" => {
                assert_eq!(service.type_.as_deref(), Some("NodePort"));
                assert!(ports.iter().all(|p| p.1.is_some()));
            }
            "hostport" => {
                let ds = &r.daemonsets[0];
                let pod = ds.spec.template.spec.clone().unwrap();
                let host_ports: Vec<_> = pod.containers[0]
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| p.host_port)
                    .collect();
                assert_eq!(host_ports, vec![80, 443]);
                assert!(
                    r.budgets.is_empty(),
                    "no PodDisruptionBudget for a DaemonSet"
                );
            }
            _ => unreachable!(),
        }
        if *overlay != "hostport" {
            let d = &r.deployments[0].spec;
            assert_eq!(d.replicas, Some(2), "{overlay}");
            assert_eq!(r.budgets.len(), 1, "{overlay}: PodDisruptionBudget");
            assert!(d
                .template
                .spec
                .as_ref()
                .unwrap()
                .topology_spread_constraints
                .is_some());
        }
    }
}
