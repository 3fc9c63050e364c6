// Prometheus metrics of a run (prom-client), folded from run events. Each run gets its own registry
// (no global state), with the process metrics prom-client collects (CPU, memory, event loop).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RunEvent } from './events.js';

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export class RunMetrics {
  readonly registry = new Registry();
  private readonly roundsCompleted: Gauge;
  private readonly roundsTotal: Gauge;
  private readonly currentRound: Gauge;
  private readonly uploads: Counter;
  private readonly refusals: Counter;
  private readonly bytes: Counter;
  private readonly roundSeconds: Histogram;
  private readonly trainLoss: Gauge;
  private readonly alignLoss: Gauge;
  private readonly evalMetric: Gauge;
  private readonly epsilon: Gauge;
  private readonly lastSeen = new Map<string, number>();

  /** `activeSeconds`: a client counts as connected when heard from within this window. */
  constructor(
    private readonly activeSeconds = 60,
    o: { processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    if (o.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'fedbiot_' });
    this.roundsCompleted = new Gauge({
      name: 'fedbiot_rounds_completed',
      help: 'Rounds completed (aggregated or skipped) so far',
      registers,
    });
    this.roundsTotal = new Gauge({ name: 'fedbiot_rounds_total', help: 'Rounds the run is configured for', registers });
    this.currentRound = new Gauge({
      name: 'fedbiot_current_round',
      help: 'The open round (1-based); 0 between rounds',
      registers,
    });
    const seen = this.lastSeen;
    const win = () => this.activeSeconds * 1000;
    // Registered for its collect(): the value is computed at scrape time, so no field holds it.
    new Gauge({
      name: 'fedbiot_clients_connected',
      help: 'Clients heard from within the active window (server.activeSeconds)',
      registers,
      collect() {
        const now = Date.now();
        this.set([...seen.values()].filter((t) => now - t <= win()).length);
      },
    });
    this.uploads = new Counter({
      name: 'fedbiot_uploads_total',
      help: 'Accepted client uploads',
      labelNames: ['client'],
      registers,
    });
    this.refusals = new Counter({
      name: 'fedbiot_refusals_total',
      help: 'Refused requests and uploads, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.bytes = new Counter({
      name: 'fedbiot_bytes_total',
      help: 'Bytes moved: down (round payloads), up (uploads), join (compressed model downloads)',
      labelNames: ['direction'],
      registers,
    });
    this.roundSeconds = new Histogram({
      name: 'fedbiot_round_duration_seconds',
      help: 'Wall time of each round, from alignment to aggregation',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.trainLoss = new Gauge({
      name: 'fedbiot_train_loss',
      help: "Mean of the clients' local training loss in the last completed round",
      registers,
    });
    this.alignLoss = new Gauge({
      name: 'fedbiot_align_loss',
      help: 'Emulator alignment loss of the last round that aligned, by term',
      labelNames: ['term'],
      registers,
    });
    this.evalMetric = new Gauge({
      name: 'fedbiot_eval',
      help: 'The last evaluation, by view (base, emulator, adapemu, adapfu) and metric',
      labelNames: ['view', 'metric'],
      registers,
    });
    this.epsilon = new Gauge({
      name: 'fedbiot_privacy_epsilon',
      help: 'Differential privacy epsilon spent so far (when enabled)',
      registers,
    });
    for (const d of ['down', 'up', 'join']) this.bytes.inc({ direction: d }, 0);
    this.currentRound.set(0);
  }

  apply(e: RunEvent): void {
    switch (e.type) {
      case 'run':
        this.roundsTotal.set(e.rounds);
        this.roundsCompleted.set(e.completedRounds);
        break;
      case 'round-open':
        this.currentRound.set(e.round + 1);
        break;
      case 'client-seen':
        this.lastSeen.set(e.client, e.at);
        break;
      case 'upload':
        this.uploads.inc({ client: e.client });
        break;
      case 'refusal':
        this.refusals.inc({ reason: e.reason });
        break;
      case 'bytes':
        this.bytes.inc({ direction: e.direction }, e.bytes);
        break;
      case 'round-complete': {
        this.roundsCompleted.set(e.round + 1);
        this.currentRound.set(0);
        const l = e.line;
        const secs = num(l.seconds);
        if (secs !== null) this.roundSeconds.observe(secs);
        const losses = Object.values((l.train_loss ?? {}) as Record<string, unknown>)
          .map(num)
          .filter((v): v is number => v !== null);
        if (losses.length) this.trainLoss.set(losses.reduce((a, b) => a + b, 0) / losses.length);
        this.setAlign(l.align_loss);
        this.setEval(l.eval);
        const eps = (l.privacy as { epsilon?: unknown } | undefined)?.epsilon;
        if (typeof eps === 'number' && Number.isFinite(eps)) this.epsilon.set(eps);
        break;
      }
      case 'prepare':
        this.setAlign(e.line.align_loss);
        this.setEval(e.line.eval);
        break;
      case 'final':
        this.setEval(e.line.eval);
        break;
      case 'privacy':
        this.epsilon.set(e.epsilon);
        break;
      case 'phase':
        if (e.phase === 'done') this.currentRound.set(0);
        break;
    }
  }

  private setAlign(a: unknown): void {
    if (!a || typeof a !== 'object') return;
    const o = a as Record<string, unknown>;
    // Round entries say nmse, the prepare line says hidden (same term).
    for (const [term, v] of [
      ['nmse', o.nmse ?? o.hidden],
      ['kl', o.kl],
      ['ce', o.ce],
      ['total', o.total ?? o.loss],
    ] as const) {
      const x = num(v);
      if (x !== null) this.alignLoss.set({ term }, x);
    }
  }

  private setEval(ev: unknown): void {
    if (!ev || typeof ev !== 'object') return;
    for (const [view, m] of Object.entries(ev as Record<string, unknown>)) {
      if (!m || typeof m !== 'object') continue;
      for (const [metric, v] of Object.entries(m as Record<string, unknown>)) {
        const x = num(v);
        if (x !== null) this.evalMetric.set({ view, metric }, x);
      }
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
