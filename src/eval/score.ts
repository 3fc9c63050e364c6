// One entry point to score generated outputs for a task's test examples.

import type { Example } from '../data/types.js';
import { evaluateCode, type PassAtOneResult, type SandboxOptions } from './code.js';
import { extractAnswer, mathAccuracy, type AccuracyResult } from './math.js';
import { textScores, type TextScores } from './text.js';

export type TaskScore =
  | { task: 'math'; accuracy: number; detail: AccuracyResult }
  | { task: 'qa'; exactMatch: number; rougeL: number; detail: TextScores }
  | { task: 'code'; passAt1: number; detail: PassAtOneResult };

/** The gold number of a math example: meta.answer, meta.finalAnswer, or extracted from the response. */
export function goldNumber(ex: Example): number | null {
  const m = ex.meta ?? {};
  for (const k of ['answer', 'finalAnswer']) {
    const v = m[k];
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v.replace(/[,$]/g, ''))))
      return Number(v.replace(/[,$]/g, ''));
  }
  return extractAnswer(ex.response);
}

/**
 * Scores outputs[i] against examples[i]. math: final-number accuracy; qa: exact match against
 * meta.answers (or the response) and Rouge-L; code: pass@1 against meta.tests in the sandbox.
 */
export async function scoreTask(
  task: 'math' | 'qa' | 'code',
  examples: readonly Example[],
  outputs: readonly string[],
  opts: SandboxOptions & { concurrency?: number } = {},
): Promise<TaskScore> {
  if (examples.length !== outputs.length)
    throw new Error(`scoreTask: ${outputs.length} outputs for ${examples.length} examples`);
  switch (task) {
    case 'math': {
      const detail = mathAccuracy(
        outputs,
        examples.map((e) => goldNumber(e) ?? NaN),
      );
      return { task, accuracy: detail.accuracy, detail };
    }
    case 'qa': {
      const refs = examples.map((e) => {
        const a = e.meta?.answers;
        return Array.isArray(a) && a.every((x) => typeof x === 'string') ? (a as string[]) : [e.response];
      });
      const detail = textScores(outputs, refs);
      return { task, exactMatch: detail.exactMatch, rougeL: detail.rougeL, detail };
    }
    case 'code': {
      const detail = await evaluateCode(
        examples.map((e, i) => {
          const tests = e.meta?.tests;
          if (!Array.isArray(tests)) throw new Error(`scoreTask: example ${e.id} has no meta.tests`);
          return { output: outputs[i]!, tests: tests as string[] };
        }),
        opts,
      );
      return { task, passAt1: detail.passAt1, detail };
    }
  }
}
