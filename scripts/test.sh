#!/usr/bin/env bash
# Sets up .venv with the test dependencies and runs the test suite.
#   ./scripts/test.sh            default suite (fast; no scale tests or benchmarks)
#   ./scripts/test.sh --slow     adds the slow scale and fault-injection tests
#   ./scripts/test.sh --bench    only the benchmark smoke tests (scripts/bench.py end to end, ~9 min)
#   ./scripts/test.sh -k lake    any other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_env dev
args=()
for arg in "$@"; do
  case "$arg" in
    --slow) args+=(-m "not bench") ;;
    --bench) args+=(-m "bench") ;;
    *) args+=("$arg") ;;
  esac
done
exec .venv/bin/python -m pytest "${args[@]}"
