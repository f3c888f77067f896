#!/usr/bin/env bash
# Lints (ruff) and type-checks (mypy), then runs the whole suite, then the minimum-versions subset (the
# dependency versions Yocto scarthgap ships, in their own virtualenv). "No tests collected" counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# Static checks first (seconds; mypy's cache makes a second run near-instant): lint, then types with the
# [tool.mypy] settings in pyproject.toml. Both run from the same interpreter as the tests (its stubs).
"$PY" -m ruff check . || { echo "test: ruff check . found problems (see above); fix them or run 'ruff check --fix .'" >&2; exit 1; }
"$PY" -m mypy || { echo "test: mypy found type errors (see above; configured in pyproject.toml [tool.mypy])" >&2; exit 1; }
# Most tests wait on processes, sockets and brokers, not the CPU: four workers fill two cores. Tests that
# share the machine's network for mDNS run on one worker (xdist_group in conftest.py).
# EVERPY_TEST_WORKERS=0 runs everything in one process.
WORKERS="${EVERPY_TEST_WORKERS:-4}"
XDIST=()
[ "$WORKERS" != "0" ] && XDIST=("-n$WORKERS" --dist=loadgroup)  # one word each: run-min-versions.sh takes words without a dash for paths
"$PY" -m pytest -q -p no:cacheprovider --timeout=300 "${XDIST[@]}" "$@"
rc=$?
[ $rc -eq 5 ] && { echo "test: no tests were collected" >&2; exit 1; }
[ $rc -ne 0 ] && exit $rc
[ $# -gt 0 ] && exit 0  # a chosen subset: skip the minimum-versions pass
echo "test: minimum dependency versions (ci-constraints/scarthgap.txt)"
# The suites that exercise each pinned dependency: websockets (transport, every link to a CSMS), jsonschema
# (the RPC checks and their fast path), cryptography (certificates, TLS), sqlite (the store). OCPP behaviour
# tests above that layer, the crash tests (kill -9 of a whole station) and the soak add nothing
# version-specific and run in the main pass only.
OCPP_VERSIONED="transport rpc_errors rpc_fuzz hostile_csms schema_fastpath certificates security security_extension
  core store store_faults"
PYTHON="$PY" ci-constraints/run-min-versions.sh tests/core tests/rpc tests/powermeter \
  $(for t in $OCPP_VERSIONED; do printf 'tests/ocpp/test_%s.py ' "$t"; done) \
  tests/yocto/test_sdnotify.py "-knot crash and not kill" "${XDIST[@]}"
