// One run's operations side: the event stream, the dashboard state and the Prometheus metrics fed
// from it (in that order, so a listener added later sees both up to date).
import { RunEvents } from './events.js';
import { RunMetrics } from './metrics.js';
import { RunState } from './run-state.js';

export interface RunOps {
  events: RunEvents;
  state: RunState;
  metrics: RunMetrics;
}

export function createRunOps(
  o: { activeSeconds?: number; processMetrics?: boolean; onError?: (e: unknown) => void } = {},
): RunOps {
  const events = new RunEvents(o.onError);
  const state = new RunState(o.activeSeconds);
  const metrics = new RunMetrics(o.activeSeconds, { processMetrics: o.processMetrics });
  events.on((e) => state.apply(e));
  events.on((e) => metrics.apply(e));
  return { events, state, metrics };
}
