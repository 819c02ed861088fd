//! telemetry-schema.yaml is the one list of custom attributes and metrics: the code emits no name it
//! does not list, and it lists no name nothing emits.

use std::collections::BTreeSet;

use figment::providers::{Format, Yaml};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/telemetry-schema.yaml");
    figment::Figment::new()
        .merge(Yaml::file_exact(path))
        .extract()
        .expect("telemetry-schema.yaml parses")
}

fn keys(v: &Value, section: &str) -> BTreeSet<String> {
    v[section]
        .as_object()
        .unwrap_or_else(|| panic!("section {section}"))
        .keys()
        .cloned()
        .collect()
}

fn source() -> String {
    source_under("src")
}

fn source_under(dir: &str) -> String {
    let mut all = String::new();
    let mut stack = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                all.push_str(&std::fs::read_to_string(p).unwrap());
            }
        }
    }
    all
}

#[test]
fn metric_definitions_and_schema_list_the_same_names() {
    let schema: BTreeSet<String> = keys(&schema(), "metrics");
    let code: BTreeSet<String> = iskra_ws_sidecar::telemetry::names::ALL
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(
        code.difference(&schema).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "emitted but not in the schema"
    );
    assert_eq!(
        schema.difference(&code).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the schema but never emitted"
    );
}

#[test]
fn prometheus_names_in_the_schema_match_the_translation() {
    let s = schema();
    for def in iskra_ws_sidecar::telemetry::names::ALL {
        let want = iskra_ws_sidecar::telemetry::registry::prom_name(def);
        assert_eq!(
            s["metrics"][def.name]["prometheus"].as_str(),
            Some(want.as_str()),
            "{}",
            def.name
        );
    }
}

#[test]
fn every_listed_attribute_is_emitted_somewhere_in_the_code() {
    let src = source();
    let s = schema();
    for section in ["attributes", "log_attributes", "resource"] {
        for k in keys(&s, section) {
            assert!(
                src.contains(&format!("\"{k}\"")),
                "{section}.{k} is listed but nothing emits it"
            );
        }
    }
}

#[test]
fn every_attribute_key_the_code_builds_is_listed() {
    // Every attribute is built in the telemetry module (spans, logs, metric labels).
    let src = source_under("src/telemetry");
    let s = schema();
    let mut listed = BTreeSet::new();
    for section in ["attributes", "log_attributes", "resource", "metric_labels"] {
        listed.extend(keys(&s, section));
    }
    // Attribute constructors: s("key", …), i("key", …), f("key", …), the attribute writers
    // (a.str("key", …), .int, .float) and the attr:: constants.
    let mut found = BTreeSet::new();
    let writers = [".str(\"", ".int(\"", ".float(\""];
    for pat in ["s(\"", "i(\"", "f(\"", "str = \""]
        .into_iter()
        .chain(writers)
    {
        for (idx, _) in src.match_indices(pat) {
            if pat.len() == 3 && idx > 0 && src.as_bytes()[idx - 1].is_ascii_alphanumeric() {
                continue;
            }
            let rest = &src[idx + pat.len()..];
            let key: String = rest.chars().take_while(|c| *c != '"').collect();
            if key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
                && !key.is_empty()
            {
                found.insert(key);
            }
        }
    }
    let unlisted: Vec<_> = found.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "attribute keys built in code but missing from telemetry-schema.yaml: {unlisted:?}"
    );
}

#[test]
fn every_attribute_resource_and_log_key_has_one_constant_and_the_schema_lists_exactly_those() {
    use iskra_ws_sidecar::telemetry::names::{attr, log, resource};
    let s = schema();
    let set = |keys: &[&str]| -> BTreeSet<String> { keys.iter().map(|k| k.to_string()).collect() };
    let (code_attr, code_log) = (set(attr::ALL), set(log::ALL));
    assert_eq!(
        code_attr.len(),
        attr::ALL.len(),
        "a key spelled twice in names::attr"
    );
    assert_eq!(
        code_log.len(),
        log::ALL.len(),
        "a key spelled twice in names::log"
    );
    let both: Vec<_> = code_attr.intersection(&code_log).collect();
    assert!(
        both.is_empty(),
        "keys in both names::attr and names::log: {both:?}"
    );
    let mut attributes = keys(&s, "attributes");
    attributes.extend(keys(&s, "metric_labels"));
    assert_eq!(
        code_attr, attributes,
        "names::attr and telemetry-schema.yaml (attributes, metric_labels) differ"
    );
    assert_eq!(
        set(resource::ALL),
        keys(&s, "resource"),
        "names::resource and telemetry-schema.yaml (resource) differ"
    );
    let logged = keys(&s, "log_attributes");
    let unlisted: Vec<_> = code_log.difference(&logged).collect();
    assert!(
        unlisted.is_empty(),
        "log keys missing from log_attributes: {unlisted:?}"
    );
    let nameless: Vec<_> = logged
        .iter()
        .filter(|k| !code_log.contains(*k) && !code_attr.contains(*k))
        .collect();
    assert!(
        nameless.is_empty(),
        "log_attributes without a constant in names: {nameless:?}"
    );
}

