#!/usr/bin/env bash
# Benchmark: the sidecar against a direct connection, nginx, haproxy and a plain byte relay.
#
#   bench/run.sh [--smoke] [--reps N] [--no-build] [--wait-quiet] [--targets "direct sidecar_on ..."]
#                [--figures "tp64 tp4k latency churn idle"] [--out DIR]
#
# Everything runs on 127.0.0.1 with free ports. Per figure, each target is started fresh, measured and
# stopped, in the order direct, sidecar (telemetry on), sidecar (telemetry off), nginx, haproxy, relay;
# the whole sequence is repeated (default 3). Results: DIR/latest.json (default bench-results/) and a
# table of medians and ratios to direct on stdout, and the CPU each proxy (and, for the sidecar with
# telemetry on, the OTLP receiver) used per operation. A benchmark, not a test: nothing here asserts timings.
# The churn figure also reports connect p50/p99 (TCP connect + upgrade until the 101 is read) and, for
# the sidecar, allocations per churn cycle: a separate short churn run with bench/alloccount.c preloaded
# (a malloc/free counter), minus the allocations the same process makes idle over the same time.
# The sidecar runs at its default configuration (log level included).
# --smoke runs a tiny version of every figure once (CI: checks the harness works, < 60 s after builds).
# The machine's CPU use just before each run is recorded (background_busy_pct): other work on a 2-core
# machine skews every figure; --wait-quiet waits (up to 60 s) for it to drop under 15 % first.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
REPS=3
SMOKE=0
BUILD=1
OUT="$ROOT/bench-results"
TARGETS="direct sidecar_on sidecar_off nginx haproxy relay"
FIGURES="tp64 tp4k latency churn idle"
WAIT_QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; REPS=1 ;;
    --reps) REPS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --targets) TARGETS="$2"; shift ;;
    --figures) FIGURES="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --wait-quiet) WAIT_QUIET=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
  shift
done

# Figure parameters (seconds). The machine has 2 cores shared by load generator, echo and proxy.
if [ "$SMOKE" = 1 ]; then
  WARM=0.2; DUR=0.5; LAT_RATE=1000; IDLE_CONNS=200; SETTLE=0.2; BUSY_WINDOW=0.2; ALLOC_DUR=0.5
else
  WARM=1; DUR=3; LAT_RATE=4000; IDLE_CONNS=5000; SETTLE=1; BUSY_WINDOW=0.5; ALLOC_DUR=1.5
fi
TP_CONNS=50; TP_WINDOW=16; LAT_CONNS=10; CHURN_WORKERS=8

log() { echo "[bench] $*" >&2; }

# Enough descriptors for 5,000 held connections (two sockets each in a proxy).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

if [ "$BUILD" = 1 ]; then
  log "building the sidecar (release)"
  (cd "$ROOT" && cargo build --release --quiet)
  log "building the harness (release)"
  (cd "$HERE" && cargo build --release --locked --quiet)
fi
SIDECAR="$ROOT/target/release/iskra-ws-sidecar"
BIN="$HERE/target/release"
LOAD="$BIN/bench-load"
# The allocation counter (C, against glibc), rebuilt when its source is newer.
ALLOC_SO="$BIN/alloccount.so"
if [ ! -f "$ALLOC_SO" ] || [ "$HERE/alloccount.c" -nt "$ALLOC_SO" ]; then
  mkdir -p "$BIN"
  cc -O2 -shared -fPIC -o "$ALLOC_SO" "$HERE/alloccount.c" -lpthread
fi
for b in "$SIDECAR" "$LOAD" "$BIN/bench-echo" "$BIN/bench-relay"; do
  [ -x "$b" ] || { echo "missing $b (run without --no-build)" >&2; exit 1; }
done

# Peers: Debian's nginx and haproxy; rotel as the live OTLP receiver.
need_apt=""
case " $TARGETS " in *" nginx "*) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt="$need_apt nginx" ;; esac
case " $TARGETS " in *" haproxy "*) command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt="$need_apt haproxy" ;; esac
if [ -n "$need_apt" ]; then
  log "installing$need_apt"
  apt-get install -y $need_apt >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y $need_apt >/dev/null; }
fi
export PATH="$PATH:/usr/sbin:/sbin"
ROTEL=""
case " $TARGETS " in *" sidecar_on "*)
  python3 -c 'import rotel' 2>/dev/null || { log "installing rotel (pip)"; python3 -m pip install --quiet rotel; }
  ROTEL="$(python3 -c 'import rotel,os;print(os.path.dirname(rotel.__file__))')/rotel-agent"
  [ -x "$ROTEL" ] || { echo "rotel-agent not found at $ROTEL" >&2; exit 1; }
  ;;
