// Shared shapes of the data pipeline: what loaders produce, what encoders consume.

/** What the data code needs from a tokenizer. The real ones in src/io fit this structurally. */
export interface TokenizerLike {
  encode(text: string, opts?: { addSpecial?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
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
