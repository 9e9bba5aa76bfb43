#!/usr/bin/env python3
"""A device written with paho-mqtt (the Python client most device fleets use), for the interop
test: connects over TLS 1.3 with its client certificate, publishes telemetry at QoS 1 and waits
for each PUBACK, subscribes to its commands topic (granted) and to devices/# (refused).

Usage: paho_device.py HOST PORT CA CERT KEY DEVICE_ID (3.1.1|5) SEQ
Prints one JSON line with what happened; exits non-zero when a step fails.
"""
import json
import ssl
import sys
import threading

import paho.mqtt.client as mqtt

host, port, ca, cert, key, device, version, seq = sys.argv[1:9]
v5 = version == "5"
client = mqtt.Client(client_id=device, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.load_verify_locations(ca)
context.load_cert_chain(cert, key)
client.tls_set_context(context)

connected = threading.Event()
subscribed = {}
sub_done = threading.Event()
result = {"connack": None}


def on_connect(c, userdata, flags, rc, properties=None):
    result["connack"] = int(rc.value if hasattr(rc, "value") else rc)
    connected.set()


def on_subscribe(c, userdata, mid, granted, properties=None):
    codes = [int(g.value if hasattr(g, "value") else g) for g in granted]
    subscribed[mid] = codes
    if len(subscribed) == 2:
        sub_done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.connect(host, int(port), keepalive=30)
client.loop_start()
try:
    if not connected.wait(10) or result["connack"] != 0:
        raise SystemExit(f"not connected: {result}")
    telemetry = {"v": 1, "seq": int(seq), "net": {"tx_bytes": 1000, "rx_bytes": 2000},
                 "sys": {"cpu_pct": 3.5, "boot_id": "paho"}}
    info = client.publish(f"devices/{device}/telemetry", json.dumps(telemetry), qos=1)
    info.wait_for_publish(10)
    result["telemetry_acked"] = info.is_published()
    own = client.subscribe(f"devices/{device}/commands", qos=1)[1]
    everything = client.subscribe("devices/#", qos=1)[1]
    if not sub_done.wait(10):
        raise SystemExit(f"no SUBACK: {subscribed}")
    result["commands_granted"] = subscribed[own]
    result["wildcard_granted"] = subscribed[everything]
finally:
    client.disconnect()
    client.loop_stop()
print(json.dumps(result))
