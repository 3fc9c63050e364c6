// Client tokens: 32 random bytes shown once at `server add-client`; the server keeps only their
// sha256 (a high-entropy secret needs no slow hash) and compares hashes in constant time.
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';

export function newToken(): string {
  return `fbt_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** The bearer token of a request's Authorization header, or null. */
export function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  return m ? m[1]! : null;
}

export function nonce(): string {
  return randomBytes(16).toString('hex');
}
