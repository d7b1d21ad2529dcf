#!/usr/bin/env node
// linecut's MQTT.js subscriber: a Node client built the way MQTT.js's README shows, reporting
// what it sees.
//
// Written for the npm package `mqtt` 5.16.0 on Node 20 (the first line printed names both).
// It calls `mqtt.connect()` with the library's defaults, subscribes in the `connect` handler and
// leaves keepalive and reconnecting to the library. Everything the client notices is printed on
// stdout as one linecut event per line (JSON), stamped with the wall clock in Unix microseconds;
// nothing else reaches stdout (MQTT.js's own `debug` logging, when enabled, goes to stderr).
//
// Loading the library. ESM `import` ignores NODE_PATH and looks only in node_modules above the
// script, and the script runs from wherever it was written. `mqtt` 5.x is a CommonJS package, so
// it is loaded with a CommonJS `require` made by `createRequire`, anchored in the install
// directory named by LINECUT_CLIENT_HOME (the directory holding node_modules/mqtt); without it,
// anchored at this file. That resolver also honours NODE_PATH.
//
// `--version` prints the client_info line (the library as loaded) and exits 0.
//
// The library's rules this program relies on (mqtt 5.16.0, build/lib):
// - Keepalive (KeepaliveManager.js): a timer ticking every K/2 (ms, rounded up), restarted by every
//   PINGRESP (and by PUBACK/PUBREC/PUBCOMP/PUBREL/SUBACK/UNSUBACK, `reschedulePings` true); the
//   second tick sends PINGREQ, the third gives up: `onKeepaliveTimeout` destroys the socket
//   without a DISCONNECT, emits `offline`, then `error` "Keepalive timeout", then `close`. An
//   incoming PUBLISH never restarts the timer. So a silent line is noticed 0.5K to 1.5K after
//   it went silent.
// - Reconnect (client.js `_setupReconnect`): on every `close` a new connection every
//   `reconnectPeriod` (default 1000 ms, kept) for ever, without back-off; each attempt must see
//   its CONNACK within `connectTimeout` (default 30 s, kept), else "connack timeout". A CONNACK
//   refusal stops reconnecting (`reconnectOnConnackError` false by default, kept): the program
//   then stays idle and says so on stderr.
// - Resubscribe (`resubscribe` true, kept): the library remembers every subscription and
//   re-sends it itself after a CONNACK when the connection is not the first and the session was
//   not kept (Clean Session / Clean Start set, or Session Present 0); MQTT 5 gets one SUBSCRIBE
//   per filter. Its `subscribe()` also skips filters it already remembers, so the program's own
//   call in `connect` sends a SUBSCRIBE only on the first connection. `subscribe_sent` is
//   therefore printed for every SUBSCRIBE the client writes (seen in `packetsend`): reason
//   "first" for the first one, "session_lost" for the library's re-subscriptions.
//
// What it observes and how:
// - connect_attempt: `client.streamBuilder` opens one TCP connection per attempt; the program
//   reports the first one (opened inside `mqtt.connect()`) right after it returns and wraps the
//   builder for every later one. delay_ms is the time since the previous connection ended.
// - connack / suback / ping_sent / ping_received / subscribe_sent: the `packetreceive` and
//   `packetsend` events, which show every packet decoded or written, PINGREQ and PINGRESP
//   included (a refused CONNACK too).
// - message: the `message` event (topic, payload, and the packet for qos/dup/retain/messageId).
// - disconnected: when the connection's socket closes, with the cause named by the `error` the
//   client emitted for it: "Keepalive timeout" -> keepalive_timeout, "connack timeout" ->
//   connect_timeout, "Connection refused: ..." (CONNACK) and ECONNREFUSED -> refused,
//   ECONNRESET/EPIPE -> connection_reset, ETIMEDOUT -> kernel_timeout (connect_timeout before
//   the TCP handshake completed), any other -> other; a close with no error is an end of stream
//   from the broker -> closed_by_peer.
// - Stopping: SIGTERM or SIGINT with a connection calls `client.end()`, which sends DISCONNECT,
//   and exits when the library reports the end (at most 1 s later); without a connection
//   (connecting, waiting to reconnect) it exits at once.

import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const CLIENT_HOME = process.env.LINECUT_CLIENT_HOME;
const require = createRequire(
  CLIENT_HOME ? path.join(path.resolve(CLIENT_HOME), 'linecut-loader.cjs') : import.meta.url,
);

function note(text) {
  process.stderr.write(`mqttjs_subscriber: ${text}\n`);
}

let mqtt;
let MQTT_VERSION;
try {
  mqtt = require('mqtt');
  MQTT_VERSION = require('mqtt/package.json').version;
} catch (err) {
  note(`cannot load the npm package mqtt (LINECUT_CLIENT_HOME=${CLIENT_HOME ?? ''}): ${err.message}`);
  process.exit(2);
}

