// Helpers for the network tests: real `fedbiot` processes on 127.0.0.1, every wait bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerDb } from '../../src/fl/net/db.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const LAUNCHER = path.join(ROOT, 'src', 'cli', 'run-dev.ts');

export const TINY = [...TINY_RUN, 'eval={maxExamples: 2, maxNewTokens: 2, generate: false}'];

export function tmp(prefix = 'fedbiot-net-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export class Proc {
  out = '';
  readonly exited: Promise<number | null>;
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(
    public readonly name: string,
    public readonly child: ChildProcess,
  ) {
    const onData = (d: Buffer) => {
      this.out += d.toString('utf8');
      if (process.env.FEDBIOT_TEST_VERBOSE) process.stderr.write(`[${name}] ${d.toString('utf8')}`);
      this.waiters = this.waiters.filter((w) => {
        const m = this.out.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  /** Resolves when the output matches `re`; rejects after `ms` with the output so far. */
  waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray> {
    const m = this.out.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no ${re} within ${ms} ms; output:\n${this.out.slice(-3000)}`)),
        ms,
      );
      this.waiters.push({ re, resolve: (x) => (clearTimeout(timer), resolve(x)) });
    });
  }

  async exit(ms: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>(
      (_, rej) =>
        (timer = setTimeout(
          () => rej(new Error(`${this.name}: still running after ${ms} ms; output:\n${this.out.slice(-3000)}`)),
          ms,
        )),
    );
    try {
      return await Promise.race([this.exited, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill9(): void {
    if (this.child.exitCode === null && this.child.pid) this.child.kill('SIGKILL');
  }
}

const live = new Set<Proc>();

export function cli(name: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', LAUNCHER, ...args], {
    cwd: ROOT,
    env: { ...process.env, FEDBIOT_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p = new Proc(name, child);
  live.add(p);
  void p.exited.then(() => live.delete(p));
  return p;
}

/** Kills every process a test started (call in `after`/finally). */
export function killAll(): void {
  for (const p of live) p.kill9();
}

export interface Setup {
  state: string;
  config: string;
  /** The run as the simulation reads it (data.task: the clients' shares are dealt from it). */
  sets: string[];
  /** The same run as the deployed server reads it: no training data, an evaluation file. */
  serverSets: string[];
  url: string;
  tokens: Record<string, string>;
  shares: string[];
  dir: string;
}

/** A state folder with registered clients, the client data shares and a config. */
export async function setup(o: {
  rounds: number;
  clients?: string[];
  unregistered?: boolean;
  server?: Record<string, string | number>;
  extra?: string[];
  tls?: { cert: string; key: string };
}): Promise<Setup> {
  const dir = tmp();
  const state = path.join(dir, 'state');
  const port = await freePort();
  const config = path.join(dir, 'run.yaml');
  fs.writeFileSync(config, `rounds: ${o.rounds}\n`);
  const server = {
    port,
    host: '127.0.0.1',
    pollSeconds: 0.1,
    lingerSeconds: 2,
    ...(o.tls ? { tls: `{cert: ${o.tls.cert}, key: ${o.tls.key}}` } : {}),
    ...o.server,
  };
  const sets = [
    ...TINY,
    // The f32 protocol: these tests read and forge raw bodies. test/net/compression.test.ts runs a
    // codec end to end.
    'compression={codec: none}',
    ...(o.extra ?? []),
    `server={${Object.entries(server)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}}`,
  ];
  fs.mkdirSync(state, { recursive: true });
  const { loadConfig } = await import('../../src/config/load.js');
  const { buildExperiment, clientShares } = await import('../../src/fl/experiment.js');
  const { writeExamples, writeShares } = await import('../../src/data/client-data.js');
  // The data owners' files: the simulation's shares of the generated task, one per client.
  const exp = await buildExperiment(loadConfig(config, sets));
  const shares = writeShares(clientShares(exp), path.join(dir, 'data'));
  // The server's config names no client data and no training set: its evaluation set is a file,
  // its public data the generated families the simulation uses (code and qa for a math task).
  const evalFile = path.join(dir, 'server', 'eval.jsonl');
  writeExamples(evalFile, exp.test);
  const serverSets = [
    ...sets.filter((x) => !/^data\.(task|trainSize|testSize|public)=/.test(x)),
    `data.test=${evalFile}`,
    'data.public={source: tasks, size: 8, tasks: [code, qa]}',
  ];
  // Each client is registered with the size of its file: the FedAvg weight the server trusts.
  const db = new ServerDb(path.join(state, 'server.db'));
  const tokens: Record<string, string> = {};
  for (const c of o.clients ?? ['0', '1', '2'])
    tokens[c] = db.addClient(c, 'client', o.unregistered ? undefined : shares[Number(c)]!.records);
  tokens.admin = db.addClient('admin', 'admin');
  db.close();
  return {
    state,
    config,
    sets,
    serverSets,
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    tokens,
    shares: shares.map((x) => x.file),
    dir,
  };
}

export function serverArgs(s: Setup): string[] {
  return ['server', '--config', s.config, '--state', s.state, ...s.serverSets.flatMap((x) => ['--set', x])];
}

export function clientArgs(s: Setup, name: string, extra: string[] = []): string[] {
  return [
    'client',
    '--server',
    s.url,
    '--token',
    s.tokens[name]!,
    '--data',
    s.shares[Number(name)]!,
    '--format',
    'alpaca',
    '--cache',
    path.join(s.dir, `cache-${name}`),
    '--patience',
    '60',
    ...extra,
  ];
}

export function metrics(s: Setup): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(s.state, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Round entries of metrics.jsonl (not the prepare/final lines). */
export function roundMetrics(s: Setup): Record<string, unknown>[] {
  return metrics(s).filter((l) => typeof l.round === 'number' && (l.round as number) >= 0 && !l.phase);
}

/**
 * `fedbiot simulate` of the same config and seed in this process (one compute thread, as the server
 * and client processes run): its final adapter, split manifest and output folder.
 */
export async function simulationReference(
  config: string,
  sets: string[],
  o: { dropAfterShares?: string[]; hooks?: import('../../src/fl/driver.js').DriverHooks } = {},
): Promise<{ adapter: import('../../src/fedbiot/lora-state.js').LoraState; manifest: unknown; out: string }> {
  const { loadConfig } = await import('../../src/config/load.js');
  const { buildExperiment } = await import('../../src/fl/experiment.js');
  const { runSimulation } = await import('../../src/fl/simulation.js');
  const { loadPeftAsState } = await import('../../src/models/hf-model.js');
  const { setThreads } = await import('../../src/tensor/engine.js');
  setThreads(1);
  const out = tmp('fedbiot-net-ref-');
  const summary = await runSimulation(await buildExperiment(loadConfig(config, sets)), { outDir: out, ...o });
  if (!summary) throw new Error('the reference simulation stopped early');
  return {
    adapter: loadPeftAsState(path.join(out, 'adapter')).state,
    manifest: JSON.parse(fs.readFileSync(path.join(out, 'split.json'), 'utf8')),
    out,
  };
}

/** The largest absolute difference between two adapters of the same layout. */
export function maxAdapterDiff(
  a: import('../../src/fedbiot/lora-state.js').LoraState,
  b: import('../../src/fedbiot/lora-state.js').LoraState,
): number {
  if (a.size !== b.size) throw new Error(`adapters differ in tensor count (${a.size}, ${b.size})`);
  let m = 0;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w) throw new Error(`adapter tensor ${k} missing`);
    for (let i = 0; i < v.data.length; i++) m = Math.max(m, Math.abs(v.data[i]! - w.data[i]!));
  }
  return m;
}

/** The round entries of a simulation's metrics.jsonl. */
export function simulatedRounds(out: string): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => typeof l.round === 'number' && (l.round as number) >= 0 && !l.phase);
}
