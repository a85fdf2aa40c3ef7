import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../core/db/client.ts';
import { openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { connectionAad, resourceStackName } from '../../core/resources/catalog.ts';
import { SecretBox } from '../../core/secrets.ts';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { resourceActivities } from '../../workers/activities/resources.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { startTursoFake, type TursoFake } from '../support/turso-fake.ts';

/*
 * Turso `sqlite` resources through the resource activities and real Pulumi stacks (file backend),
 * against the local fake of the Platform API. No libSQL server (sqld) exists here, so nothing is
 * read or written through the libsql:// URL: the fake verifies the tokens instead.
 */
describe('sqlite resources in Turso', () => {
  const work = scratchDir('turso', path.join(repoRoot, '.data', 'test'));
  const secrets = new SecretBox(Buffer.alloc(32, 11));
  let fake: TursoFake;
  let db: Db;
  let close: () => Promise<void>;
  let activities: ReturnType<typeof resourceActivities>;
  const seenTokens = new Set<string>();
  const run = Date.now().toString(36);

  beforeAll(async () => {
    fake = await startTursoFake('acme');
    const url = `file:${path.join(work.dir, 'product.db')}`;
    await migrate(url);
    const database = await openDatabase(url);
    db = database.prisma;
    close = () => database.close();
    activities = resourceActivities({
      db,
      secrets,
      runner: new TenantStackRunner({
        projectName: 'deploy-mcp-turso-test',
        backendUrl: `file://${path.join(work.dir, 'state')}`,
        workRoot: path.join(work.dir, 'work'),
        passphrase: 'turso-test',
      }),
      postgres: undefined,
      backupsDir: path.join(work.dir, 'backups'),
      backupRetentionDays: 7,
      turso: {
        apiUrl: fake.url,
        org: fake.org,
        apiToken: fake.apiToken,
        groupPrefix: 'dmcp',
        regions: ['aws-us-east-1', 'aws-eu-west-1'],
        tokenExpiration: '52w',
        timeoutMs: 5_000,
      },
    });
  }, 60_000);

  afterAll(async () => {
    await close?.();
    await fake?.close();
    work.cleanup();
  });

  async function newResource(email: string, name: string, region = 'aws-us-east-1') {
    const user = await db.user.upsert({ where: { email }, create: { email }, update: {} });
    const project = await db.project.upsert({
      where: { userId_name: { userId: user.id, name: 'default' } },
      create: { userId: user.id, name: 'default' },
      update: {},
    });
    const row = await db.resource.create({
      data: {
        userId: user.id,
        projectId: project.id,
        name,
        liveKey: `${project.id}/${name}`,
        type: 'sqlite',
        size: 'small',
        region,
      },
    });
    return db.resource.update({ where: { id: row.id }, data: { stackName: resourceStackName(row) } });
  }

  async function connectionOf(id: string) {
    const row = await db.resource.findUniqueOrThrow({ where: { id } });
    const vars = secrets.openJson<Record<string, string>>(row.connectionEncrypted ?? '', connectionAad(id));
    if (vars.LIBSQL_AUTH_TOKEN) seenTokens.add(vars.LIBSQL_AUTH_TOKEN);
    return { row, vars };
  }

  const databaseOf = (vars: Record<string, string>) =>
    (vars.LIBSQL_URL ?? '').replace(/^libsql:\/\//, '').replace(/-acme\.turso\.io$/, '');

  it('provisions a database in the region group, with a full-access token expiring in 52 weeks', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await newResource(`a-${run}@example.com`, 'db', 'aws-eu-west-1');
    await activities.provisionResourceStack(r.id);
    const { row, vars } = await connectionOf(r.id);
    expect(row.status).toBe('ready');
    const name = databaseOf(vars);
    expect(name).toBe(`db-${r.id}`);
    expect(vars).toEqual({
      DATABASE_URL: `libsql://${name}-acme.turso.io`,
      LIBSQL_URL: `libsql://${name}-acme.turso.io`,
      LIBSQL_AUTH_TOKEN: expect.any(String),
    });
    expect(fake.databases.get(name)?.group).toBe('dmcp-aws-eu-west-1');
    expect(fake.groups.get('dmcp-aws-eu-west-1')?.primary).toBe('aws-eu-west-1');
    const claims = fake.verify(name, vars.LIBSQL_AUTH_TOKEN ?? '');
    expect(claims?.a).toBe('rw');
    const weeks52 = 52 * 7 * 86_400;
    expect(Number(claims?.exp) - before).toBeGreaterThanOrEqual(weeks52);
    expect(Number(claims?.exp) - before).toBeLessThanOrEqual(weeks52 + 600);
    // Provisioning again (a retried activity) keeps the same database and token.
    await activities.provisionResourceStack(r.id);
    expect((await connectionOf(r.id)).vars).toEqual(vars);
  }, 180_000);

  it('rotation invalidates the old token and seals a new one; delete removes only that database', async () => {
    const a = await newResource(`b-${run}@example.com`, 'db');
    const b = await newResource(`c-${run}@example.com`, 'db'); // another tenant, the same name
    await activities.provisionResourceStack(a.id);
    await activities.provisionResourceStack(b.id);
    const first = await connectionOf(a.id);
    const other = await connectionOf(b.id);
    expect(databaseOf(first.vars)).not.toBe(databaseOf(other.vars));
    expect(fake.verify(databaseOf(first.vars), other.vars.LIBSQL_AUTH_TOKEN ?? '')).toBeUndefined();

    await activities.rotateResourceCredentials(a.id);
    const rotated = await connectionOf(a.id);
    expect(rotated.row.credentialVersion).toBe(first.row.credentialVersion + 1);
    expect(rotated.vars.LIBSQL_URL).toBe(first.vars.LIBSQL_URL);
    expect(rotated.vars.LIBSQL_AUTH_TOKEN).not.toBe(first.vars.LIBSQL_AUTH_TOKEN);
    const name = databaseOf(first.vars);
    expect(fake.verify(name, first.vars.LIBSQL_AUTH_TOKEN ?? '')).toBeUndefined();
    expect(fake.verify(name, rotated.vars.LIBSQL_AUTH_TOKEN ?? '')?.a).toBe('rw');
    // The other tenant's token is untouched.
    expect(fake.verify(databaseOf(other.vars), other.vars.LIBSQL_AUTH_TOKEN ?? '')).toBeDefined();

    await db.resource.update({
      where: { id: a.id },
      data: { status: 'deleting', deletedAt: new Date(), liveKey: null },
    });
    const { backup } = await activities.destroyResourceStack(a.id);
    expect(backup).toBeNull(); // the Platform API has no export
    expect(fake.databases.has(name)).toBe(false);
    expect(fake.databases.has(databaseOf(other.vars))).toBe(true);
    const gone = await db.resource.findUniqueOrThrow({ where: { id: a.id } });
    expect(gone).toMatchObject({ status: 'deleted', connectionEncrypted: null });
  }, 300_000);

  it("Turso's failures end the attempt with a message an agent can act on; calling again works", async () => {
    const r = await newResource(`d-${run}@example.com`, 'flaky');
    fake.failNext(503, 3, /\/databases$/);
    const failure = await activities.provisionResourceStack(r.id).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    expect((failure as ApplicationFailure).message).toMatch(
      /^Turso is unavailable \(HTTP 503\) after 3 attempts to make the database "flaky-[a-z0-9]+"; nothing was lost: make the same call again in a few minutes\.$/,
    );
    await activities.markResourceFailed(r.id, (failure as Error).message);
    expect((await db.resource.findUniqueOrThrow({ where: { id: r.id } })).statusReason).toMatch(/HTTP 503/);
    // create_resource again: the row goes back to provisioning and the stack runs again.
    await db.resource.update({ where: { id: r.id }, data: { status: 'provisioning', statusReason: null } });
    await activities.provisionResourceStack(r.id);
    const { row, vars } = await connectionOf(r.id);
    expect(row.status).toBe('ready');
    expect(fake.verify(databaseOf(vars), vars.LIBSQL_AUTH_TOKEN ?? '')).toBeDefined();
  }, 300_000);

  it('no token is in clear under the data dir (database, Pulumi state and work dirs)', async () => {
    expect(seenTokens.size).toBeGreaterThanOrEqual(4);
    const secretsToFind = [...seenTokens, fake.apiToken];
    const files = fs
      .readdirSync(work.dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile());
    expect(files.some((f) => f.parentPath.includes(`${path.sep}state`))).toBe(true);
    for (const f of files) {
      const body = fs.readFileSync(path.join(f.parentPath, f.name)).toString('latin1');
      for (const s of secretsToFind) expect(body.includes(s), `${f.name} holds a secret`).toBe(false);
    }
  });
});
