// A real client, end to end, against `serve --role all` (what `npm start` runs): the MCP SDK's
// own OAuth client discovers, registers and authorizes; Debian's chromium (playwright-core) signs
// in with a login code the operator CLI prints and allows on the consent page; with the tokens it
// gets, the client lists the tools, deploys a pushed static site that then answers through the
// ingress, and deletes it. Screenshots land in .data/test/screenshots/oauth-deploy-*.png.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { launchChromium, screenshot } from '../support/browser.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, SEED_TOOLS, text } from '../support/mcp.ts';
import { MemoryOAuthProvider } from '../support/oauth.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type ServiceView = {
  status: string;
  url: string | null;
  deployment: { status: string; reason: string | null } | null;
};

describe('OAuth client → browser sign-in and consent → tools/list → deploy → delete', () => {
  const work = scratchDir('oauth-deploy', path.join(repoRoot, '.data', 'test'));
  const run = Date.now().toString(36);
  const email = `oauth-deploy-${run}@example.com`;
  const service = `web${run}`.slice(0, 20);
  let serve: ServeProcess;
  let browser: Browser;
  let callback: http.Server;
  let callbackUrl = '';
  let client: Client | undefined;
  let provider: MemoryOAuthProvider;
  let liveUrl = '';

  const viaIngress = (url: string) =>
    httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(url).hostname);
  const mcpUrl = () => new URL(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`);
  /** Ids of the signed-in user's containers (the pipeline labels them with the user id). */
  const userContainers = async () => {
    const db = await openDatabase(`file:${path.join(work.dir, 'data', 'deploy-mcp.db')}`);
    const user = await db.prisma.user.findUniqueOrThrow({ where: { email } }).finally(() => db.close());
    const { stdout } = await exec('podman', ['ps', '-aq', '--filter', `label=deploy-mcp.user=${user.id}`]);
    return stdout.trim();
  };

  beforeAll(async () => {
    serve = await startServe(path.join(work.dir, 'data'));
    browser = await launchChromium();
    // The OAuth client's redirect target: a loopback page, as a desktop client runs one.
    callback = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Signed in; you can close this tab.</h1>'),
    );
    await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
    callbackUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`;
  }, 180_000);

  afterAll(async () => {
    // Whatever happened above, the service does not outlive the test.
    if (client) await call(client, 'delete_service', { name: service }).catch(() => undefined);
    await client?.close().catch(() => undefined);
    await browser?.close();
    callback?.closeAllConnections();
    await new Promise((resolve) => (callback ? callback.close(resolve) : resolve(undefined)));
    await serve?.stop();
    work.cleanup();
  }, 120_000);

  it('the SDK client gets tokens through chromium (login code, then Allow) and lists the tools', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    provider = new MemoryOAuthProvider(callbackUrl, async (url) => {
      await page.goto(url.toString());
      await page.waitForURL(/\/sign-in\?/);
      await screenshot(page, 'oauth-deploy-1-sign-in');
      // The operator's CLI, with the server's own settings, prints the code (its last line).
      const { stdout } = await exec(CLI, ['login-code', '--user', email], { env: serve.env });
      const code = stdout.trim().split('\n').at(-1) ?? '';
      expect(code).toMatch(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
      await page.getByLabel('One-time login code').fill(code);
      await page.getByRole('button', { name: 'Sign in with code' }).click();
      await page.waitForURL(/\/authorize\?/);
      expect((await page.locator('h1').textContent()) ?? '').toContain('SDK test client');
      await screenshot(page, 'oauth-deploy-2-consent');
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL((u) => u.toString().startsWith(callbackUrl));
      await screenshot(page, 'oauth-deploy-3-back-at-client');
      const back = new URL(page.url());
      expect(back.searchParams.get('iss')).toBe(serve.env.DEPLOY_MCP_PUBLIC_URL);
      expect(back.searchParams.get('state')).toBe(provider.lastState ?? null);
      return back.searchParams.get('code') ?? '';
    });
    const first = new StreamableHTTPClientTransport(mcpUrl(), { authProvider: provider });
    await expect(new Client({ name: 'oauth-deploy', version: '1' }).connect(first)).rejects.toThrow(
      UnauthorizedError,
    );
    await first.finishAuth(provider.lastCode ?? '');
    await context.close();
    // What the client now holds is one of our OAuth access tokens, not an API key.
    expect(provider.tokens()?.access_token).toMatch(/^dmo_at_/);
    expect(provider.tokens()?.refresh_token).toMatch(/^dmo_rt_/);

    client = new Client({ name: 'oauth-deploy', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(mcpUrl(), { authProvider: provider }));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(expect.arrayContaining(SEED_TOOLS));
    const who = (await call(client, 'whoami')).structuredContent as { email?: string };
    expect(who.email).toBe(email);
  });

  it('create_repo, git push of a static site, create_service: live through the ingress', async () => {
    if (!client) throw new Error('no OAuth client (the sign-in test failed)');
    const repo = await call(client, 'create_repo', { name: service });
    if (repo.isError) throw new Error(text(repo));
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    // A static site: no dependency install, so the test waits on our pipeline only.
    const app = path.join(work.dir, 'app');
    fs.mkdirSync(app, { recursive: true });
    fs.writeFileSync(path.join(app, 'index.html'), `<!doctype html>\n<p>hello from oauth ${run}</p>\n`);
    await pushNewRepo(agentGit(work.dir), app, remote);

    const res = await call(client, 'create_service', { name: service, repo: service });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    let view = res.structuredContent as ServiceView;
    const deadline = Date.now() + 240_000;
    while (
      view.deployment?.status !== 'active' &&
      view.deployment?.status !== 'failed' &&
      Date.now() < deadline
    ) {
      await sleep(1000);
      view = (await call(client, 'get_service', { name: service })).structuredContent as ServiceView;
    }
    expect(view.deployment?.reason ?? null, JSON.stringify(view)).toBeNull();
    expect(view.status).toBe('active');
    liveUrl = view.url ?? '';
    expect(liveUrl).toMatch(new RegExp(`^http://${service}-[a-z0-9-]+\\.localhost:${serve.ports.ingress}$`));
    const live = await eventually(
      () => viaIngress(liveUrl),
      (r) => r.status === 200,
      60_000,
    );
    expect(live.body).toContain(`hello from oauth ${run}`);
    // The same URL in chromium (which resolves *.localhost to loopback itself), for the record.
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(liveUrl, { timeout: 60_000 });
    expect(await page.locator('p').textContent()).toBe(`hello from oauth ${run}`);
    await screenshot(page, 'oauth-deploy-4-live-app');
    await context.close();
  }, 300_000);

  it('delete_service: the URL stops serving', async () => {
    if (!client || !liveUrl) throw new Error('nothing deployed (an earlier test failed)');
    expect(await userContainers()).not.toBe('');
    const res = await call(client, 'delete_service', { name: service });
    expect(res.structuredContent).toMatchObject({ name: service, deleted: true });
    const gone = await eventually(
      () => viaIngress(liveUrl),
      (r) => r.status === 404,
      30_000,
    );
    expect(gone.body).not.toContain(`hello from oauth ${run}`);
    expect(text(await call(client, 'get_service', { name: service }))).toMatch(/not found/);
    // No container of this user is left.
    expect(await eventually(userContainers, (ids) => ids === '', 30_000)).toBe('');
  });
});
