"""Alertmanager configuration, checked with the real amtool and a real Alertmanager.

- `amtool check-config` accepts alertmanager/alertmanager.yml and its templates.
- `amtool config routes test` sends each severity to the right receivers (and can fail).
- Secrets come from files; none is in the repository.
- A real Alertmanager on 127.0.0.1, fed alerts through its API, delivers to Slack, PagerDuty and
  e-mail (local stand-ins on 127.0.0.1) with the voice shown, inhibits a warning by the critical of
  the same alert_group and dashboard, and sends the resolution.
"""
import email
import email.policy
import json
import pathlib
import re
import socketserver
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from obs_support import AM_CONFIG, ROOT, free_port, load_yaml, run, tool

SECRET_KEYS = {"api_url", "slack_api_url", "routing_key", "service_key", "auth_password", "smtp_auth_password",
               "auth_secret", "smtp_auth_secret", "bearer_token", "password"}


def amtool():
    return tool("amtool")


def walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,), k, v
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


# ---------------------------------------------------------------------------------------- amtool
def test_amtool_check_config():
    r = run([amtool(), "check-config", AM_CONFIG], cwd=ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "SUCCESS" in out and "1 templates" in out and "1 inhibit rules" in out, out


ROUTES = [
    ({"alertname": "WebSocketErrorRateCritical", "severity": "critical", "voice": "alarm", "dashboard": "pulse"},
     "pagerduty-alarm,slack-alarm"),
    ({"alertname": "WebSocketSidecarDown", "severity": "critical", "voice": "alarm", "dashboard": "voices"},
     "pagerduty-alarm,slack-alarm"),
    ({"alertname": "WebSocketAvailabilityBudgetBurnFast", "severity": "critical", "dashboard": "seams"},
     "pagerduty-alarm,slack-alarm"),
    ({"alertname": "WebSocketErrorRateWarning", "severity": "warning", "voice": "concern", "dashboard": "pulse"},
     "slack-concern,email-concern"),
    ({"alertname": "WebSocketLatencyBudgetBurnSlow", "severity": "warning", "dashboard": "seams"},
     "slack-concern,email-concern"),
    ({"alertname": "SomethingInformational", "severity": "info"}, "slack-notification"),
    ({"alertname": "NoSeverityAtAll"}, "slack-notification"),
]


@pytest.mark.parametrize("labels,receivers", ROUTES, ids=[l["alertname"] for l, _ in ROUTES])
def test_amtool_routes(labels, receivers):
    r = run([amtool(), "config", "routes", "test", f"--config.file={AM_CONFIG}",
             f"--verify.receivers={receivers}", *[f"{k}={v}" for k, v in labels.items()]])
    assert r.returncode == 0, f"{labels} → expected {receivers}:\n{r.stdout}{r.stderr}"
    assert r.stdout.strip() == receivers


def test_amtool_routes_check_can_fail():
    r = run([amtool(), "config", "routes", "test", f"--config.file={AM_CONFIG}",
             "--verify.receivers=email-concern", "severity=critical"])
    assert r.returncode != 0, "a wrong expected receiver must make amtool exit non-zero"


# ------------------------------------------------------------------------------------ structure
def test_grouping_inhibition_and_resolution():
    cfg = load_yaml(AM_CONFIG)
    route = cfg["route"]
    assert route["group_by"] == ["alertname", "dashboard"]
    assert route.get("repeat_interval"), "repeat_interval keeps an active alert from being raised again"
    for sub in route["routes"]:
        assert sub.get("repeat_interval", route["repeat_interval"])
    [inhibit] = cfg["inhibit_rules"]
    assert 'severity="critical"' in inhibit["source_matchers"]
    assert any(m.startswith("alert_group=~") for m in inhibit["source_matchers"])
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert sorted(inhibit["equal"]) == ["alert_group", "dashboard"]
    for receiver in cfg["receivers"]:
        for key, confs in receiver.items():
            if key.endswith("_configs"):
                for c in confs:
                    assert c.get("send_resolved") is True, f"{receiver['name']}: send_resolved must be true"


def test_secrets_come_from_files_outside_the_repository():
    cfg = load_yaml(AM_CONFIG)
    files = []
    for path, key, value in walk(cfg):
        assert key not in SECRET_KEYS, f"secret {'.'.join(map(str, path))} inline in alertmanager.yml"
        if isinstance(key, str) and key.endswith("_file"):
            files.append(value)
    assert {pathlib.PurePosixPath(f).name for f in files} == {
        "alertmanager_slack_api_url", "alertmanager_pagerduty_routing_key", "alertmanager_smtp_password"}
    for f in files:
        assert f.startswith("/run/secrets/"), f"{f}: secrets are mounted at /run/secrets/"
    text = AM_CONFIG.read_text()
    assert not re.search(r"hooks\.slack\.com/services/\w", text)
    for p in (ROOT / "alertmanager").rglob("*"):
        assert "secret" not in p.name.lower() and p.suffix not in {".key", ".pem"}, f"{p} looks like a secret"


def test_templates_show_the_voice():
    cfg = load_yaml(AM_CONFIG)
    tmpl = "".join(p.read_text() for p in (AM_CONFIG.parent / "templates").glob("*.tmpl"))
    assert re.search(r'define "iskra.title".*voice', tmpl, re.S)
    for receiver in cfg["receivers"]:
        text = json.dumps(receiver)
        assert "iskra.title" in text, f"{receiver['name']} does not use the iskra.title template"


# ----------------------------------------------------------------------- a real Alertmanager
class Capture:
    """HTTP stand-in for Slack and PagerDuty, and a minimal SMTP server, on 127.0.0.1."""

    def __init__(self):
        self.posts = []  # (path, json)
        self.mails = []  # email.message.EmailMessage
        self.lock = threading.Lock()
        cap = self

        class Http(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with cap.lock:
                    cap.posts.append((self.path, json.loads(body)))
                self.send_response(202 if "pagerduty" in self.path else 200)
                self.end_headers()
                self.wfile.write(b'{"status":"success"}' if "pagerduty" in self.path else b"ok")

            def log_message(self, *a):
                pass

        class Smtp(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 localhost ESMTP capture")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").strip().upper()
                    if cmd.startswith(("EHLO", "HELO")):
                        self.reply("250-localhost")
                        self.reply("250 8BITMIME")
                    elif cmd.startswith("DATA"):
                        self.reply("354 end with .")
                        data = b""
                        while True:
                            l = self.rfile.readline()
                            if l in (b".\r\n", b".\n", b""):
                                break
                            data += l[1:] if l.startswith(b"..") else l
                        with cap.lock:
                            cap.mails.append(email.message_from_bytes(data, policy=email.policy.default))
                        self.reply("250 queued")
                    elif cmd.startswith("QUIT"):
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 ok")

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self.smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
        self.smtp.daemon_threads = True
        for s in (self.http, self.smtp):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def smtp_addr(self):
        return f"127.0.0.1:{self.smtp.server_address[1]}"

    def close(self):
        for s in (self.http, self.smtp):
            s.shutdown()
            s.server_close()

    def slack(self, channel):
        with self.lock:
            return [b for p, b in self.posts if p == "/slack" and b.get("channel") == channel]

    def pagerduty(self):
        with self.lock:
            return [b for p, b in self.posts if p == "/pagerduty"]


def wait_for(pred, what, timeout=25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    binary = tool("prometheus-alertmanager", "alertmanager")
    tmp = tmp_path_factory.mktemp("alertmanager")
    cap = Capture()
    secrets = tmp / "secrets"
    secrets.mkdir()
    (secrets / "alertmanager_slack_api_url").write_text(cap.http_url + "/slack\n")
    (secrets / "alertmanager_pagerduty_routing_key").write_text("test-routing-key-0123456789abcdef\n")
    (secrets / "alertmanager_smtp_password").write_text("not-a-real-password\n")
    # the repository's config, with only what a test must change: secrets' directory, where the
    # channels are, and timers short enough for a test
    cfg = yaml.safe_load(AM_CONFIG.read_text().replace("/run/secrets/", f"{secrets}/"))
    cfg["global"].update(smtp_smarthost=cap.smtp_addr, smtp_require_tls=False,
                         pagerduty_url=cap.http_url + "/pagerduty")
    cfg["templates"] = [str(AM_CONFIG.parent / t) for t in cfg["templates"]]
    cfg["route"].update(group_wait="1s", group_interval="1s")
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    r = run([amtool(), "check-config", tmp / "alertmanager.yml"])
    assert r.returncode == 0, r.stdout + r.stderr
    port = free_port()
    log = open(tmp / "alertmanager.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {(tmp / 'alertmanager.log').read_text()}")
            try:
                return requests.get(url + "/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, "alertmanager to be ready")
        yield url, cap, tmp / "alertmanager.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        cap.close()


def alert(name, severity, dashboard, group, ends=None):
    voice = {"critical": "alarm", "warning": "concern"}[severity]
    now = datetime.now(timezone.utc)
    a = {
        "labels": {"alertname": name, "severity": severity, "voice": voice, "seam": "error_handling",
                   "alert_group": group, "dashboard": dashboard, "iskra_dashboard": dashboard},
        "annotations": {
            "summary": f"{name} on {dashboard}",
            "description": f"{name} test description for {dashboard}",
            "runbook_url": f"https://github.com/iskra/iskra-ws-sidecar/blob/main/docs/runbook.md#{name.lower()}",
            "dashboard_url": f"https://grafana.iskra.local/d/iskra-ws-overview/websocket-overview?var-dashboard={dashboard}&viewPanel=3",
        },
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "generatorURL": "http://prometheus:9090/graph",
    }
    if ends:
        a["endsAt"] = ends.isoformat()
    return a


def test_real_alertmanager_routes_inhibits_and_resolves(alertmanager):
    url, cap, log = alertmanager
    crit = alert("WebSocketErrorRateCritical", "critical", "pulse", "WebSocketErrorRate")
    warn_pulse = alert("WebSocketErrorRateWarning", "warning", "pulse", "WebSocketErrorRate")
    warn_seams = alert("WebSocketErrorRateWarning", "warning", "seams", "WebSocketErrorRate")
    # The critical first: Alertmanager's inhibitor learns of source alerts asynchronously, so warnings
    # posted in the same request could (on a busy machine) be notified before it knows the critical.
    # Once the critical has paged, the inhibitor has it; then the warnings arrive.
    r = requests.post(url + "/api/v2/alerts", json=[crit], timeout=5)
    assert r.status_code == 200, r.text

    # critical → PagerDuty with the routing key from its file, and Slack #iskra-alarm; voice alarm
    [pd] = wait_for(cap.pagerduty, "the PagerDuty event")
    r = requests.post(url + "/api/v2/alerts", json=[warn_pulse, warn_seams], timeout=5)
    assert r.status_code == 200, r.text
    assert pd["routing_key"] == "test-routing-key-0123456789abcdef"
    assert pd["event_action"] == "trigger"
    assert pd["payload"]["severity"] == "critical"
    assert pd["payload"]["custom_details"]["voice"] == "alarm"
    assert pd["payload"]["custom_details"]["dashboard"] == "pulse"
    assert "voice: alarm" in pd["payload"]["summary"]
    assert any(l["href"].endswith("#websocketerrorratecritical") for l in pd["links"])
    [alarm] = wait_for(lambda: cap.slack("#iskra-alarm"), "the Slack #iskra-alarm message")
    att = alarm["attachments"][0]
    assert att["title"] == "[FIRING:1] WebSocketErrorRateCritical · pulse · voice: alarm"
    assert att["color"] == "danger"
    assert "runbook: https://github.com/iskra/iskra-ws-sidecar/blob/main/docs/runbook.md#websocketerrorratecritical" in att["text"]

    # warning on seams (no critical there) → Slack #iskra-concern and e-mail; voice concern
    concern = wait_for(lambda: cap.slack("#iskra-concern"), "the Slack #iskra-concern message")
    mails = wait_for(lambda: list(cap.mails), "the e-mail")
    time.sleep(3)  # several group intervals: anything inhibited would have been sent by now
    concern = cap.slack("#iskra-concern")
    assert [m["attachments"][0]["title"] for m in concern] == [
        "[FIRING:1] WebSocketErrorRateWarning · seams · voice: concern"]
    assert concern[0]["attachments"][0]["color"] == "warning"
    mails = list(cap.mails)
    assert [m["Subject"] for m in mails] == ["[FIRING:1] WebSocketErrorRateWarning · seams · voice: concern"]
    assert mails[0]["To"] == "iskra-oncall@iskra.local"
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert "voice: concern" in body and "dashboard: seams" in body

    # the pulse warning is inhibited by the pulse critical of the same alert_group
    alerts = requests.get(url + "/api/v2/alerts", timeout=5).json()
    by_key = {(a["labels"]["alertname"], a["labels"]["dashboard"]): a["status"] for a in alerts}
    assert by_key[("WebSocketErrorRateWarning", "pulse")]["state"] == "suppressed"
    assert by_key[("WebSocketErrorRateWarning", "pulse")]["inhibitedBy"]
    assert by_key[("WebSocketErrorRateWarning", "seams")]["state"] == "active"
    assert by_key[("WebSocketErrorRateCritical", "pulse")]["state"] == "active"
    assert len(cap.pagerduty()) == 1, "a critical must page once, not on every group interval"

    # resolution is sent (send_resolved: true)
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    r = requests.post(url + "/api/v2/alerts",
                      json=[alert("WebSocketErrorRateCritical", "critical", "pulse", "WebSocketErrorRate", ends=past)],
                      timeout=5)
    assert r.status_code == 200
    resolve = wait_for(lambda: [e for e in cap.pagerduty() if e["event_action"] == "resolve"], "the PagerDuty resolve")
    assert resolve[0]["dedup_key"] == pd["dedup_key"]
    resolved = wait_for(lambda: [m for m in cap.slack("#iskra-alarm")
                                 if m["attachments"][0]["title"].startswith("[RESOLVED]")], "the Slack resolution")
    assert resolved[0]["attachments"][0]["color"] == "good"
    # with its critical gone, the pulse warning is no longer inhibited and is delivered
    wait_for(lambda: [m for m in cap.slack("#iskra-concern")
                      if m["attachments"][0]["title"].startswith("[FIRING:1] WebSocketErrorRateWarning · pulse")],
             "the pulse warning after its critical resolved")
