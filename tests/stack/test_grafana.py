"""Grafana provisioning and dashboards.

There is no Grafana here, so the dashboards are checked where they can fail for real: every query of
every panel, annotation and variable is sent to a real Prometheus's HTTP API (Grafana's template
variables substituted as Grafana would), and every metric and label it names must exist in
telemetry-schema.yaml or prometheus/rules/.

Environment (for a run against a Prometheus that scrapes a real sidecar under traffic):
  ISKRA_PROM_URL=http://127.0.0.1:PORT   use that Prometheus instead of starting an empty one; it must
                                          load prometheus/rules/*.yml and scrape the sidecar as job
                                          iskra-ws-sidecar with the target label iskra_dashboard
  ISKRA_REQUIRE_DATA=1                    every query must also return data, except those that only
                                          have data when something goes wrong (MAY_BE_EMPTY below)
  ISKRA_DASHBOARD=pulse                   the value substituted for $dashboard (default pulse)
"""
import json
import os
import re
import time

import pytest
import requests

from obs_support import (GRAFANA_DIR, GRAFANA_VARS, PROM_DIR, RULE_FILES, check_promql_names,
                         dashboard_queries, iter_panels, load_dashboards, load_yaml, prometheus_server,
                         recording_rules, scan_promql, substitute, synthetic_sidecar, variable_query)

REQUIRE_DATA = os.environ.get("ISKRA_REQUIRE_DATA") == "1"
DASHBOARD_VALUE = os.environ.get("ISKRA_DASHBOARD", "pulse")
DS_UID = "prometheus"
UIDS = {"websocket-overview.json": "iskra-ws-overview", "websocket-slos.json": "iskra-ws-slos",
        "websocket-voices-seams.json": "iskra-ws-voices-seams", "websocket-probes.json": "iskra-ws-probes"}

# Series that exist only once something has gone wrong (errors, reconnects, fallbacks, drops, alerts,
# voices answering bad events). With ISKRA_REQUIRE_DATA=1 a query made only of these may be empty.
MAY_BE_EMPTY = {
    "websocket_errors_total", "websocket_reconnections_total", "websocket_reconnects_total",
    "websocket_fallbacks_total", "websocket_heartbeat_missed_total", "websocket_protocol_errors_total",
    "websocket_voice_alerts_total", "iskra_sidecar_events_dropped_total", "iskra_sidecar_telemetry_dropped_total",
    "iskra_sidecar_telemetry_failed_total", "ALERTS",
}

DASHBOARDS = load_dashboards()
QUERIES = [(name, where, expr, kind) for name, d in DASHBOARDS.items() for where, expr, kind in dashboard_queries(d)]


def values():
    return {**GRAFANA_VARS, "dashboard": DASHBOARD_VALUE}


def may_be_empty(expr: str) -> bool:
    names, selectors, _, _ = scan_promql(expr)
    if names <= MAY_BE_EMPTY:
        return True
    # failed handshakes only exist after a failure (unless the sidecar pre-creates the series)
    failed_only = [m for m, _ in selectors if m == "websocket_connections_total"]
    return (names == {"websocket_connections_total"} and failed_only
            and len(re.findall(r'websocket_connections_total\{state="failed"', expr)) == len(failed_only))


@pytest.fixture(scope="module")
def prom_url():
    url = os.environ.get("ISKRA_PROM_URL")
    if url:
        yield url.rstrip("/")
        return
    with prometheus_server(rule_files=RULE_FILES) as url:
        yield url


def instant_query(url, expr):
    r = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
    return r.status_code, body


