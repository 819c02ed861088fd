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
