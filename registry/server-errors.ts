// OCI Distribution Spec error codes, rendered as {"errors":[{"code","message","detail"}]}.

const STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
} as const;

export type ErrorCode = keyof typeof STATUS;

export class RegistryError extends Error {
  status: number;
  headers: Record<string, string> = {};
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
    status?: number,
  ) {
    super(message);
    this.status = status ?? STATUS[code];
  }
  withHeader(name: string, value: string): this {
    this.headers[name] = value;
    return this;
  }
  body(): string {
    return JSON.stringify({ errors: [{ code: this.code, message: this.message, detail: this.detail ?? null }] });
  }
}

export const regError = (code: ErrorCode, message: string, detail?: unknown, status?: number) => new RegistryError(code, message, detail, status);

/** Maps a storage failure to a clean error: ENOSPC/EDQUOT become 507, everything else 500. */
export function storageError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return regError('UNKNOWN', 'insufficient storage: the registry is out of disk space', { errno: code }, 507);
  return regError('UNKNOWN', 'internal storage error', { errno: code });
}
