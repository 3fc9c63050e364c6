// `fedbiot score --model DIR [--adapter DIR] --text TEXT --json`: the tokens of the text as the
// tokenizer produces them (BOS included when tokenizer_config.json adds it) and the mean negative
// log-likelihood of tokens 1..n-1 given the tokens before them (natural log, per token).
import type { Command } from 'commander';
import { loadTokenizer } from '../io/tokenizer.js';
import { noGrad, tape } from '../tensor/tensor.js';
import type { LlamaModel } from '../nn/llama.js';
import { loadModelWithAdapter } from '../models/adapter.js';

/** Mean -log p(t_i | t_<i) over i = 1..n-1 (float64 log-softmax over the full vocabulary). */
export function meanNll(model: LlamaModel, tokens: readonly number[]): number {
  const n = tokens.length;
  if (n < 2) throw new Error(`scoring needs at least 2 tokens, the text has ${n}`);
  if (n > model.config.maxPositionEmbeddings)
    throw new Error(
      `the text has ${n} tokens, more than the model's context length ${model.config.maxPositionEmbeddings}`,
    );
  const V = model.config.vocabSize;
  for (const t of tokens)
    if (!(t >= 0 && t < V)) throw new Error(`token id ${t} is outside the model's vocabulary of ${V}`);
  const logits = noGrad(() => Float32Array.from(model.forward(Int32Array.from(tokens), { B: 1, T: n }).data));
  tape.reset();
  let total = 0;
  for (let i = 1; i < n; i++) {
    const off = (i - 1) * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[off + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[off + v]! - max);
    total += max + Math.log(s) - logits[off + tokens[i]!]!;
  }
  return total / (n - 1);
}

export function registerScore(program: Command): void {
  program
    .command('score')
    .description('tokenize a text and print its mean negative log-likelihood under the model')
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder')
    .requiredOption('--text <text>', 'text to score')
    .option('--json', 'print one JSON object {"tokens", "nll", "n"}')
    .action((o: { model: string; adapter?: string; text: string; json?: boolean }) => {
      const { model } = loadModelWithAdapter(o.model, o.adapter);
      const tok = loadTokenizer(o.model);
      const tokens = tok.encode(o.text);
      const nll = meanNll(model, tokens);
      if (o.json) process.stdout.write(JSON.stringify({ tokens, nll, n: tokens.length }) + '\n');
      else
        process.stdout.write(
          `tokens ${tokens.length}  nll ${nll.toFixed(6)}  perplexity ${Math.exp(nll).toFixed(4)}\n`,
        );
    });
}
