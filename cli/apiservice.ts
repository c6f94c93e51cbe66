#!/usr/bin/env node
// `npm run apiservice -- --cert-dir DIR [--out FILE] [--hosts a,b]`
//
// Makes sure DIR holds the server's key material (generated on first use by `ensureCerts`, reused
// afterwards), then renders two documents for `kubectl apply -f`:
//   - the APIService of apiservice.yaml with `spec.caBundle` set to DIR/ca.crt, and
//   - the Secret ocm-apiserver-certs (namespace ocm-system, type kubernetes.io/tls) with every
//     *.crt and *.key file of DIR, plus tls.crt/tls.key (the serving pair), mounted by the
//     Deployment of deploy/ at /certs.
// The output contains private keys: FILE is written with mode 0600.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ensureCerts } from '../certs/index.js';
import { APISERVICE_NAME, APP_NAME, CERTS_SECRET, CERT_FILE_PATTERN, CERT_FILES_REQUIRED, NAMESPACE, TLS_SECRET_KEYS } from './deploy-constants.js';

const USAGE = 'usage: npm run apiservice -- --cert-dir DIR [--out FILE] [--hosts a,b]';

/** apiservice.yaml at the repository root (this file runs as dist/cli/apiservice.js). */
const APISERVICE_TEMPLATE = fileURLToPath(new URL('../../apiservice.yaml', import.meta.url));

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

async function renderApiService(opts: { certDir: string; hosts?: string[] }): Promise<string> {
  const certDir = path.resolve(opts.certDir);
  const bundle = await ensureCerts(certDir, { hosts: opts.hosts });

  const apiService = YAML.parse(fs.readFileSync(APISERVICE_TEMPLATE, 'utf8'));
  if (apiService?.kind !== 'APIService' || apiService?.metadata?.name !== APISERVICE_NAME || !apiService.spec) {
    throw new Error(`${APISERVICE_TEMPLATE}: expected the APIService ${APISERVICE_NAME}`);
  }
  apiService.spec.caBundle = b64(bundle.caCertPem);

  const data: Record<string, string> = {};
  for (const [key, file] of Object.entries(TLS_SECRET_KEYS)) data[key] = b64(fs.readFileSync(path.join(certDir, file)));
  const files = fs.readdirSync(certDir).filter((f) => CERT_FILE_PATTERN.test(f)).sort();
  for (const file of CERT_FILES_REQUIRED) if (!files.includes(file)) throw new Error(`${certDir}: ${file} is missing`);
  for (const file of files) data[file] = b64(fs.readFileSync(path.join(certDir, file)));
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: CERTS_SECRET, namespace: NAMESPACE, labels: { 'app.kubernetes.io/name': APP_NAME } },
    type: 'kubernetes.io/tls',
    data,
  };

  const header = `# Rendered by \`npm run apiservice\` from apiservice.yaml and ${certDir}.\n# Contains private keys.\n`;
  return header + [apiService, secret].map((doc) => YAML.stringify(doc, { lineWidth: 0 })).join('---\n');
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'cert-dir': { type: 'string' },
        out: { type: 'string' },
        hosts: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!values['cert-dir']) {
    process.stderr.write(`--cert-dir is required\n${USAGE}\n`);
    process.exit(2);
  }
  const hosts = (values.hosts ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const out = await renderApiService({ certDir: values['cert-dir'], hosts });
  if (values.out) {
    fs.writeFileSync(values.out, out, { mode: 0o600 });
    fs.chmodSync(values.out, 0o600);
  } else {
    process.stdout.write(out);
  }
}

main().catch((err) => {
  process.stderr.write(`apiservice: ${(err as Error).message}\n`);
  process.exit(1);
});
