//! Response compression (issue 13: the ConfigMap keys `use-gzip`, `gzip-level`,
//! `gzip-min-length`, `gzip-types`, `enable-brotli`, `brotli-level`, `brotli-min-length`,
//! `brotli-types`). Sits at the very end of the data path: `service` hands it the finished
//! response head and the upstream body; it decides once, from the head and what the request
//! offered, and either returns the body untouched or wraps it in a streaming encoder.
//!
//! The decision follows nginx's filters as ingress-nginx configures them
//! (`rootfs/etc/nginx/template/nginx.tmpl`: `gzip_http_version 1.1`, `gzip_proxied any`,
//! `gzip_vary on`): nginx `src/http/modules/ngx_http_gzip_filter_module.c`
//! `ngx_http_gzip_header_filter` and ngx_brotli's `ngx_http_brotli_header_filter` compress only
//! 200, 403 and 404 responses with a body, without a `Content-Encoding`, whose `Content-Length`
//! (when known) reaches the minimum length and whose type is listed (`text/html` always is).
//! ngx_brotli's `config` orders its filter before gzip's, so when both are enabled and the
//! client accepts both, brotli wins, and gzip still gets a response brotli declined (too short
//! for `brotli-min-length`, a type only `gzip-types` lists).
//!
//! Settings are typed once per ConfigMap version (`routing/compression.rs`) and published in
//! `Global`; per request the only cost when compression is off is one `Option` check in
//! `service`.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, Method, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::ProxyBody;
pub use crate::routing::compression::{from_configmap, Codec, CompressionSettings, Types};

/// ngx_brotli's default `brotli_window` (512k, `lgwin` 19), which ingress-nginx does not set:
/// it bounds the encoder's memory per response.
const BROTLI_LGWIN: u32 = 19;

/// Most input bytes encoded in one poll, so one large upstream chunk cannot hold a worker
/// thread for long (about 0.3 ms at gzip 1 and 2–3 ms at brotli 4 on a busy machine;
/// benches/compress.rs, docs/performance.md).
const SLICE: usize = 64 * 1024;

/// The encodings one request accepts, read from its `Accept-Encoding` (RFC 9110 §12.5.3)
/// without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accept {
    pub gzip: bool,
    pub br: bool,
}

impl Accept {
    /// A coding is accepted when it is listed with a q-value above 0, or when it is not listed
    /// and `*` is, with a q-value above 0. `identity` needs nothing: an uncompressed response
    /// is always possible. Several `Accept-Encoding` lines are one list.
    pub fn parse(headers: &HeaderMap) -> Accept {
        // (listed, q > 0) for gzip, br and *.
        let mut gzip = (false, false);
        let mut br = (false, false);
        let mut any = (false, false);
        for line in headers.get_all(ACCEPT_ENCODING) {
            let Ok(line) = line.to_str() else { continue };
            for item in line.split(',') {
                let mut params = item.split(';');
                let coding = params.next().unwrap_or_default().trim();
                let mut q = true;
                for param in params {
                    if let Some((name, value)) = param.split_once('=') {
                        if name.trim().eq_ignore_ascii_case("q") {
                            q = qvalue_positive(value.trim());
                        }
                    }
                }
                let slot = if coding.eq_ignore_ascii_case("gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("br") {
                    &mut br
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
                // The first mention decides (a client repeating a coding is malformed anyway).
                if !slot.0 {
                    *slot = (true, q);
                }
            }
        }
        let accepted = |(listed, q): (bool, bool)| if listed { q } else { any.0 && any.1 };
        Accept {
            gzip: accepted(gzip),
            br: accepted(br),
        }
    }
}

/// Whether a qvalue (`0`, `0.000`, `1`, `0.5`) is above zero. A malformed one refuses the
/// coding, as nginx's `ngx_http_gzip_quantity` does.
fn qvalue_positive(value: &str) -> bool {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(int == "0" || int == "1") || frac.len() > 3 || !digits(frac) {
        return false;
    }
    int == "1" || frac.bytes().any(|b| b != b'0')
}

/// What the request contributes to the decision, taken before the request is consumed. Built
/// only when compression is on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offer {
    accept: Accept,
    /// HEAD responses have no body to compress (nginx `r->header_only`).
    head: bool,
    /// `gzip_http_version 1.1`: HTTP/1.0 clients get no gzip (brotli does not check).
    http10: bool,
}

