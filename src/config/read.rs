//! Reads typed values out of a merged config tree, collecting every problem instead of stopping at one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::errors::ConfigError;
use super::{is_secret, Endpoint, Upstream};

pub(super) struct Reader<'a> {
    tree: &'a Value,
    errors: Vec<ConfigError>,
}

fn lookup<'v>(tree: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(tree, |v, part| v.get(part))
}

fn render(key: &str, v: &Value) -> String {
    if is_secret(key) {
        return "\"****\"".into();
    }
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.floor_char_boundary(80)])
    } else {
        s
    }
}

/// Numbers from env vars arrive as strings or numbers; accept both.
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(tree: &'a Value) -> Self {
        Reader {
            tree,
            errors: Vec::new(),
        }
    }

    pub(super) fn bad(&mut self, key: &str, v: Option<&Value>, expected: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.to_string(),
            value: v.map_or("(missing)".into(), |v| render(key, v)),
            expected: expected.into(),
        });
    }

    /// Flags keys present in the tree but not in `known`, except below the `open` prefixes.
    pub(super) fn check_unknown(&mut self, known: &Value, open: &[&str]) {
        fn walk(t: &Value, k: &Value, prefix: &str, open: &[&str], out: &mut Vec<(String, Value)>) {
            let (Value::Object(t), Value::Object(k)) = (t, k) else {
                return;
            };
            for (name, v) in t {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                if open.contains(&key.as_str()) {
                    continue;
                }
                match k.get(name) {
                    None => out.push((key, v.clone())),
                    Some(kv) => walk(v, kv, &key, open, out),
                }
            }
        }
        let mut unknown = Vec::new();
        walk(self.tree, known, "", open, &mut unknown);
        for (key, v) in unknown {
            self.bad(
                &key,
                Some(&v),
                "no such key (see `iskra-ws-sidecar config` for every key)",
            );
        }
    }

    pub(super) fn uint(&mut self, key: &str, min: u64, max: u64) -> u64 {
        let v = lookup(self.tree, key);
        match v.and_then(as_f64) {
            Some(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => n as u64,
            _ => {
                self.bad(key, v, format!("a whole number from {min} to {max}"));
                min
            }
        }
    }

    pub(super) fn float(&mut self, key: &str, min: f64, max: f64) -> f64 {
        let v = lookup(self.tree, key);
        match v.and_then(as_f64) {
            Some(n) if n >= min && n <= max => n,
            _ => {
                self.bad(key, v, format!("a number from {min} to {max}"));
                min
            }
        }
    }

    pub(super) fn millis(&mut self, key: &str, min: u64) -> Duration {
        Duration::from_millis(self.uint(key, min, 7 * 24 * 3600 * 1000))
    }

    pub(super) fn boolean(&mut self, key: &str) -> bool {
        let v = lookup(self.tree, key);
        match v {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if matches!(s.as_str(), "true" | "1" | "yes" | "on") => true,
            Some(Value::String(s)) if matches!(s.as_str(), "false" | "0" | "no" | "off") => false,
            _ => {
                self.bad(key, v, "true or false");
                false
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        let v = lookup(self.tree, key);
        match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => {
                self.bad(key, v, "a string");
                None
            }
        }
    }

    /// The value at `key` as it is in the tree (None when absent).
    pub(super) fn raw(&self, key: &str) -> Option<&'a Value> {
        lookup(self.tree, key)
    }

    pub(super) fn text(&mut self, key: &str) -> Option<String> {
        self.string(key)
    }

    /// A string that may be absent (absent or empty: None).
    pub(super) fn optional_text(&mut self, key: &str) -> Option<String> {
        lookup(self.tree, key)?;
        self.string(key).filter(|s| !s.is_empty())
    }

    /// An optional http:// or https:// URL an alert can be posted to.
    pub(super) fn alert_url(&mut self, key: &str) -> Option<String> {
        let url = self.optional_text(key)?;
        if super::AlertUrl::parse(&url).is_some() {
            Some(url)
        } else {
            let v = lookup(self.tree, key);
            self.bad(key, v, "an http:// or https:// URL with a host");
            None
        }
    }

    pub(super) fn one_of(&mut self, key: &str, allowed: &[&str]) -> String {
        let v = lookup(self.tree, key);
        match self.string(key) {
            Some(s) if allowed.contains(&s.to_ascii_lowercase().as_str()) => s.to_ascii_lowercase(),
            Some(_) => {
                self.bad(key, v, format!("one of {}", allowed.join(", ")));
                allowed[0].to_string()
            }
            None => allowed[0].to_string(),
        }
    }

    pub(super) fn addr(&mut self, key: &str) -> SocketAddr {
        let v = lookup(self.tree, key);
        match self.string(key).map(|s| s.parse::<SocketAddr>()) {
            Some(Ok(a)) => a,
            Some(Err(_)) => {
                self.bad(key, v, "an address like 0.0.0.0:8000 or [::]:8000");
                SocketAddr::from(([0, 0, 0, 0], 0))
            }
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    fn parse_upstream(&mut self, key: &str, v: Option<&Value>, s: &str) -> Option<Upstream> {
        match Upstream::parse(s) {
            Ok(u) => Some(u),
            Err(expected) => {
                self.bad(key, v, expected);
                None
            }
        }
    }

    pub(super) fn upstream(&mut self, key: &str) -> Upstream {
        let v = lookup(self.tree, key);
        let parsed = self
            .string(key)
            .and_then(|s| self.parse_upstream(key, v, &s));
        parsed.unwrap_or(Upstream {
            url: String::new(),
            host: String::new(),
            port: 0,
        })
    }

    /// A list of strings: an array, or one comma-separated string (as from the environment); each
    /// item with its own key (`KEY.N`) for error messages. Empty items are skipped.
    pub(super) fn list(&mut self, key: &str) -> Vec<(String, String)> {
        let v = lookup(self.tree, key);
        let items: Vec<String> = match v {
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.trim().to_string()),
                        None => self.bad(&format!("{key}.{i}"), Some(item), "a string"),
                    }
                }
                out
            }
            Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
            _ => {
                self.bad(key, v, "a list of strings (or one comma-separated string)");
                Vec::new()
            }
        };
        items
            .into_iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, s)| (format!("{key}.{i}"), s))
            .collect()
    }

    /// `parse(value)`, or the error recorded under `key` with what was expected.
    pub(super) fn parsed<T>(
        &mut self,
        key: &str,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        match parse(value) {
            Ok(t) => Some(t),
            Err(expected) => {
                self.bad(key, Some(&Value::String(value.into())), expected);
                None
            }
        }
    }

    pub(super) fn upstream_list(&mut self, key: &str) -> Vec<Upstream> {
        match lookup(self.tree, key) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let k = format!("{key}.{i}");
                    match item.as_str() {
                        Some(s) => self.parse_upstream(&k, Some(item), s),
                        None => {
                            self.bad(&k, Some(item), "a ws:// URL string");
                            None
                        }
                    }
                })
                .collect(),
            Some(Value::String(s)) if s.is_empty() => Vec::new(),
            Some(Value::String(s)) => {
                let s = s.clone();
                let items: Vec<Value> = s
                    .split(',')
                    .map(|p| Value::String(p.trim().into()))
                    .collect();
                let tree = serde_json::json!({ "v": items });
                let mut sub = Reader::new(&tree);
                let out = sub.upstream_list("v");
                self.errors.extend(sub.errors.into_iter().map(|mut e| {
                    e.key = e.key.replacen('v', key, 1);
                    e
                }));
                out
            }
            v => {
                self.bad(key, v, "a list of ws:// URLs");
                Vec::new()
            }
        }
    }

    pub(super) fn endpoints(&mut self, key: &str) -> BTreeMap<String, Endpoint> {
        let mut out = BTreeMap::new();
        let Some(Value::Object(map)) = lookup(self.tree, key) else {
            let v = lookup(self.tree, key);
            self.bad(
                key,
                v,
                "a map of dashboards: {pulse: {url, name, priority, backup_urls}}",
            );
            return out;
        };
        for (name, _) in map.clone() {
            let k = format!("{key}.{name}");
            let url = self.upstream(&format!("{k}.url")).url;
            let has = |f: &str| lookup(self.tree, &format!("{k}.{f}")).is_some();
            let (has_name, has_prio, has_backups) =
                (has("name"), has("priority"), has("backup_urls"));
            let label = match has_name {
                true => self
                    .string(&format!("{k}.name"))
                    .unwrap_or_else(|| name.clone()),
                false => name.clone(),
            };
            let priority = match has_prio {
                true => self.uint(&format!("{k}.priority"), 0, 1000) as u32,
                false => 100,
            };
            let backups = match has_backups {
                true => self.upstream_list(&format!("{k}.backup_urls")),
                false => Vec::new(),
            };
            let backup_urls = backups.into_iter().map(|u| u.url).collect();
            out.insert(
                name,
                Endpoint {
                    url,
                    name: label,
                    priority,
                    backup_urls,
                },
            );
        }
        out
    }

    /// Tests: reads `tree` with `f`, and returns what it read or every problem as (key, value, expected).
    #[cfg(test)]
    pub(super) fn read_all<T>(
        tree: &Value,
        f: impl FnOnce(&mut Reader) -> T,
    ) -> Result<T, Vec<(String, String, String)>> {
        let mut r = Reader::new(tree);
        let out = f(&mut r);
        match r.finish() {
            Ok(()) => Ok(out),
            Err(e) => Err(e
                .0
                .into_iter()
                .map(|e| (e.key, e.value, e.expected))
                .collect()),
        }
    }

    pub(super) fn finish(self) -> Result<(), super::ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(super::ConfigErrors(self.errors))
        }
    }
}
