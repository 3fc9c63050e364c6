// A content hash of a model's base weights (names, shapes and f32 values in name order): ties a
// split manifest or a compressed model to the exact full model it came from.
import { createHash } from 'node:crypto';
import type { LlamaModel } from '../nn/llama.js';
import { FrozenWeight } from '../tensor/frozen.js';

export function modelHash(model: LlamaModel): string {
  const h = createHash('sha256');
  const weights = [...model.baseWeights()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, w] of weights) {
    h.update(`${name}:${w.shape.join('x')};`);
    // f32 bytes whatever the engine's array type; a stored-format weight is widened one at a time
    const d = w instanceof FrozenWeight ? w.toFloat32() : Float32Array.from(w.data);
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}
