//! Regex mode of a virtual host (issue 13: ingress-nginx `use-regex` and `rewrite-target`).
//!
//! Sits in routing: [`VirtualHost::new`](super::VirtualHost::new) builds it at translate time
//! when any route of the host enforces regex, and `VirtualHost::lookup` reads it per request.
//! It reproduces how ingress-nginx renders a server whose locations need regexes:
//!
//! - `internal/ingress/controller/controller.go` `updateServerLocations`: a Prefix path of an
//!   Ingress without its own regex or rewrite becomes two locations, `path/` and an exact copy
//!   `path` (only `path/` when an Exact location with that path exists); `/` stays one.
//! - the same file, `createServers`/`getBackendServers`: the locations of a server are sorted by
//!   path length, longest first, ties by path in descending byte order (two stable sorts).
//! - `internal/ingress/controller/template/template.go` `enforceRegexModifier` and
//!   `buildLocation`: once one location uses regex or a rewrite target, every location is
//!   written `location ~* "^PATH"`: a case-insensitive regex anchored (by `^`) at the start;
//!   nginx then takes the first regex location, in file order, that matches.
//!
//! Regexes are compiled once here (Rust's `regex`: linear time, no look-around, no
//! backreferences); paths that do not compile are reported and never match.

use std::collections::HashSet;

use regex_automata::{meta, Anchored, Input};
use serde::Serialize;

use super::{PathType, Piece, RewriteTarget, Route};

/// Largest compiled program of one path regex. Real path regexes take a few KiB; this refuses
/// the ones that would take megabytes (`\w{1000}` under Unicode, nested counted repetitions).
pub const PATH_REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Lazy-DFA cache per regex and thread: bounds memory, never correctness (the regex crate falls
/// back to a slower engine when it fills).
const DFA_SIZE_LIMIT: usize = 1 << 20;
/// Up to this many locations, trying each in order costs no more than one multi-pattern pass.
const SCAN_MAX: usize = 4;
/// Paths are quoted in messages up to this many bytes (a path may be megabytes long).
const QUOTE_MAX: usize = 120;

/// One `location ~* "^PATH"` of a regex-mode host.
#[derive(Debug, Clone)]
pub struct RegexLocation {
    /// The location path as ingress-nginx writes it between `~* "^` and `"`.
    pub path: String,
    /// Index of its route in the vhost's `routes`.
    pub route: usize,
    /// Whether requests matched here are rewritten: the route's Ingress has a
    /// `rewrite-target` that differs from this location's path (ingress-nginx `buildProxyPass`:
    /// `if path == location.Rewrite.Target` no rewrite).
    pub rewrites: bool,
    /// `(?i)^PATH`: what nginx tests for the location.
    matcher: regex::Regex,
    /// `(?i)PATH`, unanchored, as nginx's `rewrite "(?i)PATH" TARGET break;`: only for a
    /// rewrite whose target refers to capture groups.
    captures: Option<regex::Regex>,
}

impl PartialEq for RegexLocation {
    fn eq(&self, other: &Self) -> bool {
        // The regexes are functions of the path.
        self.path == other.path && self.route == other.route && self.rewrites == other.rewrites
    }
}

impl Serialize for RegexLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RegexLocation", 3)?;
        st.serialize_field("location", &format!("~* ^{}", self.path))?;
        st.serialize_field("route", &self.route)?;
        st.serialize_field("rewrites", &self.rewrites)?;
        st.end()
    }
}

impl RegexLocation {
    /// The regex nginx tests for this location, as `explain` shows it.
    pub fn pattern(&self) -> &str {
        self.matcher.as_str()
    }

    /// The rewrite regex's match of `path`, when this location rewrites with capture groups.
    /// Allocates the captures: called only for such rewrites.
    pub fn captures<'p>(&self, path: &'p str) -> Option<regex::Captures<'p>> {
        self.captures.as_ref()?.captures(path)
    }

    /// Whether nginx's location regex matches the normalised path.
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }

    /// Whether the rewrite needs capture groups.
    pub fn has_captures(&self) -> bool {
        self.captures.is_some()
    }
}

