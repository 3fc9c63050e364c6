/**
 * Tokenizers loaded from a Hugging Face tokenizer.json (+ tokenizer_config.json).
 *
 * Supports BPE models in both common styles:
 *  - SentencePiece-style (LLaMA-2, Mistral): Prepend/Replace normalizer or Metaspace
 *    pre-tokenizer, byte fallback to <0xXX> tokens, ByteFallback/Fuse/Strip decoder;
 *  - byte-level (GPT-2, LLaMA-3, Qwen, ours): regex split, bytes mapped to printable
 *    characters, ByteLevel decoder.
 * Added/special tokens are split out of the text before normalisation, as HF does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BYTE_TO_CHAR, CHAR_TO_BYTE, GPT2_SPLIT_PATTERN, bpeMerge, buildMergeTable, type MergeTable } from './bpe.js';
import type { GgufVocab } from './gguf-llama.js';
import { FormatError } from './types.js';

export interface EncodeOptions {
  /** Add the BOS/EOS tokens the tokenizer is configured to add (default true). */
  addSpecial?: boolean;
}
export interface DecodeOptions {
  /** Drop special tokens such as <s> and </s> (default false). */
  skipSpecial?: boolean;
}

export interface Tokenizer {
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  readonly unkId: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** Jinja chat template from tokenizer_config.json, if any (kept, not interpreted). */
  readonly chatTemplate: string | undefined;
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
  isSpecial(id: number): boolean;
}

type Json = Record<string, unknown>;

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Converts an Oniguruma/Rust regex from tokenizer.json to a JS one. The only
 * construct in common use that JS (Node 20) lacks is the scoped case-insensitive
 * group "(?i:...)", which we expand into [xX] classes.
 */
export function toJsRegexSource(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    if (src.startsWith('(?i:', i)) {
      let depth = 1;
      let j = i + 4;
      let inner = '';
      let inClass = false;
      while (j < src.length && depth > 0) {
        const ch = src[j]!;
        if (ch === '\\') {
          inner += ch + (src[j + 1] ?? '');
          j += 2;
          continue;
        }
        if (inClass) {
          if (ch === ']') inClass = false;
          inner += ch;
          j++;
          continue;
        }
        if (ch === '[') {
          inClass = true;
          inner += ch;
          j++;
          continue;
        }
        if (ch === '(') depth++;
        if (ch === ')') {
          depth--;
          if (depth === 0) break;
        }
        inner += /[a-zA-Z]/.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
        j++;
      }
      out += `(?:${inner})`;
      i = j + 1;
    } else if (src[i] === '\\') {
      out += src.slice(i, i + 2);
      i += 2;
    } else {
      out += src[i];
      i++;
    }
  }
  return out;
}

function patternRegex(p: unknown, where: string): RegExp {
  const o = p as Json;
  if (typeof o?.String === 'string') return new RegExp(escapeRe(o.String), 'gu');
  if (typeof o?.Regex === 'string') {
    try {
      return new RegExp(toJsRegexSource(o.Regex), 'gu');
    } catch (e) {
      throw new Error(`${where}: unsupported regex ${JSON.stringify(o.Regex)}: ${(e as Error).message}`);
    }
  }
  throw new Error(`${where}: pattern must be {String} or {Regex}`);
}

// ---------- normalizers: string -> string ----------
type Normalizer = (s: string) => string;

