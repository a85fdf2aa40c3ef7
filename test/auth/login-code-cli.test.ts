// `deploy-mcp login-code --user <email>`: the real CLI prints a one-time code (the last line),
// creating the user and its owner name on first use; the code signs a browser in once.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { redeemLoginCode } from '../../mcp/auth/login-codes.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const run = promisify(execFile);
const scratch = scratchDir('login-code-cli');
const dbUrl = `file:${path.join(scratch.dir, 'cli.db')}`;
const env = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  DEPLOY_MCP_DATA_DIR: scratch.dir,
  DEPLOY_MCP_DATABASE_URL: dbUrl,
  DEPLOY_MCP_PUBLIC_URL: 'http://127.0.0.1:18081',
  DEPLOY_MCP_TOOLS_DIR: path.join(repoRoot, '.tools'),
};

beforeAll(async () => {
  await migrate(dbUrl);
}, 60_000);
afterAll(() => scratch.cleanup());

it('prints a code that signs in once, creating the user on first use', async () => {
  const cli = path.join(repoRoot, 'bin/deploy-mcp');
  const first = await run(cli, ['login-code', '--user', 'New.Person@Example.com'], { env });
  const lines = first.stdout.trim().split('\n');
  expect(lines[0]).toBe('created user new.person@example.com with project "default"');
  expect(lines.at(-2)).toContain('http://127.0.0.1:18081/sign-in');
  const code = lines.at(-1) ?? '';
  expect(code).toMatch(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);

  const db = await openDatabase(dbUrl);
  try {
    const user = await db.prisma.user.findUniqueOrThrow({ where: { email: 'new.person@example.com' } });
    expect(user.ownerName).toBe('new-person');
    expect(await redeemLoginCode(db.prisma, code, new Date())).toBe(user.id);
    expect(await redeemLoginCode(db.prisma, code, new Date())).toBeUndefined();
    // Stored hashed only.
    const rows = JSON.stringify(await db.prisma.loginCode.findMany());
    expect(rows).not.toContain(code.replace(/-/g, ''));
  } finally {
    await db.close();
  }
  await expect(run(cli, ['login-code'], { env })).rejects.toMatchObject({ code: 1 });
}, 120_000);
