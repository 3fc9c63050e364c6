// Top-k sparsification and the error feedback that makes it safe to use for training updates.
//
// topK keeps the k entries of largest magnitude (ties broken by the lower index, so the choice is
// deterministic). ErrorFeedback is the sender's memory of what it did not transmit: before encoding,
// the residual left over from earlier rounds is added to the new update; after encoding, the
// residual becomes (what it wanted to send) - (what the receiver will decode). Nothing is lost, only
// delayed (Stich et al. 2018, "Sparsified SGD with memory"). It lives on the client, which is the
// only side that knows it.

/** Number of entries a fraction keeps (at least one of a non-empty tensor). */
export function topKCount(count: number, fraction: number): number {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`top-k fraction must be in (0, 1], got ${fraction}`);
  return count === 0 ? 0 : Math.min(count, Math.max(1, Math.ceil(fraction * count)));
}

/** Indices (ascending) of the k entries of largest |x|. */
export function topK(x: Float32Array, k: number): Uint32Array {
  const n = x.length;
  if (k >= n) return Uint32Array.from({ length: n }, (_, i) => i);
  if (k <= 0) return new Uint32Array(0);
  // The k-th largest magnitude by quickselect on a copy, then a pass in index order.
  const mags = new Float32Array(n);
  for (let i = 0; i < n; i++) mags[i] = Math.abs(x[i]!);
  const thr = kthLargest(mags, k);
  const out = new Uint32Array(k);
  let above = 0;
  for (let i = 0; i < n; i++) if (Math.abs(x[i]!) > thr) above++;
  let ties = k - above;
  let j = 0;
  for (let i = 0; i < n && j < k; i++) {
    const a = Math.abs(x[i]!);
    if (a > thr) out[j++] = i;
    else if (a === thr && ties > 0) {
      out[j++] = i;
      ties--;
    }
  }
  return out;
}

/** The k-th largest value (1-based) of `a`, which it reorders. */
function kthLargest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target]!;
}

/** The sender's untransmitted remainder, per tensor name. */
export class ErrorFeedback {
  private readonly residual = new Map<string, Float32Array>();

  /** x + the residual carried for `name` (a new array; x is not changed). */
  compensate(name: string, x: Float32Array): Float32Array {
    const out = Float32Array.from(x);
    const r = this.residual.get(name);
    if (r) {
      if (r.length !== x.length)
        throw new RangeError(`error feedback for '${name}' holds ${r.length} values, the update has ${x.length}`);
      for (let i = 0; i < out.length; i++) out[i] = out[i]! + r[i]!;
    }
    return out;
  }

  /** Keeps what was wanted but not received: wanted - received. */
  record(name: string, wanted: Float32Array, received: Float32Array): void {
    const r = new Float32Array(wanted.length);
    for (let i = 0; i < r.length; i++) r[i] = wanted[i]! - received[i]!;
    this.residual.set(name, r);
  }

  get(name: string): Float32Array | undefined {
    return this.residual.get(name);
  }

  /** For checkpoints: the residuals by name. */
  state(): Map<string, Float32Array> {
    return new Map([...this.residual].map(([k, v]) => [k, Float32Array.from(v)]));
  }

  static fromState(s: ReadonlyMap<string, Float32Array>): ErrorFeedback {
    const f = new ErrorFeedback();
    for (const [k, v] of s) f.residual.set(k, Float32Array.from(v));
    return f;
  }
}
