#!/usr/bin/env node
// `npm start -- [--data-dir DIR] [--port N] [--registry-port N] [--bind ADDR] [--log-level L]`
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createApiServer } from '../apiserver/server.js';
import { ensureCerts, writeKubeconfig } from '../certs/index.js';
import { ocmKinds } from '../kinds/index.js';
import { LevelStore } from '../storage/leveldb.js';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string', default: './data' },
    port: { type: 'string', default: '8443' },
    'registry-port': { type: 'string', default: '5001' },
    bind: { type: 'string', default: '127.0.0.1' },
    'log-level': { type: 'string', default: 'info' },
    'history-size': { type: 'string', default: '10000' },
  },
  strict: true,
});

const dataDir = resolve(values['data-dir']!);
const port = Number(values.port);
const bind = values.bind!;
mkdirSync(dataDir, { recursive: true });

const certs = await ensureCerts(join(dataDir, 'certs'), { hosts: bind === '0.0.0.0' || bind === '::' ? [] : [bind] });
const store = await LevelStore.open(join(dataDir, 'db'), { historySize: Number(values['history-size']) });
const server = await createApiServer({
  store,
  kinds: ocmKinds,
  tls: { key: certs.serverKeyPem, cert: certs.serverCertPem, clientCA: certs.caCertPem },
  logLevel: values['log-level'],
});

await server.app.listen({ port, host: bind });
const addr = server.app.server.address();
const actualPort = typeof addr === 'object' && addr ? addr.port : port;
const host = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind.includes(':') ? `[${bind}]` : bind;
const url = `https://${host}:${actualPort}`;
const kubeconfig = join(certs.dir, 'admin.kubeconfig');
writeKubeconfig(kubeconfig, { server: url, caCertPem: certs.caCertPem, clientCertPem: certs.adminCertPem, clientKeyPem: certs.adminKeyPem });
server.app.log.info({ url, kubeconfig, dataDir, resourceVersion: store.currentRV() }, `ocm-apiserver ready at ${url}; export KUBECONFIG=${kubeconfig}`);

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  server.app.log.info({ signal }, 'shutting down');
  await server.close();
  await store.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
