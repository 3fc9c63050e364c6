// A seeded cryptographic pseudo-random stream: ChaCha20 (node:crypto) keystream under a 32-byte key.
// Secure aggregation expands mask seeds with it, and differential-privacy noise is drawn from it, so
// both are reproducible from their seed and, unlike mulberry32, unpredictable without it.
import * as crypto from 'node:crypto';
import { normalInverse } from './normal.js';

export class Prg {
  private readonly cipher: crypto.Cipher;
  private buf: Uint32Array = new Uint32Array(0);
  private pos = 0;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new Error(`Prg: key must be 32 bytes, got ${key.length}`);
    // The 16-byte IV is the block counter (0) followed by a zero nonce: one key, one stream.
    this.cipher = crypto.createCipheriv('chacha20', key, Buffer.alloc(16));
  }

  /** A key from a label (and an optional secret): SHA-256 of both. */
  static fromLabel(label: string, secret: Uint8Array = new Uint8Array(0)): Prg {
    return new Prg(crypto.createHash('sha256').update(secret).update(label).digest());
  }

  /** The next n 32-bit words of the keystream. */
  words(n: number): Uint32Array {
    const bytes = this.cipher.update(Buffer.alloc(n * 4));
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = bytes.readUInt32LE(4 * i); // the same words on any byte order
    return out;
  }

  private word(): number {
    if (this.pos >= this.buf.length) {
      this.buf = this.words(1024);
      this.pos = 0;
    }
    return this.buf[this.pos++]!;
  }

  /** Uniform in (0, 1) with 53 random bits (never exactly 0 or 1). */
  uniform(): number {
    const hi = this.word() >>> 5; // 27 bits
    const lo = this.word() >>> 6; // 26 bits
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  /** A standard normal by inversion of the CDF (one uniform per sample, no rejection). */
  normal(): number {
    return normalInverse(this.uniform());
  }
}