esac

TMP=$(mktemp -d /tmp/iskra-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()    # long-lived processes this script started
CUR_PID="" # the target being measured
cleanup() {
  for p in $CUR_PID "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in $CUR_PID "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  if [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nginx and haproxy run unprivileged: as nobody when this script runs as root.
UNPRIV=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  UNPRIV=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi

mapfile -t PORTS < <("$LOAD" ports --count 10)
ECHO_PORT=${PORTS[0]}; OTLP_PORT=${PORTS[1]}; OTLP_HTTP_PORT=${PORTS[2]}
SC_PORT=${PORTS[3]}; SC_ADMIN=${PORTS[4]}; NGINX_PORT=${PORTS[5]}; HAPROXY_PORT=${PORTS[6]}
RELAY_PORT=${PORTS[7]}; DIRECT_IDLE_PORT=${PORTS[8]}

# --- long-lived: the echo upstream and the OTLP receiver ---
"$BIN/bench-echo" --listen "127.0.0.1:$ECHO_PORT" >"$TMP/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
if [ -n "$ROTEL" ]; then
  "$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:$OTLP_PORT" --otlp-http-endpoint "127.0.0.1:$OTLP_HTTP_PORT" \
    --exporter blackhole --pid-file "$TMP/rotel.pid" >"$TMP/rotel.log" 2>&1 &
  ROTEL_PID=$!; PIDS+=("$ROTEL_PID")
fi
"$LOAD" wait --url "ws://127.0.0.1:$ECHO_PORT/bench" >/dev/null

# --- peer configs ---
mkdir -p "$TMP/nginx" "$TMP/haproxy"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://127.0.0.1:$ECHO_PORT;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
EOF
HA_MAXCONN=12000
[ "$NOFILE" -lt 30000 ] && HA_MAXCONN=$(( (NOFILE - 200) / 2 ))
cat >"$TMP/haproxy/haproxy.cfg" <<EOF
global
  maxconn $HA_MAXCONN
defaults
  mode http
  timeout connect 5s
  timeout client 3600s
  timeout server 3600s
  timeout tunnel 3600s
frontend ws
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend echo
backend echo
  server echo1 127.0.0.1:$ECHO_PORT
EOF
[ ${#UNPRIV[@]} -gt 0 ] && chown -R 65534:65534 "$TMP/nginx" "$TMP/haproxy"

# --- targets ---
TPID=""; TURL=""
EXTRA_ENV=() # added to the sidecar's environment (the allocation counter)
start_target() {
  local t=$1 n=$2
  case "$t" in
    direct)
      if [ "$fig" = idle ]; then
        # A fresh echo server, so that its memory per connection is measured from a clean start.
        "$BIN/bench-echo" --listen "127.0.0.1:$DIRECT_IDLE_PORT" >"$TMP/echo-idle-$n.out" 2>&1 &
        TPID=$!; TURL="ws://127.0.0.1:$DIRECT_IDLE_PORT/bench"
      else
        TPID=$ECHO_PID; TURL="ws://127.0.0.1:$ECHO_PORT/bench"; return
      fi ;;
    sidecar_on|sidecar_off)
      local envs=("${EXTRA_ENV[@]}")
      if [ "$t" = sidecar_on ]; then
        envs+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_METRIC_EXPORT_INTERVAL=2000)
      else
        envs+=(OTEL_SDK_DISABLED=true)
      fi
      env "${envs[@]}" "$SIDECAR" run --listen "127.0.0.1:$SC_PORT" --admin "127.0.0.1:$SC_ADMIN" \
        --upstream "ws://127.0.0.1:$ECHO_PORT" >"$TMP/$t-$n.out" 2>"$TMP/$t-$n.err" &
      TPID=$!; TURL="ws://127.0.0.1:$SC_PORT/bench" ;;
    nginx)
      "${UNPRIV[@]}" nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" \
        >"$TMP/nginx-$n.out" 2>&1 &
      TPID=$!; TURL="ws://127.0.0.1:$NGINX_PORT/bench" ;;
    haproxy)
      "${UNPRIV[@]}" haproxy -db -f "$TMP/haproxy/haproxy.cfg" >"$TMP/haproxy-$n.out" 2>&1 &
      TPID=$!; TURL="ws://127.0.0.1:$HAPROXY_PORT/bench" ;;
    relay)
      "$BIN/bench-relay" --listen "127.0.0.1:$RELAY_PORT" --upstream "127.0.0.1:$ECHO_PORT" \
        >"$TMP/relay-$n.out" 2>&1 &
      TPID=$!; TURL="ws://127.0.0.1:$RELAY_PORT/bench" ;;
    *) echo "unknown target $t" >&2; exit 64 ;;
  esac
  CUR_PID=$TPID
  if ! "$LOAD" wait --url "$TURL" --timeout 15 >/dev/null; then
    echo "target $t did not come up; its output:" >&2
    tail -n 20 "$TMP/$t-$n".* "$TMP/nginx/error.log" 2>/dev/null >&2 || true
    exit 1
  fi
  sleep 0.3 # let start-up work (first export, readiness probe) settle before measuring
}
stop_target() {
  local t=$1
  [ "$t" = direct ] && [ "$fig" != idle ] && return
  kill "$TPID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$TPID" 2>/dev/null || true
  wait "$TPID" 2>/dev/null || true
  CUR_PID=""
}