/// The locations of a regex-mode host in nginx's order, and a matcher for the first one.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RegexMode {
    pub locations: Vec<RegexLocation>,
    /// All location regexes as one leftmost-first multi-pattern regex, searched anchored: the
    /// match's pattern is the first location in order that matches. Only when every pattern
    /// is anchored at the start (a top-level `|` can make `^a|b` match anywhere; then each
    /// location is tried in turn, as nginx does).
    #[serde(skip)]
    set: Option<meta::Regex>,
}

impl PartialEq for RegexMode {
    fn eq(&self, other: &Self) -> bool {
        self.locations == other.locations
    }
}

/// A path or rewrite target that regex mode could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexProblem {
    /// Index of the route in the vhost's `routes`.
    pub route: usize,
    /// `true`: the route's `rewrite-target` (the path serves, unrewritten); `false`: the path
    /// itself (it never matches).
    pub rewrite_target: bool,
    pub message: String,
}

/// A location before compilation: its path, the index of its route in the routes as given
/// (age order) and whether it rewrites.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub path: String,
    pub route: usize,
    pub rewrites: bool,
}

/// ingress-nginx's locations for a server's routes, given oldest Ingress first, in nginx's
/// order (`updateServerLocations`, then the two stable sorts of `createServers`).
pub(super) fn nginx_locations(routes: &[Route]) -> Vec<Spec> {
    let exact: HashSet<&str> = routes
        .iter()
        .filter(|r| r.path_type == PathType::Exact)
        .map(|r| r.path.as_str())
        .collect();
    // A second location with the same path and pathType is skipped: the older one stays
    // (`createServers`: "same paths but different types are allowed").
    let mut seen: HashSet<(&str, PathType)> = HashSet::new();
    let mut specs = Vec::with_capacity(routes.len() + routes.len() / 2);
    for (i, route) in routes.iter().enumerate() {
        if !seen.insert((route.path.as_str(), route.path_type)) {
            continue;
        }
        let own = route.backend.policy.rewrite.as_deref();
        let target = own.and_then(|o| o.target.as_ref());
        let needs_rewrite = target.is_some_and(|t| t.text != route.path);
        let own_regex = own.is_some_and(|o| o.use_regex) || needs_rewrite;
        let mut push = |path: String| {
            let rewrites = target.is_some_and(|t| t.text != path);
            specs.push(Spec {
                path,
                route: i,
                rewrites,
            });
        };
        if route.path == "/" || route.path_type != PathType::Prefix || own_regex {
            push(route.path.clone());
            continue;
        }
        // `normalizePrefixPath`: must end in `/`.
        let with_slash = if route.path.ends_with('/') {
            route.path.clone()
        } else {
            format!("{}/", route.path)
        };
        push(with_slash);
        if !exact.contains(route.path.as_str()) {
            push(route.path.clone());
        }
    }
    specs.sort_by(|a, b| b.path.cmp(&a.path));
    specs.sort_by_key(|s| std::cmp::Reverse(s.path.len()));
    specs
}

