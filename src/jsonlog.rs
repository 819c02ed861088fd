//! The one JSON log writer: [`Line`] writes a line straight into a reused byte buffer (no
//! `serde_json::Value` map, no `String` per key or value) for the sessions' lines
//! (`telemetry::logs`) and, through [`own`], for the sidecar's own diagnostics (`diag`'s layer), in the
//! same shape (timestamp, level, component, event_type, fields). Strings and numbers go through serde_json's own serializer (its
//! escaping and its float format), so a line parses back to what a map would have printed.

use std::io::Write;
use std::time::SystemTime;

use serde_json::Value;

/// The keys every line starts with, spelled once (`telemetry::names` lists them for the schema).
pub mod key {
    /// When it happened (RFC 3339, microseconds, UTC).
    pub const TIMESTAMP: &str = "timestamp";
    /// DEBUG, INFO, WARN or ERROR.
    pub const LEVEL: &str = "level";
    /// Which part of the sidecar speaks.
    pub const COMPONENT: &str = "component";
    /// What happened.
    pub const EVENT_TYPE: &str = "event_type";
}

/// Where a line of the sidecar's own goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output, beside the sessions' lines.
    Stdout,
    /// Standard error: the exporter's own trouble, which must never feed back into exported logs.
    Stderr,
}

/// Writes one line of the sidecar's own, `{timestamp, level, component, event_type, …fields}`, to
/// `to` (which lines are written is `diag`'s filter's to decide).
pub fn own(
    to: Stream,
    at: SystemTime,
    level: &str,
    component: &str,
    event_type: &str,
    fields: &[(String, Value)],
) {
    let mut buf = Vec::with_capacity(256);
    let mut l = Line::new(&mut buf);
    l.header(at, level, component, event_type);
    for (k, v) in fields {
        l.value(k, v);
    }
    l.finish();
    let _ = match to {
        Stream::Stdout => std::io::stdout().lock().write_all(&buf),
        Stream::Stderr => std::io::stderr().lock().write_all(&buf),
    };
}

/// A JSON object being written into a buffer; [`Line::finish`] closes it and adds the newline.
pub struct Line<'a> {
    buf: &'a mut Vec<u8>,
    /// Whether the object being written (the line, or a nested one) has no member yet.
    empty: bool,
}

impl<'a> Line<'a> {
    /// Starts a line in `buf`, which is cleared first (its capacity is kept).
    pub fn new(buf: &'a mut Vec<u8>) -> Line<'a> {
        buf.clear();
        buf.push(b'{');
        Line { buf, empty: true }
    }

    /// The members every line starts with: timestamp, level, component, event_type ([`key`]).
    pub fn header(
        &mut self,
        at: SystemTime,
        level: &str,
        component: &str,
        event_type: &str,
    ) -> &mut Self {
        self.time(key::TIMESTAMP, at)
            .string(key::LEVEL, level)
            .string(key::COMPONENT, component)
            .string(key::EVENT_TYPE, event_type)
    }

    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        string(self.buf, k);
        self.buf.push(b':');
        self.buf
    }

    /// A string member.
    pub fn string(&mut self, k: &str, v: &str) -> &mut Self {
        let b = self.key(k);
        string(b, v);
        self
    }

