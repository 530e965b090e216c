use super::*;

fn parse(bytes: &[u8], head_request: bool) -> Result<Option<Parsed>, Error> {
    let mut buf = BytesMut::from(bytes);
    parse_head(
        &mut buf,
        &mut Vec::new(),
        head_request,
        &mut HeaderMap::new(),
    )
}

fn parsed(bytes: &[u8]) -> Parsed {
    parse(bytes, false)
        .expect("a valid head")
        .expect("a complete head")
}

/// Feeds `wire` to the decoder in two pieces split at `at`; the data and trailers it gave,
/// or its error.
fn decode_split(framing: Framing, wire: &[u8], at: usize) -> Result<(Vec<u8>, HeaderMap), Error> {
    let mut framing = framing;
    let mut buf = BytesMut::from(&wire[..at]);
    let mut data = Vec::new();
    let mut trailers = HeaderMap::new();
    let mut fed = false;
    // Bounded: every step takes at least one byte or ends.
    for _ in 0..(wire.len() * 4 + 8) {
        match decode(&mut framing, &mut buf)? {
            Step::Data(bytes) => data.extend_from_slice(&bytes),
            Step::Trailers(map) => trailers = map,
            Step::End => return Ok((data, trailers)),
            Step::More if !fed => {
                buf.extend_from_slice(&wire[at..]);
                fed = true;
            }
            Step::More => return Err(Error::Truncated),
        }
    }
    panic!("the decoder did not finish");
}

const CHUNKED: &[u8] =
    b"5\r\nhello\r\n1;ext=\"x\"\r\n,\r\n6\r\n world\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";

#[test]
fn chunked_body_decodes_at_every_split_point() {
    for at in 0..=CHUNKED.len() {
        let (data, trailers) = decode_split(Framing::Chunked(Chunk::Size), CHUNKED, at)
            .unwrap_or_else(|e| panic!("split at {at}: {e}"));
        assert_eq!(data, b"hello, world", "split at {at}");
        assert_eq!(trailers.get("x-sum").unwrap(), "1", "split at {at}");
        assert_eq!(trailers.get("expires").unwrap(), "never", "split at {at}");
    }
}

#[test]
fn chunked_body_without_trailers_ends_at_the_empty_line() {
    let wire = b"3\r\nabc\r\n0\r\n\r\n";
    for at in 0..=wire.len() {
        let (data, trailers) =
            decode_split(Framing::Chunked(Chunk::Size), wire, at).expect("valid");
        assert_eq!(data, b"abc");
        assert!(trailers.is_empty());
    }
}

#[test]
fn chunked_decoding_leaves_what_follows_the_body() {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
    let mut data = Vec::new();
    loop {
        match decode(&mut framing, &mut buf).expect("valid") {
            Step::Data(bytes) => data.extend_from_slice(&bytes),
            Step::End => break,
            _ => panic!("unexpected step"),
        }
    }
    assert_eq!(data, b"a");
    assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n");
}

#[test]
fn hostile_chunk_sizes_are_errors() {
    for wire in [
        &b"fffffffffffffffff\r\nx"[..], // 17 hex digits: over u64
        b"zz\r\nab\r\n0\r\n\r\n",
        b"\r\nab\r\n0\r\n\r\n",
        b"-1\r\nab\r\n0\r\n\r\n",
        b" 2\r\nab\r\n0\r\n\r\n",
        b"2\nab\r\n0\r\n\r\n",
        b"2\r\nabX\r\n0\r\n\r\n", // data not ended by CRLF
        b"2\r\nab\rX0\r\n\r\n",
    ] {
        for at in 0..=wire.len() {
            let got = decode_split(Framing::Chunked(Chunk::Size), wire, at);
            assert!(
                matches!(got, Err(Error::Framing(_))),
                "{:?} split at {at}: {:?}",
                String::from_utf8_lossy(wire),
                got.map(|(d, _)| d)
            );
        }
    }
}

#[test]
fn an_endless_chunk_size_line_is_an_error() {
    let mut wire = b"1;".to_vec();
    wire.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE + 10));
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&wire[..]);
    assert!(matches!(
        decode(&mut framing, &mut buf),
        Err(Error::Framing(_))
    ));
}

#[test]
fn a_huge_chunk_is_passed_on_as_it_arrives() {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&b"ffffffffffff\r\nabc"[..]);
    match decode(&mut framing, &mut buf).expect("valid") {
        Step::Data(bytes) => assert_eq!(&bytes[..], b"abc"),
        _ => panic!("expected data"),
    }
    assert_eq!(framing, Framing::Chunked(Chunk::Data(0xffff_ffff_ffff - 3)));
}

