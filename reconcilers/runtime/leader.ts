// Leader election, so that with several replicas the reconcilers run in exactly one of them: a
// coordination.k8s.io Lease in the host cluster (aggregated mode), an etcd election (standalone
// on etcd), or nothing to elect (a single embedded replica).
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from './controller.js';
import type { HostCluster } from './host.js';

export interface LeaderElector {
  /** Calls onLead when this replica becomes the leader and onLose when it stops being it. */
  start(onLead: () => Promise<void>, onLose: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  isLeader(): boolean;
}

export class AlwaysLeader implements LeaderElector {
  private leading = false;
  private onLose?: () => Promise<void>;
  async start(onLead: () => Promise<void>, onLose: () => Promise<void>) {
    this.onLose = onLose;
    this.leading = true;
    await onLead();
  }
  async stop() {
    if (this.leading) await this.onLose?.();
    this.leading = false;
  }
  isLeader() {
    return this.leading;
  }
}

/** client-go's leaderelection over a Lease: acquire when free or expired, renew, step down on failure. */
export class LeaseElector implements LeaderElector {
  private leading = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private lastRenew = 0;
  private onLead?: () => Promise<void>;
  private onLose?: () => Promise<void>;
  private readonly api: k8s.CoordinationV1Api;

  constructor(
    host: HostCluster,
    private readonly namespace: string,
    private readonly name: string,
    private readonly identity: string,
    private readonly log: Logger,
    private readonly leaseSeconds = 6,
    private readonly retryMs = 1_000,
  ) {
    this.api = host.coordination;
  }

  isLeader() {
    return this.leading;
  }

  async start(onLead: () => Promise<void>, onLose: () => Promise<void>) {
    this.onLead = onLead;
    this.onLose = onLose;
    await this.tick();
  }

  private schedule() {
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retryMs);
  }

  private async tick() {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) this.lastRenew = Date.now();
      if (ok && !this.leading) {
        this.leading = true;
        this.log.info({ lease: `${this.namespace}/${this.name}`, identity: this.identity }, 'became the leader');
        await this.onLead?.();
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'leader election: renewing the lease failed');
    }
    if (this.leading && Date.now() - this.lastRenew > this.leaseSeconds * 1000 * 0.8) await this.lose('could not renew the lease in time');
    this.schedule();
  }

  private async lose(why: string) {
    if (!this.leading) return;
    this.leading = false;
    this.log.warn({ why }, 'stopped being the leader');
    await this.onLose?.();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace: this.namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: this.namespace },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: this.leaseSeconds, acquireTime: new k8s_MicroTime(now), renewTime: new k8s_MicroTime(now), leaseTransitions: 0 },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime as unknown as string).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000 < now.getTime();
    if (spec.holderIdentity && spec.holderIdentity !== this.identity && !expired) return false;
    const mine = spec.holderIdentity === this.identity;
    lease.spec = {
      ...spec,
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseSeconds,
      renewTime: new k8s_MicroTime(now),
      ...(mine ? {} : { acquireTime: new k8s_MicroTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      await this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body: lease });
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 409) return false; // someone else renewed or took it first
      throw err;
    }
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.lose('shutting down');
  }
}

/** metav1.MicroTime as client-node serialises it: a Date whose JSON has microseconds. */
class k8s_MicroTime extends Date {
  override toISOString(): string {
    return super.toISOString().replace('Z', '000Z');
  }
  override toJSON(): string {
    return this.toISOString();
  }
}

/** An etcd election (etcd's concurrency.Election): the campaign's lease keeps the leadership. */
export class EtcdElector implements LeaderElector {
  private leading = false;
  private campaign?: import('etcd3').Campaign;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  private onLead?: () => Promise<void>;
  private onLose?: () => Promise<void>;

  constructor(
    private readonly client: import('etcd3').Namespace,
    private readonly name: string,
    private readonly identity: string,
    private readonly log: Logger,
    private readonly ttlSeconds = 5,
  ) {}

  isLeader() {
    return this.leading;
  }

  async start(onLead: () => Promise<void>, onLose: () => Promise<void>) {
    this.onLead = onLead;
    this.onLose = onLose;
    this.run();
  }

  private run() {
    if (this.stopped) return;
    const campaign = this.client.election(this.name, this.ttlSeconds).campaign(this.identity);
    this.campaign = campaign;
    campaign.on('elected', () => {
      this.leading = true;
      this.log.info({ election: this.name, identity: this.identity }, 'became the leader');
      void this.onLead?.();
    });
    campaign.on('error', (err: Error) => {
      this.log.warn({ err: err.message }, 'leader election: the campaign failed');
      void this.lose().then(() => {
        if (!this.stopped) this.retry = setTimeout(() => this.run(), 1000);
      });
    });
  }

  private async lose() {
    if (!this.leading) return;
    this.leading = false;
    this.log.warn({ election: this.name }, 'stopped being the leader');
    await this.onLose?.();
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.lose();
    await this.campaign?.resign().catch(() => undefined);
  }
}