# Share of CPU time used on the machine over a short window (other work skews every figure; reported per run).
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep "$BUSY_WINDOW"; b=($(head -1 /proc/stat))
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  [ "$total" -gt 0 ] && echo $(( 100 * (total - idle) / total )) || echo 0
}

# CPU seconds (user + system) a process and its children (nginx's workers) have used so far; empty
# when it is gone.
CLK_TCK=$(getconf CLK_TCK)
cpu_s() {
  [ -r "/proc/$1/stat" ] || return 0
  # Every /proc/PID/stat in one pass. After the command name (which may hold spaces): ppid is the 2nd
  # field, utime and stime the 12th and 13th.
  # (cat, not awk's own file list: a process may end between the glob and the read.)
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pid="$1" -v hz="$CLK_TCK" '
    { own = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      if (own == pid || f[2] == pid) t += f[12] + f[13] }
    END { printf "%.3f", t / hz }'
}

sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# Allocations per churn cycle of a sidecar target: started afresh with the counter preloaded; counts
# read over an idle second (the baseline: exports, timers), then over a short churn run and a settle
# (the telemetry consumer finishes the sessions' events); the idle rate times the churn window is
# subtracted. Prints the result object.
ALLOC_IDLE=1; [ "$SMOKE" = 1 ] && ALLOC_IDLE=0.3
counts() { # "allocs frees bytes" from the counter's file (rewritten every 10 ms)
  local l=""; for _ in $(seq 1 100); do l=$(cat "$1" 2>/dev/null || true); [ -n "$l" ] && break; sleep 0.02; done
  echo $l
}
alloc_phase() {
  local t=$1 n=$2 f="$TMP/allocs-$2.txt"
  EXTRA_ENV=(LD_PRELOAD="$ALLOC_SO" ALLOCCOUNT_FILE="$f")
  start_target "$t" "$n" >&2
  EXTRA_ENV=()
  local c0 c1 c2 w0 w1 w2 out="$TMP/allocs-$n.json"
  c0=$(counts "$f"); w0=$(date +%s.%N)
  sleep "$ALLOC_IDLE"
  c1=$(counts "$f"); w1=$(date +%s.%N)
  "$LOAD" churn --url "$TURL" --workers $CHURN_WORKERS --size 64 --warmup 0 --duration "$ALLOC_DUR" \
    >"$out" 2>>"$TMP/load.err" || true
  sleep 0.3; c2=$(counts "$f"); w2=$(date +%s.%N)
  stop_target "$t"
  python3 - "$out" "$c0" "$c1" "$c2" "$w0" "$w1" "$w2" <<'PY'
import json, sys
out = sys.argv[1]
c0, c1, c2 = [list(map(int, a.split())) for a in sys.argv[2:5]]
w0, w1, w2 = map(float, sys.argv[5:8])
try:
    churn = json.load(open(out))
except (OSError, ValueError):
    churn = {}
cycles = churn.get("total_cycles") or 0
idle_s, run_s = w1 - w0, w2 - w1
res = {"mode": "churn_allocs", "cycles": cycles, "idle_s": round(idle_s, 3), "run_s": round(run_s, 3)}
if cycles and idle_s > 0 and len(c0) == len(c1) == len(c2) == 3:
    for i, name in enumerate(["allocs", "frees", "bytes"]):
        idle_rate = (c1[i] - c0[i]) / idle_s
        res[f"idle_{name}_per_s"] = round(idle_rate, 1)
        res[f"{name}_per_cycle"] = round(((c2[i] - c1[i]) - idle_rate * run_s) / cycles, 1)
else:
    res["error"] = "no churn cycle, or no counts from the allocation counter"
print(json.dumps(res))
PY
}

