//! Bounded fuzzing that runs with `cargo test` (issue 10): the PROXY protocol parser, the
//! manifest loader, the host/path normaliser and the matcher, each fed its committed corpus
//! (`fuzz/corpus/<target>/`), then generated inputs, then mutations of both.
//!
//! cargo-fuzz needs a nightly toolchain (and cargo-fuzz itself), which CI does not have; this
//! harness is plain stable Rust. It is bounded in count, not time: `PORTICO_FUZZ_ITERATIONS`
//! (default 2,000 per target) and `PORTICO_FUZZ_SEED` (default fixed, so CI is reproducible)
//! let a developer run it longer or elsewhere. A failure prints the input (escaped) and the
//! seed; add the input to the corpus with the fix, and a named regression test next to the
//! code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use portico::proxy::read_header;
use portico::routing::normalize;
use portico::routing::{
    Backend, BackendRef, HostMatch, Origin, PathType, PortRef, Route, Target, Unavailable,
    VirtualHost,
};
use portico::source::files::{parse_documents, LoadError, Loaded};

fn iterations() -> usize {
    std::env::var("PORTICO_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn seed() -> u64 {
    std::env::var("PORTICO_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0904_71c0)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().flat_map(std::fs::read).collect();
    assert!(!inputs.is_empty(), "empty corpus {}", dir.display());
    inputs
}

/// Bytes that tend to matter to these parsers.
const INTERESTING: &[u8] = b"\0\r\n %./:;@[]\\-_~*&!|>'\"{}#?0123456789abcdefABCDEF\xff\x80\xc0";

/// One to four random edits of `input`, sometimes splicing in part of another corpus entry.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = out.len();
        match rng.u8(0..8) {
            0 if len > 0 => {
                let i = rng.usize(0..len);
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let i = rng.usize(0..len);
                out[i] = INTERESTING[rng.usize(0..INTERESTING.len())];
            }
            2 => {
                let i = rng.usize(0..=len);
                let n = rng.usize(1..8);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| INTERESTING[rng.usize(0..INTERESTING.len())])
                    .collect();
                out.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.usize(0..len);
                let j = rng.usize(i..=len.min(i + 16));
                out.drain(i..j);
            }
            4 if len > 0 => {
                // Repeat a slice: nesting, long lines, many documents.
                let i = rng.usize(0..len);
                let j = rng.usize(i..=len.min(i + 32));
                let piece = out[i..j].to_vec();
                for _ in 0..rng.usize(1..16) {
                    out.splice(j..j, piece.iter().copied());
                }
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.usize(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.usize(0..other.len());
                    let b = rng.usize(a..=other.len());
                    let i = rng.usize(0..=len);
                    out.splice(i..i, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => out.truncate(rng.usize(0..len)),
            _ => {
                let i = rng.usize(0..=len);
                out.insert(i, rng.u8(..));
            }
        }
    }
    // Bounded, so compounding repeats cannot make a run slow.
    out.truncate(MAX_INPUT);
    out
}

const MAX_INPUT: usize = 16 * 1024;

/// Runs `check` on every corpus entry, `generated` inputs and mutations; a panic names the
/// input.
fn fuzz(
    target: &str,
    iterations: usize,
    mut generate: impl FnMut(&mut fastrand::Rng) -> Vec<u8>,
    check: impl Fn(&[u8]),
) {
    let corpus = corpus(target);
    let mut rng = fastrand::Rng::with_seed(seed());
    let mut pool = corpus.clone();
    let run = |input: &[u8]| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input)));
        if let Err(panic) = outcome {
            eprintln!(
                "fuzz {target}: failing input (seed {}): {:?}",
                seed(),
                String::from_utf8_lossy(&input[..input.len().min(4096)])
            );
            std::panic::resume_unwind(panic);
        }
    };
    for input in &corpus {
        run(input);
    }
    for i in 0..iterations {
        let input = if i % 3 == 0 {
            generate(&mut rng)
        } else {
            let base = pool[rng.usize(0..pool.len())].clone();
            mutate(&mut rng, &base, &corpus)
        };
        run(&input);
        // Keep some generated and mutated inputs as bases, bounded, so edits compound.
        if pool.len() < 256 && rng.u8(0..8) == 0 {
            pool.push(input);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol

const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// What a PROXY header is, independently of the parser (proxy-protocol.txt §2.1, §2.2):
/// its length and the client address it carries (`None`: LOCAL, UNKNOWN, non-IP family).
/// `Err(())`: not a valid header.
fn reference_proxy(input: &[u8]) -> Result<(usize, Option<SocketAddr>), ()> {
    if input.starts_with(b"PROXY") {
        let end = input
            .windows(2)
            .position(|w| w == b"\r\n")
            .filter(|&i| i + 2 <= 107)
            .ok_or(())?;
        let line = std::str::from_utf8(&input[..end]).map_err(|_| ())?;
        let rest = line.strip_prefix("PROXY ").ok_or(())?;
        if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
            return Ok((end + 2, None));
        }
        let f: Vec<&str> = rest.split(' ').collect();
        if f.len() != 5 {
            return Err(());
        }
        let ip = |s: &str| -> Result<IpAddr, ()> {
            match f[0] {
                "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| ()),
                "TCP6" => s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| ()),
                _ => Err(()),
            }
        };
        let port = |s: &str| -> Result<u16, ()> {
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            s.parse().map_err(|_| ())
        };
        let (src, _, sport, _) = (ip(f[1])?, ip(f[2])?, port(f[3])?, port(f[4])?);
        return Ok((end + 2, Some(SocketAddr::new(src, sport))));
    }
    if input.len() < 16 || input[..12] != V2_SIGNATURE {
        return Err(());
    }
    let (ver_cmd, family) = (input[12], input[13]);
    let len = usize::from(u16::from_be_bytes([input[14], input[15]]));
    if ver_cmd >> 4 != 2 || len > 1024 || input.len() < 16 + len {
        return Err(());
    }
    let payload = &input[16..16 + len];
    match ver_cmd & 0x0F {
        0 => return Ok((16 + len, None)),
        1 => {}
        _ => return Err(()),
    }
    let addr = match family >> 4 {
        1 if len >= 12 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(
                payload[0], payload[1], payload[2], payload[3],
            )),
            u16::from_be_bytes([payload[8], payload[9]]),
        )),
        2 if len >= 36 => Some(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(&payload[..16]).expect("16 bytes"),
            )),
            u16::from_be_bytes([payload[32], payload[33]]),
        )),
        1 | 2 => return Err(()),
        _ => None,
    };
    Ok((16 + len, addr))
}

