// Log format of the server's pino loggers (the API's and the registry thread's): JSON lines for
// machines (the default whenever stdout is not a terminal: pipes, files, containers), pino-pretty's
// one line per record for a person at a terminal.
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

/** `auto` (or nothing): pretty when stdout is a terminal, else JSON. */
export function resolveLogFormat(flag: string | undefined, isTTY = process.stdout.isTTY === true): LogFormat {
  if (flag === undefined || flag === 'auto') return isTTY ? 'pretty' : 'json';
  if (flag === 'json' || flag === 'pretty') return flag;
  throw new Error(`--log-format must be auto, json or pretty, not "${flag}"`);
}

/** Fastify `logger` options for a level and format. The pretty stream writes synchronously in this thread. */
export function loggerOptions(level: string | undefined, format: LogFormat | undefined): { level: string; stream?: NodeJS.WritableStream } {
  if (format !== 'pretty') return { level: level ?? 'info' };
  return {
    level: level ?? 'info',
    stream: pretty({ colorize: !process.env.NO_COLOR, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }),
  };
}
