#!/usr/bin/env bash
# Hedged requests against an embedded server (5 ms, 1 % of responses 1 s): hedging off and on,
# side by side in one run. Usage: bash benches/hedge.sh [--requests N] [--workers W]
# [--slow-one-in N] (defaults 20000, 16 and 100: 1 % of responses slow; about 45 s).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench hedge -- "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