// Wall clock in Unix microseconds: the process's time origin plus the monotonic clock, which
// gives microseconds where Date.now() only has milliseconds.
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function emit(type, fields) {
  const event = { ts_us: nowUs(), source: 'subscriber', type, ...fields };
  // Synchronous for pipes and files on Linux, so a line is never lost on exit.
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const VALUE_FLAGS = new Set([
  'host', 'port', 'client-id', 'keepalive', 'clean-session', 'mqtt', 'topic',
  'session-expiry', 'receive-maximum', 'will-topic', 'will-payload', 'will-qos',
  'will-retain', 'will-delay',
]);

function usage(text) {
  note(text);
  process.exit(2);
}

// `--flag=value` or `--flag value`; a value may start with '-' (e.g. `--client-id -x`).
function parseArgs(argv) {
  const out = { topic: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) usage(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!VALUE_FLAGS.has(name)) usage(`unknown option --${name}`);
    let value;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) usage(`--${name} needs a value`);
      value = argv[++i];
    }
    if (name === 'topic') out.topic.push(value);
    else out[name] = value;
  }
  return out;
}

function intArg(args, name, fallback, allowed) {
  const raw = args[name];
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) usage(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (allowed && !allowed.includes(n)) usage(`--${name} must be one of ${allowed.join(', ')}`);
  return n;
}

// linecut's payload: `lc1/<seq>/<pub_ts_us>/` then padding. null if it is not one.
function decodePayload(payload) {
  const parts = payload.toString('latin1').split('/', 4);
  if (parts.length < 4 || parts[0] !== 'lc1') return null;
  if (!/^\d+$/.test(parts[1]) || !/^-?\d+$/.test(parts[2])) return null;
  const seq = Number(parts[1]);
  const pubTsUs = Number(parts[2]);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(pubTsUs)) return null;
  return { seq, pub_ts_us: pubTsUs };
}

function causeOf(err, tcpConnected) {
  if (!err) return 'closed_by_peer';
  const msg = err.message || '';
  if (msg === 'Keepalive timeout') return 'keepalive_timeout';
  if (msg === 'connack timeout') return 'connect_timeout';
  if (msg.startsWith('Connection refused')) return 'refused';
  switch (err.code) {
    case 'ECONNREFUSED': return 'refused';
    case 'ECONNRESET':
    case 'EPIPE': return 'connection_reset';
    case 'ETIMEDOUT': return tcpConnected ? 'kernel_timeout' : 'connect_timeout';
    default: return 'other';
  }
}

function describe(err) {
  if (!err) return 'connection closed by the broker (end of stream)';
  const code = err.code !== undefined && !String(err.message).includes(String(err.code))
    ? ` (code ${err.code})` : '';
  return `${err.message}${code}`;
}

function clientInfo(clientId) {
  emit('client_info', {
    client: clientId, library: 'mqtt.js', version: MQTT_VERSION, detail: `node ${process.version}`,
  });
}