#[test]
fn content_length_body_stops_at_its_length() {
    let wire = b"0123456789";
    for at in 0..=wire.len() {
        let (data, _) = decode_split(Framing::Length(10), wire, at).expect("valid");
        assert_eq!(data, wire);
    }
    let mut framing = Framing::Length(3);
    let mut buf = BytesMut::from(&b"abcdef"[..]);
    match decode(&mut framing, &mut buf).expect("valid") {
        Step::Data(bytes) => assert_eq!(&bytes[..], b"abc"),
        _ => panic!("expected data"),
    }
    assert_eq!(framing, Framing::Done);
    assert_eq!(&buf[..], b"def");
}

#[test]
fn content_length_frames_the_body_and_keeps_the_connection() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: b\r\n\r\n");
    assert_eq!(p.parts.status, 200);
    assert_eq!(p.framing, Framing::Length(12));
    assert!(p.reusable);
    assert_eq!(p.parts.headers["x-a"], "b");
    assert_eq!(p.parts.headers["content-length"], "12");
    let p = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(p.framing, Framing::Done);
    assert!(p.reusable);
}

#[test]
fn repeated_equal_content_lengths_are_one() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n");
    assert_eq!(p.framing, Framing::Length(4));
    let p = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n");
    assert_eq!(p.framing, Framing::Length(4));
}

#[test]
fn differing_or_invalid_content_lengths_are_errors() {
    for head in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ] {
        assert!(
            matches!(parse(head, false), Err(Error::Framing(_))),
            "{}",
            String::from_utf8_lossy(head)
        );
    }
}

#[test]
fn chunked_beside_content_length_is_read_chunked_and_not_reused() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(p.framing, Framing::Chunked(Chunk::Size));
    assert!(!p.reusable);
}

#[test]
fn a_transfer_coding_not_ending_in_chunked_reads_until_close() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(p.framing, Framing::Close);
    assert!(!p.reusable);
    let p = parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
    assert_eq!(p.framing, Framing::Chunked(Chunk::Size));
    assert!(p.reusable);
}

#[test]
fn no_framing_reads_until_close() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\n");
    assert_eq!(p.framing, Framing::Close);
    assert!(!p.reusable);
}

#[test]
fn head_204_and_304_have_no_body() {
    let p = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(p.framing, Framing::Done);
    assert!(p.reusable);
    assert_eq!(p.parts.headers["content-length"], "100");
    for head in [
        &b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let p = parsed(head);
        assert_eq!(p.framing, Framing::Done);
    }
}

#[test]
fn informational_heads_are_skipped() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
    );
    let p = parse_head(&mut buf, &mut Vec::new(), false, &mut HeaderMap::new())
        .unwrap()
        .unwrap();
    assert_eq!(p.parts.status, 200);
    assert!(!p.parts.headers.contains_key("link"));
    assert_eq!(&buf[..], b"ok");
    // A lone 1xx is consumed and the final head awaited.
    let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    assert!(
        parse_head(&mut buf, &mut Vec::new(), false, &mut HeaderMap::new())
            .unwrap()
            .is_none()
    );
    assert!(buf.is_empty());
}

#[test]
fn connection_close_and_http10_are_not_reused() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n");
    assert!(!p.reusable);
    let p = parsed(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(p.parts.version, Version::HTTP_10);
    assert!(!p.reusable);
    let p = parsed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n");
    assert!(p.reusable);
    let p = parsed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(p.framing, Framing::Done);
    assert!(!p.reusable);
}

#[test]
fn partial_heads_wait_and_oversized_or_invalid_ones_fail() {
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    for at in 0..full.len() {
        assert!(parse(&full[..at], false).unwrap().is_none(), "at {at}");
    }
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(2000));
    while big.len() <= MAX_HEAD {
        big.extend_from_slice(filler.as_bytes());
    }
    // Complete, but over the limit.
    let mut complete = big.clone();
    complete.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&complete, false), Err(Error::HeadTooLarge)));
    assert!(matches!(parse(&big, false), Err(Error::HeadTooLarge)));
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&many, false), Err(Error::Parse(_))));
    assert!(matches!(
        parse(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", false),
        Err(Error::Parse(_))
    ));
    assert!(matches!(
        parse(b"HTTX/1.1 200 OK\r\n\r\n", false),
        Err(Error::Parse(_))
    ));
}

