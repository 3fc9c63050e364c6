// The engine context: which kernels run, what array type they work on, and the buffer pool.
//
// Training uses the native float32 kernels. Tests can switch the whole engine to the float64
// reference kernels (useReference64) to check composite computations against finite differences:
// in that mode every array the engine allocates is a Float64Array at runtime even though the
// types say Float32Array (all allocation goes through alloc(), so nothing else needs to know).
import type { Kernels } from '../kernels/api.js';
import { getKernels, referenceKernels } from '../kernels/index.js';

type ArrayCtor = Float32ArrayConstructor | Float64ArrayConstructor;

interface EngineState {
  kernels: Kernels<Float32Array>;
  Arr: ArrayCtor;
  pool: BufferPool;
}

/**
 * Reuses large arrays by exact length. Fresh multi-megabyte Float32Arrays cost page faults on every
 * step; recycling the same lengths makes steady-state steps allocation-free. What it holds is
 * capped: when a returned array would pass the cap, the lengths least recently returned are
 * evicted first (a workload that changed shape, e.g. training then evaluation, leaves stale lengths
 * behind; the current ones are the ones worth keeping).
 */
export class BufferPool {
  private free = new Map<number, Float32Array[]>();
  private bytesHeld = 0;
  /** Bytes taken and not yet given back (activations, scratch), and their high-water mark. */
  private bytesLive = 0;
  private bytesPeak = 0;
  constructor(
    private readonly Arr: ArrayCtor,
    private readonly maxBytes = defaultPoolBytes(),
  ) {}

  take(n: number, zero: boolean): Float32Array {
    this.bytesLive += n * this.Arr.BYTES_PER_ELEMENT;
    if (this.bytesLive > this.bytesPeak) this.bytesPeak = this.bytesLive;
    const list = this.free.get(n);
    const buf = list?.pop();
    if (buf) {
      this.bytesHeld -= buf.byteLength;
      if (zero) buf.fill(0);
      return buf;
    }
    return new this.Arr(n) as Float32Array; // new arrays are zero already
  }

  give(buf: Float32Array): void {
    this.bytesLive -= buf.byteLength;
    if (buf.length < 1024) return; // small arrays are cheap: let the GC have them
    if (buf.byteLength > this.maxBytes) return;
    let list = this.free.get(buf.length);
    if (list)
      this.free.delete(buf.length); // re-inserted below: Map order is recency of return
    else list = [];
    this.free.set(buf.length, list);
    for (const [n, stale] of this.free) {
      if (this.bytesHeld + buf.byteLength <= this.maxBytes) break;
      if (n === buf.length) continue;
      for (const b of stale) this.bytesHeld -= b.byteLength;
      this.free.delete(n);
    }
    while (this.bytesHeld + buf.byteLength > this.maxBytes && list.length > 0) this.bytesHeld -= list.pop()!.byteLength;
    list.push(buf);
    this.bytesHeld += buf.byteLength;
  }

  clear(): void {
    this.free.clear();
    this.bytesHeld = 0;
  }

  get heldBytes(): number {
    return this.bytesHeld;
  }

  get liveBytes(): number {
    return this.bytesLive;
  }

  /** The most bytes live at once since the last resetPeak(). */
  get peakBytes(): number {
    return this.bytesPeak;
  }

  resetPeak(): void {
    this.bytesPeak = this.bytesLive;
  }
}

/** The pool's cap: FEDBIOT_POOL_MB, else 1 GiB (a training step of the benchmark model needs about 0.6). */
function defaultPoolBytes(): number {
  const mb = Number(process.env.FEDBIOT_POOL_MB);
  return Number.isFinite(mb) && mb > 0 ? mb * 1024 ** 2 : 1024 ** 3;
}

let state: EngineState | null = null;

function current(): EngineState {
  if (!state) {
    state = { kernels: getKernels(), Arr: Float32Array, pool: new BufferPool(Float32Array) };
  }
  return state;
}

export function kernels(): Kernels<Float32Array> {
  return current().kernels;
}

/** A fresh (zeroed) array of the engine's element type, not pooled. */
export function alloc(n: number): Float32Array {
  return new (current().Arr)(n) as Float32Array;
}

/** An array from the pool; zeroed when asked. Give it back with release(). */
export function take(n: number, zero = false): Float32Array {
  return current().pool.take(n, zero);
}

export function release(buf: Float32Array): void {
  current().pool.give(buf);
}

/**
 * The most bytes of pooled arrays (activations, their gradients, scratch) live at once since the
 * last resetPeakTensorBytes(): the measured working memory of a training step, without weights.
 */
export function peakTensorBytes(): number {
  return current().pool.peakBytes;
}

/** Bytes of pooled arrays live now. */
export function liveTensorBytes(): number {
  return current().pool.liveBytes;
}

/** Lets the garbage collector have every array the pool holds (between independent runs). */
export function clearTensorPool(): void {
  current().pool.clear();
}

export function resetPeakTensorBytes(): void {
  current().pool.resetPeak();
}

/** Copies a Float32Array (or number list) into an engine array. */
export function fromValues(values: ArrayLike<number>): Float32Array {
  const out = alloc(values.length);
  out.set(values);
  return out;
}

export function isFloat64(): boolean {
  return current().Arr === Float64Array;
}

/** Switches to float64 reference kernels (tests). Returns a function that restores the previous engine. */
export function useReference64(): () => void {
  const prev = state;
  state = {
    kernels: referenceKernels<Float64Array>() as unknown as Kernels<Float32Array>,
    Arr: Float64Array,
    pool: new BufferPool(Float64Array),
  };
  return () => {
    state = prev;
  };
}

/** Switches to float32 reference kernels (the fallback engine). */
export function useReference32(): () => void {
  const prev = state;
  state = { kernels: referenceKernels<Float32Array>(), Arr: Float32Array, pool: new BufferPool(Float32Array) };
  return () => {
    state = prev;
  };
}

export function setThreads(n: number): void {
  current().kernels.setThreads(n);
}

export function getThreads(): number {
  return current().kernels.getThreads();
}
