// Everything a run needs before the first round, built from a validated config: the base model and
// its tokenizer, the train / test / public examples, the clients' shares, the task's scorer.
import type { RunConfig } from '../config/schema.js';
import type { Example, TokenizerLike } from '../data/types.js';
import { LlamaModel } from '../nn/llama.js';
import { makeConfig } from '../nn/config.js';
import { ByteTokenizer } from '../data/byte-tokenizer.js';
import { loadExamplesFromFile } from '../data/loaders.js';
import { splitClients, renderSplitTable, type SplitSpec } from '../data/split.js';
import type { TaskName } from '../tasks/common.js';
import { generateTask } from '../tasks/index.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { mathAccuracy } from '../eval/math.js';
import { textScores } from '../eval/text.js';
import { evaluateCode } from '../eval/code.js';
import type { TaskScorer } from '../fedbiot/evaluate.js';
import { loadHfModel } from '../models/hf-model.js';
import { deriveSeed, mulberry32, shuffle } from '../util/rng.js';
import { resolveAlignment } from '../fedbiot/objectives.js';
import { strategyOf } from '../fedbiot/algorithms.js';

/**
 * What the server of a run holds: the model, the evaluation set, the public data for alignment and
 * the settings. No client's training data: a deployed server builds only this (buildServerData).
 */
export interface ServerData {
  cfg: RunConfig;
  base: LlamaModel;
  tokenizer: TokenizerLike & { vocabSize?: number };
  modelSource: string;
  task: TaskName | null;
  test: Example[];
  public: Example[];
  warnings: string[];
}

/** A simulation: the server's part, plus one dataset split into the clients' shares. */
export interface Experiment extends ServerData {
  train: Example[];
  /** clients[c] = indices into train. */
  clients: number[][];
  splitTable: string;
}

/** The simulation's experiment: the server's part and the clients' shares of data.train or data.task. */
export async function buildExperiment(cfg: RunConfig): Promise<Experiment> {
  const { server, train } = await build(cfg, true);
  const c = cfg.clients;
  // Offsite-Tuning's one data owner: its strategy says the simulation deals it all the data.
  const single = strategyOf(cfg.algorithm.name).data === 'single-client';
  const spec: SplitSpec =
    c.split === 'iid'
      ? { kind: 'iid' }
      : c.split === 'dirichlet'
        ? { kind: 'dirichlet', alpha: c.alpha }
        : { kind: 'meta' };
  const categories = train.map((e) => e.category);
  const split = splitClients(categories, c.count, spec, deriveSeed(cfg.seed, 'split'));
  server.warnings.push(...split.warnings);
  const clients = single ? [split.clients.flat().sort((a, b) => a - b)] : split.clients;
  return { ...server, train, clients, splitTable: renderSplitTable(clients, categories) };
}

/**
 * A deployed server's part of a run: the model, data.test (or a generated task's test split) and the
 * public data. It reads no client data: data.train is refused, each client brings its own file.
 */
export async function buildServerData(cfg: RunConfig): Promise<ServerData> {
  checkServerData(cfg);
  return (await build(cfg, false)).server;
}

/** Refuses a deployed server's config that names client data, or no evaluation set. */
export function checkServerData(cfg: RunConfig): void {
  if (cfg.data.train)
    throw new Error(
      `config data.train (${cfg.data.train}): a deployed server does not read the clients' training data; each client passes its own file (fedbiot client --data FILE --format F) and is registered with its size (fedbiot server add-client NAME --samples N). Give the server data.test (its evaluation set) or data.task`,
    );
  if (!cfg.data.task && !cfg.data.test)
    throw new Error(
      'config data: a deployed server needs its evaluation set: data.test (a JSONL/JSON file) or data.task (a generated task, whose test split it uses)',
    );
}

/** The simulation's shares as lists of examples (what each simulated client holds). */
export function clientShares(exp: Experiment): Example[][] {
  return exp.clients.map((idx) => idx.map((j) => exp.train[j]!));
}

