"""Shared helpers of the Prometheus / Alertmanager / Grafana checks (test_prometheus.py,
test_alertmanager.py, test_grafana.py): repository paths, the real tools, free ports, the metric
names of telemetry-schema.yaml, and a small PromQL name scanner.

The scanner is not a PromQL parser — Prometheus itself checks syntax (promtool, /api/v1/query).
It only pulls out the metric and label names an expression refers to so they can be checked
against the schema, which Prometheus cannot do: a misspelt metric is valid PromQL that silently
returns nothing.
"""
from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
PROM_TESTS_DIR = pathlib.Path(__file__).resolve().parent / "prometheus_tests"
AM_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
RUNBOOK = ROOT / "docs" / "runbook.md"
SCHEMA = ROOT / "telemetry-schema.yaml"

RUNBOOK_URL_PREFIX = "https://github.com/iskra/iskra-ws-sidecar/blob/main/docs/runbook.md#"
GRAFANA_URL_PREFIX = "https://grafana.iskra.local/d/"

INSTALL_HINT = "run `bash scripts/install-test-deps.sh` (Debian: apt-get install prometheus prometheus-alertmanager)"


def tool(*names: str) -> str:
    """Path of the first of `names` on PATH; fails the test with a clear message if none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"required tool {' / '.join(names)} not found on PATH: {INSTALL_HINT}", pytrace=False)


def run(cmd, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# ---------------------------------------------------------------------------------------- rules
def all_rules():
    """Every rule of prometheus/rules/*.yml as (file, group, rule dict)."""
    out = []
    for f in RULE_FILES:
        for g in load_yaml(f)["groups"]:
            for r in g["rules"]:
                out.append((f, g["name"], r))
    return out


def alert_rules():
    return [r for _, _, r in all_rules() if "alert" in r]


def recording_rules():
    return [r for _, _, r in all_rules() if "record" in r]


# --------------------------------------------------------------------------------------- schema
@functools.lru_cache(maxsize=None)
def schema_metrics() -> dict[str, set[str]]:
    """Prometheus series name → label names (Prometheus form) the schema promises for it.
    Histograms give _bucket (with `le`), _sum and _count."""
    doc = load_yaml(SCHEMA)
    out: dict[str, set[str]] = {}
    for key, m in doc["metrics"].items():
        name = m["prometheus"]
        labels = {l.replace(".", "_") for l in m.get("labels", [])}
        if m.get("instrument") == "histogram":
            out[name + "_bucket"] = labels | {"le"}
            out[name + "_sum"] = set(labels)
            out[name + "_count"] = set(labels)
        else:
            out[name] = labels
    return out


# Labels Prometheus adds to every scraped series, and those of the synthetic series.
SCRAPE_LABELS = {"job", "instance"}
SYNTHETIC = {
    "up": {"job", "instance", "iskra_dashboard"},
    # ALERTS carries alertname, alertstate and every label of the alert
    "ALERTS": {"alertname", "alertstate", "severity", "voice", "seam", "alert_group", "dashboard",
               "iskra_dashboard", "slo", "signal", "job", "instance"},
}


@functools.lru_cache(maxsize=None)
def known_series() -> dict[str, set[str]]:
    """Every series name a query may use, with its label names: schema metrics (+ job, instance,
    and iskra_dashboard, which the scrape config guarantees), recording rules (their `by` labels and
    static labels), `up` and `ALERTS`."""
    out = {n: labels | SCRAPE_LABELS | {"iskra_dashboard"} for n, labels in schema_metrics().items()}
    out.update(SYNTHETIC)
    rules = recording_rules()
    for _ in range(3):  # a rule built on other rules (no `by` of its own) inherits their labels
        for r in rules:
            labels = set(r.get("labels", {}))
            bys = re.findall(r"\bby\s*\(([^)]*)\)", r["expr"])
            for by in bys:
                labels |= {x.strip() for x in by.split(",") if x.strip()}
            if not bys:
                for other in rules:
                    if re.search(rf"(?<![\w:]){re.escape(other['record'])}(?![\w:])", r["expr"]):
                        labels |= out.get(other["record"], set())
            if "histogram_quantile" in r["expr"]:
                labels.discard("le")
            out.setdefault(r["record"], set()).update(labels)
    return out


# ------------------------------------------------------------------------------- PromQL scanning
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
             "bool", "offset", "inf", "nan", "start", "end"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][\w]*)\s*(=~|!~|!=|=)")


def scan_promql(expr: str):
    """(metric names, [(metric or None, matcher label names)], grouping label names, label_replace
    destination labels) referred to by a PromQL expression."""
    # label_replace(v, "dst", "repl", "src", "regex"): the destination is a label the expression adds
    dst = set(re.findall(r'label_replace\s*\(.*?,\s*"([^"]*)"\s*,\s*"[^"]*"\s*,\s*"([^"]*)"', expr, re.S))
    added = {d for d, _ in dst}
    src = {s for _, s in dst if s}
    # selectors, before strings are blanked (matchers contain strings)
    selectors = []
    no_strings = _STRING.sub('""', expr)
    for m in _SELECTOR.finditer(no_strings):
        selectors.append((m.group(1), {n for n, _ in _MATCHER.findall(m.group(2))}))
    grouping = set()
    for _, labels in _GROUPING.findall(no_strings):
        grouping |= {x.strip() for x in labels.split(",") if x.strip()}
    s = re.sub(r"\{[^}]*\}", " ", no_strings)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = _GROUPING.sub(" ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)", s):
        name = m.group(1)
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names, selectors, grouping | src, added


def check_promql_names(expr: str, where: str, extra_labels: set[str] = frozenset()) -> list[str]:
    """Problems with the metric and label names of `expr` (empty list if none)."""
    series = known_series()
    problems = []
    names, selectors, grouping, added = scan_promql(expr)
    for n in sorted(names):
        if n not in series:
            problems.append(f"{where}: metric {n!r} is not in telemetry-schema.yaml, not a recording "
                            f"rule of prometheus/rules/, nor up/ALERTS")
    for metric, labels in selectors:
        allowed = series.get(metric, set()) if metric else set().union(*series.values())
        for label in sorted(labels - allowed - {"__name__"}):
            problems.append(f"{where}: label {label!r} is not a label of {metric or 'any metric'}")
    used = set().union(*(series.get(n, set()) for n in names)) if names else set()
    for label in sorted(grouping - used - added - set(extra_labels) - {"le"}):
        problems.append(f"{where}: grouping/source label {label!r} is on none of {sorted(names)}")
    return problems


# --------------------------------------------------------------------------------- dashboards
def load_dashboards():
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARD_FILES}


def iter_panels(panels):
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


def dashboard_queries(dash):
    """Every PromQL expression of a dashboard: (where, expr, kind) with kind target|annotation."""
    out = []
    for p in iter_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"{dash['uid']} panel {p['id']} ({p.get('title')}) target {t.get('refId')}",
                            t["expr"], "target"))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"{dash['uid']} annotation {a.get('name')}", a["expr"], "annotation"))
    return out


def variable_query(var) -> str:
    q = var.get("query")
    return q.get("query", "") if isinstance(q, dict) else (q or "")


GRAFANA_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600",
                "__range_ms": "3600000", "__interval_ms": "15000"}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana's $var, ${var}, ${var:fmt} and [[var]]; an unknown variable raises KeyError."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


# --------------------------------------------------------------------------------- Prometheus
@contextlib.contextmanager
def prometheus_server(rule_files=(), scrape_configs=(), extra_args=()):
    """A real Prometheus on 127.0.0.1:<free port> with an empty TSDB in a temp dir; yields its URL."""
    import requests

    binary = tool("prometheus")
    with tempfile.TemporaryDirectory(prefix="iskra-prom-") as tmp:
        tmp = pathlib.Path(tmp)
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "rule_files": [str(f) for f in rule_files],
               "scrape_configs": list(scrape_configs)}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        port = free_port()
        log = open(tmp / "prometheus.log", "w")
        proc = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", *extra_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"prometheus exited with {proc.returncode}:\n{(tmp / 'prometheus.log').read_text()}")
                try:
                    if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"prometheus not ready in 30 s:\n{(tmp / 'prometheus.log').read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


# ------------------------------------------------------------------------ a synthetic sidecar
# Label values for a synthetic /metrics that has every series of telemetry-schema.yaml, faults included.
SYNTHETIC_LABEL_VALUES = {
    "state": ["connected", "disconnected", "failed"],
    "error_type": ["NETWORK_ERROR", "PROTOCOL_ERROR"],
    "http_response_status_code": ["101", "502"],
    "websocket_peer": ["client", "upstream"],
    "endpoint": ["ws://localhost:3001", "ws://backup-pulse.iskra.local:3001"],
    "network_io_direction": ["receive", "transmit"],
    "websocket_frame_type": ["text", "binary"],
    "websocket_close_code": ["1000", "1006"],
    "websocket_close_initiator": ["client", "upstream"],
    "websocket_upstream_name": ["primary", "backup-1"],
    "websocket_transport": ["websocket", "sse"],
    "websocket_protocol_error_rule": ["unmasked_client_frame"],
    "voice": ["alarm", "concern"],
    "signal": ["traces", "metrics", "logs"],
    "outcome": ["resumed", "gave_up"],
    "reason": ["full", "hold_timeout"],
}
DEFAULT_BUCKETS = [0.005, 0.05, 0.185, 0.5, 1, 5, 60, 3600, 100000]


def synthetic_exposition(elapsed: float, dashboard: str = "pulse") -> str:
    """Prometheus text exposition with every schema metric, as a sidecar under (faulty) traffic would
    show after `elapsed` seconds. Counters grow with time; every label combination exists."""
    import itertools

    doc = load_yaml(SCHEMA)
    lines = []
    for key, m in doc["metrics"].items():
        name, kind = m["prometheus"], m["instrument"]
        # series without iskra.dashboard in the schema get it from the scrape's target label
        own_dashboard = "iskra.dashboard" in m.get("labels", [])
        labels = [l.replace(".", "_") for l in m.get("labels", []) if l != "iskra.dashboard"]
        combos = list(itertools.product(*[SYNTHETIC_LABEL_VALUES.get(l, ["x"]) for l in labels]))
        ptype = {"counter": "counter", "histogram": "histogram"}.get(kind, "gauge")
        lines.append(f"# TYPE {name} {ptype}")
        for i, combo in enumerate(combos):
            pairs = [f'iskra_dashboard="{dashboard}"'] if own_dashboard else []
            pairs += [f'{l}="{v}"' for l, v in zip(labels, combo)]
            def sel(*extra):
                return "{" + ",".join(pairs + list(extra)) + "}" if pairs or extra else ""
            if kind == "histogram":
                buckets = m.get("buckets", DEFAULT_BUCKETS)
                count = 10.0 * elapsed
                # observations spread over the buckets: a quarter in the first, the rest later
                for j, b in enumerate(buckets):
                    share = min(1.0, 0.25 + 0.75 * (j + 1) / len(buckets))
                    le = 'le="%s"' % b
                    lines.append(f"{name}_bucket{sel(le)} {count * share}")
                inf = 'le="+Inf"'
                lines.append(f"{name}_bucket{sel(inf)} {count}")
                lines.append(f"{name}_sum{sel()} {count * 0.1}")
                lines.append(f"{name}_count{sel()} {count}")
            elif kind == "counter":
                lines.append(f"{name}{sel()} {(i + 1) * 5.0 * elapsed}")
            else:  # gauges, up-down counters
                value = 1.0 if name in ("probe_success", "websocket_fallback_active") else 0.05 * (i + 1)
                lines.append(f"{name}{sel()} {value}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def synthetic_sidecar(dashboard: str = "pulse"):
    """An HTTP server on 127.0.0.1 serving synthetic_exposition() on /metrics; yields host:port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    start = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = synthetic_exposition(time.monotonic() - start + 1, dashboard).encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
