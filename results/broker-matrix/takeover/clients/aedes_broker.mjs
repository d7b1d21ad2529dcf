#!/usr/bin/env node
// linecut's aedes launcher: aedes (npm, 1.2.0) on a TCP listener, with every connection event
// written to stdout as one line, so the run's broker.log says what the broker did and when.
//
// Usage: node aedes_broker.mjs --host=IP --port=PORT    (a broker until SIGINT or SIGTERM)
//        node aedes_broker.mjs --version                (prints aedes's version and exits)
//
// aedes is found in the install directory LINECUT_CLIENT_HOME names (scripts/setup-clients
// puts it in target/clients/aedes/node_modules): it is an ES module, and an ES `import` looks
// for packages only beside the importing file, which is the run directory, so the launcher reads
// the package's entry from its package.json and imports that file by its path.
//
// The rules a run measures (aedes 1.2.0):
// - Keepalive: a setTimeout of 1.5K s + 1 ms armed at CONNECT (lib/handlers/connect.js,
//   `setKeepAlive`), restarted by every packet from the client; when it fires the broker emits
//   `keepaliveTimeout` and closes the connection, publishing the will.
// - A CONNECT with MQTT 5 (protocol level 5) gets CONNACK code 1 (connect.js, `init`): MQTT
//   3.1.1 only.
// - A takeover (a second connection with the same client id) closes the old connection and
//   publishes its will.
// - Stopping: SIGINT or SIGTERM closes the listener and the broker (which ends every client's
//   connection) and exits 0.
//
// Each log line: `<Unix seconds with microseconds> <event> <details>`.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function arg(name) {
  const prefix = `--${name}=`;
  const found = process.argv.slice(2).find((a) => a.startsWith(prefix));
  return found === undefined ? undefined : found.slice(prefix.length);
}

function stamp() {
  const us = BigInt(Date.now()) * 1000n + BigInt(Math.floor((performance.now() % 1) * 1000));
  return `${us / 1000000n}.${String(us % 1000000n).padStart(6, '0')}`;
}

function log(event, details = '') {
  process.stdout.write(`${stamp()} ${event}${details ? ' ' + details : ''}\n`);
}

async function loadAedes() {
  const home = process.env.LINECUT_CLIENT_HOME;
  if (!home) {
    throw new Error('LINECUT_CLIENT_HOME is not set (the directory holding node_modules/aedes)');
  }
  const dir = path.join(home, 'node_modules', 'aedes');
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const root = pkg.exports && pkg.exports['.'];
  const entry = (root && (root.import || root.default)) || pkg.main || 'index.js';
  const module = await import(pathToFileURL(path.join(dir, entry)).href);
  return { Aedes: module.Aedes, version: pkg.version };
}

async function main() {
  const { Aedes, version } = await loadAedes();
  if (process.argv.includes('--version')) {
    process.stdout.write(`aedes ${version} (Node ${process.version})\n`);
    return;
  }
  const host = arg('host');
  const port = Number(arg('port'));
  if (!host || !Number.isInteger(port)) {
    process.stderr.write('usage: aedes_broker.mjs --host=IP --port=PORT\n');
    process.exit(2);
  }
  const broker = await Aedes.createBroker();
  const who = (client) => (client && client.id) || '(no id yet)';
  broker.on('client', (c) => log('connected', `client ${who(c)}`));
  broker.on('clientReady', (c) => log('ready', `client ${who(c)}`));
  broker.on('clientDisconnect', (c) => log('disconnected', `client ${who(c)}`));
  broker.on('keepaliveTimeout', (c) => log('keepalive_timeout', `client ${who(c)}`));
  broker.on('clientError', (c, err) => log('client_error', `client ${who(c)}: ${err.message}`));
  broker.on('connectionError', (c, err) => log('connection_error', err.message));
  broker.on('subscribe', (subs, c) =>
    log('subscribed', `client ${who(c)} to ${subs.map((s) => `${s.topic}:${s.qos}`).join(' ')}`));
  const server = net.createServer(broker.handle);
  server.on('error', (err) => {
    log('listen_error', err.message);
    process.exit(1);
  });
  server.listen(port, host, () => log('listening', `${host}:${port} aedes ${version}`));
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log('stopping', signal);
    server.close();
    broker.close(() => {
      log('stopped');
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`aedes_broker: ${err.stack || err}\n`);
  process.exit(1);
});
