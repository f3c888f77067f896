#!/usr/bin/env bash
# Runs the whole suite, then the minimum-versions subset (the dependency versions Yocto scarthgap ships,
# in their own virtualenv). "No tests collected" counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pytest -q -p no:cacheprovider --timeout=300 "$@"
rc=$?
[ $rc -eq 5 ] && { echo "test: no tests were collected" >&2; exit 1; }
[ $rc -ne 0 ] && exit $rc
[ $# -gt 0 ] && exit 0  # a chosen subset: skip the minimum-versions pass
echo "test: minimum dependency versions (ci-constraints/scarthgap.txt)"
# The suites that exercise each pinned dependency; the crash tests (kill -9 of a whole station, ~1 min)
# add nothing version-specific and run in the main pass only.
PYTHON="$PY" ci-constraints/run-min-versions.sh tests/core tests/ocpp tests/rpc tests/powermeter \
  tests/yocto/test_sdnotify.py "-knot crash and not kill"
