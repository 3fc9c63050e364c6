/** File formats: safetensors, HF model folders and configs, PEFT, GGUF, tokenizers. */
export * from './types.js';
export { DTYPE_BYTES, quantize, f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from './dtype.js';
export * from './safetensors.js';
export * from './hf-config.js';
export * from './hf-folder.js';
export * from './llama-names.js';
export * from './peft.js';
export * from './gguf.js';
export * from './gguf-llama.js';
export * from './tokenizer.js';
export * from './bpe-trainer.js';
export * from './llama-cpp.js';
