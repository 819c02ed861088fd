"""End to end without Docker: a real sidecar under traffic → a real Prometheus scraping its /metrics
with the project's rules → a real Alertmanager → a local webhook receiver.

Stopping the dashboard makes WebSocketFallbackActive (voice=concern) arrive at the webhook; starting it
again resolves the alert. The only change to the project's rules is the alert's `for:` (1m → 2s), so
the test takes seconds; expressions, labels and annotations are the shipped ones.

The same Prometheus, fed by the real sidecar after the faults, then runs every Grafana query with
ISKRA_REQUIRE_DATA=1 (tests/stack/test_grafana.py), so each panel is shown to return data from real
series, not only synthetic ones.

Needs the sidecar binary (target/debug/iskra-ws-sidecar, built by `cargo test` in scripts/test.sh).
"""
import http.server
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests
import yaml

from obs_support import ROOT as REPO, free_port, tool

BIN = REPO / "target" / "debug" / "iskra-ws-sidecar"
PEERS = REPO / "tests" / "peers"


class Hook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Hook.received.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def start_dashboard(port):
    p = subprocess.Popen(["node", str(PEERS / "ws-server.js"), str(port)], cwd=PEERS, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert '"port"' in line, f"node ws did not start: {line!r}"
    return p


def wait(what, pred, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def alerts(name, status):
    return [(t, a) for t, m in Hook.received for a in m.get("alerts", [])
            if a["labels"].get("alertname") == name and a["status"] == status]


@pytest.fixture(scope="module")
def stack():
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: build the sidecar first (scripts/test.sh runs cargo test before the stack checks)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="iskra-e2e-"))
    hook_port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    dash_port = free_port()
    dashboard = start_dashboard(dash_port)
    admin_port = free_port()
    env = {**os.environ, "OTEL_SDK_DISABLED": "true", "WEBSOCKET_LOG_LEVEL": "warn",
           "ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__MAX_ATTEMPTS": "2",
           "ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__INITIAL_DELAY": "100",
           "ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__MAX_DELAY": "500",
           "ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__INTERVAL": "300",
           "ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__TIMEOUT": "200",
           "ISKRA_SIDECAR_PROBE__SSE_PATH": "/sse"}
    sidecar = subprocess.Popen([str(BIN), "run", "--dashboard", "pulse", "--listen", "127.0.0.1:0",
                                "--admin", f"127.0.0.1:{admin_port}", "--upstream", f"ws://127.0.0.1:{dash_port}"],
                               env=env, stdout=subprocess.PIPE, text=True)
    # the `sidecar_started` line names the bound addresses; start-up lines before it (descriptor limit) are skipped
    started = {}
    while "listen" not in started:
        line = sidecar.stdout.readline()
        assert line, "the sidecar exited before its sidecar_started line"
        started = json.loads(line)
    listen = started["listen"]

    # Traffic: a Python websockets client chatting through the sidecar, reconnecting when dropped.
    stop = threading.Event()

    def traffic():
        import asyncio
        import websockets

        async def loop():
            while not stop.is_set():
                try:
                    async with websockets.connect(f"ws://{listen}/live") as ws:
                        for i in range(20):
                            await ws.send(f"hello {i}")
                            await ws.recv()
                            await asyncio.sleep(0.05)
                except Exception:
                    await asyncio.sleep(0.2)
        asyncio.run(loop())
    threading.Thread(target=traffic, daemon=True).start()

    # The project's rules, with the fallback alert's `for:` shortened.
    rules = []
    for f in sorted((REPO / "prometheus" / "rules").glob("*.yml")):
        doc = yaml.safe_load(f.read_text())
        for g in doc["groups"]:
            g["interval"] = "1s"
            for r in g["rules"]:
                if r.get("alert") == "WebSocketFallbackActive":
                    r["for"] = "2s"
        out = tmp / f.name
        out.write_text(yaml.safe_dump(doc))
        rules.append(out)

    am_port = free_port()
    am_cfg = tmp / "alertmanager.yml"
    am_cfg.write_text(yaml.safe_dump({
        "route": {"receiver": "hook", "group_by": ["alertname", "dashboard"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": f"http://127.0.0.1:{hook_port}/", "send_resolved": True}]}]}))
    am = subprocess.Popen([tool("prometheus-alertmanager", "alertmanager"), f"--config.file={am_cfg}",
                           f"--storage.path={tmp / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scrape = [{"job_name": "iskra-ws-sidecar", "scrape_interval": "1s", "honor_labels": True,
               "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"], "labels": {"iskra_dashboard": "pulse"}}]}]
    prom_port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(r) for r in rules],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": scrape}))
    prom = subprocess.Popen([tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{prom_port}"

    def ready():
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False
    wait("prometheus ready", ready, 30)
    state = {"prom": url, "dashboard": dashboard, "dash_port": dash_port, "admin": f"127.0.0.1:{admin_port}"}
    try:
        yield state
    finally:
        stop.set()
        for p in (sidecar, am, prom):
            p.terminate()
        state["dashboard"].kill()
        server.shutdown()


def query(url, expr):
    r = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    return r["data"]["result"]


def test_stopping_the_dashboard_fires_a_websocket_alert_with_its_voice_and_restarting_resolves_it(stack):
    url = stack["prom"]
    # Healthy first: traffic is scraped, no alert.
    wait("traffic in Prometheus", lambda: query(url, 'websocket_connections_total{state="connected"} > 0'))
    assert not alerts("WebSocketFallbackActive", "firing")
    # Fault: the dashboard goes away.
    t_fault = time.monotonic()
    stack["dashboard"].kill()
    stack["dashboard"].wait()
    fired = wait("WebSocketFallbackActive at the webhook", lambda: alerts("WebSocketFallbackActive", "firing"), 90)
    t_alert, alert = fired[0]
    assert alert["labels"]["voice"] == "concern"
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["dashboard"] == "pulse"
    assert alert["labels"]["seam"] == "resilience_mechanisms"
    assert "runbook" in alert["annotations"]["runbook_url"]
    print(f"fault → webhook: {t_alert - t_fault:.1f} s")
    # Repair: the dashboard returns on the same port; the prober recovers and the alert resolves.
    t_fix = time.monotonic()
    stack["dashboard"] = start_dashboard(stack["dash_port"])
    resolved = wait("the resolve notification", lambda: alerts("WebSocketFallbackActive", "resolved"), 90)
    print(f"repair → resolved at the webhook: {resolved[0][0] - t_fix:.1f} s")


def test_every_grafana_query_returns_data_from_the_real_sidecar(stack):
    # After the faults above the error, fallback and reconnect series exist too.
    wait("reconnections recorded", lambda: query(stack["prom"], "websocket_reconnections_total"), 30)
    env = {**os.environ, "ISKRA_PROM_URL": stack["prom"], "ISKRA_REQUIRE_DATA": "1", "ISKRA_DASHBOARD": "pulse"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests/stack/test_grafana.py"),
                        "-k", "query_runs_on_prometheus or variable_queries"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
