# Sourced by the benchmark scripts: start Mosquitto 2 as the peer broker, configured as Palisade's
# device listener is (TLS 1.3, client certificate required and checked against Palisade's
# device CA chain in $W/device-chain.pem), with its own server certificate ($W/mqca.pem signs it).
# Usage: start_mosquitto W [extra mosquitto.conf lines]; sets MQ_PORT and MPID.
start_mosquitto() {
  local W=$1 extra=${2:-}
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=bench broker CA" \
    -keyout "$W/mqca.key" -out "$W/mqca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout "$W/mq.key" -out "$W/mq.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$W/mq.ext"
  openssl x509 -req -in "$W/mq.csr" -CA "$W/mqca.pem" -CAkey "$W/mqca.key" -CAcreateserial -days 1 \
    -extfile "$W/mq.ext" -out "$W/mq.pem" 2>/dev/null
  MQ_PORT=$((20000 + RANDOM % 20000))
  cat > "$W/mosquitto.conf" <<CONF
per_listener_settings true
# The benchmarks run from a private temporary directory: keep the user that can read it.
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
$extra
CONF
  mosquitto -c "$W/mosquitto.conf" > "$W/mosquitto.log" 2>&1 &
  MPID=$!
  for _ in $(seq 1 50); do (echo > "/dev/tcp/127.0.0.1/$MQ_PORT") 2>/dev/null && break; sleep 0.1; done
}
