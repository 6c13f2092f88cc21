#!/usr/bin/env bash
# Restart time of a node holding many keys (issue 6: "restart of a node holding 1M keys
# (snapshot + WAL replay) to serving < 2 s"):
#
#   bench/restart.sh [--keys 1000000] [--base-dir /tmp]
#
# Builds kvserver and kvctl (release; CARGO_TARGET_DIR is honoured), starts 3 kvserver
# processes on 127.0.0.1 (fsync on, default snapshot threshold), writes every one of
# --keys keys once with 256 B values (`kvctl bench --prefill`, 64 clients), SIGKILLs a
# follower, restarts it, and reports the time from its start until its status says it has applied
# everything the leader had committed when it was started. Also prints the size of its
# snapshot and the WAL it replayed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
KEYS=1000000 BASE_DIR=/tmp
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keys) KEYS="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    *) echo "restart: unknown argument '$1'" >&2; exit 1 ;;
  esac
  shift
done
(cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --locked -q \
  -p kvserver --bin kvserver -p clerk --bin kvctl)
KVSERVER="$TARGET_DIR/release/kvserver" KVCTL="$TARGET_DIR/release/kvctl"
PORT_BASE="${RAFTKV_PORT_BASE:-48001}"
WORK="$(mktemp -d "$BASE_DIR/raftkv-restart.XXXXXX")"
declare -A PID
cleanup() {
  for p in "${PID[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
{
  echo 'cluster_id = "restart"'
  echo "data_dir = \"$WORK/data\""
  for i in 1 2 3; do
    printf '[[nodes]]\nid = %d\naddr = "127.0.0.1:%d"\n' "$i" $((PORT_BASE + i - 1))
  done
} > "$WORK/cluster.toml"
start() { RUST_LOG=warn "$KVSERVER" --config "$WORK/cluster.toml" --id "$1" --bootstrap >> "$WORK/kv$1.log" 2>&1 & PID[$1]=$!; }
for i in 1 2 3; do start "$i"; done
EP="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
kvctl() { "$KVCTL" --endpoints "$EP" "$@"; }
tries=0
until kvctl --timeout-ms 500 status > /dev/null 2>&1; do
  tries=$((tries + 1))
  if [[ $tries -gt 100 ]] || ! kill -0 "${PID[1]}" "${PID[2]}" "${PID[3]}" 2> /dev/null; then
    echo "restart: the cluster did not start (is port $PORT_BASE taken?)" >&2
    tail -5 "$WORK"/kv*.log >&2; exit 1
  fi
  sleep 0.1
done
echo "restart: writing $KEYS keys" >&2
kvctl bench --clients 64 --keys "$KEYS" --prefill --ops 1 --warmup-secs 0 --quiet > "$WORK/prefill.json" \
  || { cat "$WORK/prefill.json" >&2; tail -3 "$WORK"/kv*.log >&2; exit 1; }
# Restart a follower (killing the leader would time an election as well).
victim="$(kvctl --timeout-ms 2000 status --json | python3 -c '
import json, sys
print(next(d["id"] for d in map(json.loads, sys.stdin) if d.get("role") == "follower"))')"
kill -9 "${PID[$victim]}"; wait "${PID[$victim]}" 2> /dev/null || true
commit="$( (kvctl --timeout-ms 2000 status --json || true) | python3 -c '
import json, sys
print(max(json.loads(l).get("commit") or 0 for l in sys.stdin))')"
snap="$(du -b "$WORK/data/node-$victim/snap" | tail -1 | cut -f1)"
wal="$(du -b "$WORK/data/node-$victim/wal" | tail -1 | cut -f1)"
t0="$(date +%s.%N)"
start "$victim"
node="127.0.0.1:$((PORT_BASE + victim - 1))"
while true; do
  # `status` exits 1 when the node it asks is not the leader: read its line anyway.
  line="$("$KVCTL" --endpoints "$node" --timeout-ms 200 status --json 2> /dev/null || true)"
  applied="$(python3 -c '
import json, sys
try:
    print(json.loads(sys.argv[1]).get("applied") or 0)
except ValueError:
    print(0)' "${line:-{\}}")"
  [[ ${applied:-0} -ge $commit ]] && break
  if ! kill -0 "${PID[$victim]}" 2> /dev/null; then
    echo "restart: node $victim exited" >&2; tail -5 "$WORK/kv$victim.log" >&2; exit 1
  fi
  sleep 0.01
done
t1="$(date +%s.%N)"
python3 - "$t0" "$t1" "$commit" "$snap" "$wal" "$victim" <<'PY'
import sys
t0, t1, commit, snap, wal, victim = map(float, sys.argv[1:])
print(f"restart: node {int(victim)} (a follower) serving after {t1 - t0:.2f} s (applied {int(commit)} entries; "
      f"snapshot dir {snap / 1e6:.0f} MB, WAL dir {wal / 1e6:.0f} MB)")
PY
