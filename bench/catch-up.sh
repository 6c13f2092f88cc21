#!/usr/bin/env bash
# A follower catching up from the leader's snapshot (issue 11: "the same for installing a
# snapshot received from the leader"; issue 13: a replaced node catches up from a 1M-key
# snapshot):
#
#   bench/catch-up.sh [--keys 1000000] [--base-dir /tmp]
#
# Builds kvserver and kvctl (release; CARGO_TARGET_DIR is honoured; or set KVSERVER and
# KVCTL to binaries to measure), starts 3 kvserver processes on 127.0.0.1 (fsync on,
# snapshot after 32 MiB of log, log_percent 0) and writes --keys keys once with 256 B
# values (`kvctl bench --prefill`, 64 clients). Then it SIGKILLs a follower, writes
# 48 MiB more (so the leader snapshots past everything the follower holds), restarts
# the follower and reports: the time until it has applied what the leader had committed,
# whether it installed a snapshot, and its peak RSS (VmHWM) against the leader's RSS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
NAME=catch-up
# shellcheck source=bench/lib/three-nodes.sh
source "$HERE/lib/three-nodes.sh"
KEYS=1000000 BASE_DIR=/tmp
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keys) KEYS="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    *) echo "catch-up: unknown argument '$1'" >&2; exit 1 ;;
  esac
  shift
done
bench_binaries
PORT_BASE="${RAFTKV_PORT_BASE:-48101}"
WORK="$(mktemp -d "$BASE_DIR/raftkv-catch-up.XXXXXX")"
trap bench_cleanup EXIT
bench_cluster_toml catch-up "[snapshot]\nthreshold_bytes = $((32 << 20))\nlog_percent = 0\n"
bench_start_cluster
echo "catch-up: writing $KEYS keys" >&2
kvctl bench --clients 64 --keys "$KEYS" --prefill --ops 1 --warmup-secs 0 --quiet > "$WORK/prefill.json" \
  || { cat "$WORK/prefill.json" >&2; tail -3 "$WORK"/kv*.log >&2; exit 1; }
victim="$(bench_node_with_role follower)"
leader="$(bench_node_with_role leader)"
bench_kill "$victim"
echo "catch-up: node $victim down; writing 48 MiB more" >&2
kvctl bench --clients 64 --keys 200000 --duration-secs 600 --ops 190000 --warmup-secs 0 --quiet \
  > "$WORK/more.json" || { cat "$WORK/more.json" >&2; exit 1; }
commit="$(bench_commit)"
leader_rss_kb="$(awk '/^VmRSS/ {print $2}' "/proc/${PID[$leader]}/status")"
t0="$(date +%s.%N)"
LOG_FILTER=warn,raft::core::snapshot_recv=info start "$victim"
peak_kb=0
while true; do
  hwm="$(awk '/^VmHWM/ {print $2}' "/proc/${PID[$victim]}/status" 2> /dev/null || echo 0)"
  [[ ${hwm:-0} -gt $peak_kb ]] && peak_kb=$hwm
  [[ $(bench_applied "$victim") -ge $commit ]] && break
  bench_check_alive "$victim"
  sleep 0.05
done
t1="$(date +%s.%N)"
hwm="$(awk '/^VmHWM/ {print $2}' "/proc/${PID[$victim]}/status")"
[[ $hwm -gt $peak_kb ]] && peak_kb=$hwm
python3 - "$t0" "$t1" "$commit" "$peak_kb" "$leader_rss_kb" "$victim" <<'PY'
import sys
t0, t1, commit, peak, leader, victim = map(float, sys.argv[1:])
print(f"catch-up: node {int(victim)} applied {int(commit)} entries {t1 - t0:.2f} s after its restart; "
      f"its peak RSS {peak / 1024:.0f} MB, the leader's RSS {leader / 1024:.0f} MB "
      f"(ratio {peak / leader:.2f})")
PY
installs="$(grep -c 'installing snapshot' "$WORK/kv$victim.log" || true)"
echo "catch-up: node $victim installed $installs snapshot(s) from the leader"
