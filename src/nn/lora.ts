// A linear layer with an optional LoRA branch: y = x W^T + (alpha / r) * dropout(x) A^T B^T.
// W is frozen whenever LoRA is attached (no gradient is kept for it); A and B are the trainable
// low-rank factors, stored as in PEFT: A [r, in], B [out, r]. B starts at zero so that attaching
// LoRA leaves the model's function unchanged.
import { Tensor } from '../tensor/tensor.js';
import { FrozenWeight } from '../tensor/frozen.js';
import type { Weight } from '../tensor/ops.js';
import { alloc } from '../tensor/engine.js';
import { dropoutMask, linearGroup, type LinearPart } from '../tensor/ops.js';
import { mulberry32, type Random } from '../util/rng.js';

export interface LoraSpec {
  r: number;
  alpha: number;
  dropout: number;
}

export interface LoraFactors {
  A: Tensor;
  B: Tensor;
}

export class LoraLinear {
  lora: LoraFactors | null = null;
  loraScale = 0;
  loraDropout = 0;
  /** Set while training with dropout; null means no dropout (evaluation). */
  dropoutRandom: Random | null = null;
  private merged = false;

  /**
   * The weight is a Tensor (f32) or a FrozenWeight kept in its stored 16-bit format, widened inside
   * the gemm. An optional frozen bias [out] (Qwen2's q/k/v projections) is never trained.
   */
  constructor(
    public readonly name: string,
    public weight: Weight,
    public readonly bias: Tensor | null = null,
  ) {
    if (bias && (bias.shape.length !== 1 || bias.size !== weight.shape[0])) {
      throw new Error(
        `${name}: bias '${bias.name}' has shape [${bias.shape.join(', ')}], the weight needs [${weight.shape[0]}]`,
      );
    }
  }

  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  /** Attaches fresh LoRA factors (A ~ U(-1/sqrt(in), 1/sqrt(in)) as PEFT's default init, B = 0). */
  attachLora(spec: LoraSpec, rand: Random): LoraFactors {
    if (!Number.isInteger(spec.r) || spec.r <= 0)
      throw new Error(`LoRA on ${this.name}: rank must be a positive integer, got ${spec.r}`);
    const bound = 1 / Math.sqrt(this.inFeatures);
    const a = alloc(spec.r * this.inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (rand() * 2 - 1) * bound;
    const A = Tensor.param(a, [spec.r, this.inFeatures], `${this.name}.lora_A.weight`);
    const B = Tensor.param(alloc(this.outFeatures * spec.r), [this.outFeatures, spec.r], `${this.name}.lora_B.weight`);
    this.setLora({ A, B }, spec);
    return this.lora!;
  }

  setLora(f: LoraFactors, spec: LoraSpec): void {
    const r = f.A.shape[0]!;
    if (f.A.shape[1] !== this.inFeatures || f.B.shape[0] !== this.outFeatures || f.B.shape[1] !== r || r !== spec.r) {
      throw new Error(
        `LoRA on ${this.name}: A ${JSON.stringify(f.A.shape)} / B ${JSON.stringify(f.B.shape)} do not fit weight ${JSON.stringify(this.weight.shape)} with rank ${spec.r}`,
      );
    }
    this.lora = f;
    this.loraScale = spec.alpha / spec.r;
    this.loraDropout = spec.dropout;
    if (this.weight instanceof Tensor) this.weight.requiresGrad = false;
  }

  /** y = x W^T (+ LoRA, + bias), or residual + that when a residual is given (one pass fewer than an add). */
  forward(x: Tensor, residual: Tensor | null = null): Tensor {
    return LoraLinear.forwardGroup([this], x, residual ? [residual] : null)[0]!;
  }

  /**
   * Several linears over the same input (q/k/v, gate/up) as one fused gemm (ops.linearGroup); each
   * keeps its own LoRA branch, dropout mask (drawn in the order given) and bias.
   */
  static forwardGroup(mods: readonly LoraLinear[], x: Tensor, residuals: readonly Tensor[] | null = null): Tensor[] {
    const parts: LinearPart[] = mods.map((m, i) => {
      const residual = residuals?.[i] ?? null;
      if (!m.lora || m.merged) return { w: m.weight, name: m.name, residual };
      // Inverted dropout on the LoRA branch's input only. One draw seeds each mask, so that a
      // recomputed forward (activation checkpointing) replays the masks from a few numbers.
      const mask =
        m.dropoutRandom && m.loraDropout > 0
          ? dropoutMask(x.size, m.loraDropout, mulberry32((m.dropoutRandom() * 4294967296) >>> 0))
          : null;
      return { w: m.weight, name: m.name, lora: { a: m.lora.A, b: m.lora.B, scale: m.loraScale, mask }, residual };
    });
    const op = mods.length > 1 ? 'linearGroup' : parts[0]!.lora ? 'loraLinear' : 'linear';
    const ys = linearGroup(x, parts, op);
    mods.forEach((m, i) => {
      // A frozen bias is added in place: the linear ops' backward passes do not read their output.
      if (!m.bias) return;
      const b = m.bias.data;
      const n = b.length;
      const d = ys[i]!.data;
      for (let off = 0; off < d.length; off += n) for (let j = 0; j < n; j++) d[off + j]! += b[j]!;
    });
    return ys;
  }

  /** W += scale * B A (for inference or export); unmerge() undoes it. */
  merge(): void {
    if (!this.lora || this.merged) return;
    this.applyDelta(+1);
    this.merged = true;
  }

  unmerge(): void {
    if (!this.lora || !this.merged) return;
    this.applyDelta(-1);
    this.merged = false;
  }

  get isMerged(): boolean {
    return this.merged;
  }

  /** The dense update scale * B A as [out, in] (float64 accumulation). */
  deltaWeight(): Float32Array {
    const { A, B } = this.lora!;
    const r = A.shape[0]!;
    const out = this.outFeatures;
    const inn = this.inFeatures;
    const d = alloc(out * inn);
    const a = A.data;
    const b = B.data;
    for (let i = 0; i < out; i++) {
      for (let k = 0; k < r; k++) {
        const bik = b[i * r + k]! * this.loraScale;
        if (bik === 0) continue;
        const row = i * inn;
        const arow = k * inn;
        for (let j = 0; j < inn; j++) d[row + j]! += bik * a[arow + j]!;
      }
    }
    return d;
  }

  /** The weight as an f32 Tensor: a FrozenWeight is widened once and replaced (merging writes into it). */
  thaw(): Tensor {
    if (this.weight instanceof FrozenWeight)
      this.weight = Tensor.param(this.weight.toFloat32(), [...this.weight.shape], this.weight.name, false);
    return this.weight;
  }

  private applyDelta(sign: number): void {
    const d = this.deltaWeight();
    const w = this.thaw().data;
    for (let i = 0; i < w.length; i++) w[i]! += sign * d[i]!;
  }
}
