#!/usr/bin/env bash
# The fleet simulator at scale: N simulated devices (each enrolled over EST with its own key)
# holding concurrent MQTT connections with distinct certificates against a local Palisade,
# reporting every INTERVAL. Prints the simulator's report line and the RAM and CPU of both
# processes.
# Usage: scripts/bench-sim.sh [N] [SECONDS] [INTERVAL]
set -euo pipefail
N=${1:-10000}
SECS=${2:-60}
INTERVAL=${3:-30s}
cd "$(dirname "$0")/.."
cargo build --release -q -p palisade --bin palisade
BIN=$PWD/target/release/palisade
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
ulimit -n "$(ulimit -Hn)"

PALISADE_LOG_LEVEL=warn "$BIN" serve --data-dir "$W/data" --console-addr 127.0.0.1:0 \
  --device-https-addr 127.0.0.1:0 --mqtt-addr 127.0.0.1:0 > "$W/serve.out" 2> "$W/serve.err" &
PID=$!
for _ in $(seq 1 300); do [ -s "$W/serve.out" ] && break; sleep 0.1; done
API=$(sed -E 's/.*"console":"[^"]*:([0-9]+)".*/\1/' "$W/serve.out")
KEY=$("$BIN" apikey create --data-dir "$W/data" --role admin)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system, in clock ticks
HZ=$(getconf CLK_TCK)

PALISADE_API_KEY=$KEY /usr/bin/time -v -o "$W/sim.time" "$BIN" sim --server "https://localhost:$API" \
  --ca "$W/data/pki/root-ca.pem" --devices "$N" --duration "${SECS}s" --interval "$INTERVAL" --ramp 1000 \
  --report "$W/report.json" > "$W/sim.out" 2> "$W/sim.err" &
TIMER=$!
for _ in $(seq 1 100); do SIM=$(pgrep -P "$TIMER" || true); [ -n "$SIM" ] && break; sleep 0.1; done
# The fleet is enrolled and connected once the server holds N sessions; then measure a window.
until grep -q "palisade_mqtt_sessions $N\b" <(curl -sS --cacert "$W/data/pki/root-ca.pem" "https://localhost:$API/metrics" 2>/dev/null) \
  || ! kill -0 "$SIM" 2>/dev/null; do sleep 1; done
c0=$(cpu "$PID"); s0=$(cpu "$SIM"); t0=$(date +%s.%N)
sleep 20
c1=$(cpu "$PID"); s1=$(cpu "$SIM"); t1=$(date +%s.%N)
server_rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
sim_rss=$(awk '/VmRSS/ {print $2}' "/proc/$SIM/status")
wait "$TIMER" || { cat "$W/sim.err"; exit 1; }
cat "$W/sim.out"
awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" -v hz="$HZ" \
  -v srss="$server_rss" -v mrss="$sim_rss" -v n="$N" 'BEGIN {
  printf "connected window: server cpu=%.1f%% rss=%.0f MiB | simulator cpu=%.1f%% rss=%.0f MiB (%d devices)\n",
    100 * (c1 - c0) / hz / (t1 - t0), srss / 1024, 100 * (s1 - s0) / hz / (t1 - t0), mrss / 1024, n }'
grep -E "Maximum resident|Elapsed" "$W/sim.time"
