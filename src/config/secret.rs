//! The bearer token of `POST /probe/send`: `probe.send_token` (env `ISKRA_SIDECAR_PROBE__SEND_TOKEN`,
//! taken as written) or `probe.send_token_file`, a file read once at start — a mounted Kubernetes
//! Secret — with its trailing newline removed. Setting both, an unreadable file, or a token that is not
//! 16 to 4096 visible ASCII characters is a configuration error (exit 64) naming the key; the token's
//! value is never part of a message, only the file's path is.
//!
//! [`Secret`] holds the token: it prints and serializes as `****`, and [`Secret::matches`] compares in
//! constant time, whatever the lengths.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::Reader;

/// The key of the token itself.
pub(super) const TOKEN_KEY: &str = "probe.send_token";
/// The key of the file holding it.
pub(super) const TOKEN_FILE_KEY: &str = "probe.send_token_file";
/// Its environment variable, read raw (not through figment's value parsing).
pub(super) const TOKEN_ENV: &str = "ISKRA_SIDECAR_PROBE__SEND_TOKEN";
/// The same variable without the `ISKRA_SIDECAR_` prefix (for figment's ignore list).
pub(super) const TOKEN_ENV_SUFFIX: &str = "PROBE__SEND_TOKEN";

/// Shortest token accepted.
pub const MIN_LEN: usize = 16;
/// Longest token accepted (also the width of the constant-time comparison).
pub const MAX_LEN: usize = 4096;

const SHAPE: &str = "16 to 4096 visible ASCII characters, no spaces (e.g. `openssl rand -hex 32`)";

/// A secret token: never printed, compared in constant time.
#[derive(Clone)]
pub struct Secret {
    padded: Box<[u8; MAX_LEN]>,
    len: usize,
}

impl Secret {
    /// A token, if it has the accepted shape (see the module doc).
    pub fn new(token: &str) -> Option<Secret> {
        let b = token.as_bytes();
        let ok = (MIN_LEN..=MAX_LEN).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic());
        ok.then(|| Secret {
            padded: pad(b),
            len: b.len(),
        })
    }

    /// Whether `candidate` is the token. Takes the same time for every candidate of at most
    /// [`MAX_LEN`] bytes, right or wrong, whatever its length or the token's: both are compared over
    /// [`MAX_LEN`] bytes, the lengths separately.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        if candidate.len() > MAX_LEN {
            return false; // says nothing about the token
        }
        let same_bytes = self.padded[..].ct_eq(&pad(candidate)[..]);
        let same_len = (self.len as u64).ct_eq(&(candidate.len() as u64));
        (same_bytes & same_len).into()
    }
}

/// A secret value of any shape (a probe header's value): prints and serializes as `****`; only
/// [`Masked::expose`] gives it, to the code that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Masked(String);

impl Masked {
    /// Wraps a value.
    pub fn new(v: String) -> Masked {
        Masked(v)
    }

    /// The value itself, for the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Serialize for Masked {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

fn pad(b: &[u8]) -> Box<[u8; MAX_LEN]> {
    let mut out = Box::new([0u8; MAX_LEN]);
    out[..b.len()].copy_from_slice(b);
    out
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

/// Reads `probe.send_token` / `probe.send_token_file`; None when neither is set (or on an error, which
/// is recorded in `r`).
pub(super) fn send_token(r: &mut Reader) -> Option<Secret> {
    let token = r.text(TOKEN_KEY).unwrap_or_default();
    let file = r.text(TOKEN_FILE_KEY).unwrap_or_default();
    let path = Value::String(file.clone());
    match (token.is_empty(), file.is_empty()) {
        (true, true) => None,
        (false, false) => {
            let expected = format!("no file while {TOKEN_KEY} is set: give the token one way only");
            r.bad(TOKEN_FILE_KEY, Some(&path), expected);
            None
        }
        (false, true) => Secret::new(&token).or_else(|| {
            let expected = format!("a token of {SHAPE}");
            r.bad(TOKEN_KEY, Some(&Value::String(token)), expected);
            None
        }),
        (true, false) => {
            let read = std::fs::read_to_string(&file);
            let found = read.as_deref().map(|t| t.trim_end_matches(['\n', '\r']));
            match found.map(Secret::new) {
                Ok(Some(s)) => Some(s),
                Ok(None) => {
                    let expected =
                        format!("a file holding one token of {SHAPE}, and a newline or not");
                    r.bad(TOKEN_FILE_KEY, Some(&path), expected);
                    None
                }
                Err(e) => {
                    let expected = format!("a readable file holding the token ({e})");
                    r.bad(TOKEN_FILE_KEY, Some(&path), expected);
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "s3cr3t-token-0123456789";

    fn load(probe: Value) -> Result<Option<Secret>, Vec<(String, String, String)>> {
        let mut tree = json!({"probe": {"send_token": "", "send_token_file": ""}});
        for (k, v) in probe.as_object().unwrap() {
            tree["probe"][k] = v.clone();
        }
        Reader::read_all(&tree, send_token)
    }

    #[test]
    fn only_the_exact_token_matches() {
        let s = Secret::new(TOKEN).unwrap();
        assert!(s.matches(TOKEN.as_bytes()));
        for wrong in [
            "",
            "s3cr3t-token-012345678",
            "s3cr3t-token-0123456789x",
            "S3cr3t-token-0123456789",
        ] {
            assert!(!s.matches(wrong.as_bytes()), "{wrong:?}");
        }
        assert!(!s.matches(&[b'a'; MAX_LEN + 1]));
        let mut padded = TOKEN.as_bytes().to_vec();
        padded.push(0); // zero padding must not make a longer candidate equal
        assert!(!s.matches(&padded));
    }

    #[test]
    fn a_token_must_have_the_accepted_shape() {
        assert!(Secret::new(&"x".repeat(MIN_LEN - 1)).is_none());
        assert!(Secret::new(&"x".repeat(MAX_LEN + 1)).is_none());
        assert!(Secret::new("sixteen chars ok").is_none(), "no spaces");
        assert!(Secret::new("sixteen-chars-é-ok").is_none(), "ASCII only");
        assert!(Secret::new(&"x".repeat(MAX_LEN)).is_some());
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new(TOKEN).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(serde_json::to_string(&Some(s)).unwrap(), "\"****\"");
    }

    #[test]
    fn the_file_is_read_and_its_trailing_newline_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, format!("{TOKEN}\r\n")).unwrap();
        let s = load(json!({"send_token_file": f})).unwrap().unwrap();
        assert!(s.matches(TOKEN.as_bytes()));
        assert!(load(json!({"send_token": "", "send_token_file": ""}))
            .unwrap()
            .is_none());
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = load(json!({"send_token_file": missing})).unwrap_err();
        assert_eq!(e[0].0, TOKEN_FILE_KEY);
        assert_eq!(e[0].1, format!("{:?}", missing.display().to_string()));
        assert!(e[0].2.contains("readable file"), "{e:?}");
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny-secret\n").unwrap();
        let e = load(json!({"send_token_file": short})).unwrap_err();
        assert!(e[0].2.contains("16 to 4096") && !format!("{e:?}").contains("tiny-secret"));
        let e = load(json!({"send_token": "tiny-secret"})).unwrap_err();
        assert_eq!((e[0].0.as_str(), e[0].1.as_str()), (TOKEN_KEY, "\"****\""));
        assert!(!format!("{e:?}").contains("tiny-secret"));
        let e = load(json!({"send_token": TOKEN, "send_token_file": short})).unwrap_err();
        assert!(e[0].2.contains("one way only") && !format!("{e:?}").contains(TOKEN));
    }
}