# ---------------------------------------------------------------------------------- the JSON
def test_dashboards_match_their_generator():
    import runpy  # not an import: leaves no __pycache__ in grafana/
    rendered = runpy.run_path(str(GRAFANA_DIR / "build_dashboards.py"))["render"]()
    assert set(rendered) == set(DASHBOARDS), "grafana/dashboards/ and build_dashboards.py list different files"
    for name, text in rendered.items():
        assert json.loads(text) == DASHBOARDS[name], \
            f"grafana/dashboards/{name} differs from build_dashboards.py: run python3 grafana/build_dashboards.py"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_structure(name):
    d = DASHBOARDS[name]
    assert d["uid"] == UIDS[name], "uids are fixed: alerts' dashboard_url links to them"
    panels = list(iter_panels(d["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    [var] = [v for v in d["templating"]["list"] if v["name"] == "dashboard"]
    assert variable_query(var) == "label_values(websocket_connections_total, iskra_dashboard)"
    assert var["datasource"]["uid"] == DS_UID
    occupied = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"{name} panel {p['id']} leaves the 24-column grid"
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & occupied, f"{name} panel {p['id']} overlaps another panel"
        occupied |= cells
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == DS_UID
        assert p.get("title") and p.get("description"), f"{name} panel {p['id']} needs a title and a description"
        assert p["targets"], f"{name} panel {p['id']} has no query"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DS_UID
            # every panel follows the dashboard variable (ALERTS carry it as `dashboard`)
            assert re.search(r'(iskra_dashboard|dashboard)=~"\$dashboard"', t["expr"]), \
                f"{name} panel {p['id']} {t['refId']} ignores $dashboard"


def test_overview_has_the_seed_panels():
    d = DASHBOARDS["websocket-overview.json"]
    assert d["refresh"] == "5s" and d["time"] == {"from": "now-1h", "to": "now"}
    panels = {p["id"]: p for p in iter_panels(d["panels"])}
    exprs = {i: " ".join(t["expr"] for t in p["targets"]) for i, p in panels.items()}
    assert panels[1]["type"] == "stat" and "websocket_connections_total" in exprs[1]
    assert panels[2]["type"] == "timeseries"
    for q in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({q}, " in exprs[2] and "websocket_handshake_duration_seconds_bucket" in exprs[2]
    assert "avg_latency" not in exprs[2], "the latency graph shows percentiles, not the seed's averages"
    assert "by (error_type)" in exprs[3] and "websocket_errors_total" in exprs[3]
    assert "by (endpoint)" in exprs[4] and "websocket_reconnections_total" in exprs[4]
    assert panels[5]["type"] == "table" and "websocket_voice_alerts_total" in exprs[5]
    ann = [a for a in d["annotations"]["list"] if a.get("expr")]
    assert any('ALERTS{alertname=~"WebSocket.*"' in a["expr"] for a in ann)


def test_other_dashboards_cover_slos_voices_seams_and_probes():
    slo = " ".join(e for w, e, k in dashboard_queries(DASHBOARDS["websocket-slos.json"]))
    for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"slo_errors:ratio_rate{w}" in slo
    assert "$__range" in slo and "/ 0.001" in slo and "/ 0.01" in slo
    vs = " ".join(e for w, e, k in dashboard_queries(DASHBOARDS["websocket-voices-seams.json"]))
    assert "by (voice)" in vs and "by (seam)" in vs
    probes = " ".join(e for w, e, k in dashboard_queries(DASHBOARDS["websocket-probes.json"]))
    for m in ("probe_success", "probe_duration_seconds", "websocket_transport", "websocket_fallbacks_total"):
        assert m in probes


def test_dashboard_queries_use_schema_names():
    problems = []
    for name, where, expr, kind in QUERIES:
        problems += check_promql_names(expr, where)
    for d in DASHBOARDS.values():
        for v in d["templating"]["list"]:
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable_query(v))
            assert m, f"{d['uid']} variable {v['name']}: expected label_values(metric, label)"
            problems += check_promql_names(f"count by ({m.group(2)}) ({m.group(1)})", f"{d['uid']} ${v['name']}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------ a real Prometheus
@pytest.mark.parametrize("name,where,expr,kind", QUERIES, ids=[q[1] for q in QUERIES])
def test_query_runs_on_prometheus(prom_url, name, where, expr, kind):
    query = substitute(expr, values())
    status, body = instant_query(prom_url, query)
    assert status == 200 and body.get("status") == "success", f"{where}\n{query}\n→ HTTP {status}: {body}"
    if REQUIRE_DATA and not may_be_empty(expr):
        assert body["data"]["result"], f"{where} returned no data\n{query}"


def test_variable_queries_run_on_prometheus(prom_url):
    for d in DASHBOARDS.values():
        for v in d["templating"]["list"]:
            metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable_query(v)).groups()
            r = requests.get(f"{prom_url}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "success", r.text
            if REQUIRE_DATA:
                assert DASHBOARD_VALUE in r.json()["data"], f"{d['uid']} ${v['name']}: {r.json()['data']}"


def test_a_broken_query_is_rejected(prom_url):
    """Control: the check above can fail."""
    status, body = instant_query(prom_url, 'sum by (iskra_dashboard (rate(websocket_errors_total[1m]))')
    assert status == 400 and body.get("status") == "error"
    assert check_promql_names("rate(websocket_eror_total[1m])", "typo"), "a misspelt metric must be reported"


def test_rules_load_and_evaluate_on_prometheus(prom_url):
    """The dashboards read recording rules: the Prometheus they query must run prometheus/rules/."""
    expected = {r["record"] for r in recording_rules()}
    deadline = time.monotonic() + 15
    while True:
        groups = requests.get(f"{prom_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        evaluated = all(g.get("lastEvaluation", "").startswith("2") and not g["lastEvaluation"].startswith("0001")
                        for g in groups)
        if (groups and evaluated) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    loaded = {r["name"] for r in rules if r["type"] == "recording"}
    assert expected <= loaded, f"Prometheus at {prom_url} does not load prometheus/rules/: missing {expected - loaded}"
    bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") not in ("ok", "unknown")]
    assert not bad, f"rules failing to evaluate: {bad}"
    assert evaluated, "rule groups were not evaluated"


# ------------------------------------------------------- every query has data from a full sidecar
@pytest.fixture(scope="module")
def synthetic_prom():
    """Prometheus scraping a synthetic sidecar whose /metrics has every schema series (faults included),
    with the repository's scrape job (prometheus/prometheus.yml) aimed at it and the rules loaded."""
    [job] = [j for j in load_yaml(PROM_DIR / "prometheus.yml")["scrape_configs"]
             if j["job_name"] == "iskra-ws-sidecar"]
    with synthetic_sidecar(DASHBOARD_VALUE) as target:
        job = {**job, "scrape_interval": "1s", "scrape_timeout": "1s",
               "static_configs": [{"targets": [target], "labels": {"iskra_dashboard": DASHBOARD_VALUE}}]}
        with prometheus_server(rule_files=RULE_FILES, scrape_configs=[job]) as url:
            # every recording rule has a result, and 1m rates have two samples
            waiting = ["rate(websocket_messages_total[1m])", *sorted({r["record"] for r in recording_rules()})]
            deadline = time.monotonic() + 30
            while waiting:
                if not instant_query(url, waiting[0])[1].get("data", {}).get("result"):
                    if time.monotonic() > deadline:
                        pytest.fail(f"no data for {waiting[0]} after 30 s of a synthetic sidecar")
                    time.sleep(0.3)
                    continue
                waiting.pop(0)
            yield url


@pytest.mark.parametrize("name,where,expr,kind", QUERIES, ids=[q[1] for q in QUERIES])
def test_query_has_data_from_a_sidecar_with_every_series(synthetic_prom, name, where, expr, kind):
    """A query that returns nothing although every series of the schema exists names a label value,
    a label or a combination that can never match."""
    query = substitute(expr, values())
    status, body = instant_query(synthetic_prom, query)
    assert status == 200 and body.get("status") == "success", f"{where}: {body}"
    names, _, _, _ = scan_promql(expr)
    if names == {"ALERTS"}:
        return  # alerts need their `for:` to pass; their queries are checked for syntax above
    assert body["data"]["result"], f"{where} has no data although every schema series exists\n{query}"


def test_self_telemetry_gets_the_dashboard_label_from_the_scrape(synthetic_prom):
    """iskra_sidecar_* series carry no iskra_dashboard of their own: the target label supplies it."""
    _, body = instant_query(synthetic_prom, "iskra_sidecar_events_dropped_total")
    [series] = body["data"]["result"]
    assert series["metric"]["iskra_dashboard"] == DASHBOARD_VALUE
    _, body = instant_query(synthetic_prom, "count(websocket_connections_total{exported_iskra_dashboard!=\"\"})")
    assert not body["data"]["result"], "honor_labels must keep the sidecar's own iskra_dashboard"


# ------------------------------------------------------------------------------- provisioning
def test_datasources():
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml")
    assert doc["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    prom, tempo = by_uid["prometheus"], by_uid["tempo"]
    assert prom["type"] == "prometheus" and tempo["type"] == "tempo"
    assert [d["uid"] for d in doc["datasources"] if d.get("isDefault")] == ["prometheus"]
    [dest] = prom["jsonData"]["exemplarTraceIdDestinations"]
    assert dest["datasourceUid"] == "tempo" and dest["name"] == "trace_id"
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"
    t2m = tempo["jsonData"]["tracesToMetrics"]
    assert t2m["datasourceUid"] == "prometheus"
    assert {"key": "iskra.dashboard", "value": "iskra_dashboard"} in t2m["tags"]
    assert t2m["queries"]


def test_traces_to_logs_and_back():
    """Tempo → Loki: a span opens the log records of its trace; Loki → Tempo: a record's trace_id opens
    its trace. Loki is a compose service the collector sends logs to (otel-collector/compose-overlay.yaml)."""
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml")
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    tempo, loki = by_uid["tempo"], by_uid["loki"]
    assert loki["type"] == "loki" and loki["url"] == "http://loki:3100"
    t2l = tempo["jsonData"]["tracesToLogsV2"]
    assert t2l["datasourceUid"] == "loki" and t2l["filterByTraceID"] is True
    # `$$` escapes Grafana's environment expansion: the query must reach Grafana as ${__trace.traceId}
    assert "$${__trace.traceId}" in t2l["query"] and 'service_name=' in t2l["query"], t2l["query"]
    [field] = loki["jsonData"]["derivedFields"]
    assert (field["datasourceUid"], field["matcherType"], field["matcherRegex"]) == ("tempo", "label", "trace_id")
    overlay = load_yaml(GRAFANA_DIR.parent / "otel-collector" / "compose-overlay.yaml")
    assert overlay["exporters"]["otlp_http/loki"]["endpoint"].endswith("http://loki:3100/otlp}")
    assert "otlp_http/loki" in overlay["service"]["pipelines"]["logs"]["exporters"]
    loki_cfg = load_yaml(GRAFANA_DIR.parent / "otel-collector" / "loki.yaml")
    assert loki_cfg["limits_config"]["allow_structured_metadata"] is True, "trace_id is structured metadata"
    assert loki_cfg["server"]["http_listen_port"] == 3100


def test_latency_panels_show_exemplars():
    """The histograms whose buckets carry exemplars (tests/exemplars.rs) are drawn with exemplars on, so a
    latency point links to its trace."""
    with_exemplars = set()
    for d in DASHBOARDS.values():
        for p in iter_panels(d["panels"]):
            for t in p.get("targets", []):
                if t.get("exemplar"):
                    with_exemplars |= set(re.findall(r"(\w+)_bucket", t["expr"]))
    assert {"websocket_handshake_duration_seconds", "websocket_upstream_connect_duration_seconds"} <= with_exemplars


def test_traces_to_metrics_queries(prom_url):
    t2m = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml")
    [tempo] = [d for d in t2m["datasources"] if d["uid"] == "tempo"]
    for q in tempo["jsonData"]["tracesToMetrics"]["queries"]:
        # `$$` is the provisioning file's escape for a literal `$`; Grafana puts the span's tags in $__tags
        assert "$$__tags" in q["query"], f"{q['name']}: use $$__tags in a provisioning file"
        expr = q["query"].replace("$$__tags", f'iskra_dashboard="{DASHBOARD_VALUE}"')
        assert not check_promql_names(expr, q["name"]), check_promql_names(expr, q["name"])
        status, body = instant_query(prom_url, expr)
        assert status == 200 and body["status"] == "success", f"{q['name']}: {body}"


def test_dashboard_provider():
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "iskra.yml")
    [p] = doc["providers"]
    assert p["type"] == "file" and p["options"]["path"].startswith("/var/lib/grafana/dashboards")
    assert p.get("allowUiUpdates") is False