impl Offer {
    pub fn new(method: &Method, version: Version, headers: &HeaderMap) -> Offer {
        Offer {
            accept: Accept::parse(headers),
            head: method == Method::HEAD,
            http10: version < Version::HTTP_11,
        }
    }
}

/// The settings and the request's offer when compression is on for this request; `None` (and
/// nothing read, nothing allocated) when it is off.
pub(crate) fn prepare<B>(
    settings: Option<&Arc<CompressionSettings>>,
    req: &http::Request<B>,
) -> Option<(Arc<CompressionSettings>, Offer)> {
    let settings = settings.filter(|s| s.enabled())?;
    Some((
        settings.clone(),
        Offer::new(req.method(), req.version(), req.headers()),
    ))
}

/// Which encoding a response gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Brotli,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }
}

/// Whether `codec` would compress this response head at all (before asking the client).
fn eligible(codec: &Codec, status: StatusCode, headers: &HeaderMap, head: bool) -> bool {
    // nginx: only 200, 403 and 404; so never 206 (ranges), 204, 304 or an error page of ours.
    let status_ok = matches!(
        status,
        StatusCode::OK | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    );
    if !status_ok || head {
        return false;
    }
    // Already encoded (any non-empty Content-Encoding, `identity` included, as nginx).
    if headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().is_empty())
    {
        return false;
    }
    // A 200 with a Content-Range is not a whole representation either.
    if headers.contains_key(CONTENT_RANGE) {
        return false;
    }
    if let Some(length) = response_length(headers) {
        if length < codec.min_length {
            return false;
        }
    }
    codec
        .types
        .matches(headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()))
}

fn response_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Decides for one response and, when it is compressed, rewrites its head and wraps its body.
/// The head loses `Content-Length` (the client gets chunked framing or HTTP/2 DATA frames)
/// and `Accept-Ranges`, gains `Content-Encoding`, and its strong `ETag` becomes weak (nginx
/// `ngx_http_weak_etag`: the bytes differ, the meaning does not). `Vary: Accept-Encoding` is
/// added whenever an encoder found the response eligible, also when this client accepted
/// neither (nginx `r->gzip_vary`), so a cache does not hand the plain copy to everyone.
pub(crate) fn apply(
    settings: &CompressionSettings,
    offer: Offer,
    status: StatusCode,
    headers: &mut HeaderMap,
    body: ProxyBody,
) -> ProxyBody {
    let brotli = settings
        .brotli
        .as_ref()
        .filter(|c| eligible(c, status, headers, offer.head));
    let gzip = settings
        .gzip
        .as_ref()
        .filter(|c| eligible(c, status, headers, offer.head));
    if brotli.is_none() && gzip.is_none() {
        return body;
    }
    add_vary(headers);
    let chosen = match (brotli, gzip) {
        (Some(c), _) if offer.accept.br => Some((Encoding::Brotli, c.level)),
        (_, Some(c)) if offer.accept.gzip && !offer.http10 => Some((Encoding::Gzip, c.level)),
        _ => None,
    };
    let Some((encoding, level)) = chosen else {
        return body;
    };
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_RANGES);
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    weaken_etag(headers);
    Compress::new(body, encoding, level).boxed()
}

fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.eq_ignore_ascii_case("accept-encoding")
            })
        })
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"W/") {
        return;
    }
    if bytes.first() == Some(&b'"') {
        let mut weak = Vec::with_capacity(bytes.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(bytes);
        match HeaderValue::from_bytes(&weak) {
            Ok(v) => {
                headers.insert(ETAG, v);
            }
            Err(_) => {
                headers.remove(ETAG);
            }
        }
    } else {
        // Not an entity-tag at all: nginx drops it rather than vouch for it.
        headers.remove(ETAG);
    }
}

/// A streaming encoder writing into a `Vec` that is drained after every step, so what is held
/// per response is the encoder's window plus at most one slice of input and its output.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(encoding: Encoding, level: u32) -> Encoder {
        match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level,
                BROTLI_LGWIN,
            ))),
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
        }
    }

    /// Emits everything written so far as decodable output (deflate sync flush, brotli
    /// `BROTLI_OPERATION_FLUSH`).
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
        }
    }

    /// Ends the stream (gzip trailer, brotli last meta-block) and returns the rest.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        let out = match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
        };
        std::mem::take(out)
    }
}

/// The compressing body. Reads the upstream body frame by frame, encodes at most [`SLICE`]
/// bytes per poll, and passes compressed bytes on as soon as the encoder produces them. When
/// the upstream has nothing more ready it flushes the encoder, so a long poll or a stream of
/// events (nginx with `proxy_buffering off`, ingress-nginx's default, flushes per upstream
/// read likewise) reaches the client without waiting for more input.
struct Compress {
    inner: ProxyBody,
    /// `None` once finished.
    encoder: Option<Encoder>,
    /// Input received but not yet encoded.
    input: Bytes,
    /// Bytes written since the last flush.
    unflushed: bool,
    trailers: Option<HeaderMap>,
    done: bool,
}

/// Wraps `body` in the encoder unconditionally (for benchmarks and tests; the proxy goes
/// through [`apply`]).
pub fn compress_body(body: ProxyBody, encoding: Encoding, level: u32) -> ProxyBody {
    Compress::new(body, encoding, level).boxed()
}

impl Compress {
    fn new(inner: ProxyBody, encoding: Encoding, level: u32) -> Compress {
        Compress {
            inner,
            encoder: Some(Encoder::new(encoding, level)),
            input: Bytes::new(),
            unflushed: false,
            trailers: None,
            done: false,
        }
    }

    fn data(out: Vec<u8>) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }
}

impl Body for Compress {
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let Some(encoder) = this.encoder.as_mut() else {
                this.done = true;
                continue;
            };
            if !this.input.is_empty() {
                let n = this.input.len().min(SLICE);
                let slice = this.input.split_to(n);
                if let Err(e) = encoder.write(&slice) {
                    // Writing into a Vec does not fail; if an encoder ever does, end the body
                    // (the client sees it cut short) rather than send garbage.
                    tracing::warn!(error = %e, "response compression failed");
                    this.encoder = None;
                    this.done = true;
                    return Poll::Ready(None);
                }
                this.unflushed = true;
                let out = encoder.take();
                if !out.is_empty() {
                    return Self::data(out);
                }
                if !this.input.is_empty() {
                    // Let other tasks of this worker run between two slices of a large chunk.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.unflushed {
                        this.unflushed = false;
                        if encoder.flush().is_ok() {
                            let out = encoder.take();
                            if !out.is_empty() {
                                return Self::data(out);
                            }
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.input = data,
                    Err(frame) => {
                        // Trailers end the body: finish the stream, then send them.
                        this.trailers = frame.into_trailers().ok();
                        return this.finish();
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => return this.finish(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Compress {
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        self.done = true;
        let Some(mut encoder) = self.encoder.take() else {
            return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
        };
        let mut out = encoder.take();
        match encoder.finish() {
            Ok(rest) => out.extend_from_slice(&rest),
            Err(e) => tracing::warn!(error = %e, "response compression failed"),
        }
        if out.is_empty() {
            return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        Self::data(out)
    }
}

#[cfg(test)]
mod tests;
