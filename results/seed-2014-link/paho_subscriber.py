#!/usr/bin/env python3
"""linecut's paho-mqtt subscriber: the 2014 experiment's client, reporting what it sees.

Shaped like the subscriber in the 2014 post: it connects, subscribes in ``on_connect`` and runs
``loop_forever()``, which reconnects by itself. Everything the client notices is printed on
stdout as one linecut event per line (JSON, the schema of ``crates/events``), stamped with the
wall clock in Unix microseconds, so linecut's runner can put it on the same timeline as the
proxy's view of the wire.

Works with paho-mqtt 1.6 (callback API version 1) and 2.x (callback API version 2); the first
line printed names the version in use. SIGTERM or SIGINT disconnects cleanly and exits 0.
"""

import argparse
import json
import signal
import socket
import sys
import time

import paho.mqtt
import paho.mqtt.client as mqtt

PAHO_VERSION = paho.mqtt.__version__
PAHO_MAJOR = int(PAHO_VERSION.split(".")[0])

# Disconnect codes of the VERSION1 callback API (paho 1.6): MQTT_ERR_KEEPALIVE, MQTT_ERR_CONN_LOST.
RC_KEEPALIVE = 16
RC_CONN_LOST = 7
# Reason codes the VERSION2 callback API (paho 2.x) reports for the same two cases.
REASON_KEEPALIVE_TIMEOUT = 141
REASON_UNSPECIFIED = 128


def now_us():
    return time.time_ns() // 1000


def emit(kind, **fields):
    event = {"ts_us": now_us(), "source": "subscriber", "type": kind}
    event.update(fields)
    print(json.dumps(event, separators=(",", ":")), flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--keepalive", type=int, default=60)
    p.add_argument("--clean-session", type=int, choices=(0, 1), default=1)
    p.add_argument("--topic", action="append", required=True, help="FILTER:QOS, repeatable")
    p.add_argument("--mqtt", choices=("3.1.1", "5"), default="3.1.1")
    p.add_argument("--reconnect-min", type=float, default=1.0)
    p.add_argument("--reconnect-max", type=float, default=120.0)
    p.add_argument("--tcp-user-timeout-ms", type=int, default=None,
                   help="TCP_USER_TIMEOUT for every socket the client opens")
    return p.parse_args()


def decode_payload(payload):
    """linecut's payload: ``lc1/<seq>/<pub_ts_us>/`` then padding. None if it is not one."""
    parts = payload.split(b"/", 3)
    if len(parts) < 4 or parts[0] != b"lc1":
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


def main():
    args = parse_args()
    topics = []
    for t in args.topic:
        name, _, qos = t.rpartition(":")
        topics.append((name, int(qos)))
    v5 = args.mqtt == "5"
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    client_id = args.client_id
    # `lost_us`: when the last connection ended, so each reconnect attempt says how long paho
    # waited before it (its back-off, as seen from outside).
    state = {"attempt": 0, "stopping": False, "lost_us": None}

    emit("client_info", client=client_id, library="paho-mqtt", version=PAHO_VERSION,
         detail="python " + sys.version.split()[0])

    kwargs = {"client_id": client_id, "protocol": protocol}
    if not v5:
        kwargs["clean_session"] = bool(args.clean_session)
    if PAHO_MAJOR >= 2:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    else:
        client = mqtt.Client(**kwargs)
    client.reconnect_delay_set(min_delay=args.reconnect_min, max_delay=args.reconnect_max)

    def on_connect(client, userdata, flags, rc, properties=None):
        code = rc.value if hasattr(rc, "value") else int(rc)
        if isinstance(flags, dict):
            present = bool(flags.get("session present", 0))
        else:
            present = bool(flags.session_present)
        emit("connack", client=client_id, code=code, session_present=present)
        if code == 0:
            # The 2014 idiom: (re-)subscribe on every connect.
            client.subscribe(topics)
            emit("subscribe_sent", client=client_id, reason="always",
                 topics=[{"filter": n, "qos": q} for n, q in topics])

    def on_subscribe(client, userdata, mid, granted, properties=None):
        codes = [g.value if hasattr(g, "value") else int(g) for g in granted]
        emit("suback", client=client_id, packet_id=mid, codes=codes)

    def on_message(client, userdata, msg):
        fields = {"client": client_id, "topic": msg.topic, "qos": msg.qos, "dup": bool(msg.dup),
                  "retain": bool(msg.retain), "payload_len": len(msg.payload)}
        if msg.qos > 0:
            fields["packet_id"] = msg.mid
        decoded = decode_payload(msg.payload)
        if decoded is None:
            fields["foreign"] = True
        else:
            fields["seq"], fields["pub_ts_us"] = decoded
        emit("message", **fields)

    def disconnect_cause(code):
        if state["stopping"]:
            return "requested"
        if PAHO_MAJOR >= 2:
            if code == REASON_KEEPALIVE_TIMEOUT:
                return "keepalive_timeout"
            if code == REASON_UNSPECIFIED:
                return "connection_lost"
            return "other"
        if code == RC_KEEPALIVE:
            return "keepalive_timeout"
        if code == RC_CONN_LOST:
            return "connection_lost"
        return "other"

    def lost():
        state["lost_us"] = now_us()

    def on_disconnect_v1(client, userdata, rc, properties=None):
        lost()
        text = mqtt.error_string(rc) if rc else "disconnected"
        emit("disconnected", client=client_id, cause=disconnect_cause(rc),
             error=f"paho {PAHO_VERSION} rc={rc} ({text})")

    def on_disconnect_v2(client, userdata, flags, reason, properties=None):
        lost()
        code = reason.value if hasattr(reason, "value") else int(reason)
        emit("disconnected", client=client_id, cause=disconnect_cause(code),
             error=f"paho {PAHO_VERSION} reason={code} ({reason})")

    def on_log(client, userdata, level, text):
        # paho says what it sends and receives only in its log.
        if text.startswith("Sending PINGREQ"):
            emit("ping_sent", client=client_id)
        elif text.startswith("Received PINGRESP"):
            emit("ping_received", client=client_id)
        elif text.startswith("Sending CONNECT"):
            state["attempt"] += 1
            lost = state["lost_us"]
            delay_ms = 0 if lost is None else max(0, (now_us() - lost) // 1000)
            emit("connect_attempt", client=client_id, attempt=state["attempt"],
                 broker=f"{args.host}:{args.port}", delay_ms=delay_ms)

    def on_socket_open(client, userdata, sock):
        # The device's TCP_USER_TIMEOUT: unacknowledged data older than this ends the
        # connection in the kernel. Set on every socket, so reconnects have it too.
        if args.tcp_user_timeout_ms is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, args.tcp_user_timeout_ms)

    client.on_socket_open = on_socket_open
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect_v2 if PAHO_MAJOR >= 2 else on_disconnect_v1
    client.on_log = on_log

    def stop(signum, frame):
        state["stopping"] = True
        client.disconnect()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if v5:
        client.connect(args.host, args.port, args.keepalive, clean_start=bool(args.clean_session))
    else:
        client.connect(args.host, args.port, args.keepalive)
    client.loop_forever(retry_first_connection=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
