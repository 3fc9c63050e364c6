// The driver's round events (driver.ts FederationEvent) as operations events (src/ops/events.ts),
// so the dashboard and the Prometheus metrics see one stream whatever the transport.
import * as fs from 'node:fs';
import type { RunEvents } from '../ops/events.js';
import type { FederationEvent } from './driver.js';

/**
 * A DriverHooks.onEvent listener feeding `events`. `bytesFromEntries`: take each round's traffic
 * from its metrics entry (the simulation, where no request is seen); the network transport reports
 * bytes as they move instead.
 */
export function federationToOps(events: RunEvents, o: { bytesFromEntries: boolean }): (e: FederationEvent) => void {
  return (e) => {
    switch (e.type) {
      case 'prepared':
        events.emit({ type: 'prepare', line: e.entry });
        break;
      case 'round-open':
        events.emit({ type: 'round-open', round: e.round, sampled: [...e.sampled] });
        events.emit({ type: 'phase', phase: 'training', round: e.round });
        break;
      case 'update':
        events.emit({ type: 'upload', round: e.round, client: e.client, bytes: e.bytes });
        break;
      case 'round-end': {
        if (o.bytesFromEntries) {
          const per = (e.entry.bytes_per_client ?? {}) as Record<string, { down?: number; up?: number }>;
          for (const [client, t] of Object.entries(per)) {
            if (t.down) events.emit({ type: 'bytes', direction: 'down', bytes: t.down, client });
            if (t.up) events.emit({ type: 'bytes', direction: 'up', bytes: t.up, client });
          }
        }
        events.emit({ type: 'round-complete', round: e.round, line: e.entry });
        break;
      }
      case 'finished':
        events.emit({
          type: 'final',
          line: {
            round: e.summary.rounds - 1,
            phase: 'final',
            eval: { adapemu: e.summary.adapemu, adapfu: e.summary.adapfu },
          },
        });
        events.emit({ type: 'phase', phase: 'done', round: null });
        break;
    }
  };
}

/** A resumed run's history (its metrics.jsonl so far) into `events`, so views start complete. */
export function replayMetrics(events: RunEvents, metricsPath: string): void {
  if (!fs.existsSync(metricsPath)) return;
  for (const text of fs.readFileSync(metricsPath, 'utf8').split('\n')) {
    if (!text.trim()) continue;
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      continue; // a torn last line after a crash: the driver truncates it
    }
    if (line.phase === 'prepare') events.emit({ type: 'prepare', line });
    else if (line.phase === 'final') events.emit({ type: 'final', line });
    else if (typeof line.round === 'number' && line.round >= 0)
      events.emit({ type: 'round-complete', round: line.round, line });
  }
}
