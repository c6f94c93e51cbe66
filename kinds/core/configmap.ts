import { Type } from '@sinclair/typebox';
import { ageColumn, dropEmptyMaps, fieldError } from '../common.js';
import type { FieldError, KindDefinition } from '../types.js';
import { countKeys, validateDataMap } from './secret.js';

export const configMapKind: KindDefinition = {
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  singular: 'configmap',
  shortNames: ['cm'],
  namespaced: true,
  description: 'ConfigMap holds configuration data for pods to consume.',
  schema: Type.Object({
    data: Type.Optional(Type.Record(Type.String(), Type.String(), { description: "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'." })),
    binaryData: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'BinaryData contains the binary data (base64). Keys must not overlap with Data.' })),
    immutable: Type.Optional(Type.Boolean({ description: 'Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified).' })),
  }),
  subresources: {},
  // kube's printConfigMap (pkg/printers/internalversion/printers.go): len(data) + len(binaryData)
  columns: [{ name: 'Data', type: 'string', jsonPath: '.data', description: 'The number of data and binaryData entries.', value: (o) => countKeys(o.data, o.binaryData), countsKeysOf: ['data', 'binaryData'] }, ageColumn()],
  strategy: {
    prepareForCreate: (obj) => dropEmptyMaps(obj, ['data', 'binaryData']),
    prepareForUpdate: (obj) => dropEmptyMaps(obj, ['data', 'binaryData']),
    validate: (obj) => [...validateDataMap(obj.data, 'data', false), ...validateDataMap(obj.binaryData, 'binaryData', true)],
    validateUpdate(obj, old) {
      const errs: FieldError[] = [];
      if (old.immutable === true && (JSON.stringify([obj.data, obj.binaryData]) !== JSON.stringify([old.data, old.binaryData]) || obj.immutable !== true))
        errs.push(fieldError('FieldValueForbidden', 'data', 'Forbidden: field is immutable when `immutable` is set'));
      return errs;
    },
  },
};