#[test]
fn the_request_head_is_written_from_the_parts() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.com"));
    headers.append("x-many", HeaderValue::from_static("1"));
    headers.append("x-many", HeaderValue::from_static("2"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    let mut out = Vec::new();
    let uri: Uri = "/a/b?c=d".parse().unwrap();
    encode_head(&mut out, &Method::GET, &uri, &headers);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-many: 1\r\nx-many: 2\r\n\r\n"
    );
    let mut out = Vec::new();
    encode_head(
        &mut out,
        &Method::OPTIONS,
        &Uri::from_static("*"),
        &HeaderMap::new(),
    );
    assert_eq!(out, b"OPTIONS * HTTP/1.1\r\n\r\n");
}

/// A loopback upstream that answers one connection with `answer` (after reading a request
/// head), then closes; the client's connection to it.
async fn upstream(answer: &'static [u8]) -> Conn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = socket.write_all(answer).await;
    });
    Conn::new(TcpStream::connect(addr).await.unwrap())
}

async fn collect(mut body: Body) -> Result<Vec<u8>, Error> {
    use http_body_util::BodyExt;
    let mut data = Vec::new();
    while let Some(frame) = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("bounded")
    {
        if let Ok(bytes) = frame?.into_data() {
            data.extend_from_slice(&bytes);
        }
    }
    Ok(data)
}

#[tokio::test]
async fn a_body_read_until_close_ends_cleanly() {
    let conn = upstream(b"HTTP/1.1 200 OK\r\n\r\nall of it").await;
    let (parts, body) = send(
        conn,
        &Method::GET,
        &Uri::from_static("/"),
        &mut HeaderMap::new(),
    )
    .await
    .expect("answered");
    assert_eq!(parts.status, 200);
    assert_eq!(collect(body).await.unwrap(), b"all of it");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let conn = upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort").await;
    let (_, body) = send(
        conn,
        &Method::GET,
        &Uri::from_static("/"),
        &mut HeaderMap::new(),
    )
    .await
    .expect("answered");
    assert!(matches!(collect(body).await, Err(Error::Truncated)));
    let conn = upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").await;
    let (_, body) = send(
        conn,
        &Method::GET,
        &Uri::from_static("/"),
        &mut HeaderMap::new(),
    )
    .await
    .expect("answered");
    assert!(matches!(collect(body).await, Err(Error::Truncated)));
}

#[tokio::test]
async fn a_close_before_any_answer_says_nothing_was_received() {
    let conn = upstream(b"").await;
    let failed = send(
        conn,
        &Method::GET,
        &Uri::from_static("/"),
        &mut HeaderMap::new(),
    )
    .await
    .err()
    .expect("no answer");
    assert!(failed.nothing_received);
    assert!(matches!(failed.error, Error::ClosedEarly | Error::Io(_)));
    let conn = upstream(b"HTTP/1.1 200 OK\r\n").await;
    let failed = send(
        conn,
        &Method::GET,
        &Uri::from_static("/"),
        &mut HeaderMap::new(),
    )
    .await
    .err()
    .expect("a cut head");
    assert!(!failed.nothing_received);
    assert!(matches!(failed.error, Error::Truncated));
}

/// hyper's server reuses the last response's header map for the connection's next request,
/// where `headers::add_forwarded` adds its fields: a small response's map has room for them.
#[test]
fn a_small_response_map_has_room_for_the_next_request_and_its_forwarded_fields() {
    let p = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(p.parts.headers.len(), 1);
    assert!(p.parts.headers.capacity() >= MIN_MAP);
}

/// The request's map (already written) becomes the response's, emptied, and only once a
/// complete head is there: a partial head or a 1xx leaves it whole for a repeat.
#[test]
fn the_request_map_is_taken_for_the_response_only_with_a_complete_head() {
    let mut request = HeaderMap::with_capacity(32);
    request.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
    request.insert(http::header::HOST, HeaderValue::from_static("a.test"));
    let capacity = request.capacity();
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Len"[..]);
    assert!(parse_head(&mut buf, &mut Vec::new(), false, &mut request)
        .unwrap()
        .is_none());
    assert_eq!(request.len(), 2);
    buf.extend_from_slice(b"gth: 3\r\nX-A: b\r\n\r\nabc");
    let p = parse_head(&mut buf, &mut Vec::new(), false, &mut request)
        .unwrap()
        .expect("a complete head");
    assert!(request.is_empty());
    assert_eq!(p.parts.status, StatusCode::OK);
    assert_eq!(p.parts.headers.len(), 2);
    assert_eq!(p.parts.headers.capacity(), capacity);
    assert!(p.parts.headers.get("x-forwarded-for").is_none());
    assert_eq!(p.parts.headers["x-a"], "b");
    assert!(matches!(p.framing, Framing::Length(3)));
    assert_eq!(&buf[..], b"abc");
}

