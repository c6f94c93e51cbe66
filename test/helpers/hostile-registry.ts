// A hostile OCI registry (issue 15): real HTTP speaking enough of the distribution API (/v2/,
// manifests by tag and digest, blobs, tags/list, a token challenge) to serve OCM component
// versions laid out as ocm/repository.ts reads them, made hostile from a seeded PRNG at every
// level: the descriptor (deep block and flow nesting, wide, over 3 MiB, alias bombs, several
// documents, wrong types, invalid semver, duplicate keys, bad digests, reference chains), the
// manifest and config (huge, deep JSON, wrong media types, missing blobs, wrong field types), the
// blobs (gzip bombs, truncated tars, 100,001 entries, escaping paths, links) and the transport
// (Content-Length that lies, slow drips, endless streams, redirects to link-local, private and
// this server's own addresses, 500 and 429, wrong Docker-Content-Digest, endless tag pages,
// hostile token endpoints). Each case is one component `ocm.software/fz/c<i>` under `/ocm`.
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import YAML from 'yaml';
import { singleFileTar } from '../../ocm/archive.js';
import { type ComponentDescriptor, serializeDescriptor } from '../../ocm/descriptor.js';
import { genericBlobDigest, signDescriptor } from '../../ocm/signing.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const SIGNATURE = 'fz';
export const REPO_PREFIX = 'ocm';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCM_CONFIG = 'application/vnd.ocm.software.component.config.v1+json';
const CD_TAR = 'application/vnd.ocm.software.component-descriptor.v2+yaml+tar';
const CD_YAML = 'application/vnd.ocm.software.component-descriptor.v2+yaml';

/** mulberry32: small, seedable, good enough to pick cases. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof prng>;

// ---- tar, written by hand so that it can lie ----------------------------------------------

function tarHeader(name: string, size: number, type = '0', linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, len, 'latin1');
  const oct = (n: number, off: number, len: number) => put(n.toString(8).padStart(len - 1, '0'), off, len - 1);
  put(name, 0, 100);
  oct(0o644, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(0, 136, 12);
  h.fill(0x20, 148, 156);
  put(type, 156, 1);
  put(linkname, 157, 100);
  put('ustar\u000000', 257, 8);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8);
  return h;
}

export function tar(entries: Array<{ name: string; data?: Buffer; type?: string; linkname?: string }>): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    parts.push(tarHeader(e.name, data.length, e.type, e.linkname));
    parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

let manyEntries: Buffer | undefined;
/** A tgz of 100,001 empty files (one over the archive limit); built once. */
function hundredThousandEntries(): Buffer {
  if (!manyEntries) {
    const head = Buffer.concat(Array.from({ length: 100_001 }, (_, i) => tarHeader(`f${i}`, 0)));
    manyEntries = gzipSync(Buffer.concat([head, Buffer.alloc(1024)]), { level: 1 });
  }
  return manyEntries;
}

let bomb: Buffer | undefined;
/** 256 MiB of zeros in a tar, gzipped to about 256 KiB (1000:1); built once. */
function gzipBomb(): Buffer {
  if (!bomb) bomb = gzipSync(Buffer.concat([tarHeader('zeros', 256 << 20), Buffer.alloc(256 << 20)]), { level: 9 });
  return bomb;
}

// ---- what is served ----------------------------------------------------------------------

/** How one path is answered: the content itself, or a transport trick. */
export type Trick =
  | { t: 'status'; status: number; retryAfter?: string; body?: string }
  | { t: 'redirect'; to: string }
  | { t: 'lengthMore' } // Content-Length larger than the body, then the connection ends
  | { t: 'lengthLess' } // Content-Length smaller than what is written
  | { t: 'drip'; everyMs: number; forMs: number }
  | { t: 'endless' }
  | { t: 'wrongDigest' } // Docker-Content-Digest of other bytes
  | { t: 'wrongContent' } // other bytes under the digest
  | { t: 'tagPages' } // tags/list with a next link forever
  | { t: 'tagsWeird'; body: string }
  | { t: 'challenge'; realm: string };

