// The Python interpreter that runs the benchmarks' PyTorch side: FEDBIOT_TORCH_PYTHON, else the
// venv `npm run setup:torch` makes under .cache/ (current torch from pip).
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const TORCH_PYTHON =
  process.env.FEDBIOT_TORCH_PYTHON ?? path.join(ROOT, '.cache', 'torch-venv', 'bin', 'python');
