#!/usr/bin/env bash
# Runs the bwrap runtime benchmark side by side with its raw baselines and prints a markdown table.
# Usage (as root): bench/runtime/start_exec.sh [BUILD_DIR] [ITERATIONS]
set -euo pipefail
build="${1:-build}"
iterations="${2:-200}"
if [[ $(id -u) != 0 ]]; then echo "start_exec.sh: run as root (the launcher drops privileges)" >&2; exit 77; fi
for f in "$build/bin/runtime_bench" "$build/bin/agentfense-agent"; do
  [[ -x "$f" ]] || { echo "start_exec.sh: $f missing: cmake --build $build --target runtime_bench" >&2; exit 1; }
done
echo "host: $(uname -r), $(nproc) cpus, $(bwrap --version)"
exec "$build/bin/runtime_bench" "$(realpath "$build/bin/agentfense-agent")" "$iterations"
