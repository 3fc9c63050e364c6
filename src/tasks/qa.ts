// Short-answer questions from packaged facts. Categories follow the source of the fact:
// 'capitals' (US states), 'definitions' and 'antonyms' (WordNet). Answers are short; meta.answers
// lists acceptable answers for exact match, meta.fact names the underlying fact.

import type { Random } from '../util/rng.js';
import { assembleSplits, pick, type Draft, type TaskOptions, type TaskSplits } from './common.js';
import { loadCapitals, loadWordnetFacts } from './facts.js';

export const QA_CATEGORIES = ['capitals', 'definitions', 'antonyms'] as const;
export type QaCategory = (typeof QA_CATEGORIES)[number];

export interface QaOptions extends TaskOptions {
  /**
   * 'prompt' (default): train and test share no prompt text, but a fact may be asked in train with
   * one phrasing and in test with another (tests recall across phrasings).
   * 'fact': no fact appears in both (tests knowledge the model had before fine-tuning).
   */
  splitBy?: 'prompt' | 'fact';
  categories?: readonly QaCategory[];
}

// Alternative spellings accepted by exact match.
const ALIASES: Record<string, string[]> = { 'Saint Paul': ['St. Paul', 'St Paul'] };

function capitalQuestion(r: Random): Draft {
  const { state, capital } = pick(r, loadCapitals());
  const reverse = r() < 0.3;
  if (reverse) {
    const q = pick(r, [`${capital} is the capital of which state?`, `Which US state has ${capital} as its capital?`]);
    return {
      instruction: q,
      response: state,
      category: 'capitals',
      meta: { answers: [state], fact: `capital:${state}` },
    };
  }
  const q = pick(r, [
    `What is the capital of ${state}?`,
    `Which city is the capital of ${state}?`,
    `Name the capital city of ${state}.`,
    `What city is the state capital of ${state}?`,
  ]);
  return {
    instruction: q,
    response: capital,
    category: 'capitals',
    meta: { answers: [capital, ...(ALIASES[capital] ?? [])], fact: `capital:${state}` },
  };
}

function definitionQuestion(r: Random): Draft {
  const { word, pos, definition } = pick(r, loadWordnetFacts().definitions);
  const q = pick(r, [
    `What does the word "${word}" mean?`,
    `Define the ${pos} "${word}".`,
    `Give a short definition of "${word}".`,
    `What is the meaning of the ${pos} "${word}"?`,
  ]);
  return {
    instruction: q,
    response: definition,
    category: 'definitions',
    meta: { answers: [definition], fact: `def:${word}:${pos}` },
  };
}

function antonymQuestion(r: Random): Draft {
  const { word, antonym } = pick(r, loadWordnetFacts().antonyms);
  const q = pick(r, [
    `What is the opposite of "${word}"?`,
    `Give an antonym of "${word}".`,
    `Which word means the opposite of "${word}"?`,
  ]);
  return { instruction: q, response: antonym, category: 'antonyms', meta: { answers: [antonym], fact: `ant:${word}` } };
}

const MAKERS: Record<QaCategory, (r: Random) => Draft> = {
  capitals: capitalQuestion,
  definitions: definitionQuestion,
  antonyms: antonymQuestion,
};

export function generateQaQuestion(rand: Random, category?: QaCategory): Draft {
  return MAKERS[category ?? pick(rand, QA_CATEGORIES)](rand);
}

export function generateQaTask(opts: QaOptions = {}): TaskSplits {
  const cats = opts.categories ?? QA_CATEGORIES;
  const splits = assembleSplits('qa', [...cats], (r) => generateQaQuestion(r, pick(r, cats)), {
    ...opts,
    defaultTrain: 2000,
    defaultTest: 200,
  });
  if (opts.splitBy === 'fact') {
    const testFacts = new Set(splits.test.map((e) => e.meta!.fact as string));
    const before = splits.train.length;
    splits.train = splits.train
      .filter((e) => !testFacts.has(e.meta!.fact as string))
      .map((e, i) => ({ ...e, id: `qa-train-${i}` }));
    if (splits.train.length < before)
      splits.warnings.push(`qa: splitBy=fact removed ${before - splits.train.length} train questions about test facts`);
  }
  return splits;
}
