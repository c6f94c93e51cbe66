// JSON that gives the event loop back (issue 15: no request holds it for more than 100 ms). A
// 3 MiB body of 200,000 keys or a million small values takes JSON.parse or JSON.stringify 50 to
// 200 ms in one go; these do the same work in slices of a few milliseconds, awaiting setImmediate
// between slices. The parser also finds what JSON.parse hides, in the same pass: fields an object
// repeats (their paths, as kube's strict decoding names them) and nesting past a limit.

import { isDeepStrictEqual } from 'node:util';

/** A turn of the event loop: other requests, timers and I/O run before the caller goes on. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Work between two looks at the clock, and the time a slice may take (ms). */
const STEP = 2048;
const SLICE_MS = 8;

/** Counts work: `due()` is true every SLICE_MS or so, and then the caller awaits `yield()`. */
export class Slicer {
  private n = 0;
  private until = performance.now() + SLICE_MS;
  /** `step`: work between looks at the clock (smaller where one unit of work is heavier). */
  constructor(private readonly step = STEP) {}
  /**
   * Counts `units` of work done at once (an enumeration of an object's keys, which no slice can
   * cut: Object.keys of 200,000 keys takes 30 to 90 ms): past a step, the next `due()` looks at
   * the clock, so the next enumeration starts in a turn of its own.
   */
  count(units: number): void {
    this.n += units;
  }
  due(): boolean {
    if (++this.n < this.step) return false;
    this.n = 0;
    return performance.now() >= this.until;
  }
  async yield(): Promise<void> {
    await nextTurn();
    this.until = performance.now() + SLICE_MS;
  }
}

export class JsonSyntaxError extends Error {}

export interface ParseOptions {
  /** Deepest nesting accepted; deeper throws JsonDepthError. */
  maxDepth?: number;
  /** Collect the paths of repeated fields (`metadata.name`, `spec.list[0].a`). */
  duplicates?: boolean;
}

export class JsonDepthError extends Error {}

export interface Parsed {
  value: unknown;
  /** Paths of fields an object repeats (the last value is kept, as JSON.parse keeps it). */
  duplicates: string[];
}

const WS = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

interface Frame {
  /** The object or array being filled. */
  c: Record<string, unknown> | unknown[];
  arr: boolean;
  /** Objects: the key whose value comes next. */
  key: string;
}

const setOwn = (o: Record<string, unknown>, k: string, v: unknown) => {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
};

/**
 * JSON.parse of a UTF-8 text (invalid sequences read as U+FFFD, as Buffer#toString reads them),
 * in slices. Same values as JSON.parse (a repeated key keeps its last value, `__proto__` is a
 * field); syntax errors throw JsonSyntaxError naming the position.
 */
