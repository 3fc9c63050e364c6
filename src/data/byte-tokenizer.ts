// A byte-level tokenizer with no training: ids 0-255 are UTF-8 bytes, then <s>, </s>, <pad>.
// Used for tiny random models (tests, examples) where no trained tokenizer exists.
import type { TokenizerLike } from './types.js';

export class ByteTokenizer implements TokenizerLike {
  readonly bosId = 256;
  readonly eosId = 257;
  readonly padId = 258;
  readonly vocabSize = 259;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder('utf-8', { fatal: false });

  encode(text: string, opts: { addSpecial?: boolean } = {}): number[] {
    const ids = Array.from(this.enc.encode(text));
    return opts.addSpecial ? [this.bosId, ...ids] : ids;
  }

  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    const bytes: number[] = [];
    let out = '';
    const flush = () => {
      out += this.dec.decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (const id of ids) {
      if (id < 256) bytes.push(id);
      else if (!opts.skipSpecial) {
        flush();
        out += id === this.bosId ? '<s>' : id === this.eosId ? '</s>' : '<pad>';
      }
    }
    flush();
    return out;
  }
}
