//! PROXY protocol v1 (text) and v2 (binary) headers, read before anything else on a client
//! connection when `--proxy-protocol` is on, and the `--trusted-proxies` CIDR list.
//!
//! A small parser of our own rather than a crate: the header is at most 107 bytes (v1) or
//! 16 + 216 bytes for the address families we use (v2), only the source address matters, and
//! the parser must read exactly the header and not a byte of the HTTP (or TLS) that follows,
//! which is easiest with `read_exact` on the socket itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// Longest v1 line, CRLF included.
const V1_MAX: usize = 107;
/// Longest v2 payload accepted (addresses plus TLVs).
const V2_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Reads one PROXY header. `Ok(Some(addr))`: the client's address; `Ok(None)`: the header
/// says the connection is the proxy's own (`LOCAL`, `UNKNOWN`, or a non-IP family), so the
/// socket peer stands.
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut start = [0u8; 12];
    io.read_exact(&mut start[..5]).await?;
    if &start[..5] == b"PROXY" {
        return read_v1(io).await;
    }
    if start[..5] != V2_SIGNATURE[..5] {
        return Err(ProxyHeaderError::Missing);
    }
    io.read_exact(&mut start[5..]).await?;
    if start != V2_SIGNATURE {
        return Err(ProxyHeaderError::Missing);
    }
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await?;
    let (ver_cmd, family, len) = (head[0], head[1], u16::from_be_bytes([head[2], head[3]]));
    let len = usize::from(len);
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("version is not 2"));
    }
    if len > V2_MAX {
        return Err(ProxyHeaderError::Malformed("header too long"));
    }
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    match ver_cmd & 0x0F {
        0 => return Ok(None), // LOCAL: health checks from the balancer itself
        1 => {}
        _ => return Err(ProxyHeaderError::Malformed("unknown command")),
    }
    match family >> 4 {
        1 if payload.len() >= 12 => {
            let ip = Ipv4Addr::new(payload[0], payload[1], payload[2], payload[3]);
            let port = u16::from_be_bytes([payload[8], payload[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 if payload.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&payload[..16]);
            let port = u16::from_be_bytes([payload[32], payload[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        1 | 2 => Err(ProxyHeaderError::Malformed("address block too short")),
        _ => Ok(None), // AF_UNSPEC or AF_UNIX
    }
}

async fn read_v1<R: AsyncRead + Unpin>(io: &mut R) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    // "PROXY" has been read; the rest of the line, byte by byte so nothing after it is taken.
    let mut line = Vec::with_capacity(V1_MAX);
    line.extend_from_slice(b"PROXY");
    loop {
        let b = io.read_u8().await?;
        line.push(b);
        if line.ends_with(b"\r\n") {
            break;
        }
        if line.len() >= V1_MAX {
            return Err(ProxyHeaderError::Malformed("v1 line too long"));
        }
    }
    let text = std::str::from_utf8(&line[..line.len() - 2])
        .map_err(|_| ProxyHeaderError::Malformed("v1 line is not ASCII"))?;
    let Some(rest) = text.strip_prefix("PROXY ") else {
        return Err(ProxyHeaderError::Malformed(
            "v1 line does not start with \"PROXY \"",
        ));
    };
    // UNKNOWN: the rest of the line is to be ignored (proxy-protocol.txt §2.1).
    if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
        return Ok(None);
    }
    // Exactly `TCP4|TCP6 src dst sport dport`, both addresses of the family named, ports
    // decimal: anything looser would hand a made-up client address to access control
    // (`--trusted-proxies` downstream, X-Forwarded-For). Found by tests/fuzz.rs.
    let fields: Vec<&str> = rest.split(' ').collect();
    let [family, src, dst, sport, dport] = fields[..] else {
        return Err(ProxyHeaderError::Malformed(
            "v1 line needs five fields after PROXY",
        ));
    };
    let address = |s: &str| -> Result<IpAddr, ProxyHeaderError> {
        let ip = match family {
            "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => s.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => return Err(ProxyHeaderError::Malformed("unknown v1 protocol")),
        };
        ip.map_err(|_| ProxyHeaderError::Malformed("bad v1 address"))
    };
    let port = |s: &str| -> Result<u16, ProxyHeaderError> {
        // `u16::from_str` also takes a leading `+`, and any number of leading zeros.
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyHeaderError::Malformed("bad v1 port"));
        }
        s.parse()
            .map_err(|_| ProxyHeaderError::Malformed("bad v1 port"))
    };
    let src = address(src)?;
    address(dst)?;
    let sport = port(sport)?;
    port(dport)?;
    Ok(Some(SocketAddr::new(src, sport)))
}

/// Moved to `routing` so the controller ConfigMap's `proxy-real-ip-cidr` can use it too.
pub use crate::routing::Cidr;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn v1_tcp4_and_the_bytes_after_it_stay() {
        let mut input: &[u8] = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\nGET / HTTP/1.1\r\n";
        let addr = read_header(&mut input).await.unwrap();
        assert_eq!(addr, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(input, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn v2_ipv6_and_local() {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x21, 0, 36]);
        bytes.extend_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&[0x1f, 0x90, 0, 80]);
        bytes.extend_from_slice(b"rest");
        let mut input = bytes.as_slice();
        let addr = read_header(&mut input).await.unwrap();
        assert_eq!(addr, Some("[2001:db8::5]:8080".parse().unwrap()));
        assert_eq!(input, b"rest");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read_header(&mut local.as_slice()).await.unwrap(), None);
    }

    /// Found by tests/fuzz.rs: a v1 line missing fields, with an IPv6 source under TCP4, or a
    /// `+80` port gave a client address; only the exact form may (proxy-protocol.txt §2.1).
    #[tokio::test]
    async fn v1_needs_every_field_of_its_family() {
        for bad in [
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n"[..],
            b"PROXY TCP4 203.0.113.7 x 51000 80\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 51000 80\r\n",
            b"PROXY TCP6 203.0.113.7 ::1 51000 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 +80 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 046016 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 80 80 extra\r\n",
            b"PROXY  TCP4 203.0.113.7 10.0.0.1 80 80\r\n",
            b"PROXYTCP4 203.0.113.7 10.0.0.1 80 80\r\n",
        ] {
            let mut input = bad;
            let result = read_header(&mut input).await;
            assert!(
                matches!(result, Err(ProxyHeaderError::Malformed(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut unknown: &[u8] = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest";
        assert_eq!(read_header(&mut unknown).await.unwrap(), None);
        assert_eq!(unknown, b"rest");
        let mut v6: &[u8] = b"PROXY TCP6 2001:db8::1 2001:db8::2 443 8443\r\n";
        assert_eq!(
            read_header(&mut v6).await.unwrap(),
            Some("[2001:db8::1]:443".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn plain_http_is_not_a_header() {
        let mut input: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert!(matches!(
            read_header(&mut input).await,
            Err(ProxyHeaderError::Missing)
        ));
    }

    #[test]
    fn cidrs_match_v4_v6_and_mapped() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains("2001:db8::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }
}
