#!/usr/bin/env bash
# Side-by-side benchmark of raftkv against etcd on this machine, in one run.
#
#   bench/compare-etcd.sh [--install] [--no-etcd] [--duration-secs 10] [--warmup-secs 2]
#                         [--rounds 1] [--workloads put-c1,put-c64,put-c256,get-lin-c64]
#                         (also: put-c16, get-lease-c64)
#                         [--base-dir /tmp] [--etcd-target leader|all] [--keep]
#
# Starts a 3-node raftkv cluster (3 kvserver processes on 127.0.0.1, fsync on) and, when
# etcd is installed, a 3-member etcd cluster (../shared/peers/etcd_cluster.sh, fsync on).
# Both keep their data in temp dirs under --base-dir (default /tmp), so on the same disk.
# Each workload runs on raftkv and on etcd back to back (the order alternates), with the
# same closed-loop engine (clerk::loadgen: `kvctl bench` and bench/etcd-load), the same
# clients, connections (min(clients, 8)), keys (10,000 of 8 B) and values (256 B).
# Prints one table; its last lines are `ratio WORKLOAD throughput=X p50=Y p99=Z`, each
# figure raftkv over etcd (throughput > 1 and latency < 1 favour raftkv).
#
# etcd: with --install (as root) the script runs `apt-get install -y etcd-server
# etcd-client`; it also tries that when etcd is missing and it runs as root. Without etcd
# it measures raftkv alone and says so. --no-etcd skips etcd on purpose.
# Env: CARGO_TARGET_DIR (build dir), RAFTKV_PORT_BASE (default 37001), ETCD_PORT_BASE
# (default 32379), PEERS_DIR (default: ../shared/peers next to the repo).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$REPO/../shared/peers}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RAFTKV_PORT_BASE="${RAFTKV_PORT_BASE:-37001}"
export ETCD_PORT_BASE="${ETCD_PORT_BASE:-32379}"

INSTALL=0 USE_ETCD=1 DURATION=10 WARMUP=2 ROUNDS=1 KEEP=0 ETCD_TARGET=leader
WORKLOADS="put-c1,put-c64,put-c256,get-lin-c64"
BASE_DIR=/tmp

die() { echo "compare-etcd: $*" >&2; exit 1; }
say() { echo "compare-etcd: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --no-etcd) USE_ETCD=0 ;;
    --duration-secs) DURATION="${2:?}"; shift ;;
    --warmup-secs) WARMUP="${2:?}"; shift ;;
    --rounds) ROUNDS="${2:?}"; shift ;;
    --workloads) WORKLOADS="${2:?}"; shift ;;
    --base-dir) BASE_DIR="${2:?}"; shift ;;
    --etcd-target) ETCD_TARGET="${2:?}"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

# Workload name -> "clients read_ratio prefill raftkv_read_mode". get-lease-c64 (not in
# the default list) reads through raftkv's leader lease; etcd has no lease reads, so its
# side is etcd's linearizable read, as in get-lin-c64.
workload_params() {
  case "$1" in
    put-c1) echo "1 0.0 0 read-index" ;;
    put-c16) echo "16 0.0 0 read-index" ;;
    put-c64) echo "64 0.0 0 read-index" ;;
    put-c256) echo "256 0.0 0 read-index" ;;
    get-lin-c64) echo "64 1.0 1 read-index" ;;
    get-lease-c64) echo "64 1.0 1 lease" ;;
    *) return 1 ;;
  esac
}
IFS=, read -r -a WORKLOAD_LIST <<< "$WORKLOADS"
for w in "${WORKLOAD_LIST[@]}"; do
  workload_params "$w" > /dev/null || die "unknown workload '$w'"
done

command -v python3 > /dev/null || die "python3 is needed to print the table"
command -v cargo > /dev/null || die "cargo is needed to build kvserver, kvctl and etcd-load"
[[ -d "$BASE_DIR" ]] || die "base dir $BASE_DIR does not exist"
WORK="$(mktemp -d "$BASE_DIR/raftkv-cmp.XXXXXX")"
RESULTS="$WORK/results"
mkdir -p "$RESULTS" "$WORK/logs"

KV_PIDS=()
ETCD_STARTED=0
LOAD_PID=""
SAMPLER_PID=""
export ETCD_RUN_DIR="$WORK/etcd-run" ETCD_BASE_DIR="$BASE_DIR"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in $LOAD_PID $SAMPLER_PID; do kill "$pid" 2> /dev/null || true; done
  for pid in "${KV_PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${KV_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2> /dev/null || true
  done
  if [[ $ETCD_STARTED == 1 ]]; then "$PEERS_DIR/etcd_cluster.sh" stop > /dev/null 2>&1 || true; fi
  if [[ $KEEP == 1 || $rc != 0 ]]; then
    say "kept $WORK (results, logs)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# ---- etcd availability ---------------------------------------------------------------
