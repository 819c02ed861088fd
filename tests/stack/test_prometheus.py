"""Prometheus configuration, recording rules and alerts, checked with the real promtool.

- `promtool check config` / `check rules` accept prometheus/.
- `promtool test rules` passes the unit tests of tests/stack/prometheus_tests/, and those tests cover
  every alert: firing exactly when its `for:` has elapsed (the evaluation before, it is not listed),
  with all labels and annotations, and silent on healthy series.
- The unit tests can fail: a wrong expectation, and a broken rule, each make promtool exit non-zero.
- Every alert follows the conventions Alertmanager, Grafana and the runbook rely on, and every metric
  and label a rule names exists in telemetry-schema.yaml.
"""
import copy
import pathlib
import re

import pytest
import yaml

from obs_support import (GRAFANA_URL_PREFIX, PROM_DIR, PROM_TESTS_DIR, ROOT, RULE_FILES, RUNBOOK,
                         RUNBOOK_URL_PREFIX, alert_rules, all_rules, check_promql_names, load_dashboards,
                         load_yaml, recording_rules, run, tool)

TEST_FILES = sorted(PROM_TESTS_DIR.glob("*_test.yml"))
SEVERITY_VOICE = {"critical": "alarm", "warning": "concern"}
# the seed's seam vocabulary (event table, log entries)
SEAMS = {"general_operation", "network_infrastructure", "communication_protocol", "resilience_mechanisms",
         "data_contract", "load_balancing", "error_handling", "performance_monitoring"}
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook_url", "dashboard_url"}


def promtool():
    return tool("promtool")


def duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


def unit_tests():
    """(file, test group, alert_rule_test case) for every alert case of every test file."""
    out = []
    for f in TEST_FILES:
        doc = load_yaml(f)
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                out.append((f, doc, group, case))
    return out


