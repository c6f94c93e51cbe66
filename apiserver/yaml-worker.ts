// The YAML parser's thread (apiserver/yaml.ts): a text in, the value's JSON (or the error) out.
import { parentPort } from 'node:worker_threads';
import YAML from 'yaml';
import { parseYamlText, yamlList } from './yaml.js';

parentPort!.on('message', ({ id, text, op, items }: { id: number; text: string; op: 'parse' | 'stringify' | 'list'; items?: string[] }) => {
  try {
    if (op === 'stringify') parentPort!.postMessage({ id, json: YAML.stringify(JSON.parse(text)) });
    else if (op === 'list') parentPort!.postMessage({ id, json: yamlList(text, items!) });
    else parentPort!.postMessage({ id, json: JSON.stringify(parseYamlText(text)) ?? 'null' });
  } catch (err) {
    parentPort!.postMessage({ id, error: (err as Error).message });
  }
});
