// Content negotiation: which representation the client asked for in Accept, and decoding of
// request bodies by Content-Type.
import YAML from 'yaml';
import { type ApiError, badRequest, notAcceptable, tooLarge, unsupportedMediaType } from './errors.js';
import { MAX_BYTES, MAX_DEPTH, prescan, PrescanError } from './prescan.js';
import { decodeKubeProtobuf, ProtobufDecodeError } from './protobuf.js';

export type Representation = 'object' | 'Table' | 'PartialObjectMetadata' | 'PartialObjectMetadataList' | 'APIGroupDiscoveryList';

export interface Target {
  as: Representation;
  format: 'json' | 'yaml';
}

interface MediaRange {
  type: string;
  params: Record<string, string>;
}

export function parseMediaType(s: string): MediaRange {
  const [type, ...rest] = s.split(';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const i = p.indexOf('=');
    if (i > 0) params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim();
  }
  return { type: type.trim().toLowerCase(), params };
}

/**
 * Picks the first representation in the Accept header that this server can produce. `allowed`
 * lists the `as=` kinds meaningful for the endpoint (e.g. Table for list/get).
 */
export function negotiate(accept: string | undefined, allowed: Representation[]): Target {
  if (!accept) return { as: 'object', format: 'json' };
  for (const raw of accept.split(',')) {
    const m = parseMediaType(raw);
    const format = m.type === 'application/yaml' ? 'yaml' : m.type === 'application/json' || m.type === '*/*' || m.type === 'application/*' ? 'json' : undefined;
    if (!format) continue;
    const as = m.params.as;
    if (!as) return { as: 'object', format };
    if (!allowed.includes(as as Representation)) continue;
    if (as === 'APIGroupDiscoveryList') {
      if (m.params.g === 'apidiscovery.k8s.io' && m.params.v === 'v2') return { as, format };
      continue;
    }
    if (m.params.g === 'meta.k8s.io' && (m.params.v === 'v1' || m.params.v === 'v1beta1')) return { as: as as Representation, format };
  }
  throw notAcceptable(`only the following media types are accepted: application/json, application/yaml`);
}

export type BodyType = 'json' | 'yaml' | 'protobuf' | 'merge-patch' | 'json-patch' | 'strategic-merge-patch' | 'apply-patch';

export function bodyType(contentType: string | undefined): BodyType {
  const t = parseMediaType(contentType ?? 'application/json').type;
  switch (t) {
    case 'application/json':
      return 'json';
    case 'application/yaml':
      return 'yaml';
    case 'application/vnd.kubernetes.protobuf':
      return 'protobuf';
    case 'application/merge-patch+json':
      return 'merge-patch';
    case 'application/json-patch+json':
      return 'json-patch';
    case 'application/strategic-merge-patch+json':
      return 'strategic-merge-patch';
    case 'application/apply-patch+yaml':
      return 'apply-patch';
    default:
      throw unsupportedMediaType(`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`);
  }
}

/** The Status for a text over one of prescan's limits: 413 for its size, 400 for the rest. */
export function limitError(e: PrescanError): ApiError {
  return e.limit === 'size' ? tooLarge(`Request entity too large: limit is ${MAX_BYTES}`) : badRequest(e.message);
}

/** Checks a request body against prescan's limits before any parser sees it; throws the Status. */
export function prescanBody(body: Buffer | string, yaml: boolean) {
  try {
    prescan(body, yaml ? 'yaml' : 'json', 'the object');
  } catch (err) {
    if (err instanceof PrescanError) throw limitError(err);
    throw err;
  }
}

/** Parses a request body as JSON or YAML, failing with a 400 Status that quotes the parser. */
export function parseBody(body: unknown, yaml: boolean): unknown {
  const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : '';
  prescanBody(raw, yaml); // size, depth, aliases, documents: before the parser (apiserver/prescan.ts)
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.trim() === '') throw badRequest('the request body is empty; expected a JSON or YAML object');
  try {
    if (!yaml) return JSON.parse(text);
    const docs = YAML.parseAllDocuments(text, { uniqueKeys: true });
    if (docs.length !== 1) throw new Error(`expected one YAML document, found ${docs.length}`);
    if (docs[0].errors.length) throw docs[0].errors[0];
    return docs[0].toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw badRequest(`error decoding ${yaml ? 'YAML' : 'JSON'} body: ${(err as Error).message}`);
  }
}

/** Decodes a Kubernetes protobuf body into its JSON object: 415 for kinds not taken as protobuf, 400 for garbage. */
export function parseProtobufBody(body: unknown): Record<string, unknown> {
  const buf = Buffer.isBuffer(body) ? body : typeof body === 'string' ? Buffer.from(body, 'latin1') : Buffer.alloc(0);
  if (buf.length === 0) throw badRequest('the request body is empty; expected a protobuf object');
  if (buf.length > MAX_BYTES) throw tooLarge(`Request entity too large: limit is ${MAX_BYTES}`);
  try {
    return decodeKubeProtobuf(buf);
  } catch (err) {
    if (err instanceof ProtobufDecodeError) throw err.code === 415 ? unsupportedMediaType(err.message) : badRequest(err.message);
    if (err instanceof PrescanError) throw limitError(err);
    throw err;
  }
}

/** Parses a request body by its Content-Type: JSON (and the JSON patch types), YAML or protobuf. */
export function parseRequestBody(body: unknown, contentType: string | undefined): unknown {
  const t = bodyType(contentType);
  return t === 'protobuf' ? parseProtobufBody(body) : parseBody(body, t === 'yaml');
}

export function serialize(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'yaml' ? YAML.stringify(value) : JSON.stringify(value);
}

/**
 * Paths of fields that a JSON text repeats within one object (`spec.version`), which JSON.parse
 * silently collapses; kube-apiserver rejects them under fieldValidation=Strict.
 */
export function duplicateFields(text: string): string[] {
  const dups: string[] = [];
  // One frame per open object/array: the keys seen, the path to it, and (objects) the current key.
  const stack: { keys?: Set<string>; path: string; key?: string; index: number }[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top?.keys) {
        let key: string;
        try {
          key = JSON.parse(text.slice(i, j + 1)) as string;
        } catch {
          return dups; // a broken key (unterminated, a control character): decoding the body reports it as a 400
        }
        if (top.keys.has(key)) dups.push(top.path ? `${top.path}.${key}` : key);
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      const top = stack[stack.length - 1];
      const path = !top ? '' : top.keys ? (top.path ? `${top.path}.${top.key}` : top.key!) : `${top.path}[${top.index}]`;
      stack.push(c === '{' ? { keys: new Set(), path, index: 0 } : { path, index: 0 });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.keys) expectKey = true;
      else if (top) top.index++;
    }
  }
  return dups;
}