ensure_etcd() {
  [[ $USE_ETCD == 1 ]] || return 1
  if [[ $INSTALL == 1 ]] || ! command -v etcd > /dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
      say "installing etcd-server etcd-client with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      timeout 600 apt-get install -y -qq etcd-server etcd-client > "$WORK/logs/apt.log" 2>&1 ||
        { timeout 600 apt-get update -qq >> "$WORK/logs/apt.log" 2>&1 &&
          timeout 600 apt-get install -y -qq etcd-server etcd-client >> "$WORK/logs/apt.log" 2>&1; } ||
        say "apt-get install failed (see $WORK/logs/apt.log)"
    fi
  fi
  command -v etcd > /dev/null && command -v etcdctl > /dev/null
}

# ---- builds --------------------------------------------------------------------------
find_protoc() {
  [[ -n "${PROTOC:-}" ]] && { echo "$PROTOC"; return; }
  command -v protoc && return
  local arch; arch="$(uname -m)"
  case "$arch" in aarch64) arch=aarch_64 ;; i686) arch=x86_32 ;; esac
  (cd "$REPO" && cargo metadata --format-version 1 2> /dev/null) | python3 -c '
import json, os, sys
arch = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "protoc-bin-vendored-linux-" + arch:
        print(os.path.join(os.path.dirname(p["manifest_path"]), "bin", "protoc"))
        break' "$arch"
}

build() {
  say "building kvserver and kvctl (release) in $TARGET_DIR"
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q \
    -p kvserver --bin kvserver -p clerk --bin kvctl) || die "cargo build failed"
  KVSERVER="$TARGET_DIR/release/kvserver"
  KVCTL="$TARGET_DIR/release/kvctl"
  if [[ $USE_ETCD == 1 ]]; then
    local protoc; protoc="$(find_protoc)"
    [[ -x "$protoc" ]] || die "no protoc for etcd-client's build (set PROTOC)"
    say "building bench/etcd-load (release) in $TARGET_DIR/etcd-load"
    (cd "$HERE/etcd-load" && PROTOC="$protoc" CARGO_TARGET_DIR="$TARGET_DIR/etcd-load" \
      cargo build --release -q) || die "building etcd-load failed"
    ETCD_LOAD="$TARGET_DIR/etcd-load/release/etcd-load"
  fi
}

# ---- clusters ------------------------------------------------------------------------
KV_ENDPOINTS=""
start_raftkv() {
  local ports=() i
  for i in 0 1 2; do
    ports+=($((RAFTKV_PORT_BASE + i)))
    port_in_use "${ports[$i]}" && die "port ${ports[$i]} is in use (set RAFTKV_PORT_BASE)"
  done
  {
    echo "cluster_id = \"compare-etcd\""
    echo "data_dir = \"$WORK/raftkv\""
    for i in 0 1 2; do
      printf '[[nodes]]\nid = %d\naddr = "127.0.0.1:%d"\n' $((i + 1)) "${ports[$i]}"
    done
  } > "$WORK/cluster.toml"
  for i in 1 2 3; do
    RUST_LOG=warn "$KVSERVER" --config "$WORK/cluster.toml" --id "$i" --bootstrap \
      > "$WORK/logs/kvserver-$i.log" 2>&1 &
    KV_PIDS+=($!)
  done
  KV_ENDPOINTS="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
  for _ in $(seq 1 60); do
    if "$KVCTL" --endpoints "$KV_ENDPOINTS" --timeout-ms 1000 status > /dev/null 2>&1; then
      say "raftkv cluster up: $KV_ENDPOINTS (data in $WORK/raftkv)"
      return 0
    fi
    for pid in "${KV_PIDS[@]}"; do
      kill -0 "$pid" 2> /dev/null || { tail -5 "$WORK"/logs/kvserver-*.log >&2; die "a kvserver exited"; }
    done
    sleep 0.5
  done
  tail -5 "$WORK"/logs/kvserver-*.log >&2
  die "raftkv cluster had no leader after 30 s"
}

ETCD_ENDPOINTS=""
start_etcd() {
  local i
  for i in 0 1 2; do
    for p in $((ETCD_PORT_BASE + 100 * i)) $((ETCD_PORT_BASE + 100 * i + 1)); do
      port_in_use "$p" && die "port $p is in use (set ETCD_PORT_BASE)"
    done
  done
  ETCD_STARTED=1
  "$PEERS_DIR/etcd_cluster.sh" start > "$WORK/logs/etcd-start.log" 2>&1 ||
    { cat "$WORK/logs/etcd-start.log" >&2; die "etcd cluster did not start"; }
  ETCD_ENDPOINTS="$("$PEERS_DIR/etcd_cluster.sh" endpoints)"
  say "etcd cluster up: $ETCD_ENDPOINTS (data under $BASE_DIR)"
}

