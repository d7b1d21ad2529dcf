#!/usr/bin/env python3
"""linecut's paho-mqtt subscriber: the 2014 experiment's client, reporting what it sees.

Shaped like the subscriber in the 2014 post: it connects, subscribes in ``on_connect`` and runs
``loop_forever()``, which reconnects by itself. Everything the client notices is printed on
stdout as one linecut event per line (JSON, the schema of ``crates/events``), stamped with the
wall clock in Unix microseconds, so linecut's runner can put it on the same timeline as the
proxy's view of the wire. Nothing else may reach stdout; notes go to stderr.

Runs unchanged on paho-mqtt 1.0 (the 2014 release), 1.6 (callback API version 1) and 2.x
(callback API version 2); the first line printed names the version in use. The point is to
measure each release as it behaves, so the script observes paho and never fixes it:

- Reconnecting. 1.6 and 2.x back off between ``--reconnect-min`` and ``--reconnect-max``
  (``reconnect_delay_set``) and retry a failed first connection themselves
  (``loop_forever(retry_first_connection=True)``); their TCP connect gives up after 5 s. 1.0 has
  none of that: ``loop_forever`` sleeps 1 s and reconnects forever, swallowing the error, and
  its connect has no timeout of its own (only the kernel's SYN retries end it). So on 1.0 the
  reconnect arguments cannot apply (a note on stderr says so) and the first connection is made
  by the script with the same 1 s rhythm, since 1.0's ``loop_forever`` would raise on it.
- Seeing attempts. No release reports a failed connect to the application in a way 1.0 shares,
  and ``loop_forever`` swallows the error, so ``reconnect()`` is overridden: it reports every
  attempt before paho makes it and every failure (a ``disconnected`` with the errno) before
  paho handles it as it would.
- Sockets. 1.0 has no ``on_socket_open``; the TCP_USER_TIMEOUT the device has is set right
  after its ``reconnect()`` returns instead.
- Keepalive. Every release reports one keepalive timeout twice (``_check_keepalive`` and then
  ``loop_misc`` both call ``on_disconnect``), so only the first ``disconnected`` of each
  connection is printed.
- Why a connection ended. 1.6 and 2.x say keepalive or "connection lost"; 1.0 says rc=1 for a
  keepalive timeout, a FIN and a socket error alike, and ``print()``s the socket error on
  stdout, where it would break the JSON lines. On 1.0 the module's ``print`` is replaced so the
  error goes to stderr and is kept to name the cause, and a disconnect inside ``loop_misc``
  (the keepalive checks) is a keepalive timeout.
- Stopping. SIGTERM or SIGINT sends DISCONNECT on a live connection and exits 0. 1.0's
  ``disconnect()`` takes non-reentrant locks, and every release's ``loop_write`` may be
  mid-packet when a signal arrives, so the handler never calls into paho: with a connection it
  only sets a flag that ``loop_misc`` acts on; without one (connecting, backing off) it
  unwinds the loop at once, since 1.0's blocking connect or a 2 minute back-off could outlast
  the runner's grace period.
"""

import argparse
import errno
import inspect
import json
import signal
import socket
import sys
import time

import paho.mqtt
import paho.mqtt.client as mqtt

PAHO_VERSION = paho.mqtt.__version__
PAHO_MAJOR = int(PAHO_VERSION.split(".")[0])
# What the release can do, asked of paho itself rather than inferred from its version.
HAS_BACKOFF = hasattr(mqtt.Client, "reconnect_delay_set") and (
    "retry_first_connection" in inspect.signature(mqtt.Client.loop_forever).parameters)
HAS_SOCKET_OPEN = isinstance(getattr(mqtt.Client, "on_socket_open", None), property)

# Disconnect codes of the VERSION1 callback API (paho 1.x).
RC_SUCCESS = 0
RC_LEGACY_ERROR = 1  # 1.0: keepalive timeout, FIN and socket error alike
RC_CONN_REFUSED = 5  # CONNACK carried a refusal
RC_CONN_LOST = 7
RC_KEEPALIVE = 16
# Reason codes the VERSION2 callback API (paho 2.x) reports for the same two cases.
REASON_KEEPALIVE_TIMEOUT = 141
REASON_UNSPECIFIED = 128

