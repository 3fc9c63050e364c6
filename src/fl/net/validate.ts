// Checks an uploaded adapter before it may reach FedAvg: the exact tensor names, shapes and dtype
// of the server's adapter, every value finite, and (optionally) an L2 norm bound. Returns the
// reason for refusal, or the state.
import { deserializeSafetensors } from '../../io/safetensors.js';
import { firstNonFinite, stateNorm, type LoraState } from '../../fedbiot/lora-state.js';
import { uploadMetricsSchema, type UploadMetrics } from './protocol.js';

export type Checked = { ok: true; state: LoraState; round: number; nonce: string; samples: number; metrics: UploadMetrics } | { ok: false; code: string; reason: string };

export function checkUpload(body: Uint8Array, reference: LoraState, o: { normBound?: number; maxSamples?: number } = {}): Checked {
  let parsed: ReturnType<typeof deserializeSafetensors>;
  try {
    parsed = deserializeSafetensors(body, 'upload');
  } catch (e) {
    return { ok: false, code: 'bad-body', reason: `not a valid safetensors body: ${(e as Error).message}` };
  }
  const md = parsed.metadata;
  const round = Number(md.round);
  const samples = Number(md.samples);
  if (!Number.isInteger(round)) return { ok: false, code: 'bad-metadata', reason: 'metadata "round" is missing or not an integer' };
  if (!md.nonce) return { ok: false, code: 'bad-metadata', reason: 'metadata "nonce" is missing' };
  if (!Number.isInteger(samples) || samples < 1 || samples > (o.maxSamples ?? 1e9)) return { ok: false, code: 'bad-metadata', reason: `metadata "samples" must be a positive integer, got ${md.samples}` };
  let metrics: UploadMetrics;
  try {
    metrics = uploadMetricsSchema.parse(JSON.parse(md.metrics ?? 'null'));
  } catch (e) {
    return { ok: false, code: 'bad-metadata', reason: `metadata "metrics" is invalid: ${(e as Error).message.slice(0, 200)}` };
  }
  const state: LoraState = new Map();
  for (const [name, t] of parsed.tensors) {
    const ref = reference.get(name);
    if (!ref) return { ok: false, code: 'bad-tensors', reason: `unexpected tensor '${name}'` };
    if (t.dtype !== 'F32') return { ok: false, code: 'bad-tensors', reason: `tensor '${name}' has dtype ${t.dtype}, expected F32` };
    if (t.shape.length !== ref.shape.length || t.shape.some((d, i) => d !== ref.shape[i])) {
      return { ok: false, code: 'bad-tensors', reason: `tensor '${name}' has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(ref.shape)}` };
    }
    state.set(name, { shape: [...t.shape], data: Float32Array.from(t.data) });
  }
  for (const name of reference.keys()) if (!state.has(name)) return { ok: false, code: 'bad-tensors', reason: `missing tensor '${name}'` };
  const bad = firstNonFinite(state);
  if (bad) return { ok: false, code: 'non-finite', reason: `tensor '${bad}' holds a NaN or infinite value` };
  if (o.normBound !== undefined) {
    const n = stateNorm(state);
    if (n > o.normBound) return { ok: false, code: 'norm-bound', reason: `adapter L2 norm ${n.toFixed(4)} exceeds the bound ${o.normBound}` };
  }
  return { ok: true, state, round, nonce: md.nonce, samples, metrics };
}
