// A recording HTTP proxy for the protocol tests: clients talk to it, it forwards every request to
// the real server unchanged and keeps what went each way (JSON bodies whole, binary bodies as their
// length), so a test can check a real run's traffic against the OpenAPI document.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv2020 } from 'ajv/dist/2020.js';

export interface Exchange {
  method: string;
  path: string;
  query: string;
  requestType: string | undefined;
  requestBytes: number;
  requestJson: unknown;
  status: number;
  responseType: string | undefined;
  responseBytes: number;
  responseJson: unknown;
}

function json(type: string | undefined, body: Buffer): unknown {
  if (!type?.startsWith('application/json') || body.length === 0) return undefined;
  return JSON.parse(body.toString('utf8'));
}

export async function recordingProxy(
  target: string,
): Promise<{ url: string; exchanges: Exchange[]; close: () => Promise<void> }> {
  const exchanges: Exchange[] = [];
  const to = new URL(target);
  const srv = http.createServer((req, res) => {
    const reqChunks: Buffer[] = [];
    req.on('data', (c: Buffer) => reqChunks.push(c));
    req.on('end', () => {
      const reqBody = Buffer.concat(reqChunks);
      const fwd = http.request(
        {
          host: to.hostname,
          port: to.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: to.host },
        },
        (up) => {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            const body = Buffer.concat(chunks);
            const u = new URL(req.url ?? '/', 'http://x');
            exchanges.push({
              method: req.method ?? 'GET',
              path: u.pathname,
              query: u.search,
              requestType: req.headers['content-type'],
              requestBytes: reqBody.length,
              requestJson: json(req.headers['content-type'], reqBody),
              status: up.statusCode ?? 0,
              responseType: up.headers['content-type'],
              responseBytes: body.length,
              responseJson: json(up.headers['content-type'], body),
            });
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(body);
          });
        },
      );
      fwd.on('error', () => res.destroy());
      fwd.end(reqBody);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    close: () =>
      new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}

type Json = Record<string, unknown>;

/**
 * Problems with one exchange against an OpenAPI 3.1 document: an undocumented path or method, an
 * undocumented status, a content type the operation does not declare, or a JSON body that does not
 * validate against the declared schema. Empty when it conforms.
 */
export function conformance(doc: Json, e: Exchange, ajv = schemaValidator(doc)): string[] {
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const what = `${e.method} ${e.path} -> ${e.status}`;
  const template = Object.keys(paths).find((p) => new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(e.path));
  if (!template) return [`${what}: path not in the document`];
  const op = paths[template]![e.method.toLowerCase()];
  if (!op) return [`${what}: method not in the document`];
  const out: string[] = [];
  if (op.requestBody) {
    const types = Object.keys((op.requestBody as { content: Json }).content);
    if (!e.requestType || !types.some((t) => e.requestType!.startsWith(t)))
      out.push(`${what}: request content-type ${e.requestType} not one of ${types.join(', ')}`);
  } else if (e.requestBytes > 0) out.push(`${what}: a request body where the document declares none`);
  const resp = (op.responses as Record<string, Json>)[String(e.status)];
  if (!resp) return [...out, `${what}: status not documented`];
  const content = resp.content as Record<string, { schema: Json }> | undefined;
  if (!content) {
    if (e.responseBytes > 0) out.push(`${what}: a response body where the document declares none`);
    return out;
  }
  const type = Object.keys(content).find((t) => e.responseType?.startsWith(t));
  if (!type)
    return [...out, `${what}: response content-type ${e.responseType} not one of ${Object.keys(content).join(', ')}`];
  if (type === 'application/json') {
    const validate = ajv.compile(rooted(content[type]!.schema));
    if (!validate(e.responseJson))
      out.push(`${what}: body does not match the schema: ${ajv.errorsText(validate.errors)}`);
  }
  return out;
}

const ROOT_ID = 'urn:fedbiot:openapi';

/** An Ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses) holding the document's components for `$ref`s. */
export function schemaValidator(doc: Json): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: ROOT_ID, components: doc.components }, ROOT_ID);
  return ajv;
}

/** A schema from the document, its "#/components/..." refs pointed at the registered root. */
function rooted(schema: Json): Json {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', `"${ROOT_ID}#/components/`)) as Json;
}
