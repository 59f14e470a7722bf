#!/usr/bin/env bash
# bench/fs/run.sh - our permission filesystem side by side with native (and, when installed,
# bindfs / fuse-overlayfs) through the shared harness /work/shared/bench/run_fs_matrix.sh.
#
# Usage: bench/fs/run.sh [BUILD_DIR]        (default: build)
# Env:   MATRIX=/work/shared/bench/run_fs_matrix.sh   the harness
#        CONFIGS="native"   built-in configs of the harness to run first (add bwrap bindfs
#                           bindfs_mt fuseoverlay when those tools exist on the machine)
#        SRC, OUT, TESTS, COLD_RUNS, WARM_RUNS ...   passed through to the harness
#        THREADS=1          agentfense-mount --threads
# Configs added:
#   af_readonly   preset read-only  (+ the harness's scratch dir writable, so write tests run)
#   af_agentsafe  preset agent-safe (+ the same scratch rule)
# agent-safe hides .git, *.key ... so its "count" column is expected to differ from native.
# The mount command daemonizes with --background; the harness unmounts with fusermount3 -u, which
# ends the agentfense-mount process.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
BIN="$BUILD/bin/agentfense-mount"
MATRIX=${MATRIX:-/work/shared/bench/run_fs_matrix.sh}
THREADS=${THREADS:-1}
[[ -x "$BIN" ]] || { echo "missing $BIN (build target agentfense-mount)" >&2; exit 1; }
[[ -x "$MATRIX" ]] || { echo "missing harness $MATRIX" >&2; exit 1; }
export CONFIGS=${CONFIGS:-native}
SCRATCH_RULE="--rule /.fsbench_scratch*/**=write@1000"
exec "$MATRIX" \
  --fuse af_readonly "$BIN --background --threads $THREADS --preset read-only $SCRATCH_RULE {SRC} {MNT}" \
  --fuse af_agentsafe "$BIN --background --threads $THREADS --preset agent-safe $SCRATCH_RULE {SRC} {MNT}"
