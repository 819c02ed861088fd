"""The OpenTelemetry Collector configs in otel-collector/: a structural check.

The Collector (otelcol-contrib) cannot run on this machine — there is no binary, no Docker engine, and no
package that provides one — so `otelcol validate` is out of reach. This test checks instead what that
command would refuse or what would silently lose data:
  - the YAML parses and has the collector's top-level sections;
  - every component a pipeline names is defined, and every defined component is used;
  - every component is of a type the contrib distribution has (the lists below, collector v0.148.0);
    the deprecated aliases `otlp` / `otlphttp` (exporters, renamed in v0.144.0 to `otlp_grpc` /
    `otlp_http`) are not used;
  - connectors are an exporter in one pipeline and a receiver in another, with the right signal types;
  - the trace exporter's persistent queue names the `file_storage` extension, which the service starts;
  - memory_limiter runs first and batch last;
  - `${env:…}` references are well-formed, and the compose overlay merged on top (the way the collector
    merges several --config files) still gives a consistent config.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

try:
    import yaml
except ImportError:  # a missing tool fails, with the way to install it
    pytest.fail("pyyaml is missing: run scripts/install-test-deps.sh", pytrace=False)

ROOT = Path(__file__).resolve().parents[2]
DIR = ROOT / "otel-collector"
CONFIGS = ["collector.yaml", "agent.yaml", "gateway.yaml"]

# Component types of the contrib distribution (otel/opentelemetry-collector-contrib:0.148.0) that these
# configs may use. Deprecated aliases are left out on purpose.
KNOWN = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "filelog", "kubeletstats", "k8s_cluster",
                  "k8sobjects", "k8s_events", "jaeger", "zipkin", "journald", "httpcheck", "nop"},
    "processors": {"memory_limiter", "batch", "k8sattributes", "resource", "resourcedetection",
                   "attributes", "filter", "transform", "tail_sampling", "probabilistic_sampler",
                   "groupbytrace", "cumulativetodelta", "deltatocumulative", "metricstransform",
                   "redaction", "groupbyattrs"},
    "exporters": {"otlp_grpc", "otlp_http", "debug", "prometheus", "prometheusremotewrite",
                  "loadbalancing", "file", "nop"},
    "connectors": {"spanmetrics", "servicegraph", "forward", "count", "routing", "exceptions",
                   "sum", "failover"},
    "extensions": {"health_check", "healthcheckv2", "pprof", "zpages", "file_storage",
                   "bearertokenauth", "basicauth", "oauth2client", "k8s_observer"},
}
DEPRECATED = {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "logging": "debug"}
# connector type → (signal it consumes as an exporter, signal it emits as a receiver); None = same
CONNECTOR_SIGNALS = {"spanmetrics": ({"traces"}, {"metrics"}), "servicegraph": ({"traces"}, {"metrics"}),
                     "count": ({"traces", "metrics", "logs"}, {"metrics"}),
                     "exceptions": ({"traces"}, {"metrics", "logs"}),
                     "forward": (None, None), "routing": (None, None), "failover": (None, None)}
SIGNALS = {"traces", "metrics", "logs", "profiles"}


def load(name: str) -> dict:
    return yaml.safe_load((DIR / name).read_text())


def merge(base: dict, overlay: dict) -> dict:
    """The collector's merge of several --config files: maps merge key by key, lists are replaced."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def ctype(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def pipelines(cfg: dict) -> dict:
    return cfg["service"]["pipelines"]


