// `fedbiot status --server URL [--token ADMIN]`: rounds, clients and metrics of a running server.
import type { Command } from 'commander';
import { certificateProblem, makeTransport, request, replyReason, type Reply } from '../fl/net/http.js';
import { statusInfoSchema, type StatusInfo } from '../fl/net/protocol.js';
import { fmtAgo, fmtBytes, fmtDuration, fmtTime } from '../util/format.js';

/** The status for people: sizes with units, times as "12.3 s ago" and UTC dates, rounds 1-based. */
export function formatStatus(s: StatusInfo, now = Date.now()): string {
  const out = [
    `algorithm ${s.algorithm}: ${s.completedRounds}/${s.rounds} rounds completed, phase ${s.phase}${s.currentRound !== null ? `, round ${s.currentRound + 1} in progress` : ''}`,
  ];
  if (s.finished) {
    const where = s.finished.results
      ? `${s.finished.results} (adapter/, summary.json, metrics.jsonl)`
      : "the server's state folder (adapter/, summary.json, metrics.jsonl; an admin token shows the path)";
    out.push(
      `server finished at round ${s.finished.round} of ${s.rounds} (${fmtTime(s.finished.at)}, ${fmtAgo(s.finished.at, now)}); results in ${where}; it stops answering ${fmtAgo(s.finished.closesAt, now)}`,
    );
  }
  if (s.clients) {
    out.push('clients:');
    for (const c of s.clients)
      out.push(
        `  ${c.name.padEnd(16)} uploads ${String(c.uploads).padStart(4)}  last seen ${fmtAgo(c.lastSeen, now).padEnd(14)}${c.revokedAt ? `  revoked ${fmtTime(c.revokedAt)}` : ''}`.trimEnd(),
      );
  }
  if (s.roundsDetail) {
    out.push('rounds:');
    out.push(
      `  ${'round'.padStart(5)} ${'status'.padEnd(9)} ${'uploads'.padEnd(16)} ${'loss'.padStart(7)} ${'down'.padStart(10)} ${'up'.padStart(10)} ${'time'.padStart(8)}`,
    );
    for (const r of s.roundsDetail) {
      const m = (r.metrics ?? {}) as {
        train_loss?: Record<string, number>;
        bytes_down?: number;
        bytes_up?: number;
        seconds?: number;
        privacy?: { epsilon: number | null; delta: number };
      };
      const losses = Object.values(m.train_loss ?? {});
      const loss = losses.length ? (losses.reduce((a, b) => a + b, 0) / losses.length).toFixed(4) : '-';
      const uploads = `${(r.uploads as string[]).length}/${(r.sampled as string[]).length} ${(r.uploads as string[]).join(',')}`;
      const size = (v: number | undefined) => (typeof v === 'number' ? fmtBytes(v) : '-');
      out.push(
        `  ${String(Number(r.round) + 1).padStart(5)} ${String(r.status).padEnd(9)} ${uploads.padEnd(16)} ${loss.padStart(7)} ${size(m.bytes_down).padStart(10)} ${size(m.bytes_up).padStart(10)} ${(typeof m.seconds === 'number' ? fmtDuration(m.seconds) : '-').padStart(8)}${m.privacy ? `  epsilon ${m.privacy.epsilon === null ? 'infinite' : m.privacy.epsilon.toFixed(3)} (delta ${m.privacy.delta})` : ''}`,
      );
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
    .option('--json', 'print the status as JSON (the StatusInfo schema of docs/openapi.json), for scripts')
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
        if (code === 'ECONNREFUSED')
          throw new Error(
            `status: nothing answers at ${opts.server} (ECONNREFUSED): the server is not running; a finished run's results are in its state folder (adapter/, summary.json, metrics.jsonl)`,
          );
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
