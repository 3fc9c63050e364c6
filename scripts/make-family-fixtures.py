#!/usr/bin/env python3
"""Writes the model-family parity fixtures under test/fixtures/families/ (run by hand, not by CI).

For each family (llama, mistral, qwen2, qwen3) and config layout (transformers 4: top-level
rope_theta + rope_scaling; transformers 5: rope_parameters) it builds a tiny random checkpoint with
Hugging Face transformers, saves it (F32 or BF16, tied or untied embeddings, GQA, rope scaling),
optionally with a PEFT LoRA adapter, and records transformers' own NLL on a fixed token sequence,
computed from the saved folder as transformers loads it. test/models/families.test.ts compares the
engine against these numbers (relative 1e-4) without Python.

Weights are drawn larger than transformers' init (std 0.02 would make every position look alike),
and each fixture also records the NLL with plain rope (`nll_plain_rope`), so the tests can show
that rope scaling actually matters at the tolerance used.

A fixture whose sequence is longer than its sliding window (mistral-v5-window) also records the
NLL with full attention on the same weights (`nll_full_attention`: the window must matter), and the
gradient of the adapter NLL with respect to every LoRA factor (`grad_adapter`: first values and L2
norm per tensor, under the engine's names), so the backward of windowed attention is checked too.

Setup (once):  python3 -m venv .cache/torch-venv
               .cache/torch-venv/bin/pip install torch transformers peft safetensors
Run:           .cache/torch-venv/bin/python scripts/make-family-fixtures.py [NAME ...]
               (names: only those fixtures are rewritten; the others keep their files)
"""
import json
import math
import os
import shutil
import sys

import torch
import transformers
import peft
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'families')
SEQ = 32
VOCAB = 96

BASE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)

# name -> (model_type, layout, dtype, extra config fields, rope parameters (None = default), adapter?)
FIXTURES = {
    'llama-v5-f32': ('llama', 5, 'float32', dict(tie_word_embeddings=False), dict(rope_type='default', rope_theta=500000.0), True),
    'llama-v4-bf16-tied-llama3': ('llama', 4, 'bfloat16', dict(tie_word_embeddings=True, head_dim=16, num_attention_heads=2, num_key_value_heads=1),
                                  dict(rope_type='llama3', rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64), False),
    'llama-v5-llama3': ('llama', 5, 'float32', dict(tie_word_embeddings=True, head_dim=16, num_attention_heads=2, num_key_value_heads=1),
                        dict(rope_type='llama3', rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64), True),
    'llama-v5-linear': ('llama', 5, 'float32', dict(), dict(rope_type='linear', rope_theta=10000.0, factor=4.0), False),
    'llama-v4-dynamic': ('llama', 4, 'float32', dict(max_position_embeddings=16), dict(rope_type='dynamic', rope_theta=10000.0, factor=2.0), False),
    'llama-v5-yarn': ('llama', 5, 'float32', dict(), dict(rope_type='yarn', rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32), False),
    'llama-v4-attn-bias': ('llama', 4, 'float32', dict(attention_bias=True), dict(rope_type='default', rope_theta=10000.0), True),
    'mistral-v4-f32': ('mistral', 4, 'float32', dict(sliding_window=64), dict(rope_type='default', rope_theta=1000000.0), False),
    'mistral-v5-window': ('mistral', 5, 'float32', dict(sliding_window=8), dict(rope_type='default', rope_theta=10000.0), True),
    'qwen2-v5-bf16-tied': ('qwen2', 5, 'bfloat16', dict(tie_word_embeddings=True, use_sliding_window=False), dict(rope_type='default', rope_theta=1000000.0), True),
    'qwen2-v4-f32': ('qwen2', 4, 'float32', dict(tie_word_embeddings=False), dict(rope_type='default', rope_theta=10000.0), False),
    'qwen3-v5-f32-tied': ('qwen3', 5, 'float32', dict(tie_word_embeddings=True, head_dim=16), dict(rope_type='default', rope_theta=1000000.0), True),
    'qwen3-v4-bf16-yarn': ('qwen3', 4, 'bfloat16', dict(head_dim=16, attention_bias=True),
                           dict(rope_type='yarn', rope_theta=1000000.0, factor=4.0, original_max_position_embeddings=32), False),
}

TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                std = 1.0 if 'embed' in name else 1.5 / math.sqrt(p.shape[1])
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith('bias'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:  # norm weights
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))


