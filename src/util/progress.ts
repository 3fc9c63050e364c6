// How long-running work (pre-alignment, rounds, pretraining) reports progress; the terminal
// implementation lives in cli/progress.ts.
export interface Progress {
  start(label: string, total: number): void;
  tick(info?: Record<string, string | number>): void;
  stop(): void;
  log(line: string): void;
}

export const silentProgress: Progress = { start() {}, tick() {}, stop() {}, log() {} };
