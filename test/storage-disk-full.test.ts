// The data disk full under LevelDB (issue 15): writes fail with 503 Unavailable and nothing
// crashes; once there is room again, every write that was acknowledged is still there after a
// restart. Before, a write acknowledged after the failed ones was lost: LevelDB's log ended in a
// torn record and the record appended after it was dropped when the log was recovered. Needs a
// small filesystem of its own: a tmpfs (root), skipped where it cannot be mounted.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LevelStore } from '../storage/leveldb.js';
import { thing } from './helpers/store-conformance.js';

const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-disk-full-'));
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt], { stdio: 'ignore' });
  mounted = true;
} catch {
  // not root, or no tmpfs
}
t.teardown(() => {
  if (mounted) execFileSync('umount', ['-l', mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

t.test('disk full: writes fail cleanly, and no acknowledged write is lost once there is room', { skip: !mounted && 'cannot mount a tmpfs here' }, async (t) => {
  const dir = path.join(mnt, 'db');
  let s = await LevelStore.open(dir);
  const ballast = path.join(mnt, 'ballast');
  const acked: string[] = [];
  let failed = 0;
  const big = 'x'.repeat(200_000);
  // Take most of the disk, then write until LevelDB cannot.
  fs.writeFileSync(ballast, Buffer.alloc(5 << 20));
  for (let i = 0; i < 200 && failed < 5; i++) {
    try {
      await s.create(`/g/r/ns/o${i}`, thing(`o${i}`, { big }, 'ns'));
      acked.push(`o${i}`);
    } catch (e) {
      t.equal((e as { code?: string }).code, 'Unavailable', `write ${i} fails as Unavailable`);
      failed++;
    }
  }
  t.ok(failed > 0 && acked.length > 0, `${acked.length} writes acknowledged, then ${failed} failed`);
  fs.rmSync(ballast);
  for (const name of ['after-1', 'after-2']) {
    await s.create(`/g/r/ns/${name}`, thing(name, {}, 'ns'));
    acked.push(name);
  }
  await s.close();
  s = await LevelStore.open(dir);
  t.teardown(() => s.close());
  const names = new Set((await s.list('/g/r/ns/')).items.map((i) => i.obj.metadata.name));
  t.same(acked.filter((n) => !names.has(n)), [], 'every acknowledged write is there after the restart');
});