#[test]
fn the_outbox_drop_reasons_in_code_and_schema_are_the_same() {
    use iskra_ws_sidecar::events::DropReason;
    let code = DropReason::ALL.iter().map(|r| r.as_str().to_string());
    let listed = &schema()["attributes"]["reason"]["values"];
    same_reasons(listed, code.collect(), "websocket.buffer.dropped");
    // ALL really is every variant: a new one must be added there (and so here).
    for r in DropReason::ALL {
        match r {
            DropReason::Full | DropReason::FullBytes | DropReason::SpoolError => {}
        }
    }
}

/// The reasons the code has (`code`) are the schema's list (`listed`), and the meaning of `metric`
/// explains each.
fn same_reasons(listed: &Value, code: BTreeSet<String>, metric: &str) {
    let listed: BTreeSet<String> = listed
        .as_array()
        .expect("the schema lists every reason")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(code, listed, "{metric}: code vs telemetry-schema.yaml");
    let meaning = schema()["metrics"][metric]["meaning"]
        .as_str()
        .unwrap()
        .to_string();
    for reason in &code {
        assert!(meaning.contains(reason.as_str()), "{reason}: {meaning}");
    }
}

#[test]
fn the_resume_reasons_in_code_and_schema_are_the_same() {
    use iskra_ws_sidecar::events::ResumeGaveUp;
    let code = ResumeGaveUp::ALL.iter().map(|r| r.as_str().to_string());
    let listed = &schema()["metrics"]["websocket.resumes"]["reasons"];
    same_reasons(listed, code.collect(), "websocket.resumes");
    // ALL really is every variant: a new one must be added there (and so here).
    for r in ResumeGaveUp::ALL {
        use ResumeGaveUp::*;
        match r {
            MidFrame | MidMessage | ClientMidMessage | Timeout | BufferFull | Mismatch
            | ReplayTooLarge | Shutdown => {}
        }
    }
}

/// The keys of a log line on stdout and the session span's resume events: one constant each
/// (`names::line`, `names::span_event`; the header's from `jsonlog::key`), and the schema lists exactly
/// those (`log_line`, `span_events`).
#[test]
fn log_line_keys_and_span_event_names_have_one_constant_and_the_schema_lists_exactly_those() {
    use iskra_ws_sidecar::jsonlog::key;
    use iskra_ws_sidecar::telemetry::names::{attr, line, log, span_event};
    let s = schema();
    let set = |keys: &[&str]| -> BTreeSet<String> { keys.iter().map(|k| k.to_string()).collect() };
    let code_line = set(line::ALL);
    assert_eq!(
        code_line.len(),
        line::ALL.len(),
        "a key spelled twice in names::line"
    );
    for (other, name) in [(attr::ALL, "attr"), (log::ALL, "log")] {
        let other = set(other);
        let both: Vec<_> = code_line.intersection(&other).collect();
        assert!(
            both.is_empty(),
            "keys in both names::line and names::{name}: {both:?}"
        );
    }
    assert_eq!(
        code_line,
        keys(&s, "log_line"),
        "names::line and telemetry-schema.yaml (log_line) differ"
    );
    // The header the one writer starts every line with is among them.
    assert!(code_line.contains(key::TIMESTAMP) && code_line.contains(key::LEVEL));
    assert!(log::ALL.contains(&key::EVENT_TYPE) && log::ALL.contains(&key::COMPONENT));
    assert_eq!(
        set(span_event::ALL),
        keys(&s, "span_events"),
        "names::span_event and telemetry-schema.yaml (span_events) differ"
    );
}
