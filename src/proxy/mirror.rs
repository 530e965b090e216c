//! Per request, ingress-nginx's `mirror-target` (typed by `translate/mirror.rs`): `service`
//! calls [`send`] once the upstream request's headers are ready, and a copy goes to the target
//! on its own task. The copy never delays or fails the main request: it is spawned, bounded in
//! flight ([`MAX_IN_FLIGHT`] for the process; over it the copy is dropped and counted), bounded
//! in time ([`TIMEOUT`], connect included), and its answer is discarded unread. A route
//! without a mirror pays one `Option` check.
//!
//! A buffered body (`proxy-request-buffering: on`, proxy/buffering.rs) is copied with the
//! request (the same bytes, no copy). A streamed one is not kept: such a request is mirrored
//! only with `mirror-request-body: "off"` (the copy then goes without its body, as nginx's
//! `mirror_request_body off`); otherwise it is skipped and counted.

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Uri, Version};
use tokio::sync::Semaphore;

use super::service::Context;
use super::upstream::RetryBody;
use crate::routing::{Mirror, MirrorPart, Protocol};

/// Copies in flight at once, for the whole process.
pub(super) const MAX_IN_FLIGHT: usize = 256;
/// The longest a copy may take, connect to response head.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

static IN_FLIGHT: Semaphore = Semaphore::const_new(MAX_IN_FLIGHT);

/// What of the main request the copy needs.
pub(super) struct Original<'a> {
    pub method: &'a Method,
    /// The request-target as received (`$request_uri`).
    pub uri: &'a Uri,
    /// The path sent upstream, normalised and rewritten (`$uri`).
    pub path: &'a str,
    /// The request's host, without port (`$host`).
    pub host: &'a str,
    /// The upstream request's headers, as prepared.
    pub headers: &'a HeaderMap,
    pub has_body: bool,
    /// The body when it was buffered (`proxy-request-buffering: on`): the copy gets it.
    pub body: Option<RetryBody>,
}

/// Spawns the copy of this request, or counts why not.
pub(super) fn send(ctx: &Context, mirror: &Arc<Mirror>, original: Original<'_>) {
    let metrics = &ctx.options.observe.metrics;
    if original.has_body && mirror.request_body && original.body.is_none() {
        metrics.mirror("skipped");
        return;
    }
    let Ok(permit) = IN_FLIGHT.try_acquire() else {
        metrics.mirror("dropped");
        return;
    };
    let Some(uri) = target(mirror, &original) else {
        metrics.mirror("failed");
        return;
    };
    let mut headers = original.headers.clone();
    headers.insert(HOST, mirror.host.clone());
    let body = match original.body.filter(|_| mirror.request_body) {
        Some(body) => body,
        None => {
            if original.has_body {
                headers.remove(CONTENT_LENGTH);
                headers.remove(TRANSFER_ENCODING);
            }
            RetryBody::none()
        }
    };
    let mut request = Request::new(body);
    *request.method_mut() = original.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    let protocol = if mirror.https {
        Protocol::Https
    } else {
        Protocol::Http
    };
    let client = ctx.clients.get(protocol, TIMEOUT, None, None);
    let metrics = ctx.options.observe.metrics.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let result = tokio::time::timeout(TIMEOUT, client.request(request)).await;
        // The answer is dropped unread (its connection is not reused).
        match result {
            Ok(Ok(_)) => metrics.mirror("sent"),
            _ => metrics.mirror("failed"),
        }
    });
}

/// `scheme://authority` + the path template filled in; `None` if that is not a URI.
fn target(mirror: &Mirror, original: &Original<'_>) -> Option<Uri> {
    let received = original.uri.path_and_query().map(PathAndQuery::as_str);
    let query = original.uri.query();
    let mut path = String::new();
    if mirror.path.is_empty() {
        path.push_str(received.unwrap_or("/"));
    }
    for part in &mirror.path {
        match part {
            MirrorPart::Literal(text) => path.push_str(text),
            MirrorPart::RequestUri => path.push_str(received.unwrap_or("/")),
            MirrorPart::Uri => path.push_str(original.path),
            MirrorPart::Args => path.push_str(query.unwrap_or_default()),
            MirrorPart::IsArgs => {
                if query.is_some() {
                    path.push('?');
                }
            }
            MirrorPart::Host => path.push_str(original.host),
        }
    }
    if mirror.literal_path && !mirror.path.is_empty() {
        if let Some(q) = query {
            path.push('?');
            path.push_str(q);
        }
    }
    let scheme = if mirror.https { "https" } else { "http" };
    format!("{scheme}://{}{path}", mirror.authority)
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(path: Vec<MirrorPart>, literal_path: bool) -> Mirror {
        Mirror {
            target: String::new(),
            https: false,
            authority: "m.example:8080".into(),
            path,
            literal_path,
            host: http::HeaderValue::from_static("m.example"),
            request_body: true,
        }
    }

    fn fill(m: &Mirror, uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap();
        let headers = HeaderMap::new();
        let original = Original {
            method: &Method::GET,
            uri: &uri,
            path: uri.path(),
            host: "app.example",
            headers: &headers,
            has_body: false,
            body: None,
        };
        target(m, &original).unwrap().to_string()
    }

    #[test]
    fn variables_are_filled_in_never_evaluated() {
        let m = mirror(
            vec![MirrorPart::Literal("/".into()), MirrorPart::RequestUri],
            false,
        );
        // nginx gives the same double slash for `https://host/$request_uri`.
        assert_eq!(fill(&m, "/a/b?q=1"), "http://m.example:8080//a/b?q=1");
        let m = mirror(
            vec![
                MirrorPart::Uri,
                MirrorPart::IsArgs,
                MirrorPart::Args,
                MirrorPart::Literal("&h=".into()),
                MirrorPart::Host,
            ],
            false,
        );
        assert_eq!(
            fill(&m, "/x?y=2"),
            "http://m.example:8080/x?y=2&h=app.example"
        );
        let m = mirror(vec![MirrorPart::Literal("/mirror".into())], true);
        assert_eq!(fill(&m, "/x?y=2"), "http://m.example:8080/mirror?y=2");
        assert_eq!(
            fill(&mirror(vec![], true), "/x?y=2"),
            "http://m.example:8080/x?y=2"
        );
    }
}
