// Kubernetes `Status` errors (k8s.io/apimachinery/pkg/api/errors), thrown anywhere in a request
// and rendered by the server's error handler.
import type { FieldError } from '../kinds/types.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[]; retryAfterSeconds?: number };
  code: number;
}

export interface GroupKindish {
  group: string;
  /** The resource (plural) for NotFound/Conflict/AlreadyExists messages, the kind for Invalid. */
  resource: string;
  kind?: string;
}

export class ApiError extends Error {
  readonly status: StatusObject;
  /** Extra response headers (e.g. Retry-After). */
  headers: Record<string, string> = {};
  constructor(code: number, reason: string, message: string, details?: StatusObject['details']) {
    super(message);
    this.status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
    if (details) this.status.details = details;
  }
}

const qualified = (gr: GroupKindish) => (gr.group ? `${gr.resource}.${gr.group}` : gr.resource);

export const notFound = (gr: GroupKindish, name: string) =>
  new ApiError(404, 'NotFound', `${qualified(gr)} "${name}" not found`, { name, group: gr.group, kind: gr.resource });

export const alreadyExists = (gr: GroupKindish, name: string) =>
  new ApiError(409, 'AlreadyExists', `${qualified(gr)} "${name}" already exists`, { name, group: gr.group, kind: gr.resource });

export const conflict = (gr: GroupKindish, name: string, why: string) =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${why}`, {
    name,
    group: gr.group,
    kind: gr.resource,
  });

export const staleConflict = (gr: GroupKindish, name: string) =>
  conflict(gr, name, 'the object has been modified; please apply your changes to the latest version and try again');

/** Field errors named in one Status; past it, how many more (a 3 MiB list of bad items would make a 100 MB answer). */
export const MAX_FIELD_ERRORS = 1000;

export const invalid = (gr: GroupKindish, name: string, all: FieldError[]) => {
  const kind = gr.kind ?? gr.resource;
  const gk = gr.group ? `${kind}.${gr.group}` : kind;
  const errs = all.length > MAX_FIELD_ERRORS ? all.slice(0, MAX_FIELD_ERRORS) : all;
  const list = errs.map((e) => `${e.field}: ${e.message}`);
  if (all.length > errs.length) list.push(`and ${all.length - errs.length} more errors`);
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${gk} "${name}" is invalid: ${summary}`, {
    name,
    group: gr.group,
    kind,
    causes: errs.map((e) => ({ reason: e.type, message: e.message, field: e.field })),
  });
};

export const badRequest = (message: string, causes?: StatusCause[]) =>
  new ApiError(400, 'BadRequest', message, causes ? { causes } : undefined);

export const methodNotAllowed = (message: string) => new ApiError(405, 'MethodNotAllowed', message);
export const notAcceptable = (message: string) => new ApiError(406, 'NotAcceptable', message);
export const unsupportedMediaType = (message: string) => new ApiError(415, 'UnsupportedMediaType', message);
export const expired = (message: string) => new ApiError(410, 'Expired', message);
export const unauthorized = () => new ApiError(401, 'Unauthorized', 'Unauthorized');
export const forbidden = (message: string) => new ApiError(403, 'Forbidden', message);
export const tooLarge = (message: string) => new ApiError(413, 'RequestEntityTooLarge', message);
export const internal = (message: string) => new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
export const timeout = (message: string) => new ApiError(504, 'Timeout', message);
export const serviceUnavailable = (message: string) => new ApiError(503, 'ServiceUnavailable', message);
export const pathNotFound = (path: string) =>
  new ApiError(404, 'NotFound', `the server could not find the requested resource`, { causes: [{ reason: 'UnexpectedServerResponse', message: `404 page not found: ${path}` }] });
