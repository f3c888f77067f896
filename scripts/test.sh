#!/usr/bin/env bash
# Runs the whole suite. Exit code is pytest's, except that "no tests collected" counts as failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pytest -q -p no:cacheprovider --timeout=300 "$@"
rc=$?
[ $rc -eq 5 ] && { echo "test: no tests were collected" >&2; exit 1; }
exit $rc
