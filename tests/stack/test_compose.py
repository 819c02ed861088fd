"""compose.yaml (the local stack), Dockerfile and .dockerignore.

No Docker engine runs on these machines, so nothing is started or built here. What is checked:
  - `docker-compose -f compose.yaml config -q` (docker-compose 1.29, installed by
    scripts/install-test-deps.sh) accepts the file — it validates offline against the Compose schema;
  - every image is pinned (a tag that is not `latest`, or a digest);
  - every host path the stack mounts exists in the repository, and no secret is in it;
  - the services are wired to each other under the names the other configs use (prometheus/prometheus.yml,
    grafana/provisioning/, alertmanager/alertmanager.yml, otel-collector/collector.yaml);
  - when the sidecar binary has been built (target/{release,debug}), it reads each sidecar service's
    environment into the intended config (`iskra-ws-sidecar config --json`);
  - the Dockerfile's shape: multi-stage, `cargo build --release --locked` with a dependency layer,
    a non-root runtime user, the ports, the entrypoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

try:
    import yaml
except ImportError:  # a missing tool fails, with the way to install it
    pytest.fail("pyyaml is missing: run scripts/install-test-deps.sh", pytrace=False)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SIDECARS = {"sidecar-pulse": ("pulse", 3001), "sidecar-seams": ("seams", 3002), "sidecar-voices": ("voices", 3003)}
# services whose image has nothing to run a healthcheck with (distroless collector) or that exit at once
NO_HEALTHCHECK = {"otel-collector": "distroless image: no shell, no wget",
                  "otel-collector-storage-init": "one-shot job"}


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose); "
                    "run scripts/install-test-deps.sh", pytrace=False)
    return exe


def _compose_config() -> dict:
    """The file as docker-compose resolves it (anchors, merges, ${VAR:-default}, relative paths)."""
    env = {k: v for k, v in os.environ.items() if k != "ISKRA_SECRETS_DIR"}
    proc = subprocess.run([_docker_compose(), "-f", str(COMPOSE), "config"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


_CONFIG: dict = {}


def config() -> dict:
    if not _CONFIG:
        _CONFIG.update(_compose_config())
    return _CONFIG


def services() -> dict:
    return config()["services"]


def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


# ---- validation -------------------------------------------------------------------------------------------

def test_docker_compose_config_quiet_passes():
    proc = subprocess.run([_docker_compose(), "-f", str(COMPOSE), "config", "-q"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docker_compose_config_catches_a_mistake(tmp_path):
    """The offline validation is real: an unknown service key must be refused."""
    broken = raw()
    broken["services"]["sidecar-pulse"]["healthchek"] = {"test": ["CMD", "true"]}
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    proc = subprocess.run([_docker_compose(), "-f", str(path), "config", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "healthchek" in proc.stdout + proc.stderr


# ---- images, mounts, secrets ------------------------------------------------------------------------------

def test_every_image_is_pinned():
    assert not re.search(r":latest\b", COMPOSE.read_text()), "no `latest` anywhere"
    for name, svc in services().items():
        image = svc.get("image")
        assert image, f"{name}: no image (a build must be tagged too)"
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{name}: {image} has no tag"
        tag = last.split(":", 1)[1]
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_project_image_is_the_crate_version():
    version = cargo_version()
    for name, svc in services().items():
        if "build" in svc:
            assert svc["image"] == f"iskra-ws-sidecar:{version}", name
            assert Path(svc["build"]["context"]).resolve() == ROOT
            assert (ROOT / svc["build"].get("dockerfile", "Dockerfile")).is_file()


def _bind_mounts():
    for name, svc in services().items():
        for vol in svc.get("volumes", []):
            if isinstance(vol, str):
                parts = vol.split(":")
                source, target = parts[0], parts[1]
                kind = "bind" if source.startswith(("/", ".")) else "volume"
            else:
                source, target, kind = vol.get("source"), vol["target"], vol.get("type", "volume")
            if kind == "bind":
                yield name, Path(source), target


def test_every_mounted_host_path_exists_in_the_repository():
    mounts = list(_bind_mounts())
    assert mounts
    for name, source, target in mounts:
        assert source.is_absolute(), (name, source)
        assert ROOT in source.resolve().parents or source.resolve() == ROOT, \
            f"{name}: {source} is outside the repository"
        assert source.exists(), f"{name}: mounted host path {source} does not exist"
    # the named volumes are declared
    declared = set(config().get("volumes", {}))
    for name, svc in services().items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source")
            if src and not src.startswith(("/", ".")):
                assert src in declared, f"{name}: volume {src} is not declared"


def test_secrets_stay_outside_the_repository():
    """Alertmanager's secrets are files the operator creates; none is committed, and their names are
    the /run/secrets/<name> files alertmanager/alertmanager.yml reads."""
    secrets = config().get("secrets", {})
    for name, spec in secrets.items():
        path = Path(spec["file"])
        assert path.name == name
        assert path.parent == ROOT / ".secrets", f"{name}: default location is ./.secrets (gitignore it)"
    am = ROOT / "alertmanager" / "alertmanager.yml"
    if am.exists():
        wanted = set(re.findall(r"/run/secrets/([A-Za-z0-9_.-]+)", am.read_text()))
        mounted = {s if isinstance(s, str) else s["source"] for s in services()["alertmanager"]["secrets"]}
        assert wanted == mounted == set(secrets), (wanted, mounted)


# ---- wiring between the services -------------------------------------------------------------------------

def test_prometheus_scrapes_the_sidecars_by_their_service_names():
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "iskra-ws-sidecar")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{s}:8080" for s in SIDECARS}
    for t in targets:
        host, port = t.split(":")
        env = services()[host]["environment"]
        assert env["ISKRA_SIDECAR_ADMIN"] == f"0.0.0.0:{port}"
    for am in prom.get("alerting", {}).get("alertmanagers", []):
        for sc in am.get("static_configs", []):
            for t in sc["targets"]:
                assert t.split(":")[0] in services(), t


def test_prometheus_mounts_config_and_rules_and_accepts_remote_write():
    prom = services()["prometheus"]
    cmd = prom["command"]
    assert "--web.enable-remote-write-receiver" in cmd, "the collector remote-writes"
    assert "--enable-feature=exemplar-storage" in cmd
    cfg = next(c for c in cmd if c.startswith("--config.file=")).split("=", 1)[1]
    mounts = {t: s for _, s, t in _bind_mounts() if _ == "prometheus"}
    assert mounts["/etc/prometheus"] == ROOT / "prometheus"
    assert cfg == "/etc/prometheus/prometheus.yml"
    rules = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text()).get("rule_files", [])
    for pattern in rules:
        assert list((ROOT / "prometheus").glob(pattern)), f"rule_files {pattern} matches nothing"


def test_alertmanager_and_grafana_mounts_match_their_configs():
    am = services()["alertmanager"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert {t: s for n, s, t in _bind_mounts() if n == "alertmanager"}["/etc/alertmanager"] == ROOT / "alertmanager"
    graf = {t: s for n, s, t in _bind_mounts() if n == "grafana"}
    assert graf["/etc/grafana/provisioning"] == ROOT / "grafana" / "provisioning"
    dash_target = next(t for t, s in graf.items() if s == ROOT / "grafana" / "dashboards")
    for provider_file in (ROOT / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"):
        for provider in yaml.safe_load(provider_file.read_text()).get("providers", []):
            assert provider["options"]["path"].rstrip("/") == dash_target.rstrip("/"), provider_file
    for ds_file in (ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"):
        for ds in yaml.safe_load(ds_file.read_text()).get("datasources", []):
            host = urlparse(ds["url"]).hostname
            assert host in services(), f"datasource {ds['name']} points at {host}, not a service"


def test_collector_wiring():
    coll = services()["otel-collector"]
    mounts = {t: s for n, s, t in _bind_mounts() if n == "otel-collector"}
    for arg in coll["command"]:
        path = arg.split("=", 1)[1]
        assert path in mounts and mounts[path].is_file(), f"{arg} is not a mounted repository file"
    assert mounts["/etc/otelcol-contrib/collector.yaml"] == ROOT / "otel-collector" / "collector.yaml"
    env = coll["environment"]
    assert urlparse(env["PROMETHEUS_REMOTE_WRITE_URL"]).hostname == "prometheus"
    assert env["PROMETHEUS_REMOTE_WRITE_URL"].endswith("/api/v1/write")
    tempo_host, tempo_port = env["TEMPO_OTLP_ENDPOINT"].split(":")
    assert tempo_host == "tempo"
    tempo_cfg = yaml.safe_load((ROOT / "otel-collector" / "tempo.yaml").read_text())
    grpc = tempo_cfg["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc == f"0.0.0.0:{tempo_port}"
    # the storage directory sits on the named volume that the init job hands to uid 10001
    vols = {v.split(":")[1] if isinstance(v, str) else v["target"]: v for v in coll["volumes"]}
    assert env["OTELCOL_STORAGE_DIR"].startswith("/var/lib/otelcol/") and "/var/lib/otelcol" in vols
    init = services()["otel-collector-storage-init"]
    assert init["command"][:3] == ["chown", "-R", "10001:10001"]
    assert coll["depends_on"]["otel-collector-storage-init"]["condition"] == "service_completed_successfully"
    # the sidecars export to the collector's OTLP gRPC receiver
    receiver = yaml.safe_load((ROOT / "otel-collector" / "collector.yaml").read_text())["receivers"]["otlp"]
    grpc_port = receiver["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    for name in SIDECARS:
        e = services()[name]["environment"]
        assert e["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{grpc_port}"
        assert e["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"


def test_sidecars_front_their_dashboards():
    for name, (dashboard, port) in SIDECARS.items():
        svc = services()[name]
        env = svc["environment"]
        assert env["ISKRA_SIDECAR_DASHBOARD"] == dashboard
        assert env["ISKRA_SIDECAR_UPSTREAM"] == f"ws://dashboard-{dashboard}:{port}"
        assert env[f"WEBSOCKET_{dashboard.upper()}_URL"] == env["ISKRA_SIDECAR_UPSTREAM"]
        assert env["OTEL_SERVICE_NAME"] == f"iskra-ws-sidecar-{dashboard}"
        assert svc["command"] == ["run"]
        # docker-compose 1.29 prints a port bound to a host address in the short form.
        short = [p for p in svc["ports"] if isinstance(p, str)]
        published = {(p["published"], p["target"]) for p in svc["ports"] if isinstance(p, dict)}
        assert (port, 8000) in published, "clients keep the seed's ws://localhost:300x"
        assert all(p["target"] != 8080 for p in svc["ports"] if isinstance(p, dict)), \
            f"{name}: the admin port is published on every address"
        assert len(short) == 1 and re.fullmatch(r"127\.0\.0\.1:808[123]:8080(/tcp)?", short[0]), \
            f"{name}: the admin port is published on 127.0.0.1 only: {short}"
        assert svc["depends_on"][f"dashboard-{dashboard}"]["condition"] == "service_healthy"
        dash = services()[f"dashboard-{dashboard}"]
        assert dash["command"][:3] == ["demo-dashboard", "--name", dashboard]
        assert dash["command"][dash["command"].index("--listen") + 1] == f"0.0.0.0:{port}"
        assert "ports" not in dash, "the dashboards are reached through their sidecar only"


def test_project_containers_are_hardened():
    for name, svc in services().items():
        if "build" not in svc:
            continue
        assert svc["user"] == "65532:65532", name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
    for name in SIDECARS:
        vols = services()[name]["volumes"]
        spool = services()[name]["environment"]["ISKRA_SIDECAR_TELEMETRY__SPOOL_DIR"]
        targets = [v.split(":")[1] if isinstance(v, str) else v["target"] for v in vols]
        assert spool in targets, f"{name}: the spool must be a volume on a read-only root"


def test_healthchecks_where_the_image_allows():
    for name, svc in services().items():
        if name in NO_HEALTHCHECK:
            assert "healthcheck" not in svc, name
            continue
        hc = svc.get("healthcheck")
        assert hc and hc["test"][0] == "CMD", f"{name}: no exec-form healthcheck"
    for name in SIDECARS:
        assert services()[name]["healthcheck"]["test"][1:] == [
            "/usr/local/bin/iskra-ws-sidecar", "check", "http://127.0.0.1:8080/ready"]


def _sidecar_binary() -> Path | None:
    found = [p for p in (ROOT / "target" / "release" / "iskra-ws-sidecar",
                         ROOT / "target" / "debug" / "iskra-ws-sidecar") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@pytest.mark.parametrize("name", sorted(SIDECARS))
def test_the_sidecar_binary_reads_the_service_environment(name):
    binary = _sidecar_binary()
    if binary is None:
        pytest.skip("the sidecar is not built (cargo build): nothing to read the environment with")
    env = {k: str(v) for k, v in services()[name]["environment"].items()}
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.run([str(binary), "config", "--json"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    effective = {k: v["value"] if isinstance(v, dict) and "value" in v else v
                 for k, v in json.loads(proc.stdout).items()}
    dashboard, port = SIDECARS[name]
    assert effective["dashboard"] == dashboard
    assert effective["upstream"] == f"ws://dashboard-{dashboard}:{port}"
    assert effective["listen"] == "0.0.0.0:8000"
    assert effective["admin"] == "0.0.0.0:8080"
    assert effective[f"websocket.connections.{dashboard}.url"] == f"ws://dashboard-{dashboard}:{port}"
    assert effective["telemetry.spool_dir"] == "/var/spool/iskra-ws-sidecar"


# ---- Dockerfile and .dockerignore --------------------------------------------------------------------------

def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_is_multistage_pinned_and_non_root():
    ins = _dockerfile_instructions()
    args = {}
    for op, rest in ins:
        if op == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v
        if op == "FROM":
            break
    stages = []
    for op, rest in ins:
        if op == "FROM":
            ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            name = rest.split()[-1] if " AS " in rest.upper() else None
            stages.append((ref, name))
    assert len(stages) >= 2, "multi-stage: a builder and a runtime"
    for ref, _ in stages:
        last = ref.rsplit("/", 1)[-1]
        assert "@sha256:" in ref or (":" in last and not last.endswith(":latest")), f"unpinned base {ref}"
    assert "latest" not in (ROOT / "Dockerfile").read_text()
    assert stages[0][0].startswith("rust:")
    # the final stage: non-root numeric user, ports, exec-form entrypoint, default command `run`
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM"):]
    users = [rest for op, rest in final if op == "USER"]
    assert users and users[-1].split(":")[0] == "65532"
    exposed = {p for op, rest in final if op == "EXPOSE" for p in rest.split()}
    assert exposed == {"8000", "8080"}
    entry = [json.loads(rest) for op, rest in final if op == "ENTRYPOINT"]
    assert entry == [["/usr/local/bin/iskra-ws-sidecar"]]
    assert [json.loads(rest) for op, rest in final if op == "CMD"] == [["run"]]
    assert not [1 for op, _ in final if op == "RUN"], "the runtime stage runs nothing (no shell there)"


def test_dockerfile_builds_locked_release_with_a_dependency_layer():
    ins = _dockerfile_instructions()
    runs = [rest for op, rest in ins if op == "RUN"]
    builds = [r for r in runs if "cargo build" in r]
    assert len(builds) == 2 and all("--release" in b and "--locked" in b for b in builds)
    copies = [(i, rest) for i, (op, rest) in enumerate(ins) if op == "COPY" and "--from" not in rest]
    manifest = next(i for i, rest in copies if "Cargo.toml" in rest and "Cargo.lock" in rest)
    sources = next(i for i, rest in copies if rest.split()[0] == "src")
    first_build = next(i for i, (op, rest) in enumerate(ins) if op == "RUN" and "cargo build" in rest)
    assert manifest < first_build < sources, "dependencies are built before the sources are copied"
    # what the build copies must not be excluded by .dockerignore
    ignored = [l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "src"):
        assert needed not in ignored
    for excluded in ("target", ".git"):
        assert excluded in ignored