async function build(cfg: RunConfig, withTrain: boolean): Promise<{ server: ServerData; train: Example[] }> {
  const warnings: string[] = [];
  let base: LlamaModel;
  let tokenizer: TokenizerLike & { vocabSize?: number };
  let modelSource: string;
  if (cfg.model.path) {
    base = loadHfModel(cfg.model.path);
    tokenizer = loadTokenizer(cfg.model.path);
    modelSource = cfg.model.path;
  } else {
    const r = cfg.model.random!;
    tokenizer = new ByteTokenizer();
    const mc = makeConfig({
      vocabSize: r.vocabSize ?? 259,
      hiddenSize: r.hiddenSize,
      intermediateSize: r.intermediateSize,
      numLayers: r.numLayers,
      numHeads: r.numHeads,
      numKvHeads: r.numKvHeads ?? r.numHeads,
      maxPositionEmbeddings: r.maxPositionEmbeddings,
      bosTokenId: tokenizer.bosId ?? null,
      eosTokenId: tokenizer.eosId ?? null,
      padTokenId: tokenizer.padId ?? null,
    });
    if (mc.vocabSize < 259)
      throw new Error(`model.random.vocabSize must be at least 259 for the byte tokenizer, got ${mc.vocabSize}`);
    base = LlamaModel.random(mc, r.seed);
    modelSource = `random(seed=${r.seed})`;
  }

  const d = cfg.data;
  // A generated task's train split is built on the server too, but only to keep the public data
  // clear of its questions (it is the benchmark's, not a client's); the server drops it after.
  let train: Example[] = [];
  let test: Example[];
  let task: TaskName | null = d.task ?? null;
  if (!withTrain && !task) {
    const loaded = loadExamplesFromFile(d.test!, { format: d.format, skipInvalid: d.skipInvalid });
    if (loaded.report.skipped > 0) warnings.push(`${d.test}: skipped ${loaded.report.skipped} invalid records`);
    test = loaded.examples;
    if (isGsm8kSet(test)) task = 'math';
  } else if (d.train) {
    const opts = { format: d.format, skipInvalid: d.skipInvalid };
    const tr = loadExamplesFromFile(d.train, opts);
    train = tr.examples;
    if (tr.report.skipped > 0) warnings.push(`${d.train}: skipped ${tr.report.skipped} invalid records`);
    if (d.test) test = loadExamplesFromFile(d.test, opts).examples;
    else {
      // Hold out a seeded 10% when no test file is given.
      const idx = shuffle(
        mulberry32(deriveSeed(cfg.seed, 'holdout')),
        train.map((_, i) => i),
      );
      const n = Math.max(1, Math.round(train.length * 0.1));
      const held = new Set(idx.slice(0, n));
      test = train.filter((_, i) => held.has(i));
      train = train.filter((_, i) => !held.has(i));
    }
    if (!task && (train.some((e) => e.format === 'gsm8k') || isGsm8kSet(test))) task = 'math';
  } else if (task) {
    const t = generateTask(task, { seed: d.taskSeed, trainSize: d.trainSize, testSize: d.testSize });
    train = t.train;
    warnings.push(...t.warnings);
    if (d.test) {
      // A test file replaces the generated test split (a GSM8K test set after training on the
      // generated math task). Its records are asked in the training data's prompt form unless
      // data.template says otherwise, so the model is questioned as it was trained.
      const loaded = loadExamplesFromFile(d.test, { format: d.format, skipInvalid: d.skipInvalid });
      if (loaded.report.skipped > 0) warnings.push(`${d.test}: skipped ${loaded.report.skipped} invalid records`);
      const trainFormat = train[0]?.format;
      test =
        d.template || trainFormat === undefined
          ? loaded.examples
          : loaded.examples.map((e) => ({ ...e, format: trainFormat }));
    } else test = t.test;
  } else {
    throw new Error('config data: give data.task (math, code, qa) or data.train (a JSONL/JSON file)');
  }
  if (withTrain && train.length === 0) throw new Error('config data: the training set is empty');
  if (d.test && test.length === 0) throw new Error(`config data.test: ${d.test} holds no test records`);
  if (d.test && task !== null && task !== 'math' && isGsm8kSet(test))
    throw new Error(
      `config data.test: ${d.test} holds GSM8K records (question, answer ending in "#### N"), which are scored as math, but data.task is ${task}`,
    );

  let pub: Example[];
  // Without data.public.source, the alignment objective's own (Offsite-Tuning distils on corpus text).
  const publicSource = resolveAlignment(cfg.algorithm.name, cfg.algorithm.align, d.public.source).publicSource;
  if (publicSource === 'file') {
    if (!d.public.path) throw new Error('config data.public.path: required when data.public.source is "file"');
    const loaded = loadExamplesFromFile(d.public.path, { format: 'auto', skipInvalid: true });
    if (loaded.report.skipped > 0)
      warnings.push(`${d.public.path}: skipped ${loaded.report.skipped} invalid public records`);
    pub = loaded.examples.slice(0, d.public.size);
  } else if (publicSource === 'corpus') {
    const { buildCorpus } = await import('../data/corpus.js');
    const docs = buildCorpus({});
    const rand = mulberry32(deriveSeed(cfg.seed, 'public'));
    pub = [];
    for (let i = 0; i < d.public.size && docs.length > 0; i++) {
      const doc = docs[Math.floor(rand() * docs.length)]!;
      const start = Math.floor(rand() * Math.max(1, doc.text.length - 400));
      const text = doc.text.slice(start, start + 400);
      pub.push({
        id: `public-${i}`,
        format: 'alpaca',
        instruction: 'Continue the text.',
        input: '',
        response: text,
        category: 'corpus',
      });
    }
  } else {
    // Generated instruction data, by default outside the clients' domain (the other families). A
    // family may include the clients' own: its public examples come from another seed, and any whose
    // question is also a client's or a test question is left out.
    const families = d.public.tasks ?? (['math', 'code', 'qa'] as TaskName[]).filter((t) => t !== task);
    const held = new Set([...train, ...test].map((e) => e.instruction + '\n' + e.input));
    pub = [];
    const per = Math.ceil(d.public.size / families.length);
    for (const o of families) {
      try {
        const drawn = generateTask(o, { seed: deriveSeed(d.taskSeed, 'public'), trainSize: per, testSize: 1 }).train;
        pub.push(...drawn.filter((e) => !held.has(e.instruction + '\n' + e.input)));
      } catch (e) {
        warnings.push(`public data: task ${o} unavailable (${(e as Error).message})`);
      }
    }
    if (pub.length === 0) pub = train.slice(0, d.public.size);
    if (pub.length === 0) throw new Error(`config data.public: no public example from tasks ${families.join(', ')}`);
  }

  return { server: { cfg, base, tokenizer, modelSource, task, test, public: pub, warnings }, train };
}

