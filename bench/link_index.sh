#!/usr/bin/env bash
# bench/link_index.sh - what the hard-link index costs (docs/FILESYSTEM.md, "Hard links").
# For trees of 10,000 and 100,000 files (100 directories) holding one hard-linked pair, and for a
# tree where 10,000 files have a second name each (a `cp -al` snapshot inside the source):
#   walk   = first stat of a linked file through a fresh mount (the lookup that triggers the
#            index walk) minus the first stat of a single-link file of the same directory;
#   memory = VmRSS of the mount process after the walk minus before it.
# Page cache warm (the tree was just written), best of RUNS mounts (default 3). Needs root and
# /dev/fuse.
#
# Usage: bench/link_index.sh [BUILD_DIR]     (default: build)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
BIN="$BUILD/bin/agentfense-mount"
RUNS=${RUNS:-3}
[[ -x "$BIN" ]] || { echo "missing $BIN (build target agentfense-mount)" >&2; exit 1; }
WORK=$(mktemp -d /var/tmp/af-link-bench.XXXXXX)
MNT="$WORK/mnt"
cleanup() {
  umount -l "$MNT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT"

now() { date +%s.%N; }
# The pid of the mount serving $MNT (its worker: the process whose argv ends with $MNT and that
# holds /dev/fuse).
mount_pid() {
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q -- " $MNT \?$" &&
       ls -l "$p/fd" 2>/dev/null | grep -q /dev/fuse; then
      basename "$p"
      return
    fi
  done
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

make_tree() {  # make_tree DIR FILES LINKED_COPIES
  local dir=$1 files=$2 copies=$3 per=$(( $2 / 100 ))
  mkdir -p "$dir"
  python3 - "$dir" "$per" <<'EOF'
import os, sys
root, per = sys.argv[1], int(sys.argv[2])
for d in range(100):
    os.mkdir(f"{root}/d{d}")
    for f in range(per):
        with open(f"{root}/d{d}/f{f}.txt", "w") as fh:
            fh.write("x" * 100)
EOF
  ln "$dir/d0/f0.txt" "$dir/d99/linked.txt"
  if [[ "$copies" -gt 0 ]]; then
    mkdir -p "$dir/snapshot"
    for d in $(seq 0 $(( copies / per - 1 ))); do cp -al "$dir/d$d" "$dir/snapshot/d$d"; done
  fi
  echo plain > "$dir/d0/plain.txt"  # one link: its lookup walks nothing
}

measure() {  # measure DIR -> "walk_ms rss_kib"
  local dir=$1 best_walk="" best_rss=""
  for _ in $(seq "$RUNS"); do
    "$BIN" --background --preset read-only "$dir" "$MNT" > /dev/null 2>&1
    local pid; pid=$(mount_pid)
    stat "$MNT/d0" > /dev/null
    local r0; r0=$(rss_kib "$pid")
    local t0 t1 t2
    t0=$(now); stat "$MNT/d0/plain.txt" > /dev/null; t1=$(now)
    stat "$MNT/d0/f0.txt" > /dev/null; t2=$(now)
    local r1; r1=$(rss_kib "$pid")
    local walk; walk=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.1f", ((c-b)-(b-a))*1000}')
    local rss=$(( r1 - r0 ))
    best_walk=$(awk -v a="$best_walk" -v d="$walk" 'BEGIN{ if (a == "" || d < a) print d; else print a }')
    best_rss=$(awk -v a="$best_rss" -v d="$rss" 'BEGIN{ if (a == "" || d < a) print d; else print a }')
    umount "$MNT" 2>/dev/null || umount -l "$MNT"
    sleep 0.2
  done
  echo "$best_walk $best_rss"
}

echo "| tree | multiply-linked files | index walk (first hard link met) | memory after the walk |"
echo "|---|---|---|---|"
for spec in "10000 0" "100000 0" "10000 10000"; do
  set -- $spec
  tree="$WORK/t$1-$2"
  make_tree "$tree" "$1" "$2"
  read -r walk rss < <(measure "$tree")
  total=$(( $1 + $2 ))
  echo "| $(printf "%'d" "$total") files | $(printf "%'d" $(( $2 + 1 ))) | ${walk} ms | ${rss} KiB |"
  rm -rf "$tree"
done
