//! Upstream side, fast path, on the wire: Portico's own HTTP/1.1 client for a request without
//! a body on a pooled plain connection (`pool.rs`). The request head is written from the
//! request's parts into one buffer with one write; the response head is parsed with
//! `httparse` straight into `http::response::Parts`; the body is read from the socket by the
//! request's own task as the client takes it ([`Body`]). No connection task, no channel, no
//! second header pass: the per-request work hyper's client dispatcher did (see
//! docs/decisions.md and docs/performance.md).
//!
//! Framing follows RFC 9112 §6.3 as hyper's client role does: no body for HEAD, 1xx, 204 and
//! 304; `Transfer-Encoding` whose last coding is `chunked` (trailers passed on), any other
//! coding read until close; otherwise `Content-Length` (differing or invalid values are an
//! error), else until close. A message with both `Transfer-Encoding` and `Content-Length` is
//! read by the former (RFC 9112 §6.3 item 3) and its connection never reused. Requests with a
//! body, upgrades and HTTP/1.0 requests keep using hyper's client (`pool.rs` decides).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, SERVER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pool::Home;

/// Most header fields in a response head (hyper's client default).
const MAX_HEADERS: usize = 100;
/// Largest response head, and largest trailer section (hyper's default read buffer limit
/// for heads is 400 KiB; nginx's `proxy_buffer_size` is 4–8 KiB; this sits between).
const MAX_HEAD: usize = 64 * 1024;
/// The smallest response header map `parse_head` builds: 12 fields (16 slots), a request of
/// five fields plus the seven `headers::add_forwarded` may add without the map growing.
const MIN_MAP: usize = 12;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Bytes reserved before each read.
const READ_SIZE: usize = 16 * 1024;

/// A plain upstream connection with the bytes read ahead of what has been used.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The request head being written (its allocation is kept for the next request).
    head: Vec<u8>,
    /// Where the response head's fields sit, while it is turned into a `HeaderMap` (kept
    /// too: a 100-slot array on the stack cost a 3 KiB memset per response).
    fields: Vec<Field>,
}

/// A header field's name and value as byte ranges of the response head.
type Field = (usize, usize, usize, usize);

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: BytesMut::new(),
            head: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Whether an idle connection is still open with nothing unasked-for on it. A
    /// non-blocking read: when the socket has signalled nothing since the last read found it
    /// empty, tokio answers without a system call; else the `read(2)` finds EOF (the upstream
    /// closed it while idle), stray bytes, or nothing, and then the response's first read
    /// waits for readiness instead of trying first, so the count of reads stays the same.
    pub fn idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection before answering")]
    ClosedEarly,
    #[error("upstream closed the connection before the response ended")]
    Truncated,
    #[error("invalid upstream response head: {0}")]
    Parse(httparse::Error),
    #[error("upstream response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid upstream response framing: {0}")]
    Framing(&'static str),
}

/// A failed exchange, and whether the upstream may not have seen the request at all: the
/// write failed, or the connection ended (EOF, reset) before one byte of an answer arrived.
/// On a pooled connection that is an upstream that closed it while idle.
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: Error,
    pub nothing_received: bool,
    /// The request head went out (as far as the kernel is concerned).
    pub written: bool,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Ended (or none).
    Done,
    /// `Content-Length`: bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes.
    Close,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Data bytes left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line.
    Trailers,
}

