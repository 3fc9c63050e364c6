// Tensor and the gradient tape.
//
// A Tensor is a shape over a contiguous Float32Array. Parameters own their storage for life;
// intermediate results borrow theirs from the engine's buffer pool and hand it back when the tape is
// reset (after each optimiser step), so a steady-state training step allocates no large arrays.
// Using an intermediate after that is an error that names it.
//
// The tape is a flat list of backward closures in creation order (like micrograd/tinygrad, but with
// coarse fused ops). backward() runs them in reverse. Gradients accumulate (+=) so that a tensor used
// twice collects both contributions.
import { alloc, release, take } from './engine.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly size: number;
  /** Frozen tensors can still pass gradient through to their inputs; they just keep none. */
  requiresGrad: boolean;
  name: string;
  /** Views share storage (and gradient) with the tensor they were made from. */
  private readonly base: Tensor | null;
  private _data: Float32Array | null;
  private _grad: Float32Array | null = null;
  /** Intermediates return their storage to the pool when disposed. */
  readonly pooled: boolean;

  constructor(
    data: Float32Array,
    shape: Shape,
    opts: { requiresGrad?: boolean; name?: string; pooled?: boolean; base?: Tensor } = {},
  ) {
    const n = numel(shape);
    if (data.length !== n) {
      throw new Error(
        `Tensor ${opts.name ?? ''}: data length ${data.length} does not match shape ${shapeStr(shape)} (${n} elements)`,
      );
    }
    this.shape = [...shape];
    this.size = n;
    this._data = data;
    this.requiresGrad = opts.requiresGrad ?? false;
    this.name = opts.name ?? `t${this.id}`;
    this.pooled = opts.pooled ?? false;
    this.base = opts.base ?? null;
  }

  /** A trainable (or frozen, with requiresGrad=false) parameter that owns its storage. */
  static param(data: Float32Array, shape: Shape, name: string, requiresGrad = true): Tensor {
    return new Tensor(data, shape, { requiresGrad, name });
  }

  static zeros(shape: Shape, name?: string): Tensor {
    return new Tensor(alloc(numel(shape)), shape, { name });
  }

  get data(): Float32Array {
    if (this.base) return this.base.data;
    if (!this._data)
      throw new Error(
        `tensor '${this.name}' ${shapeStr(this.shape)} was used after it was released (it belonged to an earlier step)`,
      );
    return this._data;
  }

  /** The tensor that owns this one's storage (itself unless it is a view). */
  get storageOwner(): Tensor {
    return this.base ?? this;
  }

  get disposed(): boolean {
    return this.base ? this.base.disposed : this._data === null;
  }

  /** The gradient buffer, or null when none has been accumulated yet. */
  get grad(): Float32Array | null {
    if (this.base) return this.base.grad;
    return this._grad;
  }

  /** The gradient buffer, created (zeroed) on first use. */
  gradBuffer(): Float32Array {
    if (this.base) return this.base.gradBuffer();
    if (!this._grad) this._grad = this.pooled ? take(this.size, true) : alloc(this.size);
    return this._grad;
  }

  zeroGrad(): void {
    if (this.base) return;
    this._grad?.fill(0);
  }

  /** Drops the gradient buffer (parameters keep theirs across steps unless asked). */
  dropGrad(): void {
    if (this.base) return;
    if (this._grad && this.pooled) release(this._grad);
    this._grad = null;
  }

  /** Returns pooled storage; later use of this tensor throws. */
  dispose(): void {
    if (this.base || !this._data) return;
    if (this.pooled) {
      release(this._data);
      if (this._grad) release(this._grad);
    }
    this._data = null;
    this._grad = null;
  }

  /** Same storage, another shape with the same number of elements. */
  view(shape: Shape): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`view of '${this.name}': cannot view ${shapeStr(this.shape)} as ${shapeStr(shape)}`);
    }
    return new Tensor(this.data, shape, { requiresGrad: this.requiresGrad, name: this.name, base: this.base ?? this });
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new Error(`item() of '${this.name}' needs one element, it has shape ${shapeStr(this.shape)}`);
    return this.data[0]!;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }
}

// ---- the tape --------------------------------------------------------------------------------

type BackwardFn = () => void;

class Tape {
  enabled = true;
  /** A node runs when any of its outputs received a gradient. */
  private nodes: { outs: readonly Tensor[]; backward: BackwardFn }[] = [];
  private intermediates: Tensor[] = [];

  record(outs: readonly Tensor[], backward: BackwardFn): void {
    this.nodes.push({ outs, backward });
  }

  track(t: Tensor): void {
    this.intermediates.push(t);
  }

