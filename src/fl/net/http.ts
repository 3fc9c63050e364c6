// Small HTTP(S) helpers shared by the server and the client: bounded body reading, JSON replies,
// and a client request with a timeout that works for http: and https: URLs (custom CA for
// self-signed certificates).
import * as http from 'node:http';
import * as https from 'node:https';
import * as fs from 'node:fs';

export class HttpError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads a request body of at most `limit` bytes. Past the limit it rejects with a 413 and goes on
 * draining (discarding) what the peer still sends, so the refusal can be answered before the
 * connection closes; the caller closes it once the answer is out (see closeAfterReply).
 */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, 'too-large', `body of ${declared} bytes exceeds the limit of ${limit}`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      n += c.length;
      if (n > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, 'too-large', `body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    // A peer that goes away mid-body: no 'end' will come.
    req.on('close', () => {
      if (!req.complete) reject(new HttpError(400, 'aborted', `the body ended after ${n} bytes, before its end`));
    });
  });
}

/**
 * After a refusal sent while the peer may still be sending: the reply says "connection: close",
 * and once it is out the socket gets `graceMs` to finish (the peer reads the reply) before it is
 * destroyed, so an endless body cannot hold the connection.
 */
export function closeAfterReply(req: http.IncomingMessage, res: http.ServerResponse, graceMs = 2000): void {
  res.setHeader('connection', 'close');
  res.once('finish', () => {
    if (req.complete) return;
    const t = setTimeout(() => req.socket.destroy(), graceMs);
    t.unref();
    req.once('end', () => clearTimeout(t));
  });
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function sendError(res: http.ServerResponse, status: number, code: string, reason: string): void {
  sendJson(res, status, { error: code, reason });
}

export interface ClientTransport {
  base: URL;
  token: string;
  agent: http.Agent | https.Agent;
  timeoutMs: number;
}

export function makeTransport(
  server: string,
  token: string,
  o: { ca?: string; timeoutMs?: number } = {},
): ClientTransport {
  const base = new URL(server.endsWith('/') ? server : `${server}/`);
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new Error(`--server ${server}: expected an http:// or https:// URL`);
  const agent =
    base.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, ca: o.ca ? fs.readFileSync(o.ca) : undefined })
      : new http.Agent({ keepAlive: true });
  return { base, token, agent, timeoutMs: o.timeoutMs ?? 120_000 };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request; rejects on network errors and timeouts, resolves with any HTTP status. */
export function request(
  t: ClientTransport,
  method: string,
  pathAndQuery: string,
  o: { body?: Buffer; headers?: Record<string, string>; token?: string | null } = {},
): Promise<Reply> {
  const url = new URL(pathAndQuery.replace(/^\//, ''), t.base);
  const mod = url.protocol === 'https:' ? https : http;
  const token = o.token === undefined ? t.token : o.token;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method,
        agent: t.agent,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(o.body ? { 'content-type': 'application/octet-stream', 'content-length': String(o.body.length) } : {}),
          ...o.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(t.timeoutMs, () =>
      req.destroy(new Error(`request ${method} ${url.pathname} timed out after ${t.timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The server's reason for a non-2xx reply. */
export function replyReason(r: Reply): { code: string; reason: string } {
  try {
    const j = JSON.parse(r.body.toString('utf8')) as { error?: string; reason?: string };
    return { code: j.error ?? `http-${r.status}`, reason: j.reason ?? r.body.toString('utf8').slice(0, 200) };
  } catch {
    return { code: `http-${r.status}`, reason: r.body.toString('utf8').slice(0, 200) };
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/**
 * A clear message when `e` is a TLS certificate failure (retrying cannot help: the client does not
 * trust the server's certificate), or null for any other error.
 */
export function certificateProblem(e: unknown, server: string, ca?: string): string | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !CERT_CODES.has(code)) return null;
  const why = (e as Error).message;
  const hint =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH'
      ? "the certificate's subjectAltName does not name this host: use the host name or IP the certificate was made for"
      : ca
        ? `the server's certificate is not signed by ${ca}: pass the certificate the server uses`
        : "pass the server's certificate with --ca cert.pem (a self-signed certificate is not trusted by default)";
  return `TLS certificate error talking to ${server}: ${code}: ${why}; ${hint}`;
}

/** Thrown for errors that retrying cannot fix (an untrusted certificate). */
export class FatalNetError extends Error {}
