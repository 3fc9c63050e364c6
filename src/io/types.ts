/**
 * Plain tensor records used by the file-format layer. They carry no engine
 * state: `data` is always f32 in memory; `dtype` names the on-disk encoding
 * (on read: what the file held; on write: what to encode to).
 */
export type DType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface TensorRecord {
  dtype: DType;
  /** Row-major shape, outermost first (PyTorch / Hugging Face order). */
  shape: number[];
  data: Float32Array;
}

/** Shape and encoding of a stored tensor without its data (for lazy readers). */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/** Error raised for malformed or inconsistent files; `file` names the source. */
export class FormatError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'FormatError';
  }
}

/** Number of elements of a shape, or throws if a dim is bad or the product is unsafe. */
export function numel(shape: readonly number[], what = 'shape'): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`${what}: bad dimension ${String(d)}`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new RangeError(`${what}: element count overflows`);
  }
  return n;
}
