// The LLaMA architecture on the engine, written out step by step (nanoGPT style):
// embeddings -> N x [RMSNorm -> GQA attention with RoPE -> residual -> RMSNorm -> SwiGLU MLP ->
// residual] -> RMSNorm -> LM head.
//
// A model is a list of decoder layers plus the frozen embedding / norm / head. Layers are plain
// objects, so two models can share some of them: FedBiOT's full model and compressed model share
// the adapter layers (and the frozen base weights of the emulator's kept layers).
import { Tensor, noGrad, tape } from '../tensor/tensor.js';
import { alloc } from '../tensor/engine.js';
import {
  attention,
  crossEntropy,
  embedding,
  klDivergence,
  linear,
  rmsnorm,
  rope,
  scale,
  swiglu,
  type Weight,
} from '../tensor/ops.js';
import { headLosses, type HeadLossTerms, type HeadLosses } from '../tensor/head-loss.js';
import type { FrozenWeight } from '../tensor/frozen.js';
import { LoraLinear, type LoraSpec } from './lora.js';
import { type ModelConfig, validateConfig } from './config.js';
import { ropeTables, type RopeTables } from './rope.js';
import { decodeWeightRow } from '../kernels/weights.js';
import { mulberry32, fillNormal, type Random } from '../util/rng.js';

export const LINEAR_NAMES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];
const ATTENTION_LINEARS = new Set<LinearName>(['q_proj', 'k_proj', 'v_proj', 'o_proj']);

/** A weight as an f32 Tensor: itself, or a fresh widened copy of a stored-format weight. */
export function widened(w: Weight): Tensor {
  return w instanceof Tensor ? w : Tensor.param(w.toFloat32(), [...w.shape], w.name, false);
}

/** The Hugging Face module path of a linear inside a layer, e.g. "model.layers.3.self_attn.q_proj". */
export function linearPath(prefix: string, n: LinearName): string {
  return `${prefix}.${ATTENTION_LINEARS.has(n) ? 'self_attn' : 'mlp'}.${n}`;
}

/** Tensors only some families have: projection biases (Qwen2), per-head q/k norms (Qwen3). */
export interface LayerExtras {
  bias?: Partial<Record<LinearName, Tensor>>;
  qNorm?: Tensor;
  kNorm?: Tensor;
}

export class DecoderLayer {
  readonly linears: Record<LinearName, LoraLinear>;

  constructor(
    /** Hugging Face prefix of this layer's tensors, e.g. "model.layers.3". */
    public prefix: string,
    /** Index of the layer in the original full model this layer comes from. */
    public readonly sourceIndex: number,
    public attnNorm: Tensor,
    public mlpNorm: Tensor,
    linears: Record<LinearName, Weight>,
    public readonly extras: LayerExtras = {},
  ) {
    const mk = (n: LinearName) => new LoraLinear(linearPath(prefix, n), linears[n], extras.bias?.[n] ?? null);
    this.linears = Object.fromEntries(LINEAR_NAMES.map((n) => [n, mk(n)])) as Record<LinearName, LoraLinear>;
  }

  /** A copy sharing the frozen base weights but with no LoRA attached (emulator layers, renamed layers). */
  cloneShared(prefix: string, sourceIndex = this.sourceIndex): DecoderLayer {
    const w = Object.fromEntries(LINEAR_NAMES.map((n) => [n, this.linears[n].weight])) as Record<LinearName, Weight>;
    return new DecoderLayer(prefix, sourceIndex, this.attnNorm, this.mlpNorm, w, this.extras);
  }

  /** The same layer (norms and extras shared, no LoRA) with each linear weight stored as `weightOf` says (e.g. quantized). */
  withWeights(prefix: string, weightOf: (name: string, w: Weight) => Weight): DecoderLayer {
    const w = Object.fromEntries(
      LINEAR_NAMES.map((n) => [n, weightOf(this.linears[n].name, this.linears[n].weight)]),
    ) as Record<LinearName, Weight>;
    return new DecoderLayer(prefix, this.sourceIndex, this.attnNorm, this.mlpNorm, w, this.extras);
  }

