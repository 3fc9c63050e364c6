// Resumable, verified download of the compressed model: every file is fetched in fixed-size chunks
// with HTTP Range into NAME.part, so a broken connection or a killed client continues where it
// stopped; the file is renamed into place only after its sha256 matches the server's.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { request, replyReason, type ClientTransport } from './http.js';
import { sha256File } from './artifact.js';
import type { Artifact, ModelFile } from './protocol.js';

export interface DownloadReport {
  /** Bytes fetched over the network in this call. */
  fetched: number;
  /** Bytes found already in .part files and kept. */
  resumed: number;
  /** Files already complete in the cache. */
  cached: number;
}

/** Bytes per Range request when the caller does not say. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

export interface DownloadOptions {
  chunkBytes?: number;
  /** Called after every chunk written (tests use it to interrupt a download). */
  onChunk?: (file: string, offset: number, size: number) => void;
  log?: (line: string) => void;
}

/** The cache folder for one artifact. */
export function modelCacheDir(cache: string, art: Artifact): string {
  return path.join(cache, `model-${art.sha256.slice(0, 16)}`);
}

export async function downloadArtifact(
  t: ClientTransport,
  art: Artifact,
  dir: string,
  o: DownloadOptions = {},
): Promise<DownloadReport> {
  fs.mkdirSync(dir, { recursive: true });
  const rep: DownloadReport = { fetched: 0, resumed: 0, cached: 0 };
  for (const f of art.files) await downloadFile(t, f, dir, rep, o);
  fs.writeFileSync(path.join(dir, 'artifact.json'), JSON.stringify(art, null, 2));
  return rep;
}

async function downloadFile(
  t: ClientTransport,
  f: ModelFile,
  dir: string,
  rep: DownloadReport,
  o: DownloadOptions,
): Promise<void> {
  const dest = path.join(dir, f.name);
  if (fs.existsSync(dest) && fs.statSync(dest).size === f.size && sha256File(dest) === f.sha256) {
    rep.cached++;
    return;
  }
  const part = `${dest}.part`;
  let offset = fs.existsSync(part) ? fs.statSync(part).size : 0;
  if (offset > f.size) {
    fs.rmSync(part);
    offset = 0;
  }
  if (offset > 0) {
    rep.resumed += offset;
    o.log?.(`${f.name}: resuming at ${offset} of ${f.size} bytes`);
  }
  const chunk = Math.max(1, o.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  const fd = fs.openSync(part, 'a');
  try {
    while (offset < f.size) {
      const end = Math.min(f.size, offset + chunk) - 1;
      const r = await request(t, 'GET', `v1/model/files/${encodeURIComponent(f.name)}`, {
        headers: { range: `bytes=${offset}-${end}` },
      });
      if (r.status !== 206) {
        const why = replyReason(r);
        throw new Error(`download ${f.name}: HTTP ${r.status} ${why.code}: ${why.reason}`);
      }
      if (r.body.length !== end - offset + 1)
        throw new Error(`download ${f.name}: asked for ${end - offset + 1} bytes at ${offset}, got ${r.body.length}`);
      fs.writeSync(fd, r.body);
      fs.fsyncSync(fd);
      offset += r.body.length;
      rep.fetched += r.body.length;
      o.onChunk?.(f.name, offset, f.size);
    }
  } finally {
    fs.closeSync(fd);
  }
  const got = sha256File(part);
  if (got !== f.sha256) {
    fs.rmSync(part);
    throw new Error(
      `download ${f.name}: sha256 ${got} does not match the server's ${f.sha256}; the partial file was removed, run again`,
    );
  }
  fs.renameSync(part, dest);
}
