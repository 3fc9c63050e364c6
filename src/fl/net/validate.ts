// Checks an uploaded adapter before it may reach aggregation: the exact tensor names and shapes of
// the server's adapter, every value finite, and (optionally) an L2 norm bound. Returns the reason
// for refusal, or the state. Both transports run every update through it.
import { firstNonFinite, stateNorm, type LoraState } from '../../fedbiot/lora-state.js';
import { decodeUpdate } from '../payload.js';

export type Checked =
  | { ok: true; state: LoraState; round: number; nonce: string; samples: number }
  | { ok: false; code: string; reason: string };

export function checkUpload(body: Uint8Array, reference: LoraState, o: { normBound?: number } = {}): Checked {
  let parsed: ReturnType<typeof decodeUpdate>;
  try {
    parsed = decodeUpdate(body);
  } catch (e) {
    return { ok: false, code: 'bad-body', reason: `not a valid update body: ${(e as Error).message}` };
  }
  const round = Number(parsed.round);
  const samples = Number(parsed.samples);
  if (!Number.isInteger(round))
    return { ok: false, code: 'bad-metadata', reason: 'metadata "round" is missing or not an integer' };
  if (!parsed.nonce) return { ok: false, code: 'bad-metadata', reason: 'metadata "nonce" is missing' };
  if (!Number.isSafeInteger(samples) || samples < 1)
    return {
      ok: false,
      code: 'bad-metadata',
      reason: `metadata "samples" must be a positive integer, got ${parsed.samples}`,
    };
  for (const [name, t] of parsed.state) {
    const ref = reference.get(name);
    if (!ref) return { ok: false, code: 'bad-tensors', reason: `unexpected tensor '${name}'` };
    if (t.shape.length !== ref.shape.length || t.shape.some((d, i) => d !== ref.shape[i])) {
      return {
        ok: false,
        code: 'bad-tensors',
        reason: `tensor '${name}' has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(ref.shape)}`,
      };
    }
  }
  for (const name of reference.keys())
    if (!parsed.state.has(name)) return { ok: false, code: 'bad-tensors', reason: `missing tensor '${name}'` };
  let state: LoraState;
  try {
    state = parsed.codec.decode(parsed.state, 'upload');
  } catch (e) {
    return { ok: false, code: 'bad-tensors', reason: (e as Error).message };
  }
  const bad = firstNonFinite(state);
  if (bad) return { ok: false, code: 'non-finite', reason: `tensor '${bad}' holds a NaN or infinite value` };
  if (o.normBound !== undefined) {
    const n = stateNorm(state);
    if (n > o.normBound)
      return {
        ok: false,
        code: 'norm-bound',
        reason: `adapter L2 norm ${n.toFixed(4)} exceeds the bound ${o.normBound}`,
      };
  }
  return { ok: true, state, round, nonce: parsed.nonce, samples };
}