# The back-off 1.6 and 2.x get when the runner passes none (1.0 always sleeps 1 s).
DEFAULT_RECONNECT_MIN = 1.0
DEFAULT_RECONNECT_MAX = 120.0

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class StopClient(BaseException):
    """Unwinds paho's loop when a stop arrives with no connection to close.

    A BaseException, so paho's ``except Exception`` around callbacks lets it through."""


def now_us():
    return time.time_ns() // 1000


def emit(kind, **fields):
    event = {"ts_us": now_us(), "source": "subscriber", "type": kind}
    event.update(fields)
    line = json.dumps(event, separators=(",", ":")) + "\n"
    # A stop may unwind the program from its handler: held off while a line is written, it can
    # never leave half a line for the runner.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def note(text):
    """For people reading the client's stderr file; never on stdout."""
    sys.stderr.write(f"paho_subscriber: {text}\n")
    sys.stderr.flush()


def describe_os_error(err):
    """``EHOSTUNREACH (No route to host)``; a timeout without an errno says what it is."""
    name = errno.errorcode.get(err.errno) if err.errno is not None else None
    if name:
        return f"{name} ({err.strerror or err})"
    return f"{type(err).__name__} ({err})"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--keepalive", type=int, default=60)
    p.add_argument("--clean-session", type=int, choices=(0, 1), default=1)
    p.add_argument("--topic", action="append", required=True, help="FILTER:QOS, repeatable")
    p.add_argument("--mqtt", choices=("3.1.1", "5"), default="3.1.1")
    # None when not given, so paho 1.0 can tell the runner asked for a back-off it cannot do.
    p.add_argument("--reconnect-min", type=float, default=None,
                   help=f"seconds (default {DEFAULT_RECONNECT_MIN}; paho 1.0: fixed 1 s)")
    p.add_argument("--reconnect-max", type=float, default=None,
                   help=f"seconds (default {DEFAULT_RECONNECT_MAX}; paho 1.0: fixed 1 s)")
    p.add_argument("--session-expiry", type=int, default=None,
                   help="MQTT 5 Session Expiry Interval, seconds")
    p.add_argument("--receive-maximum", type=int, default=None, help="MQTT 5 Receive Maximum")
    p.add_argument("--will-topic", default=None, help="leave a Last Will on this topic")
    p.add_argument("--will-payload", default="")
    p.add_argument("--will-qos", type=int, choices=(0, 1, 2), default=0)
    p.add_argument("--will-retain", type=int, choices=(0, 1), default=0)
    p.add_argument("--will-delay", type=int, default=None,
                   help="MQTT 5 Will Delay Interval, seconds")
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


class Watch:
    """What the script knows about the client beyond its callbacks: the attempt (connection)
    number, when the last connection ended, why, and whether it has been told to stop."""

    def __init__(self, client_id, broker, tcp_user_timeout_ms):
        self.client_id = client_id
        self.broker = broker
        self.tcp_user_timeout_ms = tcp_user_timeout_ms
        self.attempt = 0
        # The attempt whose end has been reported: paho reports some ends twice.
        self.reported = 0
        # When the last connection (or attempt) ended, so each attempt says how long paho
        # waited before it (its back-off, as seen from outside).
        self.lost_us = None
        # paho 1.0's socket error on this connection (it only prints it).
        self.socket_error = None
        # Inside loop_misc, where a 1.0 disconnect without a socket error is a keepalive timeout.
        self.in_keepalive = False
        self.stopping = False
        self.disconnect_sent = False

    def check_stop(self):
        """Where paho would go on connecting or backing off: a requested stop ends it here."""
        if self.stopping and not self.disconnect_sent:
            raise StopClient

    def connect_attempt(self):
        self.check_stop()
        self.attempt += 1
        self.socket_error = None
        delay_ms = 0 if self.lost_us is None else max(0, (now_us() - self.lost_us) // 1000)
        emit("connect_attempt", client=self.client_id, attempt=self.attempt,
             broker=self.broker, delay_ms=delay_ms)

    def connect_failed(self, err):
        if isinstance(err, ConnectionRefusedError):
            cause = "refused"
        elif isinstance(err, (TimeoutError, socket.timeout)) or err.errno == errno.ETIMEDOUT:
            cause = "connect_timeout"
        else:
            cause = "other"
        self.disconnected(cause, f"connect failed: {describe_os_error(err)}")
        self.check_stop()

    def disconnected(self, cause, error):
        if self.reported != self.attempt:
            self.reported = self.attempt
            self.lost_us = now_us()
            emit("disconnected", client=self.client_id, cause=cause, error=error)

    def socket_opened(self, sock):
        # The device's TCP_USER_TIMEOUT: unacknowledged data older than this ends the
        # connection in the kernel. Set on every socket, so reconnects have it too.
        if self.tcp_user_timeout_ms is not None and sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self.tcp_user_timeout_ms)

    def paho_printed(self, *args, **kwargs):
        """paho 1.0 prints socket errors; kept to name the cause, shown on stderr."""
        for a in args:
            if isinstance(a, OSError):
                self.socket_error = a
        note("paho printed: " + " ".join(str(a) for a in args))


