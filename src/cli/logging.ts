// The structured logger of the long-running commands (server, client), from the global options
// --log-format json|pretty and --log-level (or FEDBIOT_LOG_FORMAT / FEDBIOT_LOG_LEVEL).
import type { Command } from 'commander';
import { createLogger, parseLogFormat, parseLogLevel, type Logger } from '../ops/log.js';

export function commandLogger(cmd: Command, base: Record<string, unknown>): Logger {
  const o = cmd.optsWithGlobals<{ logFormat?: string; logLevel?: string }>();
  return createLogger({ format: parseLogFormat(o.logFormat), level: parseLogLevel(o.logLevel), base });
}