#[test]
fn known_names_are_what_from_bytes_makes() {
    for raw in [
        "Date",
        "Vary",
        "ETag",
        "Etag",
        "Server",
        "Expires",
        "Location",
        "Connection",
        "Set-Cookie",
        "Content-Type",
        "Accept-Ranges",
        "Cache-Control",
        "Last-Modified",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
    ] {
        for spelling in [raw.to_owned(), raw.to_ascii_lowercase()] {
            let fast = known_name(spelling.as_bytes()).expect("a known name");
            let slow = HeaderName::from_bytes(spelling.as_bytes()).expect("a valid name");
            assert_eq!(fast, slow, "{spelling}");
            assert_eq!(fast.as_str(), spelling.to_ascii_lowercase());
        }
    }
    // Other spellings and names take the long way, with the same result.
    for other in [
        "CONTENT-LENGTH",
        "content-Length",
        "X-Date",
        "Dat",
        "Keep-Alive",
    ] {
        assert!(known_name(other.as_bytes()).is_none(), "{other}");
    }
    let head = parsed(b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 0\r\nX-Custom: a\r\n\r\n");
    assert_eq!(head.parts.headers["content-length"], "0");
    assert_eq!(head.parts.headers["x-custom"], "a");
    assert_eq!(head.framing, Framing::Done);
}

/// `parsed_value` takes httparse's values unchecked: every byte `HeaderValue` refuses must
/// have failed the head first (a debug build would also panic in `parsed_value`).
#[test]
fn control_bytes_in_a_value_fail_the_head() {
    for b in (0u8..0x20).chain([0x7f]) {
        if b == b'\t' {
            continue;
        }
        let mut head = b"HTTP/1.1 200 OK\r\nX-A: a".to_vec();
        head.push(b);
        head.extend_from_slice(b"b\r\nContent-Length: 0\r\n\r\n");
        match parse(&head, false) {
            // A CR or LF ends the value: what follows is not a field (or a bare CR is invalid).
            Err(Error::Parse(_)) => {}
            other => panic!("byte {b:#x}: {:?}", other.map(|p| p.map(|p| p.parts))),
        }
    }
    // Obsolete line folding is refused, not joined into a value holding CR LF.
    assert!(matches!(
        parse(
            b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            false
        ),
        Err(Error::Parse(_))
    ));
    // Tabs, visible ASCII and obs-text (0x80-0xff) are valid values, kept byte for byte.
    let head = parsed(b"HTTP/1.1 200 OK\r\nX-A: a\tb \xff~\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(head.parts.headers["x-a"].as_bytes(), b"a\tb \xff~");
    assert_eq!(
        head.parts.headers["x-a"],
        HeaderValue::from_bytes(b"a\tb \xff~").unwrap()
    );
}

/// `Connection` with only connection options stays out of the response map (the reuse
/// decision has read it; `finish_headers` would remove it); one naming other fields stays in,
/// so those fields are removed downstream.
#[test]
fn a_connection_field_naming_no_other_field_is_read_and_left_out() {
    for value in [
        "keep-alive",
        "Keep-Alive",
        "close",
        "close, keep-alive",
        " , close",
    ] {
        let head = format!("HTTP/1.1 200 OK\r\nConnection: {value}\r\nContent-Length: 2\r\n\r\n");
        let p = parsed(head.as_bytes());
        assert!(p.parts.headers.get(CONNECTION).is_none(), "{value}");
        assert_eq!(p.parts.headers[CONTENT_LENGTH], "2");
        assert_eq!(p.reusable, !value.contains("close"), "{value}");
    }
    let p = parsed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n");
    assert!(p.reusable);
    assert!(p.parts.headers.get(CONNECTION).is_none());
    let p = parsed(
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: a\r\nContent-Length: 2\r\n\r\n",
    );
    assert!(!p.reusable);
    assert_eq!(p.parts.headers[CONNECTION], "close, X-Secret");
    // What the client gets: the named field is gone with `Connection`.
    let mut headers = p.parts.headers;
    crate::proxy::service::finish_headers(&mut headers, false);
    assert!(headers.get(CONNECTION).is_none());
    assert!(headers.get("x-secret").is_none());
}

/// The upstream's `Server` is never passed on (`finish_headers` writes Portico's), so the
/// response map does not carry it.
#[test]
fn the_upstream_server_field_is_left_out_and_portico_answers_as_itself() {
    let p = parsed(
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nserver: b\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(p.parts.headers.get(SERVER).is_none());
    let mut headers = p.parts.headers;
    crate::proxy::service::finish_headers(&mut headers, false);
    assert_eq!(headers.get_all(SERVER).iter().count(), 1);
    assert_eq!(headers[SERVER], crate::proxy::SERVER);
}
