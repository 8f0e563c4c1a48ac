#!/usr/bin/env bash
# Peer benchmark of http-sentinel against bare ureq, reqwest, libcurl and a raw TcpStream loop,
# all against one nginx on loopback. Writes benches/results/RESULTS.md and chart.svg.
#
#   bash benches/run.sh            # full run: 3 repeats per cell, medians (~10 minutes)
#   bash benches/run.sh --quick    # smoke pass: 1 repeat, a tenth of the requests
#
# Options: --reps N, --port P (default 18080), --server-cpu C (0), --client-cpu C (1),
# --no-callgrind, --no-install.
#
# The client order is rotated from one repetition to the next (repetition r starts r-1 places
# further along the list), so no client always runs first or last in a cell.
#
# Server and client are pinned to different cores so a client's CPU cost shows up as its own
# throughput limit instead of stealing cycles from nginx. Raw results (JSON lines), callgrind
# and strace outputs stay in benches/peers/target/bench-run/ for closer inspection.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS=$HERE/peers
OUT=$HERE/results
WORK=$PEERS/target/bench-run
BIN=$PEERS/target/release/peers

QUICK=0 REPS=3 PORT=18080 SERVER_CPU=0 CLIENT_CPU=1 CALLGRIND=1 INSTALL=1
while (($#)); do
    case $1 in
        --quick) QUICK=1 REPS=1 ;;
        --reps) REPS=$2; shift ;;
        --port) PORT=$2; shift ;;
        --server-cpu) SERVER_CPU=$2; shift ;;
        --client-cpu) CLIENT_CPU=$2; shift ;;
        --no-callgrind) CALLGRIND=0 ;;
        --no-install) INSTALL=0 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# ureq: bare ureq with its defaults (128 KiB buffers); ureq-8k: with the library's 8 KiB ones.
