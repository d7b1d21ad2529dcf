#!/usr/bin/env python3
"""linecut's aiomqtt subscriber: an asyncio client built the way aiomqtt's docs show, reporting
what it sees.

Written for aiomqtt 2.5.1 on paho-mqtt 2.1.0 (the first line printed names both). Everything the
client notices is printed on stdout as one linecut event per line (JSON), stamped with the wall
clock in Unix microseconds. Nothing else may reach stdout: aiomqtt's logger ("mqtt", level
WARNING) has no handler, so Python's last-resort handler writes its warnings to stderr.

The library's rules this program relies on (aiomqtt 2.5.1 ``client.py``, paho-mqtt 2.1.0):

- Keepalive is paho's: ``loop_misc`` sends PINGREQ once nothing was sent or nothing received for
  K and, when the next check still finds K without traffic and the PINGRESP missing, closes the
  socket and reports reason 141 ("Keep alive timeout"). aiomqtt runs ``loop_misc`` once a second
  (``_misc_loop``), so each deadline may be up to about 1 s late: a silent line is noticed K to
  2K after it went silent, plus up to about 2 s (with no other traffic the checks fall on the
  ping schedule and the verdict comes 2K after the last PINGRESP).
- No automatic reconnect: aiomqtt builds its paho client with ``reconnect_on_failure=False``.
  This program follows the pattern of aiomqtt's docs ("Reconnection"): one reused ``Client``,
  ``async with client`` in a ``while True`` loop, and on ``MqttError`` a fixed 5 s sleep before
  the next attempt; no back-off. It subscribes inside every ``async with`` (aiomqtt never
  resubscribes), so ``subscribe_sent`` has reason "always".
- Timeouts: paho's TCP connect gives up after 5 s; aiomqtt waits ``timeout`` (10 s) for the
  CONNACK and for each SUBACK.
- A reused client does not wait for the CONNACK after a lost connection: aiomqtt resets its
  "connected" future only on a clean exit, so after a loss ``__aenter__`` returns as soon as the
  CONNECT is written and the SUBSCRIBE may go out before the CONNACK arrives (and a refused
  CONNACK on such a reconnect is not raised). The ``connack`` line shows what the broker really
  answered, in the order it came.
- MQTT 5: Clean Start is given explicitly on every connect (``--clean-session``), not aiomqtt's
  default "first connection only".

What it observes and how (several through aiomqtt's private parts, named here):

- connect_attempt: before each ``async with client``, which makes one TCP connection.
- connack, session present: aiomqtt keeps the CONNACK flags to itself; the program subclasses
  ``aiomqtt.Client`` and overrides its private paho callback ``_on_connect``, which receives
  paho's ``ConnectFlags.session_present`` and reason code, then hands on to aiomqtt's. (For
  MQTT 3.1.1 paho 2.x gives the return code as its MQTT 5 equivalent, 5 as 135; the wire code
  is printed.)
- suback: the override of the private ``_on_subscribe`` (packet id and reason codes).
- ping_sent / ping_received: paho reports PINGREQ and PINGRESP only in its log; the program sets
  ``on_log`` on the paho client aiomqtt wraps (the private attribute ``Client._client``) and
  watches for "Sending PINGREQ" and "Received PINGRESP".
- message: from ``async for message in client.messages``, as an aiomqtt application sees them.
  aiomqtt's ``Message`` has no DUP flag; the override of the private ``_on_message`` notes
  paho's flag for each message in arrival order and the loop takes it back with the message.
- disconnected: the override of the private ``_on_disconnect`` gets paho's reason at the moment
  paho gives up: 141 -> keepalive_timeout; 128 (paho's "connection lost") is told apart by what
  paho logged just before: a receive error ECONNRESET/EPIPE -> connection_reset, ETIMEDOUT or a
  socket timeout -> kernel_timeout, another error -> other, nothing (end of stream) ->
  closed_by_peer; a DISCONNECT from an MQTT 5 broker -> closed_by_peer. A failed connect is
  named from the ``MqttError`` aiomqtt raises: its message for the OSError of paho's connect
  (the OSError itself is the exception's ``__context__``) -> refused, connect_timeout or other;
  a CONNACK refusal (``MqttConnectError``) -> refused; "Operation timed out" while waiting for
  the CONNACK -> connect_timeout.
- Stopping: SIGTERM or SIGINT cancels the main task. Inside ``async with`` the cancellation
  makes aiomqtt's ``__aexit__`` send DISCONNECT and wait for paho to close the socket; while
  connecting or waiting to reconnect it ends at once. The process then leaves with
  ``os._exit(0)``, since a connect still blocked in aiomqtt's executor thread (up to 5 s) would
  otherwise hold up interpreter exit; a 1.5 s guard ends it if the DISCONNECT cannot be written.

``--version`` prints the client_info line (the libraries as loaded) and exits 0. The program
runs on the Python of the virtual environment aiomqtt is installed in.
"""