# ------------------------------------------------------------------------------------ promtool
def test_promtool_check_config():
    r = run([promtool(), "check", "config", PROM_DIR / "prometheus.yml"], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_rules():
    r = run([promtool(), "check", "rules", "--lint=all", "--lint-fatal", *RULE_FILES], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(RULE_FILES) >= 3


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file):
    r = run([promtool(), "test", "rules", test_file], cwd=test_file.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_unit_tests_load_every_rule_file():
    loaded = set()
    for f in TEST_FILES:
        loaded |= {(f.parent / p).resolve() for p in load_yaml(f)["rule_files"]}
    assert {f.resolve() for f in RULE_FILES} <= loaded


# ------------------------------------------------------------------------------------ coverage
@pytest.mark.parametrize("alert", [r["alert"] for r in alert_rules()])
def test_every_alert_fires_at_the_right_time_and_stays_silent_otherwise(alert):
    rule = next(r for r in alert_rules() if r["alert"] == alert)
    cases = [(f, doc, g, c) for f, doc, g, c in unit_tests() if c["alertname"] == alert]
    firing = [x for x in cases if x[3].get("exp_alerts")]
    silent = [x for x in cases if not x[3].get("exp_alerts")]
    assert firing, f"{alert}: no promtool case shows it firing"
    assert silent, f"{alert}: no promtool case shows it silent (exp_alerts: [])"

    # the `for:` boundary: some firing case has, in the same test group, a silent case exactly one
    # evaluation earlier — so the alert is shown pending-but-not-firing, then firing.
    pairs = []
    for f, doc, g, c in firing:
        step = duration_s(doc.get("evaluation_interval", "1m"))
        t = duration_s(c["eval_time"])
        for c2 in g.get("alert_rule_test", []):
            if c2["alertname"] == alert and not c2.get("exp_alerts") and duration_s(c2["eval_time"]) == t - step:
                pairs.append((g["name"], c2["eval_time"], c["eval_time"]))
    assert pairs, (f"{alert}: no test group shows it silent one evaluation before it fires "
                   f"(for: {rule.get('for', '0s')})")

    # every firing expectation names all the labels and annotations the alert carries
    for f, doc, g, c in firing:
        for exp in c["exp_alerts"]:
            labels = exp.get("exp_labels", {})
            for key, value in rule["labels"].items():
                assert labels.get(key) == value, f"{alert} in {g['name']!r}: label {key} should be {value}"
            assert labels.get("dashboard"), f"{alert} in {g['name']!r}: no dashboard label expected"
            missing = REQUIRED_ANNOTATIONS - set(exp.get("exp_annotations", {}))
            assert not missing, f"{alert} in {g['name']!r}: annotations not checked: {missing}"


def test_every_recording_rule_is_exercised():
    used_text = "\n".join(r["expr"] for _, _, r in all_rules())
    for f in TEST_FILES:
        for g in load_yaml(f)["tests"]:
            used_text += "\n".join(c["expr"] for c in g.get("promql_expr_test", []))
    for r in recording_rules():
        assert re.search(rf"(?<![\w:]){re.escape(r['record'])}(?![\w:])", used_text), \
            f"recording rule {r['record']} is neither used by a rule nor checked by a promql_expr_test"


# ------------------------------------------------------------------------- the tests can fail
def _absolutise(doc: dict, test_file: pathlib.Path, rule_map=None) -> dict:
    doc = copy.deepcopy(doc)
    rule_map = rule_map or {}
    files = []
    for p in doc["rule_files"]:
        real = (test_file.parent / p).resolve()
        files.append(str(rule_map.get(real, real)))
    doc["rule_files"] = files
    return doc


def _promtool_on(doc, tmp_path, name="mutated_test.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return run([promtool(), "test", "rules", path], cwd=tmp_path)


def _first(pred):
    for f, doc, g, c in unit_tests():
        if pred(g, c):
            return f, doc, g, c
    pytest.fail("no unit test case matches the mutation's precondition")


def _mutate_case(doc, group_name, case, change):
    """A copy of the test file reduced to one test group with one (mutated) case."""
    doc = copy.deepcopy(doc)
    group = next(g for g in doc["tests"] if g["name"] == group_name)
    c = next(c for c in group["alert_rule_test"] if c == case)
    change(c)
    group["alert_rule_test"] = [c]
    group.pop("promql_expr_test", None)
    doc["tests"] = [group]
    return doc


def test_unmutated_single_case_passes(tmp_path):
    """Control for the mutation tests below: the reduced file passes when nothing is changed."""
    f, doc, g, c = _first(lambda g, c: c.get("exp_alerts"))
    r = _promtool_on(_absolutise(_mutate_case(doc, g["name"], c, lambda c: None), f), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("mutation", ["wrong_label", "wrong_annotation", "one_evaluation_early",
                                      "alert_expected_on_healthy_series", "missing_alert"])
def test_a_wrong_expectation_makes_promtool_fail(mutation, tmp_path):
    if mutation == "wrong_label":
        f, doc, g, c = _first(lambda g, c: c.get("exp_alerts"))
        change = lambda c: c["exp_alerts"][0]["exp_labels"].update(voice="celebration")  # noqa: E731
    elif mutation == "wrong_annotation":
        f, doc, g, c = _first(lambda g, c: c.get("exp_alerts"))
        change = lambda c: c["exp_alerts"][0]["exp_annotations"].update(summary="something else")  # noqa: E731
    elif mutation == "one_evaluation_early":
        f, doc, g, c = _first(lambda g, c: c.get("exp_alerts") and c["eval_time"] == "6m")
        change = lambda c: c.update(eval_time="5m")  # noqa: E731
    elif mutation == "alert_expected_on_healthy_series":
        f, doc, g, c = _first(lambda g, c: g["name"].startswith("healthy") and not c.get("exp_alerts"))
        change = lambda c: c.update(exp_alerts=[{"exp_labels": {"severity": "warning"}}])  # noqa: E731
    else:
        f, doc, g, c = _first(lambda g, c: len(c.get("exp_alerts") or []) >= 2)
        change = lambda c: c["exp_alerts"].pop()  # noqa: E731
    r = _promtool_on(_absolutise(_mutate_case(doc, g["name"], c, change), f), tmp_path)
    assert r.returncode != 0, f"promtool accepted a wrong expectation ({mutation}):\n{r.stdout}{r.stderr}"
    assert "FAILED" in r.stdout + r.stderr


RULE_MUTATIONS = {
    # a shorter `for:` fires a minute early
    "for_too_short": ("websocket-alerts.yml", "alert: WebSocketLatencyWarning",
                      "for: 5m", "for: 4m"),
    # a threshold off by a few percent misses the 2 % case
    "threshold_too_high": ("websocket-alerts.yml", "alert: WebSocketErrorRateWarning",
                           "iskra_dashboard:websocket_errors:ratio_rate5m > 0.01",
                           "iskra_dashboard:websocket_errors:ratio_rate5m > 0.03"),
    # availability as connected / (connected + failed) has no series when nothing ever connected
    "availability_without_robust_ratio": ("websocket-recording.yml",
                                          "record: iskra_dashboard:websocket_handshake_failures:rate5m",
                                          "or\n          iskra_dashboard:websocket_handshake_attempts:rate5m * 0",
                                          ""),
    # the wrong voice for a critical alert
    "wrong_voice": ("websocket-alerts.yml", "alert: WebSocketSidecarDown", "voice: alarm", "voice: concern"),
    # a page on the short window alone
    "burn_without_long_window": ("websocket-slo-alerts.yml", "alert: WebSocketAvailabilityBudgetBurnFast",
                                 'iskra_dashboard:slo_errors:ratio_rate6h{slo="availability"} / 0.001 > 6\n'
                                 '                and\n', ""),
}


@pytest.mark.parametrize("mutation", sorted(RULE_MUTATIONS))
def test_a_broken_rule_makes_the_unit_tests_fail(mutation, tmp_path):
    file_name, anchor, old, new = RULE_MUTATIONS[mutation]
    src = (PROM_DIR / "rules" / file_name).resolve()
    text = src.read_text()
    start = text.index(anchor)
    end = text.find("\n      - ", start + 1)
    end = len(text) if end == -1 else end
    block = text[start:end]
    assert old in block, f"mutation {mutation}: {old!r} not found in the {anchor!r} rule"
    mutated = text[:start] + block.replace(old, new, 1) + text[end:]
    (tmp_path / file_name).write_text(mutated)
    r0 = run([tool("promtool"), "check", "rules", tmp_path / file_name])
    assert r0.returncode == 0, f"the mutation should stay valid PromQL: {r0.stdout}{r0.stderr}"
    failures = 0
    for f in TEST_FILES:
        doc = load_yaml(f)
        if src not in {(f.parent / p).resolve() for p in doc["rule_files"]}:
            continue
        r = _promtool_on(_absolutise(doc, f, {src: tmp_path / file_name}), tmp_path, name=f.name)
        failures += r.returncode != 0
    assert failures, f"no promtool unit test noticed the broken rule ({mutation})"


# --------------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("alert", [r["alert"] for r in alert_rules()])
def test_alert_conventions(alert):
    rule = next(r for r in alert_rules() if r["alert"] == alert)
    labels, ann = rule.get("labels", {}), rule.get("annotations", {})
    assert alert.startswith("WebSocket")
    assert labels.get("severity") in SEVERITY_VOICE, f"{alert}: severity must be critical or warning"
    assert labels.get("voice") == SEVERITY_VOICE[labels["severity"]], f"{alert}: voice must follow severity"
    assert labels.get("seam") in SEAMS, f"{alert}: seam {labels.get('seam')!r} is not in the seed's vocabulary"
    assert labels.get("alert_group") and alert.startswith(labels["alert_group"]), \
        f"{alert}: alert_group must name its family (a prefix of the alert name)"
    assert "dashboard" not in labels, "dashboard must come from the series (label_replace), not be fixed"
    assert re.search(r'label_replace\([\s\S]*"dashboard",\s*"\$1",\s*"iskra_dashboard"', rule["expr"]), \
        f"{alert}: the expression must copy iskra_dashboard into dashboard"
    assert REQUIRED_ANNOTATIONS <= set(ann), f"{alert}: missing annotations {REQUIRED_ANNOTATIONS - set(ann)}"
    assert ann["runbook_url"] == RUNBOOK_URL_PREFIX + alert.lower()
    assert ann["dashboard_url"].startswith(GRAFANA_URL_PREFIX)
    assert "{{ $labels.dashboard }}" in ann["dashboard_url"]
    if "for" in rule:
        assert duration_s(rule["for"]) > 0


def test_critical_and_warning_pairs_share_an_alert_group():
    """Alertmanager inhibits a warning by the critical of the same alert_group and dashboard."""
    groups = {}
    for r in alert_rules():
        groups.setdefault(r["labels"]["alert_group"], set()).add(r["labels"]["severity"])
    for name in ["WebSocketLatency", "WebSocketErrorRate", "WebSocketAvailability", "WebSocketHeartbeatFailures",
                 "WebSocketAvailabilityBudgetBurn", "WebSocketLatencyBudgetBurn"]:
        assert groups.get(name) == {"critical", "warning"}, f"{name}: {groups.get(name)}"


def test_seed_thresholds_and_burn_rate_windows():
    rules = {r["alert"]: r for r in alert_rules()}
    expect = {
        "WebSocketLatencyWarning": "> 0.5", "WebSocketLatencyCritical": "> 1",
        "WebSocketErrorRateWarning": "> 0.01", "WebSocketErrorRateCritical": "> 0.05",
        "WebSocketAvailabilityWarning": "< 0.99", "WebSocketAvailabilityCritical": "< 0.95",
        "WebSocketHeartbeatFailuresWarning": ">= 2", "WebSocketHeartbeatFailuresCritical": ">= 5",
    }
    for alert, cmp in expect.items():
        assert re.search(re.escape(cmp) + r"\s*,", rules[alert]["expr"]), f"{alert}: expected {cmp}"
    burn = {
        "Fast": [("1h", "5m", "14.4"), ("6h", "30m", "6")],
        "Slow": [("1d", "2h", "3"), ("3d", "6h", "1")],
    }
    for slo, budget in (("Availability", "0.001"), ("Latency", "0.01")):
        for speed, pairs in burn.items():
            expr = rules[f"WebSocket{slo}BudgetBurn{speed}"]["expr"]
            for long_w, short_w, factor in pairs:
                for w in (long_w, short_w):
                    assert f'ratio_rate{w}{{slo="{slo.lower()}"}} / {budget} > {factor}' in expr, \
                        f"WebSocket{slo}BudgetBurn{speed}: window {w} × {factor} missing"
    assert rules["WebSocketAvailabilityBudgetBurnFast"]["labels"]["severity"] == "critical"
    assert rules["WebSocketAvailabilityBudgetBurnSlow"]["labels"]["severity"] == "warning"
    # the latency SLO's good events are the handshakes in the 0.185 s bucket
    rec = "\n".join(r["expr"] for r in recording_rules())
    assert 'websocket_handshake_duration_seconds_bucket{le="0.185"}' in rec


def test_every_alert_has_a_runbook_section():
    text = RUNBOOK.read_text(encoding="utf-8")
    headings = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#{2,3}\s+(.+)$", text, re.M)}
    for r in alert_rules():
        assert r["alert"].lower() in headings, f"docs/runbook.md has no section for {r['alert']}"
        section = text.split(f"## {r['alert']}", 1)[1].split("\n## ", 1)[0]
        for part in ("Means", "Likely causes", "Do"):
            assert f"**{part}" in section, f"runbook section {r['alert']} lacks **{part}**"


def test_every_dashboard_url_points_at_an_existing_panel():
    dashboards = {d["uid"]: d for d in load_dashboards().values()}
    for r in alert_rules():
        url = r["annotations"]["dashboard_url"]
        m = re.match(re.escape(GRAFANA_URL_PREFIX) + r"([\w-]+)/[\w-]+\?.*viewPanel=(\d+)", url)
        assert m, f"{r['alert']}: dashboard_url {url} is not /d/<uid>/<slug>?…viewPanel=<id>"
        uid, panel_id = m.group(1), int(m.group(2))
        assert uid in dashboards, f"{r['alert']}: no Grafana dashboard with uid {uid}"
        ids = {p["id"] for p in dashboards[uid]["panels"]}
        assert panel_id in ids, f"{r['alert']}: dashboard {uid} has no panel {panel_id}"
        assert "var-dashboard=" in url


def test_rules_use_only_schema_metrics_and_labels():
    problems = []
    for f, group, r in all_rules():
        name = r.get("alert") or r.get("record")
        problems += check_promql_names(r["expr"], f"{f.name}:{name}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------- prometheus.yml
def test_prometheus_config_scrapes_the_sidecars_and_alerts_to_alertmanager():
    cfg = load_yaml(PROM_DIR / "prometheus.yml")
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    job = jobs["iskra-ws-sidecar"]
    interval = job.get("scrape_interval", cfg["global"].get("scrape_interval", "1m"))
    assert 1 <= duration_s(interval) <= 15, f"scrape interval {interval} outside 1s–15s"
    targets = {}
    for sc in job["static_configs"]:
        for t in sc["targets"]:
            targets[t] = sc.get("labels", {}).get("iskra_dashboard")
    assert targets == {"sidecar-pulse:8080": "pulse", "sidecar-seams:8080": "seams",
                       "sidecar-voices:8080": "voices"}
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # the target label must not rename the sidecar's own iskra_dashboard to exported_iskra_dashboard
    assert job.get("honor_labels") is True
    am = [t for a in cfg["alerting"]["alertmanagers"] for sc in a["static_configs"] for t in sc["targets"]]
    assert am == ["alertmanager:9093"]
    globs = cfg["rule_files"]
    covered = {p.resolve() for g in globs for p in PROM_DIR.glob(g)}
    assert {f.resolve() for f in RULE_FILES} <= covered
