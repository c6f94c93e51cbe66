// YAML request bodies: parsed with a check for repeated keys that is linear (the `yaml` package's
// own `uniqueKeys` compares every key with every other one: 20,000 keys take it seconds), and,
// past a few KiB, on a worker thread (apiserver/offthread.ts, 1 GiB heap): the package reads about a MB a
// second, so a 3 MiB body would hold the event loop for seconds (issue 15). The worker hands back
// JSON, which the caller reads in slices (apiserver/json.ts).
import YAML, { isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import { OffThread, serveOffThread } from './offthread.js';

const NAME = 'YAML';
const HEAP_MIB = 1024;

/** Repeated keys of a mapping are an error, as with `uniqueKeys: true`. */
function checkUniqueKeys(root: Node | null | undefined) {
  const stack: unknown[] = [root];
  while (stack.length) {
    const n = stack.pop();
    if (isMap(n)) {
      const seen = new Set<string>();
      for (const item of n.items) {
        if (!isPair(item)) continue;
        const k = item.key;
        if (isScalar(k)) {
          const id = `${typeof k.value}:${String(k.value)}`;
          if (k.value !== '<<' && seen.has(id)) throw new Error(`Map keys must be unique: ${String(k.value).slice(0, 100)}`);
          seen.add(id);
        } else if (k) stack.push(k);
        stack.push(item.value);
      }
    } else if (isSeq(n)) for (const item of n.items) stack.push(item);
  }
}

/** One YAML document to a JS value (aliases expanded at most 100 times); throws the parser's error. */
export function parseYamlText(text: string): unknown {
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: false });
  if (!Array.isArray(docs) || docs.length !== 1) throw new Error(`expected one YAML document, found ${Array.isArray(docs) ? docs.length : 0}`);
  const doc = docs[0];
  if (doc.errors.length) throw doc.errors[0];
  checkUniqueKeys(doc.contents as Node | null);
  return doc.toJS({ maxAliasCount: 100 });
}

/** Bodies up to this size are parsed on the event loop (a few ms); larger ones on the worker. */
export const YAML_INLINE_BYTES = 8 * 1024;

type Req = { op: 'parse' | 'stringify'; text: string } | { op: 'list'; text: string; items: string[] };

// In the thread (apiserver/offthread.ts): strings in, a string (JSON or YAML) out, both copied
// once by postMessage; nothing is built from them on the event loop but what the caller asks for.
serveOffThread(NAME, (r: Req): string => {
  if (r.op === 'stringify') return YAML.stringify(JSON.parse(r.text));
  if (r.op === 'list') return yamlList(r.text, r.items);
  return JSON.stringify(parseYamlText(r.text)) ?? 'null';
});

const thread = new OffThread({ name: NAME, module: new URL(import.meta.url), heapMib: HEAP_MIB, fromWire: (e) => new Error(e.message) });

const onWorker = (req: Req): Promise<string> =>
  thread.call<string>(req, () => new Error(`${req.op === 'parse' ? 'parsing' : 'writing'} the YAML took more than ${HEAP_MIB} MiB of memory`));

/**
 * A list as YAML, its items one at a time (one document of 20 MB would be a syntax tree of GBs):
 * `head` is the list's JSON without items, `items` each item's JSON. As YAML.stringify writes it.
 */
export function yamlList(head: string, items: string[]): string {
  if (!items.length) return YAML.stringify({ ...JSON.parse(head), items: [] });
  let out = `${YAML.stringify(JSON.parse(head))}items:\n`;
  for (const item of items) {
    const lines = YAML.stringify(JSON.parse(item)).replace(/\n$/, '').split('\n');
    out += `  - ${lines[0]}\n`;
    for (let i = 1; i < lines.length; i++) out += lines[i] ? `    ${lines[i]}\n` : '\n';
  }
  return out;
}

/** yamlList, past a few KiB on the worker thread. */
export async function yamlOfList(head: string, items: string[]): Promise<string> {
  return head.length + items.reduce((n, i) => n + i.length, 0) <= YAML_INLINE_BYTES ? yamlList(head, items) : onWorker({ op: 'list', text: head, items });
}

/** One list item as yamlList writes it (`  - ...` indented), past a few KiB on the worker thread. */
export async function yamlOfListItem(item: string): Promise<string> {
  const text = await yamlOfList('{}', [item]);
  return text.slice('{}\nitems:\n'.length);
}

/** yamlList's text before its items (the list's JSON without items), or the whole text of an empty list. */
export function yamlListHead(head: string, empty: boolean): string {
  return empty ? YAML.stringify({ ...JSON.parse(head), items: [] }) : `${YAML.stringify(JSON.parse(head))}items:\n`;
}

/** parseYamlText on the worker thread: the value as JSON text. */
export const parseYamlOffThread = (text: string): Promise<string> => onWorker({ op: 'parse', text });

/** YAML.stringify of a value given as JSON text; past a few KiB on the worker thread. */
export async function yamlOfJson(json: string): Promise<string> {
  return json.length <= YAML_INLINE_BYTES ? YAML.stringify(JSON.parse(json)) : onWorker({ op: 'stringify', text: json });
}
