# The same kernel workloads as bench/kernels.ts, in PyTorch, for a side-by-side ratio.
# Prints one JSON object {name: seconds per call}.
# Usage: python kernels_torch.py THREADS '[[M, N, K, transA, transB, label], ...]'
import json, sys, time
import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
out = {}

def bench(name, fn, min_time=0.3):
    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    times.sort()
    out[name] = times[len(times) // 2]

for (M, N, K, tA, tB, label) in json.loads(sys.argv[2]):
    a = torch.randn(K, M).t() if tA else torch.randn(M, K)
    b = torch.randn(N, K).t() if tB else torch.randn(K, N)
    c = torch.empty(M, N)
    bench(label, lambda: torch.matmul(a, b, out=c))

B, T, H, Dh = 4, 256, 8, 64
q = torch.randn(B, H, T, Dh, requires_grad=True)
k = torch.randn(B, H, T, Dh, requires_grad=True)
v = torch.randn(B, H, T, Dh, requires_grad=True)
causal = torch.triu(torch.full((T, T), float('-inf')), 1)
g = torch.randn(B, H, T, Dh)
def attn():
    s = (q @ k.transpose(-1, -2)) * (Dh ** -0.5) + causal
    o = torch.softmax(s, -1) @ v
    o.backward(g)
bench('attention fwd+bwd', attn)

x = torch.randn(1024, 512, requires_grad=True)
w = torch.randn(512, requires_grad=True)
gx = torch.randn(1024, 512)
def rms():
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    y.backward(gx)
bench('rmsnorm fwd+bwd', rms)

logits = torch.randn(1024, 4096, requires_grad=True)
tgt = torch.randint(0, 4096, (1024,))
def ce():
    F.cross_entropy(logits, tgt).backward()
bench('cross-entropy fwd+bwd', ce)

p = torch.nn.Parameter(torch.randn(30_000_000))
p.grad = torch.randn(30_000_000)
opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.1)
bench('adamw 30M', opt.step)

print(json.dumps(out))
