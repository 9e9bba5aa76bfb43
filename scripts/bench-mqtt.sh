#!/usr/bin/env bash
# Benchmark, side by side in one run: QoS 1 telemetry through Palisade (durable ack: stored, then
# PUBACK) and through Mosquitto 2 (TLS 1.3, require_certificate true, in-memory), same load tool,
# same payloads, same connection count and client certificates.
# Usage: scripts/bench-mqtt.sh [CONNECTIONS] [SECONDS] [ROUNDS]   (needs openssl, curl, mosquitto)
# Each round runs the load against Palisade, then against Mosquitto; the ratio is of the medians.
set -euo pipefail
N=${1:-50}
SECS=${2:-10}
ROUNDS=${3:-3}
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
SERVER=$!
for _ in $(seq 1 300); do [ -s "$W/serve.out" ] && break; sleep 0.1; done
port() { sed -E "s/.*\"$1\":\"[^\"]*:([0-9]+)\".*/\1/" "$W/serve.out" | head -1; }
API=$(port console); EST=$(port device_https); MQTT=$(port mqtt)
CA="$W/data/pki/root-ca.pem"
KEY=$("$BIN" apikey create --data-dir "$W/data" --role admin)

echo "enrolling $N devices over EST…"
"$FLEET" enroll "https://127.0.0.1:$API" "https://127.0.0.1:$EST" "$CA" "$KEY" "$N" "$W/devices"
curl -sS --cacert "$CA" "https://127.0.0.1:$EST/.well-known/est/cacerts" | openssl base64 -d \
  | openssl pkcs7 -inform DER -print_certs | sed -n '/BEGIN/,/END/p' > "$W/device-chain.pem"

# Mosquitto: its own server certificate, Palisade's device chain for client certificates.
. scripts/mosquitto-tls.sh
start_mosquitto "$W" "max_inflight_messages 32"
cat "$CA" "$W/mqca.pem" > "$W/both-ca.pem"

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# One load against one broker: its line from the load tool plus the cores the broker used.
measure() { # NAME PORT CA_FILE PID
  local before after t0 t1 line
  # Palisade's writes leave dirty pages that the kernel writes back in the background; flushed
  # first, so that writeback does not take CPU from the next broker's run.
  sync
  before=$(cpu "$4"); t0=$(date +%s.%N)
  line=$("$LOAD" 127.0.0.1 "$2" "$3" "$W/devices" "$SECS")
  after=$(cpu "$4"); t1=$(date +%s.%N)
  echo "$1 $line broker_cores=$(awk -v a="$before" -v b="$after" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (b - a) / (e - s) }')" \
    | tee -a "$W/results.txt"
}

# Alternating rounds, so that a slow moment of the machine falls on both brokers alike.
echo "Palisade: QoS 1, PUBACK after the durable commit. Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'): QoS 1, TLS 1.3, require_certificate, persistence off."
for round in $(seq 1 "$ROUNDS"); do
  measure "round=$round palisade" "$MQTT" "$CA" "$SERVER"
  measure "round=$round mosquitto" "$MQ_PORT" "$W/both-ca.pem" "$MPID"
done
grep -q 'mosquitto.*acked=0 ' "$W/results.txt" && { echo "Mosquitto failed:"; tail -5 "$W/mosquitto.log"; exit 1; }

median() { grep " $1 " "$W/results.txt" | sed -E 's/.*msgs\/s=([0-9]+).*/\1/' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
p=$(median palisade); m=$(median mosquitto)
echo "median msgs/s: Palisade $p, Mosquitto $m"
awk -v p="$p" -v m="$m" 'BEGIN { if (m > 0) printf "ratio Palisade/Mosquitto (medians) = %.2f\n", p / m }'
