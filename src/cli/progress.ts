// Progress bars on a terminal (cli-progress), plain log lines elsewhere (CI, pipes).
import cliProgress from 'cli-progress';
import { fmtDuration } from '../util/format.js';
import type { Progress } from '../util/progress.js';

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) {
    let label = '';
    let total = 0;
    let n = 0;
    let lastPct = -1;
    let t0 = 0;
    return {
      start(l, t) {
        label = l;
        total = t;
        n = 0;
        lastPct = -1;
        t0 = performance.now();
      },
      tick(info) {
        n++;
        const pct = total > 0 ? Math.floor((n / total) * 4) : 0;
        if (pct !== lastPct && n < total) {
          lastPct = pct;
          // The same estimate the bar shows: the mean time per step so far, times the steps left.
          const elapsed = (performance.now() - t0) / 1000;
          const eta = n > 0 ? `, ${fmtDuration(elapsed)} elapsed, eta ${fmtDuration((elapsed / n) * (total - n))}` : '';
          stream.write(
            `${label}: ${n}/${total}${eta}${
              info
                ? ' ' +
                  Object.entries(info)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(' ')
                : ''
            }\n`,
          );
        }
      },
      stop() {},
      log(line) {
        stream.write(line + '\n');
      },
    };
  }
  let bar: cliProgress.SingleBar | null = null;
  return {
    start(label, total) {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        {
          format: `${label.padEnd(16)} [{bar}] {value}/{total} {eta_formatted} {info}`,
          stream,
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { info: '' });
    },
    tick(info) {
      bar?.increment(1, {
        info: info
          ? Object.entries(info)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')
          : '',
      });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
    log(line) {
      if (bar) stream.write('\n');
      stream.write(line + '\n');
    },
  };
}