    /// A string member, or `null`.
    pub fn opt_string(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.string(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// An unsigned integer member.
    pub fn uint(&mut self, k: &str, v: u64) -> &mut Self {
        let b = self.key(k);
        let _ = write!(b, "{v}");
        self
    }

    /// A signed integer member.
    pub fn integer(&mut self, k: &str, v: i64) -> &mut Self {
        let b = self.key(k);
        let _ = write!(b, "{v}");
        self
    }

    /// A float member, formatted as serde_json does (`null` when not finite).
    pub fn number(&mut self, k: &str, v: f64) -> &mut Self {
        let b = self.key(k);
        let _ = serde_json::to_writer(&mut *b, &v);
        self
    }

    /// A float member, or `null`.
    pub fn opt_number(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.number(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// A boolean member.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.raw(k, if v { "true" } else { "false" })
    }

    /// An RFC 3339 timestamp with microseconds (UTC).
    pub fn time(&mut self, k: &str, t: SystemTime) -> &mut Self {
        let b = self.key(k);
        let _ = write!(b, "\"{}\"", humantime::format_rfc3339_micros(t));
        self
    }

    /// Bytes as lowercase hex (trace and span ids).
    pub fn hex(&mut self, k: &str, v: &[u8]) -> &mut Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let b = self.key(k);
        b.push(b'"');
        for x in v {
            b.push(DIGITS[(x >> 4) as usize]);
            b.push(DIGITS[(x & 15) as usize]);
        }
        b.push(b'"');
        self
    }

    /// Any JSON value (serialized by serde_json).
    pub fn value(&mut self, k: &str, v: &Value) -> &mut Self {
        let b = self.key(k);
        let _ = serde_json::to_writer(&mut *b, v);
        self
    }

    /// A member whose value is already JSON (`null`, `true`, a literal).
    fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        let b = self.key(k);
        b.extend_from_slice(json.as_bytes());
        self
    }

    /// A nested object: `f` writes its members.
    pub fn object(&mut self, k: &str, f: impl FnOnce(&mut Self)) -> &mut Self {
        self.key(k).push(b'{');
        self.empty = true;
        f(self);
        self.buf.push(b'}');
        self.empty = false;
        self
    }

    /// Closes the object and ends the line with `\n`.
    pub fn finish(self) {
        self.buf.extend_from_slice(b"}\n");
    }
}

/// A JSON string, escaped by serde_json.
fn string(b: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *b, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_line_parses_back_to_the_map_serde_json_would_build() {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é ∆ 🙂 </script>";
        let mut buf = Vec::new();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_765_000_000_123_456);
        let mut l = Line::new(&mut buf);
        l.time("timestamp", at)
            .string("level", "INFO")
            .string(nasty, nasty)
            .opt_string("none", None)
            .opt_string("some", Some("x"))
            .uint("big", u64::MAX)
            .integer("neg", i64::MIN)
            .number("omega", 0.9)
            .number("one", 1.0)
            .number("tiny", 1e-7)
            .number("huge", 1e300)
            .number("nan", f64::NAN)
            .opt_number("rtt", None)
            .bool("t", true)
            .bool("f", false)
            .hex("span_id", &[0, 1, 0xab, 0xff])
            .object("fractal_metadata", |o| {
                o.string("seam_id", "s").number("voice_pain", 0.3);
            })
            .object("empty", |_| {})
            .string("after", "nested");
        l.finish();
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|&&c| c == b'\n').count(), 1, "one line");
        let got: Value = serde_json::from_slice(&buf).expect("valid JSON");
        let want = json!({
            "timestamp": humantime::format_rfc3339_micros(at).to_string(),
            "level": "INFO", nasty: nasty, "none": null, "some": "x",
            "big": u64::MAX, "neg": i64::MIN, "omega": 0.9, "one": 1.0, "tiny": 1e-7, "huge": 1e300,
            "nan": null, "rtt": null, "t": true, "f": false, "span_id": "0001abff",
            "fractal_metadata": {"seam_id": "s", "voice_pain": 0.3}, "empty": {}, "after": "nested",
        });
        assert_eq!(got, want);
        // The same text as serde_json prints for each value (floats keep their ".0").
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            text.contains("\"one\":1.0,") && text.contains("\"tiny\":1e-7,"),
            "{text}"
        );
    }

    #[test]
    fn the_buffer_is_reused() {
        let mut buf = Vec::with_capacity(256);
        for i in 0..3 {
            let mut l = Line::new(&mut buf);
            l.uint("i", i);
            l.finish();
            assert_eq!(buf, format!("{{\"i\":{i}}}\n").as_bytes());
        }
        assert_eq!(buf.capacity(), 256);
    }
}
