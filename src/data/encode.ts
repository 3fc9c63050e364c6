// Causal-LM encoding with response-only loss:
//   inputIds = [bos] + prompt + response + [eos]
//   labels   = -100 on bos and prompt, the token itself on response and eos.
// Labels are NOT shifted (Hugging Face convention): position i's label is the token at i, and the
// loss predicts it from position i-1. Batches also carry shifted `targets` for engines that
// want the next-token target at each position directly.

import { IGNORE_INDEX, type Example, type TokenizerLike } from './types.js';
import { defaultTemplateFor, type PromptTemplate } from './templates.js';

export interface EncodedExample {
  id: string;
  category: string;
  inputIds: number[];
  labels: number[];
  /** Tokens before the first response token (bos included). */
  promptLength: number;
  truncated: boolean;
}

export interface EncodeOptions {
  /** Default: chosen per example by its form (defaultTemplateFor). */
  template?: PromptTemplate;
  /** Hard cap on inputIds length (default: no cap). */
  maxLength?: number;
  /** Prepend bos when the tokenizer has one (default true). */
  addBos?: boolean;
  /** Append eos when the tokenizer has one (default true). */
  addEos?: boolean;
}

export interface EncodeReport {
  total: number;
  encoded: number;
  /** Examples cut to maxLength (response tail removed). */
  truncated: number;
  /** Examples left with no response token after truncation, hence dropped. */
  dropped: number;
  warnings: string[];
}

/** Encodes one example. Returns the encoding even if no response token survives (check labels). */
export function encodeExample(ex: Example, tok: TokenizerLike, opts: EncodeOptions = {}): EncodedExample {
  const template = opts.template ?? defaultTemplateFor(ex);
  // A model's chat template renders bos, turn markers and the turn's closing token itself.
  const exchange = template.renderExchange
    ? template.renderExchange(ex)
    : { prompt: template.render(ex), response: ex.response };
  const own = template.includesSpecialTokens === true;
  const prompt = tok.encode(exchange.prompt, { addSpecial: false });
  const response = tok.encode(exchange.response, { addSpecial: false });
  const head: number[] = !own && opts.addBos !== false && tok.bosId !== undefined ? [tok.bosId] : [];
  const tail: number[] = !own && opts.addEos !== false && tok.eosId !== undefined ? [tok.eosId] : [];
  let inputIds = [...head, ...prompt, ...response, ...tail];
  let labels = [...head.map(() => IGNORE_INDEX), ...prompt.map(() => IGNORE_INDEX), ...response, ...tail];
  const promptLength = head.length + prompt.length;
  let truncated = false;
  if (opts.maxLength !== undefined && inputIds.length > opts.maxLength) {
    // Keep the start of the prompt and cut the response tail (its eos goes too: the model must not
    // learn to stop in mid-answer).
    inputIds = inputIds.slice(0, opts.maxLength);
    labels = labels.slice(0, opts.maxLength);
    truncated = true;
  }
  return {
    id: ex.id,
    category: ex.category,
    inputIds,
    labels,
    promptLength: Math.min(promptLength, inputIds.length),
    truncated,
  };
}

/** Encodes a data set, dropping examples with no trainable token left, and reports counts. */
export function encodeExamples(
  examples: readonly Example[],
  tok: TokenizerLike,
  opts: EncodeOptions = {},
): { items: EncodedExample[]; report: EncodeReport } {
  const items: EncodedExample[] = [];
  let truncated = 0;
  let dropped = 0;
  for (const ex of examples) {
    const enc = encodeExample(ex, tok, opts);
    if (enc.truncated) truncated++;
    if (!enc.labels.some((l) => l !== IGNORE_INDEX)) {
      dropped++;
      continue;
    }
    items.push(enc);
  }
  const warnings: string[] = [];
  if (truncated > 0) {
    warnings.push(
      `${truncated} of ${examples.length} examples were longer than maxLength=${opts.maxLength} and lost the end of their response`,
    );
  }
  if (dropped > 0) {
    warnings.push(
      `${dropped} examples had no response token left (prompt alone fills maxLength, or empty response) and were dropped`,
    );
  }
  return { items, report: { total: examples.length, encoded: items.length, truncated, dropped, warnings } };
}

/** Prompt-only encoding for generation: [bos] + prompt, truncated from the LEFT if too long. */
export function encodePrompt(
  ex: Pick<Example, 'instruction' | 'input' | 'messages' | 'category' | 'format'>,
  tok: TokenizerLike,
  opts: { template?: PromptTemplate; maxLength?: number; addBos?: boolean } = {},
): number[] {
  const template = opts.template ?? defaultTemplateFor(ex);
  const ids = tok.encode(template.render(ex), { addSpecial: false });
  const head = !template.includesSpecialTokens && opts.addBos !== false && tok.bosId !== undefined ? [tok.bosId] : [];
  const max = opts.maxLength;
  // For generation the end of the prompt (the answer cue) matters most.
  const body = max !== undefined && head.length + ids.length > max ? ids.slice(ids.length - (max - head.length)) : ids;
  return [...head, ...body];
}
