//! `forwarded.*`: whether the sidecar adds `X-Forwarded-For` / `X-Forwarded-Proto`, and which peers'
//! own forwarding headers it keeps (`forwarded.trusted_proxies`, as CIDRs). The header rewriting is the
//! proxy's (`proxy::forwarded`).

use std::net::IpAddr;

/// An address block: `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address; `Err` says what was expected.
    pub fn parse(s: &str) -> Result<Cidr, &'static str> {
        const EXPECTED: &str = "a CIDR like 10.0.0.0/8 or fd00::/8, or a bare IP address";
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| EXPECTED)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(EXPECTED),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

/// The `forwarded.*` settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Forwarding {
    /// Add the headers at all (`forwarded.enabled`, default true).
    pub enabled: bool,
    /// Peers whose incoming forwarding headers are kept (`forwarded.trusted_proxies`, default none).
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            enabled: true,
            trusted_proxies: Vec::new(),
        }
    }
}
