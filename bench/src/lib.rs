//! Shared pieces of the benchmark harness: a minimal RFC 6455 codec (just what an echo server and a load
//! generator need), the client handshake, argument parsing and `/proc` RSS reading.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The mask key every client frame of the load generator uses (a fixed key is valid RFC 6455; the
/// server still has to unmask).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// First byte (FIN, RSV, opcode) as sent.
    pub b0: u8,
    /// Mask key, if masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: usize,
    /// Header length.
    pub header_len: usize,
}

impl Header {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.b0 & 0x0f
    }
    /// The FIN bit.
    pub fn fin(&self) -> bool {
        self.b0 & 0x80 != 0
    }
}

/// Parses a frame header at the start of `buf`; `None` when more bytes are needed.
pub fn parse_header(buf: &[u8]) -> Option<Header> {
    if buf.len() < 2 {
        return None;
    }
    let (len, mut pos) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask = if buf[1] & 0x80 != 0 {
        if buf.len() < pos + 4 {
            return None;
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Some(Header {
        b0: buf[0],
        mask,
        len,
        header_len: pos,
    })
}

/// XORs `data` with `mask`.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let m = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ m;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Appends one frame (first byte `b0`) to `out`, masked when `mask` is given.
pub fn push_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(b0);
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mbit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mbit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mbit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], m);
    } else {
        out.extend_from_slice(payload);
    }
}

/// One whole frame as a new vector.
pub fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 14);
    push_frame(&mut v, b0, payload, mask);
    v
}

/// Position just past `\r\n\r\n`, if present.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Opens a WebSocket connection to `addr` (`path` as the request target); returns the stream and the
/// bytes read past the response head.
pub async fn connect_ws(addr: SocketAddr, path: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            if !buf.starts_with(b"HTTP/1.1 101") {
                let line = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
                return Err(io::Error::other(format!("handshake refused: {line}")));
            }
            return Ok((s, buf[end..].to_vec()));
        }
        if buf.len() > 16 * 1024 {
            return Err(io::Error::other("response head too long"));
        }
    }
}

/// The blocking twin of [`connect_ws`] (the latency mode uses plain threads for precise pacing).
pub fn connect_ws_blocking(
    addr: SocketAddr,
    path: &str,
) -> io::Result<(std::net::TcpStream, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            if !buf.starts_with(b"HTTP/1.1 101") {
                return Err(io::Error::other("handshake refused"));
            }
            return Ok((s, buf[end..].to_vec()));
        }
    }
}

/// Counts whole data messages in a stream of (unmasked or masked) frames fed in arbitrary pieces,
/// without copying payloads.
#[derive(Debug, Default)]
pub struct FrameCounter {
    hdr: [u8; 14],
    hdr_len: usize,
    remaining: usize,
    cur_fin: bool,
    cur_opcode: u8,
}

/// What [`FrameCounter::feed`] saw in one piece.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    /// Data messages completed (FIN data frames).
    pub messages: u64,
    /// Pongs completed.
    pub pongs: u64,
    /// Pings completed.
    pub pings: u64,
    /// A close frame completed.
    pub close: bool,
}

impl FrameCounter {
    /// Feeds bytes; returns what completed.
    pub fn feed(&mut self, mut data: &[u8]) -> Seen {
        let mut seen = Seen::default();
        while !data.is_empty() {
            if self.remaining > 0 {
                let t = self.remaining.min(data.len());
                self.remaining -= t;
                data = &data[t..];
                if self.remaining == 0 {
                    self.complete(&mut seen);
                }
                continue;
            }
            // Header: fast path when it is whole in `data`, else accumulate.
            let h = if self.hdr_len == 0 {
                match parse_header(data) {
                    Some(h) => {
                        data = &data[h.header_len..];
                        h
                    }
                    None => {
                        self.hdr[..data.len()].copy_from_slice(data);
                        self.hdr_len = data.len();
                        return seen;
                    }
                }
            } else {
                let k = (14 - self.hdr_len).min(data.len());
                self.hdr[self.hdr_len..self.hdr_len + k].copy_from_slice(&data[..k]);
                match parse_header(&self.hdr[..self.hdr_len + k]) {
                    Some(h) => {
                        let used = h.header_len - self.hdr_len;
                        data = &data[used..];
                        self.hdr_len = 0;
                        h
                    }
                    None => {
                        self.hdr_len += k;
                        return seen;
                    }
                }
            };
            self.cur_fin = h.fin();
            self.cur_opcode = h.opcode();
            self.remaining = h.len;
            if h.len == 0 {
                self.complete(&mut seen);
            }
        }
        seen
    }

    fn complete(&mut self, seen: &mut Seen) {
        match self.cur_opcode {
            0x8 => seen.close = true,
            0x9 => seen.pings += 1,
            0xA => seen.pongs += 1,
            _ if self.cur_fin => seen.messages += 1,
            _ => {}
        }
    }
}

/// `--key value` arguments after the mode.
pub struct Args(HashMap<String, String>);

impl Args {
    /// Parses `std::env::args()` from index `skip`.
    pub fn parse(skip: usize) -> Args {
        let mut m = HashMap::new();
        let v: Vec<String> = std::env::args().skip(skip).collect();
        let mut i = 0;
        while i < v.len() {
            if let Some(k) = v[i].strip_prefix("--") {
                let val = v.get(i + 1).cloned().unwrap_or_default();
                m.insert(k.to_string(), val);
                i += 2;
            } else {
                i += 1;
            }
        }
        Args(m)
    }

    /// A string argument.
    pub fn str(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    /// A numeric argument.
    pub fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.0
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// A duration in (fractional) seconds.
    pub fn secs(&self, k: &str, default: f64) -> Duration {
        Duration::from_secs_f64(self.num(k, default))
    }
}

/// `ws://host:port/path` → (address, path).
pub fn parse_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = auth
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("ws://IP:PORT/path");
    (addr, path.to_string())
}

/// VmRSS of one process in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The pids of `pid`'s direct children (nginx workers under their master).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, ...
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok())
            == Some(pid)
        {
            out.push(p);
        }
    }
    out
}

/// VmRSS of `pid` and its direct children, in KiB.
pub fn rss_tree_kb(pid: u32) -> u64 {
    rss_kb(pid).unwrap_or(0) + children(pid).into_iter().filter_map(rss_kb).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn counter_handles_any_split() {
        let mut stream = Vec::new();
        for n in [0usize, 5, 125, 126, 300, 70_000] {
            push_frame(&mut stream, 0x82, &vec![1u8; n], None);
            push_frame(&mut stream, 0x8A, b"p", None);
        }
        for step in [1usize, 2, 3, 7, 13, 4096] {
            let mut c = FrameCounter::default();
            let (mut msgs, mut pongs) = (0, 0);
            for piece in stream.chunks(step) {
                let s = c.feed(piece);
                msgs += s.messages;
                pongs += s.pongs;
            }
            assert_eq!((msgs, pongs), (6, 6), "step {step}");
        }
    }

    #[test]
    fn masking_round_trips() {
        let f = frame(0x81, b"hello world!", Some(MASK));
        let h = parse_header(&f).unwrap();
        let mut p = f[h.header_len..].to_vec();
        apply_mask(&mut p, h.mask.unwrap());
        assert_eq!(p, b"hello world!");
    }
}
