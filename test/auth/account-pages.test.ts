// /account/keys and /account/clients over HTTP: a key is shown once and works, revoking it (and
// only one's own) ends it; disconnecting an app ends its tokens on their next request; every
// form needs its CSRF token; without a session the pages send the browser to sign in.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLoginCode } from '../../mcp/auth/login-codes.ts';
import { type McpTestServer, startMcpTestServer } from '../support/mcp.ts';
import {
  authorizeUrl,
  consent,
  formFields,
  PageClient,
  pkce,
  registerClient,
  signIn,
  tokenRequest,
} from '../support/oauth.ts';

let server: McpTestServer;
beforeAll(async () => {
  server = await startMcpTestServer();
}, 60_000);
afterAll(() => server?.close());

let seq = 0;
async function browserFor(email = `acct${++seq}@example.com`) {
  const browser = new PageClient(server.origin);
  const { code } = await createLoginCode(server.db.prisma, email);
  expect((await signIn(browser, code)).status).toBe(303);
  return browser;
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

it('without a session the account pages send the browser to sign in', async () => {
  const anonymous = new PageClient(server.origin);
  for (const path of ['/account/keys', '/account/clients']) {
    const res = await anonymous.request(path);
    expect(res.status).toBe(303);
    expect(res.location).toBe(`/sign-in?return_to=${encodeURIComponent(path)}`);
  }
  const post = await anonymous.request('/account/keys', { form: { name: 'x' } });
  expect(post.status).toBe(303);
  expect(await server.db.prisma.apiKey.count()).toBe(0);
});

it('creates a key shown once, which works as a Bearer key until revoked', async () => {
  const browser = await browserFor();
  const page = await browser.request('/account/keys');
  expect(page.status).toBe(200);
  expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  const created = await browser.request('/account/keys', {
    form: { ...formFields(page.body, '/account/keys'), name: 'laptop' },
  });
  expect(created.status).toBe(200);
  const key = created.body.match(/id="new-key">(dk_live_[A-Za-z0-9_-]{32})</)?.[1] ?? '';
  expect(key).not.toBe('');
  expect(await mcpStatus(key)).toBe(200);
  const listed = await browser.request('/account/keys');
  expect(listed.body).toContain('laptop');
  expect(listed.body).not.toContain(key); // shown once
  const revoke = await browser.request('/account/keys/revoke', {
    form: formFields(listed.body, '/account/keys/revoke'),
  });
  expect(revoke.status).toBe(200);
  expect(revoke.body).toContain('revoked');
  expect(await mcpStatus(key)).toBe(401);
});

it("cannot revoke another user's key, nor act without the CSRF token", async () => {
  const other = await server.newUser(`victim${++seq}@example.com`);
  const browser = await browserFor();
  const page = await browser.request('/account/keys');
  await browser.request('/account/keys', {
    form: { ...formFields(page.body, '/account/keys'), name: 'mine' },
  });
  const listed = await browser.request('/account/keys');
  const res = await browser.request('/account/keys/revoke', {
    form: { ...formFields(listed.body, '/account/keys/revoke'), prefix: other.prefix },
  });
  expect(res.status).toBe(404);
  expect(await mcpStatus(other.key)).toBe(200);
  const noCsrf = await browser.request('/account/keys', { form: { name: 'sneaky' } });
  expect(noCsrf.status).toBe(403);
  const wrongAction = await browser.request('/account/keys', {
    form: { name: 'sneaky', csrf: formFields(page.body, '/sign-out').csrf ?? '' },
  });
  expect(wrongAction.status).toBe(403);
  expect(await server.db.prisma.apiKey.count({ where: { name: 'sneaky' } })).toBe(0);
});

it('lists connected apps; Disconnect ends their tokens on the next request', async () => {
  const browser = await browserFor();
  const redirect = 'http://127.0.0.1:41234/cb';
  const client = await registerClient(server.origin, [redirect], 'Gadget Agent');
  const { verifier, challenge } = pkce();
  const back = await consent(
    browser,
    authorizeUrl(server.origin, {
      clientId: client.client_id,
      redirectUri: redirect,
      challenge,
      method: 'S256',
    }),
  );
  const code = new URL(back.location ?? '').searchParams.get('code') ?? '';
  const tokens = await tokenRequest(server.origin, {
    grant_type: 'authorization_code',
    code,
    client_id: client.client_id,
    redirect_uri: redirect,
    code_verifier: verifier,
  });
  const access = String(tokens.json.access_token);
  expect(await mcpStatus(access)).toBe(200);

  const page = await browser.request('/account/clients');
  expect(page.body).toContain('Gadget Agent');
  expect(page.body).toContain('127.0.0.1:41234');
  // Another user does not see it.
  const stranger = await browserFor();
  expect((await stranger.request('/account/clients')).body).not.toContain('Gadget Agent');
  const strangerPage = await stranger.request('/account/clients');
  expect(strangerPage.body).toContain('No app is connected');

  const done = await browser.request('/account/clients/disconnect', {
    form: formFields(page.body, '/account/clients/disconnect'),
  });
  expect(done.status).toBe(200);
  expect(done.body).toContain('Disconnected');
  expect(done.body).not.toContain('Gadget Agent');
  expect(await mcpStatus(access)).toBe(401);
  const refresh = await tokenRequest(server.origin, {
    grant_type: 'refresh_token',
    refresh_token: String(tokens.json.refresh_token),
    client_id: client.client_id,
  });
  expect(refresh.json.error).toBe('invalid_grant');
});

it('signing out ends the session', async () => {
  const browser = await browserFor();
  const page = await browser.request('/account/keys');
  const cookie = browser.cookies.get('__Host-dmcp_session') ?? '';
  const out = await browser.request('/sign-out', { form: formFields(page.body, '/sign-out') });
  expect(out.status).toBe(303);
  // The old cookie no longer signs anyone in, even if replayed.
  const replay = new PageClient(server.origin);
  replay.cookies.set('__Host-dmcp_session', cookie);
  expect((await replay.request('/account/keys')).status).toBe(303);
});
