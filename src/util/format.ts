// Human-readable numbers shared by the terminal tables and the HTML report.

/** Bytes with a binary unit: 512 B, 1.5 KiB, 3.0 MiB, 1.25 GiB. */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A metric value: 4 decimals, 1 for large values (perplexities), '-' when missing. */
export function fmtMetric(v: number | null | undefined): string {
  if (v === undefined || v === null) return '-';
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4);
}

/** A duration for people: 850 ms, 12.3 s, 4m 05s, 2h 03m, 3d 04h. */
export function fmtDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '-';
  const s = Math.abs(seconds);
  const sign = seconds < 0 ? '-' : '';
  if (s < 1) return `${sign}${Math.round(s * 1000)} ms`;
  if (s < 60) return `${sign}${s.toFixed(1)} s`;
  const two = (n: number) => String(Math.floor(n)).padStart(2, '0');
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${two(s % 60)}s`;
  if (s < 86400) return `${sign}${Math.floor(s / 3600)}h ${two((s % 3600) / 60)}m`;
  return `${sign}${Math.floor(s / 86400)}d ${two((s % 86400) / 3600)}h`;
}

/** How long ago `t` (epoch ms) was, seen at `now`: "12.3 s ago", "never" for null. */
export function fmtAgo(t: number | null | undefined, now = Date.now()): string {
  if (t === null || t === undefined) return 'never';
  const d = (now - t) / 1000;
  return d < 0 ? `in ${fmtDuration(-d)}` : `${fmtDuration(d)} ago`;
}

/** A moment in UTC for people: 2026-01-31 14:05:09 UTC. */
export function fmtTime(t: number): string {
  return `${new Date(t).toISOString().replace('T', ' ').slice(0, 19)} UTC`;
}
