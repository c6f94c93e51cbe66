// Typed reconcile failures, in the model of Flux's runtime (fluxcd/pkg/runtime/errors): every
// failure carries the condition reason it is reported with and a retry policy, decided where the
// failure is understood, never by reading its message afterwards.
//  - Transient: retrying may help (a registry that refused, a host-cluster conflict): retried with
//    the work queue's per-object exponential backoff.
//  - Stalled: nothing changes until someone changes an input (a digest mismatch, a missing
//    object, an invalid spec): no retry; the object's watches (or its interval) bring it back.
//    Flux sets `Stalled=True` for these; so do we.
//  - Waiting: an expected state that passes by itself (a provider not ready yet): looked at
//    again after a fixed delay, without backoff.
import { OciError } from '../../registry/client.js';
import { OcmRepositoryError } from '../../ocm/repository.js';
import { QuotaExceededError } from '../../storage/store.js';

export type RetryPolicy = 'Transient' | 'Stalled' | 'Waiting';

/** How soon a Waiting failure is looked at again, unless it says otherwise. */
export const WAITING_RETRY_MS = 5_000;

export class ReconcileError extends Error {
  override name = 'ReconcileError';
  readonly policy: RetryPolicy;
  readonly requeueAfterMs?: number;

  /** `policy` as a boolean is the older form: true = Transient, false = Stalled. */
  constructor(
    readonly reason: string,
    message: string,
    policy: RetryPolicy | boolean = 'Transient',
    opts: { requeueAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.policy = policy === true ? 'Transient' : policy === false ? 'Stalled' : policy;
    if (this.policy === 'Waiting') this.requeueAfterMs = opts.requeueAfterMs ?? WAITING_RETRY_MS;
  }

  /** Whether the work queue should retry it with backoff. */
  get retry(): boolean {
    return this.policy === 'Transient';
  }
}

/** Bytes that do not hash to the digest that names them: never retried, the bytes are wrong. */
export class DigestMismatch extends ReconcileError {
  override name = 'DigestMismatch';
  constructor(message: string, reason = 'DigestMismatch', opts: { cause?: unknown } = {}) {
    super(reason, message, 'Stalled', opts);
  }
}

export const stalled = (reason: string, message: string, cause?: unknown) => new ReconcileError(reason, message, 'Stalled', { cause });
export const transient = (reason: string, message: string, cause?: unknown) => new ReconcileError(reason, message, 'Transient', { cause });
export const waiting = (reason: string, message: string, requeueAfterMs?: number) => new ReconcileError(reason, message, 'Waiting', { requeueAfterMs });

/** Whether an error is a digest mismatch, by its type or its typed code (OCI client, OCM repository). */
export function isDigestMismatch(err: unknown): boolean {
  if (err instanceof DigestMismatch) return true;
  if (err instanceof OciError || err instanceof OcmRepositoryError) return err.code === 'DIGEST_MISMATCH';
  return false;
}

/**
 * Any error as a ReconcileError: ReconcileErrors as they are; digest mismatches as DigestMismatch
 * (with `mismatchReason`); OCI errors by their own `retryable`; OCM repository errors by their
 * code (a missing or invalid thing stays so until it is changed); anything else Transient.
 */
export function toReconcileError(err: unknown, reason: string, context?: string, mismatchReason = 'DigestMismatch'): ReconcileError {
  if (err instanceof ReconcileError) return err;
  const message = `${context ? `${context}: ` : ''}${(err as Error)?.message ?? String(err)}`;
  if (isDigestMismatch(err)) return new DigestMismatch(message, mismatchReason, { cause: err });
  // A write of the server's own (a Snapshot, a ComponentDescriptor) over the namespace's storage quota: retried with backoff until something is deleted.
  if (err instanceof QuotaExceededError || (err instanceof Error && err.cause instanceof QuotaExceededError)) return new ReconcileError('QuotaExceeded', message, 'Transient', { cause: err });
  // Upstream content over a limit (issue 15: size, entries, ratio, nesting): its own reason, not retried before the interval.
  if (err instanceof OciError && err.code === 'ARCHIVE_TOO_LARGE') return new ReconcileError('ArchiveTooLarge', message, 'Stalled', { cause: err });
  // The in-memory budget held by other reconciles while this one holds a part of it: retried with backoff.
  if (err instanceof OciError && err.code === 'MEMORY_BUDGET_BUSY') return new ReconcileError('MemoryBudgetBusy', message, 'Transient', { cause: err });
  if (err instanceof OciError) return new ReconcileError(reason, message, err.retryable ? 'Transient' : 'Stalled', { cause: err });
  if (err instanceof OcmRepositoryError) return new ReconcileError(reason, message, 'Stalled', { cause: err });
  return new ReconcileError(reason, message, 'Transient', { cause: err });
}
