// The YAML files Configurator and Localization edit, edited off the event loop (issue 15): parsing,
// editing and writing a 3 MiB manifest (providers/configdata.ts SnapshotEditor) held the event loop
// for seconds, so files over 64 KiB are edited in a worker thread (apiserver/offthread.ts, the one the
// descriptor parser uses) by the same SnapshotEditor code: the main thread ships the file's bytes,
// each rule's path and value, and gets the edited bytes back. The thread has its own heap limit and
// a time limit per step; over either, the rule fails naming the file (a TransformError, as a parse
// error is). Smaller files are edited in place. A ConfigData and the values of a
// ConfigMap or Secret (spec.valuesFrom) over 64 KiB are parsed there too.
import { OffThread, serveOffThread } from '../apiserver/offthread.js';
import { leaseMemory } from '../registry/memory-budget.js';
import { MAX_BYTES } from '../apiserver/prescan.js';
import { type ConfigData, normalizeFile, parseConfigData, parseValues, SnapshotEditor, TransformError, YAML_HEAP_PER_BYTE } from './configdata.js';
import type { Files } from './types.js';

const IN_PLACE_BYTES = 64 << 10;
const NAME = 'YAML editor';
const q = (s: unknown) => JSON.stringify(s);

type Req =
  | { op: 'open'; s: number; name: string; bytes: Uint8Array; what: string }
  | { op: 'set'; s: number; file: string; path: string; value: unknown; what: string }
  | { op: 'result'; s: number }
  | { op: 'close'; s: number }
  | { op: 'config'; text: Uint8Array; what: string }
  | { op: 'values'; text: string; what: string; secret: boolean };

// In the thread: one SnapshotEditor of one file per session.
const sessions = new Map<number, { ed: SnapshotEditor; name: string; input: Buffer }>();
serveOffThread(NAME, (req: Req) => {
  if (req.op === 'values') return parseValues(req.text, req.what, req.secret);
  if (req.op === 'config') return parseConfigData(Buffer.from(req.text.buffer, req.text.byteOffset, req.text.byteLength), req.what);
  if (req.op === 'open') {
    let sess = sessions.get(req.s);
    if (!sess) {
      const input = Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength);
      sess = { ed: new SnapshotEditor({ [req.name]: input }), name: req.name, input };
      sessions.set(req.s, sess);
    }
    sess.ed.requireFile(req.name, req.what);
    return null;
  }
  const sess = sessions.get(req.s);
  if (req.op === 'close') return void sessions.delete(req.s);
  if (!sess) throw new Error(`the ${NAME} thread was restarted; the edit is retried`);
  if (req.op === 'set') return sess.ed.set(req.file, req.path, req.value, req.what);
  sessions.delete(req.s);
  const out = sess.ed.result()[sess.name];
  return out === sess.input ? null : new Uint8Array(out); // a copy owning its ArrayBuffer: moved, not copied (a view would send its whole ArrayBuffer)
});

const editor = new OffThread({
  name: NAME,
  module: new URL(import.meta.url),
  heapMib: 1024,
  timeoutMs: 60_000,
  fromWire: (e) => (e.name === 'TransformError' ? new TransformError(e.message) : new Error(e.message)),
});

/** The thread's limits, for the next one started (tests). */
export const configureEditThread = (o: { heapMib?: number; timeoutMs?: number }) => editor.configure(o);

const overLimit = (what: string) => (over: 'memory' | 'time') =>
  new TransformError(`${what}: took more than ${over === 'memory' ? `${editor.heapMib} MiB of memory` : `${editor.timeoutMs / 1000} s`} (the file is too large or too complex to edit)`);

/** parseConfigData in the thread (a ConfigData over 64 KiB; configdata.ts loadConfigData). */
export const parseConfigDataOffThread = (text: Buffer, what: string): Promise<ConfigData> => {
  const copy = new Uint8Array(text); // moved to the thread, not copied again
  return editor.call<ConfigData>({ op: 'config', text: copy, what } satisfies Req, overLimit(`${what}: parsing it`), [copy.buffer]);
};

/** parseValues in the thread (a ConfigMap's or Secret's values over 64 KiB; configurator.ts valuesFrom). */
export const parseValuesOffThread = (text: string, what: string, secret: boolean): Promise<unknown> =>
  editor.call({ op: 'values', text, what, secret } satisfies Req, overLimit(`${what}: parsing it`));

let nextSession = 0;

/**
 * SnapshotEditor's open, set and result, with the files over `inPlaceBytes` edited in the worker
 * thread. The same rules on the same files give the same bytes and the same errors either way.
 * close() ends the thread's sessions of a run that stopped early.
 */
export class SnapshotEdits {
  private readonly local: SnapshotEditor;
  /** Files edited in the thread: their session, and whether the file is parsed there. */
  private readonly remote = new Map<string, { s: number; parsed: boolean }>();

  constructor(
    private readonly files: Files,
    private readonly inPlaceBytes = IN_PLACE_BYTES,
  ) {
    this.local = new SnapshotEditor(files);
  }

  private big(name: string): Buffer | undefined {
    const buf = Object.hasOwn(this.files, name) ? this.files[name] : undefined;
    return buf && buf.length > this.inPlaceBytes ? buf : undefined;
  }

  /** SnapshotEditor.open: leases the parse from the in-memory budget, then parses the file. */
  async open(file: string, what: string): Promise<void> {
    const name = normalizeFile(file);
    const buf = this.big(name);
    if (!buf) return this.local.open(file, what);
    let r = this.remote.get(name);
    if (!r?.parsed) {
      if (buf.length > MAX_BYTES) throw new TransformError(`${what}: file ${q(name)} is ${buf.length} bytes; a file to edit is at most ${MAX_BYTES} bytes`);
      await leaseMemory(YAML_HEAP_PER_BYTE * buf.length);
    }
    this.local.checkPath(file, what);
    if (r?.parsed) return;
    if (!r) this.remote.set(name, (r = { s: ++nextSession, parsed: false }));
    const bytes = new Uint8Array(buf); // moved to the thread, not copied again
    await editor.call({ op: 'open', s: r.s, name, bytes, what } satisfies Req, overLimit(`${what}: file ${q(name)}`), [bytes.buffer]);
    r.parsed = true;
  }

  /** SnapshotEditor.set: the number of documents changed. */
  async set(file: string, path: string, value: unknown, what: string): Promise<number> {
    const name = normalizeFile(file);
    if (!this.big(name)) return this.local.set(file, path, value, what);
    if (!this.remote.get(name)?.parsed) await this.open(file, what);
    const r = this.remote.get(name)!;
    return editor.call<number>({ op: 'set', s: r.s, file, path, value, what } satisfies Req, overLimit(`${what}: file ${q(name)}`));
  }

  /** SnapshotEditor.result: the edited files (unchanged ones are the input's buffers). */
  async result(): Promise<Files> {
    const out = this.local.result();
    for (const [name, r] of this.remote) {
      this.remote.delete(name);
      const bytes = await editor.call<Uint8Array | null>({ op: 'result', s: r.s } satisfies Req, overLimit(`file ${q(name)}`));
      if (bytes) out[name] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    return out;
  }

  /** Ends the sessions result() did not. */
  close(): void {
    for (const r of this.remote.values()) editor.post({ op: 'close', s: r.s } satisfies Req);
    this.remote.clear();
  }
}
