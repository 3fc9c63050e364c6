// Shared shapes of the data pipeline: what loaders produce, what encoders consume.

/**
 * What the data code needs from a tokenizer: the part of the io Tokenizer it uses, so a loaded
 * tokenizer is one as it is. Absent special tokens are undefined.
 */
export interface TokenizerLike {
  encode(text: string, opts?: { addSpecial?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
}

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Which on-disk form a record came from. */
export type RecordFormat = 'alpaca' | 'gsm8k' | 'chat';

/**
 * One prompt/response pair, whatever form it was stored in.
 * - alpaca: instruction / input as given.
 * - gsm8k: instruction = question, input = ''.
 * - chat: instruction = content of the last user turn before the final assistant turn, input = '',
 *   messages = every turn before the final assistant turn (so templates can render history).
 */
export interface Example {
  id: string;
  format: RecordFormat;
  instruction: string;
  input: string;
  messages?: ChatMessage[];
  response: string;
  category: string;
  meta?: Record<string, unknown>;
}

/** Label value that the loss ignores (PyTorch/HF convention); defined with the loss in nn/lm. */
export { IGNORE_INDEX } from '../nn/lm.js';
