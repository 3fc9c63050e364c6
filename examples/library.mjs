// Using fedbiot as a library: a tiny FedBiOT simulation (random 6-layer model, generated math task,
// 3 clients, 2 rounds), watched through the driver's round events, then the final adapter read back.
//   node examples/library.mjs [OUT_DIR]        (after `npm run build`, or with fedbiot installed)
import * as os from 'node:os';
import * as path from 'node:path';
import { buildExperiment, loadConfig, loadPeftAsState, runSimulation } from 'fedbiot';

const out = process.argv[2] ?? path.join(os.tmpdir(), 'fedbiot-library-example');
const cfg = loadConfig(null, [
  'rounds=2',
  'model.random={hiddenSize: 32, intermediateSize: 64, numLayers: 6, numHeads: 2, numKvHeads: 1}',
  'data.task=math',
  'data.maxLength=320',
  'data.trainSize=24',
  'data.testSize=4',
  'data.public={source: tasks, size: 8}',
  'clients.count=3',
  'algorithm.preAlignSteps=2',
  'algorithm.alignStepsPerRound=1',
  'algorithm.dropRate=0.5',
  'algorithm.local={steps: 2, batchSize: 2}',
  'algorithm.align={batchSize: 2}',
  'eval={maxExamples: 2, generate: false}',
]);
const summary = await runSimulation(await buildExperiment(cfg), {
  outDir: out,
  hooks: {
    onEvent: (e) => {
      if (e.type === 'round-end')
        console.log(`round ${e.round + 1}: clients ${e.entry.clients.join(',')}, ${e.entry.bytes_up} bytes up`);
    },
  },
});
const adapter = loadPeftAsState(path.join(out, 'adapter'));
console.log(
  JSON.stringify({
    algorithm: summary.algorithm,
    adapfu_nll: summary.adapfu.nll,
    bytes_total: summary.bytes_total,
    adapter_tensors: adapter.state.size,
  }),
);
