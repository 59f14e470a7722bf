#!/usr/bin/env bash
# Usage: policy_explain_smoke.sh PATH/TO/agentfense
# The agent-safe preset must hide secrets and .git, allow reading sources and writing /output.
set -euo pipefail
bin=$1

got=$("$bin" policy explain --preset agent-safe \
        /secrets/a /a/b/secrets/c /.git/config /src/x.py /output/r.txt |
      awk 'NR > 1 && $0 !~ /^ / { print $1 " " $2 }')
want=$'/secrets/a none\n/a/b/secrets/c none\n/.git/config none\n/src/x.py read\n/output/r.txt write'
if [[ "$got" != "$want" ]]; then
  printf 'explain table mismatch\n--- want\n%s\n--- got\n%s\n' "$want" "$got" >&2
  exit 1
fi

# Invalid input: exit status 2 and a reason on stderr.
set +e
err=$("$bin" policy explain --rule '/x=sometimes' /x 2>&1 >/dev/null)
rc=$?
set -e
if [[ $rc != 2 || "$err" != *"unknown permission level"* ]]; then
  printf 'bad rule: want exit 2 with a reason, got %s: %s\n' "$rc" "$err" >&2
  exit 1
fi
echo "ok"
