/**
 * Builds a GPT-2 tokenizer.json (byte-level BPE) from the r50k_base rank file that
 * gpt-tokenizer ships. The merges are recovered from the ranks the usual way: a
 * token of rank r is the BPE of its bytes using only ranks below r, which ends in
 * exactly two parts: that pair is its merge.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// GPT-2's byte -> printable character table (written out here, independent of src/)
function byteChars(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : 256 + n++));
  return out;
}

export function gpt2TokenizerJson(): unknown {
  const require = createRequire(import.meta.url);
  const file = require.resolve('gpt-tokenizer/data/r50k_base.tiktoken');
  const ranks = new Map<string, number>(); // latin1 byte string -> rank
  const byRank: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const [b64, r] = line.split(' ');
    const bytes = Buffer.from(b64!, 'base64').toString('latin1');
    ranks.set(bytes, Number(r));
    byRank[Number(r)] = bytes;
  }
  const bc = byteChars();
  const show = (s: string) => Array.from(s, (ch) => bc[ch.charCodeAt(0)]).join('');
  const vocab: Record<string, number> = {};
  byRank.forEach((s, r) => {
    vocab[show(s)] = r;
  });
  const merges: string[] = [];
  for (let r = 0; r < byRank.length; r++) {
    const tok = byRank[r]!;
    if (tok.length < 2) continue;
    let parts = Array.from(tok);
    while (parts.length > 2) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const rr = ranks.get(parts[i]! + parts[i + 1]!);
        if (rr !== undefined && rr < r && rr < bestRank) {
          bestRank = rr;
          best = i;
        }
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), parts[best]! + parts[best + 1]!, ...parts.slice(best + 2)];
    }
    if (parts.length === 2) merges.push(`${show(parts[0]!)} ${show(parts[1]!)}`);
  }
  vocab['<|endoftext|>'] = 50256;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: 50256,
        content: '<|endoftext|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}
