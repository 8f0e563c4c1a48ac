#!/usr/bin/env bash
# Instructions per request under callgrind (deterministic, so independent of the machine's
# load): the default build, the `tracing` feature compiled in with no subscriber, and the
# feature with a no-op subscriber (enables every span, keeps nothing), side by side, and bare
# ureq (the engine the library wraps) for comparison. Allocations per request come from the
# bench's counting global allocator.
#
#   bash benches/instructions.sh            # N1=2000 N2=12000 requests, about 2 minutes
#   N1=200 N2=1200 bash benches/instructions.sh
#
# Each figure is (instructions at N2 - instructions at N1) / (N2 - N1): start-up, the pool's
# creation and the first connection cancel out. One client, one keep-alive connection, GET of
# a 13-byte body from a server in its own process (benches/instructions.rs), so only the
# client's instructions are counted.
set -euo pipefail
# ONLY=default: the default build and bare ureq only (half the time).
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N1=${N1:-2000} N2=${N2:-12000} PORT=${PORT:-18181}
# URLS=/a,/b: the paths sent in turn (default: one URL, `/`).
URLS=${URLS:-/}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

build() {
    cargo bench --no-run --bench instructions "$@" 2>&1 |
        sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1
}
DEFAULT=$(build)
ONLY=${ONLY:-all}
TRACING=$DEFAULT
[[ $ONLY == default ]] || TRACING=$(build --features tracing)
[[ -x $DEFAULT && -x $TRACING ]] || { echo "build failed" >&2; exit 1; }

"$DEFAULT" serve "$PORT" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

OUT=$(mktemp -d /tmp/sentinel-instructions.XXXXXX)
# Instructions (Ir) and allocations of one client run of $3 requests: "IR ALLOCATIONS".
count() {
    local bin=$1 sub=$2 n=$3 name=$4 log
    log=$(valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.$n.out" \
        "$bin" client "$(sed "s|\([^,]*\)|http://127.0.0.1:$PORT\1|g" <<<"$URLS")" "$n" "$sub" 2>&1)
    echo "$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$log")" \
        "$(sed -n 's/^allocations: \([0-9]*\)$/\1/p' <<<"$log")"
}
# "INSTRUCTIONS ALLOCATIONS" per request.
per_request() {
    local bin=$1 sub=$2 name=$3 a b
    read -r a_ir a_al < <(count "$bin" "$sub" "$N1" "$name")
    read -r b_ir b_al < <(count "$bin" "$sub" "$N2" "$name")
    awk -v a="$a_ir" -v b="$b_ir" -v c="$a_al" -v d="$b_al" -v n="$((N2 - N1))" \
        'BEGIN { printf "%d %.1f\n", (b - a) / n, (d - c) / n }'
}
echo "instructions and allocations per request (callgrind, $N1 and $N2 requests, one keep-alive connection)"
read -r base base_al < <(per_request "$DEFAULT" none default)
if [[ $ONLY != default ]]; then
    read -r off off_al < <(per_request "$TRACING" none tracing-none)
    read -r noop noop_al < <(per_request "$TRACING" noop tracing-noop)
fi
read -r bare bare_al < <(per_request "$DEFAULT" ureq bare-ureq)
ratio() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%+.2f %%", (a / b - 1) * 100 }'; }
row() { printf '| %-40s | %12s | %11s | %10s |\n' "$@"; }
row build instructions allocations "vs default"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 42))" "$(printf -- '-%.0s' $(seq 13)):" \
    "$(printf -- '-%.0s' $(seq 12)):" "$(printf -- '-%.0s' $(seq 11)):"
row "default features" "$base" "$base_al" "-"
if [[ $ONLY != default ]]; then
    row "tracing compiled in, no subscriber" "$off" "$off_al" "$(ratio "$off")"
    row "tracing, no-op subscriber" "$noop" "$noop_al" "$(ratio "$noop")"
fi
row "bare ureq (Agent::new_with_defaults)" "$bare" "$bare_al" "$(ratio "$bare")"
echo "callgrind outputs: $OUT"
