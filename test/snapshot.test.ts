// Snapshots: deterministic packing, the round trip through Debian's docker-registry (read back by
// skopeo), and safe extraction against crafted archives.
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { MEDIA_TYPES, OciClient, OciError } from '../registry/client.js';
import {
  SNAPSHOT_CONFIG_MEDIA_TYPE,
  SNAPSHOT_LAYER_MEDIA_TYPE,
  extractSnapshot,
  readSnapshotFiles,
  packSnapshot,
  pullSnapshot,
  pushSnapshot,
  snapshotRepository,
  snapshotRepositoryNamespace,
} from '../registry/snapshot.js';
import { sha256, startDistribution } from './helpers/distribution.js';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'snapshot-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const newDir = (name = 'd') => fs.mkdtempSync(path.join(tmp, `${name}${n++}-`));

const binary = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256));
const FILES: Record<string, Buffer | string> = {
  'README.md': '# podinfo\n',
  'deploy/kustomization.yaml': 'resources:\n  - deployment.yaml\n',
  'deploy/deployment.yaml': 'kind: Deployment\n',
  'deploy-extra.txt': 'sorts between deploy and deploy/\n',
  'bin/data.bin': binary,
  'ünïcödé/fïlé.txt': 'utf-8 names\n',
  [`${'very-long-directory-name/'.repeat(8)}file.txt`]: 'a path longer than ustar holds\n',
  'empty.txt': '',
};

function writeTree(dir: string, files: Record<string, Buffer | string>, order: string[]) {
  for (const name of order) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, files[name]);
  }
}

async function listTar(tgz: Buffer): Promise<tar.Header[]> {
  const ex = tar.extract();
  const headers: tar.Header[] = [];
  const done = new Promise<void>((res, rej) => {
    ex.on('entry', (h, s, next) => {
      headers.push(h);
      s.on('end', next).resume();
    });
    ex.on('finish', res).on('error', rej);
  });
  ex.end(zlib.gunzipSync(tgz));
  await done;
  return headers;
}

function readTree(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isSymbolicLink()) out[r] = Buffer.from(`symlink to ${fs.readlinkSync(path.join(dir, r))}`);
      else out[r] = fs.readFileSync(path.join(dir, r));
    }
  };
  walk('');
  return out;
}

const asBuffers = (files: Record<string, Buffer | string>) => Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)]));

// ---- packing -------------------------------------------------------------------------------------

t.test('pack: same input, same bytes, whatever the order, times and modes on disk', async (t) => {
  const names = Object.keys(FILES);
  const a = await packSnapshot({ files: FILES });
  const b = await packSnapshot({ files: Object.fromEntries([...names].reverse().map((k) => [k, FILES[k]])) });
  t.ok(a.tgz.equals(b.tgz), 'files given in another order');
  t.equal(a.digest, sha256(a.tgz));
  t.equal(a.size, a.tgz.length);

  const d1 = newDir();
  const d2 = newDir();
  writeTree(d1, FILES, names);
  writeTree(d2, FILES, [...names].reverse());
  fs.utimesSync(path.join(d2, 'README.md'), new Date(2001, 1, 1), new Date(2001, 1, 1));
  fs.chmodSync(path.join(d2, 'bin/data.bin'), 0o700);
  fs.chmodSync(path.join(d2, 'deploy'), 0o700);
  const p1 = await packSnapshot({ dir: d1 });
  const p2 = await packSnapshot({ dir: d2 });
  t.equal(p1.digest, p2.digest, 'directories written in another order, other mtimes and modes');
  t.equal(p1.digest, a.digest, 'a directory and the same files given in memory');
  t.same(p1.files, a.files);
  t.same(
    a.files.map((f) => f.path),
    names.sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    'files listed in byte order of their paths',
  );
  t.same(a.files.find((f) => f.path === 'bin/data.bin'), { path: 'bin/data.bin', size: binary.length });
  t.equal((await packSnapshot({ files: { ...FILES, 'README.md': '# changed\n' } })).digest === a.digest, false, 'other content, other digest');
});

