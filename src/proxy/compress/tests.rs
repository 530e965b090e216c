//! The decision (ingress-nginx's gzip/brotli rules), the negotiation and the encoder body.
//! End-to-end cases over real sockets are in tests/compress.rs.

use std::collections::BTreeMap;
use std::io::Read as _;

use http_body_util::{BodyExt, Full, StreamBody};
use proptest::prelude::*;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn accept(value: &str) -> Accept {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
    Accept::parse(&h)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn full(bytes: Vec<u8>) -> ProxyBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed()
}

#[test]
fn off_by_default_with_ingress_nginx_defaults() {
    let (settings, problems) = from_configmap(&BTreeMap::new());
    assert!(problems.is_empty());
    assert!(!settings.enabled());
    let (settings, problems) =
        from_configmap(&map(&[("use-gzip", "true"), ("enable-brotli", "true")]));
    assert!(problems.is_empty(), "{problems:?}");
    let gzip = settings.gzip.unwrap();
    assert_eq!(gzip.level, 1);
    assert_eq!(gzip.min_length, 256);
    let brotli = settings.brotli.unwrap();
    assert_eq!(brotli.level, 4);
    assert_eq!(brotli.min_length, 20);
    let Types::List(types) = gzip.types else {
        panic!("a list")
    };
    assert!(types.contains(&"text/html".to_string()));
    assert!(types.contains(&"application/json".to_string()));
    assert!(!types.contains(&"text/event-stream".to_string()));
    let Types::List(types) = brotli.types else {
        panic!("a list")
    };
    assert!(types.contains(&"application/xml+rss".to_string()));
}

#[test]
fn invalid_values_are_named_and_defaults_apply() {
    let (settings, problems) = from_configmap(&map(&[
        ("use-gzip", "yes please"),
        ("enable-brotli", "True"),
        ("brotli-level", "12"),
        ("gzip-level", "0"),
        ("gzip-min-length", "-1"),
        ("brotli-types", "text/plain nonsense"),
    ]));
    assert!(settings.gzip.is_none());
    let brotli = settings.brotli.unwrap();
    assert_eq!(brotli.level, 4);
    assert!(brotli.types.matches(Some("application/json")));
    assert_eq!(problems.len(), 5, "{problems:?}");
    for key in [
        "use-gzip",
        "brotli-level",
        "gzip-level",
        "gzip-min-length",
        "brotli-types",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(key)),
            "{key} named in {problems:?}"
        );
    }
}

#[test]
fn a_megabyte_of_garbage_is_named_not_copied() {
    let huge = "x".repeat(1 << 20);
    let (settings, problems) = from_configmap(&map(&[
        ("use-gzip", "true"),
        ("gzip-types", &huge),
        ("gzip-level", &huge),
    ]));
    assert!(settings.gzip.is_some());
    assert_eq!(problems.len(), 2);
    assert!(problems.iter().all(|p| p.len() < 512), "{problems:?}");
}

#[test]
fn types_always_include_text_html_and_star_matches_anything() {
    let types = Types::parse("application/octet-stream").unwrap();
    assert!(types.matches(Some("text/html; charset=utf-8")));
    assert!(types.matches(Some("Application/Octet-Stream")));
    assert!(!types.matches(Some("application/xml")));
    assert!(!types.matches(None));
    let any = Types::parse("text/plain *").unwrap();
    assert_eq!(any, Types::Any);
    assert!(any.matches(None));
}

