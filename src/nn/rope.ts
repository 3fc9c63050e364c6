// Rotary position embeddings: the inverse frequencies for each rope scaling type the supported
// families ship, computed as transformers' ROPE_INIT_FUNCTIONS do (float32 results), plus the
// attention factor that YaRN multiplies cos/sin by.

/** A rope scaling recipe (camelCase of Hugging Face's rope_scaling / rope_parameters). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | {
      type: 'yarn';
      factor: number;
      /** Context the model was pretrained with (default max_position_embeddings); sets the ramp between the two frequency sets. */
      originalMaxPositionEmbeddings?: number;
      attentionFactor?: number;
      /** Defaults as in transformers: betaFast 32, betaSlow 1, truncate true. */
      betaFast?: number;
      betaSlow?: number;
      mscale?: number;
      mscaleAllDim?: number;
      truncate?: boolean;
    }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface RopeTables {
  invFreq: Float32Array;
  /** cos and sin are multiplied by this (1 except for YaRN), i.e. attention scores by its square. */
  attentionScale: number;
}

function baseInvFreq(theta: number, dim: number, factor = 1): Float32Array {
  const out = new Float32Array(dim / 2);
  // transformers: 1 / (base ** (arange(0, dim, 2).float() / dim)), in float32
  for (let i = 0; i < dim / 2; i++) out[i] = 1 / (factor * Math.fround(Math.pow(theta, Math.fround((2 * i) / dim))));
  return out;
}

/**
 * Inverse frequencies for head dimension `dim`. `seqLen` (positions in use, for dynamic NTK only)
 * above maxPositionEmbeddings raises the base as transformers' dynamic rope does.
 */
export function ropeTables(
  theta: number,
  dim: number,
  scaling: RopeScaling | null | undefined,
  maxPositionEmbeddings: number,
  seqLen = 0,
): RopeTables {
  if (!scaling) return { invFreq: baseInvFreq(theta, dim), attentionScale: 1 };
  switch (scaling.type) {
    case 'linear':
      return { invFreq: baseInvFreq(theta, dim).map((f) => f / scaling.factor), attentionScale: 1 };
    case 'dynamic': {
      if (seqLen <= maxPositionEmbeddings) return { invFreq: baseInvFreq(theta, dim), attentionScale: 1 };
      const f = scaling.factor;
      const base = theta * Math.pow((f * seqLen) / maxPositionEmbeddings - (f - 1), dim / (dim - 2));
      return { invFreq: baseInvFreq(base, dim), attentionScale: 1 };
    }
    case 'llama3': {
      const inv = baseInvFreq(theta, dim);
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
      const lowWavelen = old / lowFreqFactor;
      const highWavelen = old / highFreqFactor;
      for (let i = 0; i < inv.length; i++) {
        const f = inv[i]!;
        const wavelen = (2 * Math.PI) / f;
        if (wavelen > lowWavelen) inv[i] = f / factor;
        else if (wavelen >= highWavelen) {
          const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
          inv[i] = (1 - smooth) * (f / factor) + smooth * f;
        }
      }
      return { invFreq: inv, attentionScale: 1 };
    }
    case 'yarn': {
      const origMax = scaling.originalMaxPositionEmbeddings ?? maxPositionEmbeddings;
      const scaleFactor = scaling.factor;
      const getMscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
      let attentionScale = scaling.attentionFactor;
      if (attentionScale === undefined) {
        attentionScale =
          scaling.mscale && scaling.mscaleAllDim
            ? getMscale(scaleFactor, scaling.mscale) / getMscale(scaleFactor, scaling.mscaleAllDim)
            : getMscale(scaleFactor);
      }
      const correctionDim = (rot: number) => (dim * Math.log(origMax / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = correctionDim(scaling.betaFast ?? 32);
      let high = correctionDim(scaling.betaSlow ?? 1);
      if (scaling.truncate ?? true) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      const half = dim / 2;
      const extrap = baseInvFreq(theta, dim);
      const interp = baseInvFreq(theta, dim, scaling.factor);
      const inv = new Float32Array(half);
      for (let i = 0; i < half; i++) {
        const ramp = Math.min(1, Math.max(0, Math.fround((i - low) / (high - low))));
        const extrapFactor = 1 - ramp;
        inv[i] = interp[i]! * (1 - extrapFactor) + extrap[i]! * extrapFactor;
      }
      return { invFreq: inv, attentionScale };
    }
  }
}