function buildNormalizer(n: unknown, where: string): Normalizer {
  if (n === null || n === undefined) return (s) => s;
  const o = n as Json;
  switch (o.type) {
    case 'Sequence': {
      const parts = ((o.normalizers as unknown[]) ?? []).map((x, i) =>
        buildNormalizer(x, `${where}.normalizers[${i}]`),
      );
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    case 'Prepend': {
      const p = String(o.prepend);
      return (s) => (s.length > 0 ? p + s : s);
    }
    case 'Replace': {
      const re = patternRegex(o.pattern, where);
      const content = String(o.content);
      return (s) => s.replace(re, () => content);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = o.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'Strip': {
      const l = o.strip_left !== false;
      const r = o.strip_right !== false;
      return (s) => (l && r ? s.trim() : l ? s.trimStart() : r ? s.trimEnd() : s);
    }
    default:
      throw new Error(`${where}: unsupported normalizer ${JSON.stringify(o.type)}`);
  }
}

// ---------- pre-tokenizers: pieces -> pieces ----------
type PreTok = (pieces: string[], isFirstSegment: boolean) => string[];

/** Splits `s` around regex matches according to HF's SplitDelimiterBehavior. */
function splitBy(s: string, re: RegExp, behavior: string, invert: boolean): string[] {
  // (isMatch, text) spans covering s
  const spans: [boolean, string][] = [];
  let last = 0;
  re.lastIndex = 0;
  for (const m of s.matchAll(re)) {
    if (m[0].length === 0) continue;
    if (m.index! > last) spans.push([false, s.slice(last, m.index)]);
    spans.push([true, m[0]]);
    last = m.index! + m[0].length;
  }
  if (last < s.length) spans.push([false, s.slice(last)]);
  if (invert) for (const sp of spans) sp[0] = !sp[0];
  const out: string[] = [];
  switch (behavior) {
    case 'Isolated':
      for (const [, t] of spans) out.push(t);
      break;
    case 'Removed':
      for (const [m, t] of spans) if (!m) out.push(t);
      break;
    case 'MergedWithPrevious': {
      let cur = '';
      for (const [m, t] of spans) {
        cur += t;
        if (m) {
          out.push(cur);
          cur = '';
        }
      }
      if (cur) out.push(cur);
      break;
    }
    case 'MergedWithNext': {
      let cur = '';
      for (const [m, t] of spans) {
        if (m && cur) {
          out.push(cur);
          cur = '';
        }
        cur += t;
      }
      if (cur) out.push(cur);
      break;
    }
    case 'Contiguous': {
      let cur = '';
      let curM: boolean | undefined;
      for (const [m, t] of spans) {
        if (curM === m) cur += t;
        else {
          if (cur) out.push(cur);
          cur = t;
          curM = m;
        }
      }
      if (cur) out.push(cur);
      break;
    }
    default:
      throw new Error(`unsupported split behavior ${JSON.stringify(behavior)}`);
  }
  return out;
}

interface PreTokInfo {
  fn: PreTok;
  byteLevel: boolean;
  gpt2Regex: boolean;
  splitRegexes: string[];
}

function byteLevelMap(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += BYTE_TO_CHAR[b];
  return out;
}

function buildPreTok(p: unknown, where: string, info: PreTokInfo): PreTok {
  if (p === null || p === undefined) return (x) => x;
  const o = p as Json;
  switch (o.type) {
    case 'Sequence': {
      const parts = ((o.pretokenizers as unknown[]) ?? []).map((x, i) =>
        buildPreTok(x, `${where}.pretokenizers[${i}]`, info),
      );
      return (pieces, first) => parts.reduce((acc, f) => f(acc, first), pieces);
    }
    case 'Metaspace': {
      const rep = String(o.replacement ?? '▁');
      const scheme =
        typeof o.prepend_scheme === 'string' ? o.prepend_scheme : o.add_prefix_space === false ? 'never' : 'always';
      const split = o.split !== false;
      return (pieces, first) =>
        pieces.flatMap((s, i) => {
          let t = s.replaceAll(' ', rep);
          const prepend = scheme === 'always' || (scheme === 'first' && first && i === 0);
          if (prepend && !t.startsWith(rep)) t = rep + t;
          return split ? splitBy(t, new RegExp(escapeRe(rep), 'gu'), 'MergedWithNext', false) : [t];
        });
    }
    case 'ByteLevel': {
      info.byteLevel = true;
      const addPrefix = o.add_prefix_space === true;
      const useRegex = o.use_regex !== false;
      if (useRegex) info.gpt2Regex = true;
      const re = new RegExp(GPT2_SPLIT_PATTERN, 'gu');
      return (pieces) =>
        pieces.flatMap((s) => {
          const t = addPrefix && !s.startsWith(' ') ? ' ' + s : s;
          return (useRegex ? splitBy(t, re, 'Isolated', false) : [t]).map(byteLevelMap);
        });
    }
    case 'Split': {
      const re = patternRegex(o.pattern, where);
      const pat = o.pattern as Json;
      info.splitRegexes.push(String(pat.Regex ?? pat.String));
      const behavior = String(o.behavior ?? 'Isolated');
      const invert = o.invert === true;
      return (pieces) => pieces.flatMap((s) => splitBy(s, re, behavior, invert));
    }
    case 'Digits': {
      const re = o.individual_digits === true ? /\p{Nd}/gu : /\p{Nd}+/gu;
      return (pieces) => pieces.flatMap((s) => splitBy(s, re, 'Isolated', false));
    }
    case 'WhitespaceSplit':
      return (pieces) => pieces.flatMap((s) => s.split(/\s+/u).filter((x) => x.length > 0));
    case 'Whitespace':
      return (pieces) => pieces.flatMap((s) => s.match(/\w+|[^\w\s]+/gu) ?? []);
    case 'Punctuation':
      return (pieces) => pieces.flatMap((s) => splitBy(s, /\p{P}/gu, String(o.behavior ?? 'Isolated'), false));
    default:
      throw new Error(`${where}: unsupported pre_tokenizer ${JSON.stringify(o.type)}`);
  }
}

// ---------- decoders: tokens -> tokens ----------
type Decoder = (tokens: string[]) => string[];

const BYTE_TOKEN_RE = /^<0x([0-9A-Fa-f]{2})>$/;
const lossyUtf8 = new TextDecoder('utf-8');

function buildDecoder(d: unknown, where: string): Decoder {
  if (d === null || d === undefined) return (t) => t;
  const o = d as Json;
  switch (o.type) {
    case 'Sequence': {
      const parts = ((o.decoders as unknown[]) ?? []).map((x, i) => buildDecoder(x, `${where}.decoders[${i}]`));
      return (t) => parts.reduce((acc, f) => f(acc), t);
    }
    case 'Replace': {
      const re = patternRegex(o.pattern, where);
      const content = String(o.content);
      return (t) => t.map((s) => s.replace(re, () => content));
    }
    case 'ByteFallback':
      return (tokens) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = () => {
          if (bytes.length === 0) return;
          try {
            out.push(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)));
          } catch {
            for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
          }
          bytes = [];
        };
        for (const t of tokens) {
          const m = BYTE_TOKEN_RE.exec(t);
          if (m) bytes.push(parseInt(m[1]!, 16));
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
    case 'Fuse':
      return (t) => [t.join('')];
    case 'Strip': {
      const c = String(o.content ?? ' ');
      const start = Number(o.start ?? 0);
      const stop = Number(o.stop ?? 0);
      return (t) =>
        t.map((s) => {
          let a = 0;
          let b = s.length;
          for (let k = 0; k < start && s.startsWith(c, a); k++) a += c.length;
          for (let k = 0; k < stop && b - c.length >= a && s.slice(b - c.length, b) === c; k++) b -= c.length;
          return s.slice(a, b);
        });
    }
    case 'Metaspace': {
      const rep = String(o.replacement ?? '▁');
      const scheme =
        typeof o.prepend_scheme === 'string' ? o.prepend_scheme : o.add_prefix_space === false ? 'never' : 'always';
      return (t) =>
        t.map((s, i) => {
          const r = s.replaceAll(rep, ' ');
          return i === 0 && scheme !== 'never' && r.startsWith(' ') ? r.slice(1) : r;
        });
    }
    case 'ByteLevel':
      return (t) => {
        const bytes: number[] = [];
        for (const ch of t.join('')) {
          const b = CHAR_TO_BYTE.get(ch);
          if (b !== undefined) bytes.push(b);
          else for (const x of Buffer.from(ch, 'utf8')) bytes.push(x);
        }
        return [lossyUtf8.decode(Uint8Array.from(bytes))];
      };
    default:
      throw new Error(`${where}: unsupported decoder ${JSON.stringify(o.type)}`);
  }
}

function specialName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

/** A BPE tokenizer built from tokenizer.json data. */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  readonly unkId: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly chatTemplate: string | undefined;
  /** "sentencepiece" (byte fallback, metaspace) or "byte-level". */
  readonly style: 'sentencepiece' | 'byte-level';

  private readonly vocab = new Map<string, number>();
  private readonly idToTok: (string | undefined)[] = [];
  private readonly merges: [string, string][];
  private readonly table: MergeTable;
  private readonly added: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedRe: RegExp | undefined;
  private readonly normalize: Normalizer;
  private readonly preTok: PreTok;
  private readonly decoder: Decoder;
  private readonly preInfo: PreTokInfo = { fn: (x) => x, byteLevel: false, gpt2Regex: false, splitRegexes: [] };
  private readonly byteFallback: boolean;
  private readonly ignoreMerges: boolean;
  private readonly fuseUnk: boolean;
  private readonly byteIds: number[] | undefined;
  private readonly prefix: number[];
  private readonly suffix: number[];
  private readonly cache = new Map<string, number[]>();

  constructor(
    json: unknown,
    config: unknown = {},
    readonly source = 'tokenizer.json',
  ) {
    const where = source;
    if (!json || typeof json !== 'object') throw new FormatError(where, 'not a JSON object');
    const j = json as Json;
    const model = j.model as Json;
    if (!model || typeof model !== 'object') throw new FormatError(where, 'missing "model"');
    if (model.type !== undefined && model.type !== 'BPE')
      throw new FormatError(where, `model type ${JSON.stringify(model.type)} is not supported (only BPE)`);
    if (model.continuing_subword_prefix || model.end_of_word_suffix)
      throw new FormatError(where, 'BPE continuing_subword_prefix / end_of_word_suffix are not supported');
    const v = model.vocab as Record<string, unknown>;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(where, 'model.vocab is not an object');
    for (const [tok, id] of Object.entries(v)) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
        throw new FormatError(where, `vocab id of ${JSON.stringify(tok)} is not a non-negative integer`);
      this.vocab.set(tok, id);
      this.idToTok[id] = tok;
    }
    const rawMerges = (model.merges as unknown[]) ?? [];
    this.merges = rawMerges.map((m, i) => {
      if (typeof m === 'string') {
        const sp = m.indexOf(' ', 1);
        if (sp < 0) throw new FormatError(where, `merge #${i} ${JSON.stringify(m)} is not "a b"`);
        return [m.slice(0, sp), m.slice(sp + 1)];
      }
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string')
        return [m[0], m[1]];
      throw new FormatError(where, `merge #${i} is neither "a b" nor ["a", "b"]`);
    });
    try {
      this.table = buildMergeTable(this.vocab, this.merges, where);
    } catch (e) {
      throw new FormatError(where, (e as Error).message);
    }
    this.byteFallback = model.byte_fallback === true;
    this.ignoreMerges = model.ignore_merges === true;
    this.fuseUnk = model.fuse_unk === true;
    const unkTok = typeof model.unk_token === 'string' ? model.unk_token : undefined;

    this.added = ((j.added_tokens as unknown[]) ?? []).map((a, i) => {
      const o = a as Json;
      if (typeof o?.content !== 'string' || typeof o.id !== 'number' || o.content.length === 0)
        throw new FormatError(where, `added_tokens[${i}] is malformed`);
      const t: AddedToken = {
        id: o.id,
        content: o.content,
        special: o.special === true,
        lstrip: o.lstrip === true,
        rstrip: o.rstrip === true,
      };
      this.idToTok[t.id] = t.content;
      if (!this.vocab.has(t.content)) this.vocab.set(t.content, t.id);
      this.addedById.set(t.id, t);
      return t;
    });
    if (this.added.length > 0) {
      const alts = [...this.added].sort((a, b) => b.content.length - a.content.length).map((t) => escapeRe(t.content));
      this.addedRe = new RegExp(alts.join('|'), 'gu');
    }
    this.vocabSize = this.idToTok.length;
    if (this.byteFallback) {
      this.byteIds = [];
      for (let b = 0; b < 256; b++) {
        const id = this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
        if (id === undefined) {
          this.byteIds = undefined;
          break;
        }
        this.byteIds.push(id);
      }
    }
    try {
      this.normalize = buildNormalizer(j.normalizer, `${where} normalizer`);
      this.preTok = buildPreTok(j.pre_tokenizer, `${where} pre_tokenizer`, this.preInfo);
      this.decoder = buildDecoder(j.decoder, `${where} decoder`);
    } catch (e) {
      throw new FormatError(where, (e as Error).message);
    }
    this.style = this.preInfo.byteLevel ? 'byte-level' : 'sentencepiece';

    const cfg = (config && typeof config === 'object' ? config : {}) as Json;
    const idOf = (name: string | undefined) => (name === undefined ? undefined : this.vocab.get(name));
    this.unkId = idOf(specialName(cfg.unk_token) ?? unkTok);
    // BOS/EOS: tokenizer_config names them; otherwise guess from common spellings
    const firstOf = (...names: string[]) => names.map((n) => this.vocab.get(n)).find((x) => x !== undefined);
    this.bosId =
      cfg.bos_token !== undefined
        ? idOf(specialName(cfg.bos_token))
        : firstOf('<s>', '<|begin_of_text|>', '<|endoftext|>');
    this.eosId =
      cfg.eos_token !== undefined
        ? idOf(specialName(cfg.eos_token))
        : firstOf('</s>', '<|end_of_text|>', '<|endoftext|>');
    this.padId = idOf(specialName(cfg.pad_token));
    const tpl = cfg.chat_template;
    this.chatTemplate =
      typeof tpl === 'string'
        ? tpl
        : Array.isArray(tpl)
          ? ((tpl.find((t) => (t as Json)?.name === 'default') as Json | undefined)?.template as string | undefined)
          : undefined;

    const fromTemplate = this.templateSpecials(j.post_processor);
    if (typeof cfg.add_bos_token === 'boolean' || typeof cfg.add_eos_token === 'boolean') {
      this.addBos = cfg.add_bos_token === true && this.bosId !== undefined;
      this.addEos = cfg.add_eos_token === true && this.eosId !== undefined;
      this.prefix = this.addBos ? [this.bosId!] : [];
      this.suffix = this.addEos ? [this.eosId!] : [];
    } else {
      this.prefix = fromTemplate.prefix;
      this.suffix = fromTemplate.suffix;
      this.addBos = this.bosId !== undefined && this.prefix.includes(this.bosId);
      this.addEos = this.eosId !== undefined && this.suffix.includes(this.eosId);
    }
  }

  /** Special tokens that a TemplateProcessing post-processor puts around a single sequence. */
  private templateSpecials(pp: unknown): { prefix: number[]; suffix: number[] } {
    const none = { prefix: [], suffix: [] };
    const o = pp as Json | null;
    if (!o) return none;
    if (o.type === 'Sequence') {
      for (const p of (o.processors as unknown[]) ?? []) {
        const r = this.templateSpecials(p);
        if (r.prefix.length || r.suffix.length) return r;
      }
      return none;
    }
    if (o.type !== 'TemplateProcessing' || !Array.isArray(o.single)) return none;
    const prefix: number[] = [];
    const suffix: number[] = [];
    let seenSeq = false;
    for (const item of o.single as Json[]) {
      if (item.Sequence) {
        seenSeq = true;
        continue;
      }
      const st = item.SpecialToken as Json | undefined;
      if (!st) continue;
      const spec = (o.special_tokens as Json | undefined)?.[st.id as string] as Json | undefined;
      const ids = Array.isArray(spec?.ids)
        ? (spec!.ids as number[])
        : [this.vocab.get(st.id as string)].filter((x): x is number => x !== undefined);
      (seenSeq ? suffix : prefix).push(...ids);
    }
    return { prefix, suffix };
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addSpecial ?? true) out.push(...this.prefix);
    // split out added tokens (HF extracts them before normalisation)
    const segments: (string | AddedToken)[] = [];
    if (this.addedRe) {
      let last = 0;
      this.addedRe.lastIndex = 0;
      let skipWs = false;
      for (const m of text.matchAll(this.addedRe)) {
        const tok = this.addedById.get(this.vocab.get(m[0])!) ?? this.added.find((a) => a.content === m[0])!;
        let before = text.slice(last, m.index);
        if (skipWs) before = before.trimStart();
        if (tok.lstrip) before = before.trimEnd();
        if (before) segments.push(before);
        segments.push(tok);
        last = m.index! + m[0].length;
        skipWs = tok.rstrip;
      }
      let rest = text.slice(last);
      if (skipWs) rest = rest.trimStart();
      if (rest) segments.push(rest);
    } else if (text) segments.push(text);
    segments.forEach((seg, i) => {
      if (typeof seg !== 'string') out.push(seg.id);
      else this.encodeSegment(seg, i === 0, out); // i === 0: the segment starts the text
    });
    if (opts.addSpecial ?? true) out.push(...this.suffix);
    return out;
  }

  private encodeSegment(seg: string, isFirst: boolean, out: number[]): void {
    const norm = this.normalize(seg);
    for (const piece of this.preTok([norm], isFirst)) {
      if (!piece) continue;
      const cached = this.cache.get(piece);
      if (cached) {
        out.push(...cached);
        continue;
      }
      const ids = this.encodeWord(piece);
      if (piece.length < 64) {
        if (this.cache.size > 50_000) this.cache.clear();
        this.cache.set(piece, ids);
      }
      out.push(...ids);
    }
  }

  private encodeWord(word: string): number[] {
    if (this.ignoreMerges) {
      const id = this.vocab.get(word);
      if (id !== undefined) return [id];
    }
    const chars = Array.from(word);
    const merged = bpeMerge(
      chars.map((c) => this.vocab.get(c) ?? -1),
      this.table,
    );
    // map back: -1 entries are single characters missing from the vocabulary
    const out: number[] = [];
    let ci = 0;
    let unkPending = false;
    for (const id of merged) {
      if (id >= 0) {
        out.push(id);
        ci += Array.from(this.idToTok[id]!).length;
        unkPending = false;
        continue;
      }
      const ch = chars[ci++]!;
      if (this.byteFallback && this.byteIds) {
        for (const b of Buffer.from(ch, 'utf8')) out.push(this.byteIds[b]!);
        unkPending = false;
      } else if (this.unkId !== undefined) {
        if (!(this.fuseUnk && unkPending)) out.push(this.unkId);
        unkPending = true;
      } else {
        throw new Error(
          `${this.source}: character ${JSON.stringify(ch)} is not in the vocabulary and there is no unk token`,
        );
      }
    }
    return out;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const toks: string[] = [];
    for (const id of ids) {
      const a = this.addedById.get(id);
      if (a?.special && opts.skipSpecial) continue;
      const t = this.idToTok[id];
      if (t === undefined) throw new RangeError(`${this.source}: token id ${id} is outside the vocabulary`);
      toks.push(t);
    }
    return this.decoder(toks).join('');
  }

  idToToken(id: number): string | undefined {
    return this.idToTok[id];
  }
  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }
  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }
  /** Merges in rank order (for export). */
  getMerges(): readonly (readonly [string, string])[] {
    return this.merges;
  }

  /** The vocabulary in the form llama.cpp reads from GGUF. */
  toGgufVocab(): GgufVocab {
    const n = this.vocabSize;
    const tokens: string[] = [];
    for (let i = 0; i < n; i++) {
      const t = this.idToTok[i];
      if (t === undefined) throw new FormatError(this.source, `token id ${i} is unused; GGUF needs a dense vocabulary`);
      tokens.push(t);
    }
    const tokenTypes = tokens.map((t, i) => {
      const a = this.addedById.get(i);
      if (i === this.unkId) return 2;
      if (a) return a.special ? 3 : 4;
      if (this.style === 'sentencepiece' && BYTE_TOKEN_RE.test(t)) return 6;
      return 1;
    });
    const common = {
      tokens,
      tokenTypes,
      addBos: this.addBos,
      addEos: this.addEos,
      ...(this.bosId !== undefined ? { bosId: this.bosId } : {}),
      ...(this.eosId !== undefined ? { eosId: this.eosId } : {}),
      ...(this.unkId !== undefined ? { unkId: this.unkId } : {}),
      ...(this.padId !== undefined ? { padId: this.padId } : {}),
      ...(this.chatTemplate ? { chatTemplate: this.chatTemplate } : {}),
    };
    if (this.style === 'sentencepiece') {
      // llama.cpp's SPM tokenizer merges the pair whose result scores highest; scoring
      // a token by minus the rank of the merge that makes it reproduces BPE order
      const scores = new Array<number>(n).fill(0);
      const seen = new Set<number>();
      this.merges.forEach(([a, b], rank) => {
        const id = this.vocab.get(a + b)!;
        if (!seen.has(id)) {
          seen.add(id);
          scores[id] = -rank - 1;
        }
      });
      return { model: 'llama', scores, ...common };
    }
    const pre =
      this.preInfo.gpt2Regex && this.preInfo.splitRegexes.length === 0
        ? 'gpt-2'
        : this.preInfo.splitRegexes.some((r) => r.includes('\\p{N}{1,3}'))
          ? 'llama-bpe'
          : 'default';
    return {
      model: 'gpt2',
      pre,
      scores: new Array<number>(n).fill(0),
      merges: this.merges.map(([a, b]) => `${a} ${b}`),
      ...common,
    };
  }
}

export function tokenizerFromJson(json: unknown, config?: unknown, source?: string): HfTokenizer {
  return new HfTokenizer(json, config, source);
}

/** Loads tokenizer.json and, when present, tokenizer_config.json from a folder. */
export function loadTokenizer(dir: string): HfTokenizer {
  const tPath = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(tPath)) {
    const hint = fs.existsSync(path.join(dir, 'tokenizer.model'))
      ? ' (only a SentencePiece tokenizer.model is present; convert it to tokenizer.json)'
      : '';
    throw new FormatError(tPath, `missing${hint}`);
  }
  const read = (p: string): unknown => {
    try {
      return JSON.parse(fs.readFileSync(p, 'utf8'));
    } catch (e) {
      throw new FormatError(p, `cannot parse JSON: ${(e as Error).message}`);
    }
  };
  const cPath = path.join(dir, 'tokenizer_config.json');
  const cfg = fs.existsSync(cPath) ? read(cPath) : {};
  return new HfTokenizer(read(tPath), cfg, tPath);
}
