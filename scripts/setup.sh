#!/usr/bin/env bash
# Installs what everpy needs on a fresh Debian machine: mosquitto (apt) and the Python packages (pip).
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ "${EVERPY_SETUP_TESTS:-0}" = "1" ]; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
extras=""
[ "${EVERPY_SETUP_TESTS:-0}" = "1" ] && extras="[test]"
stamp=".setup-stamp${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ "$(ls -d modules/*/ | wc -l)" != "$(cat "$stamp" 2>/dev/null)" ] \
   || ! "$PY" -c "import everpy_modules, pathlib, sys; sys.exit(pathlib.Path(list(everpy_modules.__path__)[0]).resolve() != pathlib.Path('modules').resolve())" 2>/dev/null; then
  # (also when an earlier install points at another checkout: its modules would not be found here)
  echo "setup: installing everpy and its Python dependencies (pip install -e .${extras})"
  "$PY" -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -v -E "^(WARNING: Running pip as|WARNING: Location)" || true
  "$PY" -c "import everpy" || { echo "setup: everpy did not install" >&2; exit 1; }
  ls -d modules/*/ | wc -l > "$stamp"
fi
