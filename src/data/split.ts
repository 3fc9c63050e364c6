// Partitions of a data set over federated clients: iid, Dirichlet over categories, and
// meta (one category or a group of categories per client). All are seeded and return
// per-client index lists into the caller's example array.

import { deriveSeed, dirichlet, mulberry32, shuffle, type Random } from '../util/rng.js';

export type SplitSpec = { kind: 'iid' } | { kind: 'dirichlet'; alpha: number } | { kind: 'meta'; groups?: string[][] };

export interface ClientSplit {
  /** clients[c] = indices of the examples client c holds. */
  clients: number[][];
  warnings: string[];
}

/** Dispatches on spec.kind; `categories[i]` is the category of example i. */
export function splitClients(
  categories: readonly string[],
  numClients: number,
  spec: SplitSpec,
  seed: number,
): ClientSplit {
  switch (spec.kind) {
    case 'iid':
      return splitIid(categories.length, numClients, seed);
    case 'dirichlet':
      return splitDirichlet(categories, numClients, spec.alpha, seed);
    case 'meta':
      return splitMeta(categories, numClients, seed, spec.groups);
  }
}

/** Parses "iid", "dirichlet:0.5" / "dir0.5", "meta" (CLI convenience). */
export function parseSplitSpec(text: string): SplitSpec {
  const t = text.trim().toLowerCase();
  if (t === 'iid') return { kind: 'iid' };
  if (t === 'meta') return { kind: 'meta' };
  const m = /^(?:dirichlet|dir)[:=]?\s*([0-9.eE+-]+)$/.exec(t);
  if (m) {
    const alpha = Number(m[1]);
    if (!(alpha > 0)) throw new Error(`dirichlet alpha must be > 0, got ${m[1]}`);
    return { kind: 'dirichlet', alpha };
  }
  throw new Error(`unknown split "${text}" (iid, dirichlet:ALPHA, meta)`);
}

function checkClients(numClients: number): void {
  if (!Number.isInteger(numClients) || numClients < 1)
    throw new Error(`numClients must be a positive integer, got ${numClients}`);
}

function emptyWarning(n: number, numClients: number): string[] {
  return n < numClients ? [`only ${n} examples for ${numClients} clients: ${numClients - n} clients stay empty`] : [];
}

/** Shuffled indices dealt into numClients nearly equal contiguous chunks. */
export function splitIid(n: number, numClients: number, seed: number): ClientSplit {
  checkClients(numClients);
  const order = shuffle(
    mulberry32(deriveSeed(seed, 'split-iid')),
    Array.from({ length: n }, (_, i) => i),
  );
  const clients: number[][] = [];
  let pos = 0;
  for (let c = 0; c < numClients; c++) {
    const size = Math.floor(n / numClients) + (c < n % numClients ? 1 : 0);
    clients.push(order.slice(pos, pos + size));
    pos += size;
  }
  return { clients, warnings: emptyWarning(n, numClients) };
}

/** Groups example indices by category, in first-seen category order. */
export function groupByCategory(categories: readonly string[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  categories.forEach((c, i) => {
    let g = groups.get(c);
    if (!g) groups.set(c, (g = []));
    g.push(i);
  });
  return groups;
}

/** Integer counts proportional to p summing to total (largest remainder). */
function apportion(p: readonly number[], total: number): number[] {
  const raw = p.map((x) => x * total);
  const counts = raw.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = raw.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) counts[order[k]![1]]!++;
  return counts;
}

/**
 * For each category, draws client proportions from Dirichlet(alpha) and deals that category's
 * (shuffled) examples accordingly. Small alpha: each client sees few categories.
 */
export function splitDirichlet(
  categories: readonly string[],
  numClients: number,
  alpha: number,
  seed: number,
): ClientSplit {
  checkClients(numClients);
  if (!(alpha > 0)) throw new Error(`dirichlet alpha must be > 0, got ${alpha}`);
  const rand = mulberry32(deriveSeed(seed, 'split-dirichlet'));
  const clients: number[][] = Array.from({ length: numClients }, () => []);
  for (const idx of groupByCategory(categories).values()) {
    shuffle(rand, idx);
    const counts = apportion(dirichlet(rand, alpha, numClients), idx.length);
    let pos = 0;
    counts.forEach((k, c) => {
      clients[c]!.push(...idx.slice(pos, pos + k));
      pos += k;
    });
  }
  const warnings = emptyWarning(categories.length, numClients);
  const moved = fillEmptyClients(clients, categories, rand);
  if (moved > 0)
    warnings.push(
      `dirichlet(alpha=${alpha}) left ${moved} clients empty: moved one example to each from the largest clients`,
    );
  return { clients, warnings };
}

