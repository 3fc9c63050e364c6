export * from './types.js';
export * from './loaders.js';
export * from './templates.js';
export * from './encode.js';
export * from './batch.js';
export * from './split.js';
export * from './corpus.js';
