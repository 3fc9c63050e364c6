// `fedbiot train-smoke`: trains a small random LLaMA on generated math text with the byte tokenizer
// and prints loss and tokens/s: a one-minute check that the engine works on this machine.
import type { Command } from 'commander';
import { LlamaModel } from '../nn/llama.js';
import { makeConfig, countParameters } from '../nn/config.js';
import { Optimizer } from '../nn/optim.js';
import { lmLoss } from '../nn/lm.js';
import { tape } from '../tensor/tensor.js';
import { kernels } from '../tensor/engine.js';
import { ByteTokenizer } from '../data/byte-tokenizer.js';
import { encodeExamples } from '../data/encode.js';
import { BatchIterator, toTokenBatch } from '../data/batch.js';
import { generateMathTask } from '../tasks/math.js';

export function registerTrainSmoke(program: Command): void {
  program
    .command('train-smoke')
    .description('train a small random model for a few steps and print loss and tokens/s')
    .option('--steps <n>', 'optimiser steps', '40')
    .option('--layers <n>', 'decoder layers', '4')
    .option('--dim <n>', 'hidden size', '128')
    .option('--batch <n>', 'batch size', '8')
    .option('--seed <n>', 'seed', '0')
    .action((o: { steps: string; layers: string; dim: string; batch: string; seed: string }) => {
      const tok = new ByteTokenizer();
      const d = Number(o.dim);
      const cfg = makeConfig({
        vocabSize: tok.vocabSize,
        hiddenSize: d,
        intermediateSize: Math.round((d * 8) / 3 / 8) * 8,
        numLayers: Number(o.layers),
        numHeads: Math.max(1, d / 32),
        bosTokenId: tok.bosId,
        eosTokenId: tok.eosId,
      });
      const model = LlamaModel.random(cfg, Number(o.seed));
      const params = [...model.baseTensors().values()];
      for (const p of params) p.requiresGrad = true;
      const task = generateMathTask({ seed: Number(o.seed), trainSize: 400, testSize: 10 });
      const { items } = encodeExamples(task.train, tok, { maxLength: 320 });
      // Train on every token here (prompt included): this is a language-model smoke test.
      for (const it of items) it.labels = [...it.inputIds];
      const batches = new BatchIterator(items, { batchSize: Number(o.batch), padId: tok.padId, seed: Number(o.seed) });
      const opt = new Optimizer(params, { kind: 'adamw', lr: 3e-3 });
      console.log(
        `kernels: ${kernels().name}, threads ${kernels().getThreads()}; model ${countParameters(cfg).toLocaleString('en-US')} parameters`,
      );
      let tokens = 0;
      const t0 = performance.now();
      for (let step = 1; step <= Number(o.steps); step++) {
        const b = toTokenBatch(batches.next()!);
        opt.zeroGrad();
        const loss = lmLoss(model, b);
        tape.backward(loss);
        const value = loss.item();
        tape.reset();
        opt.step({ maxGradNorm: 1 });
        tokens += b.B * b.T;
        if (step === 1 || step % 10 === 0) {
          const s = (performance.now() - t0) / 1000;
          console.log(
            `step ${String(step).padStart(4)}  loss ${value.toFixed(4)}  ${(tokens / s).toFixed(0)} tokens/s`,
          );
        }
      }
    });
}
