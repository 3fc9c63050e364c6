// `simulate --dashboard`: the driver's round events feed the same dashboard and metrics as a
// server's. A simulation runs in this process with the operations endpoints on localhost; after
// each round the test reads /metrics and the dashboard over HTTP (the simulation lets the event
// loop turn between clients), and at the end the counters equal summary.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { loadConfig } from '../../src/config/load.js';
import { buildExperiment } from '../../src/fl/experiment.js';
import { runSimulation } from '../../src/fl/simulation.js';
import { federationToOps } from '../../src/fl/ops-bridge.js';
import { createRunOps } from '../../src/ops/run-ops.js';
import { serveOps } from '../../src/ops/http.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const value = (text: string, name: string, labels: Record<string, string> = {}) => {
  const f = parsePrometheusTextFormat(text).find((x) => x.name === name);
  const m = f?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  assert.ok(m, `no ${name} ${JSON.stringify(labels)}`);
  return Number(m.value);
};

test('simulate --dashboard: metrics and page during a simulation, counters equal summary.json', {
  timeout: 120_000,
}, async () => {
  const cfg = loadConfig(null, ['rounds=3', ...TINY_RUN, 'eval={maxExamples: 2, maxNewTokens: 2, generate: false}']);
  const exp = await buildExperiment(cfg);
  const ops = createRunOps({ processMetrics: false });
  ops.events.emit({
    type: 'run',
    mode: 'simulation',
    algorithm: cfg.algorithm.name,
    rounds: cfg.rounds,
    completedRounds: 0,
    clients: ['0', '1', '2'],
  });
  const srv = await serveOps({ ...ops });
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-simdash-'));
  const seen: Promise<{ round: number; completed: number; page: string }>[] = [];
  const bridge = federationToOps(ops.events, { bytesFromEntries: true });
  try {
    const summary = await runSimulation(exp, {
      outDir: out,
      hooks: {
        onEvent: (e) => {
          bridge(e);
          if (e.type === 'round-end') {
            seen.push(
              (async () => {
                const m = await (await fetch(`${srv.url}/metrics`)).text();
                const page = await (await fetch(`${srv.url}/dashboard`)).text();
                return { round: e.round, completed: value(m, 'fedbiot_rounds_completed'), page };
              })(),
            );
          }
        },
      },
    });
    assert.ok(summary);
    const during = await Promise.all(seen);
    // Each answer came after its round ended (it may be a round later: a request takes several
    // turns of the event loop) and the first came while the simulation was still running.
    assert.equal(during.length, 3);
    for (const d of during) {
      assert.ok(d.completed >= d.round + 1, JSON.stringify(during.map((x) => [x.round, x.completed])));
      const shown = Number(/data-completed-rounds="(\d+)"/.exec(d.page)![1]);
      assert.ok(shown >= d.round + 1 && shown <= 3);
    }
    assert.ok(during[0]!.completed < 3, 'the dashboard answered during the simulation');
    const text = await ops.metrics.text();
    assert.equal(value(text, 'fedbiot_rounds_completed'), 3);
    assert.equal(value(text, 'fedbiot_bytes_total', { direction: 'down' }), summary.bytes_down_total);
    assert.equal(value(text, 'fedbiot_bytes_total', { direction: 'up' }), summary.bytes_up_total);
    assert.equal(value(text, 'fedbiot_eval', { view: 'adapfu', metric: 'nll' }), summary.adapfu.nll);
    const uploads = parsePrometheusTextFormat(text)
      .find((f) => f.name === 'fedbiot_uploads_total')!
      .metrics.reduce((a, m) => a + Number(m.value), 0);
    assert.equal(uploads, 3 * 3, 'three clients in each of three rounds');
    const s = ops.state.snapshot();
    assert.equal(s.phase, 'done');
    assert.equal(s.lines.filter((l) => l.phase === 'final').length, 1);
  } finally {
    await srv.close();
    fs.rmSync(out, { recursive: true, force: true });
  }
});