class Subscriber(mqtt.Client):
    """paho's client, with the few hooks every release lacks somewhere."""

    def __init__(self, watch, *args, **kwargs):
        self._linecut = watch
        super().__init__(*args, **kwargs)

    def reconnect(self):
        watch = self._linecut
        watch.connect_attempt()
        try:
            rc = super().reconnect()
        except OSError as err:
            watch.connect_failed(err)
            raise
        if not HAS_SOCKET_OPEN:
            watch.socket_opened(self._sock)
        return rc

    def loop_misc(self):
        watch = self._linecut
        if watch.stopping and not watch.disconnect_sent and self._sock is not None:
            # Here, between loop passes, paho holds no lock and no packet is half written.
            watch.disconnect_sent = True
            self.disconnect()
        watch.in_keepalive = True
        try:
            return super().loop_misc()
        finally:
            watch.in_keepalive = False


def main():
    args = parse_args()
    topics = []
    for t in args.topic:
        name, _, qos = t.rpartition(":")
        topics.append((name, int(qos)))
    v5 = args.mqtt == "5"
    if v5 and not hasattr(mqtt, "MQTTv5"):
        note(f"paho-mqtt {PAHO_VERSION} does not speak MQTT 5")
        return 2
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    client_id = args.client_id
    watch = Watch(client_id, f"{args.host}:{args.port}", args.tcp_user_timeout_ms)
    # Module globals come before builtins, so this catches paho 1.0's print(err) calls.
    mqtt.print = watch.paho_printed

    emit("client_info", client=client_id, library="paho-mqtt", version=PAHO_VERSION,
         detail="python " + sys.version.split()[0])

    kwargs = {"client_id": client_id, "protocol": protocol}
    if not v5:
        kwargs["clean_session"] = bool(args.clean_session)
    if PAHO_MAJOR >= 2:
        client = Subscriber(watch, mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    else:
        client = Subscriber(watch, **kwargs)
    if args.will_topic is not None:
        will = {"payload": args.will_payload, "qos": args.will_qos,
                "retain": bool(args.will_retain)}
        if args.will_delay is not None:
            # MQTT 5 only (checked by linecut); paho carries it as a will property.
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.WILLMESSAGE)
            props.WillDelayInterval = args.will_delay
            will["properties"] = props
        client.will_set(args.will_topic, **will)
    if HAS_BACKOFF:
        client.reconnect_delay_set(
            min_delay=DEFAULT_RECONNECT_MIN if args.reconnect_min is None else args.reconnect_min,
            max_delay=DEFAULT_RECONNECT_MAX if args.reconnect_max is None else args.reconnect_max)
    elif args.reconnect_min is not None or args.reconnect_max is not None:
        note(f"paho-mqtt {PAHO_VERSION} has no reconnect back-off: --reconnect-min/--reconnect-max "
             "do not apply; it waits a fixed 1 s before every reconnect")

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

    def legacy_cause():
        """paho 1.0's rc=1, told apart by what the script saw around it."""
        err = watch.socket_error
        if err is not None:
            if err.errno in (errno.ECONNRESET, errno.EPIPE):
                return "connection_reset", f"; socket error {describe_os_error(err)}"
            if err.errno == errno.ETIMEDOUT:
                return "kernel_timeout", f"; socket error {describe_os_error(err)}"
            return "other", f"; socket error {describe_os_error(err)}"
        if watch.in_keepalive:
            return "keepalive_timeout", "; in the keepalive check"
        return "closed_by_peer", "; end of stream"

    def disconnect_cause(code):
        if watch.stopping:
            return "requested", ""
        if PAHO_MAJOR >= 2:
            if code == REASON_KEEPALIVE_TIMEOUT:
                return "keepalive_timeout", ""
            if code == REASON_UNSPECIFIED:
                return "connection_lost", ""
            return "other", ""
        if code == RC_KEEPALIVE:
            return "keepalive_timeout", ""
        if code == RC_CONN_LOST:
            return "connection_lost", ""
        if code == RC_CONN_REFUSED:
            return "refused", ""
        if code == RC_LEGACY_ERROR and not HAS_BACKOFF:
            return legacy_cause()
        return "other", ""

    def on_disconnect_v1(client, userdata, rc, properties=None):
        cause, seen = disconnect_cause(rc)
        if rc == RC_LEGACY_ERROR and not HAS_BACKOFF:
            # error_string(1) is "Out of memory.", which 1.0's rc=1 never means.
            text = "connection ended"
        else:
            text = mqtt.error_string(rc) if rc else "disconnected"
        watch.disconnected(cause, f"paho {PAHO_VERSION} rc={rc} ({text}){seen}")
        watch.check_stop()

    def on_disconnect_v2(client, userdata, flags, reason, properties=None):
        code = reason.value if hasattr(reason, "value") else int(reason)
        cause, seen = disconnect_cause(code)
        watch.disconnected(cause, f"paho {PAHO_VERSION} reason={code} ({reason}){seen}")
        watch.check_stop()

    def on_log(client, userdata, level, text):
        # paho says what it sends and receives only in its log.
        if text.startswith("Sending PINGREQ"):
            emit("ping_sent", client=client_id)
        elif text.startswith("Received PINGRESP"):
            emit("ping_received", client=client_id)

    if HAS_SOCKET_OPEN:
        client.on_socket_open = lambda client, userdata, sock: watch.socket_opened(sock)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect_v2 if PAHO_MAJOR >= 2 else on_disconnect_v1
    client.on_log = on_log

    def stop(signum, frame):
        watch.stopping = True
        if client._sock is None:
            # Nothing to close: leave whatever paho is doing (a blocking connect, a back-off).
            raise StopClient
        # loop_misc sends the DISCONNECT; the wake-up saves waiting out select() (paho's own
        # channel for it, where the release has one open).
        wake = getattr(client, "_sockpairW", None)
        if wake is not None:
            try:
                wake.send(b"0")
            except OSError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    try:
        if v5:
            connect_props = None
            if args.session_expiry is not None or args.receive_maximum is not None:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties
                connect_props = Properties(PacketTypes.CONNECT)
                if args.session_expiry is not None:
                    connect_props.SessionExpiryInterval = args.session_expiry
                if args.receive_maximum is not None:
                    connect_props.ReceiveMaximum = args.receive_maximum
            client.connect_async(args.host, args.port, args.keepalive,
                                 clean_start=bool(args.clean_session), properties=connect_props)
        else:
            client.connect_async(args.host, args.port, args.keepalive)
        if HAS_BACKOFF:
            client.loop_forever(retry_first_connection=True)
        else:
            # 1.0's loop_forever lets a failed first connect escape; its own rhythm for later
            # ones is a 1 s sleep, kept here.
            while True:
                try:
                    client.reconnect()
                    break
                except OSError:
                    time.sleep(1)
            client.loop_forever()
    except StopClient:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
