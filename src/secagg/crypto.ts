// The cryptographic pieces of secure aggregation, all from node:crypto except Shamir sharing:
// X25519 key pairs and agreement, HKDF-SHA256 to turn a shared secret into a key, AES-256-GCM for
// the share envelopes the server relays, and ChaCha20 (util/prg) for mask expansion.
import * as crypto from 'node:crypto';
import { split, combine } from 'shamir-secret-sharing';
import { Prg } from '../util/prg.js';

export interface KeyPair {
  /** Raw 32-byte public key. */
  publicKey: Uint8Array;
  /** Raw 32-byte private key. */
  privateKey: Uint8Array;
}

export function x25519KeyPair(): KeyPair {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('x25519');
  const pub = publicKey.export({ format: 'jwk' });
  const priv = privateKey.export({ format: 'jwk' });
  return {
    publicKey: new Uint8Array(Buffer.from(pub.x!, 'base64url')),
    privateKey: new Uint8Array(Buffer.from(priv.d!, 'base64url')),
  };
}

/** X25519(myPrivate, theirPublic), then HKDF-SHA256 bound to a context label: a 32-byte key. */
export function agree(myPrivate: Uint8Array, theirPublic: Uint8Array, context: string): Uint8Array {
  if (theirPublic.length !== 32)
    throw new Error(`secure aggregation: a public key must be 32 bytes, got ${theirPublic.length}`);
  const x = Buffer.from(theirPublic).toString('base64url');
  const pub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
  const priv = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', x: publicOf(myPrivate), d: Buffer.from(myPrivate).toString('base64url') },
    format: 'jwk',
  });
  const shared = crypto.diffieHellman({ privateKey: priv, publicKey: pub });
  return new Uint8Array(crypto.hkdfSync('sha256', shared, Buffer.alloc(0), context, 32));
}

function publicOf(privateKey: Uint8Array): string {
  // JWK import of a private key wants its public half; derive it from the private scalar.
  const k = crypto.createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(privateKey)]),
    format: 'der',
    type: 'pkcs8',
  });
  return crypto.createPublicKey(k).export({ format: 'jwk' }).x!;
}

/** The mask a seed expands to: n words of the ChaCha20 keystream. */
export function expandMask(seed: Uint8Array, n: number): Uint32Array {
  return new Prg(seed).words(n);
}

export function seal(key: Uint8Array, plaintext: Uint8Array, aad: string): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}

export function open(key: Uint8Array, sealed: string, aad: string): Uint8Array {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < 28) throw new Error('secure aggregation: a share envelope is too short');
  const d = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(raw.subarray(12, 28));
  return new Uint8Array(Buffer.concat([d.update(raw.subarray(28)), d.final()]));
}

/** t-of-n Shamir shares of a secret (GF(256), audited `shamir-secret-sharing`). */
export async function shareSecret(secret: Uint8Array, n: number, t: number): Promise<Uint8Array[]> {
  if (n < 2 || t < 2 || t > n || n > 255)
    throw new Error(
      `secure aggregation: cannot share among ${n} clients with threshold ${t} (need 2 <= t <= n <= 255)`,
    );
  return split(Uint8Array.from(secret), n, t); // the library wants a plain Uint8Array, not a Buffer
}

export async function combineShares(shares: Uint8Array[]): Promise<Uint8Array> {
  return combine(shares.map((s) => Uint8Array.from(s)));
}

export const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');
export const unb64 = (s: string, what: string): Uint8Array => {
  const b = Buffer.from(s, 'base64');
  if (b.length === 0 && s.length > 0) throw new Error(`secure aggregation: ${what} is not base64`);
  return new Uint8Array(b);
};