import argparse
import asyncio
import collections
import errno
import json
import os
import signal
import socket
import sys
import threading
import time

import aiomqtt
import paho.mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AIOMQTT_VERSION = aiomqtt.__version__
PAHO_VERSION = paho.mqtt.__version__

# aiomqtt's docs reconnect every 5 s.
RECONNECT_INTERVAL = 5.0
STOP_GRACE = 1.5

REASON_KEEPALIVE_TIMEOUT = 141
REASON_UNSPECIFIED = 128
# paho 2.x hands an MQTT 3.1.1 CONNACK return code to on_connect as the MQTT 5 reason code of
# the same meaning; the wire code is reported.
V311_CONNACK_CODES = {0: 0, 132: 1, 133: 2, 136: 3, 134: 4, 135: 5}

_emit_lock = threading.Lock()


def now_us():
    return time.time_ns() // 1000


def emit(kind, **fields):
    event = {"ts_us": now_us(), "source": "subscriber", "type": kind}
    event.update(fields)
    line = json.dumps(event, separators=(",", ":")) + "\n"
    # paho may call back from aiomqtt's executor thread while it connects.
    with _emit_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def note(text):
    """For people reading the client's stderr file; never on stdout."""
    sys.stderr.write(f"aiomqtt_subscriber: {text}\n")
    sys.stderr.flush()


def describe_os_error(err):
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
    p.add_argument("--session-expiry", type=int, default=None,
                   help="MQTT 5 Session Expiry Interval, seconds")
    p.add_argument("--receive-maximum", type=int, default=None, help="MQTT 5 Receive Maximum")
    p.add_argument("--will-topic", default=None, help="leave a Last Will on this topic")
    p.add_argument("--will-payload", default="")
    p.add_argument("--will-qos", type=int, choices=(0, 1, 2), default=0)
    p.add_argument("--will-retain", type=int, choices=(0, 1), default=0)
    p.add_argument("--will-delay", type=int, default=None,
                   help="MQTT 5 Will Delay Interval, seconds")
    # Values may start with '-' (``--client-id -x``): argparse would take them for options.
    argv = []
    it = iter(sys.argv[1:])
    for arg in it:
        if arg.startswith("--") and "=" not in arg:
            value = next(it, None)
            if value is not None:
                arg = f"{arg}={value}"
        argv.append(arg)
    return p.parse_args(argv)


def decode_payload(payload):
    """linecut's payload: ``lc1/<seq>/<pub_ts_us>/`` then padding. None if it is not one."""
    parts = payload.split(b"/", 3)
    if len(parts) < 4 or parts[0] != b"lc1":
        return None
    if not parts[1].isdigit():
        return None
    try:
        seq, pub_ts_us = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if seq >= 1 << 64 or not -(1 << 63) <= pub_ts_us < 1 << 63:
        return None
    return seq, pub_ts_us


