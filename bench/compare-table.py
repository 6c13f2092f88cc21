#!/usr/bin/env python3
"""Prints the side-by-side table of bench/compare-etcd.sh from its results directory.

Usage: compare-table.py RESULTS_DIR WORKLOAD[,WORKLOAD...]

RESULTS_DIR holds, per workload, system (raftkv, etcd) and round, the load generator's
JSON report (`W.S.R.json`), the script's server-side figures (`W.S.R.meta.json`) and a
process snapshot taken mid-run (`W.S.R.ps`), plus `machine.txt`. With several rounds,
every figure is the median over the rounds. The last lines are one per workload:
`ratio WORKLOAD throughput=X p50=Y p99=Z`, each figure raftkv over etcd ("n/a" when etcd
was not measured).
"""

import glob
import json
import os
import statistics
import sys

SYSTEMS = ("raftkv", "etcd")


def load_runs(results, workload, system):
    runs = []
    for path in sorted(glob.glob(os.path.join(results, f"{workload}.{system}.*.json"))):
        if path.endswith(".meta.json"):
            continue
        with open(path) as f:
            report = json.load(f)
        meta_path = path[: -len(".json")] + ".meta.json"
        meta = {}
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
        runs.append(figures(report, meta))
    return runs


def figures(report, meta):
    lat = report.get("latency") or {}
    total_ops = (report["prefill_ops"] + report["warmup_ops"] + report["ops"]
                 + report["errors"])
    cpu = meta.get("server_cpu_secs")
    wall = meta.get("wall_secs")
    client_cpu = report.get("client_cpu_secs")
    persist = report.get("leader_persist") or {}
    return {
        "ops_s": report["throughput_ops_per_sec"],
        "p50": lat.get("p50_ms"),
        "p90": lat.get("p90_ms"),
        "p99": lat.get("p99_ms"),
        "p999": lat.get("p999_ms"),
        "max": lat.get("max_ms"),
        "errors": report["errors"],
        "srv_us_op": cpu * 1e6 / total_ops if cpu is not None and total_ops else None,
        "srv_cores": cpu / wall if cpu is not None and wall else None,
        "cli_us_op": client_cpu * 1e6 / report["ops"] if client_cpu and report["ops"] else None,
        "load1": meta.get("load1_after"),
        "fsync_entry": persist.get("fsyncs_per_committed_entry"),
        "backend_entry": persist.get("backend_commits_per_committed_entry"),
    }


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=2):
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


COLUMNS = [
    ("ops/s", "ops_s", 0), ("p50 ms", "p50", 3), ("p90 ms", "p90", 3), ("p99 ms", "p99", 3),
    ("p99.9 ms", "p999", 3), ("max ms", "max", 3), ("errors", "errors", 0),
    ("srv us/op", "srv_us_op", 0), ("srv cores", "srv_cores", 2),
    ("client us/op", "cli_us_op", 0), ("load1", "load1", 1),
]


def print_table(rows):
    header = ["workload", "system"] + [c[0] for c in COLUMNS]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(cell).rjust(w) if i >= 2 else str(cell).ljust(w)
                        for i, (cell, w) in enumerate(zip(r, widths))))


def main():
    results, workloads = sys.argv[1], sys.argv[2].split(",")
    machine_path = os.path.join(results, "machine.txt")
    if os.path.exists(machine_path):
        with open(machine_path) as f:
            print(f.read().rstrip())
    medians = {}
    rows = []
    for w in workloads:
        for s in SYSTEMS:
            runs = load_runs(results, w, s)
            if not runs:
                continue
            m = {key: median(runs, key) for _, key, _ in COLUMNS + [("", "fsync_entry", 0),
                                                                     ("", "backend_entry", 0)]}
            medians[(w, s)] = m
            rows.append([w, f"{s} x{len(runs)}"] + [fmt(m[k], d) for _, k, d in COLUMNS])
        if (w, "raftkv") in medians and (w, "etcd") in medians:
            a, b = medians[(w, "raftkv")], medians[(w, "etcd")]
            rows.append([w, "raftkv/etcd"] + [
                fmt(ratio(a[k], b[k]), 2) if k not in ("errors", "load1") else ""
                for _, k, _ in COLUMNS])
    print()
    print_table(rows)
    print("(ratios: raftkv over etcd; throughput > 1 and latency < 1 favour raftkv. srv = the 3 "
          "server processes, CPU per operation incl. prefill and warm-up)")
    for w in workloads:
        if not w.startswith("put-c64"):
            continue
        a, b = medians.get((w, "raftkv"), {}), medians.get((w, "etcd"), {})
        print(f"fsyncs per committed entry on the leader ({w}, prefill and warm-up included): "
              f"raftkv {fmt(a.get('fsync_entry'), 3)}; etcd WAL {fmt(b.get('fsync_entry'), 3)} "
              f"+ backend commits {fmt(b.get('backend_entry'), 4)}")
    print_mid_run_processes(results)
    if not any(s == "etcd" for (_, s) in medians):
        print("etcd was not measured: raftkv alone, no ratios")
    for w in workloads:
        a, b = medians.get((w, "raftkv")), medians.get((w, "etcd"))
        cells = []
        for name, key in (("throughput", "ops_s"), ("p50", "p50"), ("p99", "p99")):
            r = ratio(a[key], b[key]) if a and b else None
            cells.append(f"{name}={fmt(r, 3) if r is not None else 'n/a'}")
        print(f"ratio {w} " + " ".join(cells))


def print_mid_run_processes(results):
    snapshots = sorted(glob.glob(os.path.join(results, "*.ps")))
    if not snapshots:
        return
    print("busiest processes mid-measurement (name(%CPU of one core over 1 s)):")
    for path in snapshots:
        with open(path) as f:
            top = " ".join(line.strip() for line in f.readlines()[:6])
        print(f"  {os.path.basename(path)[:-3]}: {top}")


if __name__ == "__main__":
    main()
