import type { KindDefinition } from '../types.js';
import { configMapKind } from './configmap.js';
import { eventKind } from './event.js';
import { leaseKind } from './lease.js';
import { namespaceKind } from './namespace.js';
import { secretKind } from './secret.js';

/** The part of the core API the product needs from a cluster, served in standalone mode. */
export const coreKinds: KindDefinition[] = [namespaceKind, secretKind, configMapKind, eventKind, leaseKind];
export { configMapKind, eventKind, leaseKind, namespaceKind, secretKind };
