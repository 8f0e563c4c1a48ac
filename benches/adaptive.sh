#!/usr/bin/env bash
# The adaptive concurrency limit against an embedded server that works on C requests at once
# (a FIFO queue behind C slots): 100 workers, no limit and AIMD, side by side.
# Usage: bash benches/adaptive.sh [--secs N] [--c C] [--service MS] [--target X] [--workers N] [--trace]
# (defaults: 10 s per run, C = 32, 20 ms per request, latency target 1.1 x the unloaded p50; --trace prints the learnt limit every 100 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench adaptive -- "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
