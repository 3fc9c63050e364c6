/**
 * Hugging Face LLaMA tensor names and the shapes a config implies.
 * Shapes are PyTorch order: nn.Linear weights are [out_features, in_features].
 */
import type { LlamaConfig } from './hf-config.js';

export const HF_ATTN_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const HF_MLP_MODULES = ['gate_proj', 'up_proj', 'down_proj'] as const;
export type HfLinearModule = (typeof HF_ATTN_MODULES)[number] | (typeof HF_MLP_MODULES)[number];

/** "layers.N.self_attn.q_proj" / "layers.N.mlp.gate_proj": the module path used by PEFT keys. */
export function hfModulePath(layer: number, module: HfLinearModule): string {
  const group = (HF_ATTN_MODULES as readonly string[]).includes(module) ? 'self_attn' : 'mlp';
  return `layers.${layer}.${group}.${module}`;
}

/** [out, in] of a linear module for this config. */
export function hfLinearShape(c: LlamaConfig, module: HfLinearModule): [number, number] {
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  switch (module) {
    case 'q_proj':
      return [q, c.hiddenSize];
    case 'k_proj':
      return [kv, c.hiddenSize];
    case 'v_proj':
      return [kv, c.hiddenSize];
    case 'o_proj':
      return [c.hiddenSize, q];
    case 'gate_proj':
      return [c.intermediateSize, c.hiddenSize];
    case 'up_proj':
      return [c.intermediateSize, c.hiddenSize];
    case 'down_proj':
      return [c.hiddenSize, c.intermediateSize];
  }
}

/** The tensors a family adds to LLaMA's: projection biases, per-head q/k norms. */
export interface FamilyTensors {
  /** q_proj, k_proj, v_proj have a bias (Qwen2 always; llama / qwen3 with attention_bias). */
  qkvBias: boolean;
  /** o_proj has a bias (llama / qwen3 with attention_bias). */
  oBias: boolean;
  /** self_attn.q_norm / k_norm, RMSNorm weights [head_dim] (Qwen3). */
  qkNorm: boolean;
}

export function familyTensors(c: LlamaConfig): FamilyTensors {
  return {
    qkvBias: c.modelType === 'qwen2' || c.attentionBias,
    oBias: c.attentionBias,
    qkNorm: c.modelType === 'qwen3',
  };
}

/** Every tensor a LLaMA-family checkpoint must hold, with its shape, in canonical order. */
export function llamaTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const f = familyTensors(c);
  m.set('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    for (const mod of [...HF_ATTN_MODULES, ...HF_MLP_MODULES]) {
      const shape = hfLinearShape(c, mod);
      m.set(`model.${hfModulePath(l, mod)}.weight`, shape);
      if (
        (f.qkvBias && mod !== 'o_proj' && (HF_ATTN_MODULES as readonly string[]).includes(mod)) ||
        (f.oBias && mod === 'o_proj')
      ) {
        m.set(`model.${hfModulePath(l, mod)}.bias`, [shape[0]]);
      }
    }
    if (f.qkNorm) {
      m.set(`model.layers.${l}.self_attn.q_norm.weight`, [c.headDim]);
      m.set(`model.layers.${l}.self_attn.k_norm.weight`, [c.headDim]);
    }
    m.set(`model.layers.${l}.input_layernorm.weight`, [c.hiddenSize]);
    m.set(`model.layers.${l}.post_attention_layernorm.weight`, [c.hiddenSize]);
  }
  m.set('model.norm.weight', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return m;
}