impl RegexMode {
    /// Compiles the locations; `position[i]` is where route `i` (age order) ended up in the
    /// vhost's sorted routes. Locations whose path does not compile are left out, each with a
    /// problem; a rewrite target naming a group its path lacks is a problem and the location
    /// serves unrewritten.
    pub(super) fn build(
        specs: Vec<Spec>,
        routes_by_age: &[&Route],
        position: &[usize],
        problems: &mut Vec<RegexProblem>,
    ) -> RegexMode {
        let mut locations = Vec::with_capacity(specs.len());
        let mut refused: HashSet<usize> = HashSet::new();
        let mut anchored = true;
        for spec in specs {
            let route = position[spec.route];
            if refused.contains(&route) {
                continue;
            }
            let matcher = match compile(&format!("(?i)^{}", spec.path)) {
                Ok(m) => m,
                Err(why) => {
                    refused.insert(route);
                    problems.push(RegexProblem {
                        route,
                        rewrite_target: false,
                        message: format!(
                            "path {} cannot be used as the regex ingress-nginx makes of it \
                             on this host (use-regex or rewrite-target): {why}; it never matches",
                            quote(&spec.path)
                        ),
                    });
                    continue;
                }
            };
            let this_anchored = starts_anchored(matcher.as_str());
            anchored &= this_anchored;
            let mut rewrites = spec.rewrites;
            let mut captures = None;
            let target = routes_by_age
                .get(spec.route)
                .filter(|_| rewrites)
                .and_then(|r| r.backend.policy.rewrite.as_deref())
                .and_then(|r| r.target.as_ref());
            if let Some(target) = target {
                let wanted = target.max_group();
                if wanted > 0 {
                    // nginx's `rewrite "(?i)PATH"` searches anywhere, but when the location
                    // regex is anchored its leftmost match starts at 0, so the anchored form
                    // gives the same groups without the reverse scan an unanchored search
                    // needs.
                    let source = if this_anchored {
                        format!("(?i)^(?:{})", spec.path)
                    } else {
                        format!("(?i){}", spec.path)
                    };
                    match compile(&source) {
                        Ok(re) if re.captures_len() > wanted => captures = Some(re),
                        Ok(re) => {
                            rewrites = false;
                            problems.push(RegexProblem {
                                route,
                                rewrite_target: true,
                                message: format!(
                                    "rewrite-target {} refers to ${wanted} but path {} has {} \
                                     capture group(s); requests are not rewritten",
                                    quote(&target.text),
                                    quote(&spec.path),
                                    re.captures_len() - 1
                                ),
                            });
                        }
                        // The anchored form compiled; the unanchored one cannot fail
                        // differently, but never serve a rewrite that was not checked.
                        Err(_) => rewrites = false,
                    }
                }
            }
            locations.push(RegexLocation {
                path: spec.path,
                route,
                rewrites,
                matcher,
                captures,
            });
        }
        let set = if anchored && locations.len() > SCAN_MAX {
            let patterns: Vec<&str> = locations.iter().map(|l| l.matcher.as_str()).collect();
            meta::Regex::builder()
                .configure(
                    meta::Config::new()
                        .nfa_size_limit(Some(PATH_REGEX_SIZE_LIMIT.saturating_mul(patterns.len())))
                        .hybrid_cache_capacity(DFA_SIZE_LIMIT.saturating_mul(4)),
                )
                .build_many(&patterns)
                // Too big together: each location in turn still gives the same answer.
                .ok()
        } else {
            None
        };
        RegexMode { locations, set }
    }

    /// Index of the first location (in nginx's order) matching a normalised request path.
    pub fn lookup(&self, path: &str) -> Option<usize> {
        match &self.set {
            Some(set) => set
                .search_half(&Input::new(path).anchored(Anchored::Yes))
                .map(|m| m.pattern().as_usize()),
            None => self.scan(path),
        }
    }

    /// The definition: the first location whose regex matches.
    pub fn scan(&self, path: &str) -> Option<usize> {
        self.locations.iter().position(|l| l.matcher.is_match(path))
    }
}

pub(crate) fn compile(pattern: &str) -> Result<regex::Regex, String> {
    if let Some(construct) = pcre_only(pattern) {
        return Err(format!(
            "{construct} is a PCRE construct Rust's regex does not support"
        ));
    }
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(pattern) {
        return Err(match e.kind() {
            regex_syntax::ast::ErrorKind::UnsupportedLookAround => {
                "look-around ((?=, (?!, (?<=, (?<!) is a PCRE construct Rust's regex does not \
                 support"
                    .to_string()
            }
            regex_syntax::ast::ErrorKind::UnsupportedBackreference => {
                "a backreference (\\1) is a PCRE construct Rust's regex does not support"
                    .to_string()
            }
            kind => format!("invalid regex: {kind}"),
        });
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(PATH_REGEX_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("the regex compiles to more than {} KiB", limit / 1024)
            }
            regex::Error::Syntax(text) => {
                // The message quotes the pattern; keep its last line (the reason).
                let reason = text.lines().rev().find(|l| !l.trim().is_empty());
                format!(
                    "invalid regex: {}",
                    quote_plain(reason.unwrap_or("syntax error"))
                )
            }
            other => format!("invalid regex: {}", quote_plain(&other.to_string())),
        })
}

