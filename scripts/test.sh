#!/usr/bin/env bash
# Runs every module's tests; keeps going after a failure and reports all.
# Usage: scripts/test.sh [go test flags...]
set -uo pipefail
cd "$(dirname "$0")/.."
modules=$(sed -n 's/^[[:space:]]*\.\/\(.*\)$/\1/p' go.work)
failed=()
start=$(date +%s)
for m in $modules; do
  t0=$(date +%s)
  echo "== test $m"
  # The IPVS-in-qemu test runs once, afterwards, as `make test-ipvs`.
  if ! (cd "$m" && ELB_SKIP_VM=1 go test -count=1 -timeout 20m "$@" ./...); then
    failed+=("$m")
  fi
  echo "== $m took $(( $(date +%s) - t0 ))s"
done
echo "== all modules took $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED modules: ${failed[*]}"
  exit 1
fi
