// The library: `import { ... } from 'fedbiot'`. Typed entry points to simulate a federation, serve
// one, join one as a client, and load / save models and adapters, plus the driver's extension
// points (transports, aggregation, payload codecs, round events). docs/api.md describes each.

// Configuration
export { loadConfig, validateConfig, ConfigError } from './config/load.js';
export { configSchema, serverSettings, type RunConfig, type ServerSettings } from './config/schema.js';

// Running a federation
export { buildExperiment, buildServerData, type Experiment, type ServerData } from './fl/experiment.js';
export { loadClientData, prepareClientData } from './data/client-data.js';
export { runSimulation, InProcessTransport, type SimulationOptions } from './fl/simulation.js';
export { FedServer, NetworkTransport, openDb } from './fl/net/server.js';
export { runClient, fetchModel, RefusedError, type ClientOptions } from './fl/net/client.js';
export { ServerDb } from './fl/net/db.js';
export {
  runFederation,
  sampleClients,
  fedAvgAggregator,
  type Summary,
  type EvalResult,
  type RunOptions,
  type DriverHooks,
  type Aggregator,
  type WeightedUpdate,
  type FederationEvent,
  type Transport,
  type TransportContext,
  type RoundExchange,
  type RoundOutcome,
  type ReceivedUpdate,
} from './fl/driver.js';
export { CODECS, f32Codec, encodePayload, decodePayload, encodeUpdate, type PayloadCodec } from './fl/payload.js';

// Algorithms
export {
  ALGORITHMS,
  STRATEGIES,
  strategyOf,
  ServerAlgorithm,
  ClientAlgorithm,
  type AlgorithmName,
  type AlgorithmSettings,
  type Strategy,
} from './fedbiot/algorithms.js';
export { settingsFromConfig } from './fedbiot/settings.js';
export type { LoraState } from './fedbiot/lora-state.js';

// Models, adapters, tokenizers, generation
export { LlamaModel } from './nn/llama.js';
export { loadHfModel, saveHfModel, loadPeftAsState, saveAdapterAsPeft } from './models/hf-model.js';
export { readPeftAdapter, writePeftAdapter } from './io/peft.js';
export { loadTokenizer, type Tokenizer } from './io/tokenizer.js';
export { generate, type SamplingOptions } from './nn/generate.js';
export { setThreads } from './tensor/engine.js';
export { silentProgress, type Progress } from './util/progress.js';
