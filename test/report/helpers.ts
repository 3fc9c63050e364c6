// Shared by the report tests.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'report');

/** A scratch copy of a fixture folder (the report is written into it); the caller removes it. */
export function copyFixture(name: 'demo' | 'run'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fedbiot-report-${name}-`));
  fs.cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  return dir;
}
