// The wire protocol as an OpenAPI 3.1 document, generated from the zod schemas in protocol.ts (the
// ones the server and client validate with), so the description cannot drift from the code. OpenAPI
// 3.1 schemas are JSON Schema 2020-12, which is what zod's own toJSONSchema writes. Served at
// GET /v1/openapi.json and written to docs/openapi.json (`npm run openapi`).
import { z } from 'zod';
import {
  METRICS_HEADER,
  PROTOCOL,
  artifactSchema,
  errorSchema,
  healthSchema,
  joinInfoSchema,
  joinRequestSchema,
  modelFileSchema,
  roundStatusSchema,
  statusInfoSchema,
  uploadMetricsSchema,
  uploadReplySchema,
  UPDATE_HEADER,
  updateMetaSchema,
} from './protocol.js';
import {
  envelopesSchema,
  rosterSchema,
  secaggKeysSchema,
  unmaskRequestSchema,
  unmaskResponseSchema,
  waitingSchema,
} from './secagg.js';

type Json = Record<string, unknown>;

/** Component name -> schema; the names are what `$ref`s and the docs use. */
const COMPONENTS: [string, z.ZodType][] = [
  ['Error', errorSchema],
  ['Health', healthSchema],
  ['ModelFile', modelFileSchema],
  ['Artifact', artifactSchema],
  ['JoinRequest', joinRequestSchema],
  ['JoinInfo', joinInfoSchema],
  ['RoundStatus', roundStatusSchema],
  ['UploadMetrics', uploadMetricsSchema],
  ['UpdateMeta', updateMetaSchema],
  ['UploadReply', uploadReplySchema],
  ['StatusInfo', statusInfoSchema],
  ['SecAggKeys', secaggKeysSchema],
  ['SecAggRoster', rosterSchema],
  ['SecAggEnvelopes', envelopesSchema],
  ['SecAggUnmaskRequest', unmaskRequestSchema],
  ['SecAggUnmaskResponse', unmaskResponseSchema],
  ['SecAggWaiting', waitingSchema],
];

function componentSchemas(): Record<string, Json> {
  const reg = z.registry<{ id: string }>();
  for (const [id, s] of COMPONENTS) reg.add(s, { id });
  const out = z.toJSONSchema(reg, { target: 'draft-2020-12', uri: (id) => `#/components/schemas/${id}` }) as {
    schemas: Record<string, Json>;
  };
  for (const s of Object.values(out.schemas)) {
    delete s.$schema;
    delete s.$id;
  }
  return out.schemas;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string, description: string) => ({
  description,
  content: { 'application/json': { schema: ref(name) } },
});
const binary = (description: string) => ({
  description,
  content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
});
const err = (description: string) => json('Error', description);
const clientAuth = [{ bearer: [] }];
const adminAuth = [{ bearer: [] }, { basic: [] }];
const roundParam = {
  name: 'round',
  in: 'path',
  required: true,
  description: 'zero-based round index',
  schema: { type: 'integer', minimum: 0 },
};
const UNAUTHORIZED = err('missing, unknown or revoked token');

const SAFETENSORS = 'A safetensors file (8-byte little-endian header length, JSON header, raw F32 data).';

