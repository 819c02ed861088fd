#!/usr/bin/env python3
"""Turns bench/run.sh's raw results into medians, ratios to direct and goal checks.

usage: report.py RAW.jsonl OUT.json META_JSON

Prints a Markdown table (median over repetitions; in brackets the ratio to a direct connection) and
writes OUT.json. The goal lines are information, never an exit status: this is a benchmark, not a test.
"""
import json
import statistics
import sys

TARGETS = ["direct", "sidecar_on", "sidecar_off", "nginx", "haproxy", "relay"]
LABELS = {
    "direct": "direct",
    "sidecar_on": "sidecar (telemetry on)",
    "sidecar_off": "sidecar (telemetry off)",
    "nginx": "nginx",
    "haproxy": "haproxy",
    "relay": "byte relay",
}
PEERS = ["nginx", "haproxy", "relay"]
# (key, figure, field in the result, unit, higher is better, scale)
METRICS = [
    ("tp64_msgs_per_s", "tp64", "msgs_per_s", "msg/s", True, 1),
    ("tp4k_msgs_per_s", "tp4k", "msgs_per_s", "msg/s", True, 1),
    ("tp4k_mib_per_s", "tp4k", "mib_per_s", "MiB/s", True, 1),
    ("latency_p50_us", "latency", "p50_us", "µs", False, 1),
    ("latency_p99_us", "latency", "p99_us", "µs", False, 1),
    ("churn_per_s", "churn", "handshakes_per_s", "cycles/s", True, 1),
    ("churn_connect_p50_us", "churn", "connect_p50_us", "µs", False, 1),
    ("churn_connect_p99_us", "churn", "connect_p99_us", "µs", False, 1),
    ("churn_allocs_per_cycle", "churn_allocs", "allocs_per_cycle", "allocs", False, 1),
    ("churn_alloc_bytes_per_cycle", "churn_allocs", "bytes_per_cycle", "bytes", False, 1),
    ("idle_bytes_per_conn", "idle", "bytes_per_conn", "KB", False, 1 / 1000),
    ("idle_rss_mb", "idle", "rss_before_kb", "MB", False, 1.024 / 1000),
]
TITLES = {
    "tp64_msgs_per_s": "throughput 64 B",
    "tp4k_msgs_per_s": "throughput 4 KiB",
    "tp4k_mib_per_s": "throughput 4 KiB (payload)",
    "latency_p50_us": "round trip p50 @ rate",
    "latency_p99_us": "round trip p99 @ rate",
    "churn_per_s": "churn (connect, 1 msg, close)",
    "churn_connect_p50_us": "churn: connect + upgrade p50",
    "churn_connect_p99_us": "churn: connect + upgrade p99",
    "churn_allocs_per_cycle": "churn: allocations per cycle (sidecar)",
    "churn_alloc_bytes_per_cycle": "churn: bytes allocated per cycle (sidecar)",
    "idle_bytes_per_conn": "memory per idle connection",
    "idle_rss_mb": "RSS before connections",
}
# CPU per operation: (key, figure, rate field, what one operation is).
CPU_METRICS = [
    ("tp64_cpu_us", "tp64", "msgs_per_s", "message, 64 B"),
    ("tp4k_cpu_us", "tp4k", "msgs_per_s", "message, 4 KiB"),
    ("churn_cpu_us", "churn", "handshakes_per_s", "churn cycle"),
]
# The figures that the sidecar must lead on.
GOAL_FIGURES = ["tp64_msgs_per_s", "tp4k_msgs_per_s", "latency_p50_us", "churn_per_s", "idle_bytes_per_conn"]


