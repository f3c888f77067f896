#!/usr/bin/env bash
# Runs (part of) the test suite against the minimum dependency versions, the ones Yocto scarthgap ships
# (ci-constraints/scarthgap.txt), in a separate virtualenv, so code using an API newer than what a
# charger image has fails in CI instead of on the charger.
#
#   ci-constraints/run-min-versions.sh                 # default subset (below)
#   ci-constraints/run-min-versions.sh tests/ocpp -x   # any pytest arguments instead
#
# Environment: PYTHON (default python3), MINVER_VENV (default .venv/min-versions), CONSTRAINTS.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
VENV="${MINVER_VENV:-.venv/min-versions}"
CONSTRAINTS="${CONSTRAINTS:-ci-constraints/scarthgap.txt}"
# Suites that exercise each pinned dependency: bus + loader (paho, jsonschema, yaml, pluggy), OCPP
# (websockets, ocpp), RPC and mDNS (msgpack, zeroconf), Modbus meters (pymodbus, pyserial), sd_notify.
DEFAULT_SUBSET=(tests/core tests/ocpp tests/rpc tests/powermeter tests/yocto/test_sdnotify.py)

# pytest >= 8.2 needs pluggy >= 1.5, and pytest shares the interpreter with everpy, so the test venv runs
# pluggy 1.5.0 (walnascar's); everpy's plugin discovery is checked against scarthgap's 1.4.0 separately
# at the end (everpy check / everpy modules with pluggy 1.4.0 first on the path).
TEST_RUNNER_PLUGGY="1.5.0"

pins() { grep -E '^[A-Za-z0-9_.-]+==' "$CONSTRAINTS"; }
pinned_version() { pins | grep -i -E "^$1==" | cut -d= -f3; }
venv_constraints="$VENV/constraints.txt"

stamp="$VENV/.constraints-$(cat "$CONSTRAINTS" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "min-versions: creating $VENV from $CONSTRAINTS"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  pins | sed -E "s/^pluggy==.*/pluggy==$TEST_RUNNER_PLUGGY/I" > "$venv_constraints"
  pipq() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
             | grep -v -E "^(WARNING: Location|WARNING: Running pip as)" || true; }
  # everpy's declared dependencies but ocpp, resolved under the pins (their own dependencies float, as in
  # a Yocto build). Declared ones, not the pin list: an import of an undeclared package must fail here.
  mapfile -t resolvable < <("$VENV/bin/python" - <<'PYEOF'
import re, tomllib
for requirement in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower() != "ocpp":
        print(requirement)
PYEOF
  )
  pipq -c "$venv_constraints" "${resolvable[@]}"
  # ocpp without its dependencies: its jsonschema>=4.23 would override the scarthgap pin.
  pipq --no-deps "ocpp==$(pinned_version ocpp)"
  # everpy itself (entry points for the built-in modules), without letting pip touch the pins.
  pipq --no-deps -e .
  # Test tools from the test extras (the packaging tests build a wheel), minus the linters.
  mapfile -t test_tools < <("$VENV/bin/python" - <<'PYEOF'
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]
skip = ("ruff", "oelint-adv", "mypy", "types-PyYAML", "types-jsonschema", "types-pyserial")
print("\n".join(r for r in extras if not r.replace(">", " ").replace("=", " ").split()[0] in skip))
PYEOF
  )
  pipq -c "$venv_constraints" "${test_tools[@]}"
  pipq --no-deps --target "$VENV/pluggy-min" "pluggy==$(pinned_version pluggy)"
  touch "$stamp"
fi

# Fail loudly if anything moved a pinned package off its pin.
"$VENV/bin/python" - "$venv_constraints" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version

wrong = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, want = line.split("==")
        try:
            have = version(name)
        except PackageNotFoundError:
            print(f"min-versions: {name} is pinned but not a declared dependency; not installed")
            continue
        if have != want:
            wrong.append(f"{name} {have} (pinned {want})")
if wrong:
    sys.exit("min-versions: not at the pinned versions: " + ", ".join(wrong))
print("min-versions: running with", ", ".join(
    f"{l.split('==')[0]} {l.split('==')[1].strip()}" for l in open(sys.argv[1]) if "==" in l and not l.startswith("#")))
PYEOF

if [ $# -eq 0 ]; then set -- "${DEFAULT_SUBSET[@]}"; fi
existing=()
for arg in "$@"; do
  case "$arg" in -*) existing+=("$arg") ;; *) [ -e "${arg%%::*}" ] && existing+=("$arg") || echo "min-versions: skipping missing $arg" ;; esac
done
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --timeout=300 "${existing[@]}"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "min-versions: no tests were collected" >&2; exit 1; }

# Plugin discovery and config validation with scarthgap's pluggy (1.4.0).
echo "min-versions: everpy modules / everpy check with pluggy $(pinned_version pluggy)"
PYTHONPATH="$VENV/pluggy-min" "$VENV/bin/python" -c "
import pluggy, sys
assert pluggy.__version__ == sys.argv[1] and 'pluggy-min' in pluggy.__file__, (pluggy.__version__, pluggy.__file__)
" "$(pinned_version pluggy)"
PYTHONPATH="$VENV/pluggy-min" "$VENV/bin/everpy" modules > /dev/null
for config in yocto/meta-everpy/recipes-everpy/everpy-config/files/*.yaml; do
  PYTHONPATH="$VENV/pluggy-min" "$VENV/bin/everpy" check "$config"
done
exit $rc
