// The MCP SDK's own client OAuth flow against our authorization server: discovery from the 401,
// dynamic registration, PKCE, sign-in with a login code and consent (over HTTP), the token
// exchange, then tools/list and whoami with the access token; the refresh path too.

import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLoginCode } from '../../mcp/auth/login-codes.ts';
import { type McpTestServer, SEED_TOOLS, startMcpTestServer } from '../support/mcp.ts';
import { consent, MemoryOAuthProvider, PageClient, signIn } from '../support/oauth.ts';

let server: McpTestServer;
beforeAll(async () => {
  server = await startMcpTestServer();
}, 60_000);
afterAll(() => server?.close());

it('the SDK client signs in through OAuth and lists tools as its user', async () => {
  const email = 'sdk-user@example.com';
  const browser = new PageClient(server.origin);
  const provider = new MemoryOAuthProvider('http://127.0.0.1:33418/callback', async (url) => {
    expect(url.origin).toBe(server.origin);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(server.url);
    const { code } = await createLoginCode(server.db.prisma, email);
    const first = await browser.request(url.pathname + url.search);
    expect(first.status).toBe(303); // to sign-in
    const signedIn = await signIn(browser, code, url.pathname + url.search);
    expect(signedIn.location).toBe(url.pathname + url.search);
    const back = await consent(browser, url.pathname + url.search);
    const redirect = new URL(back.location ?? '');
    expect(redirect.searchParams.get('iss')).toBe(server.origin);
    return redirect.searchParams.get('code') ?? '';
  });

  const first = new StreamableHTTPClientTransport(new URL(server.url), { authProvider: provider });
  await expect(new Client({ name: 't', version: '1' }).connect(first)).rejects.toThrow(UnauthorizedError);
  expect(provider.lastCode).toMatch(/^dmo_ac_/);
  await first.finishAuth(provider.lastCode as string);
  expect(provider.tokens()?.access_token).toMatch(/^dmo_at_/);

  const client = new Client({ name: 't', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { authProvider: provider }));
  const tools = (await client.listTools()).tools.map((t) => t.name);
  expect(tools).toEqual(expect.arrayContaining(SEED_TOOLS));
  const who = (await client.callTool({ name: 'whoami', arguments: {} })) as {
    structuredContent?: { email?: string };
  };
  expect(who.structuredContent?.email).toBe(email);
  await client.close();

  // An expired access token: the SDK refreshes (rotation) and carries on without the browser.
  const { hashSecret } = await import('../../mcp/auth/secrets.ts');
  const oldAccess = provider.tokens()?.access_token as string;
  await server.db.prisma.oAuthToken.update({
    where: { tokenHash: hashSecret(oldAccess) },
    data: { expiresAt: new Date(Date.now() - 1000) },
  });
  const again = new Client({ name: 't', version: '1' });
  const codeBefore = provider.lastCode;
  await again.connect(new StreamableHTTPClientTransport(new URL(server.url), { authProvider: provider }));
  expect(provider.tokens()?.access_token).toMatch(/^dmo_at_/);
  expect(provider.tokens()?.access_token).not.toBe(oldAccess);
  expect(provider.lastCode).toBe(codeBefore);
  expect((await again.listTools()).tools.length).toBeGreaterThan(0);
  await again.close();
});
