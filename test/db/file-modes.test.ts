import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const run = promisify(execFile);
const CLI = path.join(repoRoot, 'bin/deploy-mcp');
const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe('the embedded database is private to the server user', () => {
  const scratch = scratchDir('file-modes');
  afterAll(() => scratch.cleanup());

  it('deploy-mcp migrate creates the data dir 0700 and the database 0600 (with its WAL files)', async () => {
    const dataDir = path.join(scratch.dir, 'fresh', 'data');
    await run(CLI, ['migrate'], { env: { ...process.env, DEPLOY_MCP_DATA_DIR: dataDir } });
    await run(CLI, ['users', 'create', 'ada@example.com'], {
      env: { ...process.env, DEPLOY_MCP_DATA_DIR: dataDir },
    });
    expect(mode(dataDir)).toBe(0o700);
    const db = path.join(dataDir, 'deploy-mcp.db');
    expect(mode(db)).toBe(0o600);
    for (const f of [`${db}-wal`, `${db}-shm`]) if (fs.existsSync(f)) expect(mode(f)).toBe(0o600);
  });

  it('makes an existing database file that others could read private when it opens it', async () => {
    const file = path.join(scratch.dir, 'old.db');
    const url = `file:${file}`;
    const first = await openDatabase(url);
    await first.prisma.$executeRawUnsafe('CREATE TABLE t (x INTEGER)');
    await first.close();
    fs.chmodSync(file, 0o644);
    const db = await openDatabase(url);
    try {
      await db.prisma.$executeRawUnsafe('INSERT INTO t VALUES (1)');
      expect(mode(file)).toBe(0o600);
      for (const f of [`${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) expect(mode(f)).toBe(0o600);
    } finally {
      await db.close();
    }
  });
});