t.test('pack: gzip header and tar headers carry nothing machine-specific', async (t) => {
  const { tgz } = await packSnapshot({ files: FILES });
  t.same([...tgz.subarray(0, 4)], [0x1f, 0x8b, 8, 0], 'gzip magic, deflate, no flags (no name, no comment)');
  t.same([...tgz.subarray(4, 8)], [0, 0, 0, 0], 'gzip mtime 0');
  t.equal(tgz[9], 3, 'gzip OS byte 3 (Unix)');
  const headers = await listTar(tgz);
  const names = headers.map((h) => h.name.replace(/\/$/, ''));
  t.same(names, [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))), 'entries sorted');
  t.ok(names.includes('deploy') && names.indexOf('deploy') < names.indexOf('deploy/deployment.yaml'), 'directories before their content');
  for (const h of headers) {
    t.equal(h.mtime?.getTime(), 0, `${h.name} mtime`);
    t.same([h.uid, h.gid, h.uname, h.gname], [0, 0, '', ''], `${h.name} owner`);
    t.equal(h.mode, h.type === 'directory' ? 0o755 : 0o644, `${h.name} mode`);
  }
});

t.test('pack: rejects unsafe or ambiguous input', async (t) => {
  for (const name of ['../x', '/abs', 'a/../../b', 'c:\\x', '']) {
    await t.rejects(packSnapshot({ files: { [name]: 'x' } }), { code: 'INVALID_PATH' }, JSON.stringify(name));
  }
  await t.rejects(packSnapshot({ files: { a: 'file', 'a/b': 'under a file' } }), { code: 'INVALID_PATH' });
  const d = newDir();
  writeTree(d, { 'real.txt': 'real' }, ['real.txt']);
  fs.symlinkSync('real.txt', path.join(d, 'inside-link'));
  const packed = await packSnapshot({ dir: d });
  t.same(packed.files, [{ path: 'inside-link', size: 4 }, { path: 'real.txt', size: 4 }], 'a link to a file inside becomes a copy');
  const target = newDir('x');
  await extractSnapshot(packed.tgz, target);
  t.equal(fs.readFileSync(path.join(target, 'inside-link'), 'utf8'), 'real');
  fs.symlinkSync('/etc/hostname', path.join(d, 'outside-link'));
  await t.rejects(packSnapshot({ dir: d }), { code: 'INVALID_PATH', message: /outside/ }, 'a link out of the directory');
});

