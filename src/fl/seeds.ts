// A client's seeds. The networked server sends clientDataSeed to each client at join, and the
// client derives its dropout seeds from it, so a simulated client and a networked one with the
// same name draw the same batches and masks.
import { deriveSeed } from '../util/rng.js';

export function clientDataSeed(runSeed: number, client: string): number {
  return deriveSeed(runSeed, `client-${client}`);
}

export function clientDropoutSeed(dataSeed: number, round: number): number {
  return deriveSeed(dataSeed, `dropout-${round}`);
}

/** The seed of a compressed upload's stochastic rounding in a round. */
export function compressedUploadSeed(dataSeed: number, round: number): number {
  return deriveSeed(dataSeed, `upload-${round}`);
}
