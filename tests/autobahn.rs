//! The Autobahn|Testsuite server cases (via kosoku; 9.*, 12.*, 13.* excluded) against a node `ws` server
//! directly and through the sidecar (with `resume.hold_ms` on): the same cases must pass both ways.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::*;

/// Runs kosoku against `addr`; returns case id → passed.
fn kosoku(addr: &str, out: &std::path::Path) -> BTreeMap<String, bool> {
    let status = Command::new("kosoku")
        .args(["-x", "9.*", "-x", "12.*", "-x", "13.*", "-p", "4", "-o"])
        .arg(out)
        .arg(addr)
        .current_dir(out)
        .status()
        .expect("kosoku is missing: run scripts/install-test-deps.sh (pip install kosoku)");
    let _ = status; // a non-zero exit only means some case failed; the report says which
    let mut cases = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.contains("_case_") || !name.ends_with(".json") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let id = v["id"].as_str().map(str::to_string).unwrap_or(name.clone());
        let ok = |k: &str| matches!(v[k].as_str(), Some("OK" | "NON-STRICT" | "INFORMATIONAL"));
        cases.insert(id, ok("behavior") && ok("behaviorClose"));
    }
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_autobahn_cases_pass_direct_and_through_the_sidecar() {
    let up = node_ws(&[("PLAIN_ECHO", "1")]);
    // With sessions held through restarts (resume.hold_ms): the relay path with the most to get wrong.
    let resume = [("ISKRA_SIDECAR_RESUME__HOLD_MS", "5000")];
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &resume);
    let tmp = tempfile::tempdir().unwrap();
    let (d, s) = (tmp.path().join("direct"), tmp.path().join("sidecar"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(&s).unwrap();
    let direct = tokio::task::spawn_blocking(move || kosoku(&format!("127.0.0.1:{}", up.port), &d))
        .await
        .unwrap();
    let addr = sc.addr.to_string();
    let through = tokio::task::spawn_blocking(move || kosoku(&addr, &s))
        .await
        .unwrap();
    let passed = |m: &BTreeMap<String, bool>| m.values().filter(|v| **v).count();
    println!(
        "autobahn: direct {}/{} passed, through the sidecar {}/{} passed",
        passed(&direct),
        direct.len(),
        passed(&through),
        through.len()
    );
    assert!(
        direct.len() >= 240,
        "kosoku ran only {} cases",
        direct.len()
    );
    assert_eq!(direct.len(), through.len());
    let differ: Vec<_> = direct
        .iter()
        .filter(|(k, v)| through.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        differ.is_empty(),
        "cases that differ through the sidecar: {differ:?}"
    );
    assert_eq!(
        passed(&through),
        through.len(),
        "every case passes through the sidecar"
    );
}
