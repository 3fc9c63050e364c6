// The config sections of privacy and robustness (`privacy`, `secureAggregation`, `aggregation`),
// the checks across them that refuse combinations that cannot work (each names the keys at fault),
// and the resolved plan the aggregation step runs.
import { z } from 'zod';
import { noiseForEpsilon } from './accountant.js';
import { updateNoiseMultiplier, type AdaptiveClipSettings } from './adaptive-clip.js';

export const privacySchema = z.strictObject({
  /** central: the server clips each update and noises the sum; local: each client clips and noises its own upload. */
  mode: z.enum(['central', 'local']),
  /** Noise std over the clip norm; give this or targetEpsilon. 0 clips without noise (epsilon infinite). */
  noiseMultiplier: z.number().min(0).optional(),
  /** Solve the noise multiplier that reaches this epsilon after all rounds. */
  targetEpsilon: z.number().positive().optional(),
  /** L2 clip norm of one client's update (the starting clip norm with adaptiveClip). */
  clip: z.number().positive(),
  /** Quantile-based adaptive clipping (Andrew et al. 2021); true takes the defaults. */
  adaptiveClip: z
    .union([
      z.boolean(),
      z.strictObject({
        targetQuantile: z.number().gt(0).lt(1).default(0.5),
        learningRate: z.number().positive().default(0.2),
        /** Noise std of the unclipped-count (default: max(m/20, noiseMultiplier), m the clients per round). */
        countStddev: z.number().positive().optional(),
      }),
    ])
    .default(false),
  delta: z.number().gt(0).lt(1).default(1e-5),
});

export const secureAggregationSchema = z
  .union([
    z.boolean(),
    z.strictObject({
      /** Each coordinate of a client's weighted update is clamped to [-range, range] before fixed-point encoding. */
      range: z.number().positive().default(1),
      /** Shares needed to rebuild a secret, as a fraction of the round's clients: at least a majority (0.5, the default). */
      threshold: z.number().min(0.5).max(1).optional(),
    }),
  ])
  .default(false);

/** trimmed-mean's default trim: drops a client at each end from 4 clients up (0.25 * 4 = 1). */
export const DEFAULT_TRIM = 0.25;

export const aggregationSchema = z
  .strictObject({
    rule: z.enum(['fedavg', 'median', 'trimmed-mean']).default('fedavg'),
    /** trimmed-mean: the fraction of clients dropped at each end, per coordinate. */
    trim: z.number().min(0).lt(0.5).optional(),
    /** Scale every update (difference from the round's adapter) down to this L2 norm before the rule. */
    clipNorm: z.number().positive().optional(),
  })
  .default({ rule: 'fedavg' });

type PrivacyConfig = z.infer<typeof privacySchema>;
type SecAggConfig = z.infer<typeof secureAggregationSchema>;
type AggregationConfig = z.infer<typeof aggregationSchema>;

/** The part of a run config these checks read. */
export interface PrivacyInputs {
  rounds: number;
  algorithm: { name: string };
  clients: { count: number; perRound?: number };
  privacy?: PrivacyConfig;
  secureAggregation: SecAggConfig;
  aggregation: AggregationConfig;
  compression?: { codec: string; topk: number | null };
}

/** Clients sampled per round, as the sampler computes it. */
export function clientsPerRound(count: number, perRound: number | undefined): number {
  if (perRound === undefined) return count;
  return perRound < 1 ? Math.max(1, Math.round(perRound * count)) : Math.min(count, Math.floor(perRound));
}

