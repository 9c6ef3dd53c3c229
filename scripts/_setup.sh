# Sourced by scripts/demo.sh and scripts/test.sh: checks prerequisites, creates .venv and installs
# the pinned dependencies (versions and hashes in requirements/*.txt) plus cdp-spark itself.
# Usage: setup_env base|dev
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

check_java() {
  local java="java"
  [ -n "${JAVA_HOME:-}" ] && java="$JAVA_HOME/bin/java"
  command -v "$java" >/dev/null 2>&1 || die "Java 17+ is required (Spark runs on the JVM) and was not found. Install a JDK 17 (e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME."
  local version major
  version=$("$java" -version 2>&1 | head -n 1)
  major=$(echo "$version" | sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1/')
  [ "$major" = "1" ] && major=$(echo "$version" | sed -E 's/.*version "1\.([0-9]+).*/\1/')
  [ "$major" -ge 17 ] 2>/dev/null || die "Java 17+ is required, found: $version"
}

setup_env() {
  local profile="$1"
  local py
  py=$(find_python) || die "Python 3.11+ is required and was not found (set PYTHON=/path/to/python3.11)."
  check_java
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $py" >&2
    "$py" -m venv .venv
  fi
  local stamp=".venv/.cdp-installed-$profile"
  local digest
  digest=$(cat "requirements/$profile.txt" pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "installing pinned dependencies (requirements/$profile.txt) into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r "requirements/$profile.txt"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$digest" > "$stamp"
  fi
}