#[test]
fn accept_encoding_qvalues_star_and_case() {
    assert_eq!(
        accept("gzip"),
        Accept {
            gzip: true,
            br: false
        }
    );
    assert_eq!(
        accept("GZIP, Br"),
        Accept {
            gzip: true,
            br: true
        }
    );
    assert_eq!(
        accept("gzip;q=0, br"),
        Accept {
            gzip: false,
            br: true
        }
    );
    assert_eq!(accept("gzip; q=0.000"), Accept::default());
    assert_eq!(
        accept("gzip;q=0.001"),
        Accept {
            gzip: true,
            br: false
        }
    );
    assert_eq!(
        accept("*"),
        Accept {
            gzip: true,
            br: true
        }
    );
    assert_eq!(
        accept("br;q=0, *;q=0.5"),
        Accept {
            gzip: true,
            br: false
        }
    );
    assert_eq!(
        accept("*;q=0, gzip"),
        Accept {
            gzip: true,
            br: false
        }
    );
    assert_eq!(accept("identity"), Accept::default());
    assert_eq!(accept("deflate, x-gzip"), Accept::default());
    assert_eq!(accept("gzip;q=2"), Accept::default());
    assert_eq!(Accept::parse(&HeaderMap::new()), Accept::default());
    let mut two = HeaderMap::new();
    two.append(ACCEPT_ENCODING, HeaderValue::from_static("deflate"));
    two.append(ACCEPT_ENCODING, HeaderValue::from_static("br"));
    assert_eq!(
        Accept::parse(&two),
        Accept {
            gzip: false,
            br: true
        }
    );
}

fn both() -> CompressionSettings {
    from_configmap(&map(&[("use-gzip", "true"), ("enable-brotli", "true")])).0
}

fn head(content_type: &str, length: Option<usize>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    if let Some(n) = length {
        h.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    h
}

fn offer(accept_encoding: &str) -> Offer {
    let mut h = HeaderMap::new();
    h.insert(
        ACCEPT_ENCODING,
        HeaderValue::from_str(accept_encoding).unwrap(),
    );
    Offer::new(&Method::GET, Version::HTTP_11, &h)
}

/// Runs `apply` and returns the chosen Content-Encoding and the headers.
fn decide(
    settings: &CompressionSettings,
    offer: Offer,
    status: StatusCode,
    mut headers: HeaderMap,
) -> (Option<String>, HeaderMap) {
    let _ = apply(
        settings,
        offer,
        status,
        &mut headers,
        full(vec![b'a'; 1000]),
    );
    let ce = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap().to_string());
    (ce, headers)
}

#[test]
fn brotli_is_preferred_when_both_are_accepted() {
    // ngx_brotli's filter runs before gzip's, whatever the q-values say.
    let (ce, h) = decide(
        &both(),
        offer("gzip;q=1, br;q=0.1"),
        StatusCode::OK,
        head("text/html", Some(1000)),
    );
    assert_eq!(ce.as_deref(), Some("br"));
    assert!(h.get(CONTENT_LENGTH).is_none());
    assert_eq!(h.get(VARY).unwrap(), "Accept-Encoding");
}

#[test]
fn gzip_takes_what_brotli_declines() {
    let settings = from_configmap(&map(&[
        ("use-gzip", "true"),
        ("enable-brotli", "true"),
        ("brotli-min-length", "2000"),
    ]))
    .0;
    let (ce, _) = decide(
        &settings,
        offer("br, gzip"),
        StatusCode::OK,
        head("text/html", Some(1000)),
    );
    assert_eq!(ce.as_deref(), Some("gzip"));
}

#[test]
fn only_200_403_404_with_a_body_are_compressed() {
    for status in [StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND] {
        let (ce, _) = decide(&both(), offer("gzip"), status, head("text/plain", None));
        assert_eq!(ce.as_deref(), Some("gzip"), "{status}");
    }
    for status in [
        StatusCode::PARTIAL_CONTENT,
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::MOVED_PERMANENTLY,
    ] {
        let (ce, h) = decide(&both(), offer("gzip"), status, head("text/plain", None));
        assert_eq!(ce, None, "{status}");
        assert!(h.get(VARY).is_none(), "{status}");
    }
    let mut h = HeaderMap::new();
    h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let head_request = Offer::new(&Method::HEAD, Version::HTTP_11, &h);
    let (ce, _) = decide(
        &both(),
        head_request,
        StatusCode::OK,
        head("text/plain", None),
    );
    assert_eq!(ce, None);
}

#[test]
fn encoded_and_range_responses_are_left_alone() {
    let mut h = head("text/plain", Some(1000));
    h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    let (ce, h) = decide(&both(), offer("br"), StatusCode::OK, h);
    assert_eq!(ce.as_deref(), Some("gzip"));
    assert_eq!(h.get(CONTENT_LENGTH).unwrap(), "1000");
    let mut h = head("text/plain", Some(1000));
    h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 0-999/5000"));
    let (ce, _) = decide(&both(), offer("br"), StatusCode::OK, h);
    assert_eq!(ce, None);
}

