// Conditions (Flux style: Ready with reason and message, observedGeneration) and status writes
// through the generic REST path's status subresource, with an Event on every Ready transition.
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../../apiserver/errors.js';
import { keyFor, type Resource } from '../../apiserver/resources.js';
import { type GenericREST, internalOptions } from '../../apiserver/rest.js';
import type { Condition, KubeObject } from '../../kinds/types.js';
import type { Store } from '../../storage/store.js';
import type { ObjectKey, Logger } from './controller.js';
import type { EventRecorder } from './events.js';

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

type Status = Record<string, unknown> & { conditions?: Condition[]; observedGeneration?: number };

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * Sets a condition, keeping lastTransitionTime when the status did not change. Ready=True also
 * drops Stalled and Reconciling (an object that is Ready is neither stalled nor being retried).
 */
export function setCondition(status: Status, c: ConditionInput, generation: number | undefined) {
  if (c.type === 'Ready' && c.status === 'True') {
    removeCondition(status, 'Stalled');
    removeCondition(status, 'Reconciling');
  }
  const list = (status.conditions ??= []);
  const old = list.find((x) => x.type === c.type);
  const next: Condition = {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message.length > 32_000 ? c.message.slice(0, 32_000) + '…' : c.message,
    lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (old) list.splice(list.indexOf(old), 1, next);
  else list.push(next);
}

export function removeCondition(status: Status, type: string) {
  if (status.conditions) status.conditions = status.conditions.filter((c) => c.type !== type);
}

export const condition = (obj: KubeObject | undefined, type = 'Ready'): Condition | undefined =>
  ((obj?.status as Status | undefined)?.conditions ?? []).find((c) => c.type === type);

export const isReady = (obj: KubeObject | undefined) => condition(obj)?.status === 'True';

/**
 * The start of work on a generation not reconciled yet, as Flux's controllers have it
 * (fluxcd/pkg runtime/reconcile/result.go ProgressiveStatus, called by fluxcd/source-controller's
 * reconcilers when obj.Generation != obj.Status.ObservedGeneration): Reconciling=True Progressing,
 * and Ready=Unknown Progressing when there is no Ready yet or it is Unknown; a Ready of an earlier
 * generation stays as it is (its observedGeneration tells `kubectl wait` it is old). With
 * `drift` (work starting on inputs not tried yet, WorkStarts) a Ready=False becomes Unknown too,
 * as ProgressiveStatus(drift=true): the failure it names is no longer the news. Stalled goes, as
 * Flux's MarkReconciling deletes it. False when there is nothing to start: this generation was
 * reconciled (a retry, a restart, an interval).
 */
export function progressingStatus(status: Status, generation: number | undefined, drift = false): boolean {
  const observed = status.observedGeneration;
  const ready = (status.conditions ?? []).find((c) => c.type === 'Ready');
  const stale = drift && ready?.status === 'False';
  if (observed === generation && ready && ready.status !== 'Unknown' && !stale) return false;
  const message = observed !== undefined && observed !== generation ? `processing object: new generation ${observed} -> ${generation}` : 'reconciliation in progress';
  removeCondition(status, 'Stalled');
  setCondition(status, { type: 'Reconciling', status: 'True', reason: 'Progressing', message }, generation);
  if (!ready || ready.status === 'Unknown' || stale) setCondition(status, { type: 'Ready', status: 'Unknown', reason: 'Progressing', message }, generation);
  return true;
}

/**
 * What each object's last attempt started its work on (a Source's or Action's inputs), so that
 * one not Ready (Ready=False: its component was not ready, its input missing) is marked as
 * progressing when its work starts on inputs not tried yet, and never again by a retry of the
 * same inputs (a stalled object re-queued by its own status write would otherwise flip
 * Ready False -> Unknown -> False for ever). In memory: after a restart the first attempt is not
 * marked (nothing to compare with).
 */
export class WorkStarts {
  private readonly last = new Map<string, string>();

  /** Records that the work of `uid` starts on `inputs`; whether they differ from its last attempt's. */
  start(uid: string, inputs: string): boolean {
    const prev = this.last.get(uid);
    if (this.last.size >= 100_000) this.last.clear();
    this.last.set(uid, inputs);
    return prev !== undefined && prev !== inputs;
  }

  /** An attempt that failed before its work started (a precondition). */
  notStarted(uid: string) {
    this.start(uid, '');
  }
}

export class StatusWriter {
  constructor(
    private readonly store: Store,
    private readonly rest: GenericREST,
    private readonly events: EventRecorder | undefined,
    private readonly log: Logger,
  ) {}

  async get(r: Resource, key: ObjectKey): Promise<KubeObject | undefined> {
    return (await this.store.get(keyFor(r, key.namespace, key.name)))?.obj;
  }

  /**
   * Re-reads the object, lets `mutate` change a copy of its status (observedGeneration is set to
   * the generation seen), writes it through /status, retrying on conflicts, and only when it
   * differs from what is stored. Returns the result (the stored object when nothing changed).
   * `observe: false` leaves observedGeneration as it is (a write before the reconcile's outcome).
   */
  async update(r: Resource, key: ObjectKey, mutate: (status: Status, obj: KubeObject) => void, opts: { observe?: boolean } = {}): Promise<KubeObject | undefined> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.get(r, key);
      if (!cur) return undefined;
      const next = structuredClone(cur);
      const status = ((next.status as Status | undefined) ?? {}) as Status;
      mutate(status, cur);
      if (opts.observe !== false) status.observedGeneration = cur.metadata.generation;
      next.status = status;
      // Compare before write: a status that did not change is not written (no new
      // resourceVersion, no watch event, nothing re-queued).
      if (isDeepStrictEqual(cur.status ?? {}, status)) return cur;
      try {
        const written = (await this.rest.update(r, key.namespace, key.name, next, true, { ...internalOptions(), quotaHeadroom: true })).obj;
        await this.announce(cur, written);
        return written;
      } catch (err) {
        if (err instanceof ApiError && err.status.code === 409 && attempt < 5) continue;
        if (err instanceof ApiError && err.status.code === 404) return undefined;
        throw err;
      }
    }
  }

  /**
   * Marks the start of work on a generation not reconciled yet (progressingStatus): written once
   * per generation, before the work, status.observedGeneration left until the work's outcome.
   */
  async progressing(r: Resource, key: ObjectKey, drift = false): Promise<KubeObject | undefined> {
    return this.update(r, key, (st, o) => void progressingStatus(st, o.metadata.generation, drift), { observe: false });
  }

  /**
   * An Event when Ready changes its status or reason (Flux's rule: events on transitions); none
   * for Ready=Unknown (work starting is no news: the outcome is announced).
   */
  private async announce(before: KubeObject, after: KubeObject) {
    const a = condition(before);
    const b = condition(after);
    if (!this.events || !b || b.status === 'Unknown' || (a && a.status === b.status && a.reason === b.reason)) return;
    try {
      await this.events.record(after, b.status === 'False' ? 'Warning' : 'Normal', b.reason, b.message);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, object: `${after.kind}/${after.metadata.namespace}/${after.metadata.name}` }, 'recording an event failed');
    }
  }
}
