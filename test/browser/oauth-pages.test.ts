// Real clients in a real browser: Debian's chromium driven by playwright-core signs in with a
// login code and allows access on the consent page while the MCP SDK's own OAuth client runs
// the flow; then the key and connected-apps pages. Screenshots land in .data/test/screenshots/.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLoginCode } from '../../mcp/auth/login-codes.ts';
import { launchChromium, screenshot } from '../support/browser.ts';
import { type McpTestServer, SEED_TOOLS, startMcpTestServer } from '../support/mcp.ts';
import { MemoryOAuthProvider } from '../support/oauth.ts';

let server: McpTestServer;
let browser: Browser;
let callback: http.Server;
let callbackUrl = '';
const run = Date.now().toString(36);

beforeAll(async () => {
  server = await startMcpTestServer();
  browser = await launchChromium();
  // The OAuth client's redirect target: a loopback page, as a desktop client would run.
  callback = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Signed in; you can close this tab.</h1>'),
  );
  await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
  callbackUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`;
}, 120_000);
afterAll(async () => {
  await browser?.close();
  callback?.closeAllConnections();
  await new Promise((resolve) => callback?.close(resolve));
  await server?.close();
});

async function signInOnPage(page: Page, email: string) {
  const { code } = await createLoginCode(server.db.prisma, email);
  await page.getByLabel('One-time login code').fill(code);
  await page.getByRole('button', { name: 'Sign in with code' }).click();
}

async function mcpStatus(token: string) {
  const res = await fetch(server.url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  return res.status;
}

/** The SDK's OAuth flow with chromium doing the browser part; returns the provider and the browser context. */
async function connectThroughBrowser(email: string, shots: string | undefined) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const provider = new MemoryOAuthProvider(callbackUrl, async (url) => {
    await page.goto(url.toString());
    await page.waitForURL(/\/sign-in\?/);
    if (shots) await screenshot(page, `${shots}-1-sign-in`);
    await signInOnPage(page, email);
    await page.waitForURL(/\/authorize\?/);
    expect((await page.locator('h1').textContent()) ?? '').toContain('SDK test client');
    if (shots) await screenshot(page, `${shots}-2-consent`);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.toString().startsWith(callbackUrl));
    if (shots) await screenshot(page, `${shots}-3-back-at-client`);
    const back = new URL(page.url());
    expect(back.searchParams.get('iss')).toBe(server.origin);
    expect(back.searchParams.get('state')).toBe(provider.lastState ?? null);
    return back.searchParams.get('code') ?? '';
  });
  const transport = new StreamableHTTPClientTransport(new URL(server.url), { authProvider: provider });
  await expect(new Client({ name: 'browser-test', version: '1' }).connect(transport)).rejects.toThrow(
    UnauthorizedError,
  );
  await transport.finishAuth(provider.lastCode ?? '');
  return { provider, context, page };
}

async function sessionCookies(context: BrowserContext) {
  return (await context.cookies(server.origin)).map((c) => ({
    name: c.name,
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite,
    path: c.path,
  }));
}

it('sign-in, consent, tokens, then tools/list and whoami through the SDK client', async () => {
  const email = `browser-${run}@example.com`;
  const { provider, context } = await connectThroughBrowser(email, 'oauth');
  expect(await sessionCookies(context)).toEqual(
    expect.arrayContaining([
      { name: '__Host-dmcp_session', secure: true, httpOnly: true, sameSite: 'Lax', path: '/' },
      { name: '__Host-dmcp_csrf', secure: true, httpOnly: true, sameSite: 'Lax', path: '/' },
    ]),
  );
  const client = new Client({ name: 'browser-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { authProvider: provider }));
  expect((await client.listTools()).tools.map((t) => t.name)).toEqual(expect.arrayContaining(SEED_TOOLS));
  const who = (await client.callTool({ name: 'whoami', arguments: {} })) as {
    structuredContent?: { email?: string };
  };
  expect(who.structuredContent?.email).toBe(email);
  await client.close();
  await context.close();
});

it('the keys page creates a key shown once that works as a Bearer key, and revokes it', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.origin}/account/keys`);
  await page.waitForURL(/\/sign-in\?/);
  await signInOnPage(page, `keys-${run}@example.com`);
  await page.waitForURL(/\/account\/keys$/);
  await page.getByLabel('New key name').fill('ci-laptop');
  await page.getByRole('button', { name: 'Create key' }).click();
  const key = (await page.locator('#new-key').textContent()) ?? '';
  expect(key).toMatch(/^dk_live_[A-Za-z0-9_-]{32}$/);
  await screenshot(page, 'keys-1-new-key');
  expect(await mcpStatus(key)).toBe(200);
  await page.getByRole('button', { name: 'Revoke ci-laptop' }).click();
  await page.waitForSelector('text=revoked.');
  await screenshot(page, 'keys-2-revoked');
  expect(await page.content()).not.toContain(key);
  expect(await mcpStatus(key)).toBe(401);
  await context.close();
});

it('the connected-apps page disconnects an app: its token is refused on the next request', async () => {
  const { provider, context, page } = await connectThroughBrowser(`apps-${run}@example.com`, undefined);
  const access = provider.tokens()?.access_token ?? '';
  expect(await mcpStatus(access)).toBe(200);
  await page.goto(`${server.origin}/account/clients`);
  expect(await page.locator('tbody tr').count()).toBe(1);
  await screenshot(page, 'apps-1-connected');
  await page.getByRole('button', { name: 'Disconnect SDK test client' }).click();
  await page.waitForSelector('text=Disconnected.');
  await screenshot(page, 'apps-2-disconnected');
  expect(await mcpStatus(access)).toBe(401);
  await context.close();
});

it('an unknown redirect URI gets a readable error page, not a redirect', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const res = await page.goto(
    `${server.origin}/authorize?response_type=code&client_id=dmc_unknown&redirect_uri=${encodeURIComponent('https://evil.example/cb')}`,
  );
  expect(res?.status()).toBe(400);
  expect(page.url().startsWith(server.origin)).toBe(true);
  await screenshot(page, 'error-page');
  await context.close();
});