fn generate_proxy(rng: &mut fastrand::Rng) -> Vec<u8> {
    let v4 = |rng: &mut fastrand::Rng| Ipv4Addr::from(rng.u32(..));
    let v6 = |rng: &mut fastrand::Rng| Ipv6Addr::from(rng.u128(..));
    let mut out = if rng.bool() {
        let line = if rng.bool() {
            format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                v4(rng),
                v4(rng),
                rng.u16(..),
                rng.u16(..)
            )
        } else {
            format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                v6(rng),
                v6(rng),
                rng.u16(..),
                rng.u16(..)
            )
        };
        line.into_bytes()
    } else {
        let mut out = V2_SIGNATURE.to_vec();
        let (family, mut payload) = match rng.u8(0..3) {
            0 => (0x11, [v4(rng).octets(), v4(rng).octets()].concat()),
            1 => (0x21, [v6(rng).octets(), v6(rng).octets()].concat()),
            _ => (0x31, vec![0; 216]),
        };
        payload.extend_from_slice(&rng.u16(..).to_be_bytes());
        payload.extend_from_slice(&rng.u16(..).to_be_bytes());
        // TLVs are opaque to the parser; any bytes will do.
        payload.extend((0..rng.usize(0..20)).map(|_| rng.u8(..)));
        out.extend_from_slice(&[0x20 | rng.u8(0..2), family]);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend(payload);
        out
    };
    out.extend_from_slice(b"GET / HTTP/1.1\r\n");
    out
}

