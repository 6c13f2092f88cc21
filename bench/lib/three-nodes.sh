# Shared by bench/restart.sh and bench/catch-up.sh (sourced, not run): build the binaries,
# start a 3-node kvserver cluster on 127.0.0.1 and wait for it, kill and restart nodes, and
# read status lines. The caller sets NAME (for messages), REPO, WORK (a fresh directory) and
# PORT_BASE, and may set KVSERVER and KVCTL to binaries to measure (else this builds them).

# Builds kvserver and kvctl (release; CARGO_TARGET_DIR is honoured) unless KVSERVER and
# KVCTL are set.
bench_binaries() {
  if [[ -z "${KVSERVER:-}" || -z "${KVCTL:-}" ]]; then
    local target="${CARGO_TARGET_DIR:-$REPO/target}"
    (cd "$REPO" && CARGO_TARGET_DIR="$target" cargo build --release --locked -q \
      -p kvserver --bin kvserver -p clerk --bin kvctl)
    KVSERVER="$target/release/kvserver" KVCTL="$target/release/kvctl"
  fi
}

declare -A PID
bench_cleanup() {
  for p in "${PID[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}

# Writes $WORK/cluster.toml for cluster id $1, with $2 (more TOML) before the node list.
bench_cluster_toml() {
  {
    echo "cluster_id = \"$1\""
    echo "data_dir = \"$WORK/data\""
    printf '%b' "${2:-}"
    for i in 1 2 3; do
      printf '[[nodes]]\nid = %d\naddr = "127.0.0.1:%d"\n' "$i" $((PORT_BASE + i - 1))
    done
  } > "$WORK/cluster.toml"
  EP="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
}

# Starts node $1 (RUST_LOG from LOG_FILTER, default warn), appending to $WORK/kv$1.log.
start() {
  RUST_LOG="${LOG_FILTER:-warn}" "$KVSERVER" --config "$WORK/cluster.toml" --id "$1" --bootstrap \
    >> "$WORK/kv$1.log" 2>&1 &
  PID[$1]=$!
}

kvctl() { "$KVCTL" --endpoints "$EP" "$@"; }

# Starts the three nodes and waits until the cluster answers; stops the script if a node
# exits or nothing answers within 10 s.
bench_start_cluster() {
  for i in 1 2 3; do start "$i"; done
  local tries=0
  until kvctl --timeout-ms 500 status > /dev/null 2>&1; do
    tries=$((tries + 1))
    if [[ $tries -gt 100 ]] || ! kill -0 "${PID[1]}" "${PID[2]}" "${PID[3]}" 2> /dev/null; then
      echo "$NAME: the cluster did not start (is port $PORT_BASE taken?)" >&2
      tail -5 "$WORK"/kv*.log >&2
      exit 1
    fi
    sleep 0.1
  done
}

# The id of a node whose role is $1 (leader or follower).
bench_node_with_role() {
  (kvctl --timeout-ms 2000 status --json 2> /dev/null || true) | python3 -c '
import json, sys
print(next(json.loads(l)["id"] for l in sys.stdin if json.loads(l).get("role") == sys.argv[1]))' "$1"
}

# SIGKILLs node $1 and reaps it.
bench_kill() {
  kill -9 "${PID[$1]}"
  wait "${PID[$1]}" 2> /dev/null || true
}

# The highest commit index any node reports.
bench_commit() {
  (kvctl --timeout-ms 2000 status --json || true) | python3 -c '
import json, sys
print(max(json.loads(l).get("commit") or 0 for l in sys.stdin))'
}

# The applied index node $1 reports (0 while it does not answer).
bench_applied() {
  local line
  line="$("$KVCTL" --endpoints "127.0.0.1:$((PORT_BASE + $1 - 1))" --timeout-ms 200 status --json 2> /dev/null || true)"
  python3 -c '
import json, sys
try:
    print(json.loads(sys.argv[1]).get("applied") or 0)
except ValueError:
    print(0)' "${line:-{\}}"
}

# Stops the script if node $1 has exited.
bench_check_alive() {
  if ! kill -0 "${PID[$1]}" 2> /dev/null; then
    echo "$NAME: node $1 exited" >&2
    tail -5 "$WORK/kv$1.log" >&2
    exit 1
  fi
}
