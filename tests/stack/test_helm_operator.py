"""The chart's Prometheus Operator objects (helm/iskra-ws-sidecar, scenario ci/podmonitor-values.yaml):
the PrometheusRule, the Grafana dashboard ConfigMaps and the AlertmanagerConfig.

kubernetes-validate has no schema for the CRDs (monitoring.coreos.com): it passes them with a warning,
which a test here shows. So they are checked against hand-written subsets of the CRDs' schemas (the
fields the chart uses, unknown fields rejected) and by the real tools: promtool (check rules, and the
promtool unit tests of tests/stack/prometheus_tests/ run against the rendered PrometheusRule) and amtool
(check-config of the AlertmanagerConfig translated to the Alertmanager configuration the operator
generates). The ConfigMaps are core objects: test_helm.py's kubernetes-validate run covers them.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_helm import (CHART, CRD_KINDS, KUBE_VERSION, ROOT, SCENARIOS, _kubernetes_validate_cmd, _need_helm,
                       _secret_refs, manifests, of_kind)

RULES_DIR = ROOT / "prometheus" / "rules"
PROM_TESTS = Path(__file__).resolve().parent / "prometheus_tests"
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
OPERATOR = "podmonitor"  # the scenario with every Prometheus Operator switch on

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_META = {"type": "object", "required": ["name", "namespace"], "additionalProperties": False,
         "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                        "labels": _STR_MAP, "annotations": _STR_MAP}}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}

# The PrometheusRule CRD (monitoring.coreos.com/v1), the fields a rule file can hold.
PROMETHEUSRULE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": _META,
        "spec": {"type": "object", "required": ["groups"], "additionalProperties": False, "properties": {
            "groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1}, "interval": _DURATION,
                    "limit": {"type": "integer"}, "partial_response_strategy": {"type": "string"},
                    "rules": {"type": "array", "items": {
                        "type": "object", "required": ["expr"], "additionalProperties": False,
                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                        "properties": {
                            "alert": {"type": "string"}, "record": {"type": "string"},
                            "expr": {"type": ["string", "integer"]}, "for": _DURATION,
                            "keep_firing_for": _DURATION, "labels": _STR_MAP, "annotations": _STR_MAP}}}}}}}},
    },
}

_SECRET_KEY = {"type": "object", "required": ["name", "key"], "additionalProperties": False,
               "properties": {"name": {"type": "string", "minLength": 1}, "key": {"type": "string", "minLength": 1},
                              "optional": {"type": "boolean"}}}
_MATCHER = {"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1}, "value": {"type": "string"},
                           "matchType": {"enum": ["=", "!=", "=~", "!~"]}}}
_KV = {"type": "array", "items": {"type": "object", "required": ["key", "value"], "additionalProperties": False,
                                  "properties": {"key": {"type": "string"}, "value": {"type": "string"}}}}
_ROUTE_PROPS = {"receiver": {"type": "string"}, "groupBy": {"type": "array", "items": {"type": "string"}},
                "groupWait": {"type": "string"}, "groupInterval": {"type": "string"},
                "repeatInterval": {"type": "string"}, "matchers": {"type": "array", "items": _MATCHER},
                "continue": {"type": "boolean"}}

# The AlertmanagerConfig CRD (monitoring.coreos.com/v1alpha1), the fields the chart uses.
ALERTMANAGERCONFIG_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1alpha1"}, "kind": {"const": "AlertmanagerConfig"},
        "metadata": _META,
        "spec": {"type": "object", "additionalProperties": False, "properties": {
            "route": {"type": "object", "additionalProperties": False, "required": ["receiver"], "properties": {
                **_ROUTE_PROPS,
                "routes": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                      "properties": _ROUTE_PROPS}}}},
            "inhibitRules": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"sourceMatch": {"type": "array", "items": _MATCHER},
                               "targetMatch": {"type": "array", "items": _MATCHER},
                               "equal": {"type": "array", "items": {"type": "string"}}}}},
            "receivers": {"type": "array", "items": {
                "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "pagerdutyConfigs": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "properties": {
                            "routingKey": _SECRET_KEY, "sendResolved": {"type": "boolean"},
                            "severity": {"type": "string"}, "client": {"type": "string"},
                            "description": {"type": "string"}, "details": _KV}}},
                    "slackConfigs": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "properties": {
                            "apiURL": _SECRET_KEY, "channel": {"type": "string"}, "sendResolved": {"type": "boolean"},
                            "username": {"type": "string"}, "color": {"type": "string"},
                            "title": {"type": "string"}, "text": {"type": "string"}}}},
                    "emailConfigs": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "properties": {
                            "to": {"type": "string"}, "from": {"type": "string"}, "smarthost": {"type": "string"},
                            "requireTLS": {"type": "boolean"}, "sendResolved": {"type": "boolean"},
                            "authUsername": {"type": "string"}, "authPassword": _SECRET_KEY,
                            "headers": _KV, "text": {"type": "string"}}}}}}}}},
    },
}


def _jsonschema():
    try:
        import jsonschema  # kubernetes-validate depends on it
    except ImportError:
        pytest.fail("jsonschema is missing (it comes with kubernetes-validate): run scripts/install-test-deps.sh",
                    pytrace=False)
    return jsonschema


def test_kubernetes_validate_does_not_check_crds(tmp_path):
    """Why the CRDs are checked by hand: kubernetes-validate passes them without a schema."""
    cmd = _kubernetes_validate_cmd()
    for kind in sorted(CRD_KINDS):
        [doc] = of_kind(manifests(OPERATOR), kind)[:1]
        doc = copy.deepcopy(doc)
        doc["spec"]["inventedField"] = True
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(doc))
        proc = subprocess.run([*cmd, "-k", KUBE_VERSION, "--strict", str(path)],
                              capture_output=True, text=True, timeout=60)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Couldn't find schema" in out, out


def test_operator_resources_only_when_enabled():
    for scenario in SCENARIOS:
        docs = manifests(scenario)
        on = scenario == OPERATOR
        assert bool(of_kind(docs, "PrometheusRule")) == on, scenario
        assert bool(of_kind(docs, "AlertmanagerConfig")) == on, scenario
        dash_cms = [d for d in of_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
        assert bool(dash_cms) == on, scenario


def _rule_groups_of_files() -> list[dict]:
    groups = []
    for f in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(yaml.safe_load(f.read_text())["groups"])
    return groups


def test_prometheus_rule_holds_exactly_the_tested_rule_files(tmp_path):
    jsonschema = _jsonschema()
    [pr] = of_kind(manifests(OPERATOR), "PrometheusRule")
    jsonschema.validate(pr, PROMETHEUSRULE_SCHEMA)
    assert pr["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    groups = pr["spec"]["groups"]
    assert groups == _rule_groups_of_files(), "the PrometheusRule must hold prometheus/rules/*.yml as they are"
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names)), names
    # promtool checks the extracted spec as a rule file...
    extracted = tmp_path / "prometheusrule.yml"
    extracted.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/install-test-deps.sh (apt-get install prometheus)"
    proc = subprocess.run([promtool, "check", "rules", str(extracted)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in proc.stdout, proc.stdout
    # ...and the promtool unit tests of the rule files pass against what the cluster would load.
    for test in sorted(PROM_TESTS.glob("*_test.yml")):
        doc = yaml.safe_load(test.read_text())
        doc["rule_files"] = [str(extracted)]
        copy_ = tmp_path / test.name
        copy_.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run([promtool, "test", "rules", str(copy_)], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, f"{test.name} against the PrometheusRule:\n{proc.stdout}{proc.stderr}"


def test_the_packaged_chart_carries_the_rule_files_and_dashboards(tmp_path):
    """files/prometheus-rules and files/grafana-dashboards are links: `helm package` must put the files
    themselves in the archive."""
    import tarfile
    helm = _need_helm()
    archive = helm.package(str(CHART), destination=str(tmp_path))
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for src, sub in ((RULES_DIR, "prometheus-rules"), (DASHBOARDS_DIR, "grafana-dashboards")):
            files = sorted(p for p in src.iterdir() if p.suffix in (".yml", ".json"))
            assert files
            for f in files:
                m = members.get(f"iskra-ws-sidecar/files/{sub}/{f.name}")
                assert m is not None and m.isfile(), f"{sub}/{f.name} missing from {archive}"
                assert tar.extractfile(m).read() == f.read_bytes()


def test_grafana_dashboards_are_configmaps_for_the_grafana_sidecar():
    docs = manifests(OPERATOR)
    cms = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert len(cms) == len(files) == 4
    by_key = {}
    for cm in cms:
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Iskra"
        [(key, text)] = cm["data"].items()
        by_key[key] = text
        assert len(text.encode()) < 1_000_000, "a ConfigMap holds at most 1 MiB"
    for f in files:
        assert by_key[f.name] == f.read_text(), f"{f.name} differs from the repository's dashboard"
        dash = json.loads(by_key[f.name])
        assert dash["uid"] and dash["panels"]


def _alertmanager_config(amc: dict, tmp_path: Path) -> dict:
    """The AlertmanagerConfig as the Alertmanager configuration the operator generates from it (secret
    selectors replaced by files holding stand-in values)."""
    def secret(ref):
        f = tmp_path / f"{ref['name']}-{ref['key']}"
        f.write_text("https://hooks.slack.example/services/T/B/x" if "slack" in ref["key"] else "stand-in")
        return str(f)

    def matchers(ms):
        return [f'{m["name"]}{m.get("matchType", "=")}"{m.get("value", "")}"' for m in ms]

    def route(r):
        out = {"receiver": r["receiver"]}
        for src, dst in (("groupBy", "group_by"), ("groupWait", "group_wait"), ("groupInterval", "group_interval"),
                         ("repeatInterval", "repeat_interval"), ("continue", "continue")):
            if src in r:
                out[dst] = r[src]
        if "matchers" in r:
            out["matchers"] = matchers(r["matchers"])
        if "routes" in r:
            out["routes"] = [route(x) for x in r["routes"]]
        return out

    spec = amc["spec"]
    receivers = []
    for r in spec["receivers"]:
        out = {"name": r["name"]}
        for p in r.get("pagerdutyConfigs", []):
            out.setdefault("pagerduty_configs", []).append({
                "routing_key_file": secret(p["routingKey"]), "send_resolved": p["sendResolved"],
                "severity": p["severity"], "client": p["client"], "description": p["description"],
                "details": {d["key"]: d["value"] for d in p["details"]}})
        for sl in r.get("slackConfigs", []):
            out.setdefault("slack_configs", []).append({
                "api_url_file": secret(sl["apiURL"]), "channel": sl["channel"],
                "send_resolved": sl["sendResolved"], "username": sl["username"], "color": sl["color"],
                "title": sl["title"], "text": sl["text"]})
        for e in r.get("emailConfigs", []):
            c = {"to": e["to"], "from": e["from"], "smarthost": e["smarthost"], "require_tls": e["requireTLS"],
                 "send_resolved": e["sendResolved"], "headers": {h["key"]: h["value"] for h in e["headers"]},
                 "text": e["text"]}
            if "authUsername" in e:
                c["auth_username"] = e["authUsername"]
                c["auth_password_file"] = secret(e["authPassword"])
            out.setdefault("email_configs", []).append(c)
        receivers.append(out)
    inhibit = [{"source_matchers": matchers(i["sourceMatch"]), "target_matchers": matchers(i["targetMatch"]),
                "equal": i["equal"]} for i in spec.get("inhibitRules", [])]
    return {"route": route(spec["route"]), "inhibit_rules": inhibit, "receivers": receivers}


def test_alertmanager_config_routes_the_alerts_like_the_repository_alertmanager(tmp_path):
    jsonschema = _jsonschema()
    [amc] = of_kind(manifests(OPERATOR), "AlertmanagerConfig")
    jsonschema.validate(amc, ALERTMANAGERCONFIG_SCHEMA)
    assert amc["metadata"]["labels"]["alertmanagerConfig"] == "iskra"
    spec = amc["spec"]
    names = [r["name"] for r in spec["receivers"]]
    assert sorted(names) == ["email-concern", "pagerduty-alarm", "slack-alarm", "slack-concern",
                             "slack-notification"]
    routed = [spec["route"]["receiver"]] + [r["receiver"] for r in spec["route"]["routes"]]
    assert set(routed) == set(names), "every receiver is reached and every route has a receiver"
    by_severity = {}
    for r in spec["route"]["routes"]:
        [m] = r["matchers"]
        by_severity.setdefault(m["value"], []).append(r["receiver"])
    assert by_severity == {"critical": ["pagerduty-alarm", "slack-alarm"],
                           "warning": ["slack-concern", "email-concern"]}
    # Secrets only by reference, and to the keys the values name.
    assert sorted(set(_secret_refs(spec))) == [("iskra-alerting", "pagerduty-api-key"),
                                               ("iskra-alerting", "slack-webhook-url"),
                                               ("iskra-alerting", "smtp-password")]
    # The same routing as alertmanager/alertmanager.yml, and a configuration Alertmanager accepts.
    repo = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    converted = _alertmanager_config(amc, tmp_path)
    assert [(r["matchers"], r["receiver"]) for r in converted["route"]["routes"]] == \
        [(r["matchers"], r["receiver"]) for r in repo["route"]["routes"]]
    assert converted["inhibit_rules"] == repo["inhibit_rules"]
    amtool = shutil.which("amtool")
    assert amtool, "amtool is missing: run scripts/install-test-deps.sh (apt-get install prometheus-alertmanager)"
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(converted, sort_keys=False, allow_unicode=True))
    proc = subprocess.run([amtool, "check-config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 receivers" in proc.stdout, proc.stdout
