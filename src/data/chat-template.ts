// A model's own chat template (the Jinja `chat_template` of tokenizer_config.json, or
// chat_template.jinja / chat_template.json next to it), rendered with @huggingface/jinja as
// transformers.js does. The rendered text already holds the model's special tokens (bos,
// turn markers), so the encoder adds none of its own.
//
// Loss on the assistant's tokens only: the prompt is the conversation rendered with the generation
// cue; the response is what the full conversation adds after it, up to the end of the assistant's
// content plus the special token that closes the turn (<|eot_id|>, <|im_end|>, <end_of_turn>, eos).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import type { ChatMessage, Example } from './types.js';
import type { PromptTemplate } from './templates.js';

export interface ModelChatTemplate extends PromptTemplate {
  readonly includesSpecialTokens: true;
  /** Prompt text and trained response text of one exchange. */
  renderExchange(ex: Pick<Example, 'instruction' | 'input' | 'messages' | 'category' | 'response'>): {
    prompt: string;
    response: string;
  };
}

type Json = Record<string, unknown>;

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function readJson(file: string): Json {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** The template source: chat_template.jinja, chat_template.json, or tokenizer_config.json's chat_template (the "default" one of a list). */
function templateSource(dir: string, cfg: Json, cfgFile: string): { source: string; where: string } {
  const jinja = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinja)) return { source: fs.readFileSync(jinja, 'utf8'), where: jinja };
  const jsonFile = path.join(dir, 'chat_template.json');
  let t: unknown = cfg.chat_template;
  let where = cfgFile;
  if (fs.existsSync(jsonFile)) {
    t = readJson(jsonFile).chat_template;
    where = jsonFile;
  }
  if (Array.isArray(t)) {
    const d = t.find((e) => e && typeof e === 'object' && (e as Json).name === 'default') as Json | undefined;
    t = d?.template;
  }
  if (typeof t !== 'string' || t.length === 0)
    throw new Error(
      `${where}: no chat_template (data.template "model" needs the model's chat template; use alpaca, qa or chat instead)`,
    );
  return { source: t, where };
}

function messagesOf(ex: Pick<Example, 'instruction' | 'input' | 'messages'>): ChatMessage[] {
  return ex.messages ?? [{ role: 'user', content: ex.input ? `${ex.instruction}\n\n${ex.input}` : ex.instruction }];
}

/** Loads the chat template of the model folder `dir` (its tokenizer_config.json names bos/eos and the special tokens). */
export function loadModelChatTemplate(dir: string): ModelChatTemplate {
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  if (!fs.existsSync(cfgFile))
    throw new Error(`${cfgFile} is missing: data.template "model" needs the model's tokenizer_config.json`);
  const cfg = readJson(cfgFile);
  const { source, where } = templateSource(dir, cfg, cfgFile);
  let tpl: Template;
  try {
    tpl = new Template(source);
  } catch (e) {
    throw new Error(`${where}: chat_template does not parse: ${(e as Error).message}`);
  }
  const bos = tokenText(cfg.bos_token) ?? '';
  const eos = tokenText(cfg.eos_token) ?? '';
  // Strings that close a turn: eos and every special added token (longest first, so <|im_end|> wins over shorter ones).
  const specials = new Set<string>(eos ? [eos] : []);
  const added = cfg.added_tokens_decoder;
  if (added && typeof added === 'object') {
    for (const v of Object.values(added as Json)) {
      const t = v as Json;
      if (t && t.special === true && typeof t.content === 'string') specials.add(t.content);
    }
  }
  const closers = [...specials].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);

  const render = (messages: ChatMessage[], addGenerationPrompt: boolean): string => {
    try {
      return tpl.render({ messages, add_generation_prompt: addGenerationPrompt, bos_token: bos, eos_token: eos });
    } catch (e) {
      throw new Error(`${where}: rendering the chat template failed: ${(e as Error).message}`);
    }
  };

  return {
    name: 'model',
    includesSpecialTokens: true,
    render(ex) {
      return render(messagesOf(ex), true);
    },
    renderExchange(ex) {
      const history = messagesOf(ex);
      const prompt = render(history, true);
      const full = render([...history, { role: 'assistant', content: ex.response }], false);
      if (!full.startsWith(prompt)) {
        throw new Error(
          `${where}: the conversation rendered with the assistant's answer does not start with the prompt rendered with add_generation_prompt, so the answer's tokens cannot be told apart`,
        );
      }
      let at = full.indexOf(ex.response, prompt.length);
      let len = ex.response.length;
      if (at < 0) {
        const trimmed = ex.response.trim();
        at = full.indexOf(trimmed, prompt.length);
        len = trimmed.length;
      }
      if (at < 0)
        throw new Error(
          `${where}: the chat template does not reproduce the assistant's answer verbatim (example ${JSON.stringify(ex.response.slice(0, 40))})`,
        );
      let end = at + len;
      const closer = closers.find((c) => full.startsWith(c, end));
      if (closer) end += closer.length;
      return { prompt, response: full.slice(prompt.length, end) };
    },
  };
}
