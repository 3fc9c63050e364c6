// Clipping and Gaussian noise on adapter updates (differences from the round's starting adapter).
import { scaleStateInPlace, stateNorm, type LoraState } from '../fedbiot/lora-state.js';
import type { Prg } from '../util/prg.js';

/** Scales the update in place so its L2 norm is at most clip; returns the norm before clipping. */
export function clipUpdate(update: LoraState, clip: number): number {
  if (!(clip > 0)) throw new Error(`clipUpdate: clip norm must be positive, got ${clip}`);
  const norm = stateNorm(update);
  if (norm > clip) scaleStateInPlace(update, clip / norm);
  return norm;
}

/** Adds N(0, std^2) to every value in place, drawn from the seeded stream in tensor order. */
export function addGaussianNoise(state: LoraState, std: number, prg: Prg): void {
  if (!(std >= 0)) throw new Error(`addGaussianNoise: std must be >= 0, got ${std}`);
  if (std === 0) return;
  for (const v of state.values()) for (let i = 0; i < v.data.length; i++) v.data[i]! += std * prg.normal();
}
