//! Client-side plumbing for the chaos scenarios: the target's address, raw upgrades and frames, reading a
//! peer's close, one-shot HTTP requests, scraping `/metrics`, and a process's resident memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::frame::{build_frame, parse_header, Parsed};

/// A `ws://host:port/path` target, resolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `host:port` for the Host header.
    pub authority: String,
    /// Request path (with query), `/` when none.
    pub path: String,
    /// The URL as given.
    pub url: String,
}

/// Parses and resolves a `ws://` URL (TLS targets are not supported: the sidecar listens in the pod).
pub async fn resolve(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url}: expected a ws:// URL of a running sidecar"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let dial = if authority.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']'))
    }) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(dial.as_str())
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    Ok(Target {
        addr,
        authority: authority.to_string(),
        path,
        url: url.to_string(),
    })
}

/// The sample key of RFC 6455 §1.3; the sidecar relays it, so its accept value is the RFC's.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A WebSocket upgrade request for `t`.
pub fn upgrade_request(t: &Target) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: iskra-chaos\r\n\r\n",
        t.path, t.authority
    )
}

/// A response head: status, the head's text, and bytes read past it.
#[derive(Debug)]
pub struct Head {
    /// HTTP status.
    pub status: u16,
    /// The whole head as text.
    pub text: String,
    /// Bytes that followed the head (the start of the body or of the frame stream).
    pub rest: Vec<u8>,
}

impl Head {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads a response head within `limit`.
pub async fn read_head(s: &mut TcpStream, limit: Duration) -> Result<Head, String> {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::with_capacity(512);
    let mut tmp = [0u8; 2048];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..i]).into_owned();
            let status = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
            return Ok(Head {
                status,
                text,
                rest: buf[i + 4..].to_vec(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut tmp)).await {
            Err(_) => return Err(format!("no response head within {limit:?}")),
            Ok(Ok(0)) => return Err("connection closed before a response head".into()),
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(Err(e)) => return Err(format!("reading the response head: {e}")),
        }
    }
}

/// Connects and sends `raw`; returns the stream and the response head.
pub async fn request(
    addr: SocketAddr,
    raw: &[u8],
    limit: Duration,
) -> Result<(TcpStream, Head), String> {
    let mut s = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.write_all(raw)
        .await
        .map_err(|e| format!("send request: {e}"))?;
    let head = read_head(&mut s, limit).await?;
    Ok((s, head))
}

/// Opens an upgraded session with raw sockets; fails unless the answer is 101.
pub async fn raw_session(t: &Target, limit: Duration) -> Result<(TcpStream, Vec<u8>), String> {
    let (s, head) = request(t.addr, upgrade_request(t).as_bytes(), limit).await?;
    if head.status != 101 {
        return Err(format!("upgrade answered {} instead of 101", head.status));
    }
    let _ = s.set_nodelay(true);
    Ok((s, head.rest))
}

/// One masked client frame.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    build_frame(opcode, payload, Some(rand::random()))
}

/// What a server sent, read frame by frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A data or control frame other than close: (opcode, payload).
    Frame(u8, Vec<u8>),
    /// A close frame: code (1005 when empty) and reason.
    Close(u16, String),
    /// The connection ended without a close frame.
    Eof,
    /// Reading failed (reset).
    Error(String),
    /// Nothing within the time limit.
    Timeout,
}

