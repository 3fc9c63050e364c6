// Synthetic tasks: math (GSM8K-style), code (JavaScript functions with tests), qa (packaged facts).

import type { TaskName, TaskOptions, TaskSplits } from './common.js';
import { generateCodeTask } from './code.js';
import { generateMathTask } from './math.js';
import { generateQaTask, type QaOptions } from './qa.js';

export * from './common.js';
export * from './math.js';
export * from './code.js';
export * from './qa.js';
export * from './facts.js';
export * from './export.js';

export const TASK_NAMES: readonly TaskName[] = ['math', 'code', 'qa'];

/** Generates a task by name. */
export function generateTask(name: TaskName, opts: TaskOptions & QaOptions = {}): TaskSplits {
  switch (name) {
    case 'math':
      return generateMathTask(opts);
    case 'code':
      return generateCodeTask(opts);
    case 'qa':
      return generateQaTask(opts);
    default:
      throw new Error(`unknown task "${String(name)}" (${TASK_NAMES.join(', ')})`);
  }
}