#[test]
fn fuzz_proxy_protocol() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    fuzz("proxy_protocol", iterations(), generate_proxy, |input| {
        let mut rest = input;
        let result = runtime.block_on(read_header(&mut rest));
        let consumed = input.len() - rest.len();
        match (&result, reference_proxy(input)) {
            (Ok(addr), Ok((len, expected))) => {
                assert_eq!(*addr, expected, "address");
                assert_eq!(consumed, len, "read exactly the header");
            }
            (Err(_), Err(())) => {
                // Never more than the longest header it could have been reading.
                assert!(consumed <= 16 + 1024, "read {consumed} bytes");
                if input.starts_with(b"PROXY") {
                    assert!(consumed <= 107, "read {consumed} bytes of a v1 line");
                }
            }
            (result, expected) => panic!("parser {result:?}, reference {expected:?}"),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Manifest loader

/// Random YAML-ish documents: nested mappings and sequences, flow and block, anchors and
/// aliases, tags, multi-document markers, Kubernetes kinds.
fn generate_yaml(rng: &mut fastrand::Rng) -> Vec<u8> {
    fn node(rng: &mut fastrand::Rng, depth: usize, indent: usize, out: &mut String) {
        const SCALARS: &[&str] = &[
            "a",
            "80",
            "-1",
            "0x1F",
            "1e3",
            ".inf",
            "~",
            "true",
            "''",
            "\"x\\ty\"",
            "*a",
            "!!str 5",
            "|\n  text",
            "/",
            "portico",
            "null",
        ];
        if depth == 0 || rng.u8(0..3) == 0 {
            out.push_str(SCALARS[rng.usize(0..SCALARS.len())]);
            return;
        }
        let pad = " ".repeat(indent);
        match rng.u8(0..4) {
            0 => {
                out.push('{');
                for i in 0..rng.usize(0..4) {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&format!("k{i}: "));
                    node(rng, depth - 1, indent, out);
                }
                out.push('}');
            }
            1 => {
                out.push('[');
                for i in 0..rng.usize(0..4) {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    node(rng, depth - 1, indent, out);
                }
                out.push(']');
            }
            2 => {
                if rng.bool() {
                    out.push_str("&a ");
                }
                for i in 0..rng.usize(1..4) {
                    out.push_str(&format!("\n{pad}key{i}: "));
                    node(rng, depth - 1, indent + 2, out);
                }
            }
            _ => {
                for _ in 0..rng.usize(1..4) {
                    out.push_str(&format!("\n{pad}- "));
                    node(rng, depth - 1, indent + 2, out);
                }
            }
        }
    }
    const HEADS: &[&str] = &[
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n",
        "apiVersion: v1\nkind: Service\n",
        "apiVersion: v1\nkind: Secret\n",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\n",
        "apiVersion: v1\nkind: List\n",
        "",
    ];
    let mut out = String::new();
    for _ in 0..rng.usize(1..4) {
        out.push_str("---\n");
        out.push_str(HEADS[rng.usize(0..HEADS.len())]);
        out.push_str("metadata:\n  name: n\n");
        for key in ["spec", "items", "data", "x"] {
            if rng.bool() {
                out.push_str(key);
                out.push_str(": ");
                let depth = rng.usize(1..8);
                node(rng, depth, 2, &mut out);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

#[test]
fn fuzz_manifests() {
    // A parse is ~1,000 times the cost of the other targets' checks: a quarter of the inputs.
    fuzz("manifests", iterations() / 4, generate_yaml, |input| {
        let text = String::from_utf8_lossy(input);
        let mut loaded = Loaded::default();
        parse_documents("fuzz.yaml", &text, &mut loaded);
        for error in &loaded.errors {
            assert!(
                matches!(error, LoadError::Document { index, .. } if *index >= 1),
                "{error:?}"
            );
            assert!(error.to_string().starts_with("fuzz.yaml: document "));
        }
        // Namespaced kinds always get a namespace; names are never empty.
        let s = &loaded.snapshot;
        for meta in s
            .ingresses
            .iter()
            .map(|o| &o.metadata)
            .chain(s.services.iter().map(|o| &o.metadata))
            .chain(s.endpoint_slices.iter().map(|o| &o.metadata))
            .chain(s.secrets.iter().map(|o| &o.metadata))
        {
            assert!(!meta.name.as_deref().unwrap_or_default().is_empty());
            assert!(!meta.namespace.as_deref().unwrap_or_default().is_empty());
        }
        // Deterministic: the same text loads the same (checked on some inputs; it doubles the
        // cost).
        if input.len() % 4 == 0 {
            let mut again = Loaded::default();
            parse_documents("fuzz.yaml", &text, &mut again);
            assert_eq!(again, loaded);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Normaliser

fn generate_path(rng: &mut fastrand::Rng) -> Vec<u8> {
    const PIECES: &[&str] = &[
        "/", "//", ".", "..", "%2e", "%2E", "%2f", "%5C", "%25", "%", "%%", "%3", "a", "B", ";",
        "\\", "~", "%7e", "%41", "é", "．", "%c0%ae", "?", "#", "%32", "%65",
    ];
    let mut out = String::new();
    for _ in 0..rng.usize(0..12) {
        out.push_str(PIECES[rng.usize(0..PIECES.len())]);
    }
    out.into_bytes()
}

/// A host a client may legitimately send: reg-name or IP literal, optional port.
fn generate_authority(rng: &mut fastrand::Rng) -> (String, String) {
    const LABELS: &[&str] = &["a", "Shop", "x-1", "EXAMPLE", "test", "0", "xn--bcher-kva"];
    let name = match rng.u8(0..3) {
        0 => "[::1]".to_string(),
        1 => Ipv4Addr::from(rng.u32(..)).to_string(),
        _ => (0..rng.usize(1..4))
            .map(|_| LABELS[rng.usize(0..LABELS.len())])
            .collect::<Vec<_>>()
            .join("."),
    };
    let mut authority = name.clone();
    if rng.bool() && !name.starts_with('[') {
        authority.push('.');
    }
    if rng.bool() {
        authority.push_str(&format!(":{}", rng.u16(..)));
    }
    (authority, name.to_ascii_lowercase())
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

#[test]
fn fuzz_normalize() {
    let mut authorities = fastrand::Rng::with_seed(seed());
    fuzz("normalize", iterations(), generate_path, |input| {
        let raw = String::from_utf8_lossy(input);
        let path = normalize::path(&raw);
        assert!(!path.is_empty());
        assert!(!has_dot_segment(&path), "dot-segment left in {path:?}");
        assert_eq!(normalize::path(&path), path, "not idempotent");
        // Any string: no panic, lowercase. (Hosts like `a:80.` or `a:1:2` are not idempotent
        // today: they are invalid, and host validation, issue 10 item 5, refuses them.)
        let host = normalize::host(&raw);
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
    });
    for _ in 0..iterations() {
        let (authority, name) = generate_authority(&mut authorities);
        let host = normalize::host(&authority);
        assert_eq!(host, name, "{authority:?}");
        assert_eq!(normalize::host(&host), host, "{authority:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Matcher

fn backend() -> Arc<Backend> {
    Arc::new(Backend::new(
        BackendRef::Service {
            namespace: "ns".to_string(),
            name: "svc".to_string(),
            port: PortRef::Number(80),
        },
        Target::Unavailable(Unavailable::NoEndpoints),
    ))
}

const SEGMENTS: &[&str] = &["a", "b", "foo", "foobar", "aaa", "bbb", "%2F", "x.y", ""];

fn random_path(rng: &mut fastrand::Rng) -> String {
    let mut path = String::new();
    for _ in 0..rng.usize(0..5) {
        path.push('/');
        path.push_str(SEGMENTS[rng.usize(0..SEGMENTS.len())]);
    }
    if path.is_empty() || rng.u8(0..4) == 0 {
        path.push('/');
    }
    path
}

/// Spec §3.6 written out, independently of the table's sort and hash maps: among the routes
/// that match, the longest effective length wins; at equal length Exact beats Prefix; then the
/// longer written path; then age order (the order given).
fn reference_lookup<'r>(routes: &'r [Route], path: &str) -> Option<&'r Route> {
    let mut best: Option<&Route> = None;
    for r in routes.iter().filter(|r| r.matches(path)) {
        let key = |r: &Route| (r.effective_len(), !r.path_type.is_prefix(), r.path.len());
        if best.is_none_or(|b| key(r) > key(b)) {
            best = Some(r);
        }
    }
    best
}

#[test]
fn fuzz_matcher() {
    let requests = corpus("matcher");
    let mut rng = fastrand::Rng::with_seed(seed());
    let backend = backend();
    // Fewer tables than inputs: each table is probed with many paths.
    for table in 0..iterations() / 10 {
        let count = rng.usize(1..40); // above and below the linear-scan threshold (8)
        let routes: Vec<Route> = (0..count)
            .map(|i| Route {
                path: random_path(&mut rng),
                path_type: match rng.u8(0..3) {
                    0 => PathType::Exact,
                    1 => PathType::Prefix,
                    _ => PathType::ImplementationSpecific,
                },
                backend: backend.clone(),
                origin: Origin {
                    namespace: "ns".to_string(),
                    name: format!("t{table}"),
                    rule: 0,
                    path: i,
                },
                ssl_redirect: false,
            })
            .collect();
        let vhost = VirtualHost::new(HostMatch::Any, routes.clone(), None);
        let mut paths: Vec<String> = requests
            .iter()
            .map(|r| normalize::path(&String::from_utf8_lossy(r)).into_owned())
            .collect();
        paths.extend(routes.iter().map(|r| r.path.clone()));
        paths.extend((0..20).map(|_| random_path(&mut rng)));
        paths.extend(routes.iter().map(|r| format!("{}x", r.path)));
        for path in &paths {
            let got = vhost.lookup(path).map(|r| &r.origin);
            let want = reference_lookup(&routes, path).map(|r| &r.origin);
            assert_eq!(
                got,
                want,
                "path {path:?} in {:?}",
                routes
                    .iter()
                    .map(|r| format!("{:?} {}", r.path_type, r.path))
                    .collect::<Vec<_>>()
            );
        }
    }
}
