import { createHmac, randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { linkGitHubLogin } from '../../core/github/accounts.ts';
import { type Listening, listen } from '../../core/http.ts';
import { createLogger } from '../../core/log.ts';
import { createUser } from '../../core/users.ts';
import type { DeployStarter } from '../../workers/deploy/start-deploy.ts';
import { createDeployerApp } from '../../workers/deployer-app.ts';
import { scratchDir } from '../support/scratch.ts';

/**
 * The deployer-server's GitHub webhook endpoint on a real database: signatures before
 * parsing, de-duplicated deliveries, installations mapped to the linked user, and a push
 * asking to deploy only that user's services of the pushed repo and branch (checklist E29-E32).
 * The deploy starter is the seam the endpoint hands request ids to: here it only records them
 * (the deploy itself is end to end in e2e.test.ts).
 */
describe('GitHub webhooks (deployer-server)', () => {
  const work = scratchDir('github-webhook');
  const secret = 'a-webhook-secret-of-some-length';
  const started: string[][] = [];
  const deploys = {
    startRequested: async (ids: string[]) => {
      started.push(ids);
    },
  } as unknown as DeployStarter;
  let db: Database;
  let withSecret: Listening;
  let without: Listening;
  let aliceService: string;

  const send = async (
    server: Listening,
    event: string,
    payload: unknown,
    o: { id?: string; signature?: string; raw?: string } = {},
  ) => {
    const body = o.raw ?? JSON.stringify(payload);
    const id = o.id ?? randomUUID();
    const res = await fetch(`http://127.0.0.1:${server.port}/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': event,
        'x-github-delivery': id,
        'x-hub-signature-256':
          o.signature ?? `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      },
      body,
    });
    return { status: res.status, id };
  };

  /** Waits (bounded) until the delivery's work is done; returns its outcome. */
  const outcome = async (id: string) => {
    for (let i = 0; i < 100; i++) {
      const row = await db.prisma.webhookDelivery.findUnique({
        where: { provider_deliveryId: { provider: 'github', deliveryId: id } },
      });
      if (row && row.status !== 'received') return row.status;
      await sleep(50);
    }
    throw new Error(`delivery ${id} was not processed`);
  };

  const push = (installationId: number, sha: string, branch = 'main') => ({
    ref: `refs/heads/${branch}`,
    before: '0'.repeat(40),
    after: sha,
    repository: { name: 'web', owner: { login: 'Acme' } },
    installation: { id: installationId },
  });

  beforeAll(async () => {
    const url = `file:${path.join(work.dir, 'db.sqlite')}`;
    await migrate(url);
    db = await openDatabase(url);
    const log = createLogger({ level: 'silent' });
    const health = {};
    withSecret = await listen(
      createDeployerApp({ health, github: { db: db.prisma, log, secret, github: undefined, deploys } }),
      '127.0.0.1',
      0,
    );
    without = await listen(
      createDeployerApp({
        health,
        github: { db: db.prisma, log, secret: undefined, github: undefined, deploys },
      }),
      '127.0.0.1',
      0,
    );
    const alice = await createUser(db.prisma, 'alice@example.com');
    const mallory = await createUser(db.prisma, 'mallory@example.com');
    await linkGitHubLogin(db.prisma, alice.id, 'Acme', 'operator');
    await linkGitHubLogin(db.prisma, mallory.id, 'mallory', 'operator');
    const repo = await db.prisma.repo.create({
      data: { userId: alice.id, host: 'github', ownerName: 'acme', name: 'web' },
    });
    const project = await db.prisma.project.findFirstOrThrow({ where: { userId: alice.id } });
    const service = (name: string, branch: string) =>
      db.prisma.service.create({
        data: {
          userId: alice.id,
          projectId: project.id,
          name,
          liveKey: `${project.id}/${name}`,
          stackName: `svc-${randomUUID().slice(0, 8)}`,
          repoUrl: 'github.com/acme/web',
          repoId: repo.id,
          branch,
        },
      });
    aliceService = (await service('web', 'main')).id;
    await service('web-dev', 'dev');
  });

  afterAll(async () => {
    await withSecret?.close();
    await without?.close();
    await db?.close();
    work.cleanup();
  });

  it('refuses every delivery with 401 while no secret is configured', async () => {
    const res = await send(without, 'push', push(1, 'a'.repeat(40)));
    expect(res.status).toBe(401);
    expect(await db.prisma.webhookDelivery.count()).toBe(0);
  });

  it('refuses a bad or missing signature with 401 before parsing, and records nothing', async () => {
    const bad = `sha256=${createHmac('sha256', 'not-the-secret').update('{}').digest('hex')}`;
    expect((await send(withSecret, 'push', {}, { signature: bad })).status).toBe(401);
    expect((await send(withSecret, 'push', {}, { signature: '' })).status).toBe(401);
    // Not JSON at all, unsigned: 401 (the body is never parsed); signed: 400.
    expect((await send(withSecret, 'push', null, { raw: '{oops', signature: bad })).status).toBe(401);
    expect((await send(withSecret, 'push', null, { raw: '{oops' })).status).toBe(400);
    expect(await db.prisma.webhookDelivery.count()).toBe(0);
  });

  it('maps installations to the linked user and deploys only their services of that branch, once', async () => {
    const created = await send(withSecret, 'installation', {
      action: 'created',
      installation: { id: 77, account: { login: 'Acme', type: 'Organization' } },
    });
    expect(created.status).toBe(202);
    expect(await outcome(created.id)).toBe('accepted');

    const sha = 'b'.repeat(40);
    const first = await send(withSecret, 'push', push(77, sha));
    expect(first.status).toBe(202);
    expect(await outcome(first.id)).toBe('accepted');
    expect(started).toHaveLength(1);
    const requests = await db.prisma.deployRequest.findMany();
    expect(requests.map((r) => [r.serviceId, r.commitSha])).toEqual([[aliceService, sha]]);
    expect(started[0]).toEqual([requests[0]?.id]);

    // The same delivery again: 200, nothing new started.
    for (let i = 0; i < 3; i++) {
      const again = await send(withSecret, 'push', push(77, sha), { id: first.id });
      expect(again.status).toBe(200);
    }
    // Another delivery of the same commit: accepted, but no second request.
    const other = await send(withSecret, 'push', push(77, sha));
    expect(await outcome(other.id)).toBe('ignored');
    expect(started).toHaveLength(1);
    expect(await db.prisma.deployRequest.count()).toBe(1);
  });

  it("ignores a push signed for another user's installation (the installation id decides the tenant)", async () => {
    const mine = await send(withSecret, 'installation', {
      action: 'created',
      installation: { id: 88, account: { login: 'mallory', type: 'User' } },
    });
    await outcome(mine.id);
    const res = await send(withSecret, 'push', push(88, 'c'.repeat(40)));
    expect(await outcome(res.id)).toBe('ignored');
    expect(await db.prisma.deployRequest.count()).toBe(1);
  });

  it('after the installation is deleted, its pushes deploy nothing', async () => {
    const gone = await send(withSecret, 'installation', {
      action: 'deleted',
      installation: { id: 77, account: { login: 'Acme', type: 'Organization' } },
    });
    expect(await outcome(gone.id)).toBe('accepted');
    const res = await send(withSecret, 'push', push(77, 'd'.repeat(40)));
    expect(await outcome(res.id)).toBe('ignored');
    expect(await db.prisma.deployRequest.count()).toBe(1);
  });
});
