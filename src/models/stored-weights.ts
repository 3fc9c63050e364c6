// Keeping a model's frozen matrices in a stored format (f16, GGUF Q8_0 / Q4_0) instead of f32: the
// gemm widens them while packing and the embedding widens only the rows it looks up, so the model
// costs its stored bytes in memory. Used for the quantized emulator and `fedbiot generate --weights`.
import { Tensor } from '../tensor/tensor.js';
import { FrozenWeight } from '../tensor/frozen.js';
import type { Weight } from '../tensor/ops.js';
import type { WeightFormat } from '../kernels/weights.js';
import { LINEAR_NAMES, type LlamaModel } from '../nn/llama.js';

/**
 * A weight [N, K] in `format` (a stored one is widened and re-encoded; one already in the format, or
 * any when f32 is asked for, is returned as it is). Rows that do not fill whole 32-value blocks are
 * Q8_0 / Q4_0 too, their last block partial (src/kernels/weights.ts).
 */
export function storeWeight(w: Weight, format: WeightFormat, name: string): Weight {
  if (format === 'f32' || w.shape.length !== 2) return w;
  const [N, K] = w.shape as [number, number];
  if (w instanceof FrozenWeight && w.format === format) return w;
  return FrozenWeight.encode(format, w instanceof Tensor ? w.data : w.toFloat32(), [N, K], name);
}

/**
 * Stores every frozen matrix of a model (linears, embedding table, LM head) in `format`, in place;
 * a function instead of a format decides per weight.
 */
export function storeModelWeights(
  model: LlamaModel,
  format: WeightFormat | ((w: Weight, name: string) => Weight),
): LlamaModel {
  const store = typeof format === 'function' ? format : (w: Weight, name: string) => storeWeight(w, format, name);
  const tied = model.lmHead === model.embedTokens;
  model.embedTokens = store(model.embedTokens, 'model.embed_tokens.weight');
  model.lmHead = tied ? model.embedTokens : store(model.lmHead, 'lm_head.weight');
  for (const l of model.layers)
    for (const n of LINEAR_NAMES) l.linears[n].weight = store(l.linears[n].weight, l.linears[n].name);
  return model;
}

/** Bytes a model's weights take in memory as stored (shared tensors once), LoRA included. */
export function heldBytes(model: LlamaModel): number {
  const seen = new Set<object>();
  let n = 0;
  const add = (t: Tensor | FrozenWeight) => {
    const key = t instanceof Tensor ? t.data : t.bytes;
    if (seen.has(key)) return;
    seen.add(key);
    n += t instanceof Tensor ? t.size * 4 : t.bytes.length;
  };
  add(model.embedTokens);
  add(model.lmHead);
  add(model.finalNorm);
  for (const l of model.layers) {
    for (const t of l.storedTensors()) add(t);
    for (const t of l.loraParams()) add(t);
  }
  return n;
}
