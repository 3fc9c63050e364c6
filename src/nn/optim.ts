// Optimisers over the trainable parameters only: AdamW (decoupled weight decay, bias correction) and
// SGD (optional momentum), with global-norm gradient clipping. Gradient accumulation = several
// backward() calls, then step({ accumulated: n }) which averages by 1/n inside the fused kernel.
import type { Tensor } from '../tensor/tensor.js';
import { kernels, alloc } from '../tensor/engine.js';

export interface AdamWOptions {
  kind: 'adamw';
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface SgdOptions {
  kind: 'sgd';
  lr: number;
  momentum?: number;
  weightDecay?: number;
}

export type OptimizerOptions = AdamWOptions | SgdOptions;

export interface StepOptions {
  /** Backward passes summed into the gradients since the last step (their mean is applied). */
  accumulated?: number;
  /** Clip the global L2 norm of the (averaged) gradient to this value; 0 or undefined = no clipping. */
  maxGradNorm?: number;
  /**
   * The global L2 norm of the averaged gradient, when the caller has it already (one clip across
   * several optimisers): used for the check and the clip instead of a second pass over the gradients.
   */
  gradNorm?: number;
  /** Overrides the learning rate for this step (schedules). */
  lr?: number;
}

export class Optimizer {
  readonly params: Tensor[];
  private readonly state = new Map<Tensor, { m: Float32Array; v: Float32Array | null }>();
  steps = 0;
  lastGradNorm = 0;

  constructor(
    params: Tensor[],
    public readonly opts: OptimizerOptions,
  ) {
    this.params = params.filter((p) => p.requiresGrad);
    if (this.params.length === 0) throw new Error('optimizer: no trainable parameters were given');
    if (!(opts.lr >= 0) || !Number.isFinite(opts.lr))
      throw new Error(`optimizer: lr must be a finite non-negative number, got ${opts.lr}`);
  }

  /** Moment buffers by parameter name (for checkpoints). */
  exportState(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const p of this.params) {
      const st = this.state.get(p);
      if (!st) continue;
      out.set(`${p.name}.m`, st.m);
      if (st.v) out.set(`${p.name}.v`, st.v);
    }
    return out;
  }

  importState(s: ReadonlyMap<string, Float32Array>, steps: number): void {
    for (const p of this.params) {
      const m = s.get(`${p.name}.m`);
      if (!m) continue;
      const v = s.get(`${p.name}.v`) ?? null;
      if (m.length !== p.size || (v && v.length !== p.size))
        throw new Error(`optimizer state for '${p.name}' has the wrong size`);
      this.state.set(p, { m: Float32Array.from(m), v: v ? Float32Array.from(v) : null });
    }
    this.steps = steps;
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** Global L2 norm of the gradients (summed in double precision). */
  gradNorm(scale = 1): number {
    const k = kernels();
    let s = 0;
    for (const p of this.params) if (p.grad) s += k.sumSquares(p.grad, p.size);
    return Math.sqrt(s) * scale;
  }

  step(o: StepOptions = {}): void {
    const k = kernels();
    const acc = o.accumulated ?? 1;
    let gradScale = 1 / acc;
    const norm = o.gradNorm ?? this.gradNorm(gradScale);
    this.lastGradNorm = norm;
    if (!Number.isFinite(norm))
      throw new Error(`optimizer: gradient norm is ${norm} (non-finite gradients); step skipped`);
    if (o.maxGradNorm && o.maxGradNorm > 0 && norm > o.maxGradNorm) gradScale *= o.maxGradNorm / (norm + 1e-6);
    this.steps++;
    const lr = o.lr ?? this.opts.lr;
    for (const p of this.params) {
      if (!p.grad) continue;
      let st = this.state.get(p);
      if (this.opts.kind === 'adamw') {
        if (!st) this.state.set(p, (st = { m: alloc(p.size), v: alloc(p.size) }));
        k.adamwStep({
          param: p.data,
          grad: p.grad,
          m: st.m,
          v: st.v!,
          n: p.size,
          lr,
          beta1: this.opts.beta1 ?? 0.9,
          beta2: this.opts.beta2 ?? 0.999,
          eps: this.opts.eps ?? 1e-8,
          weightDecay: this.opts.weightDecay ?? 0,
          step: this.steps,
          gradScale,
        });
      } else {
        const mom = this.opts.momentum ?? 0;
        if (!st && mom > 0) this.state.set(p, (st = { m: alloc(p.size), v: null }));
        k.sgdStep({
          param: p.data,
          grad: p.grad,
          buf: mom > 0 ? st!.m : null,
          n: p.size,
          lr,
          momentum: mom,
          weightDecay: this.opts.weightDecay ?? 0,
          gradScale,
        });
      }
    }
  }
}
