// The smallest federated run the tests use (a random 6-layer model, 3 clients, 2-step rounds), as
// config overrides. Each test adds what it needs on top (rounds, evaluation, server).
export const TINY_RUN = [
  'model.random={hiddenSize: 32, intermediateSize: 64, numLayers: 6, numHeads: 2, numKvHeads: 1, maxPositionEmbeddings: 512}',
  'data.task=math',
  'data.trainSize=24',
  'data.testSize=4',
  'data.maxLength=320',
  'data.public={source: tasks, size: 8}',
  'clients.count=3',
  'algorithm.preAlignSteps=2',
  'algorithm.alignStepsPerRound=1',
  'algorithm.dropRate=0.5',
  'algorithm.local={steps: 2, batchSize: 2, proximal: 0.01}',
  'algorithm.align={batchSize: 2}',
];
