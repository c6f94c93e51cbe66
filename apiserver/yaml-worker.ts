// The YAML parser's thread (apiserver/yaml.ts): a text in, the value's JSON (or the error) out.
import { parentPort } from 'node:worker_threads';
import { parseYamlText } from './yaml.js';

parentPort!.on('message', ({ id, text }: { id: number; text: string }) => {
  try {
    parentPort!.postMessage({ id, json: JSON.stringify(parseYamlText(text)) ?? 'null' });
  } catch (err) {
    parentPort!.postMessage({ id, error: (err as Error).message });
  }
});
