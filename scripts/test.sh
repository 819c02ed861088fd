#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the real peers, then runs every check.
#   cargo fmt --check · cargo clippy -D warnings · cargo test (unit + integration against node ws,
#   Python websockets, kosoku) · the stack checks (promtool, amtool, Helm SDK, kubernetes-validate,
#   docker-compose config) with pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked -- --test-threads 2
python3 -m pytest -q tests/stack