def check_structure(cfg: dict, name: str, allowed_unused: frozenset = frozenset()) -> None:
    for section in ("receivers", "exporters", "service"):
        assert section in cfg, f"{name}: no {section}"
    defined = {s: set(cfg.get(s) or {}) for s in KNOWN}
    # types
    for section, ids in defined.items():
        for cid in ids:
            t = ctype(cid)
            assert t not in DEPRECATED or section != "exporters", \
                f"{name}: {section}.{cid} uses the deprecated name {t!r}; use {DEPRECATED[t]!r}"
            assert t in KNOWN[section], f"{name}: {section}.{cid}: unknown {section[:-1]} type {t!r}"
    # references
    used = {s: set() for s in KNOWN}
    for pname, p in pipelines(cfg).items():
        assert ctype(pname) in SIGNALS, f"{name}: pipeline {pname!r} has no signal type"
        assert p.get("receivers") and p.get("exporters"), f"{name}: pipeline {pname} is incomplete"
        for r in p["receivers"]:
            assert r in defined["receivers"] | defined["connectors"], f"{name}: {pname} receiver {r} undefined"
            used["connectors" if r in defined["connectors"] else "receivers"].add(r)
        for proc in p.get("processors", []):
            assert proc in defined["processors"], f"{name}: {pname} processor {proc} undefined"
            used["processors"].add(proc)
        for e in p["exporters"]:
            assert e in defined["exporters"] | defined["connectors"], f"{name}: {pname} exporter {e} undefined"
            used["connectors" if e in defined["connectors"] else "exporters"].add(e)
    for ext in cfg["service"].get("extensions", []):
        assert ext in defined["extensions"], f"{name}: service extension {ext} undefined"
        used["extensions"].add(ext)
    for section in KNOWN:
        unused = defined[section] - used[section] - allowed_unused
        assert not unused, f"{name}: {section} defined but never used: {sorted(unused)}"
    # connectors: exporter of one pipeline, receiver of another, with matching signals
    for conn in defined["connectors"]:
        as_exporter = {ctype(p) for p, v in pipelines(cfg).items() if conn in v["exporters"]}
        as_receiver = {ctype(p) for p, v in pipelines(cfg).items() if conn in v["receivers"]}
        assert as_exporter and as_receiver, f"{name}: connector {conn} must end one pipeline and start another"
        consumes, emits = CONNECTOR_SIGNALS[ctype(conn)]
        if consumes is None:
            assert as_exporter == as_receiver, f"{name}: {conn} must keep the signal type"
        else:
            assert as_exporter <= consumes and as_receiver <= emits, (name, conn, as_exporter, as_receiver)
    # processor order: memory_limiter first, batch last
    for pname, p in pipelines(cfg).items():
        procs = p.get("processors", [])
        assert procs and ctype(procs[0]) == "memory_limiter", f"{name}: {pname} must start with memory_limiter"
        assert ctype(procs[-1]) == "batch", f"{name}: {pname} must end with batch"


@pytest.mark.parametrize("name", CONFIGS)
def test_structure(name):
    check_structure(load(name), name)


def test_compose_overlay_merged_on_collector_yaml():
    """compose.yaml runs collector.yaml + compose-overlay.yaml; the overlay drops k8sattributes from the
    pipelines (no Kubernetes API in compose), so that processor may stay unused there, and sends the logs
    to the compose stack's Loki as well (with the persistent queue)."""
    base, overlay = load("collector.yaml"), load("compose-overlay.yaml")
    assert set(overlay) == {"service", "exporters"} and set(overlay["service"]) == {"pipelines"}
    assert set(overlay["exporters"]) == {"otlp_http/loki"}
    assert overlay["exporters"]["otlp_http/loki"]["sending_queue"]["storage"] == "file_storage"
    merged = merge(base, overlay)
    check_structure(merged, "collector.yaml + compose-overlay.yaml", allowed_unused=frozenset({"k8sattributes"}))
    for pname, p in pipelines(merged).items():
        assert "k8sattributes" not in p.get("processors", []), pname
        assert p["receivers"] == pipelines(base)[pname]["receivers"]
        extra = ["otlp_http/loki"] if pname == "logs" else []
        assert sorted(p["exporters"]) == sorted(pipelines(base)[pname]["exporters"] + extra), pname
    compose = (ROOT / "compose.yaml").read_text()
    assert "compose-overlay.yaml" in compose


def _trace_exporters(cfg):
    conns = set(cfg.get("connectors") or {})
    return {e for p, v in pipelines(cfg).items() if ctype(p) == "traces" for e in v["exporters"]} - conns


@pytest.mark.parametrize("name", ["collector.yaml", "gateway.yaml"])
def test_trace_exporter_queue_is_persistent(name):
    cfg = load(name)
    exporters = _trace_exporters(cfg)
    tempo = [e for e in exporters if ctype(e) == "otlp_grpc"]
    assert tempo, f"{name}: traces must leave through an otlp_grpc exporter (Tempo)"
    for e in tempo:
        queue = cfg["exporters"][e]["sending_queue"]
        assert queue["enabled"] is True
        storage = queue["storage"]
        assert ctype(storage) == "file_storage", f"{e}: sending_queue.storage must be a file_storage extension"
        assert storage in cfg["extensions"] and storage in cfg["service"]["extensions"]
        assert cfg["extensions"][storage]["directory"]