run_figure() {
  local fig=$1 url=$2 pid=$3
  case "$fig" in
    tp64) "$LOAD" throughput --url "$url" --conns $TP_CONNS --window $TP_WINDOW --size 64 --warmup $WARM --duration $DUR ;;
    tp4k) "$LOAD" throughput --url "$url" --conns $TP_CONNS --window $TP_WINDOW --size 4096 --warmup $WARM --duration $DUR ;;
    latency) "$LOAD" latency --url "$url" --rate $LAT_RATE --conns $LAT_CONNS --size 64 --warmup $WARM --duration $DUR ;;
    churn) "$LOAD" churn --url "$url" --workers $CHURN_WORKERS --size 64 --warmup $WARM --duration $DUR ;;
    idle) "$LOAD" idle --url "$url" --pid "$pid" --conns $IDLE_CONNS --concurrency 32 --settle $SETTLE ;;
  esac
}

mkdir -p "$OUT"
RAW="$TMP/raw.jsonl"
: >"$RAW"
T0=$(date +%s)
n=0
for rep in $(seq 1 "$REPS"); do
  for fig in $FIGURES; do
    for t in $TARGETS; do
      n=$((n + 1))
      busy=$(busy_pct)
      if [ "$WAIT_QUIET" = 1 ]; then
        for _ in $(seq 1 60); do [ "$busy" -le 15 ] && break; sleep 1; busy=$(busy_pct); done
      fi
      start_target "$t" "$n"
      # CPU used by the target (and, for sidecar_on, by the OTLP receiver) over the measured window:
      # sampled after the load generator's warm-up and again when it has finished.
      out="$TMP/res-$n.json"
      run_figure "$fig" "$TURL" "$TPID" >"$out" 2>>"$TMP/load.err" &
      LOADPID=$!
      cpu="null"
      if [ "$fig" != idle ] && [ "$t" != direct ]; then
        sleep "$WARM"
        # The receiver only matters (and is only read) for the sidecar that exports to it.
        rpid=0; [ "$t" = sidecar_on ] && rpid=${ROTEL_PID:-0}
        p0=$(cpu_s "$TPID"); r0=$(cpu_s "$rpid"); w0=$(date +%s.%N)
        wait "$LOADPID" || true
        p1=$(cpu_s "$TPID"); r1=$(cpu_s "$rpid"); w1=$(date +%s.%N)
        recv=null
        [ -n "$r0" ] && [ -n "$r1" ] && recv=$(sub "$r1" "$r0")
        if [ -n "$p0" ] && [ -n "$p1" ]; then
          cpu=$(printf '{"target_s":%s,"receiver_s":%s,"wall_s":%s}' "$(sub "$p1" "$p0")" "$recv" "$(sub "$w1" "$w0")")
        fi
      else
        wait "$LOADPID" || true
      fi
      res=$(cat "$out")
      [ -n "$res" ] || res='{"error":"load generator failed"}'
      stop_target "$t"
      printf '{"rep":%d,"figure":"%s","target":"%s","background_busy_pct":%d,"cpu":%s,"result":%s}\n' \
        "$rep" "$fig" "$t" "$busy" "$cpu" "$res" >>"$RAW"
      log "rep $rep $fig $t: $res"
      case "$fig:$t" in churn:sidecar_*)
        res=$(alloc_phase "$t" "$n-allocs")
        printf '{"rep":%d,"figure":"churn_allocs","target":"%s","background_busy_pct":%d,"cpu":null,"result":%s}\n' \
          "$rep" "$t" "$busy" "$res" >>"$RAW"
        log "rep $rep churn allocations $t: $res" ;;
      esac
    done
  done
done
log "measured in $(( $(date +%s) - T0 )) s"

META=$(printf '{"reps":%d,"smoke":%s,"cores":%d,"nginx":"%s","haproxy":"%s","rotel":"%s","params":{"tp_conns":%d,"tp_window":%d,"warmup_s":%s,"duration_s":%s,"latency_rate":%s,"latency_conns":%d,"churn_workers":%d,"idle_conns":%d}}' \
  "$REPS" "$([ $SMOKE = 1 ] && echo true || echo false)" "$(nproc)" \
  "$(nginx -v 2>&1 | sed 's/.*nginx\///')" "$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')" \
  "$([ -n "$ROTEL" ] && "$ROTEL" --version 2>/dev/null | awk '{print $2}')" \
  $TP_CONNS $TP_WINDOW $WARM $DUR $LAT_RATE $LAT_CONNS $CHURN_WORKERS $IDLE_CONNS)
python3 "$HERE/report.py" "$RAW" "$OUT/latest.json" "$META"
