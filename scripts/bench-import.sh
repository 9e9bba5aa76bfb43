#!/usr/bin/env bash
# Benchmark: CSV import of N devices (default 10,000) into a fresh server, over HTTPS, as an
# operator would do it with curl. Runs on SQLite, and on PostgreSQL when
# PALISADE_TEST_POSTGRES_URL is set. Usage: scripts/bench-import.sh [N] [RUNS]
set -euo pipefail
N=${1:-10000}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release -q -p palisade
BIN=$PWD/target/release/palisade
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

awk -v n="$N" 'BEGIN {
  print "serial,model,vendor,owner,owner_contact,purpose,criticality,group,region,tags,lat,lon,firmware_version";
  split("low,medium,high,critical", crit, ",");
  for (i = 0; i < n; i++)
    printf "SN-%07d,meter-3,acme,metering,owner%d@example.com,billing,%s,group-%d,region-%d,outdoor;bench,41.%04d,-87.%04d,1.4.%d\n",
      i, i, crit[i % 4 + 1], i % 50, i % 7, i % 10000, (i * 7) % 10000, i % 3
}' > "$WORK/devices.csv"
echo "devices: $N, CSV size: $(wc -c < "$WORK/devices.csv") bytes, runs per backend: $RUNS"

run_one() { # $1 = backend label, $2 = database url or empty
  local dir="$WORK/data-$RANDOM$RANDOM"
  local args=(serve --data-dir "$dir" --console-addr 127.0.0.1:0)
  [ -n "$2" ] && args+=(--database-url "$2")
  PALISADE_LOG_LEVEL=warn "$BIN" "${args[@]}" > "$dir.out" 2> "$dir.err" &
  local pid=$!
  for _ in $(seq 1 300); do [ -s "$dir.out" ] && break; sleep 0.1; done
  local port; port=$(sed -E 's/.*"console":"[^"]*:([0-9]+)".*/\1/' "$dir.out" | head -1)
  local keyargs=(apikey create --data-dir "$dir" --role admin)
  [ -n "$2" ] && keyargs+=(--database-url "$2")
  local key; key=$("$BIN" "${keyargs[@]}")
  local out; out=$(curl -sS --cacert "$dir/pki/root-ca.pem" -H "Authorization: Bearer $key" \
      -H 'Content-Type: text/csv' --data-binary @"$WORK/devices.csv" \
      -w ' %{http_code} %{time_total}' "https://localhost:$port/api/v1/devices/import")
  kill -TERM "$pid"; wait "$pid" || true
  echo "$1: $out"
}

pg_schema_url() { # a fresh schema per run so every import starts from an empty database
  local schema="bench_$RANDOM$RANDOM"
  psql -q "$PALISADE_TEST_POSTGRES_URL" -c "CREATE SCHEMA $schema" >/dev/null
  local sep='?'; [[ "$PALISADE_TEST_POSTGRES_URL" == *\?* ]] && sep='&'
  echo "${PALISADE_TEST_POSTGRES_URL}${sep}options=-c%20search_path%3D$schema"
}

for _ in $(seq 1 "$RUNS"); do run_one sqlite ""; done
if [ -n "${PALISADE_TEST_POSTGRES_URL:-}" ]; then
  for _ in $(seq 1 "$RUNS"); do run_one postgres "$(pg_schema_url)"; done
fi
