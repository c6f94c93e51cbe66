// The server's own event-loop stall around one request: its nodejs_eventloop_lag_max_seconds
// (prom-client's maximum since the last scrape, reset by every scrape) read before and after.
// On a shared machine a stall can be another process's fault: `reproduced` sends an input that
// went over the bound again, alone, and counts it over only when every try is over; `quiet` waits
// before each try until the idle server's own stall is small (nothing else holds the CPU).
import { Agent, request as httpsRequest } from 'node:https';

export interface Res {
  status: number;
  text: string;
  type: string;
}

export function send(agent: Agent, port: number, method: string, path: string, body: Buffer | undefined, headers: Record<string, string>): Promise<Res> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, method, path, agent, servername: 'localhost', headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) } }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), type: String(r.headers['content-type'] ?? '') }));
      r.on('error', (e) => resolve({ status: -1, text: String(e), type: '' }));
    });
    req.on('error', (e) => resolve({ status: -1, text: String(e), type: '' }));
    req.end(body);
  });
}

/** A metric of the server's /metrics (a gauge without labels); NaN when absent. */
export async function metric(agent: Agent, port: number, name: string): Promise<number> {
  const r = await send(agent, port, 'GET', '/metrics', undefined, {});
  const line = r.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** The longest stall (ms) since the last call, as the server measured it; the call resets it. */
export const stallMs = async (agent: Agent, port: number) => (await metric(agent, port, 'nodejs_eventloop_lag_max_seconds')) * 1000;

/** Runs `fn` alone and returns the server's longest stall during it (ms). */
export async function measured<T>(agent: Agent, port: number, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  await stallMs(agent, port);
  const value = await fn();
  return { ms: await stallMs(agent, port), value };
}

/** Waits (up to `maxMs`) until the idle server's stall over 300 ms is at most `idleMs`; whether it was. */
export async function quiet(agent: Agent, port: number, idleMs = 25, maxMs = 15_000): Promise<boolean> {
  const until = Date.now() + maxMs;
  while (Date.now() < until) {
    await stallMs(agent, port);
    await new Promise((r) => setTimeout(r, 300));
    if ((await stallMs(agent, port)) <= idleMs) return true;
  }
  return false;
}

/**
 * An input whose stall went over `boundMs` once, tried again alone up to `tries` times (`tryOnce`
 * sends it and returns its stall, ms): the smallest stall seen (under the bound as soon as one try
 * is), and every try's figure.
 */
export async function reproduced(boundMs: number, tryOnce: () => Promise<number>, tries = 3): Promise<{ ms: number; seen: number[] }> {
  const seen: number[] = [];
  for (let i = 0; i < tries; i++) {
    const ms = await tryOnce();
    seen.push(Math.round(ms));
    if (ms <= boundMs) break;
  }
  return { ms: Math.min(...seen), seen };
}
