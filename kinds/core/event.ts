import { Type } from '@sinclair/typebox';
import { stringEnum } from '../common.js';
import type { KindDefinition, KubeObject } from '../types.js';

const ObjectReference = (description: string) =>
  Type.Object(
    {
      apiVersion: Type.Optional(Type.String({ description: 'API version of the referent.' })),
      kind: Type.Optional(Type.String({ description: 'Kind of the referent.' })),
      name: Type.Optional(Type.String({ description: 'Name of the referent.' })),
      namespace: Type.Optional(Type.String({ description: 'Namespace of the referent.' })),
      uid: Type.Optional(Type.String({ description: 'UID of the referent.' })),
      resourceVersion: Type.Optional(Type.String({ description: 'Specific resourceVersion to which this reference is made, if any.' })),
      fieldPath: Type.Optional(Type.String({ description: 'If referring to a piece of an object instead of an entire object, a JSON path to it.' })),
    },
    { description },
  );

const involved = (field: string) => (o: KubeObject) => ((o.involvedObject ?? {}) as Record<string, string | undefined>)[field];

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const series = (o: KubeObject) => (o.series ?? undefined) as { count?: number; lastObservedTime?: string } | undefined;
const firstSeen = (o: KubeObject, since: (t: unknown) => string) => (o.firstTimestamp ? since(o.firstTimestamp) : since(o.eventTime));
function lastSeen(o: KubeObject, since: (t: unknown) => string): string {
  if (series(o)) return since(series(o)!.lastObservedTime);
  return o.lastTimestamp ? since(o.lastTimestamp) : firstSeen(o, since);
}
/** Singleton events of the new API have no count: 1. */
const count = (o: KubeObject): number => (series(o) ? (series(o)!.count ?? 0) : typeof o.count === 'number' && o.count !== 0 ? o.count : 1);
function target(o: KubeObject): string {
  const kind = str(involved('kind')(o)).toLowerCase();
  const name = str(involved('name')(o));
  return name ? `${kind}/${name}` : kind;
}
/** formatEventSource: component (or reportingComponent), then ", host" (or reportingInstance) when there is one. */
function source(o: KubeObject): string {
  const s = (o.source ?? {}) as { component?: string; host?: string };
  const component = s.component || str(o.reportingComponent);
  const instance = s.host || str(o.reportingInstance);
  return instance ? `${component}, ${instance}` : component;
}

export const eventKind: KindDefinition = {
  group: '',
  version: 'v1',
  kind: 'Event',
  plural: 'events',
  singular: 'event',
  shortNames: ['ev'],
  namespaced: true,
  description: 'Event is a report of an event somewhere in the cluster.',
  schema: Type.Object({
    involvedObject: ObjectReference('The object that this event is about.'),
    reason: Type.Optional(Type.String({ description: 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.' })),
    message: Type.Optional(Type.String({ description: 'A human-readable description of the status of this operation.' })),
    source: Type.Optional(
      Type.Object(
        { component: Type.Optional(Type.String({ description: 'Component from which the event is generated.' })), host: Type.Optional(Type.String({ description: 'Node name on which the event is generated.' })) },
        { description: 'The component reporting this event.' },
      ),
    ),
    firstTimestamp: Type.Optional(Type.String({ description: 'The time at which the event was first recorded.', format: 'date-time' })),
    lastTimestamp: Type.Optional(Type.String({ description: 'The time at which the most recent occurrence of this event was recorded.', format: 'date-time' })),
    eventTime: Type.Optional(Type.String({ description: 'Time when this Event was first observed (MicroTime).' })),
    count: Type.Optional(Type.Integer({ description: 'The number of times this event has occurred.' })),
    type: Type.Optional(stringEnum(['Normal', 'Warning'], { description: 'Type of this event (Normal, Warning).' })),
    action: Type.Optional(Type.String({ description: 'What action was taken/failed regarding to the Regarding object.' })),
    reportingComponent: Type.Optional(Type.String({ description: 'Name of the controller that emitted this Event.' })),
    reportingInstance: Type.Optional(Type.String({ description: 'ID of the controller instance.' })),
    related: Type.Optional(ObjectReference('Optional secondary object for more complex actions.')),
    series: Type.Optional(Type.Object({ count: Type.Optional(Type.Integer()), lastObservedTime: Type.Optional(Type.String()) }, { description: 'Data about the Event series this event represents.' })),
  }),
  subresources: {},
  // kube's printEvent (pkg/printers/internalversion/printers.go), as the server prints it (wide):
  // no leading NAME; OBJECT is kind/name in lower case; priority-1 columns only with -o wide.
  nameColumn: false,
  columns: [
    { name: 'Last Seen', type: 'string', jsonPath: '.lastTimestamp', description: 'The time at which the most recent occurrence of this event was recorded.', value: (o, since) => lastSeen(o, since) },
    { name: 'Type', type: 'string', jsonPath: '.type', description: 'Type of this event (Normal, Warning).', value: (o) => str(o.type) },
    { name: 'Reason', type: 'string', jsonPath: '.reason', description: "Why the action was taken.", value: (o) => str(o.reason) },
    { name: 'Object', type: 'string', jsonPath: '.involvedObject', description: 'The object that this event is about.', value: (o) => target(o) },
    { name: 'Subobject', type: 'string', jsonPath: '.involvedObject.fieldPath', priority: 1, description: 'If referring to a piece of an object instead of an entire object, a JSON path to it.', value: (o) => str(involved('fieldPath')(o)) },
    { name: 'Source', type: 'string', jsonPath: '.source', priority: 1, description: 'The component reporting this event.', value: (o) => source(o) },
    { name: 'Message', type: 'string', jsonPath: '.message', description: 'A human-readable description of the status of this operation.', value: (o) => str(o.message).trim() },
    { name: 'First Seen', type: 'string', jsonPath: '.firstTimestamp', priority: 1, description: 'The time at which the event was first recorded.', value: (o, since) => firstSeen(o, since) },
    { name: 'Count', type: 'string', jsonPath: '.count', priority: 1, description: 'The number of times this event has occurred.', value: (o) => count(o) },
    { name: 'Name', type: 'string', format: 'name', jsonPath: '.metadata.name', priority: 1, description: 'Name must be unique within a namespace.', value: (o) => o.metadata.name },
  ],
  selectableFields: {
    'involvedObject.kind': involved('kind'),
    'involvedObject.namespace': involved('namespace'),
    'involvedObject.name': involved('name'),
    'involvedObject.uid': involved('uid'),
    'involvedObject.apiVersion': involved('apiVersion'),
    'involvedObject.resourceVersion': involved('resourceVersion'),
    'involvedObject.fieldPath': involved('fieldPath'),
    reason: (o) => o.reason as string | undefined,
    reportingComponent: (o) => o.reportingComponent as string | undefined,
    source: (o) => (o.source as { component?: string } | undefined)?.component,
    type: (o) => o.type as string | undefined,
  },
};
