#!/usr/bin/env bash
# Sets up .venv with the test dependencies and runs the test suite.
#   ./scripts/test.sh            default suite (fast; no scale tests or benchmarks)
#   ./scripts/test.sh --slow     adds the slow scale and fault-injection tests and the cluster test
#   ./scripts/test.sh --bench    only the benchmark smoke tests (scripts/bench.py end to end, ~9 min)
#   ./scripts/test.sh --cluster  only the spark-submit run on a standalone cluster the test starts (~9 min)
#   (--bench --cluster runs both)
#   ./scripts/test.sh -k lake    any other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_env dev
args=()
marks=()
for arg in "$@"; do
  case "$arg" in
    --slow) marks+=("not bench") ;;
    --bench) marks+=("bench") ;;
    --cluster) marks+=("cluster") ;;
    *) args+=("$arg") ;;
  esac
done
if [ "${#marks[@]}" -gt 0 ]; then
  joined="${marks[0]}"
  for m in "${marks[@]:1}"; do joined="$joined or $m"; done
  args=(-m "$joined" "${args[@]}")
fi
exec .venv/bin/python -m pytest "${args[@]}"
