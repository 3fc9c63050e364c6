// Padding/collation and a deterministic, resumable batch iterator.

import { deriveSeed, mulberry32, shuffle } from '../util/rng.js';
import { IGNORE_INDEX, type TokenizerLike } from './types.js';
import type { EncodedExample } from './encode.js';
import type { TokenBatch } from '../nn/lm.js';

export interface Batch {
  batchSize: number;
  /** Columns: the longest sequence in the batch (or padTo). */
  seqLen: number;
  /** [batchSize * seqLen], right-padded with padId. */
  inputIds: Int32Array;
  /** [batchSize * seqLen], unshifted labels, -100 on prompt and padding. */
  labels: Int32Array;
  /** [batchSize * seqLen], 1 on real tokens, 0 on padding (key mask). */
  attentionMask: Uint8Array;
  /** Real length of each row. */
  lengths: number[];
  ids: string[];
  /** Number of tokens that carry a loss (non -100 labels after the first position of a row; the model shifts them). */
  lossTokens: number;
}

/** Pad id to use: the tokenizer's pad, else eos, else 0 (padding is masked anyway). */
export function resolvePadId(tok: Pick<TokenizerLike, 'padId' | 'eosId'>): number {
  return tok.padId ?? tok.eosId ?? 0;
}

/** Right-pads a list of encoded examples into one batch. */
export function collate(items: readonly EncodedExample[], opts: { padId: number; padTo?: number }): Batch {
  if (items.length === 0) throw new Error('collate: empty batch');
  const longest = Math.max(...items.map((it) => it.inputIds.length));
  const T = Math.max(longest, opts.padTo ?? 0);
  const B = items.length;
  const inputIds = new Int32Array(B * T).fill(opts.padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const attentionMask = new Uint8Array(B * T);
  let lossTokens = 0;
  items.forEach((it, b) => {
    const n = it.inputIds.length;
    const row = b * T;
    for (let t = 0; t < n; t++) {
      inputIds[row + t] = it.inputIds[t]!;
      labels[row + t] = it.labels[t]!;
      attentionMask[row + t] = 1;
      if (t > 0 && it.labels[t] !== IGNORE_INDEX) lossTokens++;
    }
  });
  return {
    batchSize: B,
    seqLen: T,
    inputIds,
    labels,
    attentionMask,
    lengths: items.map((it) => it.inputIds.length),
    ids: items.map((it) => it.id),
    lossTokens,
  };
}

export interface BatchIteratorOptions {
  batchSize: number;
  padId: number;
  seed?: number;
  /** Reshuffle every epoch (default true). */
  shuffle?: boolean;
  /** Start over after the last batch (default true): local steps may exceed one epoch. */
  cycle?: boolean;
  /** Drop a last partial batch of an epoch (default false). */
  dropLast?: boolean;
  padTo?: number;
}

export interface BatchIteratorState {
  epoch: number;
  position: number;
  step: number;
}

/**
 * Yields batches in a seed-determined order. Epoch e uses the permutation from
 * deriveSeed(seed, "epoch-e"), so any (epoch, position) can be restored without replaying.
 */
export class BatchIterator implements Iterable<Batch> {
  private order: number[] = [];
  private state: BatchIteratorState = { epoch: 0, position: 0, step: 0 };
  private readonly opts: Required<Omit<BatchIteratorOptions, 'padTo'>> & { padTo?: number };

  constructor(
    private readonly items: readonly EncodedExample[],
    opts: BatchIteratorOptions,
  ) {
    if (!(opts.batchSize >= 1)) throw new Error(`batchSize must be >= 1, got ${opts.batchSize}`);
    if (items.length === 0) throw new Error('BatchIterator: no examples');
    this.opts = { seed: 0, shuffle: true, cycle: true, dropLast: false, ...opts };
    if (this.opts.dropLast && items.length < opts.batchSize) {
      throw new Error(
        `BatchIterator: dropLast with ${items.length} examples < batchSize ${opts.batchSize} yields nothing`,
      );
    }
    this.order = this.permutation(0);
  }

  get epoch(): number {
    return this.state.epoch;
  }

  get step(): number {
    return this.state.step;
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.items.length / this.opts.batchSize;
    return this.opts.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  getState(): BatchIteratorState {
    return { ...this.state };
  }

  setState(s: BatchIteratorState): void {
    this.state = { ...s };
    this.order = this.permutation(s.epoch);
  }

  /** The next batch, or null at the end of the data when not cycling. */
  next(): Batch | null {
    const { batchSize, dropLast, cycle } = this.opts;
    const n = this.items.length;
    let { position } = this.state;
    const left = n - position;
    if (left <= 0 || (dropLast && left < batchSize)) {
      if (!cycle) return null;
      this.state.epoch++;
      this.order = this.permutation(this.state.epoch);
      position = 0;
    }
    const idx = this.order.slice(position, position + batchSize);
    this.state.position = position + idx.length;
    this.state.step++;
    return collate(
      idx.map((i) => this.items[i]!),
      { padId: this.opts.padId, padTo: this.opts.padTo },
    );
  }

  *[Symbol.iterator](): Iterator<Batch> {
    for (let b = this.next(); b !== null; b = this.next()) yield b;
  }

  /** Exactly `steps` batches (cycling as needed). */
  *take(steps: number): Generator<Batch> {
    for (let i = 0; i < steps; i++) {
      const b = this.next();
      if (b === null) return;
      yield b;
    }
  }

  private permutation(epoch: number): number[] {
    const order = Array.from({ length: this.items.length }, (_, i) => i);
    if (!this.opts.shuffle) return order;
    return shuffle(mulberry32(deriveSeed(this.opts.seed, `epoch-${epoch}`)), order);
  }
}

/** A collated batch in the form the model's loss takes. */
export function toTokenBatch(b: Batch): TokenBatch {
  return { B: b.batchSize, T: b.seqLen, ids: b.inputIds, labels: b.labels, attention: b.attentionMask };
}