export interface Case {
  i: number;
  name: string;
  what: string;
  /** 'component': the OCMComponent must end Ready=False; 'resource': its Source must (the component may
   * verify); 'any': a Ready condition with a reason is enough (a field no signature covers was changed). */
  expect: 'component' | 'resource' | 'any';
  /** The version the OCMComponent asks for. */
  version: string;
  manifests: Map<string, { type: string; body: Buffer }>; // tag or digest -> manifest
  blobs: Map<string, Buffer>;
  tags?: string[];
  /** path suffix (`manifests/1.0.0`, `blobs/<digest>`, `tags/list`, `token`) -> trick */
  tricks: Map<string, Trick>;
  /** path suffix -> how many requests are answered honestly before its trick (content that turns bad after it was checked) */
  honest?: Map<string, number>;
}

export interface Keys {
  privateKeyPem: string;
  publicKeyPem: string;
}

const head = (name: string, version = '1.0.0') => ({
  meta: { schemaVersion: 'v2' },
  component: { name, version, provider: 'acme', repositoryContexts: [], sources: [], componentReferences: [] as any[], resources: [] as any[], labels: [] as any[] },
});

function signed(cd: any, keys: Keys): any {
  return signDescriptor(cd as ComponentDescriptor, { name: SIGNATURE, privateKeyPem: keys.privateKeyPem });
}

/** Deep nesting, as YAML block or flow, JSON, or mixed. */
function deep(r: Rng): string {
  const n = r.pick([600, 2000, 30_000, 200_000]);
  switch (r.int(0, 4)) {
    case 0:
      return `${'['.repeat(n)}${']'.repeat(n)}`;
    case 1:
      return `${'{a: '.repeat(n)}1${'}'.repeat(n)}`;
    case 2:
      return `\n${Array.from({ length: Math.min(n, 2000) }, (_, i) => `${' '.repeat(i + 4)}a:`).join('\n')} 1`;
    case 3:
      return `\n    ${'- '.repeat(n)}x`;
    default:
      return `${'[{"a":'.repeat(n / 2)}1${'}]'.repeat(n / 2)}`;
  }
}

const WRONG = [42, -1, 1e308, true, null, [], [1, [2]], {}, { a: { b: 'c' } }, '', 'x'.repeat(70_000), '\u0000\uffff', '*a', '&a x'];
const FIELDS = [
  ['meta', 'schemaVersion'],
  ['component', 'name'],
  ['component', 'version'],
  ['component', 'provider'],
  ['component', 'resources'],
  ['component', 'componentReferences'],
  ['component', 'labels'],
  ['component', 'creationTime'],
  ['component', 'resources', 0, 'name'],
  ['component', 'resources', 0, 'version'],
  ['component', 'resources', 0, 'type'],
  ['component', 'resources', 0, 'relation'],
  ['component', 'resources', 0, 'digest'],
  ['component', 'resources', 0, 'digest', 'value'],
  ['component', 'resources', 0, 'extraIdentity'],
  ['component', 'resources', 0, 'labels'],
  ['component', 'resources', 0, 'access', 'type'],
  ['component', 'resources', 0, 'access', 'localReference'],
  ['component', 'componentReferences', 0, 'componentName'],
  ['component', 'componentReferences', 0, 'version'],
  ['component', 'componentReferences', 0, 'digest'],
  ['signatures', 0, 'digest'],
  ['signatures', 0, 'digest', 'value'],
  ['signatures', 0, 'signature', 'value'],
  ['signatures', 0, 'signature', 'algorithm'],
  ['signatures', 0, 'name'],
] as const;

function setPath(o: any, path: readonly (string | number)[], v: unknown) {
  let cur = o;
  for (const k of path.slice(0, -1)) {
    if (cur[k] == null || typeof cur[k] !== 'object') cur[k] = typeof k === 'number' ? [] : {};
    cur = cur[k];
  }
  cur[path[path.length - 1]] = v;
}

/** A well-formed, signed descriptor with one local blob resource and, sometimes, a reference. */
function goodDescriptor(name: string, blob: Buffer, keys: Keys, opts: { ref?: { name: string; digest?: any } } = {}): any {
  const cd: any = head(name);
  // its version differs from the component's: an empty one defaults to that (as in OCM), which must then not verify
  cd.component.resources.push({ name: 'data', version: '1.0.1', type: 'blob', relation: 'local', access: { type: 'localBlob', localReference: sha(blob), mediaType: 'application/x-tar' }, digest: genericBlobDigest(blob) });
  if (opts.ref) cd.component.componentReferences.push({ name: 'ref', componentName: opts.ref.name, version: '1.0.0', ...(opts.ref.digest ? { digest: opts.ref.digest } : {}) });
  return signed(cd, keys);
}

