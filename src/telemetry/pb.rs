//! A small protobuf writer for the OTLP data the sidecar emits per session (spans and their
//! attributes): fields go straight into one buffer, with no intermediate message structs and no
//! allocation per attribute. What it writes decodes with the official `opentelemetry-proto`
//! definitions (tested here and by the receivers in tests/).
//!
//! [`Attrs`] is where attributes are written: encoded span attributes ([`PbAttrs`]) or the
//! `Vec<KeyValue>` of a log record, so one function describes an attribute set for both.

use opentelemetry_proto::tonic::common::v1::KeyValue;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// Appends `v` as a base-128 varint.
pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// A length-delimited field (bytes, string or an encoded message).
pub fn bytes(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    tag(buf, field, LEN);
    varint(buf, v.len() as u64);
    buf.extend_from_slice(v);
}

/// A varint field (uint, enum, or int64 as two's complement).
pub fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    tag(buf, field, VARINT);
    varint(buf, v);
}

/// A fixed64 field.
pub fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    tag(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A double field.
pub fn double(buf: &mut Vec<u8>, field: u32, v: f64) {
    fixed64(buf, field, v.to_bits());
}

/// A nested message: `f` writes its fields, then the length is put in front of them.
pub fn message(buf: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    tag(buf, field, LEN);
    let start = buf.len();
    f(buf);
    let len = buf.len() - start;
    if len < 0x80 {
        // One length byte: the common case for attributes, shifted in place.
        buf.insert(start, len as u8);
    } else {
        let mut prefix = Vec::with_capacity(4);
        varint(&mut prefix, len as u64);
        buf.splice(start..start, prefix);
    }
}

/// Somewhere attributes can be written.
pub trait Attrs {
    /// A string attribute.
    fn str(&mut self, key: &str, v: &str);
    /// An integer attribute.
    fn int(&mut self, key: &str, v: i64);
    /// A floating-point attribute.
    fn float(&mut self, key: &str, v: f64);
}

impl Attrs for Vec<KeyValue> {
    fn str(&mut self, key: &str, v: &str) {
        self.push(super::attrs::s(key, v));
    }
    fn int(&mut self, key: &str, v: i64) {
        self.push(super::attrs::i(key, v));
    }
    fn float(&mut self, key: &str, v: f64) {
        self.push(super::attrs::f(key, v));
    }
}

/// Attributes written as repeated `KeyValue` fields number `field` of the message being written.
pub struct PbAttrs<'a> {
    buf: &'a mut Vec<u8>,
    field: u32,
}

impl<'a> PbAttrs<'a> {
    /// Attributes of the message in `buf`, as its field `field`.
    pub fn new(buf: &'a mut Vec<u8>, field: u32) -> Self {
        PbAttrs { buf, field }
    }

    /// The message being written, for its other repeated fields (a span's events).
    pub fn message_buf(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    /// One KeyValue { key = 1; value = 2: AnyValue }, its lengths computed up front (no shifting);
    /// `any_len` is the length of the AnyValue's content, which `value` writes.
    fn kv(&mut self, key: &str, any_len: usize, value: impl FnOnce(&mut Vec<u8>)) {
        let kv_len = 1 + varint_len(key.len()) + key.len() + 1 + varint_len(any_len) + any_len;
        let b = &mut *self.buf;
        tag(b, self.field, LEN);
        varint(b, kv_len as u64);
        bytes(b, 1, key.as_bytes());
        tag(b, 2, LEN);
        varint(b, any_len as u64);
        value(b);
    }
}

/// Bytes a varint of `v` takes.
pub fn varint_len(v: usize) -> usize {
    (64 - (v as u64 | 1).leading_zeros() as usize).div_ceil(7)
}

// AnyValue { string_value = 1; int_value = 3; double_value = 4 }
impl Attrs for PbAttrs<'_> {
    fn str(&mut self, key: &str, v: &str) {
        let any_len = 1 + varint_len(v.len()) + v.len();
        self.kv(key, any_len, |b| bytes(b, 1, v.as_bytes()));
    }
    fn int(&mut self, key: &str, v: i64) {
        let any_len = 1 + varint_len(v as u64 as usize);
        self.kv(key, any_len, |b| uint(b, 3, v as u64));
    }
    fn float(&mut self, key: &str, v: f64) {
        self.kv(key, 1 + 8, |b| double(b, 4, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    #[test]
    fn attributes_decode_as_the_official_key_values() {
        // Resource { attributes = 1 } holds exactly a repeated KeyValue.
        let long = "x".repeat(300);
        let mut buf = Vec::new();
        let mut a = PbAttrs::new(&mut buf, 1);
        a.str("iskra.delta", "v");
        a.int("server.port", -7);
        a.int("websocket.bytes.sent", 1 << 40);
        a.float("iskra.omega", 0.25);
        a.str("websocket.close.reason", &long);
        let r = Resource::decode(buf.as_slice()).expect("decodes");
        let mut want: Vec<KeyValue> = Vec::new();
        want.str("iskra.delta", "v");
        want.int("server.port", -7);
        want.int("websocket.bytes.sent", 1 << 40);
        want.float("iskra.omega", 0.25);
        want.str("websocket.close.reason", &long);
        assert_eq!(r.attributes, want);
        assert_eq!(
            r.attributes[1].value,
            Some(AnyValue {
                value: Some(Value::IntValue(-7))
            })
        );
    }

    #[test]
    fn varints_match_prost() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut ours = Vec::new();
            varint(&mut ours, v);
            assert_eq!(varint_len(v as usize), ours.len(), "{v}");
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(ours, theirs, "{v}");
        }
    }
}
