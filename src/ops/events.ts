// What a federation run tells the operations side (dashboard, Prometheus metrics): a small stream
// of events, the same for a simulation and a deployed server. The round loop emits them; RunState
// (the dashboard's view) and RunMetrics (Prometheus) each fold them into their own form.

/** One line of metrics.jsonl as written by the run (round entries, the prepare and final lines). */
export type MetricsLine = Record<string, unknown>;

export type RunEvent =
  /** The run is known: its shape, and where it stands (a resumed run starts past round 0). */
  | {
      type: 'run';
      mode: 'simulation' | 'server';
      algorithm: string;
      rounds: number;
      completedRounds: number;
      clients: string[];
    }
  /** What the run is doing: preparing, aligning, waiting-clients, open, closing, training, evaluating, done... */
  | { type: 'phase'; phase: string; round: number | null }
  | { type: 'round-open'; round: number; sampled: string[]; deadline?: number }
  /** A client was heard from (a request with its token, or a simulated client's turn). */
  | { type: 'client-seen'; client: string; at: number }
  | { type: 'upload'; round: number; client: string; bytes: number; loss?: number }
  /** A request or upload refused; `client` is null when the token was unknown. */
  | { type: 'refusal'; client: string | null; reason: string }
  /** Bytes moved: down (round payloads), up (uploads), join (the compressed model download). */
  | { type: 'bytes'; direction: 'down' | 'up' | 'join'; bytes: number; client: string }
  /** A round closed; `line` is its metrics.jsonl entry (train_loss, align_loss, bytes, seconds, eval...). */
  | { type: 'round-complete'; round: number; line: MetricsLine }
  /** The prepare line (base and emulator evaluation, pre-alignment) or the final line (AdapEmu/AdapFu). */
  | { type: 'prepare' | 'final'; line: MetricsLine }
  /** Privacy accounting: the epsilon spent up to and including `round` (also read from a round line's `privacy`). */
  | { type: 'privacy'; round: number; epsilon: number; delta?: number };

export type RunListener = (e: RunEvent) => void;

/** Fan-out of run events; a listener that throws is logged by the caller's `onError`, never breaks the run. */
export class RunEvents {
  private readonly listeners = new Set<RunListener>();

  constructor(private readonly onError: (e: unknown) => void = () => {}) {}

  on(l: RunListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit(e: RunEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
