import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as pulumi from '@pulumi/pulumi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../cli/audit.ts';
import { loadConfig } from '../../core/config.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { loadMasterKey, SecretBox } from '../../core/secrets.ts';
import { createUser } from '../../core/users.ts';
import {
  tenantStackRunner,
  tenantStackRunnerOptions,
  tenantWorkRoot,
} from '../../tenant-stacks/from-config.ts';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI } from '../support/serve.ts';

const run = promisify(execFile);

describe('DEPLOY_MCP_PULUMI_BACKEND_URL: tenant stacks and their audit on a backend outside the data dir', () => {
  const work = scratchDir('backend-url');
  const dataDir = path.join(work.dir, 'data');
  const elsewhere = path.join(work.dir, 'elsewhere', 'pulumi-state');
  const slug = `svc-backend-${process.pid}`;
  const email = 'backend@example.com';
  const TOKEN = 'token-value-3f7a92c1';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DEPLOY_MCP_DATA_DIR: dataDir,
    DEPLOY_MCP_TOOLS_DIR: path.join(repoRoot, '.tools'),
    DEPLOY_MCP_PULUMI_BACKEND_URL: `file://${elsewhere}`,
    DEPLOY_MCP_DATABASE_URL: '',
    DEPLOY_MCP_SECRET_KEY: '',
  };
  const config = loadConfig(env);
  const printed: string[] = [];
  let db: Database;
  let secrets: SecretBox;
  let runner: TenantStackRunner;

  /** A stack with no resources: outputs on the root stack resource, one of them a secret. */
  const program = (n: number) => async () => ({ release: `r${n}`, token: pulumi.secret(`${TOKEN}-${n}`) });
  const audit = async (...args: string[]) => {
    const { stdout, stderr } = await run(CLI, ['audit', 'web', '--user', email, ...args], { env });
    printed.push(stdout, stderr);
    return stdout;
  };

  beforeAll(async () => {
    fs.mkdirSync(elsewhere, { recursive: true });
    await migrate(config.databaseUrl);
    db = await openDatabase(config.databaseUrl);
    const user = await createUser(db.prisma, email);
    const project = await db.prisma.project.findFirstOrThrow({ where: { userId: user.id } });
    await db.prisma.service.create({
      data: {
        userId: user.id,
        projectId: project.id,
        name: 'web',
        liveKey: `${project.id}/web`,
        stackName: slug,
        repoUrl: 'http://127.0.0.1/git/backend/web.git',
        port: 8080,
        status: 'active',
      },
    });
    secrets = new SecretBox(loadMasterKey(dataDir, undefined));
    // An update from before the runner kept states: a runner without the product database.
    await new TenantStackRunner(tenantStackRunnerOptions(config, secrets)).up(slug, program(1));
    runner = tenantStackRunner(config, secrets, db.prisma);
    await runner.up(slug, program(2));
    await runner.up(slug, program(3));
  });

  afterAll(async () => {
    try {
      await db?.close();
    } finally {
      fs.rmSync(tenantWorkRoot(dataDir), { recursive: true, force: true });
      work.cleanup();
    }
  });

  it('keeps the stacks at the configured URL, not under the data dir', async () => {
    expect(config.pulumiBackendUrl).toBe(`file://${elsewhere}`);
    expect(fs.readdirSync(path.join(elsewhere, '.pulumi'))).toContain('stacks');
    expect(fs.existsSync(path.join(dataDir, 'pulumi', '.pulumi'))).toBe(false);
    expect(await runner.listStacks()).toEqual([slug]);
    const history = await runner.history(slug);
    expect(history.map((u) => [u.kind, u.result])).toEqual([
      ['update', 'succeeded'],
      ['update', 'succeeded'],
      ['update', 'succeeded'],
    ]);
    expect((await runner.outputs(slug)).release).toEqual({ value: 'r3', secret: false });
  });

  it('audits the stack there: its history, outputs (secrets redacted), and which states were kept', async () => {
    const out = await audit();
    expect(out).toContain(`stack     ${slug}  (live)`);
    expect(out).toMatch(/^outputs {3}release="r3", token=\[secret\]$/m);
    expect(out).toMatch(/^note {6}the state left by update #1 was not kept/m);
    const updates = out.split('\n').filter((l) => /^ {2}#\d+ /.test(l));
    expect(updates.map((l) => l.replace(/ {2}\S+Z .*→/, ' →'))).toEqual([
      '  #3  update   succeeded → serving nothing',
      '  #2  update   succeeded → serving nothing',
      '  #1  update   succeeded → state not kept',
    ]);
    const report = JSON.parse(await audit('--json')) as AuditReport;
    expect(report.stack.outputs).toEqual({ release: 'r3', token: '[secret]' });
    expect(report.history.map((u) => u.stateKept)).toEqual([true, true, false]);
  });

  it('keeps the audit of the removed stack: the records the backend deleted were copied first', async () => {
    await runner.destroy(slug);
    expect(await runner.listStacks()).toEqual([]);
    const report = JSON.parse(await audit('--json')) as AuditReport;
    expect(report.stack.state).toBe('removed');
    expect(report.history.map((u) => [u.version, u.kind, u.stateKept])).toEqual([
      [4, 'destroy', true],
      [3, 'update', true],
      [2, 'update', true],
      [1, 'update', false], // copied from the backend's history before `stack rm`
    ]);
    expect(printed.join('\n')).not.toContain(TOKEN);
    expect(fs.existsSync(path.join(dataDir, 'pulumi', '.pulumi'))).toBe(false);
  });
});
