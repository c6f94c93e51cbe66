// Kubernetes Events for the objects the reconcilers work on, written through the host-cluster
// client, so `kubectl describe` tells the story. A repeat of the same event on the same object
// bumps count and lastTimestamp instead of creating a new Event (client-go's correlator does so).
import type * as k8s from '@kubernetes/client-node';
import type { KubeObject } from '../../kinds/types.js';
import type { HostCluster } from './host.js';

export type EventType = 'Normal' | 'Warning';

const REPEAT_WINDOW_MS = 10 * 60 * 1000;

/** Where Events go: the host cluster's API, or (standalone) straight into this server's store. */
export interface EventSink {
  create(namespace: string, event: k8s.CoreV1Event): Promise<k8s.CoreV1Event>;
  replace(namespace: string, name: string, event: k8s.CoreV1Event): Promise<k8s.CoreV1Event>;
}

export const hostEventSink = (host: HostCluster): EventSink => ({
  create: (namespace, body) => host.core.createNamespacedEvent({ namespace, body }),
  replace: (namespace, name, body) => host.core.replaceNamespacedEvent({ name, namespace, body }),
});

/** An Event as stored JSON: times in RFC 3339 to the second, as kube writes metav1.Time. */
export function plainEvent(ev: k8s.CoreV1Event): Record<string, unknown> {
  const time = (v: unknown) => (v instanceof Date ? v.toISOString().replace(/\.\d+Z$/, 'Z') : v);
  return { ...ev, metadata: { ...ev.metadata }, involvedObject: { ...ev.involvedObject }, firstTimestamp: time(ev.firstTimestamp), lastTimestamp: time(ev.lastTimestamp) };
}

export class EventRecorder {
  private readonly recent = new Map<string, { event: k8s.CoreV1Event; at: number }>();
  private readonly sink: EventSink;

  constructor(
    to: HostCluster | EventSink,
    private readonly component = 'ocm-apiserver',
    private readonly instance = process.env.HOSTNAME ?? 'local',
  ) {
    this.sink = 'core' in to ? hostEventSink(to) : to;
  }

  async record(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const m = obj.metadata;
    const namespace = m.namespace ?? 'default';
    const key = JSON.stringify([m.uid, type, reason, message]);
    const hit = this.recent.get(key);
    const ts = new Date(Math.floor(Date.now() / 1000) * 1000);
    if (hit && Date.now() - hit.at < REPEAT_WINDOW_MS) {
      const ev = { ...hit.event, count: (hit.event.count ?? 1) + 1, lastTimestamp: ts };
      try {
        const updated = await this.sink.replace(namespace, ev.metadata!.name!, ev);
        this.recent.set(key, { event: updated, at: Date.now() });
        return;
      } catch {
        this.recent.delete(key); // gone or changed meanwhile: record a fresh one
      }
    }
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${m.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace },
      involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: ts,
      lastTimestamp: ts,
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
    } as unknown as k8s.CoreV1Event;
    const created = await this.sink.create(namespace, body);
    if (this.recent.size > 5000) this.recent.clear();
    this.recent.set(key, { event: created, at: Date.now() });
  }
}