def test_agent_balances_traces_by_trace_id():
    cfg = load("agent.yaml")
    assert _trace_exporters(cfg) == {"loadbalancing"}
    lb = cfg["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    assert set(lb["resolver"]) & {"k8s", "dns"}, "resolve the gateways through the Kubernetes API or DNS"
    assert "otlp" in lb["protocol"], "the loadbalancing exporter speaks OTLP to each gateway"
    # metrics and logs go to the gateway Service with a persistent queue
    for pname, p in pipelines(cfg).items():
        if ctype(pname) != "traces":
            for e in p["exporters"]:
                assert cfg["exporters"][e]["sending_queue"]["storage"] == "file_storage"
    # the gateway is where the connectors run: whole traces land there
    gateway = load("gateway.yaml")
    assert {"spanmetrics", "servicegraph"} <= set(gateway["connectors"])
    assert not cfg.get("connectors"), "no connectors in the agent: it sees only part of each trace"


@pytest.mark.parametrize("name", ["collector.yaml", "gateway.yaml"])
def test_span_metrics_and_service_graph_reach_prometheus(name):
    cfg = load(name)
    for conn in ("spanmetrics", "servicegraph"):
        assert any(conn in p["exporters"] for pn, p in pipelines(cfg).items() if ctype(pn) == "traces")
        downstream = [p for pn, p in pipelines(cfg).items() if ctype(pn) == "metrics" and conn in p["receivers"]]
        assert downstream and all("prometheusremotewrite" in p["exporters"] for p in downstream)
    prw = cfg["exporters"]["prometheusremotewrite"]["endpoint"]
    assert prw.rstrip("}").endswith("/api/v1/write"), prw
    assert cfg["connectors"]["spanmetrics"]["exemplars"]["enabled"] is True


@pytest.mark.parametrize("name", CONFIGS)
def test_receivers_ports_and_own_telemetry(name):
    cfg = load(name)
    protocols = cfg["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert cfg["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    assert "health_check" in cfg["service"]["extensions"]
    telemetry = cfg["service"]["telemetry"]
    reader = telemetry["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert reader["port"] == 8888
    assert telemetry["logs"]["level"] in ("debug", "info", "warn", "error")


@pytest.mark.parametrize("name", CONFIGS + ["compose-overlay.yaml"])
def test_env_references_are_well_formed(name):
    text = (DIR / name).read_text()
    refs = re.findall(r"\$\{[^}]*\}", text)
    for ref in refs:
        assert re.fullmatch(r"\$\{env:[A-Z_][A-Z0-9_]*(:-[^}\s]+)?\}", ref), f"{name}: malformed {ref}"
    assert not re.search(r"\$(?!\{)[A-Za-z{]", text.replace("$$", "")), f"{name}: bare $VAR (use ${{env:VAR}})"


def test_k8sattributes_finds_the_sidecar_pods():
    """The chart gives the sidecars k8s.pod.uid and k8s.pod.ip; the processor associates on them."""
    for name in ("collector.yaml", "agent.yaml"):
        k8s = load(name)["processors"]["k8sattributes"]
        sources = [s for rule in k8s["pod_association"] for s in rule["sources"]]
        names = {s.get("name") for s in sources if s["from"] == "resource_attribute"}
        assert {"k8s.pod.uid", "k8s.pod.ip"} <= names
        assert any(s["from"] == "connection" for s in sources)
        labels = {l["key"]: l["tag_name"] for l in k8s["extract"]["labels"]}
        assert labels.get("iskra.io/dashboard") == "iskra.dashboard"


def test_chart_ships_this_collector_config():
    link = ROOT / "helm" / "iskra-ws-sidecar" / "files" / "collector.yaml"
    assert link.exists(), "helm/iskra-ws-sidecar/files/collector.yaml is missing"
    assert link.resolve() == (DIR / "collector.yaml").resolve() or \
        link.read_text() == (DIR / "collector.yaml").read_text()
