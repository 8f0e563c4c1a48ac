#!/usr/bin/env bash
# Rate-limit pacing against an embedded server enforcing 60 requests/s per key: 32 workers,
# paced and reactive, side by side. Usage: bash benches/pacing.sh [--secs N] (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench pacing -- "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
