//! `iskra-ws-sidecar config`: the effective configuration with where each value came from (default,
//! file, env, flag), secrets masked; `config --check FILE` validates a file (exit 0 / 64).

use serde_json::{Map, Value};

use super::{figment, from_tree, is_secret, Sources, SEED_ENV};
use crate::app::EXIT_CONFIG;
use crate::cli::ConfigCmd;

fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// A secret with a value: shown as `****` (an empty one is shown as it is: unset says nothing).
fn is_set_secret(key: &str, v: &Value) -> bool {
    is_secret(key) && !matches!(v, Value::Null) && v.as_str() != Some("")
}

fn lookup<'v>(tree: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(tree, |v, part| v.get(part))
}

/// Where `key` got its value.
fn source_of(key: &str, sources: &Sources, file_tree: &Value) -> String {
    if sources.flags.iter().any(|(k, _)| *k == key) {
        return "flag".into();
    }
    let env_name = format!(
        "ISKRA_SIDECAR_{}",
        key.to_ascii_uppercase().replace('.', "__")
    );
    if std::env::var_os(&env_name).is_some() {
        return format!("env {env_name}");
    }
    if let Some((name, _)) = SEED_ENV
        .iter()
        .find(|(name, k)| *k == key && std::env::var_os(name).is_some())
    {
        return format!("env {name}");
    }
    if lookup(file_tree, key).is_some() {
        return "file".into();
    }
    "default".into()
}

/// Runs the command; returns the exit code.
pub fn run(args: ConfigCmd) -> u8 {
    let file = args.check.clone().or(args.cfg.config.clone());
    let sources = Sources {
        file: file.clone(),
        flags: Vec::new(),
    };
    let loaded = figment(&sources).and_then(|f| {
        f.extract::<Value>().map_err(|e| {
            super::ConfigErrors(vec![super::ConfigError::parse(
                file.as_deref(),
                e.to_string(),
            )])
        })
    });
    let tree = match loaded.and_then(|t| from_tree(&t).map(|_| t)) {
        Ok(t) => t,
        Err(errs) => {
            if args.json {
                let list: Vec<Value> = errs.0.iter().map(|e| serde_json::json!({"key": e.key, "value": e.value, "expected": e.expected})).collect();
                println!("{}", serde_json::json!({"valid": false, "errors": list}));
            } else {
                eprintln!("{errs}");
            }
            return EXIT_CONFIG;
        }
    };
    if args.check.is_some() && !args.json {
        println!(
            "{}: valid",
            file.map(|p| p.display().to_string()).unwrap_or_default()
        );
        return 0;
    }
    let file_tree = file_only(&sources).unwrap_or(Value::Null);
    let mut rows = Vec::new();
    leaves("", &tree, &mut rows);
    if args.json {
        let mut m = Map::new();
        for (k, v) in &rows {
            let v = if is_set_secret(k, v) {
                Value::String("****".into())
            } else {
                v.clone()
            };
            m.insert(
                k.clone(),
                serde_json::json!({"value": v, "source": source_of(k, &sources, &file_tree)}),
            );
        }
        println!("{}", Value::Object(m));
    } else {
        for (k, v) in &rows {
            let shown = if is_set_secret(k, v) {
                "****".to_string()
            } else {
                v.to_string()
            };
            println!("{k} = {shown}    # {}", source_of(k, &sources, &file_tree));
        }
    }
    0
}

fn file_only(sources: &Sources) -> Option<Value> {
    let path = sources.file.as_ref()?;
    super::file_provider(path).ok()?.extract::<Value>().ok()
}
