// The package as users get it: `npm pack` (which builds dist/), the tarball installed into a
// temporary project, `import ... from 'fedbiot'` by name: its types check, and the library example
// (examples/library.mjs) runs a small simulation through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}

test('package: npm pack, install the tarball in a new project, import fedbiot by name', { timeout: 600_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-pack-'));
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], ROOT)) as {
    filename: string;
    files: { path: string }[];
  }[];
  const tarball = path.join(dir, packed[0]!.filename);
  const files = packed[0]!.files.map((f) => f.path);
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'bin/fedbiot.js', 'binding.gyp'])
    assert.ok(files.includes(f), `${f} is in the package`);
  assert.ok(
    !files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')),
    'no tests or dependencies in the package',
  );

  const project = path.join(dir, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'uses-fedbiot', private: true, type: 'module' }),
  );
  // Dependencies come from npm's cache (they were installed for this checkout); the native kernels
  // are not compiled here (--ignore-scripts): the library falls back to its TypeScript kernels.
  run('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], project);
  assert.ok(fs.existsSync(path.join(project, 'node_modules', 'fedbiot', 'dist', 'index.js')));

  // Types: a TypeScript user's view of the package.
  fs.writeFileSync(
    path.join(project, 'check.ts'),
    [
      "import { runSimulation, FedServer, runClient, loadHfModel, saveAdapterAsPeft, STRATEGIES, type Summary, type DriverHooks, type PayloadCodec } from 'fedbiot';",
      "const hooks: DriverHooks = { onEvent: (e) => { if (e.type === 'round-end') console.log(e.round); } };",
      'const codec: PayloadCodec | undefined = undefined;',
      'const s: Summary | null = null;',
      'void [runSimulation, FedServer, runClient, loadHfModel, saveAdapterAsPeft, STRATEGIES.fedbiot.notDeployable, hooks, codec, s];',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        types: ['node'],
      },
      files: ['check.ts'],
    }),
  );
  run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], project);

  // The example, run against the installed package.
  fs.copyFileSync(path.join(ROOT, 'examples', 'library.mjs'), path.join(project, 'library.mjs'));
  const outText = run(process.execPath, ['library.mjs', path.join(dir, 'run')], project, { FEDBIOT_THREADS: '1' });
  const last = JSON.parse(outText.trim().split('\n').pop()!) as {
    algorithm: string;
    adapfu_nll: number;
    bytes_total: number;
    adapter_tensors: number;
  };
  assert.equal(last.algorithm, 'fedbiot');
  assert.ok(Number.isFinite(last.adapfu_nll) && last.bytes_total > 0 && last.adapter_tensors > 0, outText);
  assert.match(outText, /round 2: clients 0,1,2/);
  fs.rmSync(dir, { recursive: true, force: true });
});