def main():
    raw_path, out_path, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    rows = [json.loads(l) for l in open(raw_path) if l.strip()]
    targets = [t for t in TARGETS if any(r["target"] == t for r in rows)]
    figures = {}
    errors = []
    for r in rows:
        if "error" in r["result"]:
            errors.append(r)
    for key, fig, field, unit, higher, scale in METRICS:
        per = {}
        for t in targets:
            vals = [
                r["result"][field] * scale
                for r in rows
                if r["figure"] == fig and r["target"] == t and field in r["result"] and "error" not in r["result"]
            ]
            if vals:
                per[t] = {"median": statistics.median(vals), "values": vals}
        if not per:
            continue
        d = per.get("direct", {}).get("median")
        for t, v in per.items():
            v["ratio_to_direct"] = (v["median"] / d) if d else None
        figures[key] = {"unit": unit, "higher_is_better": higher, "targets": per}

    # CPU per operation of the target process (and of the OTLP receiver, for sidecar_on), in µs.
    cpu = {}
    for key, fig, field, _ in CPU_METRICS:
        per = {}
        for t in targets:
            own, recv = [], []
            for r in rows:
                c, res = r.get("cpu"), r["result"]
                if r["figure"] != fig or r["target"] != t or not c or "error" in res or not res.get(field):
                    continue
                ops = res[field] * c["wall_s"]
                own.append(c["target_s"] / ops * 1e6)
                if c.get("receiver_s") is not None:
                    recv.append(c["receiver_s"] / ops * 1e6)
            if own:
                per[t] = {"target_us": statistics.median(own),
                          "receiver_us": statistics.median(recv) if recv else None}
        if per:
            cpu[key] = per

    # Pongs after the idle hold.
    pongs = {}
    for t in targets:
        got = [(r["result"].get("pongs", 0), r["result"].get("conns", 0)) for r in rows if r["figure"] == "idle" and r["target"] == t]
        if got:
            pongs[t] = {"min_pongs": min(g for g, _ in got), "conns": max(n for _, n in got)}

    def med(key, t):
        return figures.get(key, {}).get("targets", {}).get(t, {}).get("median")

    goal = {}
    for key in GOAL_FIGURES + ["latency_p99_us"]:
        s = med(key, "sidecar_on")
        peers = [(p, med(key, p)) for p in PEERS if med(key, p) is not None]
        if s is None or not peers:
            continue
        higher = figures[key]["higher_is_better"]
        best = max(peers, key=lambda x: x[1]) if higher else min(peers, key=lambda x: x[1])
        ahead = s > best[1] if higher else s < best[1]
        goal[key] = {"sidecar_on": s, "best_peer": best[0], "best_peer_value": best[1], "ahead": ahead,
                     "in_goal": key in GOAL_FIGURES}
    tel = {}
    for key in ["tp64_msgs_per_s", "tp4k_msgs_per_s"]:
        on, off = med(key, "sidecar_on"), med(key, "sidecar_off")
        if on and off:
            tel[key] = {"cost": 1 - on / off, "within_5_percent": (1 - on / off) <= 0.05}
    mem = med("idle_bytes_per_conn", "sidecar_on")
    rss = med("idle_rss_mb", "sidecar_on")
    checks = {
        "ahead_of_best_peer": goal,
        "telemetry_cost": tel,
        "idle_bytes_per_conn_le_4KB": None if mem is None else mem * 1000 <= 4000,
        "idle_rss_le_15MB": None if rss is None else rss <= 15,
        "all_idle_connections_answered_ping": {t: p["min_pongs"] == p["conns"] for t, p in pongs.items()},
    }
    busy_all = [r.get("background_busy_pct") for r in rows if r.get("background_busy_pct") is not None]
    meta = dict(meta, background_busy_pct={"median": statistics.median(busy_all), "max": max(busy_all)} if busy_all else None)
    out = {"meta": meta, "figures": figures, "cpu_us_per_op": cpu, "idle_pongs": pongs, "goal": checks,
           "errors": errors, "raw": rows}
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)

    # Table.
    def fmt(v):
        if v >= 10000:
            return f"{v:,.0f}"
        if v >= 100:
            return f"{v:.0f}"
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}"

    reps = meta.get("reps")
    p = meta.get("params", {})
    print()
    print(f"Medians of {reps} repetition(s); [ratio to direct]. {meta.get('cores')} cores; "
          f"throughput {p.get('tp_conns')} conns x window {p.get('tp_window')}; latency open loop "
          f"{p.get('latency_rate')} msg/s; churn {p.get('churn_workers')} workers; idle {p.get('idle_conns')} conns.")
    print()
    head = "| figure | unit | " + " | ".join(LABELS[t] for t in targets) + " |"
    print(head)
    print("|" + "---|" * (len(targets) + 2))
    for key, fig, field, unit, higher, scale in METRICS:
        if key not in figures:
            continue
        cells = []
        for t in targets:
            v = figures[key]["targets"].get(t)
            if v is None:
                cells.append("–")
                continue
            r = v["ratio_to_direct"]
            rs = "" if (r is None or t == "direct") else f" [{r:.2f}]"
            cells.append(fmt(v["median"]) + rs)
        title = TITLES[key] + (" ↑" if higher else " ↓")
        print(f"| {title} | {unit} | " + " | ".join(cells) + " |")
    if pongs:
        print("| idle conns answering a ping | of N | " + " | ".join(
            f"{pongs[t]['min_pongs']}/{pongs[t]['conns']}" if t in pongs else "–" for t in targets) + " |")
    if cpu:
        shown = [t for t in targets if t != "direct"]
        print()
        print("| CPU per operation (µs, the proxy's process; + the OTLP receiver's) | "
              + " | ".join(LABELS[t] for t in shown) + " |")
        print("|" + "---|" * (len(shown) + 1))
        for key, _, _, what in CPU_METRICS:
            if key not in cpu:
                continue
            cells = []
            for t in shown:
                v = cpu[key].get(t)
                if v is None:
                    cells.append("–")
                    continue
                s = fmt(v["target_us"])
                if v["receiver_us"] is not None:
                    s += f" + {fmt(v['receiver_us'])}"
                cells.append(s)
            print(f"| per {what} | " + " | ".join(cells) + " |")
    print()
    print("Goal (sidecar with telemetry on):")
    for key, g in goal.items():
        tag = "" if g["in_goal"] else " (not in the goal list)"
        print(f"  {TITLES[key]}: {fmt(g['sidecar_on'])} vs best peer {g['best_peer']} {fmt(g['best_peer_value'])}"
              f" -> {'ahead' if g['ahead'] else 'NOT ahead'}{tag}")
    for key, tc in tel.items():
        print(f"  telemetry cost, {TITLES[key]}: {tc['cost'] * 100:+.1f}% "
              f"({'within' if tc['within_5_percent'] else 'over'} 5%)")
    if mem is not None:
        print(f"  memory per idle connection: {mem * 1000:,.0f} B ({'≤' if mem * 1000 <= 4000 else '>'} 4 KB)")
    if rss is not None:
        print(f"  idle sidecar RSS: {rss:.1f} MB ({'≤' if rss <= 15 else '>'} 15 MB)")
    busy = [r.get("background_busy_pct") for r in rows if r.get("background_busy_pct") is not None]
    if busy:
        noisy = sum(1 for b in busy if b > 15)
        print(f"  machine CPU use just before each run: median {statistics.median(busy):.0f}%, max {max(busy)}%"
              + (f" ({noisy} run(s) over 15%: other work was running)" if noisy else ""))
    if errors:
        print(f"  {len(errors)} run(s) reported an error (see errors in {out_path})")
    print()
    print(f"JSON: {out_path}")
    # A run that failed (a target refused connections, a figure measured nothing) makes the whole
    # benchmark fail: its table would be missing a cell without saying so.
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