/** True when every example came from a GSM8K record (question, answer ending in "#### N"). */
function isGsm8kSet(examples: readonly Example[]): boolean {
  return examples.length > 0 && examples.every((e) => e.meta?.finalAnswer !== undefined);
}

/**
 * The gold number of a math example: a GSM8K record's final answer (the text after '####', as the
 * loader parsed it), else the number after '####' in the reference solution (generated math).
 */
export function mathGold(e: Example): string {
  const f = e.meta?.finalAnswer;
  return typeof f === 'string' ? f : e.response;
}

/** The task metric for generated outputs against the test examples. */
export function taskScorer(task: TaskName | null, test: readonly Example[]): TaskScorer | null {
  // Math (generated or GSM8K): exact match of the final number (after the last '####' in the output,
  // else its last number) with the gold answer.
  if (task === 'math')
    return async (outs) => ({
      accuracy: mathAccuracy(outs, test.map(mathGold)).accuracy,
    });
  if (task === 'qa') {
    return async (outs) => {
      const s = textScores(
        outs,
        test.map((e) => e.response),
      );
      return { exact_match: s.exactMatch, rouge_l: s.rougeL };
    };
  }
  if (task === 'code') {
    return async (outs) => {
      const tasks = test.map((e, i) => ({ id: e.id, output: outs[i]!, tests: (e.meta?.tests as string[]) ?? [] }));
      const r = await evaluateCode(tasks, { concurrency: 2 });
      return { pass_at_1: r.passAt1 };
    };
  }
  return null;
}
