#!/usr/bin/env bash
# llmweb developer entry point.  ./dev.sh run   — set up and run the app
#                                 ./dev.sh test  — set up and run the tests
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

setup() {
  if [ ! -x .venv/bin/python ]; then
    echo "[llmweb] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local want stamp=.venv/.llmweb-installed
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[llmweb] installing dependencies (first run takes a few minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
  fi
}

case "${1:-}" in
  run)
    setup
    exec .venv/bin/python -m llmweb.devtools.up
    ;;
  test)
    shift
    setup
    exec .venv/bin/python -m llmweb.devtools.withredis .venv/bin/python -m pytest "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./dev.sh run | test [pytest args] | setup" >&2
    exit 2
    ;;
esac