# ---- measuring -----------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK 2> /dev/null || echo 100)"
# Sum of utime + stime (ticks) of the given pids.
cpu_ticks() {
  local total=0 pid stat fields
  for pid in "$@"; do
    stat="$(cat "/proc/$pid/stat" 2> /dev/null)" || continue
    read -r -a fields <<< "${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# snapshot_processes FILE DELAY_SECS: after DELAY, the 6 busiest processes over 1 s.
snapshot_processes() {
  sleep "$2"
  command -v top > /dev/null && [[ -d "$(dirname "$1")" ]] || return 0
  top -b -n 2 -d 1 -o %CPU -w 200 2> /dev/null |
    awk '/^top -/ { n++ } n == 2 && $1 ~ /^[0-9]+$/ { print $12 "(" $9 "%)" }' |
    head -6 > "$1" || true
}

server_pids() {
  if [[ $1 == raftkv ]]; then echo "${KV_PIDS[@]}"; else tr "\n" " " < "$ETCD_RUN_DIR/pids"; fi
}

# run_one SYSTEM WORKLOAD ROUND
run_one() {
  local system=$1 workload=$2 round=$3 clients ratio prefill read_mode
  read -r clients ratio prefill read_mode <<< "$(workload_params "$workload")"
  local args=(--clients "$clients" --duration-secs "$DURATION" --warmup-secs "$WARMUP"
    --value-size 256 --key-size 8 --keys 10000 --read-ratio "$ratio" --json --quiet)
  [[ $prefill == 1 ]] && args+=(--prefill)
  local out="$RESULTS/$workload.$system.$round"
  local pids; read -r -a pids <<< "$(server_pids "$system")"
  [[ ${#pids[@]} == 3 ]] || die "expected 3 $system server processes, found ${#pids[@]}"
  local cpu0 t0 load0; cpu0="$(cpu_ticks "${pids[@]}")"; t0="$(date +%s.%N)"
  load0="$(cut -d' ' -f1 /proc/loadavg)"
  snapshot_processes "$out.ps" $((WARMUP + DURATION / 2)) &
  SAMPLER_PID=$!
  local cmd
  if [[ $system == raftkv ]]; then
    cmd=("$KVCTL" --endpoints "$KV_ENDPOINTS" --timeout-ms 10000 --read-mode "$read_mode"
      bench "${args[@]}")
  else
    cmd=("$ETCD_LOAD" --endpoints "$ETCD_ENDPOINTS" --target "$ETCD_TARGET" "${args[@]}")
  fi
  # In the background, so that a signal to the script is handled at once.
  "${cmd[@]}" > "$out.json" 2> "$out.log" &
  LOAD_PID=$!
  if ! wait "$LOAD_PID"; then
    LOAD_PID=""
    cat "$out.log" >&2
    die "the $system load generator failed on $workload"
  fi
  LOAD_PID=""
  local cpu1 t1; cpu1="$(cpu_ticks "${pids[@]}")"; t1="$(date +%s.%N)"
  wait "$SAMPLER_PID" 2> /dev/null || true
  SAMPLER_PID=""
  for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null || die "$system server $pid died during $workload"; done
  printf '{"server_cpu_secs": %s, "wall_secs": %s, "load1_before": %s, "load1_after": %s}\n' \
    "$(python3 -c "print(($cpu1 - $cpu0) / $CLK_TCK)")" "$(python3 -c "print($t1 - $t0)")" \
    "$load0" "$(cut -d' ' -f1 /proc/loadavg)" > "$out.meta.json"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
lat = r.get("latency") or {}
print("compare-etcd: %-12s %-6s round %s: %8.0f ops/s  p50 %.3f ms  p99 %.3f ms  errors %d" % (
    sys.argv[2], sys.argv[3], sys.argv[4], r["throughput_ops_per_sec"],
    lat.get("p50_ms", 0), lat.get("p99_ms", 0), r["errors"]))' "$out.json" "$workload" "$system" "$round" >&2
  sleep 1
}

# ---- main ----------------------------------------------------------------------------
HAVE_ETCD=0
if ensure_etcd; then HAVE_ETCD=1; else USE_ETCD=0; fi
build
start_raftkv
if [[ $HAVE_ETCD == 1 ]]; then
  start_etcd
  say "etcd $(etcd --version 2> /dev/null | head -1 | awk '{print $3}') found: measuring raftkv and etcd side by side"
else
  say "etcd is not available: measuring raftkv ALONE (no ratios)"
fi

{
  echo "nproc=$(nproc)"
  echo "disk=$(df --output=source,fstype "$BASE_DIR" | tail -1 | tr -s ' ') base_dir=$BASE_DIR"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "etcd_target=$ETCD_TARGET duration_secs=$DURATION warmup_secs=$WARMUP rounds=$ROUNDS"
} > "$RESULTS/machine.txt"

index=0
for round in $(seq 1 "$ROUNDS"); do
  for w in "${WORKLOAD_LIST[@]}"; do
    if [[ $HAVE_ETCD == 0 ]]; then
      run_one raftkv "$w" "$round"
    elif (((index + round) % 2 == 1)); then
      run_one raftkv "$w" "$round"; run_one etcd "$w" "$round"
    else
      run_one etcd "$w" "$round"; run_one raftkv "$w" "$round"
    fi
    index=$((index + 1))
  done
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS/machine.txt"

python3 "$HERE/compare-table.py" "$RESULTS" "$WORKLOADS"