/** The whole document. `serverUrl` adds a `servers` entry (the live document names its own URL). */
export function openApiDocument(serverUrl?: string): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'fedbiot federation protocol',
      version: PROTOCOL,
      description:
        'The protocol between `fedbiot server` (owns the full model) and `fedbiot client` (a data owner that trains an adapter on a ' +
        'compressed model). A client joins, downloads the compressed model once (resumable with Range), then polls GET /v1/round; ' +
        'when told to train it fetches the round payload, trains locally and posts its update. Control messages are JSON; LoRA ' +
        'states travel as safetensors bodies. Every request but /v1/health, /v1/openapi.json and anonymous /v1/status carries ' +
        '`Authorization: Bearer <token>` (tokens from `fedbiot server add-client`).',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: {
      schemas: componentSchemas(),
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'a client token, or an admin token for status, dashboard and metrics',
        },
        basic: {
          type: 'http',
          scheme: 'basic',
          description: 'for browsers and scrapers: any user name, the admin token as password (dashboard and metrics)',
        },
      },
    },
    paths: {
      '/v1/health': {
        get: {
          operationId: 'health',
          summary: 'liveness and the server phase',
          security: [],
          responses: { 200: json('Health', 'the server is up') },
        },
      },
      '/v1/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'this document',
          security: [],
          responses: {
            200: {
              description: 'the OpenAPI 3.1 document',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
      '/v1/join': {
        post: {
          operationId: 'join',
          summary: 'who the client is, which model to download and how to train, the round traffic codec',
          security: clientAuth,
          requestBody: {
            required: false,
            ...json('JoinRequest', 'the codecs the client decodes (without a body: plain F32 round traffic only)'),
          },
          responses: {
            200: json('JoinInfo', 'the join information'),
            400: err('the body is not a JoinRequest'),
            401: UNAUTHORIZED,
            403: err('the token is not a client token'),
            422: err("the run's compression codec is not among the client's (the reason says what it lacks)"),
          },
        },
      },
      '/v1/model/files/{name}': {
        get: {
          operationId: 'modelFile',
          summary: 'one file of the compressed model (names and hashes in JoinInfo.model)',
          security: clientAuth,
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' } },
            {
              name: 'Range',
              in: 'header',
              required: false,
              description: 'bytes=START- or bytes=START-END, to resume a download',
              schema: { type: 'string' },
            },
          ],
          responses: {
            200: binary('the whole file'),
            206: binary('the requested range (Content-Range says which)'),
            401: UNAUTHORIZED,
            404: err('no such file'),
            416: { description: 'the range is outside the file' },
          },
        },
      },
      '/v1/round': {
        get: {
          operationId: 'round',
          summary: 'what the client should do now: wait, train (with the round nonce), uploaded, or done',
          security: clientAuth,
          responses: { 200: json('RoundStatus', 'the round state for this client'), 401: UNAUTHORIZED },
        },
      },
      '/v1/round/{round}/payload': {
        get: {
          operationId: 'payload',
          summary:
            'the round payload: the current adapter LoRA (and the emulator LoRA when newer than emulatorVersion)',
          security: clientAuth,
          parameters: [
            roundParam,
            {
              name: 'emulatorVersion',
              in: 'query',
              required: false,
              description:
                'the emulator version the client holds (-1: none); with compression, the version of the emulator stream (0: none)',
              schema: { type: 'integer' },
            },
            {
              name: 'adapterVersion',
              in: 'query',
              required: false,
              description: 'with compression: the version of the adapter stream the client holds (0: none)',
              schema: { type: 'integer', minimum: 0 },
            },
          ],
          responses: {
            200: binary(
              `${SAFETENSORS} Tensors "adapter.<name>" and "emulator.<name>"; metadata round, nonce, emulatorVersion, hasEmulator ("1" or "0"), codec (how the tensors are encoded; "f32": plain F32 tensors). With compression (JoinInfo.compression): two parts, each a u32 length and a compressed-update body ("FBCU", src/codec/wire.ts; length 0: nothing new), the adapter's and the emulator's, each a delta against the version the client holds or the held state whole.`,
            ),
            400: err('a version in the query is not a non-negative integer'),
            401: UNAUTHORIZED,
            403: err('the client is not sampled in this round'),
            409: err('the round is not open'),
          },
        },
      },
      '/v1/round/{round}/update': {
        post: {
          operationId: 'update',
          summary: "the client's trained adapter LoRA for the round",
          security: clientAuth,
          parameters: [
            roundParam,
            {
              name: METRICS_HEADER,
              in: 'header',
              required: true,
              description: "the client's local training metrics, an UploadMetrics object as JSON text",
              content: { 'application/json': { schema: ref('UploadMetrics') } },
            },
            {
              name: UPDATE_HEADER,
              in: 'header',
              required: false,
              description:
                "with compression: the update's round, nonce and local example count, an UpdateMeta object as JSON text",
              content: { 'application/json': { schema: ref('UpdateMeta') } },
            },
          ],
          requestBody: {
            required: true,
            ...binary(
              `${SAFETENSORS} The adapter LoRA tensors under the payload's names (without "adapter."), encoded with the payload's codec; metadata round, nonce (from RoundStatus), samples (local example count), codec. With compression: a compressed-update body ("FBCU"), the delta against the round's adapter (seeded stochastic rounding, top-k with the client's error feedback when agreed).`,
            ),
          },
          responses: {
            200: json('UploadReply', 'the update was accepted'),
            401: UNAUTHORIZED,
            403: err('the client is not sampled in this round'),
            409: err('duplicate, wrong round, closed round or bad nonce'),
            413: err('the body exceeds the server limit'),
            422: err('the body or the metrics header is not a valid update (shape, values, norm bound)'),
            503: err('too many uploads are being received at once: retry after the Retry-After seconds'),
          },
        },
      },
      ...secaggPaths(),
      '/v1/status': {
        get: {
          operationId: 'status',
          summary: 'rounds and phase; with an admin token also clients and per-round detail',
          security: [{}, { bearer: [] }],
          responses: { 200: json('StatusInfo', 'the server status'), 401: UNAUTHORIZED },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics (text exposition format)',
          security: [...adminAuth, {}],
          description: 'Needs the admin token unless the server is configured with server.metricsPublic: true.',
          responses: {
            200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
            401: UNAUTHORIZED,
          },
        },
      },
      '/dashboard': {
        get: {
          operationId: 'dashboard',
          summary: 'the live dashboard (HTML)',
          security: adminAuth,
          responses: {
            200: { description: 'the page', content: { 'text/html': { schema: { type: 'string' } } } },
            401: UNAUTHORIZED,
          },
        },
      },
      '/dashboard/events': {
        get: {
          operationId: 'dashboardEvents',
          summary: 'server-sent events with the dashboard state',
          security: adminAuth,
          responses: {
            200: { description: 'an event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
            401: UNAUTHORIZED,
          },
        },
      },
    },
  };
}

