// Writes docs/openapi.json: the wire protocol as OpenAPI 3.1, generated from the zod schemas
// (src/fl/net/openapi.ts). A test fails when the committed file is out of date.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../src/fl/net/openapi.js';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'openapi.json');
fs.writeFileSync(out, JSON.stringify(openApiDocument(), null, 2) + '\n');
process.stdout.write(`wrote ${out}\n`);
