/**
 * The BPE merge loop shared by both tokenizer styles: repeatedly merge the
 * adjacent pair with the lowest merge rank (leftmost first on ties), as Hugging
 * Face tokenizers does. Uses a linked list + binary heap so a long unsplit text
 * (SentencePiece-style tokenizers have no pre-tokenizer) costs O(n log n).
 */

export interface MergeTable {
  /** (left id, right id) -> [rank, merged id]; key = left * stride + right. */
  readonly map: Map<number, number>;
  readonly stride: number;
}

/** Packs rank and merged id into one number: rank * 2^21 + id keeps both exact. */
const ID_BITS = 2 ** 21;

export function buildMergeTable(
  vocab: ReadonlyMap<string, number>,
  merges: readonly (readonly [string, string])[],
  where = 'tokenizer',
): MergeTable {
  let maxId = 0;
  for (const id of vocab.values()) maxId = Math.max(maxId, id);
  if (maxId >= ID_BITS) throw new RangeError(`${where}: vocabulary ids up to ${maxId} are not supported`);
  const stride = maxId + 1;
  const map = new Map<number, number>();
  merges.forEach(([a, b], rank) => {
    const ia = vocab.get(a);
    const ib = vocab.get(b);
    const im = vocab.get(a + b);
    if (ia === undefined || ib === undefined || im === undefined) {
      throw new Error(`${where}: merge #${rank} "${a} ${b}" uses tokens missing from the vocabulary`);
    }
    const key = ia * stride + ib;
    if (!map.has(key)) map.set(key, rank * ID_BITS + im);
  });
  return { map, stride };
}

/** Merges `ids` (initial symbols; -1 = not in vocabulary, never merges) in place semantics; returns the result. */
export function bpeMerge(ids: number[], table: MergeTable): number[] {
  const n = ids.length;
  if (n < 2) return ids;
  const { map, stride } = table;
  const rankOf = (a: number, b: number): number => (a < 0 || b < 0 ? -1 : (map.get(a * stride + b) ?? -1));
  if (n === 2) {
    const r = rankOf(ids[0]!, ids[1]!);
    return r < 0 ? ids : [r % ID_BITS];
  }
  const id = Int32Array.from(ids);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // heap entries: packed (rank, position); compared by rank then position
  const hr: number[] = [];
  const hp: number[] = [];
  const less = (i: number, j: number) => hr[i]! < hr[j]! || (hr[i] === hr[j] && hp[i]! < hp[j]!);
  const swap = (i: number, j: number) => {
    const r = hr[i]!;
    hr[i] = hr[j]!;
    hr[j] = r;
    const p = hp[i]!;
    hp[i] = hp[j]!;
    hp[j] = p;
  };
  const push = (rank: number, pos: number) => {
    hr.push(rank);
    hp.push(pos);
    let i = hr.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(i, p)) break;
      swap(i, p);
      i = p;
    }
  };
  const pop = () => {
    const last = hr.length - 1;
    swap(0, last);
    hr.pop();
    hp.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < hr.length && less(l, m)) m = l;
      if (r < hr.length && less(r, m)) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  };
  for (let i = 0; i + 1 < n; i++) {
    const r = rankOf(id[i]!, id[i + 1]!);
    if (r >= 0) push(Math.floor(r / ID_BITS), i);
  }
  while (hr.length > 0) {
    const rank = hr[0]!;
    const pos = hp[0]!;
    pop();
    const j = next[pos]!;
    if (id[pos]! < -1 || j < 0) continue; // dead node or no right neighbour any more
    const packed = rankOf(id[pos]!, id[j]!);
    if (packed < 0 || Math.floor(packed / ID_BITS) !== rank) continue; // stale entry
    id[pos] = packed % ID_BITS;
    id[j] = -2; // mark dead
    const k = next[j]!;
    next[pos] = k;
    if (k >= 0) prev[k] = pos;
    const p = prev[pos]!;
    if (p >= 0) {
      const r = rankOf(id[p]!, id[pos]!);
      if (r >= 0) push(Math.floor(r / ID_BITS), p);
    }
    if (k >= 0) {
      const r = rankOf(id[pos]!, id[k]!);
      if (r >= 0) push(Math.floor(r / ID_BITS), pos);
    }
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
  return out;
}

/** GPT-2's reversible byte -> printable character table. */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

export const BYTE_TO_CHAR = bytesToUnicode();
export const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** GPT-2's pre-tokenization pattern (contractions, letters, digits, other, spaces). */
export const GPT2_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
