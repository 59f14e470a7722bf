#!/usr/bin/env bash
# bench/delta_bench.sh - the copy-on-write delta (docs/DELTA.md) against the plain tools:
#   1. copy-up of a 256 MiB file (first open for write through a delta mount) vs cp on the disk;
#   2. commit of 1,000 changed small files (agentfense-mount --commit, the same code the
#      supervisor's commit runs) vs rsync -a of the same files (cp -a when rsync is missing);
#   3. a metadata walk (find + stat of 10,000 files) on a delta-backed mount vs the plain mount.
# Best of RUNS runs (default 3); page cache warm for both sides. Needs root and /dev/fuse.
#
# Usage: bench/delta_bench.sh [BUILD_DIR]     (default: build)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
BIN="$BUILD/bin/agentfense-mount"
RUNS=${RUNS:-3}
[[ -x "$BIN" ]] || { echo "missing $BIN (build target agentfense-mount)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/af-delta-bench.XXXXXX)
MNT="$WORK/mnt"
cleanup() {
  umount -l "$MNT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT"

now() { date +%s.%N; }
best() {  # best wall time of RUNS runs of "$@" (a shell snippet), with SETUP run before each
  local b=""
  for _ in $(seq "$RUNS"); do
    eval "$SETUP"
    local t0 t1
    t0=$(now); eval "$@"; t1=$(now)
    b=$(awk -v a="$b" -v d="$(awk -v x="$t0" -v y="$t1" 'BEGIN{print y-x}')" \
        'BEGIN{ if (a == "" || d < a) print d; else print a }')
  done
  echo "$b"
}
mount_delta() { "$BIN" --background --preset full-access --delta "$1" "$2" "$MNT" > /dev/null 2>&1; }
unmount() { umount "$MNT" 2>/dev/null || umount -l "$MNT"; sleep 0.2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.2fx", a/b }'; }

# 1. copy-up of 256 MiB
SRC1="$WORK/src1"; mkdir -p "$SRC1"
dd if=/dev/urandom of="$SRC1/big" bs=1M count=256 status=none
cat "$SRC1/big" > /dev/null
SETUP='rm -f "$WORK/cp-copy"'
T_CP=$(best 'cp "$SRC1/big" "$WORK/cp-copy"')
SETUP='unmount 2>/dev/null || true; rm -rf "$WORK/d1"; mount_delta "$WORK/d1" "$SRC1"'
T_UP=$(best ': >> "$MNT/big"')  # open(O_WRONLY|O_APPEND): the copy-up, nothing written
unmount
echo "copy-up 256 MiB:       delta ${T_UP}s   cp ${T_CP}s   ratio $(ratio "$T_UP" "$T_CP")"

# 2. commit of 1,000 small files
SRC2="$WORK/src2"; STAGE="$WORK/stage"; mkdir -p "$SRC2" "$STAGE"
for i in $(seq 0 999); do
  d=$((i % 20)); mkdir -p "$SRC2/d$d" "$STAGE/d$d"
  printf 'old %d\n' "$i" > "$SRC2/d$d/f$i"
  head -c 4096 /dev/urandom > "$STAGE/d$d/f$i"
done
SETUP='rm -rf "$WORK/d2"; mount_delta "$WORK/d2" "$SRC2"; cp -r "$STAGE/." "$MNT/"; unmount'
T_COMMIT=$(best '"$BIN" --delta "$WORK/d2" --commit --preset full-access "$SRC2" > /dev/null')
if command -v rsync > /dev/null; then TOOL=rsync; CMD='rsync -a "$STAGE/" "$WORK/rs/"'; else TOOL="cp -a"; CMD='cp -a "$STAGE/." "$WORK/rs/"'; fi
SETUP='rm -rf "$WORK/rs"; cp -a "$SRC2" "$WORK/rs"'
T_RS=$(best "$CMD")
echo "commit 1,000 files:    delta ${T_COMMIT}s   $TOOL ${T_RS}s   ratio $(ratio "$T_COMMIT" "$T_RS")"

# 3. metadata walk, plain vs delta mount
SRC3="$WORK/src3"; mkdir -p "$SRC3"
for d in $(seq 0 99); do mkdir -p "$SRC3/d$d"; for f in $(seq 0 99); do : > "$SRC3/d$d/f$f"; done; done
walk='find "$MNT" -type f -printf "%s\n" > /dev/null'
SETUP='unmount 2>/dev/null || true; "$BIN" --background --preset full-access "$SRC3" "$MNT" > /dev/null 2>&1'
T_PLAIN=$(best "$walk")
SETUP='unmount 2>/dev/null || true; rm -rf "$WORK/d3"; mount_delta "$WORK/d3" "$SRC3"'
T_DELTA=$(best "$walk")
unmount
echo "walk 10,000 files:     delta ${T_DELTA}s   plain ${T_PLAIN}s   ratio $(ratio "$T_DELTA" "$T_PLAIN")"
