"""The Helm chart helm/iskra-ws-sidecar: lint, render, Kubernetes schema validation, and the properties the
seed and the architecture ask for.

Tools (installed by scripts/install-test-deps.sh; a missing one fails the test that needs it, by name):
  - helm-python-sdk (`import helm_python`): the Helm v4 SDK; renders and lints offline. There is no `helm`
    binary on these machines.
  - kubernetes-validate: validates the rendered manifests against the Kubernetes 1.30 OpenAPI schemas in
    strict mode (unknown fields are errors).

Every scenario in helm/iskra-ws-sidecar/ci/*-values.yaml is linted (strict, kube v1.30.0), rendered and
validated. NOTES.txt is not a manifest and is left out. The PodMonitor, PrometheusRule and
AlertmanagerConfig are CRDs (monitoring.coreos.com) that kubernetes-validate has no schema for: it only
warns "Couldn't find schema" and exits 0, so they are left out of that run and checked against
hand-written subsets of the CRDs' schemas (unknown fields rejected): the PodMonitor here, the
PrometheusRule and AlertmanagerConfig in test_helm_operator.py, with promtool and amtool as well.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import yaml
except ImportError:  # a missing tool fails, with the way to install it
    pytest.fail("pyyaml is missing: run scripts/install-test-deps.sh", pytrace=False)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "iskra-ws-sidecar"
CI = CHART / "ci"
KUBE_VERSION = "1.30.0"
RELEASE = "iskra-ws-sidecar"
NAMESPACE = "iskra-ecosystem"
SCENARIOS = ["default", "collector-enabled", "podmonitor", "single-dashboard-backups", "custom-resources",
             "probe-target"]
DASHBOARD_PORTS = {"pulse": 3001, "seams": 3002, "voices": 3003}
SIDECAR_PROXY_PORT = 8000
SIDECAR_ADMIN_PORT = 8080
# Prometheus Operator kinds: no schema in kubernetes-validate, checked by hand below.
CRD_KINDS = {"PodMonitor", "PrometheusRule", "AlertmanagerConfig"}

try:  # a missing SDK must fail loudly, not skip
    import helm_python  # type: ignore
except ImportError as exc:  # pragma: no cover - environment problem
    helm_python = None
    _HELM_IMPORT_ERROR = exc
else:
    _HELM_IMPORT_ERROR = None


def _need_helm():
    if helm_python is None:
        pytest.fail(
            "helm-python-sdk is not installed (import helm_python failed: "
            f"{_HELM_IMPORT_ERROR}); run scripts/install-test-deps.sh",
            pytrace=False,
        )
    return helm_python


def _kubernetes_validate_cmd() -> list[str]:
    exe = shutil.which("kubernetes-validate")
    if exe:
        return [exe]
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed (no `kubernetes-validate` on PATH, no module); "
            "run scripts/install-test-deps.sh",
            pytrace=False,
        )
    return [sys.executable, "-m", "kubernetes_validate"]


# ---- YAML that refuses duplicate keys (Kubernetes would silently keep the last one) ----------------------

class _StrictLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


# ---- rendering ------------------------------------------------------------------------------------------

def scenario_values(name: str) -> dict:
    return yaml.safe_load((CI / f"{name}-values.yaml").read_text()) or {}


_RENDER_CACHE: dict[str, dict[str, str]] = {}


def render(name: str) -> dict[str, str]:
    """Template path → rendered text for one ci scenario (cached: rendering is pure)."""
    if name not in _RENDER_CACHE:
        helm = _need_helm()
        with helm.Chart.load(str(CHART)) as chart:
            _RENDER_CACHE[name] = chart.render(scenario_values(name), name=RELEASE, namespace=NAMESPACE)
    return _RENDER_CACHE[name]


def manifests(name: str) -> list[dict]:
    docs = []
    for path, text in render(name).items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.load_all(text, Loader=_StrictLoader):
            if doc:
                docs.append(doc)
    return docs


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def dashboard_deployments(docs):
    return [d for d in of_kind(docs, "Deployment")
            if "iskra.io/dashboard" in d["spec"]["template"]["metadata"]["labels"]]


def container(deploy: dict, name: str) -> dict:
    for c in deploy["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"{deploy['metadata']['name']}: no container {name!r}")


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


# ---- the scenarios exist, lint clean, render, validate ---------------------------------------------------

def test_every_scenario_file_exists():
    found = sorted(p.name for p in CI.glob("*-values.yaml"))
    assert found == sorted(f"{s}-values.yaml" for s in SCENARIOS), found


def test_lint_strict_chart_defaults():
    helm = _need_helm()
    report = helm.lint(str(CHART), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_scenario(scenario):
    helm = _need_helm()
    report = helm.lint(str(CHART), scenario_values(scenario), strict=True,
                       kube_version=f"v{KUBE_VERSION}", namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_renders_without_duplicate_keys(scenario):
    docs = manifests(scenario)
    assert dashboard_deployments(docs), f"{scenario}: no dashboard Deployment rendered"
    for d in docs:
        assert d["metadata"]["name"], d
        assert len(d["metadata"]["name"]) <= 63, d["metadata"]["name"]


def test_kubernetes_validate_strict_every_scenario(tmp_path):
    """All scenarios in one kubernetes-validate run (strict, Kubernetes 1.30); CRDs excluded."""
    cmd = _kubernetes_validate_cmd()
    files = []
    for scenario in SCENARIOS:
        docs = [d for d in manifests(scenario) if d.get("kind") not in CRD_KINDS]
        path = tmp_path / f"{scenario}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        files.append(str(path))
    proc = subprocess.run([*cmd, "-k", KUBE_VERSION, "--strict", *files],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ERROR" not in out, out
    # a kind without a schema is only a warning to the tool: here it would mean an unchecked manifest
    assert "Couldn't find schema" not in out, out
    passed = out.count(" passed for resource ")
    total = sum(len([d for d in manifests(s) if d.get("kind") not in CRD_KINDS]) for s in SCENARIOS)
    assert passed == total, f"{passed} of {total} manifests reported as passed:\n{out}"


def test_kubernetes_validate_catches_an_unknown_field(tmp_path):
    """The validator really is strict: the default Deployment with one invented field must fail."""
    cmd = _kubernetes_validate_cmd()
    deploy = copy.deepcopy(dashboard_deployments(manifests("default"))[0])
    container(deploy, "sidecar")["livenessProbe"]["httpGett"] = {"path": "/health", "port": 8080}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deploy))
    proc = subprocess.run([*cmd, "-k", KUBE_VERSION, "--strict", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "httpGett" in proc.stdout + proc.stderr


# ---- the PodMonitor (CRD), checked by hand ---------------------------------------------------------------

# The subset of the Prometheus Operator's PodMonitor CRD (monitoring.coreos.com/v1) the chart uses, with
# the CRD's field names and types; unknown fields are rejected as the API server's structural schema would.
PODMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {
            "type": "object", "required": ["name", "namespace"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                           "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                           "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
        "spec": {
            "type": "object", "required": ["selector", "podMetricsEndpoints"], "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"},
                                   "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "selector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array", "items": {
                            "type": "object", "required": ["key", "operator"], "additionalProperties": False,
                            "properties": {"key": {"type": "string"},
                                           "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                           "values": {"type": "array", "items": {"type": "string"}}}}}}},
                "podMetricsEndpoints": {
                    "type": "array", "minItems": 1, "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": {
                                "type": "object", "additionalProperties": False,
                                "properties": {
                                    "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop",
                                                        "hashmod", "HashMod", "labelmap", "LabelMap",
                                                        "labeldrop", "LabelDrop", "labelkeep", "LabelKeep"]},
                                    "sourceLabels": {"type": "array", "items": {
                                        "type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
                                    "separator": {"type": "string"},
                                    "targetLabel": {"type": "string"},
                                    "regex": {"type": "string"},
                                    "modulus": {"type": "integer"},
                                    "replacement": {"type": "string"}}}},
                        }}},
            },
        },
    },
}


def test_podmonitor_matches_crd_subset_and_targets_the_admin_port():
    try:
        import jsonschema  # kubernetes-validate depends on it
    except ImportError:
        pytest.fail("jsonschema is missing (it comes with kubernetes-validate): run scripts/install-test-deps.sh",
                    pytrace=False)
    docs = manifests("podmonitor")
    monitors = of_kind(docs, "PodMonitor")
    assert len(monitors) == 2, "one PodMonitor for the sidecars, one for the collector"
    for pm in monitors:
        jsonschema.validate(pm, PODMONITOR_SCHEMA)
        assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    sidecars = next(pm for pm in monitors if pm["metadata"]["name"] == RELEASE)
    endpoint = sidecars["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "admin" and endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    # the same job name and dashboard label as prometheus/prometheus.yml, so the alert rules work unchanged
    assert relabel["job"]["replacement"] == "iskra-ws-sidecar"
    assert relabel["iskra_dashboard"]["sourceLabels"] == ["__meta_kubernetes_pod_label_iskra_io_dashboard"]
    prom = (ROOT / "prometheus" / "prometheus.yml")
    if prom.exists():
        jobs = [j["job_name"] for j in yaml.safe_load(prom.read_text())["scrape_configs"]]
        assert "iskra-ws-sidecar" in jobs

    # the selector picks exactly the dashboard pods, and their sidecar has a port named `admin` on 8080
    sel = sidecars["spec"]["selector"]
    for deploy in dashboard_deployments(docs):
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in sel["matchLabels"].items())
        assert "iskra.io/dashboard" in labels
        ports = {p["name"]: p["containerPort"] for p in container(deploy, "sidecar")["ports"]}
        assert ports["admin"] == SIDECAR_ADMIN_PORT
    collector_pm = next(pm for pm in monitors if pm is not sidecars)
    collector = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-collector"))
    labels = collector["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in collector_pm["spec"]["selector"]["matchLabels"].items())
    assert not all(labels.get(k) == v for k, v in sel["matchLabels"].items()), \
        "the sidecar PodMonitor must not select the collector"


def test_no_podmonitor_unless_enabled():
    for scenario in ("default", "collector-enabled", "single-dashboard-backups", "custom-resources"):
        assert not of_kind(manifests(scenario), "PodMonitor"), scenario


# ---- the seed's Kubernetes properties ---------------------------------------------------------------------

def test_defaults_follow_the_seed():
    docs = manifests("default")
    deploys = dashboard_deployments(docs)
    assert sorted(d["spec"]["template"]["metadata"]["labels"]["iskra.io/dashboard"] for d in deploys) == \
        ["pulse", "seams", "voices"]
    for d in docs:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == "iskra-ecosystem", d["metadata"]
    for deploy in deploys:
        assert deploy["spec"]["replicas"] == 3
        sidecar = container(deploy, "sidecar")
        assert sidecar["resources"] == {"requests": {"memory": "128Mi", "cpu": "100m"},
                                        "limits": {"memory": "512Mi", "cpu": "500m"}}
        live, ready = sidecar["livenessProbe"], sidecar["readinessProbe"]
        assert live["httpGet"] == {"path": "/health", "port": 8080}
        assert (live["initialDelaySeconds"], live["periodSeconds"]) == (30, 10)
        assert ready["httpGet"] == {"path": "/ready", "port": 8080}
        assert (ready["initialDelaySeconds"], ready["periodSeconds"]) == (5, 5)
        key = deploy["spec"]["template"]["metadata"]["labels"]["iskra.io/dashboard"]
        dash = container(deploy, "dashboard")
        assert dash["ports"][0]["containerPort"] == DASHBOARD_PORTS[key]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_probes_are_on_the_admin_port(scenario):
    for deploy in dashboard_deployments(manifests(scenario)):
        sidecar = container(deploy, "sidecar")
        admin = {p["name"]: p["containerPort"] for p in sidecar["ports"]}["admin"]
        assert admin == SIDECAR_ADMIN_PORT
        assert sidecar["livenessProbe"]["httpGet"] == {"path": "/health", "port": admin}
        assert sidecar["readinessProbe"]["httpGet"] == {"path": "/ready", "port": admin}


def _effective(pod_spec: dict, c: dict, key: str):
    sc = c.get("securityContext", {})
    if key in sc:
        return sc[key]
    return pod_spec.get("securityContext", {}).get(key)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_is_hardened(scenario):
    deploys = of_kind(manifests(scenario), "Deployment")
    assert deploys
    for deploy in deploys:
        pod = deploy["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"] + pod.get("initContainers", []):
            where = f"{scenario}: {deploy['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext")
            assert sc, f"{where}: no securityContext"
            assert _effective(pod, c, "runAsNonRoot") is True, where
            # 65532 = the sidecar image's nonroot user; the collector image runs as its own 10001
            want_uid = 10001 if c["name"] == "otel-collector" else 65532
            assert _effective(pod, c, "runAsUser") == want_uid, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert _effective(pod, c, "seccompProfile") == {"type": "RuntimeDefault"}, where
            assert not sc.get("privileged", False), where


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_writable_paths_are_emptydirs(scenario):
    """With a read-only root, the spool (and the collector's queue) must be emptyDir mounts."""
    for deploy in of_kind(manifests(scenario), "Deployment"):
        pod = deploy["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                v = volumes[m["name"]]
                assert "emptyDir" in v or m.get("readOnly") is True, (deploy["metadata"]["name"], m)
        if "iskra.io/dashboard" in deploy["spec"]["template"]["metadata"]["labels"]:
            sidecar = container(deploy, "sidecar")
            spool = next(m for m in sidecar["volumeMounts"] if m["name"] == "spool")
            assert "emptyDir" in volumes["spool"] and volumes["spool"]["emptyDir"]["sizeLimit"]
            cm = _sidecar_config(manifests(scenario), deploy)
            assert cm["telemetry"]["spool_dir"] == spool["mountPath"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_services_send_the_dashboard_port_to_the_sidecar(scenario):
    docs = manifests(scenario)
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for deploy in dashboard_deployments(docs):
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        key = labels["iskra.io/dashboard"]
        svc = next(s for s in services.values()
                   if s["spec"]["selector"].get("iskra.io/dashboard") == key)
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "selector misses the pods"
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        dash_port = container(deploy, "dashboard")["ports"][0]["containerPort"]
        sidecar_ports = {p["name"]: p["containerPort"] for p in container(deploy, "sidecar")["ports"]}
        assert ports["ws"]["port"] == dash_port, "clients keep the dashboard's port"
        assert ports["ws"]["targetPort"] == sidecar_ports["proxy"] == SIDECAR_PROXY_PORT
        assert ports["ws"]["targetPort"] != dash_port, "the Service must not bypass the sidecar"
        assert set(ports) == {"ws"}, "the admin port is not on the clients' Service"
        admin = services[svc["metadata"]["name"] + "-admin"]
        assert admin["spec"]["type"] == "ClusterIP", "the admin Service is never exposed"
        assert admin["spec"]["selector"] == svc["spec"]["selector"]
        ports = {p["name"]: p for p in admin["spec"]["ports"]}
        assert set(ports) == {"admin"}
        assert ports["admin"]["port"] == ports["admin"]["targetPort"] == sidecar_ports["admin"] == 8080


def test_the_admin_service_stays_cluster_ip_when_the_dashboards_are_exposed():
    helm = _need_helm()
    values = {**scenario_values("default"), "service": {"type": "LoadBalancer"}}
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = [d for path, text in rendered.items() if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]
    services = of_kind(docs, "Service")
    assert services
    for svc in services:
        want = "ClusterIP" if svc["metadata"]["name"].endswith("-admin") else "LoadBalancer"
        assert svc["spec"]["type"] == want, svc["metadata"]["name"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_network_policy_admits_the_proxy_port_from_anywhere_and_admin_only_from_named_namespaces(scenario):
    docs = manifests(scenario)
    policies = of_kind(docs, "NetworkPolicy")
    values = scenario_values(scenario)
    if not values.get("networkPolicy", {}).get("enabled"):
        assert policies == [], "off unless networkPolicy.enabled"
        return
    deploys = dashboard_deployments(docs)
    assert len(policies) == len(deploys)
    for deploy in deploys:
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        sidecar_ports = {p["name"]: p["containerPort"] for p in container(deploy, "sidecar")["ports"]}
        pol = next(p for p in policies
                   if p["spec"]["podSelector"]["matchLabels"].get("iskra.io/dashboard") == labels["iskra.io/dashboard"])
        assert all(labels.get(k) == v for k, v in pol["spec"]["podSelector"]["matchLabels"].items())
        assert pol["spec"]["policyTypes"] == ["Ingress"]
        proxy_rule, admin_rule = pol["spec"]["ingress"]
        assert [p["port"] for p in proxy_rule["ports"]] == [sidecar_ports["proxy"]]
        assert "from" not in proxy_rule, "the dashboard's port is open to every client"
        assert [p["port"] for p in admin_rule["ports"]] == [sidecar_ports["admin"]]
        (peer,) = admin_rule["from"]
        (expr,) = peer["namespaceSelector"]["matchExpressions"]
        assert expr == {"key": "kubernetes.io/metadata.name", "operator": "In",
                        "values": values["networkPolicy"]["adminNamespaces"]}


def test_single_dashboard_scenario_uses_the_seed_service_name_and_backups():
    docs = manifests("single-dashboard-backups")
    deploys = dashboard_deployments(docs)
    assert len(deploys) == 1 and deploys[0]["spec"]["replicas"] == 2
    assert [s["metadata"]["name"] for s in of_kind(docs, "Service")] == ["pulse-service", "pulse-service-admin"]
    backups = ["ws://backup-pulse.iskra.local:3001", "ws://backup-pulse-2.iskra.local:3001"]
    cfg = _sidecar_config(docs, deploys[0])
    assert cfg["dashboard"] == "pulse"
    assert cfg["upstream"] == "ws://127.0.0.1:3001"
    assert cfg["backup_upstreams"] == backups
    assert cfg["websocket"]["connections"] == {"pulse": {
        "url": "ws://127.0.0.1:3001", "name": "Pulse Dashboard", "priority": 1, "backup_urls": backups}}
    dash = container(deploys[0], "dashboard")
    assert dash["image"] == "registry.iskra.local/iskra/pulse-dashboard:2.4.1"
    assert "args" not in dash


def test_custom_resources_scenario():
    docs = manifests("custom-resources")
    deploys = {d["spec"]["template"]["metadata"]["labels"]["iskra.io/dashboard"]: d
               for d in dashboard_deployments(docs)}
    assert deploys["voices"]["spec"]["replicas"] == 4 and deploys["pulse"]["spec"]["replicas"] == 2
    for d in deploys.values():
        sidecar = container(d, "sidecar")
        assert sidecar["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                        "limits": {"cpu": "1", "memory": "1Gi"}}
        assert "lifecycle" not in sidecar, "preStopSleepSeconds: 0 removes the hook"
        spool = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "spool")
        assert spool["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
        assert d["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["maxSkew"] == 1
        assert d["metadata"]["namespace"] == NAMESPACE  # namespace "" → the release namespace
    assert container(deploys["voices"], "dashboard")["resources"]["limits"]["memory"] == "512Mi"
    cfg = _sidecar_config(docs, deploys["seams"])
    assert cfg["limits"]["max_connections"] == 50000 and cfg["limits"]["idle_timeout_ms"] == 300000
    assert cfg["limits"]["max_frame_size"] == 16777216, "untouched keys keep their defaults"
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert len(pdbs) == 3 and all(p["spec"]["maxUnavailable"] == "50%" for p in pdbs)


# ---- environment: downward API, OTel ------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
def test_downward_api_and_resource_attributes(scenario):
    for deploy in dashboard_deployments(manifests(scenario)):
        key = deploy["spec"]["template"]["metadata"]["labels"]["iskra.io/dashboard"]
        env_list = container(deploy, "sidecar")["env"]
        env = env_of(container(deploy, "sidecar"))
        for name, field in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"),
                            ("NODE_NAME", "spec.nodeName"), ("POD_UID", "metadata.uid"),
                            ("POD_IP", "status.podIP")]:
            assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == field, name
        attrs = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        pairs = dict(p.split("=", 1) for p in attrs.split(","))
        assert pairs["k8s.pod.uid"] == "$(POD_UID)" and pairs["k8s.pod.ip"] == "$(POD_IP)"
        assert pairs["k8s.container.name"] == "sidecar"
        assert "service.name" not in pairs, "service.name is OTEL_SERVICE_NAME's job"
        # $(VAR) expands only for variables defined earlier in the list
        names = [e["name"] for e in env_list]
        assert names.index("POD_UID") < names.index("OTEL_RESOURCE_ATTRIBUTES")
        assert names.index("POD_IP") < names.index("OTEL_RESOURCE_ATTRIBUTES")
        assert env["OTEL_SERVICE_NAME"]["value"] == f"iskra-ws-sidecar-{key}"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] in ("grpc", "http/protobuf")
        assert deploy["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_otlp_endpoint_follows_the_collector():
    # no collector and no endpoint: the variable is not set at all
    for deploy in dashboard_deployments(manifests("default")):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env_of(container(deploy, "sidecar"))
    # collector enabled: the sidecars point at its Service, on the port of the chosen protocol
    docs = manifests("collector-enabled")
    svc = next(s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("-collector"))
    grpc_port = {p["name"]: p["port"] for p in svc["spec"]["ports"]}["otlp-grpc"]
    want = f"http://{svc['metadata']['name']}.{NAMESPACE}.svc:{grpc_port}"
    for deploy in dashboard_deployments(docs):
        env = env_of(container(deploy, "sidecar"))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == want
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    # an explicit endpoint wins
    for deploy in dashboard_deployments(manifests("single-dashboard-backups")):
        env = env_of(container(deploy, "sidecar"))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability.svc:4318"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"


# ---- the sidecar's config file ------------------------------------------------------------------------

# Every key the sidecar's config accepts (it rejects unknown ones); the chart must render no other.
SIDECAR_KEYS = {
    "dashboard", "listen", "admin", "upstream", "backup_upstreams",
    "limits.handshake_timeout_ms", "limits.upstream_timeout_ms", "limits.max_connections",
    "limits.max_frame_size", "limits.max_message_size", "limits.max_header_size",
    "limits.idle_timeout_ms", "limits.close_timeout_ms",
    "limits.admin_header_timeout_ms", "limits.admin_max_connections",
    "shutdown.grace_ms",
    "resume.hold_ms", "resume.buffer_bytes", "resume.replay_messages", "resume.replay_bytes",
    "forwarded.enabled", "forwarded.trusted_proxies",
    "telemetry.events_channel_capacity", "telemetry.spool_dir", "telemetry.spool_max_bytes", "telemetry.step_spans",
    "telemetry.record_subprotocols",
    "websocket.reconnection.max_attempts", "websocket.reconnection.initial_delay",
    "websocket.reconnection.backoff_multiplier", "websocket.reconnection.max_delay",
    "websocket.reconnection.jitter",
    "websocket.heartbeat.enabled", "websocket.heartbeat.interval", "websocket.heartbeat.timeout",
    "websocket.heartbeat.failure_threshold",
    "websocket.monitoring.metrics_enabled", "websocket.monitoring.alerting_enabled",
    "websocket.monitoring.log_level", "websocket.monitoring.performance_tracking",
    "websocket.fallback.enabled", "websocket.fallback.protocol_downgrade",
    "websocket.fallback.buffer_messages", "websocket.fallback.buffer_max_size",
    "websocket.fallback.buffer_max_bytes",
    "websocket.fallback.degraded_service", "websocket.fallback.timeout",
    "probe.path", "probe.subprotocols", "probe.origin", "probe.init_messages", "probe.replies",
    "probe.gates_readiness", "health.window_ms",
    "iskra.fractal_logging", "iskra.slo_monitoring", "iskra.voice_system",
}
# …and maps whose keys are the user's (a header name, a text to answer)
SIDECAR_MAPS = ("probe.replies.", "probe.header_files.")


def _leaf_paths(tree, prefix=""):
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _leaf_paths(v, path + ".")
        else:
            yield path


def _sidecar_config(docs, deploy) -> dict:
    cm_name = next(v["configMap"]["name"] for v in deploy["spec"]["template"]["spec"]["volumes"]
                   if v["name"] == "config")
    cm = next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == cm_name)
    return yaml.load(cm["data"]["config.yaml"], Loader=_StrictLoader)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sidecar_config_uses_only_known_keys_and_fits_the_pod(scenario):
    docs = manifests(scenario)
    for deploy in dashboard_deployments(docs):
        key = deploy["spec"]["template"]["metadata"]["labels"]["iskra.io/dashboard"]
        cfg = _sidecar_config(docs, deploy)
        ws = cfg["websocket"]
        conns = ws.pop("connections")
        slo = ws.pop("slo_thresholds")
        unknown = {k for k in set(_leaf_paths(cfg)) - SIDECAR_KEYS if not k.startswith(SIDECAR_MAPS)}
        assert not unknown, f"keys the sidecar does not know: {sorted(unknown)}"
        assert set(slo) == {"connection_latency_ms", "availability_percent", "error_rate_percent"}
        assert all(set(v) == {"target", "warning", "critical"} for v in slo.values())
        assert list(conns) == [key], "a pod probes only its own dashboard"
        assert set(conns[key]) == {"url", "name", "priority", "backup_urls"}
        sidecar = container(deploy, "sidecar")
        ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
        assert cfg["dashboard"] == key
        assert cfg["listen"] == f"0.0.0.0:{ports['proxy']}"
        assert cfg["admin"] == f"0.0.0.0:{ports['admin']}"
        dash_port = container(deploy, "dashboard")["ports"][0]["containerPort"]
        assert cfg["upstream"] == conns[key]["url"] == f"ws://127.0.0.1:{dash_port}"
        # the file the sidecar is told to read is the ConfigMap's mount
        args = sidecar["args"]
        assert args[0] == "run" and args[args.index("--config") + 1] == "/etc/iskra-ws-sidecar/config.yaml"
        mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "config")
        assert mount["mountPath"] == "/etc/iskra-ws-sidecar" and mount["readOnly"] is True
        annotations = deploy["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
        # the chart holds clients through a dashboard restart (the binary's default is off)
        assert cfg["resume"]["hold_ms"] == 5000


# ---- collector, images, secrets --------------------------------------------------------------------------

def test_collector_uses_the_repository_config():
    docs = manifests("collector-enabled")
    name = f"{RELEASE}-collector"
    cm = next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == name)
    repo_config = (ROOT / "otel-collector" / "collector.yaml").read_text()
    assert cm["data"]["collector.yaml"].strip() == repo_config.strip(), \
        "the chart's files/collector.yaml must be otel-collector/collector.yaml (a symlink)"
    deploy = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == name)
    c = container(deploy, "otel-collector")
    assert c["image"] == "otel/opentelemetry-collector-contrib:0.148.0"
    assert c["args"] == ["--config=/etc/otelcol-contrib/collector.yaml"]
    env = env_of(c)
    assert env["TEMPO_OTLP_ENDPOINT"]["value"] == "tempo-distributor.tracing.svc:4317"
    assert env["PROMETHEUS_REMOTE_WRITE_URL"]["value"].endswith("/api/v1/write")
    assert env["GOMEMLIMIT"]["value"] == "1600MiB"
    # the persistent queue's directory lives on a writable emptyDir
    storage_dir = env["OTELCOL_STORAGE_DIR"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    parent = next(p for p in mounts if storage_dir.startswith(p.rstrip("/") + "/"))
    vol = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts[parent])
    assert "emptyDir" in vol
    assert c["livenessProbe"]["httpGet"]["port"] == 13133
    # k8sattributes needs to read pods, namespaces, replicasets
    role = of_kind(docs, "ClusterRole")[0]
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("", "pods"), ("", "namespaces"), ("apps", "replicasets")} <= granted
    binding = of_kind(docs, "ClusterRoleBinding")[0]
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
    svc = next(s for s in of_kind(docs, "Service") if s["metadata"]["name"] == name)
    assert {p["port"] for p in svc["spec"]["ports"]} == {4317, 4318, 8888}


def test_no_collector_objects_unless_enabled():
    for scenario in ("default", "single-dashboard-backups", "custom-resources"):
        docs = manifests(scenario)
        assert not of_kind(docs, "ClusterRole")
        assert not [d for d in docs if d["metadata"]["name"].endswith("-collector")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_images_are_pinned(scenario):
    for deploy in of_kind(manifests(scenario), "Deployment"):
        for c in deploy["spec"]["template"]["spec"]["containers"]:
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$", image.split("/")[-1]), image
            assert not image.endswith(":latest"), image


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_secrets_only_by_reference(scenario):
    docs = manifests(scenario)
    assert not of_kind(docs, "Secret"), "the chart never creates Secrets"
    # The alert channels are the AlertmanagerConfig's (Secret references), not environment variables
    # of the sidecar, which never read them.
    for deploy in of_kind(docs, "Deployment"):
        for c in deploy["spec"]["template"]["spec"]["containers"]:
            env = env_of(c)
            for name in ("SLACK_WEBHOOK_URL", "PAGERDUTY_API_KEY", "EMAIL_SMTP_HOST", "EMAIL_SMTP_PORT"):
                assert name not in env, f"{c['name']}: {name} is set but nothing in the pod reads it"
    for amc in of_kind(docs, "AlertmanagerConfig"):
        refs = _secret_refs(amc["spec"])
        assert refs and {name for name, _ in refs} == {"iskra-alerting"}, refs


PROBE_SEND_ENV = "ISKRA_SIDECAR_PROBE__SEND_TOKEN_FILE"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_probe_send_token_is_mounted_from_the_existing_secret_only_when_set(scenario):
    """POST /probe/send is off (404) unless sidecar.probeSend.existingSecret names a Secret: then its key
    is mounted read-only as a file the sidecar is pointed at, never put in the environment or the
    ConfigMap."""
    values = scenario_values(scenario).get("sidecar", {}).get("probeSend", {})
    secret = values.get("existingSecret", "")
    docs = manifests(scenario)
    for deploy in dashboard_deployments(docs):
        pod = deploy["spec"]["template"]["spec"]
        sidecar = container(deploy, "sidecar")
        env = env_of(sidecar)
        assert "ISKRA_SIDECAR_PROBE__SEND_TOKEN" not in env, "the token itself is never an env value"
        probe_cfg = _sidecar_config(docs, deploy).get("probe", {})
        assert not {"send_token", "send_token_file"} & set(probe_cfg), "nor a ConfigMap value"
        volumes = {v["name"]: v for v in pod["volumes"]}
        if not secret:
            assert PROBE_SEND_ENV not in env and "probe-send-token" not in volumes
            continue
        vol = volumes["probe-send-token"]["secret"]
        assert vol["secretName"] == secret == "iskra-probe-send"
        assert vol["items"] == [{"key": values["tokenKey"], "path": "token"}]
        assert vol["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 65532
        mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "probe-send-token")
        assert mount == {"name": "probe-send-token", "mountPath": values["mountPath"], "readOnly": True}
        assert env[PROBE_SEND_ENV]["value"] == values["mountPath"] + "/token"
        for other in pod["containers"]:
            if other["name"] != "sidecar":
                assert all(m["name"] != "probe-send-token" for m in other.get("volumeMounts", []))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_probe_target_values_reach_the_config_and_header_values_only_by_file(scenario):
    """sidecar.config.probe lands in the ConfigMap as is; sidecar.probeHeaders mounts the named keys of an
    existing Secret read-only and points probe.header_files at them: no header value in the ConfigMap or
    the environment."""
    values = scenario_values(scenario).get("sidecar", {})
    headers = values.get("probeHeaders", {})
    docs = manifests(scenario)
    for deploy in dashboard_deployments(docs):
        pod = deploy["spec"]["template"]["spec"]
        probe_cfg = _sidecar_config(docs, deploy)["probe"]
        assert "headers" not in probe_cfg
        assert all("PROBE__HEADERS" not in n for n in env_of(container(deploy, "sidecar")))
        volumes = {v["name"]: v for v in pod["volumes"]}
        if not headers.get("existingSecret"):
            assert "probe-headers" not in volumes and "header_files" not in probe_cfg
            continue
        for k, v in values["config"]["probe"].items():
            assert probe_cfg[k] == v, k
        vol = volumes["probe-headers"]["secret"]
        assert vol["secretName"] == headers["existingSecret"] and vol["defaultMode"] == 0o440
        assert vol["items"] == [{"key": k, "path": k} for k in headers["headers"].values()]
        mount = next(m for m in container(deploy, "sidecar")["volumeMounts"] if m["name"] == "probe-headers")
        assert mount == {"name": "probe-headers", "mountPath": headers["mountPath"], "readOnly": True}
        assert probe_cfg["header_files"] == {h: f"{headers['mountPath']}/{k}" for h, k in headers["headers"].items()}
    if scenario == "probe-target":
        assert headers["existingSecret"] and values["config"]["health"]["window_ms"] == 600000


def test_the_sidecar_reads_the_token_file_the_chart_points_it_at(tmp_path):
    """The variable the chart renders is the one the sidecar reads: with a token file there the config
    is valid and the token masked; with the file missing the sidecar exits 64 naming the key."""
    binary = _sidecar_binary()
    if binary is None:
        pytest.skip("the sidecar is not built (cargo build): nothing to check the config with")
    docs = manifests("single-dashboard-backups")
    deploy = dashboard_deployments(docs)[0]
    name = next(n for n in env_of(container(deploy, "sidecar")) if "SEND_TOKEN" in n)
    cm = tmp_path / "config.yaml"
    cm.write_text(yaml.safe_dump(_sidecar_config(docs, deploy)))
    token = tmp_path / "token"
    token.write_text("chart-token-6f1e2d3c4b5a\n")
    env = {"PATH": "/usr/bin:/bin", name: str(token)}
    proc = subprocess.run([str(binary), "config", "--json", "--config", str(cm)], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    effective = json.loads(proc.stdout)
    assert effective["probe.send_token_file"] == {"value": str(token), "source": f"env {name}"}
    assert "chart-token-6f1e2d3c4b5a" not in proc.stdout + proc.stderr
    env[name] = str(tmp_path / "missing")
    proc = subprocess.run([str(binary), "config", "--check", str(cm)], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64 and "probe.send_token_file" in proc.stderr, proc.stderr


# ---- values.yaml and values.schema.json ---------------------------------------------------------------

BAD_VALUES = {
    "latest tag": "image:\n  tag: latest\n",
    "unknown top-level key": "replicas: 3\n",
    "unknown sidecar config key": "sidecar:\n  config:\n    limits:\n      max_conections: 10\n",
    "a fourth dashboard": "dashboards:\n  chorus:\n    enabled: true\n",
    "root container": "dashboardSecurityContext:\n  runAsNonRoot: false\n  allowPrivilegeEscalation: false\n",
    "port out of range": "sidecar:\n  ports:\n    proxy: 70000\n    admin: 8080\n",
    "bad log level": "sidecar:\n  config:\n    websocket:\n      monitoring:\n        log_level: verbose\n",
    "literal secret": "alerting:\n  slackWebhookUrl: https://hooks.slack.com/services/x\n",
    "literal probe token": "sidecar:\n  probeSend:\n    token: s3cr3t-s3cr3t-s3cr3t\n",
    "tiny outbox byte budget": "sidecar:\n  config:\n    websocket:\n      fallback:\n        buffer_max_bytes: 10\n",
    "bad protocol": "otel:\n  protocol: udp\n",
    "relative probe path": "sidecar:\n  config:\n    probe:\n      path: socket.io\n",
    "probe header the handshake owns": "sidecar:\n  probeHeaders:\n    existingSecret: s\n    headers: {Host: host}\n    mountPath: /x\n",
    "bad backup URL": "dashboards:\n  pulse:\n    backupUrls: [backup-pulse:3001]\n",
    "service.name in resource attributes": "otel:\n  resourceAttributes:\n    service.name: x\n",
    "alerting without its Secret": "alerting:\n  enabled: true\n",
    "a literal Slack URL under alerting.slack": "alerting:\n  slack:\n    apiURL: https://hooks.slack.com/x\n",
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case, tmp_path):
    helm = _need_helm()
    path = tmp_path / "bad-values.yaml"
    path.write_text(BAD_VALUES[case])
    values = helm.values_from_yaml(path.read_text())
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)
        with pytest.raises(helm.HelmValuesError):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"], f"lint accepted {case!r}"


def test_schema_is_draft07_and_accepts_every_scenario():
    helm = _need_helm()
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    with helm.Chart.load(str(CHART)) as chart:
        for scenario in SCENARIOS:
            chart.validate_schema(scenario_values(scenario))


def _resolve(schema_root, node):
    while "$ref" in node:
        node = schema_root["definitions"][node["$ref"].split("/")[-1]]
    return node


def test_schema_covers_every_value():
    """Every key of values.yaml has a schema entry; fixed-shape objects allow no other keys."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    free_form = set()  # objects that are Kubernetes pass-through (resources, probes, labels…)

    def walk(value, node, path):
        node = _resolve(schema, node)
        if not isinstance(value, dict) or "properties" not in node:
            if isinstance(value, dict):
                free_form.add(path)
            return
        if node.get("additionalProperties") is not False:
            pytest.fail(f"{path or '<root>'}: a fixed-shape object without additionalProperties: false")
        for k, v in value.items():
            assert k in node["properties"], f"{path}.{k} is in values.yaml but not in values.schema.json"
            walk(v, node["properties"][k], f"{path}.{k}" if path else k)

    walk(values, schema, "")
    # pass-through objects are the expected ones only
    allowed = re.compile(r"(resources|Probe|Labels|labels|Annotations|annotations|nodeSelector|affinity|"
                         r"probeHeaders\.headers|config\.probe\.replies|"
                         r"resourceAttributes|SecurityContext\.(capabilities|seccompProfile)|"
                         r"podSecurityContext\.seccompProfile)")
    assert all(allowed.search(p) for p in free_form), sorted(p for p in free_form if not allowed.search(p))


def test_every_value_is_documented():
    """Each key in values.yaml has a comment on the line above it, or sits inside a documented value."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    key_re = re.compile(r"^(\s*)([A-Za-z0-9_.\"-]+):(\s|$)")
    stack: list[tuple[int, bool]] = []  # (indent, documented-as-a-whole)
    undocumented = []
    prev = ""
    block_start = ""  # first line of the comment block right above the current line
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            prev = block_start = ""
            continue
        if stripped.startswith("#") and not prev.startswith("#"):
            block_start = stripped
        m = key_re.match(line)
        if m and not stripped.startswith("#") and not stripped.startswith("-"):
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            covered = any(doc for _, doc in stack)
            commented = prev.startswith("#")
            if not (commented or covered):
                undocumented.append(f"line {lineno}: {stripped}")
            # a key documented with "# --" is one value as a whole (its children need no comment)
            stack.append((indent, commented and block_start.startswith("# --")))
        prev = stripped
    assert not undocumented, "values without a comment:\n" + "\n".join(undocumented)


# ---- the real sidecar reads what the chart renders ------------------------------------------------------

def _sidecar_binary() -> Path | None:
    found = [p for p in (ROOT / "target" / "release" / "iskra-ws-sidecar",
                         ROOT / "target" / "debug" / "iskra-ws-sidecar") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_sidecar_accepts_the_rendered_config(scenario, tmp_path):
    """`iskra-ws-sidecar config --check` on every ConfigMap (the sidecar refuses unknown keys and bad
    values), then `config --json` for what the pod will run with."""
    binary = _sidecar_binary()
    if binary is None:
        pytest.skip("the sidecar is not built (cargo build): nothing to check the config with")
    docs = manifests(scenario)
    for deploy in dashboard_deployments(docs):
        key = deploy["spec"]["template"]["metadata"]["labels"]["iskra.io/dashboard"]
        cm_name = next(v["configMap"]["name"] for v in deploy["spec"]["template"]["spec"]["volumes"]
                       if v["name"] == "config")
        cm = next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == cm_name)
        config = yaml.safe_load(cm["data"]["config.yaml"])
        # the probe's header files are mounted Secrets in the pod: stand-ins here
        for header, _ in config.get("probe", {}).get("header_files", {}).items():
            stand_in = tmp_path / f"{key}-{header}"
            stand_in.write_text("Bearer chart-probe-token\n")
            config["probe"]["header_files"][header] = str(stand_in)
        path = tmp_path / f"{key}.yaml"
        path.write_text(yaml.safe_dump(config))
        clean_env = {"PATH": "/usr/bin:/bin"}
        proc = subprocess.run([str(binary), "config", "--check", str(path)], env=clean_env,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"{scenario}/{key}: {proc.stdout}{proc.stderr}"
        proc = subprocess.run([str(binary), "config", "--json", "--config", str(path)], env=clean_env,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        effective = {k: v["value"] if isinstance(v, dict) and "value" in v else v
                     for k, v in json.loads(proc.stdout).items()}
        ports = {p["name"]: p["containerPort"] for p in container(deploy, "sidecar")["ports"]}
        assert effective["dashboard"] == key
        assert effective["listen"] == f"0.0.0.0:{ports['proxy']}"
        assert effective["admin"] == f"0.0.0.0:{ports['admin']}"
        assert effective["telemetry.spool_dir"] == next(
            m["mountPath"] for m in container(deploy, "sidecar")["volumeMounts"] if m["name"] == "spool")


def _secret_refs(tree) -> list[tuple[str, str]]:
    """Every {name, key} secret selector in a tree."""
    found = []
    if isinstance(tree, dict):
        if set(tree) <= {"name", "key", "optional"} and {"name", "key"} <= set(tree):
            found.append((tree["name"], tree["key"]))
        for v in tree.values():
            found.extend(_secret_refs(v))
    elif isinstance(tree, list):
        for v in tree:
            found.extend(_secret_refs(v))
    return found
