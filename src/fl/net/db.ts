// The server's durable state in SQLite (WAL, synchronous=FULL): registered clients (token hashes),
// rounds (sampled clients, nonce, status, metrics, checkpoint pointer), uploads accepted, refusals,
// and bytes moved per client and round. A round's completion is one transaction, written after its
// checkpoint files, so a crash at any point leaves either the round open or the round complete.
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashToken, newToken } from './auth.js';

export interface ClientRow {
  name: string;
  token_hash: string;
  role: 'client' | 'admin';
  created_at: number;
  last_seen: number | null;
  /** When `server remove-client` revoked the token (the row stays, so refusals can name the peer). */
  revoked_at: number | null;
  /** The client's data size as registered by the operator (the FedAvg weight the server trusts); null when not given. */
  samples: number | null;
}

export interface RoundRow {
  round: number;
  nonce: string;
  sampled: string;
  status: 'open' | 'completed';
  opened_at: number;
  completed_at: number | null;
  metrics: string | null;
  checkpoint: string | null;
  extra: string | null;
  /** Deadline extensions this round has used (kept across server restarts). */
  extensions: number;
}

export interface UploadRow {
  round: number;
  client: string;
  samples: number;
  file: string;
  bytes: number;
  metrics: string;
  received_at: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS clients (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created_at INTEGER NOT NULL, last_seen INTEGER);
CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, nonce TEXT NOT NULL, sampled TEXT NOT NULL, status TEXT NOT NULL, opened_at INTEGER NOT NULL, completed_at INTEGER, metrics TEXT, checkpoint TEXT, extra TEXT, extensions INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS uploads (round INTEGER NOT NULL, client TEXT NOT NULL, samples INTEGER NOT NULL, file TEXT NOT NULL, bytes INTEGER NOT NULL, metrics TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (round, client));
CREATE TABLE IF NOT EXISTS refusals (id INTEGER PRIMARY KEY AUTOINCREMENT, round INTEGER, client TEXT, code TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS traffic (round INTEGER NOT NULL, client TEXT NOT NULL, direction TEXT NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** Refusal rows kept: enough to investigate, bounded whatever a peer sends. */
export const REFUSALS_KEPT = 10_000;

export class ServerDb {
  readonly db: Database.Database;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const cols = (this.db.prepare('PRAGMA table_info(clients)').all() as { name: string }[]).map((c) => c.name);
    if (!cols.includes('revoked_at')) this.db.exec('ALTER TABLE clients ADD COLUMN revoked_at INTEGER');
    if (!cols.includes('samples')) this.db.exec('ALTER TABLE clients ADD COLUMN samples INTEGER');
    const roundCols = (this.db.prepare('PRAGMA table_info(rounds)').all() as { name: string }[]).map((c) => c.name);
    if (!roundCols.includes('extensions'))
      this.db.exec('ALTER TABLE rounds ADD COLUMN extensions INTEGER NOT NULL DEFAULT 0');
  }

  close(): void {
    this.db.close();
  }

  getMeta(key: string): string | null {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.db
      .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
      .run(key, value);
  }

  /** Registers a client (or an admin); returns the token, which is never stored. */
  addClient(name: string, role: 'client' | 'admin' = 'client', samples?: number): string {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
      throw new Error(`client name '${name}': use 1-64 letters, digits, '.', '_' or '-'`);
    if (samples !== undefined && !(Number.isSafeInteger(samples) && samples > 0))
      throw new Error(`client '${name}': --samples must be a positive integer, got ${samples}`);
    const token = newToken();
    const prev = this.db.prepare('SELECT revoked_at FROM clients WHERE name = ?').get(name) as
      | { revoked_at: number | null }
      | undefined;
    if (prev && prev.revoked_at === null)
      throw new Error(`client '${name}' already exists (use a new name, or remove it first)`);
    // A revoked name may be registered again: it gets a new token (the old one stays refused).
    if (prev)
      this.db
        .prepare(
          'UPDATE clients SET token_hash = ?, role = ?, created_at = ?, revoked_at = NULL, samples = ? WHERE name = ?',
        )
        .run(hashToken(token), role, Date.now(), samples ?? null, name);
    else
      this.db
        .prepare(
          'INSERT INTO clients (name, token_hash, role, created_at, last_seen, samples) VALUES (?, ?, ?, ?, NULL, ?)',
        )
        .run(name, hashToken(token), role, Date.now(), samples ?? null);
    return token;
  }

  /** Revokes a client's token (kept, marked revoked); false when no such active client. */
  removeClient(name: string, at = Date.now()): boolean {
    return (
      this.db.prepare('UPDATE clients SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL').run(at, name).changes >
      0
    );
  }

  /** The active (not revoked) client or admin holding `token`. */
  clientByToken(token: string): ClientRow | null {
    return (
      (this.db.prepare('SELECT * FROM clients WHERE token_hash = ? AND revoked_at IS NULL').get(hashToken(token)) as
        | ClientRow
        | undefined) ?? null
    );
  }

  /** The name a revoked token belonged to (for the refusal log), or null. */
  revokedByToken(token: string): string | null {
    const r = this.db
      .prepare('SELECT name FROM clients WHERE token_hash = ? AND revoked_at IS NOT NULL')
      .get(hashToken(token)) as { name: string } | undefined;
    return r?.name ?? null;
  }

  /** Every registered name, revoked ones included (see `revoked_at`). */
  clients(): ClientRow[] {
    return this.db.prepare('SELECT * FROM clients ORDER BY name').all() as ClientRow[];
  }

  /** Names of the training clients whose tokens are valid now. */
  activeClientNames(): Set<string> {
    return new Set(
      (
        this.db.prepare("SELECT name FROM clients WHERE role = 'client' AND revoked_at IS NULL").all() as {
          name: string;
        }[]
      ).map((r) => r.name),
    );
  }

  touch(name: string, at = Date.now()): void {
    this.db.prepare('UPDATE clients SET last_seen = ? WHERE name = ?').run(at, name);
  }

  round(r: number): RoundRow | null {
    return (this.db.prepare('SELECT * FROM rounds WHERE round = ?').get(r) as RoundRow | undefined) ?? null;
  }

  rounds(): RoundRow[] {
    return this.db.prepare('SELECT * FROM rounds ORDER BY round').all() as RoundRow[];
  }

  lastCompleted(): RoundRow | null {
    return (
      (this.db.prepare("SELECT * FROM rounds WHERE status = 'completed' ORDER BY round DESC LIMIT 1").get() as
        | RoundRow
        | undefined) ?? null
    );
  }

  openRound(r: number, nonce: string, sampled: string[]): void {
    this.db
      .prepare("INSERT INTO rounds (round, nonce, sampled, status, opened_at) VALUES (?, ?, ?, 'open', ?)")
      .run(r, nonce, JSON.stringify(sampled), Date.now());
  }

  /** Records a deadline extension of an open round and the sampled clients it now waits for. */
  extendRound(r: number, sampled: string[], extensions: number): void {
    this.db
      .prepare("UPDATE rounds SET sampled = ?, extensions = ? WHERE round = ? AND status = 'open'")
      .run(JSON.stringify(sampled), extensions, r);
  }

  /** Marks a round complete with its metrics and checkpoint pointer, atomically. */
  completeRound(r: number, metrics: unknown, checkpoint: string, extra: unknown): void {
    this.db
      .prepare(
        "UPDATE rounds SET status = 'completed', completed_at = ?, metrics = ?, checkpoint = ?, extra = ? WHERE round = ? AND status = 'open'",
      )
      .run(Date.now(), JSON.stringify(metrics), checkpoint, JSON.stringify(extra), r);
  }

  /** Records an accepted upload; false when this client already uploaded for the round. */
  addUpload(u: UploadRow): boolean {
    const res = this.db
      .prepare(
        'INSERT OR IGNORE INTO uploads (round, client, samples, file, bytes, metrics, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(u.round, u.client, u.samples, u.file, u.bytes, u.metrics, u.received_at);
    return res.changes > 0;
  }

  uploads(r: number): UploadRow[] {
    return this.db.prepare('SELECT * FROM uploads WHERE round = ? ORDER BY client').all(r) as UploadRow[];
  }

  hasUpload(r: number, client: string): boolean {
    return this.db.prepare('SELECT 1 FROM uploads WHERE round = ? AND client = ?').get(r, client) !== undefined;
  }

  uploadCount(client: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM uploads WHERE client = ?').get(client) as { n: number }).n;
  }

  /** Records a refusal; the table keeps the newest REFUSALS_KEPT rows (older ones are pruned). */
  refuse(round: number | null, client: string | null, code: string, reason: string): void {
    const id = this.db
      .prepare('INSERT INTO refusals (round, client, code, reason, at) VALUES (?, ?, ?, ?, ?)')
      .run(round, client, code, reason.slice(0, 500), Date.now()).lastInsertRowid;
    if (Number(id) % 100 === 0) this.db.prepare('DELETE FROM refusals WHERE id <= ?').run(Number(id) - REFUSALS_KEPT);
  }

  refusals(): { round: number | null; client: string | null; code: string; reason: string }[] {
    return this.db.prepare('SELECT round, client, code, reason FROM refusals ORDER BY id').all() as {
      round: number | null;
      client: string | null;
      code: string;
      reason: string;
    }[];
  }

  /**
   * Body bytes moved. 'down' / 'up' are the round's counted traffic: one payload and one accepted
   * update per client, the same definition as the simulation's; 'down-resent' / 'up-resent' are
   * bodies moved again or in vain (a payload fetched again, an upload body read but not accepted).
   */
  addTraffic(
    round: number,
    client: string,
    direction: 'down' | 'up' | 'join' | 'down-resent' | 'up-resent',
    bytes: number,
  ): void {
    this.db
      .prepare('INSERT INTO traffic (round, client, direction, bytes) VALUES (?, ?, ?, ?)')
      .run(round, client, direction, bytes);
  }

  /** Whether a client already has counted traffic in that direction for a round. */
  hasTraffic(round: number, client: string, direction: 'down' | 'up'): boolean {
    return (
      this.db
        .prepare('SELECT 1 FROM traffic WHERE round = ? AND client = ? AND direction = ? LIMIT 1')
        .get(round, client, direction) !== undefined
    );
  }

  /** Counted bytes per client for a round: { client: { down, up } }. */
  traffic(round: number): Record<string, { down: number; up: number }> {
    const rows = this.db
      .prepare(
        "SELECT client, direction, SUM(bytes) AS b FROM traffic WHERE round = ? AND direction IN ('down', 'up') GROUP BY client, direction",
      )
      .all(round) as { client: string; direction: 'down' | 'up'; b: number }[];
    const out: Record<string, { down: number; up: number }> = {};
    for (const r of rows) (out[r.client] ??= { down: 0, up: 0 })[r.direction] = r.b;
    return out;
  }

  /** A round's bytes moved again or in vain (both directions). */
  resent(round: number): number {
    const row = this.db
      .prepare("SELECT SUM(bytes) AS b FROM traffic WHERE round = ? AND direction IN ('down-resent', 'up-resent')")
      .get(round) as { b: number | null };
    return row.b ?? 0;
  }

  joinBytes(): Record<string, number> {
    const rows = this.db
      .prepare("SELECT client, SUM(bytes) AS b FROM traffic WHERE direction = 'join' GROUP BY client")
      .all() as { client: string; b: number }[];
    return Object.fromEntries(rows.map((r) => [r.client, r.b]));
  }
}
