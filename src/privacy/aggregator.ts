// The aggregation step of a round, as the config asks for it: robust rules (norm clipping, median,
// trimmed mean), central or local differential privacy with the accountant, and the last step of
// secure aggregation (noise on the unmasked sum). Simulation and deployment call the same methods;
// its state (clip norm, RDP totals) goes into checkpoints.
import { coordinateMedian, fedAvg, trimmedMean, type ClientUpdate } from '../fedbiot/aggregate.js';
import { cloneState, stateAddScaled, stateDiff, type LoraState } from '../fedbiot/lora-state.js';
import { Prg } from '../util/prg.js';
import { RdpAccountant } from './accountant.js';
import { nextClip } from './adaptive-clip.js';
import { addGaussianNoise, clipUpdate } from './noise.js';
import type { AggregationPlan } from './settings.js';
import { simulateSecureRound } from '../secagg/round.js';

export interface RoundContext {
  round: number;
  /** The adapter the round started from (what clients received). */
  start: LoraState;
  /** Clients that could have been sampled this round (reported; the accountant uses the configured rate). */
  population: number;
}

/** What a round's privacy accounting reports (metrics.jsonl's "privacy"). */
export interface PrivacyRecord {
  epsilon: number | null;
  delta: number;
  clip: number;
  noise_multiplier: number;
  noise_std: number;
  /** Clients whose update norm exceeded the clip (central mode, server-side clipping only). */
  clipped?: number;
}

export interface AggregatorState {
  clip: number;
  rdp: number[];
}

export interface AggregateResult {
  adapter: LoraState;
  privacy: PrivacyRecord | null;
  /** Secure aggregation's round report (simulation): survivors, dropped, protocol bytes and seconds. */
  secure?: {
    survivors: number;
    dropped: string[];
    bytes_up: number;
    bytes_down: number;
    seconds: number;
    /** Values the clients clamped to the range (known in simulation; a deployed server cannot see it). */
    clamped?: number;
  };
}

export class RoundAggregator {
  private clip: number;
  private readonly accountant: RdpAccountant | null;

  constructor(
    readonly plan: AggregationPlan,
    private readonly seed: number,
    saved?: AggregatorState,
  ) {
    this.clip = saved?.clip ?? plan.privacy?.clip ?? 0;
    this.accountant = plan.privacy ? new RdpAccountant(undefined, saved?.rdp) : null;
  }

  state(): AggregatorState {
    return { clip: this.clip, rdp: this.accountant ? [...this.accountant.rdp] : [] };
  }

  /** The clip norm this round (what clients must clip to when they clip). */
  get currentClip(): number {
    return this.clip;
  }

  /** Epsilon spent so far (null without privacy; Infinity when the noise multiplier is 0). */
  epsilon(): number | null {
    const p = this.plan.privacy;
    if (!p || !this.accountant) return null;
    return this.accountant.epsilon(p.delta);
  }

  /** Whether clients transform their trained adapter before upload. */
  get clientTransforms(): boolean {
    return uploadTransform(this.plan) !== null;
  }

  /**
   * Client side, before upload (see transformUpload). The noise stream must be secret to the server
   * in deployment (a fresh random key), seeded in simulation.
   */
  prepareUpload(start: LoraState, trained: LoraState, noise: Prg): LoraState {
    const t = uploadTransform(this.plan);
    return t ? transformUpload(t, start, trained, noise) : trained;
  }

  /** The seeded noise stream of a simulated client (deployment clients use a random key instead). */
  simulatedClientNoise(client: string, round: number): Prg {
    return clientNoiseStream(this.seed, client, round);
  }

  /**
   * The whole aggregation step of a simulated round: with secure aggregation, the protocol runs
   * in-process over the uploads (`dropAfterShares` vanish after the share phase) and the server
   * half sees only the sum; otherwise the plain rule runs.
   */
  async aggregateRound(
    ctx: RoundContext,
    updates: readonly ClientUpdate[],
    dropAfterShares: readonly string[] = [],
  ): Promise<AggregateResult> {
    const secure = this.plan.secure;
    if (!secure) return this.aggregate(ctx, updates);
    const t0 = performance.now();
    const uniform = this.plan.privacy !== null;
    const r = await simulateSecureRound({
      round: ctx.round,
      start: ctx.start,
      uploads: updates,
      settings: secure,
      uniform,
      dropAfterShares,
    });
    const out = this.aggregateSum(ctx, r.sum, r.divisor, r.survivors.length);
    return {
      ...out,
      secure: {
        survivors: r.survivors.length,
        dropped: r.dropped,
        bytes_up: r.bytesUp,
        bytes_down: r.bytesDown,
        seconds: (performance.now() - t0) / 1000,
        clamped: r.clamped,
      },
    };
  }

