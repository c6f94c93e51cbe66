// The one reading of a request's URL: its query parameters and what it asks for (verb, group,
// resource, namespace, name), as k8s.io/apiserver's RequestInfoFactory reads it
// (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go). Parsed once per request and
// used by metrics, authorization, limits and the handler alike, so that a request is always served
// as what it was authorized as (`?watch=1&watch=0` is a watch everywhere, never a list for the
// authorizer and a watch for the handler).
import type { FastifyRequest } from 'fastify';

/** Query parameters, first value of each (kube's Convert_Slice_string_To_string takes `in[0]`). */
export type Query = Record<string, string | undefined>;

/**
 * The query string as Go's url.ParseQuery reads it (pairs split on `&`, `+` is a space, a pair
 * with `;` or bad escapes is dropped), keeping the first value of a repeated parameter. Installed
 * as fastify's querystringParser, so `req.query` is this.
 */
export function parseQuery(s: string): Query {
  const out: Query = Object.create(null);
  for (const pair of s.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const i = pair.indexOf('=');
    const k = unescape(i < 0 ? pair : pair.slice(0, i));
    const v = unescape(i < 0 ? '' : pair.slice(i + 1));
    if (k === undefined || v === undefined || k in out) continue;
    out[k] = v;
  }
  return out;
}

function unescape(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * A boolean query parameter as kube decodes it (apimachinery/pkg/runtime/conversion.go,
 * Convert_Slice_string_To_bool and _To_Pointer_bool): absent is undefined; "0" and any case of
 * "false" are false; every other value, the empty one (`?watch=`, `?watch`) included, is true.
 */
export function queryBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return !(v === '0' || v.toLowerCase() === 'false');
}

export interface RequestInfo {
  path: string;
  query: Query;
  resourceRequest: boolean;
  verb: string;
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** The deprecated `/watch/` path prefix (`/api/v1/watch/namespaces/NS/configmaps/NAME`). */
  watchPath: boolean;
}

export function requestInfo(method: string, path: string, query: Query): RequestInfo {
  const segs = path.split('/').filter(Boolean);
  const base = { path, query, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '', watchPath: false };
  let rest: string[] | undefined;
  if (segs[0] === 'api' && segs.length >= 3) rest = ((base.apiVersion = segs[1]), segs.slice(2));
  else if (segs[0] === 'apis' && segs.length >= 4) rest = ((base.apiGroup = segs[1]), (base.apiVersion = segs[2]), segs.slice(3));
  if (!rest) return { ...base, verb: method === 'HEAD' ? 'get' : method.toLowerCase(), resourceRequest: false };
  // kube's specialVerbs: /watch/... is a watch whatever the method and query say
  if (rest[0] === 'watch' && rest.length >= 2) {
    base.watchPath = true;
    rest = rest.slice(1);
  }
  if (rest[0] === 'namespaces' && rest.length >= 2) {
    if (rest.length === 2 || (rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
      rest = ['namespaces', rest[1], ...rest.slice(2)];
    } else {
      base.namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  const [resource = '', name = '', subresource = ''] = rest;
  let verb: string;
  if (base.watchPath) verb = 'watch';
  else
    switch (method) {
      case 'GET':
      case 'HEAD':
        verb = name ? 'get' : queryBool(query.watch) ? 'watch' : 'list';
        break;
      case 'POST':
        verb = 'create';
        break;
      case 'PUT':
        verb = 'update';
        break;
      case 'PATCH':
        verb = 'patch';
        break;
      case 'DELETE':
        verb = name ? 'delete' : 'deletecollection';
        break;
      default:
        verb = method.toLowerCase();
    }
  return { ...base, verb, resourceRequest: true, resource, name, subresource };
}

const infos = new WeakMap<FastifyRequest, RequestInfo>();

/** The request's RequestInfo, computed on first use and then shared by every hook and the handler. */
export function infoOf(req: FastifyRequest): RequestInfo {
  let i = infos.get(req);
  if (!i) {
    i = requestInfo(req.method, req.url.split('?')[0], req.query as Query);
    infos.set(req, i);
  }
  return i;
}
