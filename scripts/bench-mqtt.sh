#!/usr/bin/env bash
# Benchmark, side by side in one run: QoS 1 telemetry through Palisade (durable ack: stored, then
# PUBACK) and through Mosquitto 2 (TLS 1.3, require_certificate true, in-memory), same load tool,
# same payloads, same connection count and client certificates.
# Usage: scripts/bench-mqtt.sh [CONNECTIONS] [SECONDS]   (needs openssl, curl, mosquitto)
set -euo pipefail
N=${1:-50}
SECS=${2:-10}
cd "$(dirname "$0")/.."
cargo build --release -q -p palisade --bin palisade
cargo build --release -q -p palisade-server --example mqtt_load --example mqtt_fleet
BIN=$PWD/target/release/palisade
LOAD=$PWD/target/release/examples/mqtt_load
FLEET=$PWD/target/release/examples/mqtt_fleet
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/devices"

PALISADE_LOG_LEVEL=warn "$BIN" serve --data-dir "$W/data" --console-addr 127.0.0.1:0 \
  --device-https-addr 127.0.0.1:0 --mqtt-addr 127.0.0.1:0 > "$W/serve.out" 2> "$W/serve.err" &
for _ in $(seq 1 300); do [ -s "$W/serve.out" ] && break; sleep 0.1; done
port() { sed -E "s/.*\"$1\":\"[^\"]*:([0-9]+)\".*/\1/" "$W/serve.out" | head -1; }
API=$(port console); EST=$(port device_https); MQTT=$(port mqtt)
CA="$W/data/pki/root-ca.pem"
KEY=$("$BIN" apikey create --data-dir "$W/data" --role admin)

echo "enrolling $N devices over EST…"
"$FLEET" enroll "https://127.0.0.1:$API" "https://127.0.0.1:$EST" "$CA" "$KEY" "$N" "$W/devices"
curl -sS --cacert "$CA" "https://127.0.0.1:$EST/.well-known/est/cacerts" | openssl base64 -d \
  | openssl pkcs7 -inform DER -print_certs | sed -n '/BEGIN/,/END/p' > "$W/device-chain.pem"

echo "Palisade (QoS 1, PUBACK after the durable commit):"
"$LOAD" 127.0.0.1 "$MQTT" "$CA" "$W/devices" "$SECS" | tee "$W/palisade.txt"

# Mosquitto: its own server certificate, Palisade's device chain for client certificates.
. scripts/mosquitto-tls.sh
start_mosquitto "$W" "max_inflight_messages 32"
cat "$CA" "$W/mqca.pem" > "$W/both-ca.pem"
echo "Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') (QoS 1, TLS 1.3, require_certificate, persistence off):"
"$LOAD" 127.0.0.1 "$MQ_PORT" "$W/both-ca.pem" "$W/devices" "$SECS" | tee "$W/mosquitto.txt"
grep -qv 'acked=0 ' "$W/mosquitto.txt" || { echo "Mosquitto failed:"; tail -5 "$W/mosquitto.log"; }

p=$(sed -E 's/.*msgs\/s=([0-9]+).*/\1/' "$W/palisade.txt"); m=$(sed -E 's/.*msgs\/s=([0-9]+).*/\1/' "$W/mosquitto.txt")
awk -v p="$p" -v m="$m" 'BEGIN { if (m > 0) printf "ratio Palisade/Mosquitto = %.2f\n", p / m }'
