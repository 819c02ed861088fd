//! Forwarding headers, as nginx and Envoy users expect: the client's address appended to
//! `X-Forwarded-For` and `X-Forwarded-Proto` set, on the fast path (a rewrite of the raw head) and the
//! hyper path (the parsed headers) alike. An incoming `X-Forwarded-For` / `X-Forwarded-Proto` /
//! `Forwarded` is kept only when the direct peer is one of `forwarded.trusted_proxies` (CIDRs);
//! from anyone else they are replaced, so a client cannot pose as another address.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderValue};

use crate::config::{Cidr, Forwarding};

impl Cidr {
    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> (u128, u8) {
            match a {
                IpAddr::V4(v) => (u32::from(v) as u128, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, w1), (host, w2)) = (bits(self.addr), bits(ip));
        if w1 != w2 {
            return false;
        }
        let shift = u32::from(w1 - self.prefix);
        shift >= 128 || (net >> shift) == (host >> shift)
    }
}

/// What to do with one request's headers.
struct Plan {
    trusted: bool,
    client: String,
}

impl Forwarding {
    fn plan(&self, peer: IpAddr) -> Option<Plan> {
        self.enabled.then(|| Plan {
            trusted: self.trusted_proxies.iter().any(|c| c.contains(peer)),
            client: peer.to_canonical().to_string(),
        })
    }

    /// Rewrites a raw request head (request line, header lines, empty line): the forwarding headers
    /// are dropped unless the peer is trusted, then `X-Forwarded-For` (the kept list + the peer) and
    /// `X-Forwarded-Proto` are added before the empty line. Everything else stays byte for byte.
    /// `None`: nothing to change (forwarding off).
    pub fn rewrite_head(&self, head: &[u8], peer: IpAddr) -> Option<Vec<u8>> {
        let plan = self.plan(peer)?;
        let mut out = Vec::with_capacity(head.len() + 64);
        let mut xff: Vec<String> = Vec::new();
        let mut proto: Option<String> = None;
        let mut lines = head.split_inclusive(|b| *b == b'\n');
        if let Some(request_line) = lines.next() {
            out.extend_from_slice(request_line);
        }
        for line in lines {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.iter().position(|b| *b == b':') {
                Some(i) => (&body[..i], String::from_utf8_lossy(&body[i + 1..])),
                None => (body, Default::default()),
            };
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("x-forwarded-for") {
                if plan.trusted {
                    xff.push(value.trim().to_string());
                }
                continue;
            }
            if is("x-forwarded-proto") {
                if plan.trusted && proto.is_none() {
                    proto = Some(value.trim().to_string());
                }
                continue;
            }
            if is("forwarded") && !plan.trusted {
                continue;
            }
            out.extend_from_slice(line);
        }
        // Written straight into the head (no joined or formatted strings per handshake).
        out.extend_from_slice(b"X-Forwarded-For: ");
        for v in xff.iter().filter(|v| !v.is_empty()) {
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(plan.client.as_bytes());
        out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
        out.extend_from_slice(proto.as_deref().unwrap_or("http").as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        Some(out)
    }

    /// The same for a parsed request's headers (the hyper path).
    pub fn apply(&self, headers: &mut HeaderMap, peer: IpAddr) {
        let Some(plan) = self.plan(peer) else { return };
        let mut xff: Vec<String> = Vec::new();
        if plan.trusted {
            for v in headers.get_all("x-forwarded-for") {
                if let Ok(s) = v.to_str() {
                    if !s.trim().is_empty() {
                        xff.push(s.trim().to_string());
                    }
                }
            }
        } else {
            headers.remove("x-forwarded-proto");
            headers.remove("forwarded");
        }
        xff.push(plan.client);
        if let Ok(v) = HeaderValue::from_str(&xff.join(", ")) {
            headers.insert("x-forwarded-for", v);
        }
        if !headers.contains_key("x-forwarded-proto") {
            headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(trusted: &[&str]) -> Forwarding {
        Forwarding {
            enabled: true,
            trusted_proxies: trusted.iter().map(|c| Cidr::parse(c).unwrap()).collect(),
        }
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_s_forwarding_headers_are_replaced_byte_for_byte_otherwise() {
        let head = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nforwarded: for=6.6.6.6\r\nX-Forwarded-Proto: https\r\nCookie: c=1\r\n\r\n";
        let out = fwd(&[])
            .rewrite_head(head, "192.0.2.7".parse().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: a\r\nCookie: c=1\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        let out = fwd(&["192.0.2.0/24"])
            .rewrite_head(head, "192.0.2.7".parse().unwrap())
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("X-Forwarded-For: 6.6.6.6, 192.0.2.7\r\n"),
            "{out}"
        );
        assert!(out.contains("X-Forwarded-Proto: https\r\n") && out.contains("forwarded: for"));
        let off = Forwarding {
            enabled: false,
            ..fwd(&[])
        };
        assert!(off
            .rewrite_head(head, "192.0.2.7".parse().unwrap())
            .is_none());
    }

    #[test]
    fn parsed_headers_get_the_same_treatment() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        let mut untrusted = h.clone();
        fwd(&[]).apply(&mut untrusted, "127.0.0.1".parse().unwrap());
        assert_eq!(untrusted["x-forwarded-for"], "127.0.0.1");
        assert_eq!(untrusted["x-forwarded-proto"], "http");
        fwd(&["127.0.0.0/8"]).apply(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 127.0.0.1");
    }
}
