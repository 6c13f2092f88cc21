#!/usr/bin/env bash
# A data set larger than a toy (issue 11): for each key count, a fresh 3-node cluster
# (default config, fsync on) is loaded by 64 clients writing every key once, then runs
# --secs of 64-client puts over those keys. Reports, per key count: leader changes (term
# increments) during the load and during the run, put throughput and latency tails, the
# snapshots taken, and the nodes' RSS (after the load, and the peak over load + run,
# sampled every 0.2 s). The last line compares the large data set with the small one.
#
#   bench/large-dataset.sh [--keys 2000000] [--small-keys 10000] [--secs 60]
#                          [--value-size 256] [--base-dir /tmp] [--keep]
#
# --keep leaves the work directory (node logs, data, RSS samples) for a post-mortem.
#
# Builds kvserver and kvctl (release; CARGO_TARGET_DIR is honoured). Needs python3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
KEYS=2000000 SMALL_KEYS=10000 SECS=60 VALUE_SIZE=256 BASE_DIR=/tmp KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keys) KEYS="${2:?}"; shift ;;
    --small-keys) SMALL_KEYS="${2:?}"; shift ;;
    --secs) SECS="${2:?}"; shift ;;
    --value-size) VALUE_SIZE="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    --keep) KEEP=1 ;;
    *) echo "large-dataset: unknown argument '$1'" >&2; exit 1 ;;
  esac
  shift
done
command -v python3 > /dev/null || { echo "large-dataset: python3 is needed" >&2; exit 1; }
(cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --locked -q \
  -p kvserver --bin kvserver -p clerk --bin kvctl)
KVSERVER="$TARGET_DIR/release/kvserver" KVCTL="$TARGET_DIR/release/kvctl"
PORT_BASE="${RAFTKV_PORT_BASE:-48101}"
WORK="$(mktemp -d "$BASE_DIR/raftkv-large.XXXXXX")"
declare -A PID
SAMPLER=""
stop_cluster() {
  [[ -n "$SAMPLER" ]] && { kill "$SAMPLER" 2> /dev/null || true; wait "$SAMPLER" 2> /dev/null || true; }
  SAMPLER=""
  for p in "${PID[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${PID[@]}"; do wait "$p" 2> /dev/null || true; done
  PID=()
}
trap 'stop_cluster; if [[ $KEEP == 1 ]]; then echo "large-dataset: kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT
EP="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
kvctl() { "$KVCTL" --endpoints "$EP" "$@"; }

# The highest term any node reports.
max_term() {
  (kvctl --timeout-ms 2000 status --json || true) | python3 -c '
import json, sys
print(max((json.loads(l).get("term") or 0) for l in sys.stdin if l.strip()))'
}

# Writes every 0.2 s "<unix time> <pid> <rss kB>" for each node to $1.
sample_rss() {
  local out="$1" now rss
  while true; do
    now="$(date +%s.%N)"
    for p in "${PID[@]}"; do
      rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2> /dev/null || echo 0)"
      echo "$now $p ${rss:-0}"
    done >> "$out"
    sleep 0.2
  done
}

# scenario NAME KEYS: one fresh cluster, load, run; prints one JSON line.
scenario() {
  local name="$1" keys="$2" dir="$WORK/$1"
  mkdir -p "$dir"
  {
    echo "cluster_id = \"large-$name\""
    echo "data_dir = \"$dir/data\""
    for i in 1 2 3; do
      printf '[[nodes]]\nid = %d\naddr = "127.0.0.1:%d"\n' "$i" $((PORT_BASE + i - 1))
    done
  } > "$dir/cluster.toml"
  for i in 1 2 3; do
    RUST_LOG=info "$KVSERVER" --config "$dir/cluster.toml" --id "$i" --bootstrap > "$dir/kv$i.log" 2>&1 &
    PID[$i]=$!
  done
  until kvctl --timeout-ms 500 status > /dev/null 2>&1; do sleep 0.1; done
  # Every node must be up: two of three make a quorum and would hide a third that failed
  # to start (a port still held by an earlier run), skewing the comparison.
  sleep 0.5
  for i in 1 2 3; do
    kill -0 "${PID[$i]}" 2> /dev/null \
      || { echo "large-dataset: node $i did not start:" >&2; tail -3 "$dir/kv$i.log" >&2; exit 1; }
  done
  sample_rss "$dir/rss.txt" &
  SAMPLER=$!
  local term0 term1 term2 t0 t1
  term0="$(max_term)"
  echo "large-dataset: $name: loading $keys keys" >&2
  t0="$(date +%s.%N)"
  kvctl bench --clients 64 --keys "$keys" --value-size "$VALUE_SIZE" --prefill --ops 1 \
    --warmup-secs 0 --quiet --json > "$dir/load.json" \
    || { cat "$dir/load.json" >&2; tail -3 "$dir"/kv*.log >&2; exit 1; }
  t1="$(date +%s.%N)"
  term1="$(max_term)"
  local rss_loaded
  rss_loaded="$(for p in "${PID[@]}"; do awk '/^VmRSS:/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1)"
  echo "large-dataset: $name: ${SECS}s of put-c64" >&2
  kvctl bench --clients 64 --keys "$keys" --value-size "$VALUE_SIZE" --duration-secs "$SECS" \
    --warmup-secs 0 --quiet --json > "$dir/run.json" \
    || { cat "$dir/run.json" >&2; tail -3 "$dir"/kv*.log >&2; exit 1; }
  term2="$(max_term)"
  local snapshots
  snapshots="$(cat "$dir"/kv*.log | grep -c 'snapshotting the state machine' || true)"
  local data_bytes
  data_bytes="$(du -sb "$dir/data/node-1" | cut -f1)"
  stop_cluster
  python3 - "$name" "$keys" "$t0" "$t1" "$term0" "$term1" "$term2" "$rss_loaded" \
    "$dir/rss.txt" "$dir/run.json" "$snapshots" "$data_bytes" <<'PY'
import json, sys
name, keys, t0, t1, term0, term1, term2, rss_loaded, rss_file, run_file, snaps, data = sys.argv[1:]
run = json.load(open(run_file))
lat = run.get("latency") or {}
peak = max((int(l.split()[2]) for l in open(rss_file) if l.strip()), default=0)
print(json.dumps({
    "name": name, "keys": int(keys), "load_secs": round(float(t1) - float(t0), 1),
    "leader_changes_load": int(term1) - int(term0), "leader_changes_run": int(term2) - int(term1),
    "ops_per_sec": round(run["throughput_ops_per_sec"]), "errors": run.get("errors"),
    "p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"), "p999_ms": lat.get("p999_ms"),
    "max_ms": lat.get("max_ms"), "snapshots": int(snaps),
    "rss_after_load_mb": round(int(rss_loaded) / 1024), "rss_peak_mb": round(peak / 1024),
    "node1_data_mb": round(int(data) / 1e6),
}))
PY
}

small="$(scenario small "$SMALL_KEYS")"
echo "$small"
large="$(scenario large "$KEYS")"
echo "$large"
python3 - "$small" "$large" <<'PY'
import json, sys
small, large = (json.loads(a) for a in sys.argv[1:])
print(f"large-dataset: put-c64 on {large['keys']} keys / on {small['keys']} keys = "
      f"{large['ops_per_sec'] / max(small['ops_per_sec'], 1):.2f}; leader changes "
      f"{large['leader_changes_load']} (load) + {large['leader_changes_run']} (run); max put "
      f"{large['max_ms']:.0f} ms; peak RSS / RSS after load {large['rss_peak_mb'] / max(large['rss_after_load_mb'], 1):.2f}")
PY
