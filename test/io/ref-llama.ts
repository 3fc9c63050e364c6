/**
 * A deliberately naive LLaMA forward pass over HF-layout weights, used only to check
 * that GGUF exports mean the same model to llama.cpp (rotary layout included).
 */
import type { LlamaConfig } from '../../src/io/hf-config.js';
import type { LoraTensors } from '../../src/io/peft.js';
import type { TensorRecord } from '../../src/io/types.js';

function matvec(w: TensorRecord, x: Float32Array): Float32Array {
  const [out, inp] = w.shape as [number, number];
  const y = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inp; i++) s += w.data[o * inp + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rmsnorm(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

/** Rotary embedding of one head vector at position `pos`: HF rotate-half (or interleaved pairs). */
function rope(v: Float32Array, off: number, hd: number, pos: number, theta: number, interleaved: boolean): void {
  const half = hd / 2;
  for (let i = 0; i < half; i++) {
    const f = pos / Math.pow(theta, (2 * i) / hd);
    const c = Math.cos(f);
    const s = Math.sin(f);
    const a = interleaved ? off + 2 * i : off + i;
    const b = interleaved ? off + 2 * i + 1 : off + i + half;
    const x = v[a]!;
    const y = v[b]!;
    v[a] = x * c - y * s;
    v[b] = x * s + y * c;
  }
}

/** Weights with a LoRA update merged in: W + (alpha / r) * B @ A. */
export function mergeLora(w: Map<string, TensorRecord>, lora: LoraTensors, alpha: number): Map<string, TensorRecord> {
  const out = new Map(w);
  for (const [mp, { A, B }] of lora) {
    const name = `model.${mp}.weight`;
    const base = w.get(name)!;
    const [o, i] = base.shape as [number, number];
    const r = A.shape[0]!;
    const data = Float32Array.from(base.data);
    for (let a = 0; a < o; a++)
      for (let b = 0; b < i; b++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += B.data[a * r + k]! * A.data[k * i + b]!;
        data[a * i + b]! += (alpha / r) * s;
      }
    out.set(name, { ...base, data });
  }
  return out;
}

/** Next-token probabilities after `tokens`. `interleavedRope` applies the wrong layout (negative control). */
export function refNextTokenProbs(
  c: LlamaConfig,
  w: Map<string, TensorRecord>,
  tokens: number[],
  interleavedRope = false,
): Float32Array {
  const H = c.hiddenSize;
  const hd = c.headDim;
  const nh = c.numAttentionHeads;
  const nkv = c.numKeyValueHeads;
  const g = (n: string) => w.get(n)!;
  let xs = tokens.map((t) => g('model.embed_tokens.weight').data.slice(t * H, (t + 1) * H));
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => rmsnorm(x, g(p + 'input_layernorm.weight').data, c.rmsNormEps));
    const q = hs.map((h) => matvec(g(p + 'self_attn.q_proj.weight'), h));
    const k = hs.map((h) => matvec(g(p + 'self_attn.k_proj.weight'), h));
    const v = hs.map((h) => matvec(g(p + 'self_attn.v_proj.weight'), h));
    q.forEach((qq, pos) => {
      for (let h = 0; h < nh; h++) rope(qq, h * hd, hd, pos, c.ropeTheta, interleavedRope);
    });
    k.forEach((kk, pos) => {
      for (let h = 0; h < nkv; h++) rope(kk, h * hd, hd, pos, c.ropeTheta, interleavedRope);
    });
    xs = xs.map((x, t) => {
      const att = new Float32Array(nh * hd);
      for (let h = 0; h < nh; h++) {
        const kh = Math.floor(h / (nh / nkv));
        const sc: number[] = [];
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < hd; i++) d += q[t]![h * hd + i]! * k[s]![kh * hd + i]!;
          sc.push(d / Math.sqrt(hd));
        }
        const m = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) att[h * hd + i]! += (e[s]! / z) * v[s]![kh * hd + i]!;
      }
      const o = matvec(g(p + 'self_attn.o_proj.weight'), att);
      const x1 = x.map((val, i) => val + o[i]!);
      const h2 = rmsnorm(x1, g(p + 'post_attention_layernorm.weight').data, c.rmsNormEps);
      const gate = matvec(g(p + 'mlp.gate_proj.weight'), h2);
      const up = matvec(g(p + 'mlp.up_proj.weight'), h2);
      const act = gate.map((a, i) => (a / (1 + Math.exp(-a))) * up[i]!);
      const d = matvec(g(p + 'mlp.down_proj.weight'), act);
      return x1.map((val, i) => val + d[i]!);
    });
  }
  const last = rmsnorm(xs[xs.length - 1]!, g('model.norm.weight').data, c.rmsNormEps);
  const logits = matvec(c.tieWordEmbeddings ? g('model.embed_tokens.weight') : g('lm_head.weight'), last);
  const m = Math.max(...logits);
  const e = logits.map((z) => Math.exp(z - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}