/// Writes `method target HTTP/1.1`, the headers as they are (minus `Transfer-Encoding`: no
/// body follows, as hyper does for a body that is already at its end) and the empty line.
fn encode_head(dst: &mut Vec<u8>, method: &Method, uri: &Uri, headers: &HeaderMap) {
    dst.clear();
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    dst.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == TRANSFER_ENCODING {
            continue;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// A parsed final response head: its parts, how its body is framed, and whether the
/// connection can carry another request after it.
struct Parsed {
    parts: http::response::Parts,
    framing: Framing,
    reusable: bool,
}

/// Parses one response head at the start of `buf`, taking it out of `buf`. `Ok(None)`: not
/// complete yet. Informational (1xx other than 101) heads are consumed and skipped.
///
/// The head's fields go into `spare`'s map, emptied (the request's, already written): its
/// allocation is reused instead of a new map's. `spare` is taken only once a complete head
/// with a valid status is there, after which the request is never sent again.
fn parse_head(
    buf: &mut BytesMut,
    fields: &mut Vec<Field>,
    head_request: bool,
    spare: &mut HeaderMap,
) -> Result<Option<Parsed>, Error> {
    loop {
        // Uninitialised slots, as hyper's parser uses: no 100-field fill per attempt.
        let mut headers = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return if buf.len() >= MAX_HEAD {
                    Err(Error::HeadTooLarge)
                } else {
                    Ok(None)
                }
            }
            Err(e) => return Err(Error::Parse(e)),
        };
        if len > MAX_HEAD {
            return Err(Error::HeadTooLarge);
        }
        let code = response.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| Error::Framing("invalid status code"))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            // hyper drops 1xx heads (100 Continue, 103 Early Hints) and reads on.
            let _ = buf.split_to(len);
            continue;
        }
        let version = if response.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        // Where each field sits in `buf`, so the head can be frozen and shared.
        let base = buf.as_ptr() as usize;
        fields.clear();
        for header in response.headers.iter() {
            let name = header.name.as_ptr() as usize - base;
            let value = header.value.as_ptr() as usize - base;
            fields.push((
                name,
                name + header.name.len(),
                value,
                value + header.value.len(),
            ));
        }
        let count = fields.len();
        let head = buf.split_to(len).freeze();
        // At least `MIN_MAP` slots: hyper's server keeps the response's map (emptied) for the
        // connection's next request, and `headers::add_forwarded` adds up to seven fields to
        // that request; a map sized for the response's few fields grew there on every request.
        let mut map = std::mem::take(spare);
        map.clear();
        map.reserve(count.max(MIN_MAP));
        let mut length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        let mut close = false;
        let mut keep_alive = false;
        for &(ns, ne, vs, ve) in fields.iter() {
            let name = match known_name(&head[ns..ne]) {
                Some(name) => name,
                None => HeaderName::from_bytes(&head[ns..ne])
                    .map_err(|_| Error::Framing("invalid header name"))?,
            };
            let raw = &head[vs..ve];
            if name == CONTENT_LENGTH {
                let n = parse_length(raw)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Framing("differing Content-Length values"));
                }
                length = Some(n);
            } else if name == TRANSFER_ENCODING {
                transfer_encoding = true;
                // Only the last coding of the last field decides (RFC 9112 §6.3 item 4).
                chunked = raw
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name == CONNECTION {
                let mut names_a_field = false;
                for token in raw.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    let is_close = token.eq_ignore_ascii_case(b"close");
                    let is_keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                    close |= is_close;
                    keep_alive |= is_keep_alive;
                    names_a_field |= !(is_close || is_keep_alive || token.is_empty());
                }
                // Hop-by-hop: read here (above), removed from every response by
                // `service::finish_headers`, the first reader of this map. A field that says
                // only `keep-alive` or `close` (nginx's `Connection: keep-alive` on every
                // answer) names no field but `Keep-Alive`, which `finish_headers` removes by
                // its fixed list anyway: left out of the map, the answer is the same, without
                // an append here and a lookup and removal there. One naming other fields
                // goes in, so `finish_headers` removes those too.
                if !names_a_field {
                    continue;
                }
            } else if name == SERVER {
                // `service::finish_headers` replaces it with Portico's on every answer (spec
                // §6.3; `global::finish` on `server-tokens`): nothing reads the upstream's.
                continue;
            }
            map.append(name, parsed_value(head.slice(vs..ve)));
        }
        let mut reusable = if version == Version::HTTP_11 {
            !close
        } else {
            keep_alive && !close
        };
        let framing = if head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Done
        } else if status == StatusCode::SWITCHING_PROTOCOLS {
            // Never asked for on this path (upgrades go through hyper): the caller refuses it.
            reusable = false;
            Framing::Done
        } else if transfer_encoding {
            // Both framings: a smuggling attempt or a broken backend; read by the chunked
            // framing (the Content-Length goes in `finish_headers`), then closed.
            if length.is_some() {
                reusable = false;
            }
            if chunked {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::Close
            }
        } else {
            match length {
                Some(0) => Framing::Done,
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        };
        if framing == Framing::Close {
            reusable = false;
        }
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = map;
        return Ok(Some(Parsed {
            parts,
            framing,
            reusable,
        }));
    }
}

