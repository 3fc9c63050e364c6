// A frozen weight kept in its stored format (f32, bf16, f16, GGUF q8_0 / q4_0): the matmuls widen
// it inside the gemm, so a bf16 or quantized checkpoint costs its own bytes in memory, not an f32
// copy. Frozen means no gradient of its own; linear layers over it still pass the gradient to their
// input (ops.linear / ops.loraLinear take a FrozenWeight wherever they take a weight Tensor).
import { decodeWeight, encodeWeight, weightRowBytes, type WeightFormat } from '../kernels/weights.js';
import { shapeStr, type Shape } from './tensor.js';

export class FrozenWeight {
  /** Always false: the ops test `requiresGrad` on weights, and this one never gets a gradient. */
  readonly requiresGrad = false;
  readonly shape: Shape;

  /**
   * bytes: N rows of K values in `format` (layouts in src/kernels/weights.ts), e.g. a safetensors
   * BF16 tensor's bytes as they are, or a GGUF Q8_0 / Q4_0 tensor's blocks. Not copied.
   */
  constructor(
    readonly format: WeightFormat,
    readonly bytes: Uint8Array,
    shape: readonly [number, number],
    public name: string,
  ) {
    const [N, K] = shape;
    if (!Number.isInteger(N) || !Number.isInteger(K) || N <= 0 || K <= 0)
      throw new Error(`frozen weight '${name}': bad shape ${shapeStr(shape)}`);
    const want = N * weightRowBytes(format, K);
    if (bytes.length !== want)
      throw new Error(`frozen weight '${name}' ${shapeStr(shape)} ${format}: ${bytes.length} bytes, expected ${want}`);
    this.shape = [N, K];
  }

  /** Encodes an f32 matrix [N, K] (rounding / quantizing as weights.ts says). */
  static encode(
    format: WeightFormat,
    values: ArrayLike<number>,
    shape: readonly [number, number],
    name: string,
  ): FrozenWeight {
    return new FrozenWeight(format, encodeWeight(format, values, shape[0], shape[1]), shape, name);
  }

  get outFeatures(): number {
    return this.shape[0]!;
  }

  get inFeatures(): number {
    return this.shape[1]!;
  }

  /** The weight widened to f32 [N, K] (export, merging, tests; the matmuls never need it). */
  toFloat32(): Float32Array {
    return decodeWeight(this.format, this.bytes, this.shape[0]!, this.shape[1]!);
  }
}
