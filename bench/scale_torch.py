"""PyTorch side of bench/scale.ts: forward tokens/s at seq 512, batch 1, on a Hugging Face folder,
best over float32 / bfloat16 and 1 / 2 threads (its best setting on this machine). One JSON line."""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM

folder, seq = sys.argv[1], 512
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
vocab = model.config.vocab_size
ids = torch.randint(3, vocab, (1, seq), generator=torch.Generator().manual_seed(5))
results = []
for dtype in (torch.float32, torch.bfloat16):
    model = model.to(dtype)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            model(input_ids=ids)
            best = float('inf')
            for _ in range(2):
                t0 = time.perf_counter()
                model(input_ids=ids)
                best = min(best, time.perf_counter() - t0)
        results.append({'dtype': str(dtype).replace('torch.', ''), 'threads': threads, 'tok_s': seq / best})
        print(results[-1], file=sys.stderr)
best = max(results, key=lambda r: r['tok_s'])
print(json.dumps({'torch': torch.__version__, 'best': best, 'all': results}))
