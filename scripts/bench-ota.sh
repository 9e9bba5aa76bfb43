#!/usr/bin/env bash
# Serving firmware: N simulated devices (each enrolled over EST, running the real updater)
# take a signed MIB-MiB image in one single-phase rollout per model. Measures the time from
# the rollouts' creation to the last device's commit, and the server's CPU over that window;
# then, for reference, the same bytes fetched by curl over TLS 1.3 with a client certificate
# from Palisade's device listener and from nginx serving the same file.
# Usage: scripts/bench-ota.sh [N] [MIB]
set -euo pipefail
N=${1:-1000}
MIB=${2:-16}
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
DEV=$(sed -E 's/.*"device_https":"[^"]*:([0-9]+)".*/\1/' "$W/serve.out")
KEY=$("$BIN" apikey create --data-dir "$W/data" --role admin)
CA=$W/data/pki/root-ca.pem
URL=https://localhost:$API
export PALISADE_API_KEY=$KEY
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system, in clock ticks
HZ=$(getconf CLK_TCK)
api() { curl -sS --fail-with-body --cacert "$CA" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }

cd "$W"
"$BIN" firmware keygen --dir keys > /dev/null
"$BIN" firmware root --dir keys --server "$URL" --ca "$CA" > /dev/null
head -c $((MIB << 20)) /dev/urandom > image.bin
for model in smart_meter asset_tracker camera gateway; do
  "$BIN" firmware sign --dir keys --image image.bin --version 9.0.0 --hardware "$model" --counter 9 \
    --name "$model-9.0.0" --server "$URL" --ca "$CA" --out targets.json > /dev/null
  "$BIN" firmware publish --image image.bin --targets targets.json --server "$URL" --ca "$CA" > /dev/null
  rm targets.json
done

"$BIN" sim --server "$URL" --ca "$CA" --devices "$N" --duration 3600s --interval 300s --ramp 500 \
  > sim.out 2> sim.err &
SIMWRAP=$!
until grep -q "palisade_mqtt_sessions $N\b" <(curl -sS --cacert "$CA" "$URL/metrics" 2>/dev/null) \
  || ! kill -0 "$SIMWRAP" 2>/dev/null; do sleep 1; done
SIM=$(pgrep -f "palisade sim" | head -1)

c0=$(cpu "$PID"); s0=$(cpu "$SIM"); t0=$(date +%s.%N)
ids=()
for model in smart_meter asset_tracker camera gateway; do
  ids+=("$(api -X POST "$URL/api/v1/rollouts" -d "{\"target\":\"$model-9.0.0\",\"groups\":[\"sim\"],\"phases\":[\"100%\"]}" \
    | sed -E 's/.*"id":"([^"]+)".*/\1/')")
done
for id in "${ids[@]}"; do
  until api "$URL/api/v1/rollouts/$id" | grep -qE '"status":"(completed|halted)"'; do sleep 0.2; done
done
c1=$(cpu "$PID"); s1=$(cpu "$SIM"); t1=$(date +%s.%N)
committed=0
for id in "${ids[@]}"; do
  r=$(api "$URL/api/v1/rollouts/$id")
  committed=$((committed + $(echo "$r" | sed -E 's/.*"devices":\{[^}]*"committed":([0-9]+).*/\1/')))
done
awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v n="$N" \
  -v mib="$MIB" -v ok="$committed" 'BEGIN {
  secs = t1 - t0
  printf "palisade rollout: %d/%d devices committed a %d MiB image in %.1f s (%.0f MiB/s served); server cpu %.1f s (%.0f%% of one core); simulator cpu %.1f s\n",
    ok, n, mib, secs, ok * mib / secs, (c1 - c0) / hz, 100 * (c1 - c0) / hz / secs, (s1 - s0) / hz }'
kill "$SIMWRAP" 2>/dev/null || true

# Reference: the same image fetched by curl, 50 at a time, from Palisade and from nginx.
SHA=$(sha256sum image.bin | cut -d' ' -f1)
# A device of its own for curl (enrolled over EST with a key made here).
NEWID=$(api -X POST "$URL/api/v1/devices" -d '{"serial":"bench-curl","model":"smart_meter","vendor":"bench","criticality":"low","group":"bench"}' \
  | sed -E 's/.*"id":"([^"]+)".*/\1/')
TOK=$(api -X POST "$URL/api/v1/devices/$NEWID/enrollment-tokens" -d '{}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj "/CN=$NEWID" -outform DER \
  -out dev.csr 2> /dev/null
base64 -w0 dev.csr > dev.csr.b64
curl -sS --cacert "$CA" -u "$NEWID:$TOK" -H 'Content-Type: application/pkcs10' -H 'Content-Transfer-Encoding: base64' \
  --data-binary @dev.csr.b64 "https://localhost:$DEV/.well-known/est/simpleenroll" | base64 -d > dev.p7
openssl pkcs7 -inform DER -in dev.p7 -print_certs -out dev.pem
fetch() {  # fetch URL N times, 50 in parallel; prints seconds and the server's cpu seconds
  local url=$1 pid=$2 c0 c1 t0 t1
  c0=$(cpu "$pid"); t0=$(date +%s.%N)
  seq 1 "$N" | xargs -P 50 -I{} curl -sS --tlsv1.3 --cacert "$CA" --cert dev.pem --key dev.key -o /dev/null "$url"
  c1=$(cpu "$pid"); t1=$(date +%s.%N)
  awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v n="$N" -v mib="$MIB" -v who="$3" 'BEGIN {
    printf "%s: %d × %d MiB in %.1f s (%.0f MiB/s), server cpu %.1f s\n", who, n, mib, t1 - t0, n * mib / (t1 - t0), (c1 - c0) / hz }'
}
fetch "https://localhost:$DEV/firmware/$SHA" "$PID" "palisade /firmware (curl)"
if command -v nginx > /dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ngx.key -out ngx.pem -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost 2> /dev/null
  cat > nginx.conf <<NGX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events {}
http {
  access_log off;
  sendfile on;
  server {
    listen 127.0.0.1:18449 ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $W/ngx.pem;
    ssl_certificate_key $W/ngx.key;
    ssl_client_certificate $CA;
    ssl_verify_client on;
    ssl_verify_depth 3;
    root $W;
  }
}
NGX
  nginx -c "$W/nginx.conf"
  for _ in $(seq 1 50); do [ -s "$W/nginx.pid" ] && break; sleep 0.1; done
  NPID=$(cat "$W/nginx.pid")
  NW=$(pgrep -P "$NPID" | head -1)
  CA_SAVE=$CA; CA=$W/ngx.pem
  fetch "https://localhost:18449/image.bin" "$NW" "nginx 1 worker (curl)"
  CA=$CA_SAVE
  kill "$NPID"
fi
