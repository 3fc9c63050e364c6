// Loads instruction data from JSONL or JSON-array files in Alpaca, GSM8K or chat form and
// normalises every record to an Example. Errors name file, line and field so a user can fix
// the offending record; skipInvalid turns them into counted, reported skips instead.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { ChatMessage, ChatRole, Example, RecordFormat } from './types.js';

export type FormatOption = RecordFormat | 'auto';

export interface LoadOptions {
  /** Force one form for every record; 'auto' (default) detects per record. */
  format?: FormatOption;
  /** Skip malformed records (and count them) instead of throwing. */
  skipInvalid?: boolean;
  /** Category for records that have none (default: 'math' for GSM8K, else 'default'). */
  defaultCategory?: string;
  /** Remove GSM8K calculator annotations like <<48/2=24>> from answers (default false). */
  stripCalculatorAnnotations?: boolean;
  /** Name used in error messages and ids when parsing text that has no file. */
  fileName?: string;
}

export interface InvalidRecord {
  line: number;
  field: string;
  message: string;
}

export interface LoadReport {
  file: string;
  total: number;
  loaded: number;
  skipped: number;
  byFormat: Record<RecordFormat, number>;
  invalid: InvalidRecord[];
}

export interface LoadResult {
  examples: Example[];
  report: LoadReport;
}

