#!/usr/bin/env bash
# The `sentinel` command line against curl as shell users run it: N URLs against one local
# nginx on loopback, `sentinel -w 16` vs `curl --parallel --parallel-max 16` vs
# `xargs -P16 curl`, side by side in one run. Wall time and CPU (user + sys of the command
# and its children), medians of REPS runs, as a Markdown table on stdout.
#
#   bash benches/cli.sh [--urls 10000] [--reps 3] [--port 18090]
#
# Not part of `cargo test`. Installs nginx and curl with apt when missing (as benches/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

URLS=10000
REPS=3
PORT=18090
while (($#)); do
    case $1 in
        --urls) URLS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

log() { echo "== $*" >&2; }

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

log "building sentinel (release)"
cargo build --release --quiet --features cli --bin sentinel
SENTINEL=$PWD/target/release/sentinel

NGX=$(mktemp -d /tmp/sentinel-cli-bench.XXXXXX)
mkdir -p "$NGX/tmp"
chmod 755 "$NGX"
cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type text/plain;
    client_body_temp_path $NGX/tmp/client_body;
    proxy_temp_path $NGX/tmp/proxy;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location / { return 200 "hello, world!"; }
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
nginx -c "$NGX/nginx.conf" -p "$NGX" &
NGINX_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NGX/error.log" >&2; exit 1; }
    sleep 0.1
done
BASE=http://127.0.0.1:$PORT

# Distinct paths, as a crawl would have; one host, so every tool may reuse connections.
for ((i = 0; i < URLS; i++)); do echo "$BASE/item/$i"; done >"$NGX/urls.txt"
# curl's --parallel reads its URLs (and where each body goes) from a config file.
awk '{ print "url = \"" $0 "\"\noutput = \"/dev/null\"" }' "$NGX/urls.txt" >"$NGX/curl.cfg"

declare -A COMMANDS=(
    [sentinel]="$SENTINEL -w 16 -q --input $NGX/urls.txt >/dev/null"
    [curl-parallel]="curl -s --parallel --parallel-max 16 -K $NGX/curl.cfg"
    [xargs-curl]="xargs -P16 -n1 curl -s -o /dev/null <$NGX/urls.txt"
)
ORDER=(sentinel curl-parallel xargs-curl)

# Machine busy share (all CPUs) over an interval, from /proc/stat: what else was running.
busy() { awk '/^cpu /{ print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat; }

declare -A WALL CPU
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= REPS; rep++)); do
    for name in "${ORDER[@]}"; do
        TIMEFORMAT='%R %U %S'
        out=$({ time bash -c "${COMMANDS[$name]}" >/dev/null 2>&1; } 2>&1)
        read -r real user sys <<<"$out"
        WALL[$name]+="$real "
        CPU[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }') "
        log "rep $rep $name: wall ${real}s, cpu $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')s"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
read -r b0 t0 <<<"$(busy)"; sleep 5; read -r b1 t1 <<<"$(busy)"
IDLE_BUSY=$(awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", 100 * b / t }')

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo
echo "| $URLS URLs, 16 at a time | wall (s) | CPU user+sys (s) | URLs/s |"
echo "|---|--:|--:|--:|"
for name in "${ORDER[@]}"; do
    w=$(median "${WALL[$name]}")
    c=$(median "${CPU[$name]}")
    rate=$(awk -v n="$URLS" -v w="$w" 'BEGIN { printf "%.0f", n / w }')
    echo "| \`$name\` | $w | $c | $rate |"
done
echo
echo "Medians of $REPS runs (each: ${WALL[sentinel]}/ ${WALL[curl-parallel]}/ ${WALL[xargs-curl]}s wall)."
echo "Load average before $LOAD_BEFORE, after $LOAD_AFTER; machine busy ${IDLE_BUSY}% over 5 s" \
    "with nothing of this benchmark running. $(nproc) CPUs, $(curl --version | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's/.*\///')."