/** Every combination that cannot work, as [key path, reason]. */
export function privacyConfigProblems(c: PrivacyInputs): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const p = c.privacy;
  const secure = c.secureAggregation !== false;
  const agg = c.aggregation;
  const m = clientsPerRound(c.clients.count, c.clients.perRound);
  if (c.algorithm.name === 'local' && (p || secure || agg.rule !== 'fedavg' || agg.clipNorm !== undefined)) {
    out.push([
      'algorithm.name',
      'algorithm local has no aggregation: privacy, secureAggregation and aggregation settings do not apply to it',
    ]);
  }
  if (agg.trim !== undefined && agg.rule !== 'trimmed-mean')
    out.push(['aggregation.trim', `trim applies to rule trimmed-mean only (rule is ${agg.rule})`]);
  if (agg.rule === 'trimmed-mean') {
    const trim = agg.trim ?? DEFAULT_TRIM;
    if (Math.floor(trim * m) < 1)
      out.push([
        'aggregation.trim',
        `trim ${trim} of ${m} clients per round drops none (floor(trim * clients) = 0): the trimmed mean would be the plain mean; raise trim to at least ${(1 / m).toFixed(3)}`,
      ]);
  }
  if (secure) {
    if (agg.rule !== 'fedavg')
      out.push([
        'secureAggregation',
        `secure aggregation reveals only the sum of the updates, so aggregation.rule ${agg.rule} (which needs every update) is impossible with it; use rule fedavg`,
      ]);
    if (agg.clipNorm !== undefined)
      out.push([
        'aggregation.clipNorm',
        'the server cannot clip updates it cannot see: with secureAggregation the bound is secureAggregation.range per coordinate (or privacy.clip, applied by the clients)',
      ]);
    if (c.compression && (c.compression.codec !== 'none' || c.compression.topk !== null))
      out.push([
        'compression',
        'secure aggregation uploads masked fixed-point words whose masks cancel only in exact arithmetic mod 2^32; a compression codec would break them: use compression.codec none and compression.topk null with secureAggregation',
      ]);
    if (m < 2)
      out.push([
        'secureAggregation',
        `secure aggregation needs at least 2 clients per round (this config samples ${m}): with one, the sum is the update`,
      ]);
  }
  if (p) {
    if (p.noiseMultiplier === undefined && p.targetEpsilon === undefined)
      out.push(['privacy', 'give privacy.noiseMultiplier or privacy.targetEpsilon']);
    if (p.noiseMultiplier !== undefined && p.targetEpsilon !== undefined)
      out.push([
        'privacy.targetEpsilon',
        'give privacy.noiseMultiplier or privacy.targetEpsilon, not both (the target decides the noise)',
      ]);
    if (agg.rule !== 'fedavg')
      out.push([
        'aggregation.rule',
        `differential privacy calibrates its noise to the sum of clipped updates; rule ${agg.rule} has another sensitivity: use rule fedavg with privacy`,
      ]);
    if (agg.clipNorm !== undefined)
      out.push([
        'aggregation.clipNorm',
        'with privacy the updates are clipped to privacy.clip; aggregation.clipNorm would be a second clip',
      ]);
    if (p.adaptiveClip !== false && p.mode === 'local')
      out.push([
        'privacy.adaptiveClip',
        "adaptive clipping learns the clip norm from the clients' norms on the server: it exists for mode central only",
      ]);
    if (p.adaptiveClip !== false && secure)
      out.push([
        'privacy.adaptiveClip',
        "adaptive clipping needs each client's clipped/unclipped bit, which secure aggregation hides: use a fixed privacy.clip with secureAggregation",
      ]);
    if (secure && typeof c.secureAggregation === 'object' && c.secureAggregation.range < p.clip) {
      // Each coordinate of a clipped update is at most clip in size, so a range below clip clamps.
      out.push([
        'secureAggregation.range',
        `range ${c.secureAggregation.range} is below privacy.clip ${p.clip}: clipped updates would be clamped further`,
      ]);
    }
    if (p.delta >= 1 / Math.max(1, c.clients.count))
      out.push([
        'privacy.delta',
        `delta ${p.delta} is not below 1/${c.clients.count} (one over the number of clients): such a guarantee allows publishing a client's data outright`,
      ]);
  }
  return out;
}

export interface ResolvedPrivacy {
  mode: 'central' | 'local';
  /** The noise multiplier the accountant charges per round (the total with adaptive clipping). */
  noiseMultiplier: number;
  /** The multiplier applied to the updates (smaller than noiseMultiplier with adaptive clipping). */
  updateNoiseMultiplier: number;
  clip: number;
  adaptive: AdaptiveClipSettings | null;
  delta: number;
  /** The sampling rate the accountant uses: clients per round over clients (1 for local DP). */
  samplingRate: number;
}

export interface AggregationPlan {
  rule: 'fedavg' | 'median' | 'trimmed-mean';
  trim: number;
  clipNorm: number | null;
  privacy: ResolvedPrivacy | null;
  secure: { range: number; threshold: number } | null;
}

/** Resolves the config into what the aggregation step runs (solves targetEpsilon here, once). */
export function aggregationPlan(c: PrivacyInputs): AggregationPlan {
  const problems = privacyConfigProblems(c);
  if (problems.length)
    throw new Error(`invalid privacy settings:\n${problems.map(([k, r]) => `  ${k}: ${r}`).join('\n')}`);
  const m = clientsPerRound(c.clients.count, c.clients.perRound);
  const p = c.privacy;
  let privacy: ResolvedPrivacy | null = null;
  if (p) {
    // Local DP: the server sees each upload, so sampling hides nothing from it: q = 1.
    const q = p.mode === 'local' ? 1 : m / c.clients.count;
    const z = p.noiseMultiplier ?? noiseForEpsilon(p.targetEpsilon!, q, c.rounds, p.delta);
    const a: { targetQuantile?: number; learningRate?: number; countStddev?: number } | null =
      p.adaptiveClip === false ? null : p.adaptiveClip === true ? {} : p.adaptiveClip;
    const adaptive = a
      ? {
          targetQuantile: a.targetQuantile ?? 0.5,
          learningRate: a.learningRate ?? 0.2,
          countStddev: a.countStddev ?? Math.max(m / 20, z),
        }
      : null;
    privacy = {
      mode: p.mode,
      noiseMultiplier: z,
      updateNoiseMultiplier: adaptive ? updateNoiseMultiplier(z, adaptive.countStddev) : z,
      clip: p.clip,
      adaptive,
      delta: p.delta,
      samplingRate: q,
    };
  }
  const s = c.secureAggregation;
  const secure =
    s === false
      ? null
      : { range: s === true ? Math.max(1, p?.clip ?? 0) : s.range, threshold: s === true ? 0.5 : (s.threshold ?? 0.5) };
  return {
    rule: c.aggregation.rule,
    trim: c.aggregation.trim ?? DEFAULT_TRIM,
    clipNorm: c.aggregation.clipNorm ?? null,
    privacy,
    secure,
  };
}
