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
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
KEYS=1000000 BASE_DIR=/tmp
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keys) KEYS="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    *) echo "catch-up: unknown argument '$1'" >&2; exit 1 ;;
  esac
  shift
done
if [[ -z "${KVSERVER:-}" || -z "${KVCTL:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --locked -q \
    -p kvserver --bin kvserver -p clerk --bin kvctl)
  KVSERVER="$TARGET_DIR/release/kvserver" KVCTL="$TARGET_DIR/release/kvctl"
fi
PORT_BASE="${RAFTKV_PORT_BASE:-48101}"
WORK="$(mktemp -d "$BASE_DIR/raftkv-catch-up.XXXXXX")"
declare -A PID
cleanup() {
  for p in "${PID[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
{
  echo 'cluster_id = "catch-up"'
  echo "data_dir = \"$WORK/data\""
  printf '[snapshot]\nthreshold_bytes = %d\nlog_percent = 0\n' $((32 << 20))
  for i in 1 2 3; do
    printf '[[nodes]]\nid = %d\naddr = "127.0.0.1:%d"\n' "$i" $((PORT_BASE + i - 1))
  done
} > "$WORK/cluster.toml"
LOG_FILTER=warn
start() { RUST_LOG="$LOG_FILTER" "$KVSERVER" --config "$WORK/cluster.toml" --id "$1" --bootstrap >> "$WORK/kv$1.log" 2>&1 & PID[$1]=$!; }
for i in 1 2 3; do start "$i"; done
EP="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
kvctl() { "$KVCTL" --endpoints "$EP" "$@"; }
tries=0
until kvctl --timeout-ms 500 status > /dev/null 2>&1; do
  tries=$((tries + 1))
  if [[ $tries -gt 100 ]] || ! kill -0 "${PID[1]}" "${PID[2]}" "${PID[3]}" 2> /dev/null; then
    echo "catch-up: the cluster did not start (is port $PORT_BASE taken?)" >&2; tail -5 "$WORK"/kv*.log >&2; exit 1
  fi
  sleep 0.1
done
echo "catch-up: writing $KEYS keys" >&2
kvctl bench --clients 64 --keys "$KEYS" --prefill --ops 1 --warmup-secs 0 --quiet > "$WORK/prefill.json" \
  || { cat "$WORK/prefill.json" >&2; tail -3 "$WORK"/kv*.log >&2; exit 1; }
roles="$(kvctl --timeout-ms 2000 status --json || true)"
victim="$(python3 -c '
import json, sys
print(next(json.loads(l)["id"] for l in sys.stdin if json.loads(l).get("role") == "follower"))' <<< "$roles")"
leader="$(python3 -c '
import json, sys
print(next(json.loads(l)["id"] for l in sys.stdin if json.loads(l).get("role") == "leader"))' <<< "$roles")"
kill -9 "${PID[$victim]}"; wait "${PID[$victim]}" 2> /dev/null || true
echo "catch-up: node $victim down; writing 48 MiB more" >&2
kvctl bench --clients 64 --keys 200000 --duration-secs 600 --ops 190000 --warmup-secs 0 --quiet \
  > "$WORK/more.json" || { cat "$WORK/more.json" >&2; exit 1; }
commit="$( (kvctl --timeout-ms 2000 status --json || true) | python3 -c '
import json, sys
print(max(json.loads(l).get("commit") or 0 for l in sys.stdin))')"
leader_rss_kb="$(awk '/^VmRSS/ {print $2}' "/proc/${PID[$leader]}/status")"
t0="$(date +%s.%N)"
LOG_FILTER=warn,raft::core::snapshot_recv=info start "$victim"
node="127.0.0.1:$((PORT_BASE + victim - 1))"
peak_kb=0
while true; do
  hwm="$(awk '/^VmHWM/ {print $2}' "/proc/${PID[$victim]}/status" 2> /dev/null || echo 0)"
  [[ ${hwm:-0} -gt $peak_kb ]] && peak_kb=$hwm
  line="$("$KVCTL" --endpoints "$node" --timeout-ms 200 status --json 2> /dev/null || true)"
  applied="$(python3 -c '
import json, sys
try:
    print(json.loads(sys.argv[1]).get("applied") or 0)
except ValueError:
    print(0)' "${line:-{\}}")"
  [[ ${applied:-0} -ge $commit ]] && break
  if ! kill -0 "${PID[$victim]}" 2> /dev/null; then
    echo "catch-up: node $victim exited" >&2; tail -5 "$WORK/kv$victim.log" >&2; exit 1
  fi
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