  /** Runs every recorded backward in reverse order, seeding d(loss)/d(loss) = 1. */
  backward(loss: Tensor, seed = 1): void {
    if (loss.size !== 1) throw new Error(`backward(): the loss must be a scalar, got shape ${shapeStr(loss.shape)}`);
    if (!loss.requiresGrad) throw new Error(`backward(): loss '${loss.name}' does not depend on any trainable tensor`);
    loss.gradBuffer()[0]! += seed;
    this.runBackward(this.nodes);
  }

  private runBackward(nodes: readonly { outs: readonly Tensor[]; backward: BackwardFn }[]): void {
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      if (node.outs.some((o) => o.grad)) node.backward();
      // Every reader of these outputs was recorded later and has run: their gradients are spent, so
      // the pool gets them back now rather than at reset (a step then holds the activations plus a
      // few gradients, not a gradient for every activation).
      for (const o of node.outs) if (o.pooled) o.dropGrad();
    }
  }

  /**
   * Activation checkpointing: runs fn without recording and keeps only its result; the backward
   * runs fn again on a graph of its own and backpropagates the result's gradient through it. The
   * step then holds fn's inputs and result instead of every intermediate of fn, for a second run of
   * fn. fn must compute the same values both times (it replays any random draws) and read only
   * tensors that are still alive at the backward (its inputs, parameters).
   */
  recompute(fn: () => Tensor): Tensor {
    if (!this.enabled) return fn();
    const inter0 = this.intermediates.length;
    this.enabled = false;
    let out: Tensor;
    try {
      out = fn();
    } finally {
      this.enabled = true;
    }
    const keep = out.storageOwner;
    for (const t of this.intermediates.splice(inter0)) {
      if (t === keep) this.intermediates.push(t);
      else t.dispose();
    }
    out.requiresGrad = true;
    this.record([out], () => {
      const outer = { nodes: this.nodes, intermediates: this.intermediates };
      this.nodes = [];
      this.intermediates = [];
      try {
        const again = fn();
        if (again.size !== out.size)
          throw new Error(`recompute: '${out.name}' came out with another shape the second time`);
        if (!again.requiresGrad) return; // nothing in fn trains and its inputs take no gradient
        again.gradBuffer().set(out.grad!);
        this.runBackward(this.nodes);
      } finally {
        for (const t of this.intermediates) t.dispose();
        this.nodes = outer.nodes;
        this.intermediates = outer.intermediates;
      }
    });
    return out;
  }

  /**
   * Runs fn and, when it recorded no backward (frozen weights, input without grad), returns the
   * intermediates it created to the pool at once, keeping only its result: a frozen stack of layers
   * then holds one layer's activations instead of all of them until the end of the step.
   */
  transient(fn: () => Tensor): Tensor {
    const nodes0 = this.nodes.length;
    const inter0 = this.intermediates.length;
    const out = fn();
    if (this.nodes.length !== nodes0 || out.requiresGrad) return out; // a backward may read them
    const keep = out.storageOwner;
    const created = this.intermediates.splice(inter0);
    for (const t of created) {
      if (t === keep) this.intermediates.push(t);
      else t.dispose();
    }
    return out;
  }

  /** Forgets the recorded graph and returns every intermediate's storage to the pool. */
  reset(): void {
    for (const t of this.intermediates) t.dispose();
    this.intermediates = [];
    this.nodes = [];
  }

  get size(): number {
    return this.nodes.length;
  }
}

export const tape = new Tape();

/** Runs fn without recording a graph (inference, teacher passes). */
export function noGrad<T>(fn: () => T): T {
  const prev = tape.enabled;
  tape.enabled = false;
  try {
    return fn();
  } finally {
    tape.enabled = prev;
  }
}

/** A pooled intermediate result; it requires grad when recording and any input does. */
export function result(shape: Shape, inputs: readonly Tensor[], name: string, zero = false): Tensor {
  const needs = tape.enabled && inputs.some((t) => t.requiresGrad);
  const out = new Tensor(take(numel(shape), zero), shape, { requiresGrad: needs, name, pooled: true });
  tape.track(out);
  return out;
}

/** Registers the backward of an op whose output requires grad. */
export function onBackward(out: Tensor, fn: BackwardFn): void {
  if (out.requiresGrad) tape.record([out], fn);
}

/** Registers one backward for an op with several outputs; it runs once, when any of them has a gradient. */
export function onBackwardAny(outs: readonly Tensor[], fn: BackwardFn): void {
  if (outs.some((o) => o.requiresGrad)) tape.record(outs, fn);
}

/** A pooled scratch array that lives until the tape is reset (saved activations such as rstd). */
export function saved(n: number, name: string): Float32Array {
  const t = new Tensor(take(n), [n], { name, pooled: true });
  tape.track(t);
  return t.data;
}
