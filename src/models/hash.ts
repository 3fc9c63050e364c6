// A content hash of a model's base weights (names, shapes and f32 values in name order): ties a
// split manifest or a compressed model to the exact full model it came from.
import { createHash } from 'node:crypto';
import type { LlamaModel } from '../nn/llama.js';

export function modelHash(model: LlamaModel): string {
  const h = createHash('sha256');
  const tensors = [...model.baseTensors()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, t] of tensors) {
    h.update(`${name}:${t.shape.join('x')};`);
    const d = Float32Array.from(t.data); // f32 bytes whatever the engine's array type
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}
