#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the real peers, then runs every check.
#   cargo fmt --check · cargo clippy -D warnings · cargo test (unit + integration against node ws,
#   Python websockets, kosoku) · the stack checks (promtool, amtool, Helm SDK, kubernetes-validate,
#   docker-compose config) with pytest · a smoke run of the benchmark (bench/run.sh --smoke: every
#   target and figure once, tiny; it checks the harness works end to end and asserts no timing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The release binary first: the memory_leak chaos test measures what users run.
cargo build --release --locked
cargo test --locked -- --test-threads 2
python3 -m pytest -q tests/stack
bash bench/run.sh --smoke --out "$(mktemp -d)"
