// `fedbiot generate --model DIR [--adapter PEFT_DIR] --prompt TEXT [--max-new-tokens N]
//   [--greedy | --temperature T --top-p P --top-k K] [--seed S] [--weights f32|f16|q8_0|q4_0]`
// --weights keeps the frozen matrices in that format in memory (GGUF Q8_0 / Q4_0 blocks, widened
// inside the gemm): a quarter of the f32 memory for q8_0.
// Streams the continuation to stdout as tokens come. Text is decoded incrementally: after each
// token the whole generated prefix is decoded and only the new part is printed, holding back a
// trailing incomplete UTF-8 sequence (U+FFFD) until the next token completes it.
import type { Command } from 'commander';
import { loadTokenizer } from '../io/tokenizer.js';
import { generate } from '../nn/generate.js';
import { loadModelWithAdapter } from '../models/adapter.js';
import { numberOption } from './options.js';
import { storeModelWeights } from '../models/stored-weights.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../kernels/weights.js';

/** Turns a growing token list into printable text deltas. */
export class IncrementalDecoder {
  private ids: number[] = [];
  private printed = '';
  constructor(private readonly decode: (ids: number[]) => string) {}

  /** Adds a token; returns the text that became final (possibly ''). */
  push(id: number): string {
    this.ids.push(id);
    let text = this.decode(this.ids);
    // an incomplete multi-byte character decodes as U+FFFD: wait for the bytes that complete it
    while (text.endsWith('\uFFFD')) text = text.slice(0, -1);
    return this.emit(text);
  }

  /** Whatever is left at the end (including a genuinely invalid trailing byte). */
  flush(): string {
    return this.emit(this.decode(this.ids));
  }

  private emit(text: string): string {
    if (text.length <= this.printed.length) return '';
    const delta = text.startsWith(this.printed) ? text.slice(this.printed.length) : text.slice(this.printed.length);
    this.printed = text;
    return delta;
  }
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description(
      'generate text from a Hugging Face LLaMA folder (optionally with a PEFT LoRA adapter), streaming to stdout',
    )
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json, *.safetensors, tokenizer.json)')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors)')
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--max-new-tokens <n>', 'tokens to generate at most', '128')
    .option('--greedy', 'always take the most likely token (the default when no --temperature is given)')
    .option('--temperature <t>', 'sampling temperature (> 0)')
    .option('--top-p <p>', 'nucleus sampling: keep the smallest set of tokens with this much probability', '1')
    .option('--top-k <k>', 'keep only the k most likely tokens (0 = all)', '0')
    .option('--seed <s>', 'random seed for sampling', '0')
    .option(
      '--weights <f>',
      `keep the frozen matrices in memory as ${WEIGHT_FORMATS.join(', ')} (q8_0 / q4_0: GGUF blocks, a row's last block partial where it does not fill 32 values)`,
      'f32',
    )
    .action(
      (o: {
        model: string;
        adapter?: string;
        prompt: string;
        maxNewTokens: string;
        greedy?: boolean;
        temperature?: string;
        topP: string;
        topK: string;
        seed: string;
        weights: string;
      }) => {
        if (!(WEIGHT_FORMATS as readonly string[]).includes(o.weights))
          throw new Error(`--weights must be one of ${WEIGHT_FORMATS.join(', ')}, got '${o.weights}'`);
        const maxNew = numberOption(
          '--max-new-tokens',
          o.maxNewTokens,
          (x) => Number.isInteger(x) && x > 0,
          'a positive integer',
        )!;
        const temperature = numberOption('--temperature', o.temperature, (x) => x > 0, 'a positive number');
        const topP = numberOption('--top-p', o.topP, (x) => x > 0 && x <= 1, 'in (0, 1]')!;
        const topK = numberOption('--top-k', o.topK, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer')!;
        const seed = numberOption('--seed', o.seed, (x) => Number.isInteger(x), 'an integer')!;
        if (o.greedy && temperature !== undefined) throw new Error('--greedy and --temperature exclude each other');
        const { model } = loadModelWithAdapter(o.model, o.adapter);
        storeModelWeights(model, o.weights as WeightFormat);
        const tok = loadTokenizer(o.model);
        if (tok.vocabSize > model.config.vocabSize)
          throw new Error(
            `${o.model}: tokenizer.json has ${tok.vocabSize} tokens but config.json vocab_size is ${model.config.vocabSize}`,
          );
        const ids = tok.encode(o.prompt);
        if (ids.length === 0) throw new Error('--prompt encodes to no tokens');
        const stopIds = [tok.eosId ?? model.config.eosTokenId].filter(
          (x): x is number => x !== null && x !== undefined,
        );
        const dec = new IncrementalDecoder((x) => tok.decode(x, { skipSpecial: true }));
        generate(model, ids, {
          maxNewTokens: maxNew,
          greedy: temperature === undefined,
          ...(temperature !== undefined ? { temperature } : {}),
          topP,
          topK,
          seed,
          stopIds,
          onToken: (id) => {
            const d = dec.push(id);
            if (d) process.stdout.write(d);
          },
        });
        process.stdout.write(dec.flush() + '\n');
      },
    );
}
