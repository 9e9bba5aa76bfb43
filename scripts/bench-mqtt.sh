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
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=bench broker CA" \
  -keyout "$W/mqca.key" -out "$W/mqca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
  -keyout "$W/mq.key" -out "$W/mq.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$W/mq.ext"
openssl x509 -req -in "$W/mq.csr" -CA "$W/mqca.pem" -CAkey "$W/mqca.key" -CAcreateserial -days 1 \
  -extfile "$W/mq.ext" -out "$W/mq.pem" 2>/dev/null
cat "$CA" "$W/mqca.pem" > "$W/both-ca.pem"
MQ_PORT=$((20000 + RANDOM % 20000))
cat > "$W/mosquitto.conf" <<CONF
per_listener_settings true
# The benchmark runs from a private temporary directory: keep the user that can read it.
user $(id -un)
listener $MQ_PORT 127.0.0.1
cafile $W/device-chain.pem
certfile $W/mq.pem
keyfile $W/mq.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.3
allow_anonymous true
persistence false
max_inflight_messages 32
CONF
mosquitto -c "$W/mosquitto.conf" > "$W/mosquitto.log" 2>&1 &
sleep 1
echo "Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') (QoS 1, TLS 1.3, require_certificate, persistence off):"
"$LOAD" 127.0.0.1 "$MQ_PORT" "$W/both-ca.pem" "$W/devices" "$SECS" | tee "$W/mosquitto.txt"
grep -qv 'acked=0 ' "$W/mosquitto.txt" || { echo "Mosquitto failed:"; tail -5 "$W/mosquitto.log"; }

p=$(sed -E 's/.*msgs\/s=([0-9]+).*/\1/' "$W/palisade.txt"); m=$(sed -E 's/.*msgs\/s=([0-9]+).*/\1/' "$W/mosquitto.txt")
awk -v p="$p" -v m="$m" 'BEGIN { if (m > 0) printf "ratio Palisade/Mosquitto = %.2f\n", p / m }'
