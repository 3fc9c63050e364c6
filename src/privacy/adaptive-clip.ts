// Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private Learning
// with Adaptive Clipping"): the clip norm C follows a target quantile gamma of the clients' update
// norms by a geometric step on the noised fraction of unclipped clients,
//   b = (#{i : ||d_i|| <= C} + N(0, sigma_b^2)) / m,   C <- C * exp(-eta (b - gamma)).
// The count is itself released, so the updates' noise multiplier becomes
//   z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)
// and the two releases together cost exactly what noise multiplier z costs (their Theorem 1).

export interface AdaptiveClipSettings {
  targetQuantile: number;
  learningRate: number;
  /** sigma_b, the noise std of the unclipped count. */
  countStddev: number;
}

/** The noise multiplier for the updates when the count takes its share of the budget z. */
export function updateNoiseMultiplier(z: number, countStddev: number): number {
  if (z === 0) return 0;
  const rest = z ** -2 - (2 * countStddev) ** -2;
  if (!(rest > 0)) {
    throw new Error(
      `privacy.adaptiveClip.countStddev ${countStddev} is too small for noiseMultiplier ${z}: the count alone would spend the whole budget (need countStddev > ${(z / 2).toFixed(4)})`,
    );
  }
  return rest ** -0.5;
}

/** The next clip norm from the noised count of unclipped updates among m. */
export function nextClip(clip: number, unclippedNoisy: number, m: number, s: AdaptiveClipSettings): number {
  const b = unclippedNoisy / m;
  return clip * Math.exp(-s.learningRate * (b - s.targetQuantile));
}