/** A component version as OCM lays it out: manifest, config, descriptor layer, local blobs. */
function layout(c: Case, descriptor: Buffer, opts: { tarred?: boolean; gzip?: boolean; layerType?: string; extra?: Buffer[]; config?: (layer: any) => unknown; manifest?: (m: any) => unknown } = {}) {
  let layer = opts.tarred === false ? descriptor : singleFileTar('component-descriptor.yaml', descriptor);
  if (opts.gzip) layer = gzipSync(layer);
  const layerDesc = { mediaType: opts.layerType ?? (opts.tarred === false ? CD_YAML : CD_TAR), digest: sha(layer), size: layer.length };
  const config = Buffer.from(JSON.stringify(opts.config ? opts.config(layerDesc) : { componentDescriptorLayer: layerDesc }));
  const extra = (opts.extra ?? []).map((b) => ({ mediaType: 'application/octet-stream', digest: sha(b), size: b.length }));
  let m: any = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCM_CONFIG, digest: sha(config), size: config.length }, layers: [layerDesc, ...extra] };
  if (opts.manifest) m = opts.manifest(m) ?? m;
  const body = Buffer.isBuffer(m) ? m : Buffer.from(typeof m === 'string' ? m : JSON.stringify(m));
  c.blobs.set(sha(layer), layer);
  c.blobs.set(sha(config), config);
  for (const b of opts.extra ?? []) c.blobs.set(sha(b), b);
  c.manifests.set(c.version, { type: OCI_MANIFEST, body });
  c.manifests.set(sha(body), { type: OCI_MANIFEST, body });
  return { layerDigest: sha(layer), configDigest: sha(config), manifestDigest: sha(body) };
}

/**
 * The hostile transports, `self` being this server's own API address: where they apply is
 * chosen by the case.
 */
function transport(r: Rng, self: () => string): Trick {
  const kinds: Array<() => Trick> = [
    () => ({ t: 'status', status: r.pick([500, 502, 503]), body: r.pick(['', '{"errors":[{"code":"UNKNOWN","message":"boom"}]}', '<html>oops</html>', 'x'.repeat(200_000)]) }),
    () => ({ t: 'status', status: 429, retryAfter: r.pick(['1', '0', '-5', 'soon', '99999999', 'Wed, 21 Oct 2015 07:28:00 GMT', '1e9']) }),
    () => ({ t: 'status', status: r.pick([200, 201, 204, 206, 304, 400, 401, 403, 404, 418, 999]) }),
    () => ({ t: 'redirect', to: r.pick(['http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/v2/', 'http://0.0.0.0:1/', 'http://224.0.0.1/', 'http://10.255.255.1/v2/', 'http://192.168.254.254:5000/v2/', 'file:///etc/passwd', 'gopher://127.0.0.1:70/', '/v2/loop', `https://${self()}/api/v1/secrets`, `http://${self()}/api/v1/secrets`]) }),
    () => ({ t: 'lengthMore' }),
    () => ({ t: 'lengthLess' }),
    () => ({ t: 'drip', everyMs: r.pick([200, 1000]), forMs: 20_000 }),
    () => ({ t: 'endless' }),
    () => ({ t: 'wrongDigest' }),
    () => ({ t: 'wrongContent' }),
  ];
  return r.pick(kinds)();
}

