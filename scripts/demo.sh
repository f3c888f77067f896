#!/usr/bin/env bash
# Runs the simulated charger. With config/sil-ocpp.yaml present, a local development CSMS is started
# beside it so boot, authorisation, transactions and meter values can be watched arriving.
set -euo pipefail
cd "$(dirname "$0")/.."
exec everpy run "${1:-config/sil.yaml}"
