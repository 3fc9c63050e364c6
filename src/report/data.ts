// Reading a run's output (metrics.jsonl, summary.json) and a demo's (summaries.json + one folder per
// algorithm) into plain per-method series for the report. Tolerant: malformed lines and missing
// files are skipped and noted, never fatal.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Metrics = Record<string, number>;

/** The fields of a Summary (src/fl/simulation.ts) the report uses; all optional when read from disk. */
export interface SummaryLike {
  algorithm: string;
  rounds?: number;
  base?: Metrics | null;
  emulator?: Metrics | null;
  adapemu?: Metrics | null;
  adapfu?: Metrics | null;
  bytes_total?: number;
  bytes_down_total?: number;
  bytes_up_total?: number;
  bytes_join_per_client?: number;
  client?: { model_params?: number; trainable_params?: number; mean_step_seconds?: number; peak_memory_mb?: number };
  /** How the run defined its method (alignment loss, proximal weight). */
  method?: {
    align_objective?: string | null;
    align_loss?: string;
    public_data?: string;
    proximal?: number;
    proximal_rule?: string;
  };
  seconds?: number;
  /** Differential privacy spent over the run (epsilon null: infinite). */
  privacy?: { epsilon: number | null; delta: number };
}

export interface RoundRow {
  round: number;
  trainLoss: number | null;
  clients: number;
  align: { nmse: number; kl: number } | null;
  bytesDown: number | null;
  bytesUp: number | null;
  seconds: number | null;
  eval: { adapemu?: Metrics; adapfu?: Metrics } | null;
}

export interface MethodData {
  name: string;
  summary: SummaryLike | null;
  /** Alignment before round 1 (pre-alignment), if any. */
  preAlign: { nmse: number; kl: number } | null;
  prepareEval: { base?: Metrics | null; emulator?: Metrics | null } | null;
  rounds: RoundRow[];
  final: { round: number; adapemu?: Metrics; adapfu?: Metrics } | null;
  /** Problems met while reading (shown in the report). */
  notes: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function metrics(v: unknown): Metrics | undefined {
  if (!isObj(v)) return undefined;
  const out: Metrics = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'number') out[k] = x;
  return out;
}

function alignOf(v: unknown): { nmse: number; kl: number } | null {
  if (!isObj(v)) return null;
  // Per-round lines say {nmse, kl, ...}; the prepare line says {hidden, kl, ...}.
  const nmse = num(v.nmse) ?? num(v.hidden);
  const kl = num(v.kl);
  if (nmse === null && kl === null) return null;
  return { nmse: nmse ?? NaN, kl: kl ?? NaN };
}

export function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** Parses a run folder's metrics.jsonl (and summary.json when present). */
export function readMethod(dir: string, name?: string, summary?: SummaryLike | null): MethodData {
  const notes: string[] = [];
  let sum: SummaryLike | null = summary ?? null;
  if (!sum) {
    const sp = path.join(dir, 'summary.json');
    if (fs.existsSync(sp)) {
      try {
        const s = readJson(sp);
        if (isObj(s)) sum = s as unknown as SummaryLike;
      } catch (e) {
        notes.push(`summary.json could not be read: ${(e as Error).message}`);
      }
    }
  }
  const data = methodFromLines(name ?? sum?.algorithm ?? path.basename(dir), [], sum, notes);
  const mp = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(mp)) {
    notes.push('no metrics.jsonl');
    return data;
  }
  const lines: unknown[] = [];
  for (const line of fs.readFileSync(mp, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      lines.push(JSON.parse(line));
    } catch {
      lines.push(undefined); // counted as unreadable below
    }
  }
  return methodFromLines(data.name, lines, sum, notes, 'metrics.jsonl');
}

/**
 * One method's series from parsed metrics lines (a run folder's metrics.jsonl, or the lines a live
 * run has emitted so far: the dashboard draws the same charts from them).
 */