/// PCRE-only constructs the `regex` parser would report with a vaguer message (or accept
/// with another meaning), named for the condition.
fn pcre_only(pattern: &str) -> Option<&'static str> {
    let bytes = pattern.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            match bytes.get(i + 1) {
                Some(b'k') | Some(b'g') => return Some("a backreference (\\k, \\g)"),
                Some(b'K') => return Some("a match reset (\\K)"),
                Some(b'G') => return Some("a continuation anchor (\\G)"),
                _ => {}
            }
            i += 2;
            continue;
        }
        if in_class {
            if b == b']' {
                in_class = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'[' => {
                in_class = true;
                // `[]...]` and `[^]...]`: a leading `]` is literal.
                if bytes.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b'*' | b'+' | b'?' | b'}' if bytes.get(i + 1) == Some(&b'+') => {
                return Some("a possessive quantifier (*+, ++, ?+, {n}+)");
            }
            b'(' if bytes.get(i + 1) == Some(&b'?') => {
                let rest = &bytes[i + 2..];
                if rest.starts_with(b">") {
                    return Some("an atomic group ((?>...))");
                }
                if rest.starts_with(b"P=") || rest.starts_with(b"P>") {
                    return Some("a backreference ((?P=name))");
                }
                if rest.starts_with(b"(") {
                    return Some("a conditional ((?(...)...))");
                }
                if rest.starts_with(b"R") || rest.first().is_some_and(u8::is_ascii_digit) {
                    return Some("recursion ((?R), (?1))");
                }
                if rest.starts_with(b"|") {
                    return Some("a branch reset group ((?|...))");
                }
            }
            b'(' if bytes.get(i + 1) == Some(&b'*') => {
                return Some("a backtracking control verb ((*...))");
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// nginx's `rewrite "(?i)<path>" <target> break;` on the normalised path: the whole URI
/// becomes the target with `$n` replaced by the groups of the rewrite regex's match (empty when
/// a group did not take part). The query follows nginx: a target without `?` keeps the
/// request's query; one with `?` puts its own arguments first and the request's after `&`; a
/// target ending in `?` drops the request's. The result is always an origin-form
/// request-target: it starts with `/`, and every byte a request-target cannot hold is
/// percent-encoded. `None`: the rewrite regex does not match (nginx leaves the URI alone).
pub fn rewrite_target(
    location: &RegexLocation,
    target: &RewriteTarget,
    path: &str,
    query: Option<&str>,
) -> Option<String> {
    let captures = if location.has_captures() {
        Some(location.captures(path)?)
    } else {
        None
    };
    let mut raw = String::with_capacity(target.text.len() + path.len());
    for piece in &target.pieces {
        match piece {
            Piece::Literal(text) => raw.push_str(text),
            Piece::Group(n) => {
                if let Some(m) = captures.as_ref().and_then(|c| c.get(*n)) {
                    raw.push_str(m.as_str());
                }
            }
        }
    }
    Some(finish(
        &raw,
        target.text.contains('?'),
        target.text.ends_with('?'),
        query,
    ))
}

/// Assembles path and query from the substituted target (see [`rewrite_target`]).
fn finish(raw: &str, has_args: bool, drop_args: bool, query: Option<&str>) -> String {
    // Only a `?` of the target itself starts its arguments; captured text comes from the path
    // and holds none.
    let (path, args) = match raw.split_once('?') {
        Some((p, a)) if has_args => (p, Some(a)),
        _ => (raw, None),
    };
    let mut out = String::with_capacity(raw.len() + query.map_or(0, str::len) + 8);
    if !path.starts_with('/') {
        out.push('/');
    }
    encode_into(&mut out, path, false);
    let args = args.filter(|a| !a.is_empty());
    let query = query.filter(|q| !drop_args && !q.is_empty());
    match (args, query) {
        (Some(a), Some(q)) => {
            out.push('?');
            encode_into(&mut out, a, true);
            out.push('&');
            encode_into(&mut out, q, true);
        }
        (Some(a), None) => {
            out.push('?');
            encode_into(&mut out, a, true);
        }
        (None, Some(q)) => {
            out.push('?');
            encode_into(&mut out, q, true);
        }
        (None, None) => {}
    }
    out
}

/// Appends `text`, percent-encoding every byte an origin-form path (or, with `query`, a query)
/// cannot hold; a `%` that starts no escape becomes `%25`.
fn encode_into(out: &mut String, text: &str, query: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let keep = if b == b'%' {
            escape_start
        } else if b == b'?' {
            query
        } else {
            is_target_byte(b)
        };
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// Whether `b` may appear as is in an origin-form request-target (RFC 3986 `pchar`, `/`, `?`).
pub fn is_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

/// Whether every match of the pattern must start at the beginning of the haystack.
fn starts_anchored(pattern: &str) -> bool {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|hir| {
            hir.properties()
                .look_set_prefix()
                .contains(regex_syntax::hir::Look::Start)
        })
        .unwrap_or(false)
}

/// A path quoted for a message, cut to [`QUOTE_MAX`] bytes.
pub fn quote(text: &str) -> String {
    format!("{:?}", quote_plain(text))
}

fn quote_plain(text: &str) -> String {
    if text.len() <= QUOTE_MAX {
        return text.to_string();
    }
    let mut end = QUOTE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(paths: &[&str]) -> RegexMode {
        let specs = paths
            .iter()
            .enumerate()
            .map(|(i, p)| Spec {
                path: p.to_string(),
                route: i,
                rewrites: false,
            })
            .collect();
        let position: Vec<usize> = (0..paths.len()).collect();
        let mut problems = Vec::new();
        let mode = RegexMode::build(specs, &[], &position, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        mode
    }

    #[test]
    fn first_location_in_order_wins_in_one_pass_and_by_scan() {
        // test/e2e/annotations/rewrite.go "should use ~* location modifier if regex
        // annotation is present": order `/foo.+`, `/foo/`, `/foo`.
        let m = mode(&["/foo.+", "/foo/", "/foo", "/bar", "/baz", "/"]);
        assert!(m.set.is_some());
        for (path, want) in [
            ("/foo/bar", Some(0)),
            ("/foo/", Some(0)),
            ("/foo", Some(2)),
            ("/FOO", Some(2)),
            ("/bar/x", Some(3)),
            ("/zzz", Some(5)),
            ("zzz", None),
        ] {
            assert_eq!(m.lookup(path), want, "{path}");
            assert_eq!(m.scan(path), want, "{path}");
        }
    }

    #[test]
    fn unanchored_alternation_is_tried_in_order_like_nginx() {
        // `^/a|/b` matches `/x/b` (the `^` binds to the first branch only).
        let m = mode(&["/a|/b", "/x", "/y", "/z", "/w", "/"]);
        assert!(m.set.is_none());
        assert_eq!(m.lookup("/x/b"), Some(0));
        assert_eq!(m.lookup("/x/c"), Some(1));
    }

    #[test]
    fn pcre_constructs_are_named() {
        for (pattern, word) in [
            ("/(?=a)", "look-around"),
            ("/(?<!a)b", "look-around"),
            ("/(a)\\1", "backreference"),
            ("/a++", "possessive"),
            ("/a*+", "possessive"),
            ("/a{2}+", "possessive"),
            ("/(?>a)", "atomic"),
            ("/(?P=n)", "backreference"),
            ("/\\k<n>", "backreference"),
            ("/(?R)", "recursion"),
        ] {
            let err = compile(pattern).unwrap_err();
            assert!(err.contains(word), "{pattern}: {err}");
        }
        // Not possessive: a `+` inside a class, or escaped.
        assert!(compile("/[a+]+").is_ok());
        assert!(compile("/a\\++").is_ok());
    }

    #[test]
    fn huge_and_broken_regexes_are_refused_with_short_messages() {
        let err = compile(r"/\w{1000}\w{1000}").unwrap_err();
        assert!(err.contains("KiB"), "{err}");
        let long = format!("/{}(", "a".repeat(1 << 20));
        let err = compile(&long).unwrap_err();
        assert!(err.len() < 400, "{}", err.len());
        assert!(quote(&long).len() < 200);
    }

    #[test]
    fn query_follows_nginx_rewrite() {
        assert_eq!(finish("/new", false, false, Some("a=1")), "/new?a=1");
        assert_eq!(finish("/new?x=2", true, false, Some("a=1")), "/new?x=2&a=1");
        assert_eq!(finish("/new?", true, true, Some("a=1")), "/new");
        assert_eq!(finish("/new", false, false, None), "/new");
    }

    #[test]
    fn results_are_origin_form() {
        assert_eq!(finish("", false, false, None), "/");
        assert_eq!(finish("bar", false, false, None), "/bar");
        assert_eq!(finish("/a b\"{}", false, false, None), "/a%20b%22%7B%7D");
        assert_eq!(finish("/100%", false, false, None), "/100%25");
        assert_eq!(finish("/%41", false, false, None), "/%41");
        assert_eq!(finish("/é", false, false, None), "/%C3%A9");
    }
}
