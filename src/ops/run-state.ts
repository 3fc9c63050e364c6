// The dashboard's view of a run, folded from run events: where the run stands, each client, traffic
// and refusals, and the metrics lines so far (from which the report's charts are drawn).
import type { MetricsLine, RunEvent } from './events.js';

export interface ClientView {
  name: string;
  lastSeen: number | null;
  uploads: number;
  refusals: number;
  /** Sampled in the round that is open now. */
  sampled: boolean;
  bytesDown: number;
  bytesUp: number;
  bytesJoin: number;
}

export interface RunSnapshot {
  mode: 'simulation' | 'server';
  algorithm: string;
  rounds: number;
  completedRounds: number;
  currentRound: number | null;
  phase: string;
  startedAt: number;
  updatedAt: number;
  deadline: number | null;
  /** A client counts as active when heard from within this many seconds. */
  activeSeconds: number;
  clients: ClientView[];
  refusals: Record<string, number>;
  traffic: { down: number; up: number; join: number };
  /** metrics.jsonl lines so far: the prepare line, one per round, the final line. */
  lines: MetricsLine[];
  privacy: { round: number; epsilon: number; delta?: number }[];
}

const byName = (a: ClientView, b: ClientView) => a.name.localeCompare(b.name, 'en', { numeric: true });

export class RunState {
  private s: RunSnapshot;
  private readonly clients = new Map<string, ClientView>();
  private readonly roundLines = new Map<number, MetricsLine>();
  private prepare: MetricsLine | null = null;
  private final: MetricsLine | null = null;
  private sampled: string[] = [];

  constructor(activeSeconds = 60, now = Date.now()) {
    this.s = {
      mode: 'simulation',
      algorithm: '',
      rounds: 0,
      completedRounds: 0,
      currentRound: null,
      phase: 'starting',
      startedAt: now,
      updatedAt: now,
      deadline: null,
      activeSeconds,
      clients: [],
      refusals: {},
      traffic: { down: 0, up: 0, join: 0 },
      lines: [],
      privacy: [],
    };
  }

  private client(name: string): ClientView {
    let c = this.clients.get(name);
    if (!c) {
      c = {
        name,
        lastSeen: null,
        uploads: 0,
        refusals: 0,
        sampled: this.sampled.includes(name),
        bytesDown: 0,
        bytesUp: 0,
        bytesJoin: 0,
      };
      this.clients.set(name, c);
    }
    return c;
  }

  apply(e: RunEvent, now = Date.now()): void {
    const s = this.s;
    s.updatedAt = now;
    switch (e.type) {
      case 'run':
        Object.assign(s, {
          mode: e.mode,
          algorithm: e.algorithm,
          rounds: e.rounds,
          completedRounds: e.completedRounds,
        });
        for (const c of e.clients) this.client(c);
        break;
      case 'phase':
        s.phase = e.phase;
        s.currentRound = e.round;
        if (e.phase === 'done') this.setSampled([]);
        break;
      case 'round-open':
        s.currentRound = e.round;
        s.deadline = e.deadline ?? null;
        this.setSampled(e.sampled);
        break;
      case 'client-seen':
        this.client(e.client).lastSeen = e.at;
        break;
      case 'upload':
        this.client(e.client).uploads++;
        break;
      case 'refusal':
        s.refusals[e.reason] = (s.refusals[e.reason] ?? 0) + 1;
        if (e.client) this.client(e.client).refusals++;
        break;
      case 'bytes': {
        s.traffic[e.direction] += e.bytes;
        const c = this.client(e.client);
        if (e.direction === 'down') c.bytesDown += e.bytes;
        else if (e.direction === 'up') c.bytesUp += e.bytes;
        else c.bytesJoin += e.bytes;
        break;
      }
      case 'round-complete': {
        this.roundLines.set(e.round, e.line);
        // A run with differential privacy says its epsilon on each round's line.
        const p = e.line.privacy as { epsilon?: unknown; delta?: unknown } | undefined;
        if (p && typeof p.epsilon === 'number')
          this.apply(
            {
              type: 'privacy',
              round: e.round,
              epsilon: p.epsilon,
              ...(typeof p.delta === 'number' ? { delta: p.delta } : {}),
            },
            now,
          );
        s.completedRounds = Math.max(s.completedRounds, e.round + 1);
        s.currentRound = null;
        s.deadline = null;
        this.setSampled([]);
        break;
      }
      case 'prepare':
        this.prepare = e.line;
        break;
      case 'final':
        this.final = e.line;
        break;
      case 'privacy':
        s.privacy = [
          ...s.privacy.filter((p) => p.round !== e.round),
          { round: e.round, epsilon: e.epsilon, ...(e.delta !== undefined ? { delta: e.delta } : {}) },
        ].sort((a, b) => a.round - b.round);
        break;
    }
  }

  private setSampled(names: string[]): void {
    this.sampled = names;
    for (const n of names) this.client(n);
    for (const c of this.clients.values()) c.sampled = names.includes(c.name);
  }

  /** A copy that later events do not change. */
  snapshot(): RunSnapshot {
    const lines: MetricsLine[] = [];
    if (this.prepare) lines.push(this.prepare);
    for (const r of [...this.roundLines.keys()].sort((a, b) => a - b)) lines.push(this.roundLines.get(r)!);
    if (this.final) lines.push(this.final);
    return structuredClone({ ...this.s, clients: [...this.clients.values()].sort(byName), lines });
  }
}
