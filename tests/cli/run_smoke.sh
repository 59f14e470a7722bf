#!/usr/bin/env bash
# Usage: run_smoke.sh PATH/TO/agentfense
# The headline of `agentfense run`: a hidden file stays hidden, a write to /output is synced back,
# the command's exit status comes through, and nothing (dir, mount) is left behind.
set -euo pipefail
bin=$1
work=$(mktemp -d /tmp/af-run-smoke-XXXXXX)
chmod 711 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/output" "$work/rt"
chmod 711 "$work/rt"
echo SMOKESECRET > "$work/src/.env"
echo hello > "$work/src/readme"

set +e
out=$(AGENTFENSE_RUNTIME_DIR=$work/rt "$bin" run --preset agent-safe "$work/src" -- \
        sh -c 'cat /workspace/readme; cat /workspace/.env; echo made > /workspace/output/o; exit 7' 2>&1)
rc=$?
set -e
[[ $rc == 7 ]] || { echo "exit status $rc, want 7: $out" >&2; exit 1; }
[[ $out == *hello* ]] || { echo "readme not readable: $out" >&2; exit 1; }
[[ $out != *SMOKESECRET* ]] || { echo "hidden .env leaked: $out" >&2; exit 1; }
[[ $(cat "$work/src/output/o") == made ]] || { echo "write not synced" >&2; exit 1; }
[[ -z $(ls -A "$work/rt") ]] || { echo "leftover in runtime dir: $(ls -A "$work/rt")" >&2; exit 1; }
! grep -q "$work" /proc/mounts || { echo "leftover mount" >&2; exit 1; }
echo ok
