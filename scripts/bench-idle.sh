#!/usr/bin/env bash
# Resident memory per idle mTLS MQTT connection, Palisade and Mosquitto side by side: N devices
# enrolled over EST (each its own key), then one idle MQTT 3.1.1 session per device over TLS 1.3
# with its client certificate, held open while the broker's RSS is read.
# Usage: scripts/bench-idle.sh [N]   (needs openssl, curl, mosquitto; each side holds N descriptors)
set -euo pipefail
N=${1:-10000}
cd "$(dirname "$0")/.."
cargo build --release -q -p palisade --bin palisade
cargo build --release -q -p palisade-server --example mqtt_fleet
BIN=$PWD/target/release/palisade
FLEET=$PWD/target/release/examples/mqtt_fleet
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/devices"
# Server and client each hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"

PALISADE_LOG_LEVEL=warn "$BIN" serve --data-dir "$W/data" --console-addr 127.0.0.1:0 \
  --device-https-addr 127.0.0.1:0 --mqtt-addr 127.0.0.1:0 > "$W/serve.out" 2> "$W/serve.err" &
PID=$!
for _ in $(seq 1 300); do [ -s "$W/serve.out" ] && break; sleep 0.1; done
port() { sed -E "s/.*\"$1\":\"[^\"]*:([0-9]+)\".*/\1/" "$W/serve.out" | head -1; }
API=$(port console); EST=$(port device_https); MQTT=$(port mqtt)
CA="$W/data/pki/root-ca.pem"
KEY=$("$BIN" apikey create --data-dir "$W/data" --role admin)

echo "enrolling $N devices over EST…"
"$FLEET" enroll "https://127.0.0.1:$API" "https://127.0.0.1:$EST" "$CA" "$KEY" "$N" "$W/devices"
echo "Palisade:"
"$FLEET" idle 127.0.0.1 "$MQTT" "$CA" "$W/devices" "$PID" | tee "$W/palisade.txt"
curl -sS --cacert "$CA" "https://127.0.0.1:$EST/.well-known/est/cacerts" | openssl base64 -d \
  | openssl pkcs7 -inform DER -print_certs | sed -n '/BEGIN/,/END/p' > "$W/device-chain.pem"
kill "$PID"; wait "$PID" 2>/dev/null || true

. scripts/mosquitto-tls.sh
start_mosquitto "$W" "max_connections -1"
echo "Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'):"
"$FLEET" idle 127.0.0.1 "$MQ_PORT" "$W/mqca.pem" "$W/devices" "$MPID" | tee "$W/mosquitto.txt"
