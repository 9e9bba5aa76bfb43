#!/usr/bin/env bash
# Vulnerability exposure end to end, through the HTTPS API (issue 10): a fresh server (SQLite)
# with DEVICES devices (default 1,000,000) over 1,000 firmware builds with a 200-component
# CycloneDX SBOM each, then, timed: 1,000 OSV advisories imported as one zip, the
# affected-devices query (10,000 requests at concurrency 1 and 4), a 10,000-component SBOM
# ingested, and a restart (exposure index rebuilt from the database) with the server's RSS.
# Usage: scripts/bench-vuln.sh [DEVICES] [QUERIES]
set -euo pipefail
DEVICES=${1:-1000000}
QUERIES=${2:-10000}
cd "$(dirname "$0")/.."
cargo build --release -q -p palisade --bin palisade --example vuln_bench
BIN=$PWD/target/release/palisade
VB=$PWD/target/release/examples/vuln_bench
W=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "== generating data ($DEVICES devices) in $W"
"$VB" generate --dir "$W/gen" --builds 1000 --components 200 --advisories 1000 --devices "$DEVICES" --big 10000
(cd "$W/gen/advisories" && zip -q -r "$W/gen/advisories.zip" .)
echo "advisories.zip: $(wc -c < "$W/gen/advisories.zip") bytes, $(ls "$W/gen/advisories" | wc -l) files"

# Starts the server on $W/data; sets PID, PORT and START_S (seconds to the listening line).
start_server() {
  local log=$1 t0
  : > "$W/serve.out"
  t0=$(now)
  PALISADE_LOG_FORMAT=json PALISADE_LOG_LEVEL=info "$BIN" serve --data-dir "$W/data" --console-addr 127.0.0.1:0 \
    --device-https-addr 127.0.0.1:0 --mqtt-addr 127.0.0.1:0 > "$W/serve.out" 2> "$log" &
  PID=$!
  for _ in $(seq 1 3000); do  # at most 300 s: the index rebuild of a big fleet takes a while
    grep -q '"event":"listening"' "$W/serve.out" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { echo "server exited:"; tail -20 "$log"; exit 1; }
    sleep 0.1
  done
  grep -q '"event":"listening"' "$W/serve.out" || { echo "server did not listen within 300 s"; exit 1; }
  START_S=$(secs "$t0" "$(now)")
  PORT=$(sed -E 's/.*"console":"[^"]*:([0-9]+)".*/\1/' "$W/serve.out" | head -1)
}
stop_server() {
  kill -TERM "$PID"
  for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null && { echo "server still running 60 s after SIGTERM"; exit 1; }
  wait "$PID" 2>/dev/null || true
  PID=
}
rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status"; }
hwm_mb() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status"; }
index_ms() { grep 'exposure index loaded' "$1" | tail -1 | grep -oE '"ms":[0-9]+' | grep -oE '[0-9]+$'; }

start_server "$W/serve1.log"
KEY=$("$BIN" apikey create --data-dir "$W/data" --role admin)
CA=$W/data/pki/root-ca.pem
URL=https://localhost:$PORT
curl_api() { curl -sS --max-time 600 --cacert "$CA" -H "Authorization: Bearer $KEY" "$@"; }

echo "== importing $DEVICES devices"
t0=$(now)
for f in "$W"/gen/devices-*.csv; do
  out=$(curl_api -H 'Content-Type: text/csv' --data-binary @"$f" -o "$W/import.json" -w '%{http_code} %{time_total}' \
    "$URL/api/v1/devices/import")
  [ "${out%% *}" = 200 ] || [ "${out%% *}" = 201 ] || { echo "import of $f: $out"; head -c 600 "$W/import.json"; exit 1; }
  echo "  $(basename "$f"): $out s"
