// Refusals of unauthenticated requests, rate-limited: anyone can send them, so each one must not
// cost a database row and a log line. The first PER_WINDOW of a window are recorded in full; the
// rest are counted, and one summary row and line per window says how many were left out. With the
// database's own cap on refusal rows (ServerDb.refuse), neither grows without bound.
import type { ServerDb } from './db.js';

export const PER_WINDOW = 20;
export const WINDOW_MS = 60_000;

export class RefusalLog {
  private windowStart = 0;
  private recorded = 0;
  private suppressed = 0;

  constructor(
    private readonly db: ServerDb,
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  unauthenticated(client: string | null, what: string, reason: string): void {
    const t = this.now();
    if (t - this.windowStart >= WINDOW_MS) {
      this.flush();
      this.windowStart = t;
    }
    if (this.recorded < PER_WINDOW) {
      this.recorded++;
      this.db.refuse(null, client, 'unauthorized', what);
      this.log(`refused ${what}: unauthorized: ${reason}`);
    } else this.suppressed++;
  }

  /** Writes the count of refusals left out of the current window, if any, and starts a new one. */
  flush(): void {
    if (this.suppressed > 0 && this.db.db.open) {
      const line = `${this.suppressed} more unauthenticated request(s) refused since ${new Date(this.windowStart).toISOString()} (not logged one by one)`;
      this.db.refuse(null, null, 'unauthorized-suppressed', line);
      this.log(line);
    }
    this.recorded = 0;
    this.suppressed = 0;
  }
}
