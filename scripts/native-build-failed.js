// Called when node-gyp fails at install: the engine still works on its TypeScript kernels.
console.warn(
  'fedbiot: native kernels did not build (is libopenblas-dev installed?); the TypeScript kernels will be used.',
);
