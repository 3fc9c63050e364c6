// Compressed model updates: block quantization, top-k with error feedback, deltas, the wire format
// and what peers negotiate at join. Used by the federation driver for both directions.
export * from './blocks.js';
export * from './topk.js';
export * from './layout.js';
export * from './delta.js';
export * from './wire.js';
export * from './negotiate.js';
export * from './stream.js';
