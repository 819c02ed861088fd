#!/usr/bin/env bash
# Installs, idempotently, every outside tool the test suite talks to: node `ws` (dashboards and clients),
# Python `websockets` and kosoku (Autobahn cases), Debian's prometheus/alertmanager/nginx/haproxy,
# docker-compose (offline validation), iptables, Debian's chromium (the browser of the resume test), and
# the Python tools of the stack checks.
# Safe to run again: each step checks first.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

need_apt=()
command -v prometheus   >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v nginx        >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v haproxy      >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v iptables     >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_apt+=(iptables)
command -v tmux         >/dev/null 2>&1 || need_apt+=(tmux)
command -v chromium     >/dev/null 2>&1 || need_apt+=(chromium)
command -v openssl      >/dev/null 2>&1 || need_apt+=(openssl)   # tests/webhooks.rs: a test CA
command -v amtool       >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)   # test_helm.py: amtool check-config
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts the daemons it installs; the tests run their own instances on free ports.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter nginx haproxy; do
    (service "$svc" stop || true) >/dev/null 2>&1
  done
fi

pip_missing=()
python3 -c 'import websockets' 2>/dev/null || pip_missing+=(websockets)
command -v kosoku >/dev/null 2>&1 || pip_missing+=(kosoku)
python3 -c 'import rotel' 2>/dev/null || pip_missing+=(rotel)
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "install-test-deps: pip install ${pip_missing[*]}"
  pip install -q "${pip_missing[@]}"
fi

# the stack checks' Python tools (pytest, helm SDK, kubernetes-validate, …); pip skips what is there
if ! python3 -c 'import pytest, yaml, requests, helm_python, kubernetes_validate' 2>/dev/null; then
  echo "install-test-deps: pip install -r tests/stack/requirements.txt"
  pip install -q -r "$here/tests/stack/requirements.txt"
fi

# every dependency of tests/peers/package.json (ws; socket.io, graphql-ws … for tests/dashboards.rs)
if ! (cd "$here/tests/peers" && node -e '
  const fs = require("fs");
  const deps = Object.keys(require("./package.json").dependencies);
  process.exit(deps.every((d) => fs.existsSync("node_modules/" + d + "/package.json")) ? 0 : 1);
') 2>/dev/null; then
  echo "install-test-deps: npm ci (tests/peers)"
  (cd "$here/tests/peers" && npm ci --silent --no-audit --no-fund)
fi
echo "install-test-deps: ok"