#[test]
fn min_length_counts_only_a_known_length() {
    // test/e2e/settings/gzip.go "should set gzip_min_length to 100": 99 bytes plain, 100 gzip.
    let settings = from_configmap(&map(&[
        ("use-gzip", "true"),
        ("gzip-min-length", "100"),
        ("gzip-types", "application/octet-stream"),
    ]))
    .0;
    let t = "application/octet-stream";
    assert_eq!(
        decide(&settings, offer("gzip"), StatusCode::OK, head(t, Some(99))).0,
        None
    );
    assert_eq!(
        decide(&settings, offer("gzip"), StatusCode::OK, head(t, Some(100)))
            .0
            .as_deref(),
        Some("gzip")
    );
    // Chunked upstream responses have no length to compare.
    assert_eq!(
        decide(&settings, offer("gzip"), StatusCode::OK, head(t, None))
            .0
            .as_deref(),
        Some("gzip")
    );
}

#[test]
fn vary_is_added_even_when_the_client_takes_nothing() {
    let (ce, h) = decide(
        &both(),
        offer("identity"),
        StatusCode::OK,
        head("text/css", None),
    );
    assert_eq!(ce, None);
    assert_eq!(h.get(VARY).unwrap(), "Accept-Encoding");
    // An upstream Vary that already covers it is not repeated.
    let mut headers = head("text/css", None);
    headers.insert(VARY, HeaderValue::from_static("Origin, accept-encoding"));
    let (_, h) = decide(&both(), offer("gzip"), StatusCode::OK, headers);
    assert_eq!(h.get_all(VARY).iter().count(), 1);
    // A type nobody lists gets no Vary.
    let (_, h) = decide(
        &both(),
        offer("gzip"),
        StatusCode::OK,
        head("image/png", None),
    );
    assert!(h.get(VARY).is_none());
}

#[test]
fn etag_becomes_weak_and_ranges_are_no_longer_offered() {
    let mut h = head("application/json", None);
    h.insert(ETAG, HeaderValue::from_static("\"abc\""));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (_, h) = decide(&both(), offer("gzip"), StatusCode::OK, h);
    assert_eq!(h.get(ETAG).unwrap(), "W/\"abc\"");
    assert!(h.get(ACCEPT_RANGES).is_none());
    let mut h = head("application/json", None);
    h.insert(ETAG, HeaderValue::from_static("W/\"abc\""));
    let (_, h) = decide(&both(), offer("gzip"), StatusCode::OK, h);
    assert_eq!(h.get(ETAG).unwrap(), "W/\"abc\"");
}

#[test]
fn http10_gets_brotli_but_not_gzip() {
    // ingress-nginx sets `gzip_http_version 1.1`; ngx_brotli has no such check.
    let mut h = HeaderMap::new();
    h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
    let old = Offer::new(&Method::GET, Version::HTTP_10, &h);
    let gzip_only = from_configmap(&map(&[("use-gzip", "true")])).0;
    assert_eq!(
        decide(&gzip_only, old, StatusCode::OK, head("text/html", None)).0,
        None
    );
    assert_eq!(
        decide(&both(), old, StatusCode::OK, head("text/html", None))
            .0
            .as_deref(),
        Some("br")
    );
}

async fn collect(body: ProxyBody) -> Vec<u8> {
    body.collect().await.unwrap().to_bytes().to_vec()
}

fn corpus(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("<li class=\"item\">{i} of {n}</li>\n").into_bytes())
        .collect()
}

#[tokio::test]
async fn round_trip_gzip_and_brotli_over_large_chunks() {
    let body = corpus(20_000);
    assert!(body.len() > 3 * SLICE);
    let gz = collect(compress_body(full(body.clone()), Encoding::Gzip, 1)).await;
    assert_eq!(gunzip(&gz), body);
    assert!(gz.len() < body.len() / 4);
    let br = collect(compress_body(full(body.clone()), Encoding::Brotli, 4)).await;
    assert_eq!(unbrotli(&br), body);
    let empty = collect(compress_body(full(Vec::new()), Encoding::Gzip, 1)).await;
    assert_eq!(gunzip(&empty), b"");
}

