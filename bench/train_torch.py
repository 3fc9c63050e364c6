#!/usr/bin/python3
"""Plain-PyTorch twin of bench/train.ts: the same LLaMA model, weights, data and AdamW steps.

    /usr/bin/python3 bench/train_torch.py DIR [--threads N] [--steps S --warmup W]

DIR holds what bench/train.ts exported: manifest.json, weights.bin (raw little-endian float32
tensors back to back, offsets in the manifest) and ids.bin (int32 [B*T] token ids). No
transformers dependency: the model is written out with Hugging Face LLaMA semantics (rotate-half
RoPE, RMSNorm x * rsqrt(mean(x^2) + eps) * w, SwiGLU MLP, causal softmax attention, untied head,
next-token cross-entropy averaged over the B*(T-1) predicted positions, LoRA
y = x W^T + (alpha/r) x A^T B^T). Prints per-step losses and timings; the last line is JSON.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    with open(os.path.join(args.dir, "manifest.json")) as fh:
        man = json.load(fh)
    cfg = man["config"]
    B, T = man["B"], man["T"]
    steps = args.steps if args.steps is not None else man["steps"]
    warmup = args.warmup if args.warmup is not None else man["warmup"]
    V, D = cfg["vocabSize"], cfg["hiddenSize"]
    H, Hkv, Dh = cfg["numHeads"], cfg["numKvHeads"], cfg["headDim"]
    L = cfg["numLayers"]
    eps = cfg["rmsNormEps"]

    # One read per tensor, so the whole file is never held twice (keeps peak RSS honest).
    P = {}
    wpath = os.path.join(args.dir, "weights.bin")
    for t in man["tensors"]:
        n = int(np.prod(t["shape"]))
        arr = np.fromfile(wpath, dtype="<f4", count=n, offset=t["offset"]).reshape(t["shape"])
        P[t["name"]] = torch.from_numpy(arr).requires_grad_(bool(t["trainable"]))
    ids = torch.from_numpy(np.fromfile(os.path.join(args.dir, "ids.bin"), dtype="<i4").astype(np.int64)).view(B, T)

    lora = man["lora"]
    lscale = lora["alpha"] / lora["r"] if lora else 0.0

    def linear(x, name):
        y = F.linear(x, P[name + ".weight"])
        a = P.get(name + ".lora_A.weight")
        if a is not None:
            y = y + F.linear(F.linear(x, a), P[name + ".lora_B.weight"]) * lscale
        return y

    def rmsnorm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    # Rotary tables as Hugging Face builds them (inv_freq = base^(-2i/Dh), emb = cat(freqs, freqs)).
    inv_freq = 1.0 / (cfg["ropeTheta"] ** (torch.arange(0, Dh, 2, dtype=torch.float32) / Dh))
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos()[None, None, :, :]  # [1, 1, T, Dh]
    sin = emb.sin()[None, None, :, :]

    def rotate_half(x):
        x1, x2 = x[..., : Dh // 2], x[..., Dh // 2:]
        return torch.cat((-x2, x1), dim=-1)

    causal = torch.full((T, T), float("-inf")).triu(1)
    attn_scale = 1.0 / (Dh ** 0.5)
    groups = H // Hkv

    def forward(ids):
        x = F.embedding(ids, P["model.embed_tokens.weight"])
        for i in range(L):
            p = f"model.layers.{i}"
            h = rmsnorm(x, P[f"{p}.input_layernorm.weight"])
            q = linear(h, f"{p}.self_attn.q_proj").view(B, T, H, Dh).transpose(1, 2)
            k = linear(h, f"{p}.self_attn.k_proj").view(B, T, Hkv, Dh).transpose(1, 2)
            v = linear(h, f"{p}.self_attn.v_proj").view(B, T, Hkv, Dh).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if groups > 1:
                k = k.repeat_interleave(groups, dim=1)
                v = v.repeat_interleave(groups, dim=1)
            s = torch.matmul(q, k.transpose(-1, -2)) * attn_scale + causal
            a = torch.matmul(torch.softmax(s, dim=-1), v)
            a = a.transpose(1, 2).reshape(B, T, H * Dh)
            x = x + linear(a, f"{p}.self_attn.o_proj")
            h = rmsnorm(x, P[f"{p}.post_attention_layernorm.weight"])
            m = F.silu(linear(h, f"{p}.mlp.gate_proj")) * linear(h, f"{p}.mlp.up_proj")
            x = x + linear(m, f"{p}.mlp.down_proj")
        x = rmsnorm(x, P["model.norm.weight"])
        logits = F.linear(x, P["lm_head.weight"])
        return F.cross_entropy(logits[:, :-1, :].reshape(-1, V), ids[:, 1:].reshape(-1))

    trainable = [t for t in P.values() if t.requires_grad]
    ad = man["adamw"]
    opt = torch.optim.AdamW(trainable, lr=ad["lr"], betas=(ad["beta1"], ad["beta2"]), eps=ad["eps"],
                            weight_decay=ad["weightDecay"], foreach=False)

    losses, step_ms, fwd_ms, bwd_ms, opt_ms = [], [], [], [], []
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        loss = forward(ids)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        losses.append(loss.item())
        step_ms.append((t3 - t0) * 1e3)
        fwd_ms.append((t1 - t0) * 1e3)
        bwd_ms.append((t2 - t1) * 1e3)
        opt_ms.append((t3 - t2) * 1e3)
        sys.stderr.write(f"  [torch {man['mode']}] step {s + 1}/{warmup + steps}{' (warm-up)' if s < warmup else ''}: "
                         f"loss {losses[-1]:.6f}, {step_ms[-1]:.0f} ms (fwd {fwd_ms[-1]:.0f}, bwd {bwd_ms[-1]:.0f}, opt {opt_ms[-1]:.0f})\n")
    timed = sum(step_ms[warmup:]) / 1e3
    res = {
        "losses": losses,
        "step_ms": step_ms,
        "fwd_ms": fwd_ms,
        "bwd_ms": bwd_ms,
        "opt_ms": opt_ms,
        "timed_seconds": timed,
        "tok_s": B * T * steps / timed,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "torch_version": torch.__version__,
        "trainable": sum(t.numel() for t in trainable),
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
