import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@libsql/client';
import Database from 'libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { installStatementCache, STATEMENTS_PER_CONNECTION } from './statement-cache.ts';

describe('installStatementCache: prepared statements kept per connection', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'statement-cache-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  installStatementCache();
  installStatementCache(); // idempotent

  it('prepares a statement once per connection, and not across connections', () => {
    const a = new Database(path.join(dir, 'a.db'));
    const b = new Database(path.join(dir, 'a.db'));
    try {
      expect(a.prepare('SELECT 1')).toBe(a.prepare('SELECT 1'));
      expect(a.prepare('SELECT 1')).not.toBe(a.prepare('SELECT 2'));
      expect(b.prepare('SELECT 1')).not.toBe(a.prepare('SELECT 1'));
    } finally {
      a.close();
      b.close();
    }
  });

  it('keeps at most STATEMENTS_PER_CONNECTION, dropping the least recently used', () => {
    const db = new Database(':memory:');
    try {
      const first = db.prepare('SELECT 0');
      const kept = db.prepare('SELECT -1');
      for (let i = 1; i < STATEMENTS_PER_CONNECTION; i++) {
        db.prepare(`SELECT ${i}`);
        if (i % 100 === 0) db.prepare('SELECT -1'); // used again: stays
      }
      db.prepare(`SELECT ${STATEMENTS_PER_CONNECTION}`);
      expect(db.prepare('SELECT -1')).toBe(kept);
      expect(db.prepare('SELECT 0')).not.toBe(first);
    } finally {
      db.close();
    }
  });

  it('gives the same answers through @libsql/client as fresh statements: other arguments, writes, errors', async () => {
    const client = createClient({ url: `file:${path.join(dir, 'c.db')}`, intMode: 'bigint' });
    try {
      await client.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, n INTEGER)');
      const insert = 'INSERT INTO t (name, n) VALUES (?, ?)';
      for (const [name, n] of [
        ['a', 1],
        ['b', 2],
        ['c', 3],
      ] as const)
        expect((await client.execute({ sql: insert, args: [name, n] })).rowsAffected).toBe(1);
      // A failing run of a kept statement leaves it usable.
      await expect(client.execute({ sql: insert, args: ['a', 9] })).rejects.toThrow(/UNIQUE/);
      expect((await client.execute({ sql: insert, args: ['d', 4] })).rowsAffected).toBe(1);
      const select = 'SELECT name, n FROM t WHERE n >= ? ORDER BY n';
      const names = async (min: number) =>
        (await client.execute({ sql: select, args: [min] })).rows.map((r) => [r.name, r.n]);
      expect(await names(3)).toEqual([
        ['c', 3n],
        ['d', 4n],
      ]);
      expect(await names(1)).toHaveLength(4);
      await client.execute({ sql: 'UPDATE t SET n = n * 10 WHERE name = ?', args: ['d'] });
      expect(await names(40)).toEqual([['d', 40n]]);
    } finally {
      client.close();
    }
  });

  it("reads a kept statement's columns once, with the same names and types as a fresh statement's", () => {
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, at DATETIME)');
      const sql = 'SELECT id, name AS label, at, COUNT(*) AS n FROM t';
      const kept = db.prepare(sql);
      const first = kept.columns();
      expect(db.prepare(sql).columns()).toBe(first);
      expect(Object.isFrozen(first)).toBe(true);
      const fresh = new Database(':memory:');
      try {
        fresh.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, at DATETIME)');
        const expected = Database.prototype.prepare.call(fresh, sql).columns();
        expect(first.map((c) => [c.name, c.type])).toEqual(expected.map((c) => [c.name, c.type]));
        expect(first.map((c) => [c.name, c.type])).toEqual([
          ['id', 'INTEGER'],
          ['label', 'TEXT'],
          ['at', 'DATETIME'],
          ['n', null],
        ]);
      } finally {
        fresh.close();
      }
    } finally {
      db.close();
    }
  });
});
