//! RFC 6455 frame headers: parsing and checking them without touching payloads, and building the few
//! frames the sidecar sends itself (close, ping).

use crate::events::{OpcodeKind, ProtocolRule};

/// Longest possible header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER: usize = 14;
/// Longest control frame: header + 125 bytes.
pub const MAX_CONTROL_FRAME: usize = MAX_HEADER + 125;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// RSV1..3 as bits 0b100, 0b010, 0b001.
    pub rsv: u8,
    /// Raw opcode.
    pub opcode: u8,
    /// Mask key when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
    /// Bytes the header occupies.
    pub header_len: usize,
}

impl FrameHeader {
    /// True for close, ping and pong.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// The opcode as a known kind, or the rule a reserved opcode breaks.
    pub fn kind(&self) -> Result<OpcodeKind, ProtocolRule> {
        Ok(match self.opcode {
            0x0 => OpcodeKind::Continuation,
            0x1 => OpcodeKind::Text,
            0x2 => OpcodeKind::Binary,
            0x8 => OpcodeKind::Close,
            0x9 => OpcodeKind::Ping,
            0xA => OpcodeKind::Pong,
            _ => return Err(ProtocolRule::ReservedOpcode),
        })
    }
}

/// The outcome of looking at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed for the header.
    Incomplete,
    /// A whole header.
    Header(FrameHeader),
    /// The length field itself is invalid.
    Invalid(ProtocolRule),
}

/// Parses a frame header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Parsed {
    if buf.len() < 2 {
        return Parsed::Incomplete;
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Parsed::Incomplete;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Parsed::Incomplete;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Parsed::Invalid(ProtocolRule::BadLength);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Parsed::Incomplete;
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Parsed::Header(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0F,
        mask,
        len,
        header_len: pos,
    })
}

/// XORs `data` with `mask`, starting at mask offset `offset`.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) & 3];
    }
}

/// True for the close codes a peer may send (RFC 6455 §7.4 and the IANA registry).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads an (unmasked) close payload: code 1005 when empty.
pub fn parse_close(payload: &[u8]) -> Result<(u16, String), ProtocolRule> {
    match payload.len() {
        0 => Ok((1005, String::new())),
        1 => Err(ProtocolRule::InvalidCloseCode),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_close_code(code) {
                return Err(ProtocolRule::InvalidCloseCode);
            }
            match std::str::from_utf8(&payload[2..]) {
                Ok(reason) => Ok((code, reason.to_string())),
                Err(_) => Err(ProtocolRule::InvalidUtf8),
            }
        }
    }
}

/// Builds one unfragmented frame; masked (with `mask`) when sent toward a server.
pub fn build_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
    out.push(0x80 | opcode);
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
    let start = out.len() + mask.map_or(0, |_| 4);
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
    out
}

/// Builds a close frame with `code` and a reason cut to fit 125 bytes on a char boundary.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let reason = &reason[..reason.floor_char_boundary(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    build_frame(0x8, &payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_length_forms() {
        let f = build_frame(0x2, &[7u8; 5], None);
        let Parsed::Header(h) = parse_header(&f) else {
            panic!()
        };
        assert_eq!((h.len, h.header_len, h.fin, h.mask), (5, 2, true, None));
        let f = build_frame(0x1, &[b'a'; 300], Some([1, 2, 3, 4]));
        let Parsed::Header(h) = parse_header(&f) else {
            panic!()
        };
        assert_eq!((h.len, h.header_len, h.mask), (300, 8, Some([1, 2, 3, 4])));
        let f = build_frame(0x2, &vec![0u8; 70_000], None);
        let Parsed::Header(h) = parse_header(&f) else {
            panic!()
        };
        assert_eq!((h.len, h.header_len), (70_000, 10));
    }

    #[test]
    fn incomplete_headers_wait_for_more() {
        let f = build_frame(0x2, &vec![0u8; 70_000], Some([9, 9, 9, 9]));
        for cut in 0..14 {
            assert_eq!(parse_header(&f[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        assert!(matches!(parse_header(&f[..14]), Parsed::Header(_)));
    }

    #[test]
    fn a_64_bit_length_with_the_top_bit_is_invalid() {
        let mut f = vec![0x82, 127];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(parse_header(&f), Parsed::Invalid(ProtocolRule::BadLength));
    }

    #[test]
    fn masking_round_trips_and_close_payloads_are_checked() {
        let f = close_frame(1000, "bye", Some([0xA, 0xB, 0xC, 0xD]));
        let Parsed::Header(h) = parse_header(&f) else {
            panic!()
        };
        let mut p = f[h.header_len..].to_vec();
        apply_mask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(parse_close(&p), Ok((1000, "bye".into())));
        assert_eq!(parse_close(&[]), Ok((1005, String::new())));
        assert_eq!(parse_close(&[3]), Err(ProtocolRule::InvalidCloseCode));
        assert_eq!(
            parse_close(&1005u16.to_be_bytes()),
            Err(ProtocolRule::InvalidCloseCode)
        );
        assert_eq!(
            parse_close(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolRule::InvalidUtf8)
        );
        for ok in [1000, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(is_valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!is_valid_close_code(bad), "{bad}");
        }
    }

    #[test]
    fn reasons_are_cut_on_a_char_boundary() {
        let f = close_frame(1001, &"é".repeat(100), None);
        let Parsed::Header(h) = parse_header(&f) else {
            panic!()
        };
        assert!(h.len <= 125);
        assert!(parse_close(&f[h.header_len..]).is_ok());
    }
}