/// The names most responses carry, in the spellings servers send (nginx, Apache, Go, Node
/// write them capitalised; HTTP/2-minded ones in lower case): one length switch and a
/// comparison instead of `HeaderName::from_bytes`'s lower-casing copy and its lookup (about
/// 100 instructions a name, five names a response in the benchmarks). The same `HeaderName`
/// either way (test `known_names_are_what_from_bytes_makes`); anything else goes the long way.
fn known_name(raw: &[u8]) -> Option<HeaderName> {
    use http::header::{
        ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, DATE, ETAG, EXPIRES,
        LAST_MODIFIED, LOCATION, SET_COOKIE, VARY,
    };
    Some(match raw {
        b"Date" | b"date" => DATE,
        b"Vary" | b"vary" => VARY,
        b"ETag" | b"Etag" | b"etag" => ETAG,
        b"Server" | b"server" => SERVER,
        b"Expires" | b"expires" => EXPIRES,
        b"Location" | b"location" => LOCATION,
        b"Connection" | b"connection" => CONNECTION,
        b"Set-Cookie" | b"set-cookie" => SET_COOKIE,
        b"Content-Type" | b"content-type" => CONTENT_TYPE,
        b"Accept-Ranges" | b"accept-ranges" => ACCEPT_RANGES,
        b"Cache-Control" | b"cache-control" => CACHE_CONTROL,
        b"Last-Modified" | b"last-modified" => LAST_MODIFIED,
        b"Content-Length" | b"content-length" => CONTENT_LENGTH,
        b"Content-Encoding" | b"content-encoding" => CONTENT_ENCODING,
        b"Transfer-Encoding" | b"transfer-encoding" => TRANSFER_ENCODING,
        _ => return None,
    })
}

/// A response header value as `httparse` delimited it, without `HeaderValue`'s byte-by-byte
/// check (about 100 instructions a value).
///
/// Sound because the check could not fail: `HeaderValue` accepts exactly the bytes
/// `b >= 0x20 && b != 0x7f || b == b'\t'` (http 1.x `value.rs`, `is_valid`), and httparse,
/// with the `ParserConfig::default()` `parse_head` uses (obsolete line folding not allowed,
/// invalid fields an error rather than skipped), ends a value at CR LF or LF and fails the
/// head on any byte outside `HEADER_VALUE_MAP`: `\t`, `0x20..=0x7e`, `0x80..=0xff`, the same
/// set (httparse 1.x `lib.rs`). hyper's client and server build their header values from
/// httparse's the same way (hyper `proto/h1/role.rs`, `header_value!`). In a debug build
/// `from_maybe_shared_unchecked` checks anyway and panics on a mismatch, so the test suite
/// would catch an httparse that accepted more (test
/// `control_bytes_in_a_value_fail_the_head`).
#[allow(unsafe_code)]
fn parsed_value(bytes: Bytes) -> HeaderValue {
    // SAFETY: `bytes` is a field value httparse accepted (see above). The requirement is a
    // valid header value: http's doc for the function says "valid UTF-8", but the type holds
    // obs-text (`from_bytes` accepts 0x80..=0xff) and every `&str` view of it (`to_str`)
    // checks the bytes first; the debug build's check is `from_bytes`'s, not a UTF-8 one.
    unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) }
}

/// A `Content-Length` value: digits, possibly a comma list of equal values (RFC 9110 §8.6).
fn parse_length(raw: &[u8]) -> Result<u64, Error> {
    let mut found: Option<u64> = None;
    for part in raw.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(Error::Framing("invalid Content-Length"));
        }
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(Error::Framing("differing Content-Length values"));
        }
        found = Some(n);
    }
    found.ok_or(Error::Framing("invalid Content-Length"))
}

/// Sends a request without a body on `conn` and reads the response head. On success the
/// response's body reads the rest from `conn`, which it takes, and `headers` is left empty:
/// its map holds the response's fields (see [`parse_head`]).
pub(crate) async fn send(
    mut conn: Conn,
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
) -> Result<(http::response::Parts, Body), Failed> {
    let mut head = std::mem::take(&mut conn.head);
    encode_head(&mut head, method, uri, headers);
    let written = conn.stream.write_all(&head).await;
    conn.head = head;
    if let Err(e) = written {
        return Err(Failed {
            error: Error::Io(e),
            nothing_received: true,
            written: false,
        });
    }
    let head_request = method == Method::HEAD;
    let mut received = !conn.buf.is_empty();
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf, &mut conn.fields, head_request, headers) {
                Ok(Some(parsed)) => {
                    let body = Body {
                        conn: Some(conn),
                        framing: parsed.framing,
                        reusable: parsed.reusable,
                        done: None,
                    };
                    return Ok((parsed.parts, body));
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(Failed {
                        error,
                        nothing_received: false,
                        written: true,
                    })
                }
            }
        }
        conn.buf.reserve(READ_SIZE);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) => {
                return Err(Failed {
                    error: if received {
                        Error::Truncated
                    } else {
                        Error::ClosedEarly
                    },
                    nothing_received: !received,
                    written: true,
                })
            }
            Ok(_) => received = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failed {
                    nothing_received: !received,
                    written: true,
                    error: Error::Io(e),
                })
            }
        }
    }
}