function main() {
  if (process.argv.slice(2).includes('--version')) {
    clientInfo('');
    process.exit(0);
  }
  const args = parseArgs(process.argv.slice(2));
  for (const required of ['host', 'port', 'client-id']) {
    if (args[required] === undefined) usage(`--${required} is required`);
  }
  if (args.topic.length === 0) usage('--topic is required');
  const mqttVersion = args.mqtt ?? '3.1.1';
  if (mqttVersion !== '3.1.1' && mqttVersion !== '5') usage('--mqtt must be 3.1.1 or 5');
  const v5 = mqttVersion === '5';
  const host = args.host;
  const port = intArg(args, 'port');
  const clientId = args['client-id'];
  const keepalive = intArg(args, 'keepalive', 60);
  const clean = intArg(args, 'clean-session', 1, [0, 1]) === 1;
  const topics = args.topic.map((t) => {
    const at = t.lastIndexOf(':');
    if (at < 0) usage(`--topic ${JSON.stringify(t)} is not FILTER:QOS`);
    return { filter: t.slice(0, at), qos: intArg({ q: t.slice(at + 1) }, 'q', 0, [0, 1, 2]) };
  });
  const sessionExpiry = intArg(args, 'session-expiry');
  const receiveMaximum = intArg(args, 'receive-maximum');
  const willDelay = intArg(args, 'will-delay');
  if (!v5 && (sessionExpiry !== undefined || receiveMaximum !== undefined || willDelay !== undefined)) {
    usage('--session-expiry, --receive-maximum and --will-delay need --mqtt 5');
  }

  clientInfo(clientId);

  const options = {
    protocol: 'mqtt',
    host,
    port,
    clientId,
    keepalive,
    clean,
    protocolVersion: v5 ? 5 : 4,
  };
  if (v5) {
    const properties = {};
    if (sessionExpiry !== undefined) properties.sessionExpiryInterval = sessionExpiry;
    if (receiveMaximum !== undefined) properties.receiveMaximum = receiveMaximum;
    if (Object.keys(properties).length > 0) options.properties = properties;
  }
  if (args['will-topic'] !== undefined) {
    options.will = {
      topic: args['will-topic'],
      payload: Buffer.from(args['will-payload'] ?? '', 'utf8'),
      qos: intArg(args, 'will-qos', 0, [0, 1, 2]),
      retain: intArg(args, 'will-retain', 0, [0, 1]) === 1,
    };
    if (willDelay !== undefined) options.will.properties = { willDelayInterval: willDelay };
  }

  const broker = `${host}:${port}`;
  let attempts = 0;
  let current = null; // the attempt whose socket is the client's stream now
  let lostUs = null; // when the previous connection or attempt ended
  let subscribesSent = 0;
  let stopping = false;

  // One TCP connection per call of the stream builder: number it and watch its socket.
  function track(stream) {
    attempts += 1;
    const delayMs = lostUs === null ? 0 : Math.max(0, Math.floor((nowUs() - lostUs) / 1000));
    const attempt = { n: attempts, error: null, tcpConnected: false, reported: false };
    current = attempt;
    emit('connect_attempt', { client: clientId, attempt: attempt.n, broker, delay_ms: delayMs });
    stream.once('connect', () => { attempt.tcpConnected = true; });
    stream.once('close', () => {
      if (attempt.reported) return;
      attempt.reported = true;
      lostUs = nowUs();
      if (stopping) {
        emit('disconnected', { client: clientId, cause: 'requested', error: 'stopped by a signal' });
      } else {
        emit('disconnected', {
          client: clientId,
          cause: causeOf(attempt.error, attempt.tcpConnected),
          error: describe(attempt.error),
        });
      }
    });
    return stream;
  }

  const client = mqtt.connect(options);
  track(client.stream);
  const build = client.streamBuilder;
  client.streamBuilder = (c) => track(build(c));

  client.on('error', (err) => {
    // The first error names why this connection ends; later ones are consequences.
    if (current && !current.error) current.error = err;
    if (err.message && err.message.startsWith('Connection refused')) {
      note(`${err.message}: MQTT.js does not reconnect after a refused CONNACK`);
    }
  });

  client.on('packetsend', (packet) => {
    if (packet.cmd === 'pingreq') {
      emit('ping_sent', { client: clientId });
    } else if (packet.cmd === 'subscribe') {
      subscribesSent += 1;
      emit('subscribe_sent', {
        client: clientId,
        reason: subscribesSent === 1 ? 'first' : 'session_lost',
        topics: packet.subscriptions.map((s) => ({ filter: s.topic, qos: s.qos })),
      });
    }
  });

  client.on('packetreceive', (packet) => {
    switch (packet.cmd) {
      case 'pingresp':
        emit('ping_received', { client: clientId });
        break;
      case 'connack':
        emit('connack', {
          client: clientId,
          code: v5 ? (packet.reasonCode ?? 0) : (packet.returnCode ?? 0),
          session_present: Boolean(packet.sessionPresent),
        });
        break;
      case 'suback':
        emit('suback', {
          client: clientId, packet_id: packet.messageId, codes: packet.granted.map(Number),
        });
        break;
      default:
        break;
    }
  });

  client.on('message', (topic, payload, packet) => {
    const fields = {
      client: clientId,
      topic,
      qos: packet.qos,
      dup: Boolean(packet.dup),
      retain: Boolean(packet.retain),
      payload_len: payload.length,
    };
    if (packet.qos > 0) fields.packet_id = packet.messageId;
    const decoded = decodePayload(payload);
    if (decoded === null) fields.foreign = true;
    else Object.assign(fields, decoded);
    emit('message', fields);
  });

  // The README's idiom: subscribe whenever connected. MQTT.js sends nothing for filters it
  // already remembers (see the header), so only the first call writes a SUBSCRIBE.
  const subscription = Object.fromEntries(topics.map((t) => [t.filter, { qos: t.qos }]));
  client.on('connect', () => {
    client.subscribe({ ...subscription }, (err) => {
      if (err) note(`subscribe failed: ${err.message}`);
    });
  });

  function stop(signal) {
    if (stopping) return;
    stopping = true;
    if (!client.connected) {
      process.exit(0);
    }
    note(`${signal}: sending DISCONNECT`);
    setTimeout(() => process.exit(0), 1000);
    client.end(false, () => process.exit(0));
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
