// `npm run --silent ocm -- <command> ...`: OCM component descriptors without the Go `ocm` tool.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { credentialsFromDockerConfig } from '../registry/client.js';
import { type ComponentDescriptor, parseDescriptor, serializeDescriptor } from '../ocm/descriptor.js';
import { type Normalisation, descriptorDigest, normalise } from '../ocm/normalise.js';
import { loadComponentSpecs, publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { type SignatureAlgorithm, generateKeyPair, signDescriptor, verifyDescriptor } from '../ocm/signing.js';

const USAGE = `usage: ocm <command> [flags]

  verify    --descriptor FILE --public-key PEM [--signature NAME]
            verify --repository URL --component NAME --version V --public-key PEM [--signature NAME]
            exit 0 only when the signature verifies (from a repository: and every resource's
            digest matches its content); otherwise exit 1 with the reason on stderr
  hash      --descriptor FILE [--normalisation ALG] [--hash SHA-256|SHA-512]
            prints the hex digest of the normalised descriptor (default jsonNormalisation/v3)
  normalise --descriptor FILE --normalisation ALG
            prints the normalised bytes (no trailing newline)
  sign      --descriptor FILE --private-key PEM --signature NAME [--algorithm RSASSA-PKCS1-V1_5|RSASSA-PSS]
            [--normalisation ALG] [--out FILE]      the signed descriptor as YAML (stdout without --out)
  publish   --spec FILE --repository URL [--sign-key PEM --signature NAME [--algorithm ALG]] [--overwrite]
  get       --repository URL --component NAME [--version V|CONSTRAINT]   prints the descriptor
  keygen    --out DIR [--bits N]     DIR/private-key.pem (PKCS#1) and DIR/public-key.pem (PKIX)

  FILE may be a component-descriptor.yaml (v2 or ocm.software/v3alpha1, YAML or JSON) or a
  component archive directory holding one. ALG: jsonNormalisation/v1, /v2 or /v3.
  Registry flags: --plain-http (also implied by an http:// URL), --ca PEM, --cert PEM --key PEM (mTLS),
  --docker-config FILE (credentials; default $DOCKER_CONFIG/config.json or ~/.docker/config.json if present).
`;

class UsageError extends Error {}

const { values: o, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        ...Object.fromEntries(
          ['descriptor', 'public-key', 'private-key', 'signature', 'normalisation', 'hash', 'out', 'algorithm', 'spec', 'repository', 'component', 'version', 'sign-key', 'ca', 'cert', 'key', 'docker-config', 'bits'].map((k) => [k, { type: 'string' as const }]),
        ),
        ...Object.fromEntries(['plain-http', 'overwrite', 'help'].map((k) => [k, { type: 'boolean' as const }])),
      },
    });
  } catch (e) {
    process.stderr.write(`ocm: ${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
})() as { values: Record<string, string | boolean | undefined>; positionals: string[] };

const str = (k: string) => o[k] as string | undefined;
function need(...keys: string[]): string[] {
  const missing = keys.filter((k) => !str(k));
  if (missing.length) throw new UsageError(`${positionals[0]} needs ${missing.map((k) => `--${k}`).join(', ')}`);
  return keys.map((k) => str(k)!);
}
const readText = (p: string) => fs.readFileSync(p, 'utf8');

function readDescriptor(p: string): ComponentDescriptor {
  const file = fs.statSync(p).isDirectory() ? path.join(p, 'component-descriptor.yaml') : p;
  return parseDescriptor(fs.readFileSync(file));
}

function repository(url: string): OcmRepository {
  let credentials;
  const cfg = str('docker-config') ?? path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
  if (str('docker-config') || fs.existsSync(cfg)) credentials = credentialsFromDockerConfig(fs.readFileSync(cfg));
  return OcmRepository.forUrl(url, {
    insecureHttp: o['plain-http'] ? true : undefined,
    ca: str('ca') && readText(str('ca')!),
    cert: str('cert') && readText(str('cert')!),
    key: str('key') && readText(str('key')!),
    credentials,
  });
}

async function main(): Promise<number> {
  const cmd = positionals[0];
  if (o.help || !cmd) {
    process.stdout.write(USAGE);
    return cmd || o.help ? 0 : 2;
  }
  switch (cmd) {
    case 'verify': {
      const [pem] = need('public-key');
      const publicKeyPem = readText(pem);
      if (str('descriptor')) {
        const r = verifyDescriptor(readDescriptor(str('descriptor')!), { name: str('signature'), publicKeyPem });
        if (!r.ok) throw new Error(r.reason);
        process.stdout.write(`signature "${r.signature.name}" verified (${r.signature.digest.normalisationAlgorithm}, ${r.signature.signature.algorithm})\n`);
        return 0;
      }
      const [url, component, version] = need('repository', 'component', 'version');
      const repo = repository(url);
      try {
        const cv = await repo.getComponentVersion(component, await repo.resolveVersion(component, version));
        const r = verifyDescriptor(cv.descriptor, { name: str('signature'), publicKeyPem });
        if (!r.ok) throw new Error(r.reason);
        for (const res of cv.descriptor.component.resources) {
          if (['none', 'None'].includes(res.access?.type)) continue;
          await repo.getResourceContent(cv, res, { requireDigest: true });
        }
        const c = cv.descriptor.component;
        process.stdout.write(`${c.name}:${c.version}: signature "${r.signature.name}" verified, ${c.resources.length} resource digest(s) match\n`);
        return 0;
      } finally {
        repo.client.close();
      }
    }
    case 'hash': {
      const [file] = need('descriptor');
      process.stdout.write(`${descriptorDigest(readDescriptor(file), str('normalisation') ?? 'jsonNormalisation/v3', str('hash') ?? 'SHA-256').value}\n`);
      return 0;
    }
    case 'normalise':
    case 'normalize': {
      const [file, alg] = need('descriptor', 'normalisation');
      process.stdout.write(normalise(readDescriptor(file), alg));
      return 0;
    }
    case 'sign': {
      const [file, key, name] = need('descriptor', 'private-key', 'signature');
      const signed = signDescriptor(readDescriptor(file), {
        name,
        privateKeyPem: readText(key),
        algorithm: str('algorithm') as SignatureAlgorithm | undefined,
        normalisation: str('normalisation') as Normalisation | undefined,
      });
      if (str('out')) fs.writeFileSync(str('out')!, serializeDescriptor(signed));
      else process.stdout.write(serializeDescriptor(signed));
      return 0;
    }
    case 'publish': {
      const [specFile, url] = need('spec', 'repository');
      if (!!str('sign-key') !== !!str('signature')) throw new UsageError('--sign-key and --signature go together');
      const repo = repository(url);
      try {
        for (const spec of loadComponentSpecs(readText(specFile))) {
          const sign = str('sign-key') ? { name: str('signature')!, privateKeyPem: readText(str('sign-key')!), algorithm: str('algorithm') as SignatureAlgorithm | undefined } : undefined;
          const r = await publish(repo, spec, path.dirname(path.resolve(specFile)), { sign, overwrite: !!o.overwrite });
          process.stdout.write(`${r.ref}@${r.manifestDigest}\n`);
        }
        return 0;
      } finally {
        repo.client.close();
      }
    }
    case 'get': {
      const [url, component] = need('repository', 'component');
      const repo = repository(url);
      try {
        const cv = await repo.getComponentVersion(component, await repo.resolveVersion(component, str('version') ?? '*'));
        process.stdout.write(cv.raw);
        return 0;
      } finally {
        repo.client.close();
      }
    }
    case 'keygen': {
      const [dir] = need('out');
      const { privateKeyPem, publicKeyPem } = generateKeyPair(Number(str('bits') ?? 2048));
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'private-key.pem'), privateKeyPem, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'public-key.pem'), publicKeyPem);
      process.stdout.write(`${path.join(dir, 'private-key.pem')}\n${path.join(dir, 'public-key.pem')}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

main().then(
  (code) => (process.exitCode = code),
  (e: Error) => {
    process.stderr.write(`ocm ${positionals[0] ?? ''}: ${e.message}\n${e instanceof UsageError ? `\n${USAGE}` : ''}`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
