import pino from 'pino';

/**
 * Structured logging on pino: one JSON line per event (`t`, `level`, `msg`, then the fields);
 * debug and info to stdout, warn and error to stderr. Callers pass ids and counts only, and
 * what a caller passes by mistake is redacted anyway: a person, a name of a person, an id
 * number, a phone, a birth date or an address never reaches a log line (PII_PATHS).
 */
export type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Fields that hold personal data, at the top level or one object down (e.g. `request.person`). */
const PII_KEYS = ['person', 'idNumber', 'phone', 'birthDate', 'homeAddress', 'pickupAddress', 'address', 'fullName'];
export const PII_PATHS = [...PII_KEYS, ...PII_KEYS.map((k) => `*.${k}`)];

export interface LogStreams {
  out: { write(line: string): unknown };
  err: { write(line: string): unknown };
}

export function createLogger(
  level: Level = 'info',
  base: Record<string, unknown> = {},
  streams: LogStreams = { out: process.stdout, err: process.stderr },
): Logger {
  const root = pino(
    {
      level,
      base: null,
      messageKey: 'msg',
      timestamp: () => `,"t":"${new Date().toISOString()}"`,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => plainErrors(obj),
      },
      // Errors are reduced to name and message by plainErrors; pino's own would add the stack.
      serializers: { err: (e: unknown) => e },
      redact: { paths: PII_PATHS, censor: '[redacted]' },
    },
    pino.multistream(
      [
        { level: 'debug', stream: streams.out },
        { level: 'warn', stream: streams.err },
      ],
      // Each line to one stream: the highest that takes its level.
      { dedupe: true },
    ),
  );
  return wrap(Object.keys(base).length ? root.child(plainErrors(base)) : root);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (m, f) => p.debug(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    error: (m, f) => p.error(f ?? {}, m),
    child: (f) => wrap(p.child(plainErrors(f))),
  };
}

/** An Error as its name and message (a stack or a cause may carry payloads). */
function plainErrors(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj)) {
    if (v instanceof Error) (out ??= { ...obj })[k] = { name: v.name, message: v.message };
  }
  return out ?? obj;
}
