// Kernel selection: the native addon when it loads, otherwise the TypeScript reference (with one
// warning line saying why). FEDBIOT_KERNELS=reference forces the reference.

import type { Kernels } from './api.js';
import { loadNativeKernels, nativeLoadError } from './native.js';
import { referenceKernels } from './reference.js';

export type { FArr, Kernels } from './api.js';
export { referenceKernels } from './reference.js';
export { loadNativeKernels, nativeLoadError, gemmPaths, gemmPath, setGemmPath, peakGflops } from './native.js';

let warned = false;

export function getKernels(): Kernels<Float32Array> {
  if (process.env['FEDBIOT_KERNELS'] === 'reference') return referenceKernels<Float32Array>();
  const native = loadNativeKernels();
  if (native) return native;
  if (!warned) {
    warned = true;
    console.warn(
      `fedbiot: native kernels unavailable (${nativeLoadError()}); using the slow TypeScript reference kernels.`,
    );
  }
  return referenceKernels<Float32Array>();
}
