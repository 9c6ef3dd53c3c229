#!/usr/bin/env bash
# Sets up .venv and runs `cdp demo` on the embedded default (local Spark + delta-rs).
# Extra arguments go to `cdp demo` (e.g. --customers 5000 --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_env base
exec .venv/bin/cdp demo "$@"