/// A response body read from the upstream connection by whoever polls it (the client's
/// connection task). Ended cleanly on a reusable connection, it hands the connection to its
/// `done` callback; dropped early or failed, the connection is closed with it.
pub(crate) struct Body {
    conn: Option<Conn>,
    framing: Framing,
    reusable: bool,
    done: Option<Home>,
}

/// One step of the decoder over the bytes already read.
enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    More,
}

impl Body {
    /// Sets what happens to the connection once the body has ended; called at once when it
    /// has no body at all.
    pub fn on_done(&mut self, done: Home) {
        self.done = Some(done);
        if self.framing == Framing::Done {
            self.finish();
        }
    }

    /// The body has ended: the connection goes to `done` if it can carry another request.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Bytes beyond the response (an upstream answering more than asked) would be read as
        // the next answer: such a connection is not reused.
        if self.reusable && conn.buf.is_empty() {
            if let Some(done) = self.done.take() {
                done.put(conn);
            }
        }
    }

    fn decode(&mut self) -> Result<Step, Error> {
        match self.conn.as_mut() {
            Some(conn) => decode(&mut self.framing, &mut conn.buf),
            None => Ok(Step::End),
        }
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.conn = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(error)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        loop {
            match self.decode() {
                Ok(Step::Data(data)) => {
                    if self.framing == Framing::Done {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::Trailers(trailers)) => {
                    self.finish();
                    if trailers.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Ok(Step::End) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => return self.fail(e),
            }
            let close = self.framing == Framing::Close;
            let want = match self.framing {
                Framing::Length(left) => usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .clamp(1024, 4 * READ_SIZE),
                _ => READ_SIZE,
            };
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.buf.reserve(want);
            match conn.stream.try_read_buf(&mut conn.buf) {
                Ok(0) if close => {
                    self.reusable = false;
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return self.fail(Error::Truncated),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match conn.stream.poll_read_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return self.fail(Error::Io(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(Error::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

/// Takes the next piece of a body framed by `framing` out of `buf`.
fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Step, Error> {
    loop {
        match framing {
            Framing::Done => return Ok(Step::End),
            Framing::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= take as u64;
                if *left == 0 {
                    *framing = Framing::Done;
                }
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Framing::Close => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                return Ok(Step::Data(buf.split().freeze()));
            }
            Framing::Chunked(chunk) => match chunk {
                Chunk::Size => {
                    if !buf.first().is_some_and(u8::is_ascii_hexdigit) {
                        if buf.is_empty() {
                            return Ok(Step::More);
                        }
                        return Err(Error::Framing("invalid chunk size"));
                    }
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            let _ = buf.split_to(used);
                            *chunk = if size == 0 {
                                Chunk::Trailers
                            } else {
                                Chunk::Data(size)
                            };
                        }
                        Ok(httparse::Status::Partial) => {
                            if buf.len() > MAX_CHUNK_LINE {
                                return Err(Error::Framing("chunk size line too long"));
                            }
                            return Ok(Step::More);
                        }
                        Err(_) => return Err(Error::Framing("invalid chunk size")),
                    }
                }
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    *left -= take as u64;
                    if *left == 0 {
                        *chunk = Chunk::DataEnd;
                    }
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(Error::Framing("chunk data not ended by CRLF"));
                        }
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::Framing("chunk data not ended by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    *chunk = Chunk::Size;
                }
                Chunk::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        let _ = buf.split_to(2);
                        *framing = Framing::Done;
                        return Ok(Step::End);
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let trailers = match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((used, fields))) => {
                            let mut map = HeaderMap::with_capacity(fields.len());
                            for field in fields {
                                let name = HeaderName::from_bytes(field.name.as_bytes())
                                    .map_err(|_| Error::Framing("invalid trailer name"))?;
                                let value = HeaderValue::from_bytes(field.value)
                                    .map_err(|_| Error::Framing("invalid trailer value"))?;
                                map.append(name, value);
                            }
                            let _ = buf.split_to(used);
                            map
                        }
                        Ok(httparse::Status::Partial) => {
                            if buf.len() > MAX_HEAD {
                                return Err(Error::Framing("trailers too large"));
                            }
                            return Ok(Step::More);
                        }
                        Err(e) => return Err(Error::Parse(e)),
                    };
                    *framing = Framing::Done;
                    return Ok(Step::Trailers(trailers));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
