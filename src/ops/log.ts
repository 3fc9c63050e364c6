// Structured logs (pino): levels, one JSON object per line (`--log-format json`, for machines) or
// readable lines (`pretty`, the default), a request id per HTTP request, and never a token: secret
// fields are redacted by path, and Bearer/Basic credentials or registered secrets in message text
// are replaced before anything is written.
import { randomBytes } from 'node:crypto';
import type * as http from 'node:http';
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const REDACTED = '[redacted]';
/** Keys whose values never reach a log line, at the top level or one level down (req.headers.* too). */
const REDACT_PATHS = [
  'token',
  '*.token',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'cookie',
  '*.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
];
const CREDENTIALS = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;

export interface LoggerOptions {
  format?: LogFormat;
  level?: LevelWithSilent;
  /** Where lines go (default stdout). */
  stream?: NodeJS.WritableStream;
  /** Fields on every line (e.g. { role: 'server' }). */
  base?: Record<string, unknown>;
}

/** Known secret strings (a client's own token) to scrub from message text, per logger. */
const secretsOf = new WeakMap<Logger, Set<string>>();

export function scrubText(text: string, secrets: Iterable<string> = []): string {
  let out = text.replace(CREDENTIALS, `$1 ${REDACTED}`);
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join(REDACTED);
  return out;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const stream = o.stream ?? process.stdout;
  const format = o.format ?? 'pretty';
  const secrets = new Set<string>();
  const dest =
    format === 'json'
      ? stream
      : pretty({
          destination: stream,
          sync: true,
          colorize: (stream as NodeJS.WriteStream).isTTY === true,
          // A readable line ends with its message (role is for collectors, which read JSON).
          translateTime: 'UTC:yyyy-mm-dd HH:MM:ss.l',
          ignore: 'pid,hostname,role',
          singleLine: true,
        });
  const logger = pino(
    {
      level: o.level ?? 'info',
      base: o.base ?? null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      hooks: {
        // Message text is free-form: scrub credentials and registered secrets from string arguments.
        logMethod(args, method) {
          const clean = args.map((a: unknown) => (typeof a === 'string' ? scrubText(a, secrets) : a)) as Parameters<
            typeof method
          >;
          return method.apply(this, clean);
        },
      },
    },
    dest,
  );
  secretsOf.set(logger, secrets);
  return logger;
}

/** Never write `secret` (e.g. the client's own token) in this logger's message text. */
export function addSecret(logger: Logger, secret: string): void {
  secretsOf.get(logger)?.add(secret);
}

/**
 * The `(line) => void` logging the round loops use, on a structured logger: "warning: ..." lines
 * log at warn, "error: ..." at error, the rest at info (the text is kept as it is).
 */
export function lineLogger(logger: Logger): (line: string) => void {
  return (line) => {
    if (/^warning\b/i.test(line) || /^refused\b/.test(line)) logger.warn(line);
    else if (/^error\b/i.test(line)) logger.error(line);
    else logger.info(line);
  };
}

/** The request's id: a well-formed incoming X-Request-Id, else a new one; echoed in the reply. */
export function requestId(req: http.IncomingMessage, res: http.ServerResponse): string {
  const given = req.headers['x-request-id'];
  const id =
    typeof given === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(given) ? given : randomBytes(8).toString('hex');
  if (!res.headersSent) res.setHeader('x-request-id', id);
  return id;
}

/**
 * A child logger for one request, and a completion line when the reply ends: method, path (no query
 * string: it may carry secrets), status and milliseconds; debug for successes (clients poll often),
 * warn for 4xx/5xx.
 */
export function requestLogger(logger: Logger, req: http.IncomingMessage, res: http.ServerResponse): Logger {
  const reqId = requestId(req, res);
  const log = logger.child({ reqId });
  const t0 = performance.now();
  const pathOnly = (req.url ?? '/').split('?')[0];
  res.once('finish', () => {
    const fields = {
      method: req.method,
      path: pathOnly,
      status: res.statusCode,
      ms: Math.round(performance.now() - t0),
      remote: req.socket.remoteAddress,
    };
    if (res.statusCode >= 400) log.warn(fields, 'request failed');
    else log.debug(fields, 'request');
  });
  return log;
}

export function parseLogFormat(v: string | undefined, what = '--log-format'): LogFormat {
  const f = v ?? process.env.FEDBIOT_LOG_FORMAT ?? 'pretty';
  if (!LOG_FORMATS.includes(f as LogFormat)) throw new Error(`${what}: expected json or pretty, got '${f}'`);
  return f as LogFormat;
}

export function parseLogLevel(v: string | undefined, what = '--log-level'): LevelWithSilent {
  const l = v ?? process.env.FEDBIOT_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(l as LevelWithSilent))
    throw new Error(`${what}: expected one of ${LOG_LEVELS.join(', ')}, got '${l}'`);
  return l as LevelWithSilent;
}
