import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const DNS_LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TAKEN = /the hostname web-prod-alice is already taken by another service\. Pick another service name\./;

// Owner "prod-alice" with service "web" and owner "alice" with service "web-prod" both map to
// web-prod-alice. Through the real server (npm start): the second create_service is refused
// before anything is written, until the first service is deleted. The repos hold only a README,
// so each deployment that does start ends at build-pack detection: no image, no container.
describe('isolation: one hostname, one live service', () => {
  const work = scratchDir('hostnames', path.join(repoRoot, '.data', 'test'));
  let serve: ServeProcess;
  let db: Database;
  const agents: Record<'prodAlice' | 'alice' | 'longName', { client: Client; email: string }> = {} as never;
  // ensureOwnerName's longest base: "u-" and 40 characters.
  const longEmail = `${'7'.repeat(40)}@example.com`;
  const longOwner = `u-${'7'.repeat(40)}`;

  beforeAll(async () => {
    serve = await startServe(path.join(work.dir, 'data'));
    db = await openDatabase(`file:${path.join(work.dir, 'data', 'deploy-mcp.db')}`);
    for (const [who, email] of [
      ['prodAlice', 'prod-alice@example.com'],
      ['alice', 'alice@example.com'],
      ['longName', longEmail],
    ] as const) {
      const client = await connectAgent(serve, email);
      agents[who] = { client, email };
      const repo = await call(client, 'create_repo', { name: 'app' });
      const remote = (repo.structuredContent as { git_remote: string }).git_remote;
      const dir = path.join(work.dir, who);
      fs.mkdirSync(path.join(dir, 'app'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'app', 'README.md'), `# ${who}\n`);
      await pushNewRepo(agentGit(dir), path.join(dir, 'app'), remote);
    }
  });

  afterAll(async () => {
    await Promise.all(Object.values(agents).map((a) => a.client.close()));
    await db?.close();
    await serve?.stop();
    work.cleanup();
  });

  async function userOf(who: keyof typeof agents) {
    return db.prisma.user.findUniqueOrThrow({ where: { email: agents[who].email } });
  }

  async function create(who: keyof typeof agents, args: Record<string, unknown>) {
    const res = await call(agents[who].client, 'create_service', { repo: 'app', ...args });
    return { res, message: text(res) };
  }

  it("refuses a service whose hostname another owner's live service holds, and writes nothing", async () => {
    const first = await create('prodAlice', { name: 'web' });
    if (first.res.isError) throw new Error(`${first.message}\n${serve.output().slice(-3000)}`);
    const second = await create('alice', { name: 'web-prod', wait: false });
    expect(second.res.isError).toBe(true);
    expect(second.message).toMatch(TAKEN);

    const [prodAlice, alice] = [await userOf('prodAlice'), await userOf('alice')];
    expect([prodAlice.ownerName, alice.ownerName]).toEqual(['prod-alice', 'alice']);
    const victim = await db.prisma.service.findFirstOrThrow({ where: { userId: prodAlice.id } });
    expect(victim.hostLabel).toBe('web-prod-alice');
    // Nothing half-created: no service, no deployment, no audit event; the victim's is intact.
    expect((await call(agents.alice.client, 'list_services')).structuredContent).toMatchObject({
      services: [],
    });
    expect(await db.prisma.service.count({ where: { userId: alice.id } })).toBe(0);
    expect(await db.prisma.deployment.count({ where: { userId: alice.id } })).toBe(0);
    expect(
      await db.prisma.auditEvent.count({ where: { userId: alice.id, action: { startsWith: 'service.' } } }),
    ).toBe(0);
    expect(await db.prisma.service.findUniqueOrThrow({ where: { id: victim.id } })).toMatchObject({
      hostLabel: 'web-prod-alice',
      deletedAt: null,
    });
  });

  it('frees the hostname when its service is deleted: then the other owner takes it, and holds it', async () => {
    const deleted = await call(agents.prodAlice.client, 'delete_service', { name: 'web' });
    if (deleted.isError) throw new Error(`${text(deleted)}\n${serve.output().slice(-3000)}`);
    const prodAlice = await userOf('prodAlice');
    const old = await db.prisma.service.findFirstOrThrow({ where: { userId: prodAlice.id } });
    expect(old.deletedAt).not.toBeNull();
    expect(old.hostLabel).toBeNull();

    const taken = await create('alice', { name: 'web-prod' });
    if (taken.res.isError) throw new Error(`${taken.message}\n${serve.output().slice(-3000)}`);
    const alice = await userOf('alice');
    const mine = await db.prisma.service.findFirstOrThrow({ where: { userId: alice.id, deletedAt: null } });
    expect(mine.hostLabel).toBe('web-prod-alice');

    // Now the first owner is the one refused.
    const again = await create('prodAlice', { name: 'web', wait: false });
    expect(again.res.isError).toBe(true);
    expect(again.message).toMatch(TAKEN);
    expect(await db.prisma.service.count({ where: { userId: prodAlice.id, deletedAt: null } })).toBe(0);
  });

  it('keeps the whole owner name in hostnames of the longest service and project names', async () => {
    const user = await userOf('longName');
    const longest = (c: string) => `s${c.repeat(62)}`;
    // Projects are made by operators; the tools only use them.
    await db.prisma.project.create({ data: { userId: user.id, name: longest('p') } });
    const names = [
      { name: longest('e') },
      { name: `${longest('e').slice(0, 62)}2` }, // differs only in the last character
      { name: longest('e'), project: longest('p') },
    ];
    for (const args of names) {
      const res = await create('longName', { ...args, wait: false });
      if (res.res.isError) throw new Error(res.message);
    }
    expect((await userOf('longName')).ownerName).toBe(longOwner);
    const services = await db.prisma.service.findMany({ where: { userId: user.id } });
    const labels = services.map((s) => s.hostLabel ?? '');
    expect(labels).toHaveLength(3);
    expect(new Set(labels).size).toBe(3);
    for (const label of labels) {
      expect(label.length, label).toBeLessThanOrEqual(63);
      expect(label, label).toMatch(DNS_LABEL);
      expect(label.endsWith(`-${longOwner}`), label).toBe(true);
    }
  });
});