  /** Server side: the new global adapter from the uploads (plain, not masked). */
  aggregate(ctx: RoundContext, updates: readonly ClientUpdate[]): AggregateResult {
    const live = updates.filter((u) => u.samples > 0);
    if (live.length === 0) throw new Error(`round ${ctx.round + 1}: no client reported an update`);
    const p = this.plan.privacy;
    if (p?.mode === 'central') {
      const deltas = live.map((u) => stateDiff(u.state, ctx.start, `update of client '${u.client}'`));
      let unclipped = 0;
      for (const d of deltas) if (clipUpdate(d, this.clip) <= this.clip) unclipped++;
      const sum = sumStates(deltas);
      return this.finishCentral(ctx, sum, live.length, unclipped);
    }
    // Robust rules and plain FedAvg work on the updates (differences from the round's adapter).
    let states = live;
    if (this.plan.clipNorm !== null) {
      const bound = this.plan.clipNorm;
      states = live.map((u) => {
        const d = stateDiff(u.state, ctx.start, `update of client '${u.client}'`);
        clipUpdate(d, bound);
        return { ...u, state: stateAddScaled(ctx.start, d) };
      });
    }
    const adapter =
      this.plan.rule === 'median'
        ? coordinateMedian(states)
        : this.plan.rule === 'trimmed-mean'
          ? trimmedMean(states, this.plan.trim)
          : fedAvg(states);
    return { adapter, privacy: p ? this.charge(p.mode === 'local' ? 1 : undefined) : null };
  }

  /**
   * Server side under secure aggregation: `sum` is the unmasked sum of the contributors' weighted
   * updates and `divisor` what turns it into the mean (their total weight). Central DP adds its
   * noise to this sum, before dividing.
   */
  aggregateSum(ctx: RoundContext, sum: LoraState, divisor: number, contributors: number): AggregateResult {
    const p = this.plan.privacy;
    if (p?.mode === 'central') return this.finishCentral(ctx, sum, contributors, null);
    return { adapter: stateAddScaled(ctx.start, sum, 1 / divisor), privacy: p ? this.charge(1) : null };
  }

  private finishCentral(ctx: RoundContext, sum: LoraState, m: number, unclipped: number | null): AggregateResult {
    const p = this.plan.privacy!;
    const clip = this.clip;
    const std = p.updateNoiseMultiplier * clip;
    const noise = Prg.fromLabel(`central-dp/${this.seed}/${ctx.round}`);
    const noisy = cloneState(sum);
    addGaussianNoise(noisy, std, noise);
    // DP-FedAvg weighs every client alike: a sample count would change the sensitivity.
    const adapter = stateAddScaled(ctx.start, noisy, 1 / m);
    const record = this.charge();
    record.noise_std = std;
    if (unclipped !== null) record.clipped = m - unclipped;
    if (p.adaptive && unclipped !== null) {
      const noisyCount = unclipped + p.adaptive.countStddev * noise.normal();
      this.clip = nextClip(clip, noisyCount, m, p.adaptive);
    }
    return { adapter, privacy: record };
  }

  /** Charges one round to the accountant and reports the running epsilon. */
  private charge(rate?: number): PrivacyRecord {
    const p = this.plan.privacy!;
    const q = rate ?? p.samplingRate;
    this.accountant!.step(q, p.noiseMultiplier);
    const eps = this.accountant!.epsilon(p.delta);
    return {
      epsilon: Number.isFinite(eps) ? eps : null,
      delta: p.delta,
      clip: this.clip,
      noise_multiplier: p.noiseMultiplier,
      noise_std: p.updateNoiseMultiplier * this.clip,
    };
  }
}

/**
 * What a client does to its trained adapter before upload, when it does anything: local DP clips
 * the update to `clip` and adds N(0, noiseStd^2); central DP under secure aggregation clips only
 * (noiseStd 0: the server cannot clip what it cannot see, and noises the unmasked sum). The
 * deployment's join answer carries it to the clients. Both modes exclude adaptive clipping, so the
 * clip is the configured one.
 */
export interface UploadTransform {
  clip: number;
  noiseStd: number;
}

export function uploadTransform(plan: AggregationPlan): UploadTransform | null {
  const p = plan.privacy;
  if (!p) return null;
  if (p.mode === 'local') return { clip: p.clip, noiseStd: p.updateNoiseMultiplier * p.clip };
  return plan.secure ? { clip: p.clip, noiseStd: 0 } : null;
}

/** start + clip(trained - start) + noise: the upload of a client under `t`. */
export function transformUpload(t: UploadTransform, start: LoraState, trained: LoraState, noise: Prg): LoraState {
  const delta = stateDiff(trained, start, 'upload');
  clipUpdate(delta, t.clip);
  addGaussianNoise(delta, t.noiseStd, noise);
  return stateAddScaled(start, delta);
}

/**
 * A seeded noise stream for a client's local DP: the simulation's (keyed by the run seed), and a
 * deployed client's when it is given a seed of its own (`fedbiot client --noise-seed`, for
 * reproducible experiments; the noise protects only while the seed stays secret from the server).
 */
export function clientNoiseStream(seed: number, client: string, round: number): Prg {
  return Prg.fromLabel(`local-dp/${seed}/${client}/${round}`);
}

/** Elementwise sum in float64, rounded to float32 once. */
export function sumStates(states: readonly LoraState[]): LoraState {
  const out: LoraState = new Map();
  for (const [name, v] of states[0]!) {
    const acc = new Float64Array(v.data.length);
    for (const s of states) {
      const d = s.get(name)!.data;
      for (let i = 0; i < acc.length; i++) acc[i]! += d[i]!;
    }
    out.set(name, { shape: [...v.shape], data: Float32Array.from(acc) });
  }
  return out;
}