  /**
   * Makes this layer's linears use `src`'s LoRA factors (the very same tensors, scale and dropout
   * rate): two holders of one adapter over differently stored frozen weights train and load as one.
   */
  shareLoraWith(src: DecoderLayer): this {
    for (const n of LINEAR_NAMES) {
      const from = src.linears[n];
      const to = this.linears[n];
      to.lora = from.lora;
      to.loraScale = from.loraScale;
      to.loraDropout = from.loraDropout;
    }
    return this;
  }

  /** Every frozen tensor as it is held in memory (f32, or a stored format): what a holder of the layer keeps. */
  storedTensors(): (Tensor | FrozenWeight)[] {
    const out: (Tensor | FrozenWeight)[] = [this.attnNorm, this.mlpNorm];
    for (const n of LINEAR_NAMES) {
      out.push(this.linears[n].weight);
      const b = this.linears[n].bias;
      if (b) out.push(b);
    }
    if (this.extras.qNorm) out.push(this.extras.qNorm);
    if (this.extras.kNorm) out.push(this.extras.kNorm);
    return out;
  }

  /** All frozen weights by Hugging Face name (under this layer's current prefix), in their stored format. */
  baseWeights(): Map<string, Weight> {
    const m = new Map<string, Weight>();
    m.set(`${this.prefix}.input_layernorm.weight`, this.attnNorm);
    m.set(`${this.prefix}.post_attention_layernorm.weight`, this.mlpNorm);
    for (const n of LINEAR_NAMES) {
      m.set(`${this.linears[n].name}.weight`, this.linears[n].weight);
      const b = this.linears[n].bias;
      if (b) m.set(`${this.linears[n].name}.bias`, b);
    }
    if (this.extras.qNorm) m.set(`${this.prefix}.self_attn.q_norm.weight`, this.extras.qNorm);
    if (this.extras.kNorm) m.set(`${this.prefix}.self_attn.k_norm.weight`, this.extras.kNorm);
    return m;
  }

  /** baseWeights() as f32 Tensors: a weight kept in a 16-bit format is handed out as a fresh widened copy. */
  baseTensors(): Map<string, Tensor> {
    return new Map([...this.baseWeights()].map(([k, w]) => [k, widened(w)]));
  }

  /** Turns LoRA dropout on (drawing masks from rand) or off (null) for this layer's LoRA modules. */
  setLoraDropout(rand: Random | null): void {
    for (const n of LINEAR_NAMES) this.linears[n].dropoutRandom = rand;
  }

  /** Whether any of this layer's tensors (base or LoRA) is being trained. */
  hasTrainable(): boolean {
    if (this.attnNorm.requiresGrad || this.mlpNorm.requiresGrad) return true;
    for (const n of LINEAR_NAMES) {
      const l = this.linears[n];
      if (l.weight.requiresGrad || (l.lora && (l.lora.A.requiresGrad || l.lora.B.requiresGrad))) return true;
    }
    return false;
  }

  loraParams(): Tensor[] {
    const out: Tensor[] = [];
    for (const n of LINEAR_NAMES) {
      const l = this.linears[n].lora;
      if (l) out.push(l.A, l.B);
    }
    return out;
  }
}

/**
 * Per-layer key/value cache for incremental decoding, [batch, capacity, kvDim] per layer. Rows of a
 * batch are left-padded to a common prompt length; keyMask hides the padding. RoPE scores depend
 * only on position differences, so left padding shifts every row's positions without changing
 * its result.
 */
export class KVCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** [batch * capacity] additive mask (0 keep, -Infinity padding), or null when nothing is padded. */
  keyMask: Float32Array | null = null;
  length = 0;
  constructor(
    public readonly numLayers: number,
    public readonly capacity: number,
    public readonly kvDim: number,
    public readonly batch = 1,
  ) {
    this.k = Array.from({ length: numLayers }, () => alloc(batch * capacity * kvDim));
    this.v = Array.from({ length: numLayers }, () => alloc(batch * capacity * kvDim));
  }
}