export async function parseJson(input: Buffer | string, o: ParseOptions = {}): Promise<Parsed> {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const n = buf.length;
  const maxDepth = o.maxDepth ?? Infinity;
  const dupPaths: string[] = [];
  const stack: Frame[] = [];
  const slicer = new Slicer();
  let i = 0;
  const fail = (what?: string): never => {
    if (i >= n) throw new JsonSyntaxError('Unexpected end of JSON input');
    throw new JsonSyntaxError(what ?? `Unexpected token '${String.fromCharCode(buf[i])}' at position ${i}`);
  };
  const skipWs = () => {
    while (i < n && WS(buf[i])) i++;
  };
  /** A string at i (the opening quote); i ends after the closing quote. */
  const str = (): string => {
    const start = ++i;
    let plain = true;
    let ascii = true;
    for (; i < n; i++) {
      const c = buf[i];
      if (c === 0x22) break;
      if (c === 0x5c) {
        plain = false;
        i++;
      } else if (c < 0x20) fail(`Bad control character in string literal at position ${i}`);
      else if (c >= 0x80) ascii = false;
    }
    if (i >= n) fail('Unterminated string in JSON');
    const end = i++;
    if (plain) return buf.toString(ascii ? 'latin1' : 'utf8', start, end);
    try {
      return JSON.parse(buf.toString('utf8', start - 1, end + 1)) as string;
    } catch (err) {
      throw new JsonSyntaxError(`${(err as Error).message} (in the string at position ${start - 1})`);
    }
  };
  const digits = () => {
    const s = i;
    while (i < n && buf[i] >= 0x30 && buf[i] <= 0x39) i++;
    if (i === s) fail();
  };
  const num = (): number => {
    const s = i;
    if (buf[i] === 0x2d) i++;
    if (buf[i] === 0x30) i++;
    else digits();
    if (buf[i] === 0x2e) {
      i++;
      digits();
    }
    if (buf[i] === 0x65 || buf[i] === 0x45) {
      i++;
      if (buf[i] === 0x2b || buf[i] === 0x2d) i++;
      digits();
    }
    return Number(buf.toString('latin1', s, i));
  };
  const word = (w: string, v: unknown) => {
    for (let k = 0; k < w.length; k++, i++) if (buf[i] !== w.charCodeAt(k)) fail();
    return v;
  };
  const pathOf = (key: string): string => {
    let p = '';
    for (let d = 0; d < stack.length - 1; d++) {
      const f = stack[d];
      p = f.arr ? `${p}[${(f.c as unknown[]).length}]` : p ? `${p}.${f.key}` : f.key;
    }
    return p ? `${p}.${key}` : key;
  };

  let root: unknown;
  let done = false;
  /** Puts a finished value into the open container (or makes it the root). */
  const put = (v: unknown) => {
    const top = stack[stack.length - 1];
    if (!top) {
      root = v;
      done = true;
    } else if (top.arr) (top.c as unknown[]).push(v);
    else setOwn(top.c as Record<string, unknown>, top.key, v);
  };
  /** Reads a key and its colon into the object frame on top (i at the key's quote). */
  const key = () => {
    if (buf[i] !== 0x22) fail();
    const k = str();
    const top = stack[stack.length - 1];
    if (o.duplicates && Object.hasOwn(top.c, k)) dupPaths.push(pathOf(k));
    top.key = k;
    skipWs();
    if (buf[i] !== 0x3a) fail();
    i++;
  };

  skipWs();
  for (;;) {
    if (slicer.due()) await slicer.yield();
    // A value at i.
    skipWs();
    const c = buf[i];
    if (c === 0x7b || c === 0x5b) {
      if (stack.length + 1 > maxDepth) throw new JsonDepthError(`the object nests deeper than the limit of ${maxDepth} levels`);
      const arr = c === 0x5b;
      const f: Frame = { c: arr ? [] : {}, arr, key: '' };
      i++;
      skipWs();
      if (buf[i] === (arr ? 0x5d : 0x7d)) {
        i++;
        put(f.c);
      } else {
        stack.push(f);
        if (!arr) key();
        continue;
      }
    } else if (c === 0x22) put(str());
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) put(num());
    else if (c === 0x74) put(word('true', true));
    else if (c === 0x66) put(word('false', false));
    else if (c === 0x6e) put(word('null', null));
    else fail();
    // After a value: a comma (next element or key) or the container's end, maybe several ends.
    for (;;) {
      if (done) {
        skipWs();
        if (i < n) fail();
        return { value: root, duplicates: dupPaths };
      }
      skipWs();
      const top = stack[stack.length - 1];
      const d = buf[i];
      if (d === 0x2c) {
        i++;
        skipWs();
        if (!top.arr) key();
        break;
      }
      if (d === (top.arr ? 0x5d : 0x7d)) {
        i++;
        stack.pop();
        put(top.c);
        continue;
      }
      fail();
    }
  }
}

/**
 * JSON.stringify of a plain JSON value (what parseJson and the store hold: no cycles), in slices.
 * toJSON is honoured as JSON.stringify honours it; undefined, functions and symbols are left out
 * of objects and are null in arrays.
 */
export async function stringifyJson(value: unknown): Promise<string> {
  const parts = await serialize(value);
  return parts.length === 1 ? parts[0] : parts.join('');
}

/** stringifyJson in pieces of about 64 KiB, to be sent one by one (no 30 MB string made at once). */
export const stringifyJsonParts = (value: unknown): Promise<string[]> => serialize(value);

/**
 * stringifyJson with the value of one field left out: `[before, after]`, to be joined around the
 * value's JSON (the store puts the resourceVersion it assigns there without serialising again).
 */
export async function stringifyJsonAround(value: unknown, holder: object, key: string): Promise<[string, string]> {
  const parts = await serialize(value, { holder, key });
  const at = parts.indexOf(HOLE);
  if (at < 0) throw new Error(`stringifyJsonAround: no field ${key} in the value`);
  return [parts.slice(0, at).join(''), parts.slice(at + 1).join('')];
}

/**
 * JSON text serialize puts where it meets this, as it is: a stored object's JSON (or a part of it,
 * memberJson) instead of the object, whose keys are then never enumerated. One Object.keys of
 * 200,000 labels holds the event loop 30 to 150 ms, and no slice can be cut inside it (issue 15).
 */
export class RawJson {
  constructor(readonly json: string) {}
}

/**
 * A long text in slices of `size` UTF-16 units to send one by one (a TLS socket encrypts what it is
 * given in one go: 2.8 MB took 20 ms), a surrogate pair never cut.
 */