class Watch:
    """The attempt (connection) number, when the last one ended, and whether it was reported."""

    def __init__(self, client_id, broker):
        self.client_id = client_id
        self.broker = broker
        self.attempt = 0
        self.reported = 0
        self.lost_us = None
        self.socket_error = None  # what paho logged about the socket on this connection
        self.connacked = False
        self.stopping = False

    def connect_attempt(self):
        self.attempt += 1
        self.socket_error = None
        self.connacked = False
        delay_ms = 0 if self.lost_us is None else max(0, (now_us() - self.lost_us) // 1000)
        emit("connect_attempt", client=self.client_id, attempt=self.attempt,
             broker=self.broker, delay_ms=delay_ms)

    def disconnected(self, cause, error):
        if self.reported != self.attempt:
            self.reported = self.attempt
            self.lost_us = now_us()
            emit("disconnected", client=self.client_id, cause=cause, error=error)

    def loss_cause(self):
        """paho's reason 128 told apart by the socket error it logged, if any."""
        text = self.socket_error
        if text is None:
            return "closed_by_peer", "end of stream"
        if "[Errno 104]" in text or "[Errno 32]" in text or "reset" in text.lower():
            return "connection_reset", text
        if "[Errno 110]" in text or "timed out" in text or text.startswith("timeout"):
            return "kernel_timeout", text
        return "other", text

    def failed(self, err):
        """The ``MqttError`` that ended ``async with``; reported unless paho already did."""
        if self.reported == self.attempt:
            return
        if self.stopping:
            self.disconnected("requested", "stopped by a signal")
            return
        ctx = err.__context__
        if isinstance(err, aiomqtt.MqttCodeError) and err.__class__.__name__ == "MqttConnectError":
            cause = "refused"
            text = f"CONNACK refused: {err}"
        elif isinstance(ctx, OSError):
            if isinstance(ctx, ConnectionRefusedError):
                cause = "refused"
            elif isinstance(ctx, (TimeoutError, socket.timeout)) or ctx.errno == errno.ETIMEDOUT:
                cause = "connect_timeout"
            elif ctx.errno in (errno.ECONNRESET, errno.EPIPE):
                cause = "connection_reset"
            else:
                cause = "other"
            text = f"connect failed: {describe_os_error(ctx)}"
        elif str(err) == "Operation timed out":
            cause = "connect_timeout" if not self.connacked else "other"
            text = "aiomqtt: Operation timed out" + (
                " (no CONNACK)" if not self.connacked else " (no SUBACK)")
        else:
            cause = "other"
            inner = err.__cause__
            text = f"aiomqtt: {err}" + (f" ({inner!r})" if inner is not None else "")
        self.disconnected(cause, text)


class Subscriber(aiomqtt.Client):
    """aiomqtt's client with its private paho callbacks overridden to report, then hand on."""

    def __init__(self, watch, v5, **kwargs):
        self._linecut = watch
        self._linecut_v5 = v5
        # (mid, dup) of each message paho delivered, in arrival order.
        self._linecut_dups = collections.deque()
        super().__init__(**kwargs)
        self._client.on_log = self._linecut_log

    def _linecut_log(self, client, userdata, level, text):
        if text.startswith("Sending PINGREQ"):
            emit("ping_sent", client=self._linecut.client_id)
        elif text.startswith("Received PINGRESP"):
            emit("ping_received", client=self._linecut.client_id)
        elif text.startswith(("failed to receive on socket", "timeout on socket")):
            if self._linecut.socket_error is None:
                self._linecut.socket_error = text

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        code = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        if not self._linecut_v5:
            code = V311_CONNACK_CODES.get(code, code)
        emit("connack", client=self._linecut.client_id, code=code,
             session_present=bool(flags.session_present))
        if code == 0:
            self._linecut.connacked = True
        else:
            self._linecut.disconnected("refused", f"CONNACK refused: {code} ({reason_code})")
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        watch = self._linecut
        code = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        words = f"paho {PAHO_VERSION} reason={code} ({reason_code})"
        if watch.stopping:
            watch.disconnected("requested", "stopped by a signal")
        elif getattr(flags, "is_disconnect_packet_from_server", False):
            watch.disconnected("closed_by_peer", f"DISCONNECT from the broker: {words}")
        elif code == REASON_KEEPALIVE_TIMEOUT:
            watch.disconnected("keepalive_timeout", words)
        elif code == REASON_UNSPECIFIED:
            cause, seen = watch.loss_cause()
            watch.disconnected(cause, f"{words}; {seen}")
        elif code != 0:
            watch.disconnected("other", words)
        # code 0 without a stop: aiomqtt closed the connection itself after an error of its
        # own (e.g. no SUBACK in time); the MqttError it raises names it.
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None):
        codes = [rc.value if hasattr(rc, "value") else int(rc) for rc in reason_codes]
        emit("suback", client=self._linecut.client_id, packet_id=mid, codes=codes)
        super()._on_subscribe(client, userdata, mid, reason_codes, properties)

    def _on_message(self, client, userdata, message):
        self._linecut_dups.append((message.mid, bool(message.dup)))
        super()._on_message(client, userdata, message)

    def linecut_dup(self, mid):
        while self._linecut_dups:
            seen_mid, dup = self._linecut_dups.popleft()
            if seen_mid == mid:
                return dup
        return False