t.test('snapshotRepository: a place of its own for every producer', async (t) => {
  const place = (namespace: string, component: string, kind: 'Source' | 'Action', name: string, provider: string) => ({ namespace, component, kind, name, provider });
  const repo = (...a: Parameters<typeof place>) => snapshotRepository(place(...a)).repository;
  t.equal(repo('team-a', 'podinfo', 'Source', 'manifests', 'manifests'), 'team-a/podinfo/source/manifests/manifests', 'readable where it is unambiguous');
  t.equal(snapshotRepository(place('team-a', 'podinfo', 'Action', 'deploy', 'chart'), 'chart').repository, 'team-a/podinfo/action/deploy/chart/chart');
  // Issue 12, item 4: these shared a repository under <ns>/<component>/<name>-<provider>.
  t.not(repo('ns', 'c', 'Source', 'a', 'b-c'), repo('ns', 'c', 'Source', 'a-b', 'c'), 'Source a/provider b-c and Source a-b/provider c');
  t.not(repo('ns', 'c', 'Source', 'x', 'p'), repo('ns', 'c', 'Action', 'x', 'p'), 'a Source and an Action of the same name and provider');
  t.not(repo('a', 'b', 'Source', 'c', 'd'), repo('e', 'b', 'Source', 'c', 'd'), 'namespaces never share a repository');

  const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
  const long = repo('ns', 'c', 'Source', 'x'.repeat(253), 'p');
  const long2 = repo('ns', 'c', 'Source', `${'x'.repeat(252)}y`, 'p');
  t.match(long, /^ns\/source\/sha256\/[a-f0-9]{64}$/, 'too long: the hashed form, still under the namespace');
  t.ok(long.length <= 255 && NAME.test(long));
  t.not(long, long2, 'and distinct');
  t.equal(repo('ns', 'c', 'Source', 'x'.repeat(253), 'p'), long, 'deterministically');
  t.match(repo('ns', 'Not_A-Name', 'Source', 'a', 'b'), /^ns\/source\/sha256\//, 'a segment that is not an OCI path component as it is: hashed, never rewritten');
  t.throws(() => repo('NS!', 'c', 'Source', 'a', 'b'), { code: 'INVALID_REFERENCE' });

  // Injective over many names built to collide: dashes, dots, kinds, lengths near the limit.
  const parts = ['a', 'b', 'a-b', 'b-c', 'a.b', 'source', 'action', 'sha256', 'chart', 'x'.repeat(120), 'x'.repeat(121)];
  const seen = new Map<string, string>();
  for (const component of parts) for (const kind of ['Source', 'Action'] as const) for (const name of parts) for (const provider of parts) for (const suffix of [undefined, 'chart'] as const) {
    const key = JSON.stringify([component, kind, name, provider, suffix]);
    const r = snapshotRepository(place('ns', component, kind, name, provider), suffix).repository;
    t.ok(r.length <= 255 && NAME.test(r), r) || t.bailout();
    if (seen.has(r)) t.fail(`${key} and ${seen.get(r)} share ${r}`);
    seen.set(r, key);
    t.equal(snapshotRepositoryNamespace(r), 'ns');
  }
  t.equal(seen.size, parts.length ** 3 * 4, `${seen.size} producers, as many repositories`);
  t.equal(snapshotRepositoryNamespace('ns/comp/src-prov'), 'ns', 'the scheme before is still recognised by the GC');
  t.equal(snapshotRepositoryNamespace('ocm/component-descriptors/ocm.software/demo'), undefined, 'an OCM repository is not a snapshot place');
});

// ---- the registry round trip -----------------------------------------------------------------

t.test('round trip through docker-registry; skopeo sees our media types', async (t) => {
  const reg = await startDistribution();
  t.teardown(() => reg.stop());
  const client = new OciClient({ insecureHttp: true });
  t.teardown(() => client.close());
  const src = newDir();
  writeTree(src, FILES, Object.keys(FILES));
  const packed = await packSnapshot({ dir: src });
  const pushed = await pushSnapshot(client, {
    registry: `oci://${reg.host}`,
    namespace: 'team-a',
    component: 'podinfo',
    kind: 'Source',
    name: 'manifests',
    provider: 'ocmresource',
    timestamp: 1700000000,
    tgz: packed.tgz,
    annotations: { 'software.ocm.snapshot.source': 'team-a/manifests' },
  });
  t.match(pushed, { repository: 'team-a/podinfo/source/manifests/ocmresource', tag: '1700000000', layerDigest: packed.digest, size: packed.size });
  t.equal(pushed.ref, `${reg.host}/team-a/podinfo/source/manifests/ocmresource@${pushed.digest}`);

  const skopeo = async (...args: string[]) => (await promisify(execFile)('skopeo', args, { timeout: 60_000 })).stdout;
  const image = `docker://${reg.host}/${pushed.repository}:${pushed.tag}`;
  const raw = await skopeo('inspect', '--raw', '--tls-verify=false', image);
  t.equal(sha256(raw), pushed.digest, 'skopeo reads the manifest we pushed, byte for byte');
  const manifest = JSON.parse(raw);
  t.equal(manifest.mediaType, MEDIA_TYPES.ociManifest);
  t.equal(manifest.config.mediaType, SNAPSHOT_CONFIG_MEDIA_TYPE);
  t.same(manifest.layers.map((l: any) => [l.mediaType, l.digest, l.size]), [[SNAPSHOT_LAYER_MEDIA_TYPE, packed.digest, packed.size]]);
  t.equal(manifest.annotations['org.opencontainers.image.created'], '2023-11-14T22:13:20.000Z');
  t.equal(manifest.annotations['software.ocm.snapshot.source'], 'team-a/manifests');
  const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${reg.host}/${pushed.repository}`));
  t.same(tags.Tags, ['1700000000']);

  const tgz = await pullSnapshot(client, pushed.ref, { expectedDigest: pushed.digest });
  t.ok(tgz.equals(packed.tgz), 'pulled bytes equal the pushed ones');
  t.ok((await pullSnapshot(client, `${reg.host}/${pushed.repository}:${pushed.tag}`, { expectedDigest: packed.digest })).equals(packed.tgz), 'by tag, layer digest expected');
  const out = newDir('out');
  const { files } = await extractSnapshot(tgz, out);
  t.same([...files].sort(), Object.keys(FILES).sort());
  t.same(readTree(out), asBuffers(FILES), 'extracted tree equals the input');

  await t.rejects(pullSnapshot(client, pushed.ref, { expectedDigest: sha256('other') }), { code: 'DIGEST_MISMATCH' });
  const other = await client.pushBlob(`${reg.host}/not/snapshot`, Buffer.from('{}'));
  await client.putManifest(`${reg.host}/not/snapshot:v1`, { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...other }, layers: [] }, MEDIA_TYPES.ociManifest);
  await t.rejects(pullSnapshot(client, `${reg.host}/not/snapshot:v1`), { code: 'NOT_A_SNAPSHOT' });
});

// ---- extraction attacks ------------------------------------------------------------------------

type Crafted = { header: Partial<tar.Header> & { name: string }; content?: Buffer | string };

async function craft(entries: Crafted[], level = 6): Promise<Buffer> {
  const pack = tar.pack();
  const gz = pack.pipe(zlib.createGzip({ level }));
  const chunks: Buffer[] = [];
  gz.on('data', (c) => chunks.push(c));
  const done = new Promise((r) => gz.on('end', r));
  for (const e of entries) {
    await new Promise<void>((res, rej) => pack.entry({ mtime: new Date(0), ...e.header }, e.content ?? '', (err) => (err ? rej(err) : res())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Extracts into jail/target, expects rejection with `code`, and checks nothing was left anywhere. */
async function rejected(t: Tap, tgz: Buffer, code: string, msg: string, limits?: Parameters<typeof extractSnapshot>[2], prepare?: (jail: string, target: string) => void) {
  const jail = newDir('jail');
  const target = path.join(jail, 'target');
  fs.mkdirSync(target);
  prepare?.(jail, target);
  const before = [readTree(jail), fs.readdirSync(target)];
  try {
    await extractSnapshot(tgz, target, limits);
    t.fail(`${msg}: extracted`);
  } catch (e) {
    t.ok(e instanceof OciError && e.code === code, `${msg}: ${(e as Error).message}`);
  }
  t.same([readTree(jail), fs.readdirSync(target)], before, `${msg}: nothing written`);
  t.notOk(fs.existsSync(path.join(tmp, 'x')) || fs.existsSync(path.join(tmp, 'pax-evil')) || fs.existsSync('/abs'), `${msg}: nothing outside`);
}

t.test('extract: rejects crafted archives and writes nothing', async (t) => {
  const ok = { header: { name: 'fine.txt' }, content: 'fine' };
  await rejected(t, await craft([ok, { header: { name: '../x' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', '"../x"');
  await rejected(t, await craft([ok, { header: { name: 'a/../../x' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', '"a/../../x"');
  await rejected(t, await craft([{ header: { name: '/abs/x' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', 'absolute path');
  await rejected(t, await craft([ok, { header: { name: 'innocent', pax: { path: '../../pax-evil' } }, content: 'evil' }]), 'UNSAFE_ARCHIVE', 'pax path with ..');
  await rejected(t, await craft([ok, { header: { name: 'etc', type: 'symlink', linkname: '/etc' } }, { header: { name: 'etc/passwd' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', 'symlink to /etc');
  await rejected(t, await craft([ok, { header: { name: 'up', type: 'symlink', linkname: '../..' } }]), 'UNSAFE_ARCHIVE', 'symlink up');
  await rejected(t, await craft([ok, { header: { name: 'hl', type: 'link', linkname: '/etc/passwd' } }]), 'UNSAFE_ARCHIVE', 'hardlink');
  await rejected(t, await craft([ok, { header: { name: 'null', type: 'character-device', devmajor: 1, devminor: 3 } }]), 'UNSAFE_ARCHIVE', 'character device');
  await rejected(t, await craft([ok, { header: { name: 'disk', type: 'block-device', devmajor: 8, devminor: 0 } }]), 'UNSAFE_ARCHIVE', 'block device');
  await rejected(t, await craft([ok, { header: { name: 'pipe', type: 'fifo' } }]), 'UNSAFE_ARCHIVE', 'fifo');
  await rejected(t, await craft([ok, { header: { name: 'dup' }, content: '1' }, { header: { name: './dup' }, content: '2' }]), 'UNSAFE_ARCHIVE', 'duplicate entry');
  await rejected(t, await craft([ok, { header: { name: 'f' }, content: '1' }, { header: { name: 'f/g' }, content: '2' }]), 'UNSAFE_ARCHIVE', 'a file used as a directory');
  await rejected(t, await craft([ok, { header: { name: 'd/g' }, content: '1' }, { header: { name: 'd' }, content: '2' }]), 'UNSAFE_ARCHIVE', 'a directory used as a file');
  await rejected(t, await craft([ok, { header: { name: 'link/payload' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', 'through a symlink already in the target', undefined, (jail, target) => {
    fs.mkdirSync(path.join(jail, 'outside'));
    fs.symlinkSync(path.join(jail, 'outside'), path.join(target, 'link'));
  });
  await rejected(t, await craft([{ header: { name: 'exists' }, content: 'new' }]), 'UNSAFE_ARCHIVE', 'an existing file is never overwritten', undefined, (jail, target) => {
    fs.writeFileSync(path.join(target, 'exists'), 'old');
  });
  await rejected(t, await craft([{ header: { name: 'dangling' }, content: 'new' }]), 'UNSAFE_ARCHIVE', 'a dangling symlink in the target is not followed', undefined, (jail, target) => {
    fs.symlinkSync(path.join(jail, 'created-through-link'), path.join(target, 'dangling'));
  });
  await rejected(t, randomBytes(1000), 'INVALID_ARCHIVE', 'not gzip');
  const good = await craft([ok, { header: { name: 'big' }, content: randomBytes(100_000) }]);
  await rejected(t, good.subarray(0, good.length - 2000), 'INVALID_ARCHIVE', 'truncated');
});

t.test('extract: limits against tar bombs', async (t) => {
  const many = await craft(Array.from({ length: 2001 }, (_, i) => ({ header: { name: `f${i}` }, content: '' })));
  await rejected(t, many, 'ARCHIVE_TOO_LARGE', '2001 entries, limit 2000', { maxEntries: 2000 });
  const target = newDir('many');
  t.equal((await extractSnapshot(many, target, { maxEntries: 2001 })).files.length, 2001, 'at the limit it extracts');

  // 64 MiB of zeros gzip to ~64 KiB: a 1000:1 ratio
  const pack = tar.pack();
  const gz = pack.pipe(zlib.createGzip({ level: 9 }));
  const parts: Buffer[] = [];
  gz.on('data', (c) => parts.push(c));
  const ended = new Promise((r) => gz.on('end', r));
  const entry = pack.entry({ name: 'zeros', size: 64 << 20, mtime: new Date(0) });
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < 64; i++) if (!entry.write(zeros)) await new Promise<void>((r) => entry.once('drain', () => r()));
  entry.end(Buffer.alloc(0));
  pack.finalize();
  await ended;
  const bomb = Buffer.concat(parts);
  t.comment(`bomb: ${bomb.length} bytes gzip for 64 MiB`);
  await rejected(t, bomb, 'ARCHIVE_TOO_LARGE', 'gzip bomb (default ratio limit)');
  await rejected(t, bomb, 'ARCHIVE_TOO_LARGE', 'gzip bomb (size limit)', { maxBytes: 8 << 20, maxRatio: 1e9 });
  const big = await craft([{ header: { name: 'random' }, content: randomBytes(2 << 20) }]);
  await rejected(t, big, 'ARCHIVE_TOO_LARGE', 'content over maxBytes', { maxBytes: 1 << 20 });
  const fine = newDir('fine');
  t.same((await extractSnapshot(big, fine)).files, ['random'], 'within the defaults');
});

t.test('read into memory: the same checks and limits, the files in archive order', async (t) => {
  const ok = { header: { name: 'fine.txt' }, content: 'fine' };
  const refuse = async (tgz: Buffer, code: string, msg: string, limits?: Parameters<typeof readSnapshotFiles>[1]) => {
    const e = await readSnapshotFiles(tgz, limits).then(
      () => undefined,
      (err: unknown) => err,
    );
    t.ok(e instanceof OciError && e.code === code, `${msg}: ${(e as Error | undefined)?.message ?? 'read'}`);
  };
  await refuse(await craft([ok, { header: { name: '../x' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', '"../x"');
  await refuse(await craft([{ header: { name: '/abs/x' }, content: 'evil' }]), 'UNSAFE_ARCHIVE', 'absolute path');
  await refuse(await craft([ok, { header: { name: 'innocent', pax: { path: '../../pax-evil' } }, content: 'evil' }]), 'UNSAFE_ARCHIVE', 'pax path with ..');
  await refuse(await craft([ok, { header: { name: 'etc', type: 'symlink', linkname: '/etc' } }]), 'UNSAFE_ARCHIVE', 'symlink');
  await refuse(await craft([ok, { header: { name: 'hl', type: 'link', linkname: 'fine.txt' } }]), 'UNSAFE_ARCHIVE', 'hardlink');
  await refuse(await craft([ok, { header: { name: 'dup' }, content: '1' }, { header: { name: './dup' }, content: '2' }]), 'UNSAFE_ARCHIVE', 'duplicate entry');
  await refuse(randomBytes(1000), 'INVALID_ARCHIVE', 'not gzip');
  const big = await craft([{ header: { name: 'random' }, content: randomBytes(2 << 20) }]);
  await refuse(big, 'ARCHIVE_TOO_LARGE', 'content over maxBytes', { maxBytes: 1 << 20 });
  await refuse(await craft(Array.from({ length: 11 }, (_, i) => ({ header: { name: `f${i}` }, content: '' }))), 'ARCHIVE_TOO_LARGE', 'entries over maxEntries', { maxEntries: 10 });

  // a small gzip bomb (16 MiB of zeros in ~16 KiB): the one-call inflation stops at the limits too
  const zeros = await craft([{ header: { name: 'zeros' }, content: Buffer.alloc(16 << 20) }]);
  t.ok(zeros.length < 64 << 10, `small bomb: ${zeros.length} bytes`);
  await refuse(zeros, 'ARCHIVE_TOO_LARGE', 'small gzip bomb (ratio)');
  await refuse(zeros, 'ARCHIVE_TOO_LARGE', 'small gzip bomb (size)', { maxBytes: 4 << 20, maxRatio: 1e9 });
  t.equal(Object.keys(await readSnapshotFiles(zeros, { maxRatio: 1e9 })).length, 1, 'and inflates within raised limits');

  const files = await readSnapshotFiles(await craft([{ header: { name: 'b/one.yaml' }, content: 'one' }, { header: { name: 'a', type: 'directory' } }, { header: { name: 'a/two' }, content: 'two' }]));
  t.same(Object.keys(files), ['b/one.yaml', 'a/two'], 'files only, in archive order');
  t.equal(files['a/two'].toString(), 'two');
});
