export * from './math.js';
export * from './text.js';
export * from './code.js';
export * from './perplexity.js';
export * from './score.js';