type Chunk = Result<Frame<Bytes>, crate::proxy::BodyError>;

fn channel_body() -> (tokio::sync::mpsc::Sender<Chunk>, ProxyBody) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// A chunk that arrives alone is flushed at once: an event stream or a long poll is not held
/// back waiting for more input.
#[tokio::test]
async fn a_lone_chunk_is_flushed_without_waiting_for_more() {
    for encoding in [Encoding::Gzip, Encoding::Brotli] {
        let (tx, body) = channel_body();
        let mut body = compress_body(body, encoding, 1);
        tx.send(Ok(Frame::data(Bytes::from_static(
            b"data: first event\n\n",
        ))))
        .await
        .unwrap();
        let mut got = Vec::new();
        // Frames until the body would wait for the upstream; bounded by the loop count.
        for _ in 0..8 {
            let next = futures_util::FutureExt::now_or_never(body.frame());
            match next {
                Some(Some(Ok(frame))) => got.extend_from_slice(&frame.into_data().unwrap()),
                None => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // What arrived so far decodes to the whole event (a stream decoder, not yet ended).
        let mut decoded = vec![0u8; 64];
        let n = match encoding {
            Encoding::Gzip => flate2::read::GzDecoder::new(&got[..])
                .read(&mut decoded)
                .unwrap(),
            Encoding::Brotli => brotli::Decompressor::new(&got[..], 4096)
                .read(&mut decoded)
                .unwrap(),
        };
        assert_eq!(&decoded[..n], b"data: first event\n\n", "{encoding:?}");
        drop(tx);
        let rest = collect(body).await;
        got.extend_from_slice(&rest);
        let all = match encoding {
            Encoding::Gzip => gunzip(&got),
            Encoding::Brotli => unbrotli(&got),
        };
        assert_eq!(all, b"data: first event\n\n");
    }
}

#[tokio::test]
async fn trailers_follow_the_finished_stream() {
    let (tx, body) = channel_body();
    let body = compress_body(body, Encoding::Gzip, 1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))))
        .await
        .unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    tx.send(Ok(Frame::trailers(trailers))).await.unwrap();
    drop(tx);
    let collected = body.collect().await.unwrap();
    assert_eq!(
        collected.trailers().unwrap().get("grpc-status").unwrap(),
        "0"
    );
    assert_eq!(gunzip(&collected.to_bytes()), b"hello");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// decompress(compress(body)) == body, however the upstream cut the body into frames and
    /// whether or not the upstream paused between them (a pause makes the encoder flush).
    #[test]
    fn round_trip_for_any_chunking(
        body in proptest::collection::vec(any::<u8>(), 0..20_000),
        cuts in proptest::collection::vec((0usize..20_000, any::<bool>()), 0..12),
        brotli_wins in any::<bool>(),
        level in 1u32..=9,
    ) {
        let mut cuts = cuts;
        cuts.sort();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let encoding = if brotli_wins { Encoding::Brotli } else { Encoding::Gzip };
        let out = runtime.block_on(async {
            let (tx, inner) = channel_body();
            let mut compressed = compress_body(inner, encoding, level);
            let mut out = Vec::new();
            let mut start = 0;
            for (cut, pause) in cuts.iter().copied().chain([(body.len(), false)]) {
                let end = cut.min(body.len()).max(start);
                tx.send(Ok(Frame::data(Bytes::copy_from_slice(&body[start..end])))).await.unwrap();
                start = end;
                if pause {
                    // Drain what is ready: the encoder sees the upstream waiting.
                    for _ in 0..64 {
                        match futures_util::FutureExt::now_or_never(compressed.frame()) {
                            Some(Some(Ok(f))) => out.extend_from_slice(&f.into_data().unwrap()),
                            _ => break,
                        }
                    }
                }
            }
            drop(tx);
            out.extend_from_slice(&collect(compressed).await);
            out
        });
        let decoded = match encoding {
            Encoding::Gzip => gunzip(&out),
            Encoding::Brotli => unbrotli(&out),
        };
        prop_assert_eq!(decoded, body);
    }
}
