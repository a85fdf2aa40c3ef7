import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../cli/audit.ts';
import { loadConfig } from '../../core/config.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { loadMasterKey, SecretBox } from '../../core/secrets.ts';
import { createUser } from '../../core/users.ts';
import { tenantStackRunner, tenantWorkRoot } from '../../tenant-stacks/from-config.ts';
import type { ReleaseSpec } from '../../tenant-stacks/local/program.ts';
import type { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import {
  buildHelloServer,
  containersOf,
  startTestRuntime,
  type TestRuntime,
  testServiceProgram,
} from '../support/runtime.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI } from '../support/serve.ts';

const run = promisify(execFile);

/** Every file under `dir` with a hash of its content: equal snapshots mean nothing was written. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => {
        const file = path.join(e.parentPath, e.name);
        return [file, createHash('sha256').update(fs.readFileSync(file)).digest('hex')];
      }),
  );
}

describe('deploy-mcp audit <service>: releases, stack history and the resource diff between releases', () => {
  const work = scratchDir('audit');
  const dataDir = path.join(work.dir, 'data');
  const slug = `svc-audit-${process.pid}`;
  const email = 'auditor@example.com';
  // Env values that must never appear in any output.
  const GREETING = 'greeting-value-7c41e9';
  const TOKEN_V2 = 'token-value-v2-52b8d0';
  const TOKEN_V3 = 'token-value-v3-a913f6';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DEPLOY_MCP_DATA_DIR: dataDir,
    DEPLOY_MCP_TOOLS_DIR: path.join(repoRoot, '.tools'),
    DEPLOY_MCP_DATABASE_URL: '',
    DEPLOY_MCP_SECRET_KEY: '',
  };
  const config = loadConfig(env);
  const printed: string[] = [];
  let rt: TestRuntime;
  let db: Database;
  let runner: TenantStackRunner;
  let image: (tag: number) => string;
  let serviceId: string;
  const releases: ReleaseSpec[] = [];

  /** Runs the real CLI; resolves with its output or rejects with { code, stderr }. */
  const audit = async (...args: string[]) => {
    try {
      const out = await run(CLI, ['audit', ...args], { env });
      printed.push(out.stdout, out.stderr);
      return out.stdout;
    } catch (err) {
      const e = err as { stdout: string; stderr: string };
      printed.push(e.stdout, e.stderr);
      throw err;
    }
  };
  const auditJson = async (...args: string[]) => JSON.parse(await audit(...args, '--json')) as AuditReport;

  const program = (active?: ReleaseSpec, candidate?: ReleaseSpec) =>
    testServiceProgram(rt, slug, active, candidate);

  /**
   * What releaseImage does: the new release beside the current one, then promoted; then its rows.
   * Two updates (Kubernetes, and local stacks from before), or one (`oneUpdate`: the local
   * runtime now, the release judged inside the update).
   */
  async function deploy(version: number, tag: number, appEnv: Record<string, string>, oneUpdate = false) {
    const prisma = db.prisma;
    const service = await prisma.service.findUniqueOrThrow({ where: { id: serviceId } });
    const d = await prisma.deployment.create({
      data: {
        serviceId,
        userId: service.userId,
        workflowId: `deploy-${slug}-${version}`,
        trigger: version === 1 ? 'create' : 'redeploy',
        commitSha: String(version).repeat(40),
        status: 'deploying',
        imageRef: image(tag),
      },
    });
    const spec: ReleaseSpec = {
      key: d.id.slice(-12),
      image: image(tag),
      env: appEnv,
      port: 8080,
      memoryMb: 64,
      cpuMillis: 250,
    };
    if (oneUpdate) {
      await runner.up(
        slug,
        testServiceProgram(rt, slug, releases.at(-1), spec, async () => true),
      );
    } else {
      await runner.up(slug, program(releases.at(-1), spec));
      await runner.up(slug, program(spec));
    }
    releases.push(spec);
    const release = await prisma.release.create({
      data: {
        serviceId,
        deploymentId: d.id,
        version,
        imageRef: image(tag),
        configDigest: `digest-${version}`,
      },
    });
    await prisma.service.update({
      where: { id: serviceId },
      data: { status: 'active', url: `http://${slug}.localhost:8080`, currentReleaseId: release.id },
    });
    await prisma.deployment.update({ where: { id: d.id }, data: { status: 'active' } });
  }

  beforeAll(async () => {
    rt = await startTestRuntime(path.join(work.dir, 'runtime'));
    // The Go hello-server, built once and pushed under two tags (two "different" images).
    image = (tag) => `${rt.registry.host}/t/${slug}:${tag}`;
    await buildHelloServer(rt, work.dir, [image(1), image(2)]);

    await migrate(config.databaseUrl);
    db = await openDatabase(config.databaseUrl);
    const user = await createUser(db.prisma, email);
    const project = await db.prisma.project.findFirstOrThrow({ where: { userId: user.id } });
    const service = await db.prisma.service.create({
      data: {
        userId: user.id,
        projectId: project.id,
        name: 'web',
        liveKey: `${project.id}/web`,
        stackName: slug,
        repoUrl: 'http://127.0.0.1/git/auditor/web.git',
        port: 8080,
        status: 'deploying',
      },
    });
    serviceId = service.id;
    // The server's runner: same data dir, master key and passphrase as the CLI derives, and the
    // product database for its copies of each update's state.
    runner = tenantStackRunner(config, new SecretBox(loadMasterKey(dataDir, undefined)), db.prisma);
    await deploy(1, 1, { GREETING });
    await deploy(2, 2, { GREETING, API_TOKEN: TOKEN_V2 });
    await deploy(3, 2, { GREETING, API_TOKEN: TOKEN_V3 }, true);
  });

  afterAll(async () => {
    try {
      await runner?.destroy(slug).catch(() => undefined);
      for (const name of containersOf(slug)) execFileSync('podman', ['rm', '-f', name]);
      await db?.close();
    } finally {
      await rt?.stop();
      fs.rmSync(tenantWorkRoot(dataDir), { recursive: true, force: true });
      work.cleanup();
    }
  });

  it('prints the service, its releases and every stack update with the releases it left running', async () => {
    const out = await audit('web', '--user', email);
    const keys = releases.map((r) => r.key);
    expect(out).toContain(`service   web  (project default, owner ${email})`);
    expect(out).toContain(`stack     ${slug}  (live)`);
    expect(out).toMatch(/^status {4}active {2}http:\/\//m);
    expect(out).toMatch(/^outputs {3}.*activeHostPort=\d+/m); // stack.outputs()
    expect(out).not.toMatch(/^note /m); // every update's state was kept
    expect(out).toMatch(
      new RegExp(
        `^  v3  current  \\S+Z  commit 333333333333  image ${image(2)}  deployment \\S+${keys[2]}$`,
        'm',
      ),
    );
    expect(out).toMatch(new RegExp(`^  v1           \\S+Z  commit 111111111111  image ${image(1)}  `, 'm'));
    // Two updates for v1 and v2 (candidate beside the active release, then promotion), one for v3
    // (started, judged and promoted in one update, the old release deleted); newest first.
    const updates = out.split('\n').filter((l) => /^ {2}#\d+ /.test(l));
    expect(updates.map((l) => l.split('→')[1]?.trim())).toEqual([
      'serving v3',
      'serving v2',
      'serving v1, candidate v2',
      'serving v1',
      'serving nothing, candidate v1',
    ]);
    expect(updates[0]).toMatch(
      /^ {2}#5 {2}update {3}succeeded {2}\S+Z +\d+s {2}create 1, delete 1, same 1, update 1 {2}→ serving v3$/,
    );
    expect(updates[4]).toMatch(
      /^ {2}#1 {2}update {3}succeeded .*create 2 {2}→ serving nothing, candidate v1$/,
    );
    expect(out).toContain('resource diff v2 → v3 (the stack states after updates #4 and #5)');
  });

  it('reads the update history through the Automation API, writing nothing to the backend or work dirs', async () => {
    // The backend (file://<dataDir>/pulumi), PULUMI_HOME in it, and the stacks' work dirs.
    const dirs = [path.join(dataDir, 'pulumi'), tenantWorkRoot(dataDir)];
    const before = dirs.map(snapshot);
    const report = await auditJson('web', '--user', email);
    expect(dirs.map(snapshot)).toEqual(before);

    const pulumi = await runner.history(slug); // the Automation API (`pulumi stack history`)
    expect(report.history).toHaveLength(pulumi.length);
    expect(report.history.map((u) => [u.kind, u.result, u.startTime, u.endTime, u.resourceChanges])).toEqual(
      pulumi.map((u) => [
        u.kind,
        u.result,
        u.startTime.toISOString(),
        u.endTime?.toISOString(),
        u.resourceChanges,
      ]),
    );
  });

  it('diffs the current release against the previous one: a changed secret shows as changed, never its value', async () => {
    // exportStack shows secrets decrypted: the values are in the state for an audit to leak.
    expect(JSON.stringify(await runner.exportState(slug))).toContain(TOKEN_V3);
    // The runner's copies of each update's state (product database) hold no secret value.
    const kept = await db.prisma.stackUpdate.findMany({ where: { stackName: slug } });
    expect(kept.map((k) => k.state !== null)).toEqual([true, true, true, true, true]);
    expect(JSON.stringify(kept)).toContain('env.API_TOKEN');
    for (const value of [GREETING, TOKEN_V2, TOKEN_V3]) expect(JSON.stringify(kept)).not.toContain(value);
    const { diff } = await auditJson('web', '--user', email);
    expect(diff).toMatchObject({ from: 2, to: 3, basis: 'stack state' });
    const container = diff.resources.find((r) => r.from === `release-${releases[1]?.key}`);
    expect(container).toMatchObject({ change: 'changed', to: `release-${releases[2]?.key}` });
    const paths = container?.properties.map((p) => p.path) ?? [];
    expect(container?.properties).toContainEqual({
      path: 'env.API_TOKEN',
      in: ['inputs', 'outputs'],
      from: '[secret]',
      to: '[secret]',
      secretChanged: true,
    });
    expect(paths).toContain('hostPort');
    expect(paths).not.toContain('image'); // v2 and v3 run the same image
    expect(paths).not.toContain('env.GREETING'); // unchanged
    expect(diff.resources.find((r) => r.to === 'route')?.properties.map((p) => p.path)).toEqual(['upstream']);
  });

  it('diffs any two releases (--from/--to): the image changed and an added env var shows its name only', async () => {
    const out = await audit('web', '--user', email, '--from', '1', '--to', 'v2');
    expect(out).toContain('resource diff v1 → v2 (the stack states after updates #2 and #4)');
    expect(out).toContain(
      `  ~ release-${releases[0]?.key} → release-${releases[1]?.key}  pulumi-nodejs:dynamic:Resource`,
    );
    expect(out).toMatch(new RegExp(`^ {6}image +"${image(1)}" → "${image(2)}"$`, 'm'));
    expect(out).toMatch(/^ {6}env\.API_TOKEN +\(absent\) → \[secret\]$/m);
    expect(out).not.toMatch(/env\.GREETING/);
    expect(out).toMatch(/^ {6}containerId +"\w+" → "\w+" {2}\(outputs only\)$/m);

    const { diff } = await auditJson('web', '--user', email, '--from', '1', '--to', '2');
    const container = diff.resources.find((r) => r.to === `release-${releases[1]?.key}`);
    expect(container?.properties).toContainEqual({
      path: 'image',
      in: ['inputs', 'outputs'],
      from: image(1),
      to: image(2),
    });
    expect(container?.properties).toContainEqual({
      path: 'env.API_TOKEN',
      in: ['inputs', 'outputs'],
      to: '[secret]',
    });
  });

  it('prints a machine-readable report with --json', async () => {
    const report = await auditJson('web', '--user', email, '--project', 'default');
    expect(report.service).toEqual({
      id: serviceId,
      name: 'web',
      project: 'default',
      owner: email,
      stackName: slug,
      status: 'active',
      url: `http://${slug}.localhost:8080`,
      createdAt: expect.stringMatching(/Z$/),
      deletedAt: null,
    });
    expect(report.stack).toEqual({
      state: 'live',
      outputs: expect.objectContaining({
        activeHostPort: expect.any(Number),
        activeContainerId: expect.any(String),
      }),
    });
    expect(report.releases.map((r) => [r.version, r.current, r.commit, r.imageRef])).toEqual([
      [3, true, '3'.repeat(40), image(2)],
      [2, false, '2'.repeat(40), image(2)],
      [1, false, '1'.repeat(40), image(1)],
    ]);
    expect(report.releases[0]?.deploymentId.slice(-12)).toBe(releases[2]?.key);
    expect(report.history[0]).toEqual({
      version: 5,
      kind: 'update',
      result: 'succeeded',
      startTime: expect.stringMatching(/Z$/),
      endTime: expect.stringMatching(/Z$/),
      resourceChanges: expect.objectContaining({ delete: 1 }),
      stateKept: true,
      serving: { version: 3, key: releases[2]?.key },
      candidates: [],
    });
  });

  it('explains unknown users, projects, services and versions', async () => {
    const fails = (args: string[]) => expect(audit(...args)).rejects;
    await fails(['web', '--user', 'nobody@example.com']).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('user nobody@example.com not found'),
    });
    await fails(['web', '--user', email, '--project', 'nope']).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('project "nope" not found. Your projects: default.'),
    });
    await fails(['api', '--user', email]).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('service "api" in project "default" not found. Its services: web.'),
    });
    await fails(['web', '--user', email, '--from', '9']).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('release v9 of web not found. Its releases: v3, v2, v1.'),
    });
    await fails(['web', '--user', email, '--to', 'latest']).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('--to takes a release version such as 3 or v3, not "latest"'),
    });
    await fails(['web']).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('usage: deploy-mcp audit'),
    });
  });

  it('says which updates left no kept state, and diffs such releases by their rows', async () => {
    // As for a stack deployed before the runner kept states: drop the copies of updates #1-#3.
    const copies = await db.prisma.stackUpdate.findMany({
      where: { stackName: slug },
      orderBy: { startTime: 'asc' },
    });
    const dropped = copies.slice(0, 3);
    await db.prisma.stackUpdate.deleteMany({ where: { id: { in: dropped.map((c) => c.id) } } });
    try {
      const out = await audit('web', '--user', email, '--from', '1');
      expect(out).toMatch(
        /^note {6}the state left by updates #1, #2, #3 was not kept: the backend keeps only/m,
      );
      const updates = out.split('\n').filter((l) => /^ {2}#\d+ /.test(l));
      expect(updates.map((l) => l.split('→')[1]?.trim())).toEqual([
        'serving v3',
        'serving v2',
        'state not kept',
        'state not kept',
        'state not kept',
      ]);
      expect(out).toContain(
        'resource diff v1 → v3 (release rows: no kept stack state in which v1 serves; compared the release rows instead)',
      );
      expect(out).toMatch(new RegExp(`^ {6}imageRef +"${image(1)}" → "${image(2)}"$`, 'm'));
      // v2's promotion (#4) is kept: v2 → v3 still compares stack states.
      expect(await audit('web', '--user', email)).toContain(
        'resource diff v2 → v3 (the stack states after updates #4 and #5)',
      );
    } finally {
      await db.prisma.stackUpdate.createMany({ data: dropped });
    }
  });

  it('audits a deleted service from the copies the runner kept: releases, updates and states', async () => {
    await runner.destroy(slug); // what destroyService does, then marks the service deleted
    await db.prisma.service.update({
      where: { id: serviceId },
      data: { deletedAt: new Date(), liveKey: null, status: 'deleted', url: null },
    });
    expect(containersOf(slug)).toEqual([]);

    // The backend no longer has the stack (`pulumi stack rm` deleted its history too).
    expect(await runner.listStacks()).not.toContain(slug);

    const out = await audit('web', '--user', email);
    expect(out).toMatch(/^deleted {3}\S+Z: the service was deleted; its history is kept$/m);
    expect(out).toContain(`stack     ${slug}  (removed)`);
    expect(out).toMatch(/^note {6}the stack was removed with the service, and its history with it/m);
    expect(out).not.toMatch(/^outputs /m);
    expect(out).toContain('stack updates (6, newest first)');
    expect(out).toMatch(/^ {2}#6 {2}destroy {2}succeeded .*delete \d+ {2}→ serving nothing$/m);
    expect(out).toMatch(/^ {2}#5 {2}update {3}succeeded .*→ serving v3$/m);
    expect(out).toContain('resource diff v2 → v3 (the stack states after updates #4 and #5)');
    const report = await auditJson('web', '--user', email, '--from', '1', '--to', '3');
    expect(report.service).toMatchObject({ status: 'deleted', deletedAt: expect.stringMatching(/Z$/) });
    expect(report.releases).toHaveLength(3);
    expect(report.diff).toMatchObject({ from: 1, to: 3, basis: 'stack state' });
    const container = report.diff.resources.find((r) => r.to === `release-${releases[2]?.key}`);
    expect(container?.properties.map((p) => p.path)).toEqual(
      expect.arrayContaining(['image', 'env.API_TOKEN']),
    );
  });

  it('never printed or kept a secret value, though the stack state holds them', async () => {
    const all = printed.join('\n');
    expect(all.length).toBeGreaterThan(5000);
    expect(all).toContain('env.API_TOKEN');
    for (const value of [GREETING, TOKEN_V2, TOKEN_V3]) expect(all).not.toContain(value);
    const kept = JSON.stringify(await db.prisma.stackUpdate.findMany({ where: { stackName: slug } }));
    expect(kept).toContain('env.GREETING');
    for (const value of [GREETING, TOKEN_V2, TOKEN_V3]) expect(kept).not.toContain(value);
  });
});
