#!/usr/bin/env bash
# Instructions per request under callgrind (deterministic, so independent of the machine's
# load): the default build, the `tracing` feature compiled in with no subscriber, and the
# feature with a no-op subscriber (enables every span, keeps nothing), side by side.
#
#   bash benches/instructions.sh            # N1=2000 N2=12000 requests, about 2 minutes
#   N1=200 N2=1200 bash benches/instructions.sh
#
# Each figure is (instructions at N2 - instructions at N1) / (N2 - N1): start-up, the pool's
# creation and the first connection cancel out. One client, one keep-alive connection, GET of
# a 13-byte body from a server in its own process (benches/instructions.rs), so only the
# client's instructions are counted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N1=${N1:-2000} N2=${N2:-12000} PORT=${PORT:-18181}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

build() {
    cargo bench --no-run --bench instructions "$@" 2>&1 |
        sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1
}
DEFAULT=$(build)
TRACING=$(build --features tracing)
[[ -x $DEFAULT && -x $TRACING ]] || { echo "build failed" >&2; exit 1; }

"$DEFAULT" serve "$PORT" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

OUT=$(mktemp -d /tmp/sentinel-instructions.XXXXXX)
# Instructions (Ir) of one client run of $3 requests.
count() {
    local bin=$1 sub=$2 n=$3 name=$4
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.$n.out" \
        "$bin" client "http://127.0.0.1:$PORT/" "$n" "$sub" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_request() {
    local bin=$1 sub=$2 name=$3 a b
    a=$(count "$bin" "$sub" "$N1" "$name")
    b=$(count "$bin" "$sub" "$N2" "$name")
    echo $(((b - a) / (N2 - N1)))
}
echo "instructions per request (callgrind, $N1 and $N2 requests, one keep-alive connection)"
base=$(per_request "$DEFAULT" none default)
off=$(per_request "$TRACING" none tracing-none)
noop=$(per_request "$TRACING" noop tracing-noop)
ratio() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%+.2f %%", (a / b - 1) * 100 }'; }
printf '| %-40s | %12s | %10s |\n' build instructions "vs default"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 42))" "$(printf -- '-%.0s' $(seq 13)):" "$(printf -- '-%.0s' $(seq 11)):"
printf '| %-40s | %12s | %10s |\n' "default features" "$base" "-"
printf '| %-40s | %12s | %10s |\n' "tracing compiled in, no subscriber" "$off" "$(ratio "$off")"
printf '| %-40s | %12s | %10s |\n' "tracing, no-op subscriber" "$noop" "$(ratio "$noop")"
echo "callgrind outputs: $OUT"