CLIENTS=(sentinel ureq ureq-8k ureq-shared reqwest reqwest-async curl raw)
# Cells: body:workers:total[:held]. Totals are sized for about 1-3 s per cell on a 2-core
# machine; the 1000-worker cell is 20 requests per worker, so it also pays 1000 connects and
# shows what 1000 threads (or tasks) cost. "held": every worker opens its connection before the
# clock starts (peers --hold), so 1000 clients and connections are live for the whole run, as
# in a service with 1000 long-lived workers (blocking clients only; wrk is not run there).
CELLS=(small:1:30000 small:8:60000 small:100:60000 small:1000:20000 small:1000:40000:held 16k:8:40000)
CG_N1=2000 CG_N2=12000       # callgrind request counts (difference cancels start-up)
IDLE_BIG=1000                # parked workers for the idle-memory measurement
SCALE=1
if ((QUICK)); then SCALE=10 CG_N1=200 CG_N2=1200; fi

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
install_missing() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx-light)
    command -v wrk >/dev/null || need+=(wrk)
    command -v valgrind >/dev/null || need+=(valgrind)
    command -v strace >/dev/null || need+=(strace)
    command -v taskset >/dev/null || need+=(util-linux)
    command -v python3 >/dev/null || need+=(python3)
    command -v pkg-config >/dev/null || need+=(pkg-config)
    pkg-config --exists libcurl 2>/dev/null || need+=(libcurl4-openssl-dev)
    ((${#need[@]})) || return 0
    log "installing ${need[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    # nginx-light is Debian's small build (stub_status included); Ubuntu has only "nginx".
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"; then
        need=("${need[@]/nginx-light/nginx}")
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
}
((INSTALL)) && install_missing

# 1000 workers hold 1000 sockets each side; nginx raises its own limit (worker_rlimit_nofile).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 4096)); then echo "open-file limit $(ulimit -n) is below 4096" >&2; exit 1; fi

log "building benches/peers (release)"
cargo build --release --quiet --manifest-path "$PEERS/Cargo.toml" --target-dir "$PEERS/target"

# --- nginx -------------------------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK/callgrind" "$WORK/strace" "$OUT"
NGX=$(mktemp -d /tmp/sentinel-bench-nginx.XXXXXX)
mkdir -p "$NGX/www" "$NGX/tmp"
head -c 16384 /dev/zero | tr '\0' 'x' >"$NGX/www/16k"
# nginx started as root runs its worker as "nobody": let it read the file mktemp made private.
chmod 755 "$NGX" "$NGX/www"
chmod 644 "$NGX/www/16k"
TEMP_PATHS=""
for kind in client_body proxy fastcgi uwsgi scgi; do
    flag=--http-${kind//_/-}-temp-path
    [[ $kind == client_body ]] && flag=--http-client-body-temp-path
    if [[ $kind == client_body || $kind == proxy ]] || nginx -V 2>&1 | grep -q -- "$flag"; then
        TEMP_PATHS+="    ${kind}_temp_path $NGX/tmp/$kind;"$'\n'
    fi
done
# worker_cpu_affinity takes a bit mask, rightmost bit = CPU 0.
MASK=1
for ((i = 0; i < SERVER_CPU; i++)); do MASK+=0; done
cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity $MASK;
worker_rlimit_nofile 65536;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events {
    worker_connections 8192;
}
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type text/plain;
$TEMP_PATHS
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location / { return 200 "hello, world!"; }
        location = /16k { default_type application/octet-stream; alias $NGX/www/16k; }
        location = /nginx_status { stub_status; }
    }
}
EOF

NGINX_PID=
cleanup() {
    if [[ -n $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NGINX_PID" 2>/dev/null || true
    fi
    rm -rf "$NGX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is already in use; pick another with --port" >&2
    exit 1
fi
taskset -c "$SERVER_CPU" nginx -c "$NGX/nginx.conf" -p "$NGX" &
NGINX_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NGX/error.log" >&2; exit 1; }
    sleep 0.1
done
BASE=http://127.0.0.1:$PORT
STATUS=$BASE/nginx_status
log "nginx $(nginx -v 2>&1 | sed 's/.*\///') on $BASE (cpu $SERVER_CPU), clients on cpu $CLIENT_CPU"

url_of() { [[ $1 == 16k ]] && echo "$BASE/16k" || echo "$BASE/"; }
bytes_of() { [[ $1 == 16k ]] && echo 16384 || echo 13; }

# One measurement: appends a JSON line (tagged with phase/body/rep) to $WORK/runs.jsonl.
# Every run is bounded by `timeout`; a failed run is recorded as such, not retried.
measure() {
    local phase=$1 body=$2 rep=$3; shift 3
    local line rc=0
    line=$(taskset -c "$CLIENT_CPU" timeout 300 "$BIN" "$@" 2>>"$WORK/stderr.log") || rc=$?
    if ((rc)) || [[ $line != \{* ]]; then
        # Tagged with its cell (workers, held), so the report shows the failure there.
        local workers=0 held=false a prev=
        for a in "$@"; do
            [[ $prev == --workers ]] && workers=$a
            [[ $a == --hold ]] && held=true
            prev=$a
        done
        line="{\"client\":\"$1\",\"workers\":$workers,\"hold\":$held,\"failed\":true,\"exit\":$rc,\"args\":\"${*:2}\"}"
        log "FAILED ($rc): $*"
    fi
    echo "{\"phase\":\"$phase\",\"body\":\"$body\",\"rep\":$rep,${line#\{}" >>"$WORK/runs.jsonl"
}

# wrk as a reference point: a C event loop on one thread, what the server gives a client that
# costs almost nothing. CPU from the subshell's `times` (children's user and system time).
measure_wrk() {
    local body=$1 workers=$2 rep=$3 secs=$4 out
    out=$( (taskset -c "$CLIENT_CPU" timeout 60 wrk -t1 -c"$workers" -d"${secs}s" "$(url_of "$body")"; times) 2>&1) || true
    python3 "$HERE/report.py" wrk-line "$body" "$workers" "$rep" <<<"$out" >>"$WORK/runs.jsonl"
}

# Other processes on the machine (builds, tests) skew every number here. Before each phase,
# while nothing of ours runs, sample how busy the CPUs are (user, nice, system, irq, steal over
# 1 s) and wait up to 60 s for them to calm down; the samples go into the report.
cpu_busy_pct() {
    local a b
    read -r -a a </proc/stat
    sleep 1
    read -r -a b </proc/stat
    local busy=0 idle=0 i
    for i in 1 2 3 6 7 8; do busy=$((busy + b[i] - a[i])); done
    for i in 4 5; do idle=$((idle + b[i] - a[i])); done
    echo $((100 * busy / (busy + idle > 0 ? busy + idle : 1)))
}
BUSY=()
wait_quiet() {
    local pct
    for _ in $(seq 60); do
        pct=$(cpu_busy_pct)
        ((pct < 10)) && break
    done
    ((pct < 10)) || log "other processes keep the CPUs ${pct}% busy; numbers will be noisy"
    BUSY+=("$pct")
}

# --- throughput and CPU per request ------------------------------------------------------
START=$(date +%s)
# The clients in the order of repetition $1: rotated by $1 - 1 places.
rotated() {
    local n=${#CLIENTS[@]} i
    for ((i = 0; i < n; i++)); do echo "${CLIENTS[(i + $1 - 1) % n]}"; done
}

for ((rep = 1; rep <= REPS; rep++)); do
    wait_quiet
    for cell in "${CELLS[@]}"; do
        IFS=: read -r body workers total held <<<"$cell"
        total=$((total / SCALE))
        hold=()
        [[ $held == held ]] && hold=(--hold)
        for client in $(rotated "$rep"); do
            [[ $held == held && $client == reqwest-async ]] && continue
            log "rep $rep/$REPS  $body body  $workers workers ${held:+($held) } $client"
            measure run "$body" "$rep" "$client" --url "$(url_of "$body")" --total "$total" \
                --workers "$workers" --expect-bytes "$(bytes_of "$body")" --status-url "$STATUS" \
                "${hold[@]}"
        done
        [[ $held == held ]] || measure_wrk "$body" "$workers" "$rep" $((QUICK ? 1 : 2))
    done
done

# --- idle memory per worker --------------------------------------------------------------
wait_quiet
for ((rep = 1; rep <= REPS; rep++)); do
    for client in $(rotated "$rep"); do
        for workers in 1 $IDLE_BIG; do
            log "rep $rep/$REPS  idle  $workers workers  $client"
            measure idle small "$rep" "$client" --url "$BASE/" --workers "$workers" \
                --idle-hold 1 --status-url "$STATUS"
        done
    done
done

# --- instructions and syscalls per request -----------------------------------------------
# Deterministic counts: run the same client for N1 and N2 requests on one worker and take
# the difference, so process start-up, client construction and the first connect cancel.
if ((CALLGRIND)); then
    wait_quiet
    for client in "${CLIENTS[@]}"; do
        for n in $CG_N1 $CG_N2; do
            log "callgrind  $client  $n requests"
            taskset -c "$CLIENT_CPU" timeout 600 valgrind --tool=callgrind \
                --callgrind-out-file="$WORK/callgrind/$client.$n.out" \
                "$BIN" "$client" --url "$BASE/" --total "$n" --workers 1 --expect-bytes 13 \
                >>"$WORK/callgrind/$client.$n.stdout" 2>>"$WORK/stderr.log" || log "callgrind FAILED: $client $n"
            taskset -c "$CLIENT_CPU" timeout 300 strace -f -c -o "$WORK/strace/$client.$n.txt" \
                "$BIN" "$client" --url "$BASE/" --total "$n" --workers 1 --expect-bytes 13 \
                >/dev/null 2>>"$WORK/stderr.log" || log "strace FAILED: $client $n"
        done
    done
fi
END=$(date +%s)

# --- report ------------------------------------------------------------------------------
{
    echo "nproc=$(nproc)"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "kernel=$(uname -sr)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*\///')"
    echo "rustc=$(rustc --version | cut -d' ' -f2)"
    echo "commit=$(git -C "$HERE" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "reps=$REPS"
    echo "quick=$QUICK"
    echo "server_cpu=$SERVER_CPU"
    echo "client_cpu=$CLIENT_CPU"
    echo "cg_n1=$CG_N1"
    echo "cg_n2=$CG_N2"
    echo "idle_big=$IDLE_BIG"
    echo "wall_secs=$((END - START))"
    echo "background_busy=${BUSY[*]}"
} >"$WORK/machine.txt"
python3 "$HERE/report.py" report "$WORK" "$OUT"
log "wrote $OUT/RESULTS.md and $OUT/chart.svg ($((END - START)) s of measurement)"