export interface ForwardContext {
  B: number;
  T: number;
  /** Additive key mask [B, T] (0 keep, -Infinity padding); null = no padding. */
  keyMask?: Float32Array | null;
  /** Incremental decoding: keys/values are appended to the cache (B = cache.batch). */
  cache?: KVCache | null;
  /**
   * Activation checkpointing: a trained layer keeps only its input and output, and its forward runs
   * again in the backward (Tape.recompute). Same gradients, about one more forward of the trained
   * layers per step, and their activations held one layer at a time.
   */
  recompute?: boolean;
}

export class LlamaModel {
  /** Rotary tables for sequences up to maxPositionEmbeddings (all of them unless rope scaling is dynamic). */
  private readonly rope: RopeTables;

  constructor(
    public readonly config: ModelConfig,
    /** f32, or kept in its stored 16-bit format (rows widened on lookup) when frozen. */
    public embedTokens: Weight,
    public layers: DecoderLayer[],
    public finalNorm: Tensor,
    public lmHead: Weight,
  ) {
    validateConfig(config);
    this.rope = ropeTables(config.ropeTheta, config.headDim, config.ropeScaling, config.maxPositionEmbeddings);
  }

  get invFreq(): Float32Array {
    return this.rope.invFreq;
  }

  /** The rotary tables for a forward pass whose positions end at `end` (dynamic NTK grows the base past the trained context). */
  ropeFor(end: number): RopeTables {
    const c = this.config;
    if (c.ropeScaling?.type !== 'dynamic' || end <= c.maxPositionEmbeddings) return this.rope;
    return ropeTables(c.ropeTheta, c.headDim, c.ropeScaling, c.maxPositionEmbeddings, end);
  }

  /** A randomly initialised model (normal(0, 0.02) weights, unit norms), as Hugging Face initialises LLaMA. */
  static random(config: ModelConfig, seed: number, std = 0.02): LlamaModel {
    validateConfig(config);
    const rand = mulberry32(seed);
    const c = config;
    const mat = (rows: number, cols: number, name: string) =>
      Tensor.param(fillNormal(rand, alloc(rows * cols), std), [rows, cols], name, false);
    const ones = (n: number, name: string) => Tensor.param(alloc(n).fill(1), [n], name, false);
    const embed = mat(c.vocabSize, c.hiddenSize, 'model.embed_tokens.weight');
    const qd = c.numHeads * c.headDim;
    const kvd = c.numKvHeads * c.headDim;
    const layers: DecoderLayer[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      const norms = [
        ones(c.hiddenSize, `${p}.input_layernorm.weight`),
        ones(c.hiddenSize, `${p}.post_attention_layernorm.weight`),
      ] as const;
      const linears = {
        q_proj: mat(qd, c.hiddenSize, `${p}.self_attn.q_proj.weight`),
        k_proj: mat(kvd, c.hiddenSize, `${p}.self_attn.k_proj.weight`),
        v_proj: mat(kvd, c.hiddenSize, `${p}.self_attn.v_proj.weight`),
        o_proj: mat(c.hiddenSize, qd, `${p}.self_attn.o_proj.weight`),
        gate_proj: mat(c.intermediateSize, c.hiddenSize, `${p}.mlp.gate_proj.weight`),
        up_proj: mat(c.intermediateSize, c.hiddenSize, `${p}.mlp.up_proj.weight`),
        down_proj: mat(c.hiddenSize, c.intermediateSize, `${p}.mlp.down_proj.weight`),
      };
      // family tensors are drawn after the LLaMA ones, so a plain LLaMA draws what it always drew
      const extras: LayerExtras = {};
      if (c.qkvBias || c.oBias) {
        const vec = (n: number, name: string) => Tensor.param(fillNormal(rand, alloc(n), std), [n], name, false);
        extras.bias = {};
        if (c.qkvBias) {
          extras.bias.q_proj = vec(qd, `${p}.self_attn.q_proj.bias`);
          extras.bias.k_proj = vec(kvd, `${p}.self_attn.k_proj.bias`);
          extras.bias.v_proj = vec(kvd, `${p}.self_attn.v_proj.bias`);
        }
        if (c.oBias) extras.bias.o_proj = vec(c.hiddenSize, `${p}.self_attn.o_proj.bias`);
      }
      if (c.qkNorm) {
        extras.qNorm = ones(c.headDim, `${p}.self_attn.q_norm.weight`);
        extras.kNorm = ones(c.headDim, `${p}.self_attn.k_norm.weight`);
      }
      layers.push(new DecoderLayer(p, i, norms[0], norms[1], linears, extras));
    }
    const norm = ones(c.hiddenSize, 'model.norm.weight');
    const head = c.tieWordEmbeddings ? embed : mat(c.vocabSize, c.hiddenSize, 'lm_head.weight');
    return new LlamaModel(c, embed, layers, norm, head);
  }

