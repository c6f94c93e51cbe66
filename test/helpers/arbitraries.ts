// fast-check input for the fuzz test and the chaos bench: a value of any JSON type, with strings
// that break names, paths and prototypes.
import fc from 'fast-check';

export const weird = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '-', '-a', 'a-', 'a..b', 'UPPER', 'a'.repeat(254), 'a'.repeat(64), 'ä', '../x', 'x/y', '%2F', '\u0000', 'a b', '__proto__', 'constructor', 'prototype'),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);
