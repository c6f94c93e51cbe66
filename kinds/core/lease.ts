import { Type } from '@sinclair/typebox';
import { ageColumn } from '../common.js';
import type { KindDefinition } from '../types.js';

/** coordination.k8s.io/v1 Lease: leader election of several replicas' reconcilers. */
export const leaseKind: KindDefinition = {
  group: 'coordination.k8s.io',
  version: 'v1',
  kind: 'Lease',
  plural: 'leases',
  singular: 'lease',
  namespaced: true,
  description: 'Lease defines a lease concept.',
  schema: Type.Object({
    spec: Type.Optional(
      Type.Object(
        {
          holderIdentity: Type.Optional(Type.String({ description: 'holderIdentity contains the identity of the holder of a current lease.' })),
          leaseDurationSeconds: Type.Optional(Type.Integer({ description: 'leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it.' })),
          acquireTime: Type.Optional(Type.String({ description: 'acquireTime is a time when the current lease was acquired (MicroTime).' })),
          renewTime: Type.Optional(Type.String({ description: 'renewTime is a time when the current holder of a lease has last updated the lease (MicroTime).' })),
          leaseTransitions: Type.Optional(Type.Integer({ description: 'leaseTransitions is the number of transitions of a lease between holders.' })),
          preferredHolder: Type.Optional(Type.String({ description: 'PreferredHolder signals to a lease holder that the lease has a more optimal holder and should be given up.' })),
          strategy: Type.Optional(Type.String({ description: 'Strategy indicates the strategy for picking the leader for coordinated leader election.' })),
        },
        { description: 'spec contains the specification of the Lease.' },
      ),
    ),
  }),
  subresources: {},
  columns: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity', description: 'The current holder.' }, ageColumn()],
};
