// A started server (reconcilers on) with a signed OCM component in its own registry, verified by an
// OCMComponent `comp` with an OCMResource `data`: the setup the snapshot-chain tests share
// (action-stall, content-change). Snapshots are pulled back with the admin's client.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { archiveToFiles } from '../../providers/content.js';
import { type ComponentSpec, publish } from '../../ocm/publish.js';
import { OcmRepository } from '../../ocm/repository.js';
import { OciClient } from '../../registry/client.js';
import { minimalImage, pushImage } from '../../registry/image.js';
import { pullSnapshot } from '../../registry/snapshot.js';
import { kubectlJson, startServer, tempDir, type TestServer, yamlDocs } from './server.js';

export const GV = 'delivery.ocm.software/v1alpha1';

export class VerifiedComponent {
  /** The signing key; the OCMComponent verifies signature `acme` with its public half (Secret `acme-key`). */
  readonly key = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  readonly client: OciClient;
  readonly creds: { ca: string; cert: string; key: string };
  /** host:port of the server's registry. */
  readonly registry: string;
  /** The component's repository: `<registry>/<ns>/ocm`. */
  readonly repo: OcmRepository;
  /** A minimal image pushed beside it (`<ns>/images/app:2.0.0`), by digest: for an ociImage resource. */
  image = '';

  private constructor(
    readonly s: TestServer,
    readonly ns: string,
  ) {
    const certs = join(s.dataDir, 'certs');
    this.creds = { ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') };
    this.client = new OciClient(this.creds);
    this.registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
    this.repo = new OcmRepository(this.client, `${this.registry}/${ns}/ocm`);
  }

  /** Starts the server and pushes the image. */
  static async start(ns: string, opts: { nodeArgs?: string[] } = {}): Promise<VerifiedComponent> {
    const v = new VerifiedComponent(await startServer({ reconcilers: 'all', nodeArgs: opts.nodeArgs }), ns);
    v.image = (await pushImage(v.client, `${v.registry}/${ns}/images/app:2.0.0`, minimalImage({ path: 'VERSION', content: '2.0.0\n' }))).ref;
    return v;
  }

  /** Publishes `spec` signed with the key (`overwrite`: the same version again). */
  publish(spec: ComponentSpec, overwrite = false): Promise<unknown> {
    return publish(this.repo, spec, tempDir(), { sign: { name: 'acme', privateKeyPem: this.key.privateKey }, ...(overwrite ? { overwrite: true } : {}) });
  }

  /**
   * Publishes `spec`, creates the namespace and the key's Secret, and applies the OCMComponent
   * `comp` (verifying the signature, polling every `interval`), the OCMResource `data` (resource
   * `data`) and `objects`.
   */
  async create(spec: ComponentSpec, interval: string, objects: object[]): Promise<void> {
    await this.publish(spec);
    await this.s.kubectl(['create', 'namespace', this.ns]);
    await this.s.kubectl(['create', 'secret', 'generic', 'acme-key', '-n', this.ns, `--from-literal=acme=${this.key.publicKey}`]);
    const url = `${this.registry}/${this.ns}/ocm`;
    const a = await this.s.kubectl(['apply', '-f', '-'], {
      input: yamlDocs(
        { apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'comp', namespace: this.ns }, spec: { name: spec.name, version: spec.version, interval, repository: { url }, verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] } },
        { apiVersion: GV, kind: 'OCMResource', metadata: { name: 'data', namespace: this.ns }, spec: { resource: 'data' } },
        ...objects,
      ),
    });
    if (a.code !== 0) throw new Error(a.stderr);
  }

  json(args: string[]): Promise<any> {
    return kubectlJson(this.s, args);
  }

  /** File `name` of Snapshot `snapshot` (in the namespace), pulled from the registry and checked against its digest. */
  async file(snapshot: string, name: string): Promise<Buffer> {
    const snap = await this.json(['get', 'snapshot', snapshot, '-n', this.ns]);
    const files = await archiveToFiles(await pullSnapshot(this.client, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest }));
    return files[name];
  }
}