/** Gives every empty client one example from the currently largest client; returns how many were filled. */
function fillEmptyClients(clients: number[][], categories: readonly string[], rand: Random): number {
  let moved = 0;
  for (const client of clients) {
    if (client.length > 0) continue;
    const donor = clients.reduce((a, b) => (b.length > a.length ? b : a));
    if (donor.length < 2) break; // unavoidable: fewer examples than clients
    // Take from the donor's most common category so its mix changes least.
    const counts = new Map<string, number>();
    for (const i of donor) counts.set(categories[i]!, (counts.get(categories[i]!) ?? 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const candidates = donor.map((i, k) => [i, k] as const).filter(([i]) => categories[i] === top);
    const [, k] = candidates[Math.floor(rand() * candidates.length)]!;
    client.push(donor.splice(k, 1)[0]!);
    moved++;
  }
  return moved;
}

/**
 * Each client holds whole categories. With groups given, client c gets groups[c] (numClients must
 * equal groups.length). Otherwise: with at least as many categories as clients, categories are dealt
 * largest first to the currently smallest client; with fewer, the largest categories are split
 * across extra clients (each client still sees one category) and a warning says so.
 */
export function splitMeta(
  categories: readonly string[],
  numClients: number,
  seed: number,
  groups?: string[][],
): ClientSplit {
  checkClients(numClients);
  const byCat = groupByCategory(categories);
  const rand = mulberry32(deriveSeed(seed, 'split-meta'));
  for (const idx of byCat.values()) shuffle(rand, idx);
  const warnings: string[] = [];
  if (groups) {
    if (groups.length !== numClients) throw new Error(`meta split: ${groups.length} groups for ${numClients} clients`);
    const seen = new Set<string>();
    const clients = groups.map((g) =>
      g.flatMap((cat) => {
        if (seen.has(cat)) throw new Error(`meta split: category "${cat}" is in two groups`);
        seen.add(cat);
        const idx = byCat.get(cat);
        if (!idx) warnings.push(`meta split: category "${cat}" has no examples`);
        return idx ?? [];
      }),
    );
    const unused = [...byCat.keys()].filter((c) => !seen.has(c));
    if (unused.length > 0) warnings.push(`meta split: categories in no group are left out: ${unused.join(', ')}`);
    clients.forEach((c, i) => c.length === 0 && warnings.push(`meta split: client ${i} is empty`));
    return { clients, warnings };
  }
  // Largest first, ties by name, so the result does not depend on input order beyond the seed.
  const cats = [...byCat.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  if (cats.length >= numClients) {
    const clients: number[][] = Array.from({ length: numClients }, () => []);
    for (const [, idx] of cats) {
      const smallest = clients.reduce((a, b) => (b.length < a.length ? b : a));
      smallest.push(...idx);
    }
    return { clients, warnings };
  }
  // Fewer categories than clients: give each category a share of clients proportional to its size.
  warnings.push(
    `meta split: ${cats.length} categories for ${numClients} clients: some categories are split over several clients`,
  );
  const shares = cats.map(() => 1);
  for (let extra = numClients - cats.length; extra > 0; extra--) {
    let best = 0;
    for (let k = 1; k < cats.length; k++) {
      if (cats[k]![1].length / shares[k]! > cats[best]![1].length / shares[best]!) best = k;
    }
    shares[best]!++;
  }
  const clients: number[][] = [];
  cats.forEach(([, idx], k) => {
    const part = splitIid(idx.length, shares[k]!, deriveSeed(seed, `meta-${k}`)).clients;
    for (const p of part) clients.push(p.map((j) => idx[j]!));
  });
  clients.forEach((c, i) => c.length === 0 && warnings.push(`meta split: client ${i} is empty (too few examples)`));
  return { clients, warnings };
}

/**
 * A printable table: one row per client with its size and per-category counts (up to maxColumns
 * categories by overall size; the rest are summed into "other").
 */
export function renderSplitTable(
  split: ClientSplit | number[][],
  categories: readonly string[],
  maxColumns = 8,
): string {
  const clients = Array.isArray(split) ? split : split.clients;
  const totals = new Map<string, number>();
  for (const c of clients) for (const i of c) totals.set(categories[i]!, (totals.get(categories[i]!) ?? 0) + 1);
  const sorted = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([c]) => c);
  const shown = sorted.length > maxColumns ? sorted.slice(0, maxColumns - 1) : sorted;
  const hasOther = shown.length < sorted.length;
  const header = ['client', 'size', ...shown, ...(hasOther ? ['other'] : [])];
  const rows = clients.map((c, k) => {
    const counts = new Map<string, number>();
    for (const i of c) counts.set(categories[i]!, (counts.get(categories[i]!) ?? 0) + 1);
    const other = [...counts.entries()].filter(([cat]) => !shown.includes(cat)).reduce((a, [, n]) => a + n, 0);
    return [
      String(k),
      String(c.length),
      ...shown.map((cat) => String(counts.get(cat) ?? 0)),
      ...(hasOther ? [String(other)] : []),
    ];
  });
  const total = clients.reduce((a, c) => a + c.length, 0);
  const footer = [
    'total',
    String(total),
    ...shown.map((cat) => String(totals.get(cat) ?? 0)),
    ...(hasOther ? [String(sorted.slice(shown.length).reduce((a, cat) => a + totals.get(cat)!, 0))] : []),
  ];
  const all = [header, ...rows, footer];
  const widths = header.map((_, j) => Math.max(...all.map((r) => r[j]!.length)));
  const fmt = (r: string[]) =>
    r.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]!) : cell.padStart(widths[j]!))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [fmt(header), rule, ...rows.map(fmt), rule, fmt(footer)].join('\n');
}
