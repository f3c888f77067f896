#!/usr/bin/env bash
# Runs the simulated charger. When the config talks to the local development CSMS
# (ws://127.0.0.1:9000), that CSMS is started beside it, so boot, authorisation, transactions and
# meter values can be watched arriving, and remote commands sent to the charger:
#   curl -H "Authorization: Bearer $(cat run/csms-token)" -X POST localhost:8181/stations/<id>/RemoteStopTransaction \
#        -d '{"transactionId": 1}'
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config/sil-ocpp.yaml}"
if grep -q "ws://127.0.0.1:9000" "$config"; then
  # the CSMS speaks the version the config's OCPP module names (ocpp_version, default 1.6)
  version="$(sed -n 's/^ *ocpp_version: *"\{0,1\}\([0-9.]*\)"\{0,1\} *$/\1/p' "$config" | head -n 1)"
  mkdir -p run
  everpy csms --ocpp "${version:-1.6}" --host 127.0.0.1 --port 9000 --http-port 8181 --token-file run/csms-token &
  csms=$!
  trap 'kill $csms 2>/dev/null || true' EXIT
  for _ in $(seq 100); do  # wait (bounded) until the CSMS listens, so the first connect succeeds
    (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break
    sleep 0.1
  done
fi
everpy run "$config"