/** A malformed record: carries where it is and which field is at fault. */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${file}:${line}: field "${field}": ${detail}`);
    this.name = 'DataError';
  }
}

/** Thrown by the record parser; the loader adds file and line. */
class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const GSM8K_FINAL = /^####\s*(.+?)\s*$/;

export function loadExamplesFromFile(path: string, opts: LoadOptions = {}): LoadResult {
  const text = readFileSync(path, 'utf8');
  return parseExamplesText(text, { ...opts, fileName: opts.fileName ?? path });
}

/** Parses file content: a JSON array when it starts with '[', otherwise JSON Lines. */
export function parseExamplesText(text: string, opts: LoadOptions = {}): LoadResult {
  const file = opts.fileName ?? '<input>';
  const records = text.trimStart().startsWith('[') ? splitJsonArray(text, file) : splitJsonl(text);
  const report: LoadReport = {
    file,
    total: records.length,
    loaded: 0,
    skipped: 0,
    byFormat: { alpaca: 0, gsm8k: 0, chat: 0 },
    invalid: [],
  };
  const examples: Example[] = [];
  const stem = basename(file).replace(/\.(jsonl|json)$/i, '');
  for (const rec of records) {
    try {
      let value: unknown;
      if (rec.value !== undefined) value = rec.value;
      else {
        try {
          value = JSON.parse(rec.text!);
        } catch (e) {
          throw new FieldError('<json>', `invalid JSON: ${(e as Error).message}`);
        }
      }
      const ex = parseRecord(value, { ...opts, idPrefix: stem, line: rec.line });
      report.byFormat[ex.format]++;
      examples.push(ex);
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      if (!opts.skipInvalid) throw new DataError(file, rec.line, e.field, e.message);
      report.invalid.push({ line: rec.line, field: e.field, message: e.message });
      report.skipped++;
    }
  }
  report.loaded = examples.length;
  return { examples, report };
}

interface RawRecord {
  line: number;
  text?: string;
  value?: unknown;
}

function splitJsonl(text: string): RawRecord[] {
  const out: RawRecord[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === '') continue;
    out.push({ line: i + 1, text: lines[i]! });
  }
  return out;
}

/**
 * Splits a JSON array into its elements while keeping each element's starting line, by scanning
 * brackets outside strings. The whole file is then still validated by JSON.parse per element.
 */
function splitJsonArray(text: string, file: string): RawRecord[] {
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const line = m ? lineAt(text, Number(m[1])) : 1;
    throw new DataError(file, line, '<json>', `invalid JSON: ${msg}`);
  }
  if (!Array.isArray(whole)) throw new DataError(file, 1, '<json>', 'expected a JSON array of records');
  const starts: number[] = [];
  let depth = 0;
  let inStr = false;
  let expectElem = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (/\s/.test(c)) continue;
    if (expectElem && depth === 1 && c !== ']') {
      starts.push(i);
      expectElem = false;
    }
    if (c === '"') inStr = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElem = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElem = true;
  }
  // Line counting in one pass over the sorted start offsets.
  const lines: number[] = [];
  let line = 1;
  let pos = 0;
  for (const s of starts) {
    for (; pos < s; pos++) if (text.charCodeAt(pos) === 10) line++;
    lines.push(line);
  }
  return whole.map((value, i) => ({ line: lines[i] ?? 1, value }));
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

export interface ParseRecordOptions extends LoadOptions {
  idPrefix?: string;
  line?: number;
}

/** Which form a record looks like, or null when none fits. */
export function detectFormat(rec: Record<string, unknown>): RecordFormat | null {
  if ('messages' in rec) return 'chat';
  if ('question' in rec && 'answer' in rec) return 'gsm8k';
  if ('instruction' in rec) return 'alpaca';
  return null;
}

/** Normalises one parsed JSON record; throws FieldError (internal) naming the bad field. */
export function parseRecord(value: unknown, opts: ParseRecordOptions = {}): Example {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FieldError('<record>', 'expected a JSON object');
  }
  const rec = value as Record<string, unknown>;
  const forced = opts.format ?? 'auto';
  const format = forced === 'auto' ? detectFormat(rec) : forced;
  if (format === null) {
    throw new FieldError(
      '<record>',
      'cannot tell the form: need "instruction"+"output", "question"+"answer" or "messages"',
    );
  }
  const id =
    typeof rec.id === 'string' || typeof rec.id === 'number'
      ? String(rec.id)
      : `${opts.idPrefix ?? 'rec'}:${opts.line ?? 0}`;
  const category = optString(rec, 'category');
  let ex: Example;
  let known: string[];
  if (format === 'alpaca') {
    // Dolly spells input "context" and output "response"; accept both spellings.
    const outKey = 'output' in rec ? 'output' : 'response' in rec ? 'response' : 'output';
    const inKey = 'input' in rec ? 'input' : 'context';
    ex = {
      id,
      format,
      instruction: reqString(rec, 'instruction'),
      input: optString(rec, inKey) ?? '',
      response: reqString(rec, outKey),
      category: category ?? opts.defaultCategory ?? 'default',
    };
    known = ['id', 'instruction', 'input', 'context', 'output', 'response', 'category'];
  } else if (format === 'gsm8k') {
    const question = reqString(rec, 'question');
    let answer = reqString(rec, 'answer');
    const lines = answer.trimEnd().split('\n');
    const m = GSM8K_FINAL.exec(lines[lines.length - 1]!.trim());
    if (!m) throw new FieldError('answer', 'last line must be "#### <number>"');
    const finalAnswer = m[1]!.replace(/[,$]/g, '');
    if (!Number.isFinite(Number(finalAnswer))) throw new FieldError('answer', `final answer "${m[1]}" is not a number`);
    if (opts.stripCalculatorAnnotations) answer = answer.replace(/<<[^<>]*>>/g, '');
    ex = {
      id,
      format,
      instruction: question,
      input: '',
      response: answer,
      category: category ?? opts.defaultCategory ?? 'math',
      meta: { finalAnswer },
    };
    known = ['id', 'question', 'answer', 'category'];
  } else {
    const messages = parseMessages(rec.messages);
    let last = messages.length - 1;
    while (last >= 0 && messages[last]!.role !== 'assistant') last--;
    if (last < 0) throw new FieldError('messages', 'no assistant turn to learn from');
    const history = messages.slice(0, last);
    let user = history.length - 1;
    while (user >= 0 && history[user]!.role !== 'user') user--;
    if (user < 0) throw new FieldError('messages', 'no user turn before the last assistant turn');
    ex = {
      id,
      format,
      instruction: history[user]!.content,
      input: '',
      messages: history,
      response: messages[last]!.content,
      category: category ?? opts.defaultCategory ?? 'chat',
    };
    known = ['id', 'messages', 'category'];
  }
  // Keep unknown fields (tests of code tasks, sources, ...) so nothing is lost on a round trip.
  const extra: Record<string, unknown> = { ...(ex.meta ?? {}) };
  for (const [k, v] of Object.entries(rec)) if (!known.includes(k)) extra[k] = v;
  if (Object.keys(extra).length > 0) ex.meta = extra;
  return ex;
}

function reqString(rec: Record<string, unknown>, key: string): string {
  const v = rec[key];
  if (v === undefined || v === null) throw new FieldError(key, 'missing');
  if (typeof v !== 'string') throw new FieldError(key, `expected a string, got ${typeName(v)}`);
  if (v.trim() === '') throw new FieldError(key, 'empty');
  return v;
}

function optString(rec: Record<string, unknown>, key: string): string | undefined {
  const v = rec[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new FieldError(key, `expected a string, got ${typeName(v)}`);
  return v;
}

const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant']);

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v)) throw new FieldError('messages', `expected an array, got ${typeName(v)}`);
  if (v.length === 0) throw new FieldError('messages', 'empty');
  return v.map((m, i) => {
    const field = `messages[${i}]`;
    if (m === null || typeof m !== 'object') throw new FieldError(field, 'expected an object');
    const { role, content } = m as Record<string, unknown>;
    // "human"/"gpt" come from ShareGPT-style dumps; map them rather than reject them.
    const r = role === 'human' ? 'user' : role === 'gpt' ? 'assistant' : role;
    if (typeof r !== 'string' || !ROLES.has(r))
      throw new FieldError(`${field}.role`, `unknown role ${JSON.stringify(role)}`);
    if (typeof content !== 'string')
      throw new FieldError(`${field}.content`, `expected a string, got ${typeName(content)}`);
    return { role: r as ChatRole, content };
  });
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}
