#!/usr/bin/env bash
# A/B of two raftkv builds, interleaved, on a fresh 3-node cluster of kvserver processes
# (127.0.0.1, fsync on, data under --base-dir) per run:
#
#   bench/ab.sh BIN_DIR_A BIN_DIR_B [--clients 64] [--secs 10] [--rounds 2] [--base-dir /tmp]
#               [--read-ratio 0] [--read-mode read-index|lease]
#
# BIN_DIR_x holds `kvserver` and `kvctl` (e.g. target/release of two checkouts). Each run
# is `kvctl bench --clients N --duration-secs S --warmup-secs 1` against builds A and B in
# turn; it prints throughput, p50 and p99, and the context switches per operation of the
# three server processes (voluntary + involuntary, all threads, read from /proc), which is
# where a change in wake-ups shows. Compare within one invocation only.
set -euo pipefail

die() { echo "ab: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: bench/ab.sh BIN_DIR_A BIN_DIR_B [--clients N] [--secs S] [--rounds R] [--base-dir D] [--read-ratio F] [--read-mode M]"
A=$1 B=$2; shift 2
CLIENTS=64 SECS=10 ROUNDS=2 BASE_DIR=/tmp READ_RATIO=0 READ_MODE=read-index
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) CLIENTS="${2:?}"; shift ;;
    --secs) SECS="${2:?}"; shift ;;
    --rounds) ROUNDS="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    --read-ratio) READ_RATIO="${2:?}"; shift ;;
    --read-mode) READ_MODE="${2:?}"; shift ;;
    *) die "unknown argument '$1'" ;;
  esac
  shift
done
for d in "$A" "$B"; do
  [[ -x $d/kvserver && -x $d/kvctl ]] || die "$d has no kvserver and kvctl"
done
PORT_BASE="${RAFTKV_PORT_BASE:-47001}"
WORK="$(mktemp -d "$BASE_DIR/raftkv-ab.XXXXXX")"
PIDS=()
cleanup() {
  [[ ${#PIDS[@]} -gt 0 ]] && { kill "${PIDS[@]}" 2> /dev/null || true; wait "${PIDS[@]}" 2> /dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

switches() { # total context switches of the given pids' threads
  local total=0 pid t
  for pid in "$@"; do
    for t in /proc/"$pid"/task/*; do
      total=$((total + $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status")))
    done
  done
  echo "$total"
}

run_one() { # BIN_DIR LABEL
  local bin=$1 label=$2 i
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  {
    echo "cluster_id = \"ab\""
    echo "data_dir = \"$WORK/data\""
    for i in 1 2 3; do
      printf '[[nodes]]\nid = %d\naddr = "127.0.0.1:%d"\n' "$i" $((PORT_BASE + i - 1))
    done
  } > "$WORK/cluster.toml"
  PIDS=()
  # Builds before `--bootstrap` existed initialise an empty data directory without it.
  local bootstrap=()
  "$bin/kvserver" --help 2> /dev/null | grep -q -- --bootstrap && bootstrap=(--bootstrap)
  for i in 1 2 3; do
    RUST_LOG=warn "$bin/kvserver" --config "$WORK/cluster.toml" --id "$i" "${bootstrap[@]}" > "$WORK/kv$i.log" 2>&1 &
    PIDS+=($!)
  done
  local ep="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
  for _ in $(seq 200); do
    "$bin/kvctl" --endpoints "$ep" --timeout-ms 500 status > /dev/null 2>&1 && break
    sleep 0.1
  done
  # Two nodes make a quorum and would hide a third that failed to start (a port still
  # held by an earlier run): refuse to measure then.
  sleep 0.5
  for i in 1 2 3; do
    kill -0 "${PIDS[$((i - 1))]}" 2> /dev/null \
      || die "node $i of $label did not start: $(tail -1 "$WORK/kv$i.log")"
  done
  "$bin/kvctl" --endpoints "$ep" --timeout-ms 10000 bench --clients "$CLIENTS" \
    --duration-secs "$SECS" --warmup-secs 1 --read-ratio "$READ_RATIO" --read-mode "$READ_MODE" \
    $([[ $READ_RATIO != 0 ]] && echo --prefill) --json --quiet > "$WORK/out.json" &
  local load=$! s0 s1
  sleep 1; s0="$(switches "${PIDS[@]}")"
  wait "$load"
  s1="$(switches "${PIDS[@]}")"
  kill "${PIDS[@]}"; wait "${PIDS[@]}" 2> /dev/null || true; PIDS=()
  python3 - "$WORK/out.json" "$label" "$((s1 - s0))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:>2}  {d['throughput_ops_per_sec']:>9.0f} ops/s  p50 {d['latency']['p50_ms']:.3f} ms"
      f"  p99 {d['latency']['p99_ms']:.3f} ms  p99.9 {d['latency']['p999_ms']:.2f} ms"
      f"  max {d['latency']['max_ms']:.1f} ms  switches/op {int(sys.argv[3]) / max(d['ops'], 1):.2f}")
PY
}

for r in $(seq "$ROUNDS"); do
  run_one "$A" A
  run_one "$B" B
done