export function* textSlices(s: string, size = PART): Generator<string> {
  for (let i = 0; i < s.length; ) {
    let j = Math.min(s.length, i + size);
    if (j < s.length) {
      const c = s.charCodeAt(j - 1);
      if (c >= 0xd800 && c <= 0xdbff) j++;
    }
    yield s.slice(i, j);
    i = j;
  }
}

const PART = 1 << 16;

/** The end (past the closing quote) of the JSON string starting at `i`. */
function stringEnd(s: string, i: number): number {
  for (let j = i + 1; ; ) {
    const q = s.indexOf('"', j);
    if (q < 0) throw new JsonSyntaxError('unterminated string');
    let b = q - 1;
    while (s.charCodeAt(b) === 0x5c) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/**
 * The text of the value of member `key` of the JSON object `json` (well-formed, as the store wrote
 * it), found in slices without parsing anything but the top-level keys; undefined without it.
 */
export async function memberJson(json: string, key: string): Promise<string | undefined> {
  const at = (await memberRanges(json, key)).get(key);
  return at && json.slice(at[0], at[1]);
}

/**
 * Where the value of each top-level member of the JSON object `json` (well-formed, as the store
 * wrote it) starts and ends, found in slices; with `stop`, the scan ends at that member.
 */
export async function memberRanges(json: string, stop?: string): Promise<Map<string, [number, number]>> {
  const slicer = new Slicer();
  const out = new Map<string, [number, number]>();
  const ws = (i: number) => {
    while (WS(json.charCodeAt(i))) i++;
    return i;
  };
  let i = ws(0);
  if (json[i] !== '{') return out;
  i = ws(i + 1);
  while (i < json.length && json[i] !== '}') {
    if (json[i] === ',') i = ws(i + 1);
    const kEnd = stringEnd(json, i);
    const k = JSON.parse(json.slice(i, kEnd)) as string;
    i = ws(ws(kEnd) + 1); // past ':'
    const start = i;
    const c = json[i];
    if (c === '"') i = stringEnd(json, i);
    else if (c === '{' || c === '[') {
      let depth = 0;
      do {
        if (slicer.due()) await slicer.yield();
        const ch = json.charCodeAt(i);
        if (ch === 0x22) {
          i = stringEnd(json, i);
          continue;
        }
        if (ch === 0x7b || ch === 0x5b) depth++;
        else if (ch === 0x7d || ch === 0x5d) depth--;
        i++;
      } while (depth > 0 && i < json.length);
    } else while (i < json.length && !',}] \n\r\t'.includes(json[i])) i++;
    out.set(k, [start, i]);
    if (k === stop) return out;
    i = ws(i);
  }
  return out;
}

/**
 * The number of members of the JSON object `json` (well-formed, as the store wrote it: no key
 * repeated), 0 for any other value; counted in slices, nothing parsed.
 */
export async function countMembers(json: string): Promise<number> {
  const slicer = new Slicer();
  let i = 0;
  while (WS(json.charCodeAt(i))) i++;
  if (json[i] !== '{') return 0;
  let depth = 0;
  let commas = 0;
  let empty = true;
  while (i < json.length) {
    if (slicer.due()) await slicer.yield();
    const ch = json.charCodeAt(i);
    if (ch === 0x22) {
      empty = false;
      i = stringEnd(json, i);
      continue;
    }
    if (ch === 0x7b || ch === 0x5b) depth++;
    else if (ch === 0x7d || ch === 0x5d) {
      if (--depth === 0) break;
    } else if (ch === 0x2c && depth === 1) commas++;
    i++;
  }
  return empty ? 0 : commas + 1;
}

const HOLE = '\u0000hole'; // a part of its own: JSON text has no raw NUL, so no other part equals it

async function serialize(value: unknown, hole?: { holder: object; key: string }): Promise<string[]> {
  const slicer = new Slicer();
  const parts: string[] = [];
  let out = '';
  const flush = () => {
    parts.push(out);
    out = '';
  };
  /** A RawJson's text: parts of its own past a part's size. */
  const raw = (text: string) => {
    if (out.length + text.length <= PART) out += text;
    else {
      flush();
      for (const p of textSlices(text)) parts.push(p);
    }
  };
  const scalar = (v: unknown): string | undefined => {
    if (v === null) return 'null';
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v);
      case 'number':
        return Number.isFinite(v) ? String(v) : 'null';
      case 'boolean':
        return v ? 'true' : 'false';
      case 'bigint':
        return JSON.stringify(v); // throws as JSON.stringify does
      default:
        return undefined;
    }
  };
  const prep = (v: unknown, k: string): unknown => {
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') return (v as { toJSON(k: string): unknown }).toJSON(k);
    return v;
  };
  // An iterator per open container: [container, keys or null for arrays, next index].
  type It = { v: Record<string, unknown> | unknown[]; keys: string[] | null; i: number; first: boolean };
  const open = (v: object): It => {
    if (Array.isArray(v)) {
      out += '[';
      return { v, keys: null, i: 0, first: true };
    }
    out += '{';
    const keys = Object.keys(v);
    slicer.count(keys.length);
    return { v: v as Record<string, unknown>, keys, i: 0, first: true };
  };
  const top0 = prep(value, '');
  if (top0 instanceof RawJson) return [...textSlices(top0.json)];
  if (top0 === null || typeof top0 !== 'object') return [scalar(top0) ?? (undefined as unknown as string)];
  const stack: It[] = [open(top0)];
  while (stack.length) {
    if (slicer.due()) {
      if (out.length > 1 << 16) flush();
      await slicer.yield();
    }
    const it = stack[stack.length - 1];
    if (it.keys === null) {
      const a = it.v as unknown[];
      if (it.i >= a.length) {
        out += ']';
        stack.pop();
        continue;
      }
      const idx = it.i++;
      const v = prep(a[idx], String(idx));
      if (!it.first) out += ',';
      it.first = false;
      if (v instanceof RawJson) raw(v.json);
      else if (v !== null && typeof v === 'object') stack.push(open(v));
      else out += scalar(v) ?? 'null';
    } else {
      if (it.i >= it.keys.length) {
        out += '}';
        stack.pop();
        continue;
      }
      const k = it.keys[it.i++];
      const v = prep((it.v as Record<string, unknown>)[k], k);
      if (hole && it.v === hole.holder && k === hole.key) {
        out += `${it.first ? '' : ','}${JSON.stringify(k)}:`;
        it.first = false;
        flush();
        parts.push(HOLE);
        continue;
      }
      if (v instanceof RawJson) {
        out += `${it.first ? '' : ','}${JSON.stringify(k)}:`;
        it.first = false;
        raw(v.json);
      } else if (v !== null && typeof v === 'object') {
        out += `${it.first ? '' : ','}${JSON.stringify(k)}:`;
        it.first = false;
        stack.push(open(v));
      } else {
        const s = scalar(v);
        if (s === undefined) continue;
        out += `${it.first ? '' : ','}${JSON.stringify(k)}:${s}`;
        it.first = false;
      }
    }
  }
  flush();
  return parts;
}

