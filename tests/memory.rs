//! Heap held per Ingress by translate's state (issue 11 item 4): the live bytes a
//! `translate::Cache` keeps after translating 1,000 Ingresses shaped like `bench/scale`'s (one
//! host, three paths, a Service and a 4-endpoint EndpointSlice each), counted by a wrapper of
//! the system allocator. The bound leaves ~8 % for toolchain and hash-table changes; a
//! regression like one default `Policy` per backend (576 bytes per Ingress) exceeds it.
//! `scale heap` (bench/scale.rs) prints the same count by holder; docs/performance.md has it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 1000;

fn app(i: usize) -> String {
    let mut s = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app{i}\n  namespace: bench\nspec:\n  ingressClassName: portico\n  rules:\n  - host: app{i}.example\n    http:\n      paths:\n"
    );
    for (path, kind) in [("/", "Prefix"), ("/api", "Prefix"), ("/healthz", "Exact")] {
        s += &format!("      - path: {path}\n        pathType: {kind}\n        backend:\n          service:\n            name: app{i}\n            port:\n              number: 80\n");
    }
    s += &format!("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app{i}\n  namespace: bench\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: app{i}-abcde\n  namespace: bench\n  labels:\n    kubernetes.io/service-name: app{i}\naddressType: IPv4\nports:\n- name: http\n  port: 8080\nendpoints:\n");
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        s += &format!("- addresses: [\"{ip}\"]\n");
    }
    s
}

#[test]
fn translate_state_stays_under_4100_bytes_per_ingress() {
    let mut loaded = portico::source::files::Loaded::default();
    portico::source::files::parse_documents(
        "class.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: portico\nspec:\n  controller: portico.dev/ingress-controller\n",
        &mut loaded,
    );
    for i in 0..N {
        portico::source::files::parse_documents(&format!("app{i}.yaml"), &app(i), &mut loaded);
    }
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let options = portico::translate::Options::default();
    let before = LIVE.load(Ordering::Relaxed);
    let mut cache = portico::translate::Cache::default();
    let translation = portico::translate::translate(&loaded.snapshot, &options, &mut cache);
    assert_eq!(translation.table.route_count(), 3 * N);
    drop(translation);
    let per_ingress = (LIVE.load(Ordering::Relaxed) - before) / N as isize;
    eprintln!("translate state: {per_ingress} bytes per Ingress");
    // 3,788 when written; 4,364 with one default Policy per backend again, 5,010 before
    // branch cpmem2 (also routes with a second BackendRef, lists of capacity 4).
    assert!(
        (2_000..4_100).contains(&per_ingress),
        "translate state holds {per_ingress} bytes per Ingress"
    );
    drop(cache);
}
