// Checks an uploaded adapter before it may reach aggregation: the exact tensor names and shapes of
// the server's adapter, every value finite, and (optionally) an L2 norm bound. Returns the reason
// for refusal, or the state. Both transports run every update through it (a compressed update
// through checkCompressedUpload, which decodes it against the round's adapter first).
import { firstNonFinite, stateNorm, type LoraState } from '../../fedbiot/lora-state.js';
import { decodeUpdate } from '../payload.js';
import { UPDATE_HEADER, updateMetaSchema } from './protocol.js';

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
  return checkValues({ ok: true, state, round, nonce: parsed.nonce, samples }, o);
}

/** Every value finite, and the L2 norm within the bound when one is set. */
function checkValues(c: Checked & { ok: true }, o: { normBound?: number }): Checked {
  const bad = firstNonFinite(c.state);
  if (bad) return { ok: false, code: 'non-finite', reason: `tensor '${bad}' holds a NaN or infinite value` };
  if (o.normBound !== undefined) {
    const n = stateNorm(c.state);
    if (n > o.normBound)
      return {
        ok: false,
        code: 'norm-bound',
        reason: `adapter L2 norm ${n.toFixed(4)} exceeds the bound ${o.normBound}`,
      };
  }
  return c;
}

/**
 * A compressed update (compression.ts): `meta` is its UpdateMeta as received (round, nonce,
 * samples), `read` decodes the body against the round's adapter (the layout and base version are
 * checked there). The same value checks as a plain update follow.
 */
export function checkCompressedUpload(
  body: Uint8Array,
  meta: unknown,
  read: (body: Uint8Array) => LoraState,
  o: { normBound?: number } = {},
): Checked {
  const m = updateMetaSchema.safeParse(meta);
  if (!m.success)
    return {
      ok: false,
      code: 'bad-metadata',
      reason: `the update's ${UPDATE_HEADER} header is missing or invalid: ${m.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    };
  let state: LoraState;
  try {
    state = read(body);
  } catch (e) {
    return { ok: false, code: 'bad-body', reason: `not a valid compressed update: ${(e as Error).message}` };
  }
  return checkValues({ ok: true, state, ...m.data }, o);
}