async def subscribe_loop(args, watch, topics):
    v5 = args.mqtt == "5"
    kwargs = {
        "hostname": args.host,
        "port": args.port,
        "identifier": args.client_id,
        "keepalive": args.keepalive,
        "protocol": aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
    }
    if v5:
        kwargs["clean_start"] = bool(args.clean_session)
        if args.session_expiry is not None or args.receive_maximum is not None:
            props = Properties(PacketTypes.CONNECT)
            if args.session_expiry is not None:
                props.SessionExpiryInterval = args.session_expiry
            if args.receive_maximum is not None:
                props.ReceiveMaximum = args.receive_maximum
            kwargs["properties"] = props
    else:
        kwargs["clean_session"] = bool(args.clean_session)
    if args.will_topic is not None:
        will_props = None
        if args.will_delay is not None:
            will_props = Properties(PacketTypes.WILLMESSAGE)
            will_props.WillDelayInterval = args.will_delay
        kwargs["will"] = aiomqtt.Will(args.will_topic, args.will_payload.encode(),
                                      args.will_qos, bool(args.will_retain), will_props)
    client = Subscriber(watch, v5, **kwargs)
    client_id = args.client_id

    # The reconnection pattern of aiomqtt's docs: reuse the client, sleep 5 s after an error.
    while True:
        watch.connect_attempt()
        try:
            async with client:
                emit("subscribe_sent", client=client_id, reason="always",
                     topics=[{"filter": n, "qos": q} for n, q in topics])
                await client.subscribe(topics)
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, (bytes, bytearray)):
                        payload = str(payload).encode()
                    fields = {"client": client_id, "topic": message.topic.value,
                              "qos": message.qos, "dup": client.linecut_dup(message.mid),
                              "retain": bool(message.retain), "payload_len": len(payload)}
                    if message.qos > 0:
                        fields["packet_id"] = message.mid
                    decoded = decode_payload(bytes(payload))
                    if decoded is None:
                        fields["foreign"] = True
                    else:
                        fields["seq"], fields["pub_ts_us"] = decoded
                    emit("message", **fields)
        except aiomqtt.MqttError as err:
            watch.failed(err)
            note(f"{err}; reconnecting in {RECONNECT_INTERVAL:g} s")
        await asyncio.sleep(RECONNECT_INTERVAL)


def leave():
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


async def main_async(args, watch, topics):
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def stop(signum):
        if watch.stopping:
            return
        watch.stopping = True
        note(f"{signal.Signals(signum).name}: stopping")
        loop.call_later(STOP_GRACE, leave)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await subscribe_loop(args, watch, topics)
    except asyncio.CancelledError:
        pass
    leave()


def client_info(client_id):
    emit("client_info", client=client_id, library="aiomqtt", version=AIOMQTT_VERSION,
         detail=f"paho-mqtt {PAHO_VERSION}, python {sys.version.split()[0]}")


def main():
    if "--version" in sys.argv[1:]:
        client_info("")
        return 0
    args = parse_args()
    topics = []
    for t in args.topic:
        name, sep, qos = t.rpartition(":")
        if not sep or qos not in ("0", "1", "2"):
            note(f"--topic {t!r} is not FILTER:QOS")
            return 2
        topics.append((name, int(qos)))
    if args.mqtt != "5" and (args.session_expiry is not None or args.receive_maximum is not None
                             or args.will_delay is not None):
        note("--session-expiry, --receive-maximum and --will-delay need --mqtt 5")
        return 2
    watch = Watch(args.client_id, f"{args.host}:{args.port}")
    client_info(args.client_id)
    asyncio.run(main_async(args, watch, topics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
