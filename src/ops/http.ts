// The operations endpoints, for `fedbiot server` (on its own port, behind the admin token) and for
// `fedbiot simulate --dashboard` (a small server on localhost):
//   GET /dashboard          the live page
//   GET /dashboard/events   server-sent events: {title, completedRounds, rounds, phase, html}
//   GET /metrics            Prometheus text format (public only when configured so)
// Browsers and scrapers authenticate with the admin token as Bearer or as a Basic password.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DASHBOARD_CSP, dashboardTitle, renderDashboard, renderLive } from './dashboard.js';
import type { RunEvents } from './events.js';
import type { RunMetrics } from './metrics.js';
import type { RunState } from './run-state.js';

/** The credential in an Authorization header: a Bearer token, or the password of Basic. */
export function credential(header: string | undefined): string | null {
  if (!header) return null;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1]!;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!basic) return null;
  const text = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon >= 0 && colon < text.length - 1 ? text.slice(colon + 1) : null;
}

export interface OpsOptions {
  state: RunState;
  events: RunEvents;
  metrics: RunMetrics;
  /** Whether the request carries the admin credential (always true for a localhost simulation). */
  isAdmin: (req: http.IncomingMessage) => boolean;
  /** /metrics without a credential (server.metricsPublic). */
  metricsPublic?: boolean;
  /** Called for each refused request (to count and log it like other refusals). */
  onRefused?: (req: http.IncomingMessage, reason: string) => void;
  /** How often open dashboards are refreshed when nothing happens (the "ago" times), ms. */
  heartbeatMs?: number;
}

function refuse(res: http.ServerResponse, browser: boolean, reason: string): void {
  const body = JSON.stringify({ error: 'unauthorized', reason });
  res.writeHead(401, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    // Makes a browser ask for the credential (any user name, the admin token as password).
    ...(browser ? { 'www-authenticate': 'Basic realm="fedbiot dashboard", charset="UTF-8"' } : {}),
  });
  res.end(body);
}

export class OpsEndpoints {
  private readonly streams = new Set<http.ServerResponse>();
  private pending: NodeJS.Timeout | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: OpsOptions) {
    // Coalesce bursts of events (a round closing emits several) into one push.
    this.unsubscribe = o.events.on(() => {
      if (this.pending || this.streams.size === 0) return;
      this.pending = setTimeout(() => {
        this.pending = null;
        this.push();
      }, 500);
    });
    this.heartbeat = setInterval(() => this.push(), o.heartbeatMs ?? 5000);
    this.heartbeat.unref();
  }

  /** Serves the request when it is one of ours; false leaves it to the caller. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (p === '/metrics') {
      if (!this.o.metricsPublic && !this.check(req, res, false)) return true;
      const text = await this.o.metrics.text();
      res.writeHead(200, {
        'content-type': this.o.metrics.contentType,
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : text);
      return true;
    }
    if (p === '/dashboard' || p === '/dashboard/') {
      if (!this.check(req, res, true)) return true;
      const html = renderDashboard(this.o.state.snapshot());
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(html),
        'cache-control': 'no-store',
        'content-security-policy': DASHBOARD_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.end(req.method === 'HEAD' ? undefined : html);
      return true;
    }
    if (p === '/dashboard/events') {
      if (!this.check(req, res, true)) return true;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 2000\n\n');
      this.streams.add(res);
      req.socket.setTimeout(0);
      res.on('close', () => this.streams.delete(res));
      this.send(res, this.message());
      return true;
    }
    return false;
  }

  private check(req: http.IncomingMessage, res: http.ServerResponse, browser: boolean): boolean {
    if (this.o.isAdmin(req)) return true;
    const reason = req.headers.authorization
      ? 'not an admin token'
      : 'missing admin token (Bearer, or Basic with the token as password)';
    this.o.onRefused?.(req, reason);
    refuse(res, browser, reason);
    return false;
  }

  private message(): string {
    const s = this.o.state.snapshot();
    return JSON.stringify({
      title: dashboardTitle(s),
      completedRounds: s.completedRounds,
      rounds: s.rounds,
      phase: s.phase,
      currentRound: s.currentRound,
      html: renderLive(s),
    });
  }

  private send(res: http.ServerResponse, data: string): void {
    res.write(`event: state\ndata: ${data}\n\n`);
  }

  private push(): void {
    if (this.streams.size === 0) return;
    const data = this.message();
    for (const r of this.streams) this.send(r, data);
  }

  /** Ends the event streams and timers (before the HTTP server closes). */
  close(): void {
    clearInterval(this.heartbeat);
    if (this.pending) clearTimeout(this.pending);
    this.unsubscribe();
    for (const r of this.streams) r.end();
    this.streams.clear();
  }
}

/**
 * The operations endpoints on their own HTTP server (for `fedbiot simulate --dashboard`): listens on
 * `host` (localhost by default) and answers only GET /dashboard, /dashboard/events and /metrics.
 */
export async function serveOps(
  o: Omit<OpsOptions, 'isAdmin'> & { host?: string; port?: number },
): Promise<{ url: string; close: () => Promise<void> }> {
  const ops = new OpsEndpoints({ ...o, isAdmin: () => true, metricsPublic: true });
  const srv = http.createServer((req, res) => {
    ops.handle(req, res).then(
      (done) => {
        if (done) return;
        if (req.url === '/' || req.url === '') {
          res.writeHead(302, { location: '/dashboard' });
          res.end();
          return;
        }
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: try /dashboard or /metrics\n');
      },
      (e: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String((e as Error).message));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const a = srv.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    close: () =>
      new Promise<void>((r) => {
        ops.close();
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}
