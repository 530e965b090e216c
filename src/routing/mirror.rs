//! One Ingress's request mirroring (ingress-nginx's `mirror-target`, `mirror-host`,
//! `mirror-request-body`), typed by `translate/mirror.rs`: the target URL's variables are
//! parsed into [`MirrorPart`]s once, and the proxy (`proxy/mirror.rs`) only concatenates.

use http::HeaderValue;
use serde::Serialize;

/// A piece of the mirrored request's path and query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MirrorPart {
    Literal(String),
    /// nginx `$request_uri`: the original path and query, as received.
    RequestUri,
    /// nginx `$uri`: the (normalised) path, without the query.
    Uri,
    /// nginx `$args` / `$query_string`: the query, without `?`.
    Args,
    /// nginx `$is_args`: `?` when there is a query.
    IsArgs,
    /// nginx `$host`: the request's host, without port.
    Host,
}

/// Where and how a copy of each request goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mirror {
    /// The annotation as written (for /debug/routes).
    pub target: String,
    pub https: bool,
    /// `host[:port]` of the target, as written (a name or an IP literal).
    pub authority: String,
    /// The path and query template; empty: the original request's path and query.
    pub path: Vec<MirrorPart>,
    /// Whether `path` has no variable: then the request's query is appended, as nginx's
    /// `proxy_pass` with a URI does.
    pub literal_path: bool,
    /// The mirrored request's `Host` (`mirror-host`, else the target's host name).
    pub host: HeaderValue,
    /// `mirror-request-body` (default on).
    pub request_body: bool,
}

impl Serialize for Mirror {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Mirror", 3)?;
        st.serialize_field("target", &self.target)?;
        st.serialize_field("host", &String::from_utf8_lossy(self.host.as_bytes()))?;
        st.serialize_field("requestBody", &self.request_body)?;
        st.end()
    }
}
