#!/usr/bin/env bash
# Docker runtime benchmark: sandbox start vs `docker run --rm`, exec through the agent vs
# `docker exec`, p50/p90/p99 from one interleaved run. Needs root, dockerd and the test images
# (scripts/ensure-services starts/builds them).
#
# Usage: bench/docker/start_exec.sh [build-dir] [-- bench args: --starts N --execs N --image IMG]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${1:-build}
shift || true
[[ "${1:-}" == "--" ]] && shift
"$root/scripts/ensure-services"
bin="$root/$build_dir/bin/docker_start_exec_bench"
if [[ ! -x "$bin" ]]; then
  echo "start_exec.sh: $bin missing: cmake --build $build_dir --target docker_start_exec_bench" >&2
  exit 1
fi
exec "$bin" --agent "$root/$build_dir/bin/agentfense-agent" "$@"
