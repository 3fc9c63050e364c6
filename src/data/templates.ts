// Prompt templates: turn an Example's prompt side into the exact text the model conditions on.
// Every template ends the prompt with a newline so the response starts on a fresh token,
// whatever the tokenizer does with leading spaces.

import type { ChatMessage, Example } from './types.js';
import { loadModelChatTemplate } from './chat-template.js';

export interface PromptTemplate {
  readonly name: string;
  render(ex: Pick<Example, 'instruction' | 'input' | 'messages' | 'category'>): string;
  /** The rendered text carries the model's special tokens (bos, turn markers): the encoder adds none. */
  readonly includesSpecialTokens?: boolean;
  /** Prompt and trained response text of an exchange, when the template wraps the response too (chat templates). */
  renderExchange?(ex: Pick<Example, 'instruction' | 'input' | 'messages' | 'category' | 'response'>): {
    prompt: string;
    response: string;
  };
}

const ALPACA_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';

const ALPACA_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

const QA_TEMPLATE = 'Question: {instruction}\nAnswer:\n';
const QA_WITH_INPUT = 'Context: {input}\nQuestion: {instruction}\nAnswer:\n';

/** Fills {instruction}, {input} and {category}; other braces are left alone. */
export function fillTemplate(tpl: string, fields: { instruction: string; input: string; category?: string }): string {
  return tpl.replace(
    /\{(instruction|input|category)\}/g,
    (_, k: 'instruction' | 'input' | 'category') => fields[k] ?? '',
  );
}

/** Multi-turn history as "### User:" / "### Assistant:" blocks, ending with the assistant cue. */
export function renderChat(messages: ChatMessage[]): string {
  const label = { system: 'System', user: 'User', assistant: 'Assistant' } as const;
  return messages.map((m) => `### ${label[m.role]}:\n${m.content}\n\n`).join('') + '### Assistant:\n';
}

/** True when the chat history holds more than one plain user turn (so a flat template loses it). */
function needsChat(messages: ChatMessage[] | undefined): messages is ChatMessage[] {
  return messages !== undefined && !(messages.length === 1 && messages[0]!.role === 'user');
}

/**
 * A template from strings with {instruction}, {input} and {category} placeholders. withoutInput is
 * used when input is empty (default: withInput). Chat examples with history use renderChat.
 */
export function customTemplate(withInput: string, withoutInput: string = withInput, name = 'custom'): PromptTemplate {
  return {
    name,
    render(ex) {
      if (needsChat(ex.messages)) return renderChat(ex.messages);
      const tpl = ex.input.trim() === '' ? withoutInput : withInput;
      return fillTemplate(tpl, ex);
    },
  };
}

/** Stanford Alpaca's prompt, with or without the input block. */
export const alpacaTemplate: PromptTemplate = customTemplate(ALPACA_WITH_INPUT, ALPACA_NO_INPUT, 'alpaca');

/** "Question: ...\nAnswer:\n", used for GSM8K and short-answer QA. */
export const qaTemplate: PromptTemplate = customTemplate(QA_WITH_INPUT, QA_TEMPLATE, 'qa');

/** Chat template: renders the history (a single user turn becomes a one-turn history). */
export const chatTemplate: PromptTemplate = {
  name: 'chat',
  render(ex) {
    return renderChat(
      ex.messages ?? [{ role: 'user', content: ex.input ? `${ex.instruction}\n\n${ex.input}` : ex.instruction }],
    );
  },
};

/**
 * Looks a template up by name ('alpaca' | 'qa' | 'gsm8k' | 'chat'), or builds a custom one from a
 * string containing '{'. 'model' is the model's own chat template (from the folder `modelDir`).
 */
export function getTemplate(nameOrString: string, modelDir?: string): PromptTemplate {
  switch (nameOrString) {
    case 'model':
      if (modelDir === undefined)
        throw new Error(
          'prompt template "model" (the model\'s chat template) needs a Hugging Face model folder with a tokenizer_config.json',
        );
      return loadModelChatTemplate(modelDir);
    case 'alpaca':
      return alpacaTemplate;
    case 'qa':
    case 'gsm8k':
      return qaTemplate;
    case 'chat':
      return chatTemplate;
    default:
      if (nameOrString.includes('{')) return customTemplate(nameOrString.replace(/\\n/g, '\n'));
      throw new Error(
        `unknown prompt template "${nameOrString}" (alpaca, qa, gsm8k, chat, model, or a string with {instruction})`,
      );
  }
}

/** The template an example's form suggests: GSM8K gets qa, chat gets chat, the rest Alpaca. */
export function defaultTemplateFor(ex: Pick<Example, 'format'>): PromptTemplate {
  return ex.format === 'gsm8k' ? qaTemplate : ex.format === 'chat' ? chatTemplate : alpacaTemplate;
}
