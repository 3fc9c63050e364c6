import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseSplitSpec,
  renderSplitTable,
  splitClients,
  splitDirichlet,
  splitIid,
  splitMeta,
} from '../../src/data/split.js';

// 8 categories of varying size, 400 examples.
const CATS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const categories = Array.from({ length: 400 }, (_, i) => CATS[(i * 7 + (i % 3)) % CATS.length]!);

function assertPartition(clients: number[][], n: number): void {
  const all = clients.flat().sort((x, y) => x - y);
  assert.deepEqual(
    all,
    Array.from({ length: n }, (_, i) => i),
    'every example exactly once',
  );
}

test('iid: near-equal sizes, a partition, deterministic per seed', () => {
  const s = splitIid(403, 4, 1);
  assert.deepEqual(
    s.clients.map((c) => c.length),
    [101, 101, 101, 100],
  );
  assertPartition(s.clients, 403);
  assert.deepEqual(splitIid(403, 4, 1), s);
  assert.notDeepEqual(splitIid(403, 4, 2).clients, s.clients);
  const tiny = splitIid(2, 3, 0);
  assert.equal(tiny.clients[2]!.length, 0);
  assert.match(tiny.warnings[0]!, /clients stay empty/);
});

/** Mean over clients of the share of the client's largest category. */
function dominance(clients: number[][]): number {
  return (
    clients.reduce((acc, c) => {
      const counts = new Map<string, number>();
      for (const i of c) counts.set(categories[i]!, (counts.get(categories[i]!) ?? 0) + 1);
      return acc + Math.max(...counts.values()) / c.length;
    }, 0) / clients.length
  );
}

test('dirichlet: a partition, deterministic, skewed for small alpha and mixed for large', () => {
  const small = splitDirichlet(categories, 5, 0.05, 3);
  const large = splitDirichlet(categories, 5, 1000, 3);
  assertPartition(small.clients, 400);
  assertPartition(large.clients, 400);
  assert.deepEqual(splitDirichlet(categories, 5, 0.05, 3), small);
  assert.ok(
    small.clients.every((c) => c.length > 0),
    'no empty client',
  );
  assert.ok(dominance(small.clients) > 0.6, `small alpha should concentrate categories (${dominance(small.clients)})`);
  assert.ok(dominance(large.clients) < 0.25, `large alpha should mix categories (${dominance(large.clients)})`);
});

test('dirichlet: empty clients are filled from the largest ones, with a warning', () => {
  const few = Array.from({ length: 30 }, () => 'only');
  const s = splitDirichlet(few, 6, 0.01, 5);
  assertPartition(s.clients, 30);
  assert.ok(s.clients.every((c) => c.length > 0));
  assert.ok(s.warnings.some((w) => /empty/.test(w)));
});

test('meta: one category per client, grouped categories, and explicit groups', () => {
  const eight = splitMeta(categories, 8, 0);
  assertPartition(eight.clients, 400);
  for (const c of eight.clients) assert.equal(new Set(c.map((i) => categories[i])).size, 1);
  assert.equal(new Set(eight.clients.map((c) => categories[c[0]!])).size, 8);
  const three = splitMeta(categories, 3, 0);
  assertPartition(three.clients, 400);
  const catSets = three.clients.map((c) => new Set(c.map((i) => categories[i])));
  for (let x = 0; x < 3; x++)
    for (let y = x + 1; y < 3; y++)
      for (const k of catSets[x]!) assert.ok(!catSets[y]!.has(k), 'categories not shared');
  const more = splitMeta(categories, 11, 0);
  assertPartition(more.clients, 400);
  assert.ok(more.clients.every((c) => c.length > 0 && new Set(c.map((i) => categories[i])).size === 1));
  assert.match(more.warnings[0]!, /split over several clients/);
  const grouped = splitMeta(categories, 2, 0, [['a', 'b'], ['c']]);
  assert.deepEqual(new Set(grouped.clients[0]!.map((i) => categories[i])), new Set(['a', 'b']));
  assert.ok(grouped.warnings.some((w) => /left out/.test(w)));
  assert.throws(() => splitMeta(categories, 2, 0, [['a'], ['a']]), /two groups/);
});

test('splitClients and parseSplitSpec dispatch', () => {
  assert.deepEqual(parseSplitSpec('dirichlet:0.5'), { kind: 'dirichlet', alpha: 0.5 });
  assert.deepEqual(parseSplitSpec('iid'), { kind: 'iid' });
  assert.throws(() => parseSplitSpec('dirichlet:-1'));
  assert.deepEqual(splitClients(categories, 4, { kind: 'iid' }, 9), splitIid(400, 4, 9));
});

test('renderSplitTable shows sizes and category mix with totals', () => {
  const cats = ['x', 'x', 'y', 'z', 'z', 'z'];
  const table = renderSplitTable(
    [
      [0, 1, 2],
      [3, 4, 5],
    ],
    cats,
  );
  const lines = table.split('\n');
  assert.match(lines[0]!, /client\s+size\s+z\s+x\s+y/);
  assert.match(lines[2]!, /^0\s+3\s+0\s+2\s+1$/);
  assert.match(lines[3]!, /^1\s+3\s+3\s+0\s+0$/);
  assert.match(lines[5]!, /^total\s+6\s+3\s+2\s+1$/);
  const wide = renderSplitTable(splitIid(400, 2, 0), categories, 4);
  assert.match(wide.split('\n')[0]!, /other$/);
});