export function methodFromLines(
  name: string,
  lines: unknown[],
  summary: SummaryLike | null = null,
  notes: string[] = [],
  source = 'metrics',
): MethodData {
  const data: MethodData = { name, summary, preAlign: null, prepareEval: null, rounds: [], final: null, notes };
  let bad = 0;
  const byRound = new Map<number, RoundRow>();
  for (const e of lines) {
    if (!isObj(e)) {
      bad++;
      continue;
    }
    const round = num(e.round);
    if (e.phase === 'prepare') {
      data.preAlign = alignOf(e.align_loss);
      const ev = isObj(e.eval) ? e.eval : {};
      data.prepareEval = { base: metrics(ev.base) ?? null, emulator: metrics(ev.emulator) ?? null };
    } else if (e.phase === 'final') {
      const ev = isObj(e.eval) ? e.eval : {};
      data.final = { round: round ?? -1, adapemu: metrics(ev.adapemu), adapfu: metrics(ev.adapfu) };
    } else if (round !== null && round >= 0) {
      const losses = isObj(e.train_loss)
        ? Object.values(e.train_loss)
            .map(num)
            .filter((v): v is number => v !== null)
        : [];
      const ev = isObj(e.eval) ? { adapemu: metrics(e.eval.adapemu), adapfu: metrics(e.eval.adapfu) } : null;
      // A resumed run may repeat a round: the last line wins.
      byRound.set(round, {
        round,
        trainLoss: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : null,
        clients: losses.length,
        align: alignOf(e.align_loss),
        bytesDown: num(e.bytes_down),
        bytesUp: num(e.bytes_up),
        seconds: num(e.seconds),
        eval: ev && (ev.adapemu || ev.adapfu) ? ev : null,
      });
    } else bad++;
  }
  data.rounds = [...byRound.values()].sort((a, b) => a.round - b.round);
  if (bad) notes.push(`${bad} unreadable line(s) in ${source} skipped`);
  return data;
}

/** A demo folder: summaries.json in order, then any other subfolder holding a metrics.jsonl. */
export function readDemo(dir: string): { methods: MethodData[]; notes: string[] } {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`report: '${dir}' is not a folder`);
  const notes: string[] = [];
  let summaries: SummaryLike[] = [];
  const sp = path.join(dir, 'summaries.json');
  if (fs.existsSync(sp)) {
    try {
      const s = readJson(sp);
      if (Array.isArray(s)) summaries = s.filter((x): x is SummaryLike => isObj(x) && typeof x.algorithm === 'string');
      else notes.push('summaries.json is not an array');
    } catch (e) {
      notes.push(`summaries.json could not be read: ${(e as Error).message}`);
    }
  } else notes.push('no summaries.json');
  const methods: MethodData[] = [];
  const seen = new Set<string>();
  for (const s of summaries) {
    if (seen.has(s.algorithm)) continue;
    seen.add(s.algorithm);
    // Algorithm names come from a file: never let one walk out of the folder.
    const safe = !/[/\\]/.test(s.algorithm) && s.algorithm !== '..' && s.algorithm !== '.';
    const sub = path.join(dir, s.algorithm);
    if (safe && fs.existsSync(path.join(sub, 'metrics.jsonl'))) methods.push(readMethod(sub, s.algorithm, s));
    else
      methods.push({
        name: s.algorithm,
        summary: s,
        preAlign: null,
        prepareEval: null,
        rounds: [],
        final: null,
        notes: ['no per-round metrics found'],
      });
  }
  for (const ent of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!ent.isDirectory() || seen.has(ent.name)) continue;
    const sub = path.join(dir, ent.name);
    if (!fs.existsSync(path.join(sub, 'metrics.jsonl'))) continue;
    seen.add(ent.name);
    const m = readMethod(sub, ent.name);
    if (summaries.length) m.notes.push('not listed in summaries.json (an unfinished run?)');
    methods.push(m);
  }
  return { methods, notes };
}
