// `fedbiot status --server URL [--token ADMIN]`: rounds, clients and metrics of a running server.
import type { Command } from 'commander';
import { certificateProblem, makeTransport, request, replyReason, type Reply } from '../fl/net/http.js';
import { statusInfoSchema, type StatusInfo } from '../fl/net/protocol.js';

export function formatStatus(s: StatusInfo): string {
  const out = [`algorithm ${s.algorithm}: ${s.completedRounds}/${s.rounds} rounds completed, phase ${s.phase}${s.currentRound !== null ? `, round ${s.currentRound + 1} in progress` : ''}`];
  if (s.finished) {
    const where = s.finished.results
      ? `${s.finished.results} (adapter/, summary.json, metrics.jsonl)`
      : "the server's state folder (adapter/, summary.json, metrics.jsonl; an admin token shows the path)";
    out.push(`server finished at round ${s.finished.round} of ${s.rounds} (${new Date(s.finished.at).toISOString()}); results in ${where}; it stops answering at ${new Date(s.finished.closesAt).toISOString()}`);
  }
  if (s.clients) {
    out.push('clients:');
    for (const c of s.clients) out.push(`  ${c.name.padEnd(16)} uploads ${String(c.uploads).padStart(4)}  last seen ${c.lastSeen ? new Date(c.lastSeen).toISOString() : 'never'}${c.revokedAt ? `  revoked ${new Date(c.revokedAt).toISOString()}` : ''}`);
  }
  if (s.roundsDetail) {
    out.push('rounds:');
    for (const r of s.roundsDetail) {
      const m = (r.metrics ?? {}) as { train_loss?: Record<string, number>; bytes_down?: number; bytes_up?: number };
      const losses = Object.values(m.train_loss ?? {});
      const loss = losses.length ? (losses.reduce((a, b) => a + b, 0) / losses.length).toFixed(4) : '-';
      out.push(`  ${String(Number(r.round) + 1).padStart(4)} ${String(r.status).padEnd(9)} uploads ${(r.uploads as string[]).join(',') || '-'} of ${(r.sampled as string[]).join(',')}  loss ${loss}  down ${m.bytes_down ?? '-'} B  up ${m.bytes_up ?? '-'} B`);
    }
  }
  return out.join('\n');
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("show a server's rounds, clients and metrics")
    .requiredOption('--server <url>', 'server URL')
    .option('--token <token>', 'admin token (per-client detail and metrics); default $FEDBIOT_ADMIN_TOKEN')
    .option('--ca <file>', 'PEM certificate to trust')
    .option('--json', 'print the raw JSON')
    .action(async (opts: { server: string; token?: string; ca?: string; json?: boolean }) => {
      const token = opts.token ?? process.env.FEDBIOT_ADMIN_TOKEN ?? null;
      const t = makeTransport(opts.server, token ?? '', { ca: opts.ca, timeoutMs: 15_000 });
      let r: Reply;
      try {
        r = await request(t, 'GET', 'v1/status', { token });
      } catch (e) {
        const cert = certificateProblem(e, opts.server, opts.ca);
        if (cert) throw new Error(`status: ${cert}`);
        const code = (e as { code?: string }).code;
        if (code === 'ECONNREFUSED') throw new Error(`status: nothing answers at ${opts.server} (ECONNREFUSED): the server is not running; a finished run's results are in its state folder (adapter/, summary.json, metrics.jsonl)`);
        throw new Error(`status: cannot reach ${opts.server}: ${(e as Error).message}`);
      }
      if (r.status !== 200) {
        const why = replyReason(r);
        throw new Error(`status: HTTP ${r.status} ${why.code}: ${why.reason}`);
      }
      const s = statusInfoSchema.parse(JSON.parse(r.body.toString('utf8')));
      process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s) + '\n');
    });
}
