/**
 * Random-access byte sources: a file read with fs.readSync at offsets (so large
 * files are never held whole in memory) or an in-memory buffer.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';

export interface ByteSource {
  readonly label: string;
  readonly size: number;
  /** Fill `dst` with bytes starting at absolute position `pos`; throws if short. */
  read(pos: number, dst: Uint8Array): void;
  close(): void;
}

// fs.readSync caps one call near 2 GiB; read big spans in pieces.
const MAX_READ = 1 << 30;

export class FileSource implements ByteSource {
  private fd: number | null;
  readonly size: number;
  constructor(readonly label: string) {
    this.fd = fs.openSync(label, 'r');
    try {
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }
  read(pos: number, dst: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.label}: file already closed`);
    if (pos < 0 || pos + dst.length > this.size) throw new Error(`${this.label}: read past end of file`);
    let done = 0;
    while (done < dst.length) {
      const n = fs.readSync(this.fd, dst, done, Math.min(MAX_READ, dst.length - done), pos + done);
      if (n <= 0) throw new Error(`${this.label}: unexpected end of file (file changed while reading?)`);
      done += n;
    }
  }
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly buf: Uint8Array,
    readonly label = '<buffer>',
  ) {
    this.size = buf.length;
  }
  read(pos: number, dst: Uint8Array): void {
    if (pos < 0 || pos + dst.length > this.size) throw new Error(`${this.label}: read past end of buffer`);
    dst.set(this.buf.subarray(pos, pos + dst.length));
  }
  close(): void {}
}

/** Writes a file through a temp file + rename so readers never see a half-written file. */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* nothing to remove */
    }
    throw e;
  }
  try {
    fs.renameSync(tmp, path);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* nothing to remove */
    }
    throw e;
  }
  fsyncDir(nodePath.dirname(path));
}

/**
 * Makes a rename in `dir` durable: without it a power loss after the rename can bring back the old
 * directory entry (or none). Platforms that cannot open a directory for fsync skip it.
 */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch {
    /* not supported for directories here (e.g. Windows) */
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates the folder if needed and writes the file atomically (temp file, fsync, rename, fsync of the folder). */
export function writeAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(nodePath.dirname(file), { recursive: true });
  writeFileAtomic(file, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

/** fs.writeSync until every byte is out (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/** Writes a small text file atomically. */
export function writeTextAtomic(path: string, text: string): void {
  writeFileAtomic(path, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}