/** A deep copy of a JSON value (a stored object): its JSON read again, in slices. */
export async function cloneJson<T>(v: T, json?: string): Promise<T> {
  return (await parseJson(json ?? (await stringifyJson(v)))).value as T;
}

/**
 * util.isDeepStrictEqual for JSON values (plain objects in any key order, arrays, scalars), in
 * slices. Values of other kinds (a Date, a Map) are compared with isDeepStrictEqual.
 */
export async function deepEqualJson(a: unknown, b: unknown): Promise<boolean> {
  const slicer = new Slicer();
  const xs: unknown[] = [a];
  const ys: unknown[] = [b];
  const plain = (v: object) => {
    const p = Object.getPrototypeOf(v);
    return p === Object.prototype || p === null || Array.isArray(v);
  };
  while (xs.length) {
    if (slicer.due()) await slicer.yield();
    const x = xs.pop();
    const y = ys.pop();
    if (Object.is(x, y)) continue;
    if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') return false;
    if (!plain(x) || !plain(y)) {
      if (!isDeepStrictEqual(x, y)) return false;
      continue;
    }
    if (Object.getPrototypeOf(x) !== Object.getPrototypeOf(y)) return false;
    if (Array.isArray(x)) {
      const ya = y as unknown[];
      if (x.length !== ya.length) return false;
      for (let i = 0; i < x.length; i++) xs.push(x[i]), ys.push(ya[i]);
      continue;
    }
    const xo = x as Record<string, unknown>;
    const yo = y as Record<string, unknown>;
    // Each enumeration of keys in a turn of its own, the keys then compared in slices (two for-in
    // loops over 200,000 keys each held the event loop 100 to 300 ms in one go).
    const kx = Object.keys(xo);
    slicer.count(kx.length);
    if (slicer.due()) await slicer.yield();
    const ny = Object.keys(yo).length;
    slicer.count(ny);
    if (kx.length !== ny) return false;
    for (let i = 0; i < kx.length; i++) {
      if (slicer.due()) await slicer.yield();
      const k = kx[i];
      if (!Object.hasOwn(yo, k)) return false;
      xs.push(xo[k]), ys.push(yo[k]);
    }
  }
  return true;
}
