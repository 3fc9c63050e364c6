// The server's SQLite state: a round's deadline extensions survive a restart, and a database made
// before the extensions column existed is migrated in place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { ServerDb } from '../../src/fl/net/db.js';

test('an open round keeps its sampled clients and extension count across a reopen', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-db-')), 'server.db');
  const db = new ServerDb(file);
  db.openRound(0, 'n0', ['a', 'b']);
  assert.equal(db.round(0)!.extensions, 0);
  db.extendRound(0, ['a', 'b', 'c'], 1);
  db.close();
  const again = new ServerDb(file);
  const row = again.round(0)!;
  assert.equal(row.extensions, 1);
  assert.deepEqual(JSON.parse(row.sampled), ['a', 'b', 'c']);
  again.completeRound(0, {}, 'ck', {});
  again.extendRound(0, ['x'], 2); // a completed round is not changed any more
  assert.equal(again.round(0)!.extensions, 1);
  again.close();
});

test('a database from before the extensions column gains it, with 0 for existing rounds', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-db-')), 'server.db');
  const old = new Database(file);
  old.exec(
    'CREATE TABLE rounds (round INTEGER PRIMARY KEY, nonce TEXT NOT NULL, sampled TEXT NOT NULL, status TEXT NOT NULL, opened_at INTEGER NOT NULL, completed_at INTEGER, metrics TEXT, checkpoint TEXT, extra TEXT)',
  );
  old
    .prepare("INSERT INTO rounds (round, nonce, sampled, status, opened_at) VALUES (0, 'n', '[\"a\"]', 'open', 1)")
    .run();
  old.close();
  const db = new ServerDb(file);
  assert.equal(db.round(0)!.extensions, 0);
  db.extendRound(0, ['a', 'b'], 1);
  assert.equal(db.round(0)!.extensions, 1);
  db.close();
});
