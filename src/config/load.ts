// Reads a YAML config, applies `--set key.path=value` overrides, validates against the schema and
// reports every problem with the key it concerns.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type RunConfig } from './schema.js';

export class ConfigError extends Error {}

/** Parses "a.b.c=value" and sets it in obj (value parsed as YAML: numbers, booleans, lists). */
export function applyOverride(obj: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set ${assignment}: expected key=value`);
  const path = assignment.slice(0, eq).trim().split('.');
  const value = parseYaml(assignment.slice(eq + 1)) as unknown;
  let cur: Record<string, unknown> = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === undefined || next === null) cur[key] = {};
    else if (typeof next !== 'object' || Array.isArray(next))
      throw new ConfigError(`--set ${assignment}: '${key}' is not a section`);
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Validates raw YAML data against a schema; the error lists every problem with its key. */
export function parseWithSchema<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  source: string,
  what = 'config',
): z.infer<S> {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.length ? i.path.join('.') : '(top level)';
    const unknown =
      i.code === 'unrecognized_keys'
        ? ` ${(i as { keys: string[] }).keys.map((k) => (i.path.length ? `${key}.${k}` : k)).join(', ')}`
        : '';
    return `  ${key}: ${i.message}${unknown}`;
  });
  throw new ConfigError(`invalid ${what} ${source}:\n${lines.join('\n')}`);
}

export function validateConfig(raw: unknown, source: string): RunConfig {
  return parseWithSchema(configSchema, withDefaultCodec(raw), source);
}

/**
 * compression.codec, when not given: q8 (about 4x fewer bytes a round than f32 at no measurable
 * cost in AdapFu NLL, README "bench:traffic"), or none with secure aggregation, whose masked sums
 * need the exact fixed-point words.
 */
function withDefaultCodec(raw: unknown): unknown {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const r = raw as Record<string, unknown>;
  const c = r.compression ?? {};
  if (typeof c !== 'object' || c === null || Array.isArray(c) || 'codec' in c) return raw; // given, or the schema's error
  const secure = r.secureAggregation !== undefined && r.secureAggregation !== false;
  return { ...r, compression: { ...c, codec: secure ? 'none' : 'q8' } };
}

/** Reads a YAML mapping (or {} without a file) and applies `key.path=value` overrides. */
export function readYamlWithOverrides(
  file: string | null,
  overrides: readonly string[] = [],
  what = 'config',
): Record<string, unknown> {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read ${what} ${file}: ${(e as Error).message}`);
    }
    try {
      raw = (parseYaml(text) as Record<string, unknown>) ?? {};
    } catch (e) {
      throw new ConfigError(`${what} ${file} is not valid YAML: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw))
      throw new ConfigError(`${what} ${file}: the top level must be a mapping`);
  }
  for (const o of overrides) applyOverride(raw, o);
  return raw;
}

export function loadConfig(file: string | null, overrides: readonly string[] = []): RunConfig {
  return validateConfig(readYamlWithOverrides(file, overrides), file ?? '(defaults)');
}
