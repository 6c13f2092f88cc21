#!/usr/bin/env bash
# Restart time of a node holding many keys (issue 6: "restart of a node holding 1M keys
# (snapshot + WAL replay) to serving < 2 s"):
#
#   bench/restart.sh [--keys 1000000] [--base-dir /tmp]
#
# Builds kvserver and kvctl (release; CARGO_TARGET_DIR is honoured; or set KVSERVER and
# KVCTL to binaries to measure), starts 3 kvserver
# processes on 127.0.0.1 (fsync on, default snapshot threshold), writes every one of
# --keys keys once with 256 B values (`kvctl bench --prefill`, 64 clients), SIGKILLs a
# follower, restarts it, and reports the time from its start until its status says it has applied
# everything the leader had committed when it was started. Also prints the size of its
# snapshot and the WAL it replayed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
NAME=restart
# shellcheck source=bench/lib/three-nodes.sh
source "$HERE/lib/three-nodes.sh"
KEYS=1000000 BASE_DIR=/tmp
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keys) KEYS="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    *) echo "restart: unknown argument '$1'" >&2; exit 1 ;;
  esac
  shift
done
bench_binaries
PORT_BASE="${RAFTKV_PORT_BASE:-48001}"
WORK="$(mktemp -d "$BASE_DIR/raftkv-restart.XXXXXX")"
trap bench_cleanup EXIT
bench_cluster_toml restart
bench_start_cluster
echo "restart: writing $KEYS keys" >&2
kvctl bench --clients 64 --keys "$KEYS" --prefill --ops 1 --warmup-secs 0 --quiet > "$WORK/prefill.json" \
  || { cat "$WORK/prefill.json" >&2; tail -3 "$WORK"/kv*.log >&2; exit 1; }
# Restart a follower (killing the leader would time an election as well).
victim="$(bench_node_with_role follower)"
bench_kill "$victim"
commit="$(bench_commit)"
snap="$(du -b "$WORK/data/node-$victim/snap" | tail -1 | cut -f1)"
wal="$(du -b "$WORK/data/node-$victim/wal" | tail -1 | cut -f1)"
t0="$(date +%s.%N)"
start "$victim"
while true; do
  [[ $(bench_applied "$victim") -ge $commit ]] && break
  bench_check_alive "$victim"
  sleep 0.01
done
t1="$(date +%s.%N)"
python3 - "$t0" "$t1" "$commit" "$snap" "$wal" "$victim" <<'PY'
import sys
t0, t1, commit, snap, wal, victim = map(float, sys.argv[1:])
print(f"restart: node {int(victim)} (a follower) serving after {t1 - t0:.2f} s (applied {int(commit)} entries; "
      f"snapshot dir {snap / 1e6:.0f} MB, WAL dir {wal / 1e6:.0f} MB)")
PY