/** Secure aggregation's phases (src/fl/net/secagg.ts), for a server configured with secureAggregation. */
function secaggPaths(): Json {
  const phase = (
    method: 'get' | 'post',
    action: string,
    summary: string,
    body: Json | null,
    ok: Json,
    waits: boolean,
  ): Json => ({
    [method]: {
      operationId: `secagg${action[0]!.toUpperCase()}${action.slice(1)}${method === 'post' && action === 'unmask' ? 'Response' : ''}`,
      summary,
      security: clientAuth,
      parameters: [roundParam],
      ...(body ? { requestBody: { required: true, ...body } } : {}),
      responses: {
        200: ok,
        ...(waits ? { 202: json('SecAggWaiting', 'the phase has not begun: ask again after pollSeconds') } : {}),
        401: UNAUTHORIZED,
        403: err('the client is not sampled in this round'),
        409: err('the round is not in secure aggregation, or past this phase, or the client is not part of it'),
        ...(body ? { 422: err('the message is malformed or fails the protocol checks') } : {}),
      },
    },
  });
  const accepted = {
    description: 'accepted',
    content: { 'application/json': { schema: { type: 'object', properties: { accepted: { const: true } } } } },
  };
  const jsonBody = (name: string) => ({ content: { 'application/json': { schema: ref(name) } } });
  return {
    '/v1/round/{round}/secagg/keys': phase(
      'post',
      'keys',
      'phase 1: two X25519 public keys (base64, 32 bytes) and the local example count',
      jsonBody('SecAggKeys'),
      accepted,
      false,
    ),
    '/v1/round/{round}/secagg/roster': phase(
      'get',
      'roster',
      'the roster: every client that advertised, its FedAvg weight and keys, and the threshold',
      null,
      json('SecAggRoster', 'the roster'),
      true,
    ),
    '/v1/round/{round}/secagg/shares': phase(
      'post',
      'shares',
      'phase 2: one AES-256-GCM envelope of Shamir shares for each other client on the roster',
      jsonBody('SecAggEnvelopes'),
      accepted,
      false,
    ),
    '/v1/round/{round}/secagg/envelopes': phase(
      'get',
      'envelopes',
      'the envelopes other clients addressed to this one',
      null,
      json('SecAggEnvelopes', 'the envelopes'),
      true,
    ),
    '/v1/round/{round}/secagg/masked': {
      post: {
        ...(phase(
          'post',
          'masked',
          "phase 3: the masked input (the client's weighted update in fixed point plus its masks, mod 2^32)",
          binary('the roster length of uint32 words, little-endian'),
          json('UploadReply', 'the masked input was accepted'),
          false,
        ).post as Json),
        parameters: [
          roundParam,
          {
            name: METRICS_HEADER,
            in: 'header',
            required: true,
            description: "the client's local training metrics, an UploadMetrics object as JSON text",
            content: { 'application/json': { schema: ref('UploadMetrics') } },
          },
        ],
      },
    },
    '/v1/round/{round}/secagg/unmask': {
      ...phase(
        'get',
        'unmask',
        'phase 4: who survived (sent a masked input) and who dropped',
        null,
        json('SecAggUnmaskRequest', 'the unmask request'),
        true,
      ),
      ...phase(
        'post',
        'unmask',
        "phase 4: shares of the dropped clients' mask keys and of the survivors' self-mask seeds",
        jsonBody('SecAggUnmaskResponse'),
        accepted,
        false,
      ),
    },
  };
}