/// Reads whole frames from a server, keeping what was read past them.
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// A reader starting with bytes already read (past the response head).
    pub fn new(rest: Vec<u8>) -> Self {
        Reader { buf: rest }
    }

    /// The next frame, or how the stream ended, within `limit`.
    pub async fn next(&mut self, s: &mut TcpStream, limit: Duration) -> Got {
        let deadline = Instant::now() + limit;
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            if let Parsed::Header(h) = parse_header(&self.buf) {
                let total = h.header_len + h.len as usize;
                if self.buf.len() >= total {
                    let mut payload = self.buf[h.header_len..total].to_vec();
                    if let Some(m) = h.mask {
                        crate::proxy::frame::apply_mask(&mut payload, m, 0);
                    }
                    self.buf.drain(..total);
                    if h.opcode == 0x8 {
                        let code = match payload.len() {
                            0 | 1 => 1005,
                            _ => u16::from_be_bytes([payload[0], payload[1]]),
                        };
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
                        return Got::Close(code, reason.into_owned());
                    }
                    return Got::Frame(h.opcode, payload);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut tmp)).await {
                Err(_) => return Got::Timeout,
                Ok(Ok(0)) => return Got::Eof,
                Ok(Ok(n)) => self.buf.extend_from_slice(&tmp[..n]),
                Ok(Err(e)) => return Got::Error(e.to_string()),
            }
        }
    }

    /// Skips pings and pongs; returns the next data frame, close, or ending.
    pub async fn next_data(&mut self, s: &mut TcpStream, limit: Duration) -> Got {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(s, left).await {
                Got::Frame(op, _) if op & 0x8 != 0 => continue,
                other => return other,
            }
        }
    }
}

/// Resets the connection on drop (SO_LINGER 0) instead of closing it with a FIN.
pub fn reset_on_drop(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// GETs `path` from an `http://host:port` base; returns the body (HTTP/1.0: the server closes after it).
pub async fn http_get(base: &str, path: &str, limit: Duration) -> Result<String, String> {
    let authority = base
        .strip_prefix("http://")
        .unwrap_or(base)
        .trim_end_matches('/');
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("{base}: {e}"))?
        .next()
        .ok_or_else(|| format!("{base}: no address"))?;
    let raw = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    let (mut s, head) = request(addr, raw.as_bytes(), limit).await?;
    if head.status != 200 {
        return Err(format!("GET {base}{path}: HTTP {}", head.status));
    }
    let mut body = head.rest;
    tokio::time::timeout(limit, s.read_to_end(&mut body))
        .await
        .map_err(|_| format!("GET {base}{path}: body not finished within {limit:?}"))?
        .map_err(|e| format!("GET {base}{path}: {e}"))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sums the samples of `name` (exact) whose labels include every `(key, value)` of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (metric, lbls) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let pairs = parse_labels(lbls);
        let all = labels
            .iter()
            .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v));
        if all {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => val.push(chars.next().unwrap_or('\\')),
                '"' => break,
                c => val.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// Scrapes `/metrics` of an admin base URL and sums one series.
pub async fn scrape_sum(admin: &str, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
    let text = http_get(admin, "/metrics", Duration::from_secs(5)).await?;
    Ok(metric_sum(&text, name, labels))
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_match_names_exactly_and_filter_labels() {
        let text = "# HELP x\nwebsocket_errors_total{error_type=\"PROTOCOL_ERROR\",iskra_dashboard=\"pulse\"} 3\n\
                    websocket_errors_total{error_type=\"NETWORK_ERROR\",iskra_dashboard=\"pulse\"} 2\n\
                    websocket_errors_total_x{error_type=\"PROTOCOL_ERROR\"} 100\nplain 7\n\
                    q{reason=\"a \\\"b\\\", c\",k=\"v\"} 1\n";
        let pe = [("error_type", "PROTOCOL_ERROR")];
        assert_eq!(metric_sum(text, "websocket_errors_total", &pe), 3.0);
        assert_eq!(metric_sum(text, "websocket_errors_total", &[]), 5.0);
        assert_eq!(metric_sum(text, "plain", &[]), 7.0);
        assert_eq!(metric_sum(text, "q", &[("k", "v")]), 1.0);
        assert_eq!(metric_sum(text, "missing", &[]), 0.0);
    }

    #[tokio::test]
    async fn targets_parse_with_and_without_port_and_path() {
        let t = resolve("ws://127.0.0.1:8000/live?x=1").await.unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (8000, "/live?x=1"));
        let t = resolve("ws://127.0.0.1").await.unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/"));
        assert!(resolve("wss://127.0.0.1:1").await.is_err());
    }
}