def nll(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
        return float(out.loss), [float(v) for v in out.logits[0, -1, :8]]


def adapter_grads(model, ids):
    """d NLL / d LoRA factor for every factor: first 6 values and the L2 norm, by the engine's name."""
    for n, p in model.named_parameters():
        p.requires_grad_('lora_' in n)
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    out = {}
    for n, p in model.named_parameters():
        if 'lora_' in n:
            name = n.replace('base_model.model.', '', 1).replace('.default', '')
            g = p.grad.detach().double().flatten()
            out[name] = {'first': [float(v) for v in g[:6]], 'norm': float(g.norm())}
    return out


def to_v4_layout(cfg):
    """transformers 4's config.json: rope_theta and rope_scaling at the top level, torch_dtype."""
    rp = cfg.pop('rope_parameters')
    cfg['rope_theta'] = rp.pop('rope_theta')
    cfg['rope_scaling'] = None if rp.get('rope_type', 'default') == 'default' else rp
    if 'dtype' in cfg:
        cfg['torch_dtype'] = cfg.pop('dtype')
    cfg['transformers_version'] = '4.46.0'
    return cfg


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation='eager').eval()


def main(only):
    unknown = [n for n in only if n not in FIXTURES]
    if unknown:
        sys.exit(f'unknown fixture(s) {unknown}; known: {list(FIXTURES)}')
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    for i, (name, (mtype, layout, dtype, extra, rope, with_adapter)) in enumerate(FIXTURES.items()):
        if only and name not in only:
            continue
        out = os.path.join(ROOT, name)
        shutil.rmtree(out, ignore_errors=True)
        fields = {**BASE, **extra, 'rope_parameters': dict(rope)}
        config = AutoConfig.for_model(mtype, **fields)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomize(model, 1000 + i)
        if config.tie_word_embeddings:
            model.tie_weights()
        model.to(getattr(torch, dtype)).save_pretrained(out, safe_serialization=True)
        cfg_path = os.path.join(out, 'config.json')
        with open(cfg_path) as f:
            cfg = json.load(f)
        if layout == 4:
            cfg = to_v4_layout(cfg)
            with open(cfg_path, 'w') as f:
                json.dump(cfg, f, indent=2, sort_keys=True)
        gen = os.path.join(out, 'generation_config.json')
        if os.path.exists(gen):
            os.remove(gen)

        ids = torch.randint(3, VOCAB, (1, SEQ), generator=torch.Generator().manual_seed(7 + i))
        loaded = load(out)
        ref = {'transformers': transformers.__version__, 'torch': torch.__version__, 'layout': layout, 'dtype': dtype,
               'ids': ids[0].tolist()}
        ref['nll'], ref['last_logits'] = nll(loaded, ids)

        # the same weights with plain rope (and the same theta): how much the scaling moves the NLL
        plain_cfg = dict(cfg)
        plain_cfg.pop('rope_scaling', None)
        plain_cfg['rope_parameters'] = {'rope_type': 'default', 'rope_theta': rope['rope_theta']}
        plain_cfg.pop('rope_theta', None)
        plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(mtype, **{k: v for k, v in plain_cfg.items() if k not in ('model_type', 'architectures', 'transformers_version', 'torch_dtype', 'dtype')}), dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict(), strict=False)
        if plain.config.tie_word_embeddings:
            plain.tie_weights()
        ref['nll_plain_rope'] = nll(plain.eval(), ids)[0]
        windowed = extra.get('sliding_window') is not None and extra['sliding_window'] < SEQ
        if windowed:
            full = load(out)
            full.config.sliding_window = None
            ref['nll_full_attention'] = nll(full, ids)[0]

        if with_adapter:
            lcfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, task_type='CAUSAL_LM')
            pm = peft.get_peft_model(load(out), lcfg)
            g = torch.Generator().manual_seed(99 + i)
            with torch.no_grad():
                for n, p in pm.named_parameters():
                    if 'lora_B' in n or 'lora_A' in n:
                        p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            pm.save_pretrained(os.path.join(out, 'adapter'))
            os.remove(os.path.join(out, 'adapter', 'README.md'))
            acfg_path = os.path.join(out, 'adapter', 'adapter_config.json')
            with open(acfg_path) as f:
                acfg = json.load(f)
            acfg['base_model_name_or_path'] = name  # not this machine's path
            with open(acfg_path, 'w') as f:
                json.dump(acfg, f, indent=2, sort_keys=True)
            back = peft.PeftModel.from_pretrained(load(out), os.path.join(out, 'adapter')).eval()
            ref['nll_adapter'], ref['last_logits_adapter'] = nll(back, ids)
            if windowed:
                ref['grad_adapter'] = adapter_grads(back, ids)
            ref['peft'] = peft.__version__
        with open(os.path.join(out, 'reference.json'), 'w') as f:
            json.dump(ref, f, indent=1)
        print(name, 'nll', ref['nll'], 'plain rope', ref['nll_plain_rope'], 'adapter', ref.get('nll_adapter'), file=sys.stderr)


if __name__ == '__main__':
    main(sys.argv[1:])