done
IMPORT_S=$(secs "$t0" "$(now)")
# The exposure index follows device writes asynchronously: wait (at most 300 s) until it counts them all.
placed() { curl_api "$URL/api/v1/vulnerabilities?top=1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["devices_covered"] + r["devices_without_sbom"] + r["devices_without_firmware_version"])'; }
for _ in $(seq 1 600); do [ "$(placed)" -ge "$DEVICES" ] && break; sleep 0.5; done
INDEXED_S=$(secs "$t0" "$(now)")
echo "devices imported in $IMPORT_S s; $(placed) in the exposure index after $INDEXED_S s"

echo "== uploading 1,000 SBOMs"
SBOM_OUT=$("$VB" put-sboms --url "$URL" --ca "$CA" --key "$KEY" --dir "$W/gen" --concurrency 1)
echo "$SBOM_OUT"
SBOMS_S=$(echo "$SBOM_OUT" | sed -E 's/.* in ([0-9.]+) s .*/\1/')

echo "== TIMED: 1,000 advisories as one zip"
out=$(curl_api -H 'Content-Type: application/zip' --data-binary @"$W/gen/advisories.zip" -o "$W/advisories.json" \
  -w '%{http_code} %{time_total}' "$URL/api/v1/advisories")
[ "${out%% *}" = 201 ] || { echo "advisory import: $out"; head -c 2000 "$W/advisories.json"; exit 1; }
ADV_S=$(printf %.2f "${out#* }")
ADV_REPORT=$(python3 - "$W/advisories.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
v = r["vulnerabilities"]
pairs = sum(len(x["builds_newly_affected"]) for x in v)
hit = sum(1 for x in v if x["devices_affected"] > 0)
w = r["warnings"]
print(f"files {r['files']}, documents {r['documents']}, {len(v)} vulnerabilities ({hit} reaching devices), "
      f"{pairs} (vulnerability, build) pairs, {sum(x['devices_newly_affected'] for x in v)} device exposures, "
      f"alerts raised {r['alerts_raised']} (+{r['alerts_not_raised']} not raised), server ms {r.get('ms')}, "
      f"bad_bounds {w['bad_bounds_total']}, unparsed {len(w['unparsed_component_versions'])}, "
      f"unknown ecosystems {w['unknown_ecosystems']}")
PY
)
echo "advisory import: $ADV_S s; $ADV_REPORT"

echo "== TIMED: affected-devices queries"
Q1=$("$VB" query --url "$URL" --ca "$CA" --key "$KEY" --ids "$W/gen/ids.txt" --requests "$QUERIES" --concurrency 1)
echo "$Q1"
Q4=$("$VB" query --url "$URL" --ca "$CA" --key "$KEY" --ids "$W/gen/ids.txt" --requests "$QUERIES" --concurrency 4 --seed 11)
echo "$Q4"
TOP_S=$(curl_api -o "$W/top.json" -w '%{time_total}' "$URL/api/v1/vulnerabilities?top=50")
echo "GET /api/v1/vulnerabilities?top=50 (one curl, TLS handshake included): $TOP_S s, $(wc -c < "$W/top.json") bytes"

echo "== TIMED: one 10,000-component SBOM"
out=$(curl_api -X PUT -H 'Content-Type: application/json' --data-binary @"$W/gen/big-sbom.json" -o "$W/big.json" \
  -w '%{http_code} %{time_total}' "$URL/api/v1/firmware/gateway-big/9.9.9/sbom")
[ "${out%% *}" = 200 ] || { echo "big SBOM: $out"; head -c 2000 "$W/big.json"; exit 1; }
BIG_S=$(printf %.2f "${out#* }")
BIG_REPORT=$(python3 - "$W/big.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = lambda x: len(x) if isinstance(x, list) else x
print(f"{r['components']} components, {len(r['vulnerabilities'])} vulnerabilities, "
      f"{n(r['unparsed_versions'])} unparsed versions")
PY
)
echo "big SBOM: $BIG_S s ($(wc -c < "$W/gen/big-sbom.json") bytes; $BIG_REPORT)"
RSS1=$(rss_mb); HWM1=$(hwm_mb)
FIRST_INDEX_MS=$(index_ms "$W/serve1.log" || echo "?")

echo "== restart"
stop_server
start_server "$W/serve2.log"
URL=https://localhost:$PORT
for _ in $(seq 1 3000); do grep -q 'exposure index loaded' "$W/serve2.log" && break; sleep 0.1; done
INDEX_MS=$(index_ms "$W/serve2.log" || echo "?")
grep 'exposure index loaded' "$W/serve2.log" | tail -1
# A query after the restart: the rebuilt index answers the same.
curl_api -o /dev/null -w "first query after restart: %{http_code} %{time_total} s\n" \
  "$URL/api/v1/vulnerabilities/$(head -1 "$W/gen/ids.txt")/devices"
sleep 2
RSS2=$(rss_mb); HWM2=$(hwm_mb)
DB_MB=$(du -sm "$W/data" | cut -f1)
echo "first start: index loaded in ${FIRST_INDEX_MS} ms; before restart RSS ${RSS1} MB (peak ${HWM1} MB)"
echo "restart: listening after $START_S s, exposure index loaded in $INDEX_MS ms, RSS ${RSS2} MB (peak ${HWM2} MB), data dir ${DB_MB} MB"
grep -E '"level":"(WARN|ERROR)"' "$W/serve1.log" "$W/serve2.log" | head -10 || true

pq() { echo "$1" | sed -E "s/.*$2 ([0-9.]+) ms.*/\1/"; }
cat <<EOF

| step ($DEVICES devices, $(date +%F)) | measured | goal |
| --- | --- | --- |
| setup: import $DEVICES devices (CSV, $(ls "$W"/gen/devices-*.csv | wc -l) requests) | ${IMPORT_S} s | – |
| setup: PUT 1,000 SBOMs × 200 components (one connection) | ${SBOMS_S} s | – |
| POST /api/v1/advisories, 1,000 OSV files in one zip (curl time_total) | ${ADV_S} s | ≤ 5 s |
| GET /api/v1/vulnerabilities/{id}/devices ×$QUERIES, concurrency 1 | p50 $(pq "$Q1" p50) ms, p99 $(pq "$Q1" p99) ms, max $(pq "$Q1" max) ms | p99 ≤ 20 ms |
| same, concurrency 4 | p50 $(pq "$Q4" p50) ms, p99 $(pq "$Q4" p99) ms, max $(pq "$Q4" max) ms | p99 ≤ 20 ms |
| PUT a 10,000-component CycloneDX SBOM (curl time_total) | ${BIG_S} s | ≤ 1 s |
| restart: exposure index rebuilt from the database ("exposure index loaded") | ${INDEX_MS} ms (listening after ${START_S} s) | – |
| server RSS after restart / before it (peak) | ${RSS2} MB / ${RSS1} MB (${HWM1} MB) | – |
EOF
