/**
 * Trains our byte-level BPE tokenizer (GPT-2 style: regex pre-tokenization, bytes
 * mapped to printable characters, no unknown characters possible) and writes a
 * standard tokenizer.json + tokenizer_config.json.
 *
 * Training is the incremental algorithm: count pairs once, then for each merge only
 * revisit the words that contain the chosen pair (found through a pair -> words
 * index) and update counts by difference; a lazy max-heap picks the next pair.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BYTE_TO_CHAR, GPT2_SPLIT_PATTERN } from './bpe.js';
import { writeTextAtomic } from './byte-source.js';
import { HfTokenizer } from './tokenizer.js';

/** Fixed ids of our special tokens (LLaMA's order, plus <pad>). */
export const SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>'] as const;
export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const PAD_ID = 3;

export interface BpeTrainOptions {
  /** Final vocabulary size including the 4 specials and 256 byte tokens. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** Called every 500 merges. */
  onProgress?: (merges: number, target: number) => void;
}

export interface TrainedBpe {
  /** Token strings by id (byte-level characters). */
  vocab: string[];
  merges: [string, string][];
}

const KEY = 2 ** 21; // pair key = left * KEY + right; ids stay below 2^21

/** Counts pre-tokenized words of a corpus (strings or chunks of it). */
export function countWords(texts: Iterable<string>, counts = new Map<string, number>()): Map<string, number> {
  const re = new RegExp(GPT2_SPLIT_PATTERN, 'gu');
  for (const t of texts) {
    for (const m of t.matchAll(re)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  }
  return counts;
}

export function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions): TrainedBpe {
  const base = SPECIAL_TOKENS.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base)
    throw new RangeError(`vocabSize must be at least ${base}`);
  if (opts.vocabSize >= KEY) throw new RangeError('vocabSize too large');
  const minFreq = opts.minFrequency ?? 2;
  const wordCounts = countWords(texts);

  // symbols: 0..255 = bytes; merged symbols get ids from 256 up (specials are added at the end)
  const symStr: string[] = BYTE_TO_CHAR.slice();
  const strToSym = new Map(symStr.map((s, i) => [s, i]));
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push([...Buffer.from(w, 'utf8')]);
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const k = w[i]! * KEY + w[i + 1]!;
      pairCount.set(k, (pairCount.get(k) ?? 0) + freq[wi]!);
      let s = where.get(k);
      if (!s) where.set(k, (s = new Set()));
      s.add(wi);
    }
  }

  // max-heap on (count desc, key asc) with lazy deletion
  const hc: number[] = [];
  const hk: number[] = [];
  const better = (i: number, j: number) => hc[i]! > hc[j]! || (hc[i] === hc[j] && hk[i]! < hk[j]!);
  const swap = (i: number, j: number) => {
    [hc[i], hc[j]] = [hc[j]!, hc[i]!];
    [hk[i], hk[j]] = [hk[j]!, hk[i]!];
  };
  const push = (c: number, k: number) => {
    hc.push(c);
    hk.push(k);
    for (let i = hc.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!better(i, p)) break;
      swap(i, p);
      i = p;
    }
  };
  const pop = () => {
    swap(0, hc.length - 1);
    hc.pop();
    hk.pop();
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < hc.length && better(l, m)) m = l;
      if (r < hc.length && better(r, m)) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  };
  for (const [k, c] of pairCount) push(c, k);

  const merges: [string, string][] = [];
  const target = opts.vocabSize - SPECIAL_TOKENS.length;
  while (symStr.length < target && hc.length > 0) {
    const c = hc[0]!;
    const k = hk[0]!;
    pop();
    const cur = pairCount.get(k) ?? 0;
    if (cur !== c) {
      if (cur > 0) push(cur, k);
      continue;
    }
    if (c < minFreq) break;
    const a = Math.floor(k / KEY);
    const b = k % KEY;
    const s = symStr[a]! + symStr[b]!;
    let id = strToSym.get(s);
    if (id === undefined) {
      id = symStr.length;
      symStr.push(s);
      strToSym.set(s, id);
    }
    merges.push([symStr[a]!, symStr[b]!]);
    const before = new Map<number, number>();
    const note = (key: number) => {
      if (!before.has(key)) before.set(key, pairCount.get(key) ?? 0);
    };
    for (const wi of where.get(k) ?? []) {
      const w = words[wi]!;
      const f = freq[wi]!;
      // remove this word's pairs, merge, add them back: words are short, so this is cheap
      for (let i = 0; i + 1 < w.length; i++) {
        const pk = w[i]! * KEY + w[i + 1]!;
        note(pk);
        pairCount.set(pk, pairCount.get(pk)! - f);
      }
      const nw: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          nw.push(id);
          i++;
        } else nw.push(w[i]!);
      }
      words[wi] = nw;
      for (let i = 0; i + 1 < nw.length; i++) {
        const pk = nw[i]! * KEY + nw[i + 1]!;
        note(pk);
        pairCount.set(pk, (pairCount.get(pk) ?? 0) + f);
        let set = where.get(pk);
        if (!set) where.set(pk, (set = new Set()));
        set.add(wi);
      }
    }
    where.delete(k);
    pairCount.delete(k);
    for (const [pk, old] of before) {
      const now = pairCount.get(pk) ?? 0;
      if (now <= 0) pairCount.delete(pk);
      if (now > old) push(now, pk);
    }
    if (opts.onProgress && merges.length % 500 === 0) opts.onProgress(merges.length, target - 256);
  }
  return { vocab: [...SPECIAL_TOKENS, ...symStr], merges };
}

/** tokenizer.json (Hugging Face schema) for a trained byte-level BPE. */
export function trainedToTokenizerJson(t: TrainedBpe): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  t.vocab.forEach((s, i) => {
    vocab[s] = i;
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: t.merges.map(([a, b]) => [a, b]),
    },
  };
}

export function trainedTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    clean_up_tokenization_spaces: false,
    model_max_length: 4096,
    added_tokens_decoder: Object.fromEntries(
      SPECIAL_TOKENS.map((content, id) => [
        String(id),
        { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
  };
}

/** Writes tokenizer.json + tokenizer_config.json into `dir` and returns the loaded tokenizer. */
export function writeTrainedTokenizer(dir: string, t: TrainedBpe): HfTokenizer {
  fs.mkdirSync(dir, { recursive: true });
  const json = trainedToTokenizerJson(t);
  const cfg = trainedTokenizerConfig();
  writeTextAtomic(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeTextAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg, null, 2) + '\n');
  return new HfTokenizer(json, cfg, path.join(dir, 'tokenizer.json'));
}
