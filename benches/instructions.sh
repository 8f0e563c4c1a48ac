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

# PORT=80: the server on the scheme's default port, for which ureq writes the bare host as
# `Host` instead of formatting `host:port` (binding it needs the right to bind below 1024).
N1=${N1:-2000} N2=${N2:-12000} PORT=${PORT:-18181}
# URLS=/a,/b: the paths sent in turn (default: one URL, `/`).
# LIVE=1000: 999 other clients of the same kind stay alive, each holding a connection, beside
# the measured one. CGOPTS=--cache-sim=yes: also D1 cache misses (reads + writes) per request.
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
    # shellcheck disable=SC2086 # CGOPTS is a list of options
    log=$(valgrind --tool=callgrind ${CGOPTS:-} --callgrind-out-file="$OUT/$name.$n.out" \
        "$bin" client "$(sed "s|\([^,]*\)|http://127.0.0.1:$PORT\1|g" <<<"$URLS")" "$n" "$sub" 2>&1)
    # "Collected : Ir [Dr Dw I1mr D1mr D1mw ...]": D1 misses are the 5th and 6th with cache-sim.
    echo "$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$log")" \
        "$(sed -n 's/^allocations: \([0-9]*\)$/\1/p' <<<"$log")" \
        "$(sed -n 's/.*Collected : \(.*\)/\1/p' <<<"$log" | awk '{ print ($5 + $6) }')"
}
# "INSTRUCTIONS ALLOCATIONS" per request.
per_request() {
    local bin=$1 sub=$2 name=$3 a b
    read -r a_ir a_al a_d1 < <(count "$bin" "$sub" "$N1" "$name")
    read -r b_ir b_al b_d1 < <(count "$bin" "$sub" "$N2" "$name")
    awk -v a="$a_ir" -v b="$b_ir" -v c="$a_al" -v d="$b_al" -v e="$a_d1" -v f="$b_d1" \
        -v n="$((N2 - N1))" 'BEGIN { printf "%d %.1f %.1f\n", (b - a) / n, (d - c) / n, (f - e) / n }'
}
echo "instructions and allocations per request (callgrind, $N1 and $N2 requests, one keep-alive connection, ${LIVE:-1} live clients)"
read -r base base_al base_d1 < <(per_request "$DEFAULT" none default)
if [[ $ONLY != default ]]; then
    read -r off off_al off_d1 < <(per_request "$TRACING" none tracing-none)
    read -r noop noop_al noop_d1 < <(per_request "$TRACING" noop tracing-noop)
fi
read -r bare bare_al bare_d1 < <(per_request "$DEFAULT" ureq bare-ureq)
read -r bare8 bare8_al bare8_d1 < <(per_request "$DEFAULT" ureq-8k bare-ureq-8k)
ratio() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%+.2f %%", (a / b - 1) * 100 }'; }
CACHE=0
[[ ${CGOPTS:-} == *cache-sim=yes* ]] && CACHE=1
row() {
    if ((CACHE)); then
        printf '| %-42s | %12s | %11s | %10s | %9s |\n' "$@"
    else
        printf '| %-42s | %12s | %11s | %10s |\n' "${@:1:4}"
    fi
}
dash() { printf -- '-%.0s' $(seq "$1"); }
row build instructions allocations "vs default" "D1 misses"
if ((CACHE)); then
    printf '|%s|%s:|%s:|%s:|%s:|\n' "$(dash 44)" "$(dash 13)" "$(dash 12)" "$(dash 11)" "$(dash 10)"
else
    printf '|%s|%s:|%s:|%s:|\n' "$(dash 44)" "$(dash 13)" "$(dash 12)" "$(dash 11)"
fi
row "default features" "$base" "$base_al" "-" "$base_d1"
if [[ $ONLY != default ]]; then
    row "tracing compiled in, no subscriber" "$off" "$off_al" "$(ratio "$off")" "$off_d1"
    row "tracing, no-op subscriber" "$noop" "$noop_al" "$(ratio "$noop")" "$noop_d1"
fi
row "bare ureq (Agent::new_with_defaults)" "$bare" "$bare_al" "$(ratio "$bare")" "$bare_d1"
row "bare ureq, 8 KiB buffers (as the library)" "$bare8" "$bare8_al" "$(ratio "$bare8")" "$bare8_d1"
echo "callgrind outputs: $OUT"
