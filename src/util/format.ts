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