/** Builds case i of a run. */
export function buildCase(i: number, r: Rng, keys: Keys, self: () => string, only?: string): Case {
  const name = `ocm.software/fz/c${i}`;
  const c: Case = { i, name, what: '', expect: 'component', version: '1.0.0', manifests: new Map(), blobs: new Map(), tricks: new Map() };
  const blob = tar([{ name: 'a.txt', data: Buffer.from('hello') }]);
  const good = () => goodDescriptor(name, blob, keys);
  const yaml = (cd: unknown) => Buffer.from(YAML.stringify(cd, { aliasDuplicateObjects: false }));
  const families: Array<[string, () => void]> = [
    ['deep descriptor', () => {
      const d = deep(r);
      const cd = YAML.stringify(head(name)).replace('labels: []', `labels: [{name: x, value: ${d.startsWith('\n') ? '[]' : d}}]`);
      layout(c, Buffer.from(d.startsWith('\n') ? `${cd}  extra:${d}\n` : cd), { tarred: r.chance(0.5) });
      c.what = `${d.length} bytes`;
    }],
    ['wide descriptor', () => {
      const cd = head(name);
      const key = r.pick(['resources', 'componentReferences']);
      const n = r.pick([10_001, 20_000]);
      (cd.component as any)[key] = Array.from({ length: n }, (_, k) => (key === 'resources' ? { name: `r${k}`, version: '1.0.0', type: 'blob', relation: 'external', access: { type: 'none' } } : { name: `r${k}`, componentName: `ocm.software/fz/x${k}`, version: '1.0.0' }));
      const yamlToo = r.chance(0.3);
      layout(c, Buffer.from(yamlToo ? YAML.stringify(cd) : JSON.stringify(cd)), { tarred: r.chance(0.5), gzip: r.chance(0.3) });
      c.what = `${n} ${key} as ${yamlToo ? 'YAML' : 'JSON'}`;
    }],
    ['huge descriptor', () => {
      const cd = head(name);
      cd.component.labels.push({ name: 'x', value: 'x'.repeat((3 << 20) + r.int(1, 1 << 20)) });
      layout(c, yaml(cd), { tarred: r.chance(0.5) });
    }],
    ['alias bomb', () => {
      const levels = Array.from({ length: 12 }, (_, k) => `  l${k}: &l${k} [${Array(9).fill(k ? `*l${k - 1}` : '"lol"').join(', ')}]`).join('\n');
      const many = Array.from({ length: r.pick([50, 1200]) }, (_, k) => `  - &m${k} {name: a${k}, value: *l0}`).join('\n');
      layout(c, Buffer.from(`${YAML.stringify(head(name))}x:\n${levels}\n  labels:\n${many}\n`), { tarred: r.chance(0.5) });
    }],
    ['several documents', () => {
      const one = YAML.stringify(good());
      layout(c, Buffer.from(`${one}---\n${one}${r.chance(0.5) ? '---\n' + YAML.stringify(head(name, '2.0.0')) : ''}`), { tarred: r.chance(0.5) });
    }],
    ['wrong type', () => {
      const good0 = good();
      const cd = structuredClone(good0);
      const f = r.pick(FIELDS);
      const v = r.pick(WRONG);
      setPath(cd, f, v);
      c.what = `${f.join('.')} = ${JSON.stringify(v)?.slice(0, 40)}`;
      // access and labels (without signing: true) are outside what a signature covers; an absent
      // field (creationTime, extraIdentity) set to null, '', {} or [] is still absent
      const empty = v === null || v === '' || (typeof v === 'object' && Object.keys(v).length === 0);
      const was = f.reduce<any>((o, k) => o?.[k], good0);
      if (['access', 'labels'].some((k) => (f as readonly unknown[]).includes(k)) || (was === undefined && empty)) c.expect = 'any';
      c.blobs.set(sha(blob), blob);
      layout(c, r.chance(0.5) ? yaml(cd) : Buffer.from(JSON.stringify(cd)), { tarred: r.chance(0.7), extra: [blob] });
    }],
    ['invalid semver', () => {
      const v = r.pick(['1.0', 'v1.0.0.0', '01.02.03', '1.0.0-', '1.0.0+', '∞', '1.0.0 ', '-1.0.0', '1.0.0_x', 'latest', '']);
      layout(c, yaml(head(name, v)), { tarred: r.chance(0.5) });
      c.tags = [v, '1.0.0', 'not a tag', '1.0.0.build-x', 'sha256-abc', '../..'];
      c.version = r.pick(['>=0.1.0', '1.0.0', '1.x', '*']);
      c.what = `version "${v}", asked "${c.version}"`;
    }],
    ['duplicate keys', () => {
      const text = YAML.stringify(good()).replace(/^( {2}name: .*)$/m, `$1\n  name: ocm.software/fz/other\n  version: 9.9.9`);
      layout(c, Buffer.from(r.chance(0.5) ? text : `{"meta":{"schemaVersion":"v2"},"meta":{"schemaVersion":"v3"},"component":{"name":"${name}","name":"x","version":"1.0.0"}}`), { tarred: r.chance(0.5) });
    }],
    ['bad digests', () => {
      const cd = structuredClone(good());
      const bad = r.pick([{ hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'genericBlobDigest/v1', value: 'zz' }, { hashAlgorithm: 'MD5', normalisationAlgorithm: 'genericBlobDigest/v1', value: '00' }, { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'nope/v9', value: 'a'.repeat(64) }, { value: 1 }, 'sha256:abc']);
      setPath(cd, r.pick([['component', 'resources', 0, 'digest'], ['signatures', 0, 'digest']]), bad);
      c.blobs.set(sha(blob), blob);
      layout(c, yaml(cd), { extra: [blob] });
    }],
    ['reference chain', () => {
      // a chain of 12 references (over the depth limit of 10), or a reference to itself with a wrong digest
      const loop = r.chance(0.5);
      const n = loop ? 1 : 12;
      c.what = loop ? 'itself, wrong digest' : '12 deep';
      for (let k = 0; k < n; k++) {
        const nm = k ? `${name}-r${k}` : name;
        const cd: any = head(nm);
        cd.component.componentReferences.push({ name: 'next', componentName: loop ? name : `${name}-r${k + 1}`, version: '1.0.0', ...(loop ? { digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'jsonNormalisation/v1', value: '0'.repeat(64) } } : {}) });
        const sub: Case = k ? { ...c, name: nm, manifests: new Map(), blobs: new Map(), tricks: new Map() } : c;
        layout(sub, yaml(signed(cd, keys)));
        if (k) subCases.push(sub);
      }
    }],
    ['hostile manifest', () => {
      const kind = r.int(0, 6);
      c.what = ['huge', 'deep JSON', 'image config', 'index', 'missing blobs', 'wrong field types', 'not JSON'][kind];
      layout(c, yaml(good()), {
        manifest: (m) => {
          if (kind === 0) return { ...m, annotations: { x: 'x'.repeat((4 << 20) + 10) } };
          if (kind === 1) {
            const n = r.pick([600, 100_000, 1_000_000]);
            return `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
          }
          if (kind === 2) return { ...m, config: { ...m.config, mediaType: 'application/vnd.oci.image.config.v1+json' } };
          if (kind === 3) return { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: OCI_MANIFEST, digest: sha(Buffer.from('x')), size: 1 }] };
          if (kind === 4) return { ...m, layers: m.layers.map((l: any) => ({ ...l, digest: sha(Buffer.from(`missing ${l.digest}`)) })), config: { ...m.config, digest: sha(Buffer.from('missing config')) } };
          if (kind === 5) return { ...m, config: r.pick([5, 'x', null, { mediaType: OCM_CONFIG, digest: 7 }, { mediaType: OCM_CONFIG, digest: '../../../etc' }]), layers: r.pick(['x', [null, 5], {}]) };
          return '\u0000\u0001not json at all';
        },
      });
    }],
    ['hostile config', () => {
      const kind = r.int(0, 3);
      const digest = r.pick([5, {}, ['x'], 'sha256:../../x', 'md5:00']);
      c.what = ['huge', `layer digest ${JSON.stringify(digest)}`, 'layer missing', 'not JSON'][kind];
      layout(c, yaml(good()), {
        config: (l) => (kind === 0 ? { componentDescriptorLayer: l, pad: 'x'.repeat(2 << 20) } : kind === 1 ? { componentDescriptorLayer: { ...l, digest } } : kind === 2 ? { componentDescriptorLayer: { ...l, digest: sha(Buffer.from('gone')) } } : '{{{'),
      });
    }],
    ['hostile descriptor layer', () => {
      const kind = r.int(0, 4);
      c.what = ['gzip bomb', 'truncated tar', '100,001 entries', 'escaping path', 'symlink'][kind];
      const text = yaml(good());
      const body = [
        () => gzipBomb(),
        () => singleFileTar('component-descriptor.yaml', text).subarray(0, r.int(100, 700)),
        () => hundredThousandEntries(),
        () => tar([{ name: r.pick(['../component-descriptor.yaml', '/component-descriptor.yaml', 'a/../../component-descriptor.yaml']), data: text }]),
        () => tar([{ name: 'component-descriptor.yaml', type: r.pick(['1', '2']), linkname: '/etc/passwd' }]),
      ][kind]();
      const layerDesc = { mediaType: CD_TAR, digest: sha(body), size: body.length };
      const config = Buffer.from(JSON.stringify({ componentDescriptorLayer: layerDesc }));
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCM_CONFIG, digest: sha(config), size: config.length }, layers: [layerDesc] }));
      c.blobs.set(sha(body), body);
      c.blobs.set(sha(config), config);
      c.manifests.set('1.0.0', { type: OCI_MANIFEST, body: m });
    }],
    ['hostile transport', () => {
      const at = r.pick(['manifest', 'config', 'layer', 'tags', 'token']);
      const { layerDigest, configDigest } = layout(c, yaml(good()), { extra: [blob] });
      if (at === 'tags') {
        c.tags = ['1.0.0'];
        c.version = '>=1.0.0';
        c.tricks.set('tags/list', r.pick<Trick>([{ t: 'tagPages' }, { t: 'tagsWeird', body: r.pick(['{"tags":[1,2,{"a":1},null,["x"]]}', '{"tags":"1.0.0"}', `{"tags":[${'"1.0.0",'.repeat(1 << 17)}"1.0.0"]}`, 'nope', `{"tags":${'['.repeat(100_000)}`, JSON.stringify({ tags: Array.from({ length: 10_000 }, (_, k) => `${k % 7}.${k % 97}.${k}`) })]) }, transport(r, self)]));
        c.what = `tags/list: ${JSON.stringify(c.tricks.get('tags/list')).slice(0, 60)}`;
        // the tag list has no digest to check: other bytes may well be a list of the same tags
        if (['wrongDigest', 'wrongContent'].includes(c.tricks.get('tags/list')!.t)) c.expect = 'any';
        return;
      }
      if (at === 'token') {
        c.tricks.set('*', { t: 'challenge', realm: r.pick(['http://169.254.169.254/token', `http://${self()}/token`, '::not a url', 'http://HOST/token', 'http://HOST/token']) });
        c.tricks.set('token', transport(r, self));
        c.what = `token: ${JSON.stringify([...c.tricks.values()]).slice(0, 100)}`;
        return;
      }
      const path = at === 'manifest' ? `manifests/${c.version}` : `blobs/${at === 'config' ? configDigest : layerDigest}`;
      const trick = transport(r, self);
      c.tricks.set(path, trick);
      // a blob is checked against the digest it was asked by, not against the header
      if (at !== 'manifest' && trick.t === 'wrongDigest') c.expect = 'any';
      c.what = `${at}: ${JSON.stringify(c.tricks.get(path)).slice(0, 80)}`;
    }],
    ['hostile resource', () => {
      // a well-formed, signed descriptor whose local blob is hostile: the Source must fail
      c.expect = 'resource';
      const kind = r.int(0, 6);
      c.what = ['gzip bomb', '100,001 entries', 'escaping path', 'symlink', 'truncated tgz', 'endless', 'drip'][kind];
      const data = [
        () => gzipBomb(),
        () => hundredThousandEntries(),
        () => gzipSync(tar([{ name: 'ok', data: Buffer.from('x') }, { name: r.pick(['../../etc/cron.d/x', '/etc/passwd', 'a/../../../x', 'C:\\x', 'a\\..\\..\\x']), data: Buffer.from('pwned') }])),
        () => gzipSync(tar([{ name: 'link', type: r.pick(['1', '2']), linkname: r.pick(['/etc/shadow', '../../../../etc/passwd']) }, { name: 'link', data: Buffer.from('through the link') }])),
        () => {
          const noise = Buffer.from(Array.from({ length: 100_000 }, () => r.int(0, 255)));
          const whole = gzipSync(tar([{ name: 'a', data: noise }]));
          return whole.subarray(0, r.int(20, whole.length - 9));
        },
        () => gzipSync(tar([{ name: 'a', data: Buffer.from('endless') }])),
        () => gzipSync(tar([{ name: 'a', data: Buffer.from('drip') }])),
      ][kind]();
      const cd = goodDescriptor(name, data, keys);
      layout(c, yaml(cd), { extra: [data] });
      if (kind === 5) c.tricks.set(`blobs/${sha(data)}`, { t: 'endless' });
      if (kind === 6) c.tricks.set(`blobs/${sha(data)}`, { t: 'drip', everyMs: 500, forMs: 20_000 });
      if (kind >= 5 && r.chance(0.5)) {
        // honest while the OCMComponent checks its digest, then endless or dripping for the Source
        c.honest = new Map([[`blobs/${sha(data)}`, 1]]);
        c.what += ' after one honest read';
      }
    }],
  ];
  const [family, build] = r.pick(only ? families.filter(([f]) => f.includes(only)) : families);
  build();
  c.what = `${family}${c.what ? `: ${c.what}` : ''}`;
  return c;
}
// Repositories a case needs besides its own (the components of a reference chain).
const subCases: Case[] = [];

export class HostileRegistry {
  readonly repos = new Map<string, Case>();
  readonly requests: { at: number; path: string; trick?: string }[] = [];
  /** Open responses (drips, endless streams), ended at close(). */
  private readonly open = new Set<ServerResponse>();
  host = '';
  /** The server under test's address, for redirects back at it. */
  self = '127.0.0.1:1';
  private readonly server = http.createServer((req, res) => {
    this.handle(req, res).catch(() => res.destroy());
  });

  /** Cases `first`..`first + n - 1` of run `seed` (`only`: of the families whose name contains it). */
  cases(seed: number, n: number, keys: Keys, opts: { first?: number; only?: string } = {}): Case[] {
    const out: Case[] = [];
    const first = opts.first ?? 0;
    for (let i = first; i < first + n; i++) {
      const c = buildCase(i, prng(seed * 100_003 + i), keys, () => this.self, opts.only);
      out.push(c);
      this.repos.set(`${REPO_PREFIX}/component-descriptors/${c.name}`, c);
    }
    for (const s of subCases.splice(0)) this.repos.set(`${REPO_PREFIX}/component-descriptors/${s.name}`, s);
    return out;
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    for (const r of this.open) r.destroy();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private error(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    req.resume();
    const url = new URL(req.url!, `http://${this.host}`);
    const entry: { at: number; path: string; trick?: string } = { at: Date.now(), path: url.pathname };
    this.requests.push(entry);
    if (url.pathname === '/v2/' || url.pathname === '/v2') return res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
    if (url.pathname === '/token') {
      const scope = url.searchParams.getAll('scope').join(' ');
      const c = [...this.repos.values()].find((x) => scope.includes(`${REPO_PREFIX}/component-descriptors/${x.name}:`));
      const trick = c?.tricks.get('token');
      if (trick) return this.trick(req, res, trick, Buffer.from(JSON.stringify({ token: 'tok' })), entry);
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok', expires_in: 300 }));
    }
    const m = /^\/v2\/(.+?)\/(manifests\/[^/]+|blobs\/[^/]+|tags\/list)$/.exec(url.pathname);
    if (!m) return this.error(res, 404, 'NOT_FOUND');
    const [, repo, rest] = m;
    const c = this.repos.get(repo);
    if (!c) return this.error(res, 404, 'NAME_UNKNOWN');
    const challenge = c.tricks.get('*');
    if (challenge?.t === 'challenge' && req.headers.authorization !== 'Bearer tok') {
      entry.trick = 'challenge';
      const realm = challenge.realm.replace('HOST', this.host);
      return this.error(res, 401, 'UNAUTHORIZED', { 'www-authenticate': `Bearer realm="${realm}",service="fz",scope="repository:${repo}:pull"` });
    }
    let body: Buffer | undefined;
    let type = 'application/octet-stream';
    let digest: string | undefined;
    if (rest === 'tags/list') {
      const tags = c.tags ?? [...c.manifests.keys()].filter((k) => !k.startsWith('sha256:'));
      body = Buffer.from(JSON.stringify({ name: repo, tags }));
      type = 'application/json';
    } else if (rest.startsWith('manifests/')) {
      const ref = decodeURIComponent(rest.slice('manifests/'.length));
      const man = c.manifests.get(ref);
      if (!man && !c.tricks.has(rest)) return this.error(res, 404, 'MANIFEST_UNKNOWN');
      body = man?.body ?? Buffer.alloc(0);
      type = man?.type ?? OCI_MANIFEST;
      digest = sha(body);
    } else {
      const d = rest.slice('blobs/'.length);
      body = c.blobs.get(d);
      if (!body && !c.tricks.has(rest)) return this.error(res, 404, 'BLOB_UNKNOWN');
      body ??= Buffer.alloc(0);
      digest = d;
    }
    const left = c.honest?.get(rest) ?? 0;
    if (left > 0 && req.method === 'GET') c.honest!.set(rest, left - 1);
    const trick = left > 0 ? undefined : c.tricks.get(rest);
    if (trick) return this.trick(req, res, trick, body, entry, { type, digest, repo });
    const headers: Record<string, string> = { 'content-type': type, 'content-length': String(body.length) };
    if (digest) headers['docker-content-digest'] = digest;
    res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : body);
  }

  private trick(req: IncomingMessage, res: ServerResponse, t: Trick, body: Buffer, entry: { trick?: string }, o: { type?: string; digest?: string; repo?: string } = {}) {
    entry.trick = t.t;
    const type = o.type ?? 'application/octet-stream';
    switch (t.t) {
      case 'status': {
        const h: Record<string, string> = { 'content-type': 'application/json' };
        if (t.retryAfter) h['retry-after'] = t.retryAfter;
        return res.writeHead(t.status, h).end(t.body ?? '');
      }
      case 'redirect':
        return res.writeHead(307, { location: t.to }).end();
      case 'lengthMore':
        res.writeHead(200, { 'content-type': type, 'content-length': String(body.length + 1000), ...(o.digest ? { 'docker-content-digest': o.digest } : {}) });
        return res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.destroy(), 5));
      case 'lengthLess': {
        // raw bytes on the socket: Content-Length 10, then the whole body (poisoning a kept-alive connection)
        const s = req.socket;
        s.write(`HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\ncontent-length: ${Math.min(10, body.length)}\r\n${o.digest ? `docker-content-digest: ${o.digest}\r\n` : ''}\r\n`);
        s.write(body);
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra');
        setTimeout(() => s.destroy(), 50);
        return;
      }
      case 'drip': {
        this.open.add(res);
        res.writeHead(200, { 'content-type': type, 'content-length': String(Math.max(body.length, 1 << 20)), ...(o.digest ? { 'docker-content-digest': o.digest } : {}) });
        const started = Date.now();
        let k = 0;
        const tick = setInterval(() => {
          if (res.destroyed || Date.now() - started > t.forMs) {
            clearInterval(tick);
            this.open.delete(res);
            return res.destroy();
          }
          res.write(body.subarray(k, k + 1).length ? body.subarray(k, k + 1) : Buffer.from(' '));
          k++;
        }, t.everyMs);
        res.on('close', () => clearInterval(tick));
        return;
      }
      case 'endless': {
        this.open.add(res);
        res.writeHead(200, { 'content-type': type, ...(o.digest ? { 'docker-content-digest': o.digest } : {}) });
        const chunk = Buffer.alloc(1 << 20, 0x61);
        let sent = 0;
        const pump = () => {
          // "endless": until the client goes away, or 8 GiB (so a broken client cannot keep the test forever)
          while (!res.destroyed && sent < 8 * 2 ** 30) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          this.open.delete(res);
          res.destroy();
        };
        res.on('close', () => this.open.delete(res));
        return pump();
      }
      case 'wrongDigest':
        return res.writeHead(200, { 'content-type': type, 'content-length': String(body.length), 'docker-content-digest': sha(Buffer.from('other')) }).end(body);
      case 'wrongContent': {
        const other = Buffer.from(body.length ? body.toString('latin1').replace(/[a-z]/, 'Q') : 'other', 'latin1');
        return res.writeHead(200, { 'content-type': type, 'content-length': String(other.length), ...(o.digest ? { 'docker-content-digest': o.digest } : {}) }).end(other);
      }
      case 'tagPages': {
        const last = Number(new URL(req.url!, 'http://x').searchParams.get('last') ?? 0);
        const tags = Array.from({ length: 1000 }, (_, k) => `1.0.${last * 1000 + k}`);
        return res.writeHead(200, { 'content-type': 'application/json', link: `</v2/${o.repo ?? ''}/tags/list?n=1000&last=${last + 1}>; rel="next"` }).end(JSON.stringify({ name: o.repo, tags }));
      }
      case 'tagsWeird':
        return res.writeHead(200, { 'content-type': 'application/json' }).end(t.body);
      case 'challenge':
        return res.writeHead(401).end();
    }
  }
}