  /** The same frozen embedding/norm/head with another list of layers (shares everything). */
  withLayers(layers: DecoderLayer[]): LlamaModel {
    return new LlamaModel(
      { ...this.config, numLayers: layers.length },
      this.embedTokens,
      layers,
      this.finalNorm,
      this.lmHead,
    );
  }

  // ---- forward pieces --------------------------------------------------------------------------

  embed(ids: Int32Array, B: number, T: number): Tensor {
    const table = this.embedTokens;
    if (table instanceof Tensor) return embedding(table, ids, [B, T]);
    // A frozen table in a stored format: widen the looked-up rows only.
    const [V, D] = table.shape as [number, number];
    const out = new Tensor(alloc(ids.length * D), [B, T, D], { name: 'embedding' });
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= V)
        throw new Error(
          `embedding: token id ${id} at position ${i} is outside the vocabulary [0, ${V}) of '${table.name}'`,
        );
      decodeWeightRow(table.format, table.bytes, D, id, out.data, i * D);
    }
    return out;
  }

  layerForward(layer: DecoderLayer, x: Tensor, ctx: ForwardContext, layerIndex: number): Tensor {
    const c = this.config;
    const { B, T } = ctx;
    const L = layer.linears;
    const h = rmsnorm(x, layer.attnNorm, c.rmsNormEps);
    const cache = ctx.cache ?? null;
    const posOffset = cache ? cache.length : 0;
    const { invFreq, attentionScale } = this.ropeFor(posOffset + T);
    // q, k and v in one gemm (LoRA per projection).
    let [qIn, kIn, v] = LoraLinear.forwardGroup([L.q_proj, L.k_proj, L.v_proj], h) as [Tensor, Tensor, Tensor];
    // Qwen3: RMSNorm over each head's vector before the rotation.
    if (layer.extras.qNorm) qIn = rmsnorm(qIn.view([B * T * c.numHeads, c.headDim]), layer.extras.qNorm, c.rmsNormEps);
    if (layer.extras.kNorm)
      kIn = rmsnorm(kIn.view([B * T * c.numKvHeads, c.headDim]), layer.extras.kNorm, c.rmsNormEps);
    let q = rope(qIn, invFreq, { B, T, H: c.numHeads, Dh: c.headDim }, posOffset);
    // YaRN scales cos and sin, i.e. every score, by attentionScale^2: folded into the queries.
    if (attentionScale !== 1) q = scale(q, attentionScale * attentionScale, 'rope.attention_scale');
    let k = rope(kIn, invFreq, { B, T, H: c.numKvHeads, Dh: c.headDim }, posOffset);
    let S = T;
    let keyMask = ctx.keyMask ?? null;
    if (cache) {
      if (B !== cache.batch) throw new Error(`KV cache holds batch ${cache.batch}, the input has batch ${B}`);
      if (posOffset + T > cache.capacity)
        throw new Error(`KV cache full: ${posOffset} + ${T} tokens exceed its capacity ${cache.capacity}`);
      const kv = cache.kvDim;
      const cap = cache.capacity;
      for (let b = 0; b < B; b++) {
        cache.k[layerIndex]!.set(k.data.subarray(b * T * kv, (b + 1) * T * kv), (b * cap + posOffset) * kv);
        cache.v[layerIndex]!.set(v.data.subarray(b * T * kv, (b + 1) * T * kv), (b * cap + posOffset) * kv);
      }
      if (B === 1) {
        // One row: attend over the filled prefix only.
        S = posOffset + T;
        k = new Tensor(cache.k[layerIndex]!.subarray(0, S * kv), [1, S, kv], { name: 'cache.k' });
        v = new Tensor(cache.v[layerIndex]!.subarray(0, S * kv), [1, S, kv], { name: 'cache.v' });
        keyMask = cache.keyMask ? cache.keyMask.subarray(0, S) : null;
      } else {
        // Several rows: attend over the whole capacity; causality hides the unfilled tail.
        S = cap;
        k = new Tensor(cache.k[layerIndex]!, [B, cap, kv], { name: 'cache.k' });
        v = new Tensor(cache.v[layerIndex]!, [B, cap, kv], { name: 'cache.v' });
        keyMask = cache.keyMask;
      }
    }
    const a = attention(
      q,
      k,
      v,
      { B, T, S, H: c.numHeads, Hkv: c.numKvHeads, Dh: c.headDim },
      { keyMask, qOffset: posOffset, window: c.slidingWindow ?? null },
    );
    // The residual adds ride on the o_proj and down_proj gemms (they accumulate onto the residual).
    const x2 = L.o_proj.forward(a, x);
    const h2 = rmsnorm(x2, layer.mlpNorm, c.rmsNormEps);
    const [gate, up] = LoraLinear.forwardGroup([L.gate_proj, L.up_proj], h2) as [Tensor, Tensor];
    return L.down_proj.forward(swiglu(gate, up), x2);
  }

  /**
   * Runs the given layers (default: all) over hidden states x [B, T, D]. A layer that nothing below
   * or inside it trains (a frozen prefix, or inference) keeps no activations: its intermediates go
   * back to the pool as soon as its output exists. This is what makes a FedBiOT client, which trains
   * only the top layers, hold the activations of those layers alone.
   */
  runLayers(x: Tensor, ctx: ForwardContext, layers: DecoderLayer[] = this.layers, firstIndex = 0): Tensor {
    let h = x;
    let prevTransient = false;
    layers.forEach((layer, i) => {
      const frozen = !tape.enabled || (!h.requiresGrad && !layer.hasTrainable());
      const out = frozen
        ? tape.transient(() => this.layerForward(layer, h, ctx, firstIndex + i))
        : ctx.recompute && !ctx.cache
          ? this.recomputedLayer(layer, h, ctx, firstIndex + i)
          : this.layerForward(layer, h, ctx, firstIndex + i);
      // The previous output was made here and only fed this layer: free it unless a backward reads it.
      if (frozen && prevTransient) h.dispose();
      prevTransient = frozen;
      h = out;
    });
    return h;
  }

  /**
   * layerForward under activation checkpointing (Tape.recompute). Each LoRA dropout mask is seeded by
   * one draw of its module's generator (LoraLinear): the first run records those draws and the
   * recomputation replays them, so both runs use the same masks.
   */
  private recomputedLayer(layer: DecoderLayer, x: Tensor, ctx: ForwardContext, index: number): Tensor {
    const mods = LINEAR_NAMES.map((n) => layer.linears[n]);
    const own = mods.map((m) => m.dropoutRandom);
    const draws: number[] = [];
    let runs = 0;
    return tape.recompute(() => {
      const replay = runs++ > 0;
      let next = 0;
      mods.forEach((m, j) => {
        const r = own[j]!;
        m.dropoutRandom = r && (replay ? () => draws[next++]! : () => draws[draws.push(r()) - 1]!);
      });
      try {
        return this.layerForward(layer, x, ctx, index);
      } finally {
        mods.forEach((m, j) => {
          m.dropoutRandom = own[j]!;
        });
      }
    });
  }

  /** The final norm: hidden [B, T, D] -> what the LM head reads. */
  normed(h: Tensor): Tensor {
    return rmsnorm(h, this.finalNorm, this.config.rmsNormEps);
  }

  /** Final norm and LM head: hidden [B, T, D] -> logits [B, T, V]. */
  head(h: Tensor): Tensor {
    return linear(this.normed(h), this.lmHead, 'lm_head');
  }

  /**
   * Final norm, LM head and the losses on its logits (next-token CE, KL against a teacher's normed
   * hidden states), in row chunks so that the [B*T, V] logits never exist whole (see head-loss.ts).
   * A trainable head (pretraining) takes the unchunked path, which gives the head its gradient.
   */
  headLosses(h: Tensor, terms: HeadLossTerms): HeadLosses {
    const w = this.lmHead;
    if (!(w instanceof Tensor && w.requiresGrad && tape.enabled)) return headLosses(this.normed(h), w, terms);
    const logits = this.head(h);
    return {
      ce: terms.ce ? crossEntropy(logits, terms.ce.targets, terms.ce.ignoreIndex ?? -100) : null,
      kl: terms.kl
        ? klDivergence(
            noGrad(() => linear(new Tensor(terms.kl!.teacherHidden, h.shape), w).data),
            logits,
            {
              rowWeight: terms.kl.rowWeight ?? null,
            },
          )
        : null,
    };
  }

  forward(ids: Int32Array, ctx: ForwardContext): Tensor {
    if (ctx.cache) {
      const out = this.head(this.runLayers(this.embed(ids, ctx.B, ctx.T), ctx));
      ctx.cache.length += ctx.T;
      return out;
    }
    return this.head(this.runLayers(this.embed(ids, ctx.B, ctx.T), ctx));
  }

  // ---- parameters ------------------------------------------------------------------------------

  attachLora(
    spec: LoraSpec & { targets: readonly LinearName[] },
    seed: number,
    layers: DecoderLayer[] = this.layers,
  ): void {
    const rand: Random = mulberry32(seed);
    for (const layer of layers) for (const t of spec.targets) layer.linears[t].attachLora(spec, rand);
  }

  loraParams(layers: DecoderLayer[] = this.layers): Tensor[] {
    return layers.flatMap((l) => l.loraParams());
  }

  /** Every base weight by Hugging Face name, in its stored format (nothing is widened). */
  baseWeights(): Map<string, Weight> {
    const m = new Map<string, Weight>();
    m.set('model.embed_tokens.weight', this.embedTokens);
    for (const l of this.layers) for (const [k, v] of l.baseWeights()) m.set(k, v);
    m.set('model.norm.weight', this.finalNorm);
    if (!this.config.tieWordEmbeddings) m.set('lm_head.weight', this.lmHead);
    return m;
  }

  /**
   * Every base tensor by Hugging Face name as f32 (stored-format weights widened, all at once: for
   * a large BF16 model prefer baseWeights() and widened() one tensor at a time).
   */
  baseTensors(): Map<string, Tensor> {
    return new Map([...this.baseWeights()].map(([k, w]) => [k, widened(w)]));
  }

  /** Logits [B, V] of the last position of each row (ids [B, T]), no graph recorded. */
  lastLogits(ids: Int32Array, cache: KVCache): Float32Array {
    return noGrad(() => {
      const B = cache.batch;
      const T = ids.length / B;
      const h = this.runLayers(this.embed(ids, B, T), { B, T, cache });
      cache.length += T;
      // The head reads only each row's last position: a prompt's other positions need no logits.
      const D = this.config.hiddenSize;
      const lastRows = T === 1 ? h : new Tensor(alloc(B * D), [B, 1, D], { name: 'last_hidden' });
      if (T > 1)
        for (let b = 0; b < B; b++) lastRows.data.set(h.data.subarray((b * T + T - 1) * D, (b * T + T) * D), b * D);
      return Float32Array.from(this.head(lastRows).data);
    });
  }
}
