// Content negotiation: which representation the client asked for in Accept, and decoding of
// request bodies by Content-Type.
import YAML from 'yaml';
import { type ApiError, badRequest, notAcceptable, tooLarge, unsupportedMediaType } from './errors.js';
import { JsonDepthError, JsonSyntaxError, parseJson } from './json.js';
import { parseYamlOffThread, parseYamlText, YAML_INLINE_BYTES } from './yaml.js';
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
    return yaml ? parseYamlText(text) : JSON.parse(text);
  } catch (err) {
    throw badRequest(`error decoding ${yaml ? 'YAML' : 'JSON'} body: ${(err as Error).message}`);
  }
}


export interface ParsedBody {
  value: unknown;
  /** JSON only: paths of fields an object repeats (JSON.parse keeps the last value). */
  duplicates: string[];
  /** True when the parser has bounded the nesting (a JSON text): no need to walk the value again. */
  depthChecked: boolean;
}

const isJsonText = (b: Buffer) => {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0x7b || c === 0x5b) return true;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return false;
};

/**
 * parseBody for request handlers: the same values and Status errors, parsed in slices that give
 * the event loop back (apiserver/json.ts), with the fields a JSON body repeats found in the same
 * pass. A YAML body that is JSON (what kubectl sends for apply) is read as JSON too; a repeated
 * field in it is the YAML parser's error, as before.
 */
export async function parseBodyAsync(body: unknown, yaml: boolean): Promise<ParsedBody> {
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  prescanBody(raw, yaml);
  if (!yaml || isJsonText(raw)) {
    try {
      const { value, duplicates } = await parseJson(raw, { maxDepth: MAX_DEPTH, duplicates: true });
      if (yaml && duplicates.length) throw badRequest(`error decoding YAML body: Map keys must be unique: ${duplicates[0]}`);
      return { value, duplicates: yaml ? [] : duplicates, depthChecked: true };
    } catch (err) {
      if (err instanceof JsonDepthError) throw badRequest(err.message);
      if (!(err instanceof JsonSyntaxError)) throw err;
      if (!yaml) {
        if (raw.toString('utf8').trim() === '') throw badRequest('the request body is empty; expected a JSON or YAML object');
        throw badRequest(`error decoding JSON body: ${err.message}`);
      }
      // YAML flow syntax that is not JSON: the YAML parser reads it
    }
  }
  if (raw.length <= YAML_INLINE_BYTES) return { value: parseBody(raw, true), duplicates: [], depthChecked: false };
  const text = raw.toString('utf8');
  if (text.trim() === '') throw badRequest('the request body is empty; expected a JSON or YAML object');
  let json: string;
  try {
    json = await parseYamlOffThread(text);
  } catch (err) {
    throw badRequest(`error decoding YAML body: ${(err as Error).message}`);
  }
  try {
    return { value: (await parseJson(json, { maxDepth: MAX_DEPTH })).value, duplicates: [], depthChecked: true };
  } catch (err) {
    if (err instanceof JsonDepthError) throw badRequest(err.message);
    throw err;
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
export async function parseRequestBody(body: unknown, contentType: string | undefined): Promise<ParsedBody> {
  const t = bodyType(contentType);
  return t === 'protobuf' ? { value: parseProtobufBody(body), duplicates: [], depthChecked: false } : parseBodyAsync(body, t === 'yaml');
}

export function serialize(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'yaml' ? YAML.stringify(value) : JSON.stringify(value);
}
